"""``rag index --ray``: an index build on 2 Ray workers against 1, side by side in one run.

Usage: python bench/ray_bench.py [--rounds 3] [--paragraphs 40 | --corpus DIR] [--out FILE]

The corpus: ``--paragraphs`` paragraphs of the shared CMRC 2018 set (real Chinese articles, a
fixed sample), or the bundled articles when that data is not there, or ``--corpus DIR``.
One local Ray cluster with 2 CPUs. Each round builds the corpus into a fresh folder (nothing to
reuse) once with 1 worker and once with 2, alternating which goes first. "total" is what the
command pays: starting the workers (each loads e5) plus ``build_index``; "build" is
``build_index`` alone with the workers already up. Medians over the rounds and their ratios.

The machine's cores are shared with other jobs, so every round also records how much of the
cores was free for us: system busy time from /proc/stat minus the CPU time of this process tree
(driver, Ray's daemons, the workers), over the round's wall time. The 1-minute load average at
the start of each round is kept too, and so are the CPU seconds the build cost us and the cores
it got (CPU seconds over wall time): equal CPU seconds for 1 and 2 workers mean the second
worker adds no work, so the speedup is bounded only by the cores free.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

from rag.answering.qa_sets import DEFAULT_DATA_DIR, read_squad, sample, write_corpus
from rag.distributed.cluster import LOCAL, connect, shutdown
from rag.distributed.embedder import RayEmbedder
from rag.index import IndexConfig, build_index
from rag.settings import BUNDLED_CORPUS

CPUS = 2
TICK = os.sysconf("SC_CLK_TCK")


def autogroup() -> bool:
    """Whether the kernel shares CPU between sessions first (``sched_autogroup``): then every
    process of this run, Ray's workers included, shares one session's slice of the cores, and
    a second worker gains nothing while other sessions keep the cores busy."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return False


def system_busy() -> float:
    """CPU seconds all cores have spent busy since boot (idle and iowait excluded)."""
    with open("/proc/stat", encoding="ascii") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / TICK


def tree_cpu() -> dict[int, float]:
    """CPU seconds of this process and every descendant (Ray's daemons and workers), by pid."""
    me = psutil.Process()
    seconds = {}
    for proc in [me, *me.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            seconds[proc.pid] = times.user + times.system
        except psutil.Error:
            continue
    return seconds


def one_build(corpus: Path, workers: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    busy0, ours0 = system_busy(), tree_cpu()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        with RayEmbedder("e5", workers) as embedder:
            ready = time.perf_counter()
            manifest = build_index(
                IndexConfig(corpus, Path(tmp) / "index"),
                embedder,
                embed_batch=embedder.call_batch,
            )
            done = time.perf_counter()
            ours1 = tree_cpu()  # before the workers exit and take their CPU counts along
        busy1 = system_busy()
    wall = done - started
    ours = sum(v - ours0.get(pid, 0.0) for pid, v in ours1.items())
    others = max(0.0, (busy1 - busy0) - ours) / wall  # cores busy with other jobs
    return {
        "workers": workers,
        "total_s": round(wall, 3),
        "build_s": round(done - ready, 3),
        "start_s": round(ready - started, 3),
        "embedded": manifest.embedded,
        "our_cpu_s": round(ours, 2),
        "cores_used": round(ours / wall, 3),
        "free_core_fraction": round(max(0.0, 1 - others / CPUS), 3),
        "load1_at_start": round(load, 2),
    }


def paired(runs: list[dict[str, Any]]) -> list[float]:
    """1-worker over 2-worker total time, per round."""
    by_round: dict[int, dict[int, float]] = {}
    for run in runs:
        by_round.setdefault(run["round"], {})[run["workers"]] = run["total_s"]
    return [times[1] / times[2] for times in by_round.values()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--paragraphs", type=int, default=40)
    parser.add_argument("--corpus", type=Path, help="a folder of articles instead")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ray.json"))
    args = parser.parse_args()
    cmrc = DEFAULT_DATA_DIR / "cmrc2018_trial.json"
    scratch = tempfile.TemporaryDirectory()
    name = str(args.corpus)
    if args.corpus is None and cmrc.is_file():
        args.corpus = Path(scratch.name) / "cmrc"
        write_corpus(sample(read_squad(cmrc), args.paragraphs), args.corpus)
        name = f"CMRC 2018 trial, {args.paragraphs} paragraphs (qa_sets.sample, fixed seed)"
    elif args.corpus is None:
        args.corpus, name = BUNDLED_CORPUS, "the bundled articles"

    connect(LOCAL, num_cpus=CPUS)
    runs: list[dict[str, Any]] = []
    try:
        one_build(args.corpus, 2)  # warm-up: worker processes, page cache
        for round_ in range(args.rounds):
            order = (1, 2) if round_ % 2 == 0 else (2, 1)
            for workers in order:
                run = one_build(args.corpus, workers)
                runs.append({"round": round_, **run})
                print(json.dumps(runs[-1]))
    finally:
        shutdown()
        scratch.cleanup()

    def median(workers: int, key: str) -> float:
        return statistics.median(r[key] for r in runs if r["workers"] == workers)

    summary = {
        workers: {
            key: median(workers, key)
            for key in (
                "total_s",
                "build_s",
                "start_s",
                "our_cpu_s",
                "cores_used",
                "free_core_fraction",
                "load1_at_start",
            )
        }
        for workers in (1, 2)
    }
    result = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sched_autogroup": autogroup(),
        },
        "corpus": name,
        "texts_embedded": runs[0]["embedded"],
        "rounds": args.rounds,
        "median": summary,
        "speedup_total": round(summary[1]["total_s"] / summary[2]["total_s"], 3),
        "speedup_build": round(summary[1]["build_s"] / summary[2]["build_s"], 3),
        # Per round, the two builds ran back to back: their ratio follows the load less.
        "speedup_paired_median": round(statistics.median(paired(runs)), 3),
        "free_core_fraction_median": statistics.median(r["free_core_fraction"] for r in runs),
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    print(f"\n{result['texts_embedded']} texts, median of {args.rounds} rounds")
    print("| workers | total s | build s | start s | CPU s | cores used | free cores | load1 |")
    print("|---|---|---|---|---|---|---|---|")
    for workers, row in summary.items():
        print(
            f"| {workers} | {row['total_s']:.2f} | {row['build_s']:.2f} | {row['start_s']:.2f} "
            f"| {row['our_cpu_s']:.1f} | {row['cores_used']:.2f} "
            f"| {row['free_core_fraction']:.2f} | {row['load1_at_start']:.2f} |"
        )
    print(
        f"speedup 2 vs 1: total {result['speedup_total']:.2f}x, "
        f"build {result['speedup_build']:.2f}x, "
        f"paired per round {result['speedup_paired_median']:.2f}x "
        f"(free core fraction, median over rounds: {result['free_core_fraction_median']:.2f})"
    )


if __name__ == "__main__":
    main()
