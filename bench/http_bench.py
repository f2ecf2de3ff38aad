"""HTTP throughput and latency of ``/api/search`` and ``/api/ask`` next to the in-process calls.

Starts ``python -m rag serve`` on a free loopback port over an index of the bundled articles and
drives it at several concurrencies, a fixed number of requests each, questions from
``../shared/eval/dev.jsonl`` and ``bench/heldout.jsonl``. The same calls
(``Retriever.retrieve``, ``Answerer.answer``) are timed in this process alternately with single
HTTP requests, so their ratio is measured under the same machine load.

Two workloads: ``repeated`` cycles through the questions as they are, so after the first pass
the retriever's query-vector cache answers; ``unique`` appends a request number to each
question, so every request embeds its query (the cost of a new question).

    python bench/http_bench.py                      # writes bench/results/http.json
    python bench/http_bench.py --workers 2 --omp-threads 1 --out /tmp/http-2w.json
    python bench/http_bench.py --endpoints search --workload unique --concurrency 1 16 \
        --embed-slots 1 2 64 --rounds 3 --out bench/results/http-policy.json  # policies

The **limit** of new-question throughput is cores / (one-thread, single-query embedding time),
measured in this process before and after the load runs (median). ``--embed-slots`` runs one
server per value (``RAG_EMBED_SLOTS``: 1 = one model pass at a time with every core, over all
the queries queued; 2 = two passes of one core each; 64 = nearly every request alone);
``--compare-with DIR`` adds a server running another checkout's code with its defaults.
``--rounds`` repeats every server and load, alternating the servers' order; the tables show
medians.

The load generator shares the machine with the server. By default it is a minimal asyncio
client on uvloop (one pre-built write and one Content-Length read per request, ~0.2 ms of
CPU a request against ~1.4 ms for httpx; ``--client httpx`` for comparison). Each run records
the CPU the server, the client and every other process used over the measured requests, as
shares of all the cores, and the server's mean query-embedding batch (from ``/metrics``).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

ROOT = Path(__file__).resolve().parents[1]
QUESTION_FILES = (ROOT.parent / "shared" / "eval" / "dev.jsonl", ROOT / "bench" / "heldout.jsonl")
OUT = ROOT / "bench" / "results" / "http.json"
T = TypeVar("T")
ENDPOINTS = ("search", "ask")
WORKLOADS = ("repeated", "unique")
CLIENTS = ("raw", "httpx")
TOP_K = 5
WARMUP = 5
TARGETS = {
    "http_p50_over_in_process_p50_max": 1.5,
    "search_rps_at_c16_min": 150.0,
    "search_p99_over_p50_at_c16_max": 5.0,
    "unique_search_rps_at_c16_over_limit_min": 0.9,
    "unique_search_c1_p50_over_bare_embedding_max": 1.2,
}


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` (all its threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_embedding(questions: Questions, n: int) -> dict[str, float]:
    """Single-query e5 embedding in this process, one thread and all threads, alternately."""
    from rag.embedding import E5Embedder, _engine_threads

    e5, threads = E5Embedder(), _engine_threads()
    one: list[float] = []
    every: list[float] = []
    cpu: list[float] = []
    for i in range(n + WARMUP):
        text = questions.next()
        for count, into in ((1, one), (os.cpu_count() or 1, every)):
            threads(count)
            started, thread_cpu = time.perf_counter(), time.thread_time()
            e5.embed_queries([f"{text} {count}"])
            if i >= WARMUP:
                into.append(time.perf_counter() - started)
                if count == 1:
                    cpu.append(time.thread_time() - thread_cpu)
    threads(os.cpu_count() or 1)
    return {
        "one_thread_p50_ms": round(1000 * statistics.median(one), 2),
        "all_threads_p50_ms": round(1000 * statistics.median(every), 2),
        # CPU time does not stretch when other processes share the cores, wall time does.
        "one_thread_cpu_ms": round(1000 * statistics.mean(cpu), 2),
    }


def read_questions(paths: Sequence[Path] = QUESTION_FILES) -> list[str]:
    questions = []
    for path in paths:
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                questions.append(json.loads(line)["question"])
    return questions


class Questions:
    """The questions in a fixed cycle; ``unique`` makes each one new to the query cache."""

    def __init__(self, texts: Sequence[str], unique: bool) -> None:
        self.texts = list(texts)
        self.unique = unique
        self._counter = itertools.count()

    def next(self) -> str:
        i = next(self._counter)
        text = self.texts[i % len(self.texts)]
        return f"{text} ({i})" if self.unique else text


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "mean_ms": round(statistics.fmean(ms), 2),
    }


def request_for(endpoint: str, question: str) -> tuple[str, dict[str, Any]]:
    if endpoint == "search":
        return "/api/search", {"query": question, "top_k": TOP_K}
    return "/api/ask", {"question": question, "mode": "extractive"}


# --- in-process next to sequential HTTP ---------------------------------------------------


def local_calls(index_dir: Path) -> dict[str, Callable[[str], object]]:
    """The calls the two routes make, in this process (builds the index if it is missing)."""
    from rag.answer import Answerer
    from rag.engine import load_engine
    from rag.settings import Settings

    engine = load_engine(Settings(index_dir=index_dir, llm_base_url=None), progress=True)
    answerer = Answerer(engine, None)
    return {
        "search": lambda q: engine.retriever.retrieve(q, TOP_K),
        "ask": lambda q: answerer.answer(q, "extractive"),
    }


def paired(
    url: str, endpoint: str, call: Callable[[str], object], questions: Questions, n: int
) -> dict[str, Any]:
    """In-process call and HTTP request for the same question, alternately, one at a time.

    Alternating puts both under the same machine load at the same moment, so their ratio
    holds even when other work on the machine comes and goes.
    """
    import httpx

    local: list[float] = []
    remote: list[float] = []
    # Repeated questions warm up with one full pass, so both caches hold every question.
    warmup = WARMUP if questions.unique else len(questions.texts)
    with httpx.Client(base_url=url, timeout=120) as client:
        for i in range(n + warmup):
            question = questions.next()
            path, body = request_for(endpoint, question)
            started = time.perf_counter()
            call(question)
            middle = time.perf_counter()
            response = client.post(path, json=body)
            ended = time.perf_counter()
            response.raise_for_status()
            if i >= warmup:
                local.append(middle - started)
                remote.append(ended - middle)
    a, b = summary(local), summary(remote)
    return {
        "endpoint": endpoint,
        "workload": "unique" if questions.unique else "repeated",
        "in_process": a,
        "http": b,
        "http_over_in_process_p50": round(b["p50_ms"] / a["p50_ms"], 2),
    }


# --- the server -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    index_dir: Path,
    port: int,
    workers: int,
    env_extra: dict[str, str],
    log: Path,
    source: Path = ROOT,
) -> subprocess.Popen[bytes]:
    """``python -m rag serve`` with the ``rag`` package of the checkout ``source``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(env_extra)
    env["PYTHONPATH"] = str(source)
    command = [sys.executable, "-m", "rag", "serve", "-q", "--index-dir", str(index_dir)]
    command += ["--port", str(port), "--workers", str(workers)]
    with log.open("wb") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=source)


