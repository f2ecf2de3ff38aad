"""How long an uploaded article takes to become answerable, and whether questions fail meanwhile.

Starts a real ``rag serve`` (a subprocess on 127.0.0.1) over a temporary copy of the bundled
articles, then:

1. **Upload to answer.** ``--runs`` times: upload one new ~3,000-character article
   (``POST /api/documents``), then poll until ``POST /api/ask`` answers a question about a fact
   only that article holds, citing it. Reports the median and each run's seconds, with the
   build's own figures (seconds, texts embedded and reused). Side by side, in this process,
   each run also times bare e5 ``embed_passages`` on exactly the texts the build embeds (the
   floor any build has; before the upload on even runs, after it on odd ones), so the ratio
   says what the rest of the path costs whatever the machine's load. The article is deleted
   (and the rebuild awaited) before the next run, so every run starts from the same index.
2. **Questions during changes.** ``--threads`` clients ask continuously while ``--changes``
   uploads and deletes happen one after another; counts every non-200 answer, and compares the
   median question latency during the changes with the same clients' median before them.

Writes ``bench/results/upload.json``. Usage: ``python bench/upload_bench.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from rag.chunking import chunk_corpus
from rag.corpus import Corpus, load_document
from rag.embedding import E5Embedder
from rag.index import EMBED_BATCH, passage_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
BUNDLED = ROOT / "rag" / "data" / "corpus"

CITIES = ["杭州", "成都", "西安", "青岛", "长沙", "昆明", "合肥", "厦门", "贵阳", "兰州"]
THINGS = ["数据中心", "研发中心", "物流园区", "算力集群", "实验室", "创新基地", "展示中心"]
VERBS = ["投入使用", "完成扩建", "开始试运行", "通过验收", "正式开放", "签约落地"]
ACTORS = ["工程师", "研究人员", "合作伙伴", "开发者", "运维团队", "客户代表"]


def article(seed: int, target_chars: int = 3000) -> tuple[str, str, str]:
    """A new article of about ``target_chars`` characters, a question only it answers, and the
    answer's words. ``seed`` makes each run's text different (nothing can be reused)."""
    rng = random.Random(seed)
    company = f"星{rng.choice('河海辰云月岳')}{rng.choice(['科技', '智能', '数据', '网络'])}公司"
    product = f"{rng.choice(['灵犀', '天枢', '鸿鹄', '北辰'])}{seed}型翻译耳机"
    price = f"{rng.randint(1000, 9000)}元"
    lines = [
        f"{company}发布{product}",
        f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
        "",
    ]
    lines.append(f"{company}今天在{rng.choice(CITIES)}发布了{product}，售价为{price}。")
    body: list[str] = []
    while sum(len(s) for s in lines) + sum(len(s) for s in body) < target_chars:
        city, thing = rng.choice(CITIES), rng.choice(THINGS)
        body.append(
            f"{company}位于{city}的{thing}在{rng.randint(2019, 2024)}年{rng.choice(VERBS)}，"
            f"约有{rng.randint(20, 900)}名{rng.choice(ACTORS)}参与其中，"
            f"年处理量达到{rng.randint(10, 999)}万件。"
        )
        if len(body) % 4 == 0:
            lines.append("".join(body))
            body = []
    lines.append("".join(body))
    return "\n".join(lines) + "\n", f"{company}发布的{product}售价是多少？", price


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(corpus: Path, index_dir: Path, port: int) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAG_")}
    env.update(HF_HUB_OFFLINE="1", RAG_LOG_LEVEL="WARNING")
    command = [sys.executable, "-m", "rag", "serve", "--port", str(port)]
    command += ["--corpus", str(corpus), "--index-dir", str(index_dir)]
    return subprocess.Popen(command, env=env, cwd=index_dir.parent)


def wait_ready(client: httpx.Client, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def wait_idle(client: httpx.Client, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/api/index").json()
        if status["state"] == "idle" and not status["pending"]:
            return dict(status)
        time.sleep(0.05)
    raise SystemExit("the build did not finish")


def answered(client: httpx.Client, question: str, doc: str, words: str) -> bool:
    reply = client.post("/api/ask", json={"question": question, "mode": "extractive"}).json()
    cited = {c["doc"] for c in reply.get("citations", [])}
    return doc in cited and words in reply.get("answer", "")


def embedded_texts(text: str, folder: Path) -> list[str]:
    """What a build embeds for this article with default settings: its chunk passages."""
    path = folder / "article.txt"
    path.write_text(text, encoding="utf-8")
    doc = load_document(path)
    return [passage_text(c) for c in chunk_corpus(Corpus((doc,), ()))]


def bare_embedding(embedder: E5Embedder, texts: list[str]) -> float:
    started = time.perf_counter()
    for i in range(0, len(texts), EMBED_BATCH):
        embedder.embed_passages(texts[i : i + EMBED_BATCH])
    return time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def upload_to_answer(
    client: httpx.Client, seed: int, embedder: E5Embedder, scratch: Path, pid: int
) -> dict[str, Any]:
    text, question, words = article(seed)
    name = f"bench-{seed}.txt"
    texts = embedded_texts(text, scratch)
    bare = bare_embedding(embedder, texts) if seed % 2 == 0 else None
    cpu_started = cpu_seconds(pid)
    started = time.perf_counter()
    response = client.post("/api/documents", files=[("file", (name, text.encode()))])
    assert response.status_code == 202, response.text
    while True:
        status = client.get("/api/index").json()
        idle = status["state"] == "idle" and not status["pending"]
        if idle and answered(client, question, name, words):
            break
        if time.perf_counter() - started > 120:
            raise SystemExit(f"run {seed}: not answerable after 120 s")
        time.sleep(0.05)
    seconds = time.perf_counter() - started
    cpu = cpu_seconds(pid) - cpu_started
    build = status["last_build"]
    assert client.delete(f"/api/documents/{name}").status_code == 202
    wait_idle(client)
    if bare is None:
        bare = bare_embedding(embedder, texts)
    return {
        "seconds": round(seconds, 3),
        # The server's CPU time over the same span: over 2 cores, what an idle machine needs.
        "server_cpu_seconds": round(cpu, 2),
        "bare_embedding_seconds": round(bare, 3),
        "ratio_to_bare_embedding": round(seconds / bare, 2),
        "texts": len(texts),
        "chars": len(text),
        "build_seconds": build["seconds"],
        "embedded": build["embedded"],
        "reused": build["reused"],
    }


def questions_during_changes(url: str, threads: int, changes: int) -> dict[str, Any]:
    questions = ["阿里云2022年的市场份额是多少?", "张勇希望把训练模型的成本降低到多少?"]
    phase = {"name": "before"}
    results: dict[str, list[tuple[int, float]]] = {"before": [], "during": []}
    stop = threading.Event()
    lock = threading.Lock()

    def ask_forever(n: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    status = c.post("/api/ask", json={"question": questions[n % 2]}).status_code
                except httpx.HTTPError:
                    status = 0
                with lock:
                    results[phase["name"]].append((status, time.perf_counter() - started))

    workers = [threading.Thread(target=ask_forever, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    time.sleep(5)
    phase["name"] = "during"
    with httpx.Client(base_url=url, timeout=60) as c:
        started = time.perf_counter()
        for i in range(changes):
            name = f"load-{i // 2}.txt"
            if i % 2 == 0:
                text = article(1000 + i)[0]
                response = c.post("/api/documents", files=[("file", (name, text.encode()))])
            else:
                response = c.delete(f"/api/documents/{name}")
            assert response.status_code == 202, response.text
            wait_idle(c)
        seconds = time.perf_counter() - started
    stop.set()
    for w in workers:
        w.join()

    def summary(rows: list[tuple[int, float]]) -> dict[str, Any]:
        return {
            "questions": len(rows),
            "failed": sum(1 for s, _ in rows if s != 200),
            "p50_seconds": round(statistics.median(t for _, t in rows), 3) if rows else None,
        }

    before, during = summary(results["before"]), summary(results["during"])
    ratio = None
    if before["p50_seconds"] and during["p50_seconds"]:
        ratio = round(during["p50_seconds"] / before["p50_seconds"], 2)
    return {
        "threads": threads,
        "changes": changes,
        "changes_seconds": round(seconds, 1),
        "before": before,
        "during": during,
        "p50_ratio_during_before": ratio,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=3)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--out", type=Path, default=RESULTS / "upload.json")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="upload-bench-"))
    corpus = work / "corpus"
    shutil.copytree(BUNDLED, corpus)
    port = free_port()
    server = start_server(corpus, work / "index", port)
    url = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=url, timeout=120) as client:
            wait_ready(client)
            embedder = E5Embedder()
            load_before = os.getloadavg()
            runs = [
                upload_to_answer(client, seed, embedder, work, server.pid)
                for seed in range(1, args.runs + 1)
            ]
            load = questions_during_changes(url, args.threads, args.changes)
            load_after = os.getloadavg()
    finally:
        server.terminate()
        server.wait(30)
        shutil.rmtree(work, ignore_errors=True)

    result = {
        "cores": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in load_after],
        "upload_to_answer": {
            "median_seconds": statistics.median(r["seconds"] for r in runs),
            "median_server_cpu_seconds": statistics.median(r["server_cpu_seconds"] for r in runs),
            "median_bare_embedding_seconds": statistics.median(
                r["bare_embedding_seconds"] for r in runs
            ),
            "median_ratio_to_bare_embedding": statistics.median(
                r["ratio_to_bare_embedding"] for r in runs
            ),
            "runs": runs,
        },
        "questions_during_changes": load,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
