"""``rag ask`` as a real subprocess on the small synthetic corpus: batch JSONL in and out, bad
lines reported by number, resuming an interrupted run, and one question as JSON."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from rag.citations import Answer, Citation
from rag.corpus import load_document

Run = Callable[..., subprocess.CompletedProcess]

QUESTIONS = {
    "server": "磐久服务器单机支持多少卡GPU?",
    "downloads": "Qwen系列模型的全球下载量超过了多少?",
    "datacenter": "How many servers can the Ulanqab data centre hold?",
}
# Line 2 is cut-off JSON, line 4 has no question, line 5 a lone surrogate (a JSON escape) and
# line 6 bytes that are not UTF-8; all four are reported, the rest answered.
BATCH_LINES = [
    json.dumps({"id": "server", "question": QUESTIONS["server"]}, ensure_ascii=False).encode(),
    b'{"id": "broken", "question": ',
    json.dumps(
        {"id": "downloads", "question": QUESTIONS["downloads"]}, ensure_ascii=False
    ).encode(),
    b'{"id": "no-question"}',
    b'{"id": "surrogate", "question": "\\ud800abc"}',
    b'{"id": "latin-1", "question": "\xff\xfe' + "阿里云".encode() + b'"}',
    json.dumps({"id": "datacenter", "question": QUESTIONS["datacenter"]}).encode(),
]
ANSWER_KEYS = {f.name for f in fields(Answer)}
CITATION_KEYS = {f.name for f in fields(Citation)}


class Batch(NamedTuple):
    batch: Path
    out: Path
    result: subprocess.CompletedProcess


def where(corpus: Path, index_dir: Path) -> list[str | Path]:
    return ["-q", "--corpus", corpus, "--index-dir", index_dir]


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built by the first ``rag ask`` of the module; the others reuse it."""
    return tmp_path_factory.mktemp("batch") / "index"


@pytest.fixture(scope="module")
def first_run(
    sample_corpus: Path, index_dir: Path, tmp_path_factory: pytest.TempPathFactory, run_rag: Run
) -> Batch:
    folder = tmp_path_factory.mktemp("first-run")
    batch, out = folder / "in.jsonl", folder / "out.jsonl"
    batch.write_bytes(b"\n".join(BATCH_LINES) + b"\n")
    result = run_rag("ask", *where(sample_corpus, index_dir), "--batch", batch, "--out", out)
    return Batch(batch, out, result)


@pytest.fixture(scope="module")
def resumed_run(
    first_run: Batch,
    sample_corpus: Path,
    index_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
    run_rag: Run,
) -> Batch:
    """An interrupted run: its output has the first answer and part of the second line."""
    lines = first_run.out.read_text(encoding="utf-8").splitlines(keepends=True)
    out = tmp_path_factory.mktemp("resumed") / "out.jsonl"
    out.write_text(lines[0] + lines[1][: len(lines[1]) // 2], encoding="utf-8")
    result = run_rag(
        "ask", *where(sample_corpus, index_dir), "--batch", first_run.batch, "--out", out
    )
    return Batch(first_run.batch, out, result)


def check_answer_object(row: dict[str, Any], corpus: Path) -> None:
    """The answer object as the API returns it, with quotes that are exact source slices."""
    assert set(row) >= ANSWER_KEYS
    assert row["mode"] == "extractive"
    assert row["answerable"] is True
    assert 1 <= len(row["citations"]) <= 3
    for c in row["citations"]:
        assert set(c) == CITATION_KEYS
        text = load_document(corpus / c["doc"]).text  # Markdown's is its rendered text
        assert text[c["start"] : c["end"]] == c["quote"]
        assert f"{c['quote']}[{c['id']}]" in row["answer"]


def test_batch_answers_every_good_line_once(first_run: Batch, sample_corpus: Path) -> None:
    rows = [json.loads(line) for line in first_run.out.read_text(encoding="utf-8").splitlines()]

    assert [r["id"] for r in rows] == ["server", "downloads", "datacenter"]
    for row in rows:
        assert set(row) == ANSWER_KEYS | {"id"}
        assert row["question"] == QUESTIONS[row["id"]]
        check_answer_object(row, sample_corpus)
    by_id = {r["id"]: r["answer"] for r in rows}
    assert "16卡GPU" in by_id["server"]
    assert "4000万" in by_id["downloads"]
    assert "120,000 servers" in by_id["datacenter"]


def test_batch_reports_bad_lines_by_number_and_exits_non_zero(first_run: Batch) -> None:
    result = first_run.result
    batch = first_run.batch

    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    reported = [line for line in result.stderr.splitlines() if line.startswith(f"{batch}:")]
    numbers = [line.removeprefix(f"{batch}:").split(":")[0] for line in reported]
    assert numbers == ["2", "4", "5", "6"], result.stderr
    assert "needs an 'id' and a non-empty 'question'" in reported[1]
    assert "the question of id surrogate is not valid Unicode: character 1 is U+D800" in reported[2]
    assert "the question of id latin-1 is not valid Unicode: character 1 is U+DCFF" in reported[3]
    assert "Traceback" not in result.stderr
    assert "answered 3, already done 0, bad lines 4, failed 0" in result.stderr


def test_rerun_skips_ids_already_answered(resumed_run: Batch, first_run: Batch) -> None:
    result = resumed_run.result
    first_line = first_run.out.read_text(encoding="utf-8").splitlines()[0]

    assert result.returncode == 1, result.stderr  # the four bad lines are still bad
    assert "answered 2, already done 1, bad lines 4, failed 0" in result.stderr
    lines = resumed_run.out.read_text(encoding="utf-8").splitlines()
    assert lines[0] == first_line
    assert sum('"id": "server"' in line for line in lines) == 1
    assert sum('"id": "datacenter"' in line for line in lines) == 1


def test_rerun_after_a_partial_line_leaves_one_whole_json_line_per_id(
    resumed_run: Batch, sample_corpus: Path
) -> None:
    rows = [json.loads(line) for line in resumed_run.out.read_text(encoding="utf-8").splitlines()]

    assert sorted(r["id"] for r in rows) == sorted(QUESTIONS)
    for row in rows:
        check_answer_object(row, sample_corpus)


def test_ask_json_prints_the_answer_object(
    sample_corpus: Path, index_dir: Path, run_rag: Run
) -> None:
    result = run_rag("ask", *where(sample_corpus, index_dir), "--json", QUESTIONS["server"])

    assert result.returncode == 0, result.stderr
    row = json.loads(result.stdout)
    assert set(row) == ANSWER_KEYS
    assert row["question"] == QUESTIONS["server"]
    assert row["mode"] == "extractive" and row["route"] is None
    assert row["fallback_reason"] is None
    check_answer_object(row, sample_corpus)
    assert "16卡GPU" in row["answer"]
    assert row["timings"]["total"] > 0


def test_ask_needs_a_question_or_a_batch(
    sample_corpus: Path, index_dir: Path, run_rag: Run
) -> None:
    result = run_rag("ask", *where(sample_corpus, index_dir))

    assert result.returncode == 2
    assert result.stderr.strip() == "rag: error: give either a QUESTION or --batch FILE.jsonl"