def wait_ready(url: str, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/readyz", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server was not ready within {timeout}s")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


# --- the load generator -----------------------------------------------------------------------


def server_counts(metrics: str, route: str) -> tuple[float, float, float, float]:
    """(sum, count) of the server's own latency histogram for ``route``, and the queries its
    batcher embedded and the model passes that did it."""
    from prometheus_client.parser import text_string_to_metric_families

    total = count = embedded = passes = 0.0
    for family in text_string_to_metric_families(metrics):
        for s in family.samples:
            if s.name == "rag_query_embeddings_total":
                embedded = s.value
            elif s.name == "rag_query_embedding_passes_total":
                passes = s.value
            elif s.labels.get("route") != route:
                continue
            elif s.name == "rag_http_request_seconds_sum":
                total = s.value
            elif s.name == "rag_http_request_seconds_count":
                count = s.value
    return total, count, embedded, passes


def system_busy() -> float:
    """CPU seconds all cores have spent busy since boot (idle and iowait excluded)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class RawConnection:
    """One keep-alive HTTP/1.1 connection over asyncio streams, for the load generator.

    A request is one write of pre-built bytes and a response one header read plus a
    Content-Length read: the client's CPU per request is a fraction of httpx's, which matters
    when it shares two cores with the server it measures (``--client`` compares them).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawConnection:
        return cls(*await asyncio.open_connection(host, port))

    @staticmethod
    def request(method: str, path: str, body: bytes = b"") -> bytes:
        head = f"{method} {path} HTTP/1.1\r\nhost: bench\r\ncontent-length: {len(body)}\r\n"
        if body:
            head += "content-type: application/json\r\n"
        return head.encode() + b"\r\n" + body

    async def send(self, request: bytes) -> tuple[int, bytes]:
        """(status, body) of one request made by :meth:`request`."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            raise ValueError("a response without content-length")
        return int(head[9:12]), await self.reader.readexactly(length)

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where installed (the server's loop too): less client CPU per request."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def load(
    url: str,
    endpoint: str,
    concurrency: int,
    questions: Questions,
    n: int,
    server_pid: int,
    client: str = "raw",
) -> dict[str, Any]:
    """Send ``n`` requests with ``concurrency`` in flight; latency is per request, client side.

    CPU seconds of the server, of this process (the load generator) and of the whole machine
    are read around the measured requests only (after a warm-up of 2 x concurrency), so the
    cores the server had are visible next to what the client and other processes took.
    """
    import httpx

    host, port = url.rsplit("//", 1)[1].split(":")
    route = request_for(endpoint, "")[0]
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    pool = httpx.AsyncClient(base_url=url, timeout=120, limits=limits)
    opened = client == "raw"
    raw = [await RawConnection.open(host, int(port)) for _ in range(concurrency * opened)]

    async def post(slot: int, question: str) -> str | None:
        path, body = request_for(endpoint, question)
        try:
            if client == "raw":
                data = json.dumps(body, ensure_ascii=False).encode()
                status, _ = await raw[slot].send(RawConnection.request("POST", path, data))
            else:
                status = (await pool.post(path, json=body)).status_code
        except (httpx.HTTPError, OSError, ValueError, asyncio.IncompleteReadError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None if status == 200 else f"HTTP {status}"

    async def worker(slot: int, budget: list[int], record: bool) -> None:
        while budget[0] > 0:
            budget[0] -= 1
            question = questions.next()
            started = time.perf_counter()
            problem = await post(slot, question)
            if record:
                latencies.append(time.perf_counter() - started)
                if problem:
                    errors.append(problem)

    async def metrics() -> tuple[float, float, float, float]:
        # A connection of its own: the load's may have idled past the keep-alive timeout.
        connection = await RawConnection.open(host, int(port))
        try:
            _, text = await connection.send(RawConnection.request("GET", "/metrics"))
        finally:
            await connection.close()
        return server_counts(text.decode(), route)

    try:
        warmup = [2 * concurrency]
        await asyncio.gather(*(worker(i, warmup, False) for i in range(concurrency)))
        before = await metrics()
        cpu0 = (process_cpu(server_pid), process_cpu(os.getpid()), system_busy())
        budget = [n]
        started = time.perf_counter()
        await asyncio.gather(*(worker(i, budget, True) for i in range(concurrency)))
        wall = time.perf_counter() - started
        cpu1 = (process_cpu(server_pid), process_cpu(os.getpid()), system_busy())
        after = await metrics()
    finally:
        await pool.aclose()
        for connection in raw:
            await connection.close()
    served, passes = after[1] - before[1], after[3] - before[3]
    server_cpu, client_cpu, busy = (b - a for a, b in zip(cpu0, cpu1, strict=True))
    cores = os.cpu_count() or 1
    return {
        "endpoint": endpoint,
        "workload": "unique" if questions.unique else "repeated",
        "client": client,
        "concurrency": concurrency,
        "requests": n,
        "errors": len(errors),
        "error_examples": sorted(set(errors))[:3],
        "seconds": round(wall, 3),
        "rps": round(n / wall, 1),
        **summary(latencies),
        # The server's own view (middleware to last byte). With several workers /metrics
        # comes from one of them, so this is a sample of that worker only.
        "server_mean_ms": round(1000 * (after[0] - before[0]) / served, 2) if served else None,
        "server_cpu_ms_per_request": round(1000 * server_cpu / n, 2),
        # Queries per model pass of the server's query batcher (1.0: no batching).
        "mean_batch": round((after[2] - before[2]) / passes, 2) if passes else None,
        "client_cpu_ms_per_request": round(1000 * client_cpu / n, 2),
        # Shares of all the cores over the measured wall time: the server, the load generator,
        # and every other process on the machine (busy time minus those two).
        "server_cpu_share": round(server_cpu / wall / cores, 3),
        "client_cpu_share": round(client_cpu / wall / cores, 3),
        "others_cpu_share": round(max(0.0, busy - server_cpu - client_cpu) / wall / cores, 3),
    }


# --- report -----------------------------------------------------------------------------------


def verdicts(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured value and whether it was met."""
    out = []
    for pair in results["sequential"]:
        limit = TARGETS["http_p50_over_in_process_p50_max"]
        value = pair["http_over_in_process_p50"]
        out.append(
            {
                "target": f"/api/{pair['endpoint']} ({pair['workload']}, {pair['server']}): "
                f"HTTP p50 / in-process p50 <= {limit}",
                "value": value,
                "met": value <= limit,
            }
        )
    bare = results["bare_embedding"]
    for run in medians(results["http"]):
        if run["endpoint"] != "search" or run["workload"] != "unique":
            continue
        slots = run["server"]
        if run["concurrency"] == 1:
            most = TARGETS["unique_search_c1_p50_over_bare_embedding_max"]
            value = round(run["p50_ms"] / bare["one_thread_p50_ms"], 2)
            out.append(
                {
                    "target": f"/api/search (unique, {slots}) c=1 p50 / one-thread "
                    f"embedding p50 <= {most}",
                    "value": value,
                    "met": value <= most,
                }
            )
        if run["concurrency"] == 16 and run.get("server_cpu_ms_per_request"):
            least = TARGETS["unique_search_rps_at_c16_over_limit_min"]
            value = round(bare["one_thread_cpu_ms"] / run["server_cpu_ms_per_request"], 3)
            out.append(
                {
                    "target": f"/api/search (unique, {slots}) c=16 bare embedding CPU / "
                    f"server CPU per request (the share of the limit with the cores free) >= "
                    f"{least}",
                    "value": value,
                    "met": value >= least,
                }
            )
        if run["concurrency"] == 16:
            least = TARGETS["unique_search_rps_at_c16_over_limit_min"]
            value = round(run["rps"] / bare["limit_rps"], 3)
            out.append(
                {
                    "target": f"/api/search (unique, {slots}) c=16 req/s / limit "
                    f"({bare['limit_rps']}) >= {least}",
                    "value": value,
                    "met": value >= least,
                }
            )
    for run in medians(results["http"]):
        if run["endpoint"] != "search" or run["concurrency"] != 16:
            continue
        rps, tail = TARGETS["search_rps_at_c16_min"], TARGETS["search_p99_over_p50_at_c16_max"]
        ratio = round(run["p99_ms"] / run["p50_ms"], 2)
        out += [
            {
                "target": f"/api/search ({run['workload']}, {run['server']}) at c=16: "
                f"req/s >= {rps:.0f}",
                "value": run["rps"],
                "met": run["rps"] >= rps,
            },
            {
                "target": f"/api/search ({run['workload']}, {run['server']}) at c=16: "
                f"p99 / p50 <= {tail}",
                "value": ratio,
                "met": ratio <= tail,
            },
        ]
    return out


