"""Public QA sets (SQuAD layout) as training and validation data for the answer layer.

CMRC 2018 (Simplified) and DRCD (Traditional, converted with OpenCC ``t2s``) hold real questions
with gold answer spans. They are split once, by article, with a fixed seed, so no paragraph of a
validation article is ever seen in training. Each paragraph can be written out as one article of
a corpus, which is how the service meets them: through the real loader, index and retriever.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

SPLIT_SEED = 20261129
VALIDATION_SHARE = 0.2
# The shared data folder, relative to a checkout (../shared/data next to the repository).
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data"
FILES = ("cmrc2018_trial.json", "DRCD_dev.json", "DRCD_test.json")


@dataclass(frozen=True)
class Paragraph:
    """One context paragraph; ``id`` is unique across files and names its corpus file."""

    id: str
    source: str
    article: str  # the Wikipedia title it belongs to
    text: str


@dataclass(frozen=True)
class QAItem:
    """A question with every gold answer as ``(text, start)`` into its paragraph's text."""

    id: str
    question: str
    paragraph: str
    answers: tuple[tuple[str, int], ...]


@dataclass(frozen=True)
class QASet:
    paragraphs: dict[str, Paragraph]
    items: list[QAItem]


@lru_cache(maxsize=1)
def _t2s() -> object:
    import opencc  # only training and evaluation need it

    return opencc.OpenCC("t2s")


def _simplified(text: str, traditional: bool) -> str:
    """OpenCC maps character for character here, so answer offsets survive conversion."""
    if not traditional:
        return text
    converted: str = _t2s().convert(text)  # type: ignore[attr-defined]
    return converted if len(converted) == len(text) else text


def read_squad(path: Path) -> QASet:
    """Paragraphs and questions of one SQuAD-layout file (DRCD converted to Simplified)."""
    traditional = path.name.lower().startswith("drcd")
    data = json.loads(path.read_text(encoding="utf-8"))["data"]
    stem = path.stem.lower()
    paragraphs: dict[str, Paragraph] = {}
    items: list[QAItem] = []
    for a, article in enumerate(data):
        title = _simplified(str(article.get("title", "")), traditional)
        for p, para in enumerate(article["paragraphs"]):
            pid = f"{stem}-{a:04d}-{p:02d}"
            text = _simplified(para["context"], traditional)
            paragraphs[pid] = Paragraph(pid, path.name, title, text)
            for q in para["qas"]:
                answers = []
                for ans in q.get("answers", []):
                    answer = _simplified(ans["text"], traditional)
                    start = int(ans["answer_start"])
                    if text[start : start + len(answer)] != answer:
                        found = text.find(answer)
                        if found < 0:
                            continue
                        start = found
                    answers.append((answer, start))
                if answers:
                    question = _simplified(q["question"], traditional)
                    items.append(QAItem(f"{stem}-{q['id']}", question, pid, tuple(answers)))
    return QASet(paragraphs, items)


def load_sets(data_dir: Path = DEFAULT_DATA_DIR) -> QASet:
    """All three shared files merged."""
    paragraphs: dict[str, Paragraph] = {}
    items: list[QAItem] = []
    for name in FILES:
        part = read_squad(data_dir / name)
        paragraphs.update(part.paragraphs)
        items.extend(part.items)
    return QASet(paragraphs, items)


def split(qa: QASet, seed: int = SPLIT_SEED) -> tuple[QASet, QASet]:
    """(train, validation) by article: every paragraph of an article falls on one side."""
    articles = sorted({(p.source, p.article) for p in qa.paragraphs.values()})
    rng = random.Random(seed)
    rng.shuffle(articles)
    held = set(articles[: round(len(articles) * VALIDATION_SHARE)])
    sides: tuple[QASet, QASet] = (QASet({}, []), QASet({}, []))
    for pid, para in qa.paragraphs.items():
        sides[(para.source, para.article) in held].paragraphs[pid] = para
    for item in qa.items:
        side = sides[
            (qa.paragraphs[item.paragraph].source, qa.paragraphs[item.paragraph].article) in held
        ]
        side.items.append(item)
    return sides


def sample(qa: QASet, paragraphs: int, seed: int = SPLIT_SEED) -> QASet:
    """A smaller set: ``paragraphs`` paragraphs drawn with a fixed seed, with their questions."""
    ids = sorted(qa.paragraphs)
    random.Random(seed).shuffle(ids)
    keep = set(ids[:paragraphs])
    return QASet(
        {pid: qa.paragraphs[pid] for pid in sorted(keep)},
        [item for item in qa.items if item.paragraph in keep],
    )


def article_text(para: Paragraph) -> tuple[str, int]:
    """The corpus file text for a paragraph (title line, blank line, paragraph) and the
    offset of the paragraph in it, so gold answer offsets can be mapped into the article."""
    head = f"{para.article}\n\n"
    return head + para.text + "\n", len(head)


def write_corpus(qa: QASet, folder: Path) -> dict[str, int]:
    """Write each paragraph as ``<id>.txt``; returns each paragraph's offset in its file."""
    folder.mkdir(parents=True, exist_ok=True)
    offsets = {}
    for pid, para in sorted(qa.paragraphs.items()):
        text, offset = article_text(para)
        target = folder / f"{pid}.txt"
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            target.write_text(text, encoding="utf-8")
        offsets[pid] = offset
    return offsets


REMOVED_SHARE = 0.3


def removed_paragraphs(qa: QASet, share: float = REMOVED_SHARE, seed: int = SPLIT_SEED) -> set[str]:
    """Paragraphs left out of the corpus, so that their questions meet only their neighbours
    (same article, same topic) and have no answer there: realistic "not found" cases."""
    ids = sorted(qa.paragraphs)
    random.Random(seed + 1).shuffle(ids)
    return set(ids[: round(len(ids) * share)])


@dataclass(frozen=True)
class QACorpus:
    """A QA set laid out as a corpus folder with a built index beside it."""

    qa: QASet
    removed: frozenset[str]
    corpus_dir: Path
    index_dir: Path
    offsets: dict[str, int]  # paragraph id -> offset of its text in its article file

    def answerable(self, item: QAItem) -> bool:
        return item.paragraph not in self.removed

    def doc_id(self, item: QAItem) -> str:
        return f"{item.paragraph}.txt"

    def gold_spans(self, item: QAItem) -> list[tuple[str, int, int]]:
        """Gold answers as (doc, start, end) in article-file offsets."""
        off = self.offsets[item.paragraph]
        return [(self.doc_id(item), off + s, off + s + len(t)) for t, s in item.answers]


def lay_out(
    qa: QASet, folder: Path, share: float = REMOVED_SHARE, seed: int = SPLIT_SEED
) -> QACorpus:
    """Write the kept paragraphs of ``qa`` to ``folder/corpus`` (index goes to ``folder/index``)."""
    removed = removed_paragraphs(qa, share, seed)
    kept = QASet({k: v for k, v in qa.paragraphs.items() if k not in removed}, [])
    corpus_dir = folder / "corpus"
    offsets = write_corpus(kept, corpus_dir)
    for pid in removed:  # a paragraph moved out of the corpus must not linger from a past run
        (corpus_dir / f"{pid}.txt").unlink(missing_ok=True)
        offsets[pid] = article_text(qa.paragraphs[pid])[1]
    return QACorpus(qa, frozenset(removed), corpus_dir, folder / "index", offsets)
