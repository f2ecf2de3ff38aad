"""The dense vector index: FAISS inner product over L2-normalised vectors (= cosine).

Small corpora get exact search over float32 vectors. Large ones get an HNSW graph over 8-bit
scalar-quantised vectors (384 bytes a vector instead of 1,536, plus ~270 bytes of graph) whose
best ``RERANK`` candidates are re-scored exactly with the float32 vectors, read from the
build's memory-mapped ``embeddings.npy``: 8 bits alone flip near-ties (e5's cosines crowd into
0.7-0.9) and held recall@10 under 0.95 (bench/README.md, "Scale"). ``RAG_ANN=ivf`` asks for
an inverted file (IVF) over the same 8-bit vectors with the same re-score instead: minutes to
build where a million-vector graph takes about an hour on two cores, but on e5-like vectors its
recall@10 stayed near 0.8 (bench/README.md, "Scale at a million chunks"), so ``auto`` never
picks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import faiss
import numpy as np

Kind = Literal["flat", "hnsw", "ivf"]
HNSW_M = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# From HNSW_LARGE vectors e5 neighbours crowd more: on 1M e5-derived vectors the graph above had
# recall@10 0.87 / 0.91 / 0.93 at efSearch 128 / 256 / 512; a denser graph built longer reaches
# 0.955 at 512 (2.5 ms a query; bench/README.md, bench/ann_1m.py).
HNSW_LARGE = 500_000
HNSW_M_LARGE = 48
HNSW_EF_CONSTRUCTION_LARGE = 100
HNSW_EF_SEARCH_LARGE = 512
RERANK = 50  # quantised candidates re-scored exactly per query
IVF_TRAIN = 64  # training vectors per list (FAISS warns below 39)
IVF_NPROBE = 64  # lists searched per query (of 2,048 at a million vectors; bench/README.md)


def ivf_lists(count: int) -> int:
    """Inverted lists for ``count`` vectors: ~2 sqrt(n), a power of two, 2,048 at a million."""
    return int(2 ** max(4, round(np.log2(2 * np.sqrt(max(count, 1))))))


def choose_kind(setting: str, count: int, threshold: int) -> Kind:
    """Exact search unless configured otherwise or the corpus is large enough to need ANN."""
    if setting in ("hnsw", "ivf"):
        return "ivf" if setting == "ivf" else "hnsw"
    if setting == "auto" and count >= threshold:
        return "hnsw"
    return "flat"


class VectorIndex:
    """A thin, typed wrapper so the rest of the code never touches FAISS directly."""

    def __init__(self, index: faiss.Index, kind: Kind, exact: np.ndarray | None = None) -> None:
        self._index = index
        self.kind: Kind = kind
        self.exact = exact  # float32 rows for re-scoring quantised candidates (None: don't)

    @classmethod
    def build(cls, vectors: np.ndarray, kind: Kind = "flat") -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        dim = vectors.shape[1]
        index: faiss.Index
        if kind == "hnsw":
            eight_bit: Any = faiss.ScalarQuantizer.QT_8bit
            large = len(vectors) >= HNSW_LARGE
            m = HNSW_M_LARGE if large else HNSW_M
            index = faiss.IndexHNSWSQ(dim, eight_bit, m, faiss.METRIC_INNER_PRODUCT)
            index.hnsw.efConstruction = (
                HNSW_EF_CONSTRUCTION_LARGE if large else HNSW_EF_CONSTRUCTION
            )
            index.hnsw.efSearch = HNSW_EF_SEARCH_LARGE if large else HNSW_EF_SEARCH
            if len(vectors):
                index.train(vectors)  # the quantiser's per-dimension range
        elif kind == "ivf":
            index = _train_ivf(vectors)
        else:
            index = faiss.IndexFlatIP(dim)
        if len(vectors):
            index.add(vectors)
        return cls(index, kind, vectors if kind != "flat" else None)

    @property
    def size(self) -> int:
        return int(self._index.ntotal)

    @property
    def dim(self) -> int:
        return int(self._index.d)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` (scores, row ids) per query; ids are -1 where fewer than k exist."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(k, self.size)) if self.size else 1
        # One OpenMP thread for this calling thread (the setting is per thread): request threads
        # search in parallel already, and a team only adds waiting on a busy machine (flat
        # search at 100k: 42 ms with two threads, 6 ms with one).
        faiss.omp_set_num_threads(1)
        if self.exact is None or self.kind == "flat":
            scores, ids = self._index.search(queries, k)
            return scores, ids
        _, found = self._index.search(queries, max(k, min(RERANK, self.size)))
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        for n, (query, rows) in enumerate(zip(queries, found, strict=True)):
            rows = np.sort(rows[rows >= 0])  # in file order: fewer page reads
            exact = np.asarray(self.exact[rows], dtype=np.float32) @ query
            best = np.lexsort((rows, -exact))[:k]
            scores[n, : len(best)] = exact[best]
            ids[n, : len(best)] = rows[best]
        return scores, ids

    def save(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def load(cls, path: Path, exact: np.ndarray | None = None) -> VectorIndex:
        """Read a saved index; ``exact`` (memory-mapped float32 rows) re-scores HNSW results."""
        index = faiss.read_index(str(path))
        kind: Kind = "flat"
        if isinstance(index, faiss.IndexHNSW):
            kind = "hnsw"
            ef = HNSW_EF_SEARCH_LARGE if index.ntotal >= HNSW_LARGE else HNSW_EF_SEARCH
            faiss.downcast_index(index).hnsw.efSearch = ef  # type: ignore[attr-defined]
        elif isinstance(index, faiss.IndexIVF):
            kind = "ivf"
            faiss.downcast_index(index).nprobe = IVF_NPROBE  # type: ignore[attr-defined]
        return cls(index, kind, exact)


def _train_ivf(vectors: np.ndarray) -> faiss.Index:
    """A trained, empty IVF-SQ8 index: k-means lists and 8-bit ranges from an even sample."""
    dim = vectors.shape[1]
    lists = min(ivf_lists(len(vectors)), max(1, len(vectors) // IVF_TRAIN))
    quantizer = faiss.IndexFlatIP(dim)
    eight_bit: Any = faiss.ScalarQuantizer.QT_8bit
    index = faiss.IndexIVFScalarQuantizer(
        quantizer, dim, lists, eight_bit, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.niter = 10  # k-means rounds: the lists only need to be roughly balanced
    index.cp.max_points_per_centroid = IVF_TRAIN
    if len(vectors):
        step = max(1, len(vectors) // (lists * IVF_TRAIN))
        index.train(np.ascontiguousarray(vectors[::step][: lists * IVF_TRAIN]))
    index.nprobe = IVF_NPROBE
    return index  # FAISS's Python wrapper keeps ``quantizer`` alive with the index
