"""The ``rag`` command run as a real subprocess against a small synthetic corpus."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import pytest

from rag.corpus import load_document

Run = Callable[..., subprocess.CompletedProcess]


class Indexed(NamedTuple):
    corpus: Path
    index_dir: Path
    result: subprocess.CompletedProcess


@pytest.fixture(scope="module")
def indexed(sample_corpus: Path, tmp_path_factory: pytest.TempPathFactory, run_rag: Run) -> Indexed:
    """``rag index`` run once for the module; the other commands use its index."""
    index_dir = tmp_path_factory.mktemp("cli") / "index"
    result = run_rag("index", "-q", "--corpus", sample_corpus, "--index-dir", index_dir)
    return Indexed(sample_corpus, index_dir, result)


def where(indexed: Indexed) -> list[str | Path]:
    return ["-q", "--corpus", indexed.corpus, "--index-dir", indexed.index_dir]


def check_hit(hit: dict[str, object], corpus: Path) -> None:
    assert set(hit) == {"doc", "title", "text", "start", "end", "score"}
    text = load_document(corpus / str(hit["doc"])).text  # Markdown's is its rendered text
    assert text[int(hit["start"]) : int(hit["end"])] == hit["text"]  # type: ignore[call-overload]


@pytest.mark.slow
def test_index_prints_a_summary(indexed: Indexed) -> None:
    result = indexed.result

    assert result.returncode == 0, result.stderr
    first, *rest = result.stdout.splitlines()
    assert re.fullmatch(
        rf"indexed 4 documents into \d+ chunks \(\d+ embedded, 0 reused\) in [\d.]+s "
        rf"-> {re.escape(str(indexed.index_dir))}",
        first,
    )
    assert any(line.strip().startswith("server.txt: 阿里云发布新一代磐久服务器") for line in rest)
    assert (indexed.index_dir / "current" / "manifest.json").is_file()
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_search_prints_json_hits(indexed: Indexed, run_rag: Run) -> None:
    result = run_rag("search", "Qwen系列模型的下载量是多少？", "--json", "-k", "3", *where(indexed))

    assert result.returncode == 0, result.stderr
    hits = json.loads(result.stdout)
    assert 1 <= len(hits) <= 3
    for hit in hits:
        check_hit(hit, indexed.corpus)
    assert hits[0]["doc"] == "qwen.txt"
    assert "4000万" in hits[0]["text"]


@pytest.mark.slow
def test_search_batch_prints_a_line_per_good_question_and_reports_bad_lines(
    indexed: Indexed, run_rag: Run, tmp_path: Path
) -> None:
    batch = tmp_path / "questions.jsonl"
    lines = [
        json.dumps({"id": "a", "question": "服务器的网络带宽有多高？"}, ensure_ascii=False),
        "{not json",
        "",
        json.dumps({"id": 7, "question": "How many servers can the Ulanqab data centre hold?"}),
        json.dumps({"id": "blank", "question": "  "}),
    ]
    batch.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_rag("search", "--batch", batch, "--json", "-k", "2", *where(indexed))

    assert result.returncode != 0
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["id"] for row in rows] == ["a", "7"]
    for row in rows:
        assert set(row) == {"id", "hits"}
        assert 1 <= len(row["hits"]) <= 2
        for hit in row["hits"]:
            check_hit(hit, indexed.corpus)
    assert rows[0]["hits"][0]["doc"] == "server.txt"
    assert f"{batch}:2:" in result.stderr
    assert f"{batch}:5:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_eval_prints_the_metric_keys_as_json(
    indexed: Indexed, run_rag: Run, tmp_path: Path
) -> None:
    questions = tmp_path / "eval.jsonl"
    rows = [
        {
            "id": "q1",
            "question": "Qwen系列模型的全球下载量超过了多少？",
            "type": "numeric",
            "evidence": [{"doc": "qwen.txt", "quote": "全球下载量已经超过4000万"}],
        },
        {
            "id": "q2",
            "question": "通义千问主力模型降价后每百万tokens多少钱？",
            "type": "factoid",
            "evidence": [{"doc": "price.txt", "quote": "每百万tokens的价格低至0.3元"}],
        },
        {"id": "q3", "question": "腾讯云的份额是多少？", "type": "unanswerable", "evidence": []},
    ]
    questions.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )

    result = run_rag("eval", questions, "--json", *where(indexed))

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    overall = report["retrieval"]["all"]
    assert set(overall) == {"hit@1", "hit@5", "mrr@10", "all_evidence@5", "n"}
    assert overall["n"] == 2
    assert all(0.0 <= overall[k] <= 1.0 for k in overall if k != "n")
    assert set(report["retrieval"]) == {"all", "numeric", "factoid"}


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("missing corpus folder", "corpus folder not found"),
        ("folder with no articles", "no usable .txt/.md article"),
        ("invalid RAG_EMBEDDER", "RAG_EMBEDDER"),
        pytest.param("unreadable eval file", "cannot read", marks=pytest.mark.slow),
        ("search without a question", "give either a QUESTION or --batch"),
        ("undecodable question", "the question is not valid Unicode: character 1 is U+DCFF"),
    ],
)
def test_bad_input_exits_non_zero_with_a_one_line_error(
    case: str,
    message: str,
    sample_corpus: Path,
    run_rag: Run,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    env: dict[str, str] = {}
    index = ["-q", "--index-dir", tmp_path / "index"]
    if case == "missing corpus folder":
        args = ["index", "--corpus", tmp_path / "no-such-folder", *index]
    elif case == "folder with no articles":
        (tmp_path / "empty").mkdir()
        (tmp_path / "empty" / "notes.csv").write_text("a,b\n", encoding="utf-8")
        args = ["index", "--corpus", tmp_path / "empty", *index]
    elif case == "invalid RAG_EMBEDDER":
        env["RAG_EMBEDDER"] = "word2vec"
        args = ["index", "--corpus", sample_corpus, *index]
    elif case == "unreadable eval file":
        (tmp_path / "eval.jsonl").write_bytes(b'{"id": "\xff\xfe"}\n')
        args = ["eval", tmp_path / "eval.jsonl", *where(request.getfixturevalue("indexed"))]
    elif case == "undecodable question":
        # What the shell passes for $'\xff\xfe阿里云': Python keeps the bytes as surrogates.
        question = os.fsdecode(b"\xff\xfe" + "阿里云".encode())
        args = ["ask", question, "--corpus", sample_corpus, *index]
    else:
        args = ["search", "--corpus", sample_corpus, *index]

    result = run_rag(*args, env=env)

    assert result.returncode != 0
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("rag: error: ")
    assert message in lines[0]
