"""Offline batch answering: JSONL in, JSONL out, resumable and tolerant of bad lines."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from tqdm import tqdm

from rag.citations import Answer
from rag.errors import InvalidInputError, RagError, check_text, unicode_problem


@dataclass
class BatchReport:
    answered: int = 0
    skipped: int = 0  # already in the output file
    errors: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class BatchItem:
    id: str
    question: str


def read_items(path: Path) -> tuple[list[BatchItem], list[str]]:
    """Questions from a JSONL file, and one message per unusable line (with its number).

    Bytes that are not UTF-8 spoil only their own line: they are kept as lone surrogates
    (``surrogateescape``) so the line's id can still be read and named in the message.
    """
    try:
        lines = path.read_bytes().decode("utf-8", "surrogateescape").splitlines()
    except OSError as exc:
        raise InvalidInputError(f"cannot read {path}: {exc}") from exc
    items: list[BatchItem] = []
    errors: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(_item(line))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            errors.append(f"{path}:{number}: {exc}")
        except InvalidInputError as exc:
            errors.append(f"{path}:{number}: {exc.message}")
    return items, errors


def _item(line: str) -> BatchItem:
    """One line as an item; ValueError for a bad shape, InvalidInputError for bad text."""
    try:
        row = json.loads(line)
    except ValueError:
        if unicode_problem(line) is not None:
            raise ValueError("not valid UTF-8 JSON") from None
        raise
    if not isinstance(row, dict):
        raise ValueError("not a JSON object")
    qid, question = row.get("id"), row.get("question")
    if qid is None or not isinstance(question, str) or not question.strip():
        raise ValueError("needs an 'id' and a non-empty 'question'")
    if unicode_problem(str(qid)) is not None:
        raise ValueError("the id is not valid UTF-8")
    return BatchItem(str(qid), check_text(question, f"question of id {qid}"))


def done_ids(path: Path | None) -> set[str]:
    """Ids already answered in an earlier (possibly interrupted) run."""
    if path is None or not path.exists():
        return set()
    ids = set()
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                ids.add(str(json.loads(line)["id"]))
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by a crash: answer that question again
    return ids


def drop_partial_line(path: Path) -> None:
    """Cut a last line that a crash left without its newline, so appends stay valid JSONL."""
    if not path.exists() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    keep = data.rfind(b"\n") + 1  # 0 when the only line is partial
    with path.open("r+b") as fh:
        fh.truncate(keep)


def remaining(items: list[BatchItem], out: Path | None) -> tuple[list[BatchItem], int]:
    """The items still to answer (in input order) and how many ``out`` already holds; a last
    line a crash cut short is dropped first so appends stay valid JSONL."""
    if out is not None:
        drop_partial_line(out)
    seen = done_ids(out)
    todo = [i for i in items if i.id not in seen]
    return todo, len(items) - len(todo)


def answer_line(item_id: str, answer: Answer) -> str:
    """One output line: the item's id and the answer object as the API returns it."""
    return json.dumps({"id": item_id, **answer.as_dict()}, ensure_ascii=False) + "\n"


@contextmanager
def output(out: Path | None) -> Iterator[IO[str]]:
    """Where answer lines go: appended to ``out`` (resumable) or printed to stdout."""
    if out is None:
        yield sys.stdout
        return
    with out.open("a", encoding="utf-8") as sink:
        yield sink


def run_batch(
    items: list[BatchItem],
    ask: Callable[[str], Answer],
    out: Path | None,
    *,
    progress: bool = True,
) -> BatchReport:
    """Answer every item not yet in ``out``, appending one flushed line per answer."""
    report = BatchReport()
    todo, report.skipped = remaining(items, out)
    with output(out) as sink:
        for item in tqdm(todo, desc="answering", unit="q", disable=not progress):
            try:
                answer = ask(item.question)
            except RagError as exc:
                report.errors.append(f"id {item.id}: {exc.message}")
                continue
            sink.write(answer_line(item.id, answer))
            sink.flush()
            report.answered += 1
    return report
