"""Short-question latency while long questions keep the server busy, with and without slots.

Starts three ``python -m rag serve`` processes over one index of the bundled articles: one
with the default answer slots (``RAG_ANSWER_SLOTS=0``: the cores, long questions limited to
half of them), one with the same and ``OMP_WAIT_POLICY=PASSIVE`` (the e5 engine's idle OpenMP
threads sleep instead of spinning on cores other requests need), and one with the slots opened
up (``RAG_ANSWER_SLOTS=1000``, ``RAG_LONG_QUESTION_CHARS=100000``: every request works at
once, as before the slots). For each server, rounds alternate: one client asks short questions
alone (unloaded), then the same client asks while ``--long-clients`` clients send
2,000-character questions in a loop (loaded). Servers alternate too, so a busy machine slows
every side alike. Every question is new to the query cache (a request number is appended).

    python bench/load_isolation.py            # writes bench/results/load_isolation.json

Target: short-question p50 under load at most 2x the unloaded p50, with the default slots.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from http_bench import (
    free_port,
    read_questions,
    start_server,
    stop_server,
    summary,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "load_isolation.json"
LONG_CHARS = 2000
TARGET = 2.0
SERVERS = {
    "slots": {},  # the defaults
    # The e5 engine's OpenMP threads sleep instead of spinning while they wait for work.
    "slots_passive_omp": {"OMP_WAIT_POLICY": "PASSIVE"},
    "no_slots": {"RAG_ANSWER_SLOTS": "1000", "RAG_LONG_QUESTION_CHARS": "100000"},
}


def long_question(seed: str, number: int) -> str:
    """A 2,000-character question: article text, then the question (unique per request)."""
    corpus = sorted((ROOT / "rag" / "data" / "corpus").glob("*.txt"))
    text = "".join(p.read_text(encoding="utf-8") for p in corpus).replace("\n", "")
    tail = f"{seed} ({number})"
    start = (number * 97) % (len(text) - LONG_CHARS)
    return text[start : start + LONG_CHARS - len(tail)] + tail


def ask(client: httpx.Client, question: str) -> float:
    started = time.perf_counter()
    response = client.post("/api/ask", json={"question": question, "mode": "extractive"})
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    return elapsed


def short_run(url: str, questions: list[str], counter: itertools.count[int], n: int) -> list[float]:
    with httpx.Client(base_url=url, timeout=300) as client:
        return [
            ask(client, f"{questions[i % len(questions)]} ({i})")
            for i in itertools.islice(counter, n)
        ]


def long_client(
    url: str, counter: itertools.count[int], stop: threading.Event, out: list[float]
) -> None:
    with httpx.Client(base_url=url, timeout=300) as client:
        while not stop.is_set():
            out.append(ask(client, long_question("这篇文章说了什么?", next(counter))))


def loaded_run(
    url: str, questions: list[str], counter: itertools.count[int], n: int, clients: int
) -> tuple[list[float], list[float]]:
    stop = threading.Event()
    longs: list[float] = []
    threads = [
        threading.Thread(target=long_client, args=(url, counter, stop, longs), daemon=True)
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # let the long questions pile up first
    try:
        shorts = short_run(url, questions, counter, n)
    finally:
        stop.set()
        for thread in threads:
            thread.join(300)
    return shorts, longs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--per-round", type=int, default=15, help="short questions per phase")
    parser.add_argument("--long-clients", type=int, default=4)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    questions = read_questions()
    counter = itertools.count()
    results: dict[str, dict[str, list[float]]] = {
        name: {"unloaded": [], "loaded": [], "long": []} for name in SERVERS
    }
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        index_dir = Path(tmp) / "index"
        from rag.engine import load_engine
        from rag.settings import Settings

        load_engine(Settings(index_dir=index_dir, llm_base_url=None), progress=False)
        servers = {}
        try:
            for name, env in SERVERS.items():
                port = free_port()
                process = start_server(index_dir, port, 1, env, Path(tmp) / f"{name}.log")
                servers[name] = (f"http://127.0.0.1:{port}", process)
            for url, process in servers.values():
                wait_ready(url, process)
                short_run(url, questions, counter, 3)  # warm-up
            for round_ in range(args.rounds):
                for name, (url, _) in servers.items():
                    results[name]["unloaded"] += short_run(url, questions, counter, args.per_round)
                    shorts, longs = loaded_run(
                        url, questions, counter, args.per_round, args.long_clients
                    )
                    results[name]["loaded"] += shorts
                    results[name]["long"] += longs
                    print(f"round {round_ + 1} {name}: done", file=sys.stderr)
        finally:
            for _, process in servers.values():
                stop_server(process)

    report: dict[str, Any] = {
        "what": "short /api/ask p50 alone and under long-question load, side by side",
        "command": "python bench/load_isolation.py " + " ".join(sys.argv[1:]),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "long_clients": args.long_clients,
        "long_question_chars": LONG_CHARS,
        "target_loaded_over_unloaded_p50_max": TARGET,
    }
    for name, runs in results.items():
        unloaded, loaded = summary(runs["unloaded"]), summary(runs["loaded"])
        report[name] = {
            "unloaded": unloaded,
            "loaded": loaded,
            "long": summary(runs["long"]) if runs["long"] else None,
            "loaded_over_unloaded_p50": round(loaded["p50_ms"] / unloaded["p50_ms"], 2),
        }
        print(
            f"{name:17s} short p50 alone {unloaded['p50_ms']:7.1f} ms, under load "
            f"{loaded['p50_ms']:7.1f} ms ({report[name]['loaded_over_unloaded_p50']}x); "
            f"long p50 {report[name]['long']['p50_ms'] if runs['long'] else float('nan'):.0f} ms"
        )
    report["meets_target"] = report["slots"]["loaded_over_unloaded_p50"] <= TARGET
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
