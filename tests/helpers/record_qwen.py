"""Record the local Qwen's raw replies for the tamper suite's real-model measurement.

``python -m tests.helpers.record_qwen OUT.json`` asks the Qwen that ``tests/helpers/qwen.py``
serves the dev questions and the tamper suite's questions, with the answer pipeline's prompt
and top 5 passages, and writes ``{"question", "reply"}`` per question. Label each reply
(honest / wrong / unclear / no-sentence) by reading it against the articles before adding it
to ``tests/data/qwen_replies.json``: the labels are the measurement.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from rag.citations import not_found
from rag.embedding import E5Embedder
from rag.index import IndexConfig, build_index, load_index
from rag.llm import OpenAIChat, build_messages
from rag.question import detect_language
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS
from tests.helpers.qwen import LlamaServer, find_qwen_gguf
from tests.helpers.tamper import HONEST

DEV = Path(__file__).resolve().parents[3] / "shared" / "eval" / "dev.jsonl"
CACHE = Path(__file__).resolve().parents[2] / ".cache" / "models"


def main(out: Path) -> None:
    embedder = E5Embedder()
    work = Path(tempfile.mkdtemp(prefix="record-qwen-"))
    build_index(IndexConfig(BUNDLED_CORPUS, work / "index"), embedder)
    index = load_index(work / "index")
    retriever = Retriever(index, embedder)
    questions = [json.loads(line)["question"] for line in DEV.read_text().splitlines() if line]
    questions += [h.question for h in HONEST]
    records = []
    with LlamaServer(find_qwen_gguf(CACHE), work / "llama-server.log") as server:
        chat = OpenAIChat(server.base_url, server.model, timeout=120)
        for question in questions:
            hits = retriever.search(question, 5).hits
            messages = build_messages(question, hits, index, not_found(detect_language(question)))
            records.append({"question": question, "reply": chat.complete(messages)})
            print(records[-1], flush=True)
    out.write_text(json.dumps(records, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
