"""qianwen-rag: cited question answering over Chinese news articles."""

import os

# FAISS and the e5 engine use OpenMP. Its default busy-waiting threads make every query
# embedding wait for the other core's work on a loaded 2-core machine (3.3 s instead of
# 0.04 s, measured); passive waiting gives the CPU back. Set before either library loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# OpenBLAS (numpy's, for the cross-encoder's forward pass) spins the same way: with its two
# threads and another process on a core, five sentence pairs took 7.1 s instead of 0.05 s.
# One thread per request serves a 2-core machine better, and setting it before the library
# loads is the only race-free way: changing it later, while another request is inside BLAS,
# crashed the process (a segfault under concurrent questions).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

__version__ = "0.1.0"
