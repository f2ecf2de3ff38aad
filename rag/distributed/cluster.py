"""Joining (or starting) a Ray cluster, with the settings a CLI run and the tests need."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rag.errors import RagError

log = logging.getLogger(__name__)

# ``--ray`` without an address: start a private cluster on this machine for this run.
LOCAL = "local"
# A local cluster's shared-memory object store; answers and vectors are small, and the default
# (30% of RAM) would claim memory that other jobs on a shared machine need.
LOCAL_OBJECT_STORE_BYTES = 256 * 1024**2


class ClusterError(RagError):
    """Ray is missing or the cluster cannot be reached."""

    status = 503
    code = "cluster_error"


def import_ray() -> Any:
    """The ``ray`` module, or a one-line message that says how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ClusterError("--ray needs the 'ray' extra: pip install 'qianwen-rag[ray]'") from exc
    return ray


def connect(address: str | None = LOCAL, *, num_cpus: int | None = None) -> int:
    """Start a local cluster (``address`` is None or ``local``) or join the one at ``address``
    ('auto', 'ray://head:10001', ...); returns the CPUs the cluster offers.

    A local cluster gets ``num_cpus`` (default: this machine's) and no dashboard. On a remote
    cluster the driver's ``rag`` package is shipped to the workers (``py_modules``) so they run
    the same code; its dependencies must already be installed there.
    """
    ray = import_ray()
    if ray.is_initialized():
        return int(ray.cluster_resources().get("CPU", 1))
    options: dict[str, Any] = {
        "logging_level": logging.ERROR,  # no start-up banner or notices on the terminal
        # Worker output reaches the terminal only when rag logs at INFO or below.
        "log_to_driver": logging.getLogger("rag").getEffectiveLevel() <= logging.INFO,
    }
    try:
        if address in (None, LOCAL):
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network calls
            ray.init(
                num_cpus=num_cpus or os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=LOCAL_OBJECT_STORE_BYTES,
                **options,
            )
        else:
            _check_reachable(address)
            package = str(Path(__file__).resolve().parents[1])
            ray.init(address=address, runtime_env={"py_modules": [package]}, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {first}") from exc
    cpus = int(ray.cluster_resources().get("CPU", 1))
    log.info("ray connected", extra={"address": address or LOCAL, "cpus": cpus})
    return cpus


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """Fail in seconds on a ``host:port`` nobody listens on (Ray itself retries for minutes)."""
    host, _, port = address.split("://")[-1].rpartition(":")
    if not host or not port.isdigit():
        return  # 'auto' and other forms: Ray resolves them and fails fast itself
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ClusterError(f"cannot reach the Ray cluster at {address!r}: {exc}") from exc


def shutdown() -> None:
    """Leave the cluster (stopping it when this process started it)."""
    ray = import_ray()
    if ray.is_initialized():
        ray.shutdown()


@contextmanager
def connected(address: str | None, workers: int | None = None) -> Iterator[int]:
    """A cluster for one command: yields how many workers to run (``workers``, else one per
    cluster CPU) and leaves the cluster at the end, unless it was already joined before."""
    if workers is not None and workers < 1:
        raise ClusterError("--ray-workers must be at least 1")
    ray = import_ray()
    joined_here = not ray.is_initialized()
    cpus = connect(address, num_cpus=workers)
    try:
        yield workers or cpus
    finally:
        if joined_here:
            shutdown()
