"""A fixed set of Ray actors, each built once, fed work in order and yielding results in order.

Every actor keeps ``depth`` calls queued so it never waits for the driver; results that finish
early wait in a buffer until those before them are in, so callers see input order. A call that
fails on the cluster (an unexpected exception, a worker that died) becomes a :class:`Failure`
for that item and the run goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from rag.distributed.cluster import ClusterError, import_ray
from rag.errors import RagError


@dataclass(frozen=True)
class Failure:
    """Why one item's call failed on the cluster."""

    message: str


def _message(exc: BaseException) -> str:
    """A one-line reason: a RagError's own message, else the first line of the cause."""
    cause = getattr(exc, "cause", None) or exc
    if isinstance(cause, RagError):
        return cause.message
    text = str(cause).strip()
    line = text.splitlines()[0] if text else ""
    return f"{type(cause).__name__}: {line}" if line else type(cause).__name__


class WorkerPool:
    """``workers`` actors of ``worker_class(*args)``, one CPU each (``num_gpus`` on request).

    The class's ``ready()`` method is called once by :meth:`start`; a RagError raised there (a
    model that cannot load) reaches the caller as itself.
    """

    def __init__(
        self,
        worker_class: type,
        args: tuple[Any, ...],
        workers: int,
        *,
        num_cpus: float = 1,
        num_gpus: float = 0,
        depth: int = 2,
    ) -> None:
        if workers < 1:
            raise ClusterError("the number of Ray workers must be at least 1")
        ray = import_ray()
        # Workers the cluster can never place would wait forever: refuse them now.
        has = ray.cluster_resources()
        for name, each in (("CPU", num_cpus), ("GPU", num_gpus)):
            if each and workers * each > has.get(name, 0):
                raise ClusterError(
                    f"{workers} Ray workers need {workers * each:g} {name}s; "
                    f"the cluster has {has.get(name, 0):g}"
                )
        # One restart: a worker lost mid-run comes back (and reloads) for the items after.
        remote = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=1)(worker_class)
        self._ray = ray
        self._depth = depth
        self.actors = [remote.remote(*args) for _ in range(workers)]

    def start(self) -> list[Any]:
        """Wait until every worker has loaded; returns what each ``ready()`` said."""
        try:
            return list(self._ray.get([a.ready.remote() for a in self.actors]))
        except RagError:
            raise
        except self._ray.exceptions.RayError as exc:
            raise ClusterError(f"a Ray worker failed to start: {_message(exc)}") from exc

    def map(
        self,
        method: str,
        items: Iterable[Any],
        *,
        progress: bool = False,
        desc: str = "working",
        unit: str = "item",
        total: int | None = None,
    ) -> Iterator[Any | Failure]:
        """``actor.<method>(item)`` for every item, spread over the workers, in input order.

        Results wait for one slow item ahead of them only up to a bound (then the workers
        pause), so memory stays flat and an interrupted run loses little."""
        ray = self._ray
        source = iter(enumerate(items))
        running: dict[Any, tuple[int, Any]] = {}  # call -> (position, actor)
        done: dict[int, Any] = {}
        idle: list[Any] = []
        next_out = 0
        most_ahead = 8 * self._depth * len(self.actors)

        def feed(actor: Any) -> None:
            if len(done) >= most_ahead:
                idle.append(actor)
                return
            item = next(source, None)
            if item is not None:
                position, value = item
                running[getattr(actor, method).remote(value)] = (position, actor)

        for _ in range(self._depth):
            for actor in self.actors:
                feed(actor)
        with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
            while running:
                [call], _ = ray.wait(list(running), num_returns=1)
                position, actor = running.pop(call)
                try:
                    done[position] = ray.get(call)
                except ray.exceptions.RayError as exc:
                    done[position] = Failure(_message(exc))
                bar.update(1)
                feed(actor)
                while next_out in done:
                    yield done.pop(next_out)
                    next_out += 1
                while idle and len(done) < most_ahead:
                    feed(idle.pop())

    def close(self) -> None:
        """Stop the workers (their CPUs go back to the cluster)."""
        for actor in self.actors:
            self._ray.kill(actor)
        self.actors = []

    def __enter__(self) -> WorkerPool:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
