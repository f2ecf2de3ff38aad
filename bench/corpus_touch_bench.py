"""Two requests that used to read every article, measured on a large index with this checkout's
code and another's side by side: the first question naming a rare name, and the article list.

Usage:
    git archive <commit> | tar -x -C /tmp/before     # the code to compare with
    python bench/corpus_touch_bench.py --before /tmp/before
    python bench/corpus_touch_bench.py --before /tmp/before --rounds 3 --out /tmp/x.json

Each measurement runs in a fresh process per checkout (``PYTHONPATH`` set to it), the two
alternating, ``--rounds`` times; the report gives medians over rounds and the after/before
ratio. The index defaults to the 1M-chunk synthetic one of bench/scale_1m.py (147k articles,
built with the stand-in embedder of bench/core_bench.py, which the processes use to embed
queries and sentences: microseconds, so the times are the rest of the work). Nothing is
written into the index folder.

- **names**: load the index, warm up as ``rag serve`` does (jieba, the answer-layer models), then
  answer (extractive) a first question naming a person the articles never mention, then a
  second one: each answer's seconds, and ``unknown_names`` alone on a third and on a Latin
  name (Zyxcorp); peak RSS and the anonymous RSS the first answer added.
- **listing**: a real uvicorn server on 127.0.0.1 over the loaded index; ``GET /api/documents``
  (before: every article in one response; after: the default page, plus the last page and a
  page of 1000), its first and median-of-``--repeats`` seconds and bytes; ``GET /`` (the start
  page lists the newest articles); RSS added by the listing.

Results: bench/results/corpus_touch.json.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
INDEX = Path("/work/cache/scale1m/index")
CORPUS = Path("/work/cache/scale1m/corpus")
# Rare (jieba frequency < 500) person names the synthetic articles never mention.
FIRST = "孙小美发布的翻译耳机售价是多少？"
SECOND = "刘子豪在杭州发布了什么产品？"
THIRD = "赵一鸣的公司去年营收多少？"
LATIN = "Zyxcorp的翻译耳机售价是多少？"  # a Latin name: titles are searched case aside
COUNTS = ("status", "articles")  # reported as measured, not as medians or ratios


def rss() -> dict[str, int]:
    """Resident bytes now: anonymous (heap) and in all; peak as the kernel counts it."""
    status = Path("/proc/self/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    kb = {k: int(fields[k].split()[0]) * 1024 for k in ("RssAnon", "VmRSS", "VmHWM")}
    return {"anon": kb["RssAnon"], "total": kb["VmRSS"], "peak": kb["VmHWM"]}


def _engine(index_dir: Path) -> Any:
    sys.path.insert(0, str(REPO / "bench"))
    from core_bench import HashNgramEmbedder

    from rag.engine import engine_over
    from rag.index import load_index
    from rag.settings import Settings

    settings = Settings(
        index_dir=index_dir, corpus_dir=CORPUS, llm_base_url=None, api_keys="", cors_origins=""
    )
    return engine_over(settings, HashNgramEmbedder(), load_index(index_dir))


def child_names(index_dir: Path) -> dict[str, Any]:
    from rag.answer import Answerer
    from rag.answering.selector import unknown_names
    from rag.question import analyse
    from rag.service import warm_up

    engine = _engine(index_dir)
    warm_up()
    answerer = Answerer(engine, None)
    before = rss()
    started = time.perf_counter()
    first = answerer.answer(FIRST, mode="extractive")
    first_seconds = time.perf_counter() - started
    after_first = rss()
    started = time.perf_counter()
    second = answerer.answer(SECOND, mode="extractive")
    second_seconds = time.perf_counter() - started
    started = time.perf_counter()
    unknown = unknown_names(analyse(THIRD), engine.index)
    names_seconds = time.perf_counter() - started
    started = time.perf_counter()
    latin = unknown_names(analyse(LATIN), engine.index)
    latin_seconds = time.perf_counter() - started
    return {
        "first_answer_seconds": first_seconds,
        "second_answer_seconds": second_seconds,
        "unknown_names_seconds_third": names_seconds,
        "unknown_names_seconds_latin": latin_seconds,
        "first_answer_anon_rss_added_mb": (after_first["anon"] - before["anon"]) / 2**20,
        "peak_rss_mb": rss()["peak"] / 2**20,
        "outcomes": [first.outcome, second.outcome],
        "reasons": [first.unsupported, second.unsupported],
        "third_unknown": unknown + latin,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_listing(index_dir: Path, repeats: int) -> dict[str, Any]:
    import httpx
    import uvicorn

    from rag.api.app import create_app

    engine = _engine(index_dir)
    app = create_app(engine.settings, engine=engine)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    with httpx.Client(base_url=url, timeout=600) as client:
        while True:
            try:
                if client.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        before = rss()
        report: dict[str, Any] = {}
        total = len(engine.index.documents)
        for name, path in (
            ("list", "/api/documents"),
            ("list_last_page", f"/api/documents?offset={total - 100}"),
            ("list_1000", "/api/documents?limit=1000"),
            ("start_page", "/"),
        ):
            seconds, size, status = [], 0, 0
            for _ in range(1 + repeats):
                started = time.perf_counter()
                response = client.get(path)
                seconds.append(time.perf_counter() - started)
                size, status = len(response.content), response.status_code
            body = response.json() if path.startswith("/api") and status == 200 else None
            listed = body if isinstance(body, list) else (body or {}).get("documents")
            report[name] = {
                "status": status,
                "first_seconds": seconds[0],
                "median_seconds": statistics.median(seconds[1:]),
                "bytes": size,
                "articles": len(listed) if listed is not None else None,
            }
        report["listing_anon_rss_added_mb"] = (rss()["anon"] - before["anon"]) / 2**20
        report["peak_rss_mb"] = rss()["peak"] / 2**20
    server.should_exit = True
    thread.join(timeout=30)
    return report


def run_child(tree: Path, mode: str, index_dir: Path, repeats: int) -> dict[str, Any]:
    """One measurement in a fresh process running ``tree``'s code."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = [sys.executable, __file__, "--child", mode, "--index", str(index_dir)]
    command += ["--repeats", str(repeats)]
    done = subprocess.run(command, env=env, cwd=tree, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{mode} on {tree} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def medians(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Numbers: the median over rounds; anything else: the first round's."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, dict):
            out[key] = medians([r[key] for r in runs])
        elif isinstance(value, (int, float)) and key not in COUNTS:
            out[key] = round(statistics.median(r[key] for r in runs), 4)
        else:
            out[key] = value
    return out


def ratios(after: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in after.items():
        old = before.get(key)
        if isinstance(value, dict) and isinstance(old, dict):
            inner = ratios(value, old)
            if inner:
                out[key] = inner
        elif (
            isinstance(value, (int, float))
            and isinstance(old, (int, float))
            and old
            and key not in COUNTS
        ):
            out[key] = round(value / old, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="source tree of the code to compare with")
    parser.add_argument("--index", type=Path, default=INDEX)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed requests after the first")
    parser.add_argument("--modes", nargs="+", default=["names", "listing"])
    parser.add_argument("--out", type=Path, default=RESULTS / "corpus_touch.json")
    parser.add_argument("--child", choices=["names", "listing"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "names":
        print(json.dumps(child_names(args.index)))
        return
    if args.child == "listing":
        print(json.dumps(child_listing(args.index, args.repeats)))
        return
    trees = {"after": REPO}
    if args.before is not None:
        trees = {"before": args.before.resolve(), **trees}
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {
        mode: {name: [] for name in trees} for mode in args.modes
    }
    load_before = os.getloadavg()
    for round_ in range(args.rounds):
        order = list(trees) if round_ % 2 == 0 else list(reversed(trees))
        for mode in args.modes:
            for name in order:
                print(f"round {round_ + 1}/{args.rounds}: {mode} on {name}", flush=True)
                runs[mode][name].append(run_child(trees[name], mode, args.index, args.repeats))
    report: dict[str, Any] = {
        "index": str(args.index),
        "trees": {k: str(v) for k, v in trees.items()},
        "rounds": args.rounds,
        "load_average": [list(load_before), list(os.getloadavg())],
        "maxrss_of_this_process_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    for mode in args.modes:
        report[mode] = {name: medians(runs[mode][name]) for name in trees}
        if "before" in trees:
            report[mode]["after_over_before"] = ratios(
                report[mode]["after"], report[mode]["before"]
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