MEDIAN_KEYS = (
    "rps",
    "p50_ms",
    "p99_ms",
    "mean_batch",
    "server_cpu_ms_per_request",
    "client_cpu_ms_per_request",
    "server_cpu_share",
    "client_cpu_share",
    "others_cpu_share",
)


def medians(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per server, endpoint, workload, client and concurrency: the median of each
    figure over the rounds (errors summed)."""
    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in runs:
        key = (r["server"], r["endpoint"], r["workload"], r["client"], r["concurrency"])
        groups.setdefault(key, []).append(r)
    out = []
    for rows in groups.values():
        row = {**rows[0], "rounds": len(rows), "errors": sum(r["errors"] for r in rows)}
        for key in MEDIAN_KEYS:
            values = [r[key] for r in rows if r.get(key) is not None]
            row[key] = round(statistics.median(values), 3) if values else None
        out.append(row)
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [
        "Sequential, one in-process call and one HTTP request in turn:",
        "",
        "| endpoint | workload | server | in-process p50 ms | in-process p99 ms | HTTP p50 ms "
        "| HTTP p99 ms | HTTP p50 / in-process p50 |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for pair in results["sequential"]:
        a, b = pair["in_process"], pair["http"]
        lines.append(
            f"| /api/{pair['endpoint']} | {pair['workload']} | {pair['server']} "
            f"| {a['p50_ms']:.1f} "
            f"| {a['p99_ms']:.1f} | {b['p50_ms']:.1f} | {b['p99_ms']:.1f} "
            f"| {pair['http_over_in_process_p50']:.2f} |"
        )
    lines += [
        "",
        "Concurrent HTTP load (medians over the rounds; shares are of all the cores):",
        "",
        "| endpoint | workload | server | client | c | rounds | req/s | p50 ms | p99 ms "
        "| p99 / p50 | mean batch | server CPU ms / req | client CPU ms / req | server share "
        "| client share | others' share | errors |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in medians(results["http"]):
        lines.append(
            f"| /api/{r['endpoint']} | {r['workload']} | {r['server']} | {r['client']} "
            f"| {r['concurrency']} | {r['rounds']} | {r['rps']:.1f} | {r['p50_ms']:.1f} "
            f"| {r['p99_ms']:.1f} | {r['p99_ms'] / r['p50_ms']:.2f} | {r['mean_batch'] or '-'} "
            f"| {r['server_cpu_ms_per_request']:.2f} | {r['client_cpu_ms_per_request']:.2f} "
            f"| {r['server_cpu_share']:.2f} | {r['client_cpu_share']:.3f} "
            f"| {r['others_cpu_share']:.2f} | {r['errors']} |"
        )
    bare = results["bare_embedding"]
    lines += [
        "",
        f"Bare single-query embedding p50: one thread {bare['one_thread_p50_ms']} ms, all "
        f"threads {bare['all_threads_p50_ms']} ms; limit {bare['limit_rps']} req/s. One-thread "
        f"CPU {bare['one_thread_cpu_ms']} ms per query: limit {bare['cpu_limit_rps']} req/s "
        "with the cores free.",
    ]
    lines += ["", "Targets:", ""]
    for v in results["verdicts"]:
        lines.append(f"- {v['target']}: {v['value']} ({'met' if v['met'] else 'missed'})")
    return "\n".join(lines)


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=300, help="per endpoint and concurrency")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 16, 32])
    parser.add_argument(
        "--sequential", type=int, default=150, help="in-process + HTTP pairs per endpoint"
    )
    parser.add_argument("--workload", choices=WORKLOADS, nargs="+", default=list(WORKLOADS))
    parser.add_argument("--endpoints", choices=ENDPOINTS, nargs="+", default=list(ENDPOINTS))
    parser.add_argument(
        "--embed-slots", type=int, nargs="+", default=[0], help="RAG_EMBED_SLOTS, one server each"
    )
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="one more server from this checkout's code with its defaults (e.g. /work/main)",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="every server, every load, this many times"
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        nargs="+",
        default=["raw"],
        help="load generator: raw asyncio streams (cheap) or httpx; several run in turn",
    )
    parser.add_argument("--bare", type=int, default=60, help="bare embeddings timed, per side")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument(
        "--omp-threads", type=int, help="OMP_NUM_THREADS for the server and this process"
    )
    parser.add_argument("--index-dir", type=Path, help="reuse this index (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--note", default="", help="free text stored with the results")
    args = parser.parse_args(argv)
    env_extra = {"RAG_LOG_LEVEL": "WARNING"}
    if args.omp_threads:
        # Read by the OpenMP runtime when the embedder's library loads: set it before that.
        os.environ["OMP_NUM_THREADS"] = env_extra["OMP_NUM_THREADS"] = str(args.omp_threads)

    texts = read_questions()
    # One counter per workload for the whole run, so a unique question never comes back.
    workloads = {w: Questions(texts, unique=w == "unique") for w in args.workload}
    results: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine(),
        "config": {
            "requests": args.requests,
            "sequential_pairs": args.sequential,
            "questions": len(texts),
            "workers": args.workers,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "top_k": TOP_K,
            "note": args.note,
        },
    }
    bare_questions = Questions(texts, unique=True)
    bare = [bare_embedding(bare_questions, args.bare)]
    results["sequential"] = []
    results["http"] = []
    with tempfile.TemporaryDirectory(prefix="http-bench-") as tmp:
        index_dir = args.index_dir or Path(tmp) / "index"
        calls = local_calls(index_dir)
        servers = [
            (f"slots {slots}", {"RAG_EMBED_SLOTS": str(slots)}, ROOT) for slots in args.embed_slots
        ]
        if args.compare_with:
            name = f"{args.compare_with.name} defaults"
            servers.append((name, {}, args.compare_with.resolve()))
        for round_ in range(args.rounds):
            # Alternate the order, so a load that comes or goes mid-run hits every server.
            for label, extra, source in servers[:: 1 if round_ % 2 == 0 else -1]:
                port = free_port()
                url = f"http://127.0.0.1:{port}"
                log = Path(tmp) / "server.log"
                env = {**env_extra, **extra}
                server = start_server(index_dir, port, args.workers, env, log, source)
                tag = {"server": label, "round": round_}
                try:
                    wait_ready(url, server)
                    for workload, questions in workloads.items():
                        for endpoint in args.endpoints:
                            if args.sequential and round_ == 0:
                                print(f"{label} {workload} {endpoint}: paired", file=sys.stderr)
                                pair = paired(
                                    url, endpoint, calls[endpoint], questions, args.sequential
                                )
                                results["sequential"].append({**pair, **tag})
                            for concurrency in args.concurrency:
                                for client in args.client:
                                    print(
                                        f"{label} {workload} {endpoint}: c={concurrency} "
                                        f"{client} (round {round_ + 1})",
                                        file=sys.stderr,
                                    )
                                    run = load(
                                        url,
                                        endpoint,
                                        concurrency,
                                        questions,
                                        args.requests,
                                        server.pid,
                                        client,
                                    )
                                    results["http"].append({**run_loop(run), **tag})
                except BaseException:
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    raise
                finally:
                    stop_server(server)
    bare.append(bare_embedding(bare_questions, args.bare))
    one_thread = statistics.median(b["one_thread_p50_ms"] for b in bare)
    cpu_ms = statistics.mean(b["one_thread_cpu_ms"] for b in bare)
    results["bare_embedding"] = {
        "runs": bare,
        "one_thread_cpu_ms": round(cpu_ms, 2),
        "cpu_limit_rps": round((os.cpu_count() or 1) * 1000 / cpu_ms, 1),
        "one_thread_p50_ms": one_thread,
        "all_threads_p50_ms": statistics.median(b["all_threads_p50_ms"] for b in bare),
        "limit_rps": round((os.cpu_count() or 1) * 1000 / one_thread, 1),
    }
    results["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    results["targets"] = TARGETS
    results["verdicts"] = verdicts(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
