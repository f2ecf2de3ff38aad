"""Check an LLM's reply against the passages it was given, and fix its citations.

Small models drop, misplace or invent ``[n]`` markers, so the markers are only a hint: each
reply sentence is aligned to the source sentence that best supports it (dense similarity plus
word overlap, the same signals as extractive evidence), and cited there. Then every clause
must state only what that sentence (or another passage sentence, cited too) and the question
state: numbers, names, words, direction and negation (:mod:`rag.facts`). A failing trailing
clause is cut; otherwise the sentence is dropped. Whatever goes is reported with the check it
failed. Markup is removed first (:mod:`rag.markup`), so answers are plain text.

An English sentence citing Chinese sources shares almost no words with them, so its closeness
is the dense similarity plus the share of its numbers the source states, against a lower bar
(:data:`CROSS_SUPPORT_MIN`); its facts are checked by numbers, quotes, direction and negation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from rag.citations import Citation, make_citation
from rag.embedding import Embedder
from rag.evidence import candidate_rows, overlap_score
from rag.facts import (
    CLAUSE_BREAK,
    Support,
    check_clause,
    contradiction,
    coverage,
    negated,
    quantities,
    quantity_supported,
    split_clauses,
    squash,
)
from rag.index import SearchIndex
from rag.markup import strip_markup
from rag.question import detect_language
from rag.retrieval import Hit
from rag.sentences import split_sentences
from rag.tokens import tokenize

MARKERS = re.compile(r"\s*(?:[\[【]\s*\d{1,2}(?:\s*[,,、]\s*\d{1,2})*\s*[\]】])+")
ABSTAIN_PHRASES = (
    "文中未提及",
    "未提及",
    "没有提到",
    "没有提及",
    "无法回答",
    "do not say",
    "does not say",
    "not mentioned",
    "do not mention",
    "does not mention",
)
# support = cosine + SUPPORT_OVERLAP * overlap; a sentence at or above SUPPORT_MIN is supported.
# Calibrated on Qwen2.5-0.5B replies to the dev + held-out questions: supported sentences
# scored 1.07 and up, unsupported ones (non-answers, invented dates) 1.00 and below.
SUPPORT_OVERLAP = 0.4
SUPPORT_MIN = 1.05
# An English sentence against Chinese source sentences: support = cosine + SUPPORT_OVERLAP *
# overlap (Latin terms only) + CROSS_NUMBERS * share of its numbers the source states. Measured
# on tests/helpers/english.py: honest sentences aligned to their source scored 0.83-1.03, the
# one aligned elsewhere 0.80; invented ones without numbers 0.83-0.88 (the fact checks, not this
# bar, are what stops altered facts), so the bar only keeps off sentences that are near nothing.
CROSS_NUMBERS = 0.1
CROSS_SUPPORT_MIN = 0.82
# Keep the model's own choice of passage when its best sentence is this close to the best.
KEEP_MODEL_CHOICE = 0.03
# A clause the chosen sentence does not support may be supported by one of this many next-best
# sentences, which is then cited as well.
ALTERNATIVES = 4
SENTENCE_END = "。.!?！？"
# A sentence cut after its supported clauses must keep at least this share of its text;
# otherwise the stub left ("截至2024年9月中旬。") is dropped with the rest.
MIN_KEPT = 0.5


@dataclass
class Verified:
    """The checked reply: fixed text and citations, what could not be supported, and a score."""

    text: str
    citations: list[Citation]
    unsupported: list[str] = field(default_factory=list)
    faithfulness: float = 0.0
    abstained: bool = False


def split_reply(reply: str) -> list[tuple[str, set[int]]]:
    """Reply sentences with their markers and markup removed, and the passages each one cited."""
    reply = strip_markup(reply)
    pieces: list[tuple[str, set[int]]] = []
    clean_parts: list[str] = []
    marks: list[tuple[int, set[int]]] = []
    pos = 0
    length = 0
    for match in MARKERS.finditer(reply):
        # A line break the marker swallowed still separates what is on either side.
        kept = reply[pos : match.start()] + ("\n" if "\n" in match.group() else "")
        clean_parts.append(kept)
        length += len(kept)
        marks.append((length, {int(n) for n in re.findall(r"\d+", match.group())}))
        pos = match.end()
    clean_parts.append(reply[pos:])
    clean = "".join(clean_parts)
    spans = split_sentences(clean)
    cited: list[set[int]] = [set() for _ in spans]
    for at, numbers in marks:
        # A marker belongs to the last sentence starting before it ("...。[1]" included).
        owner = max((i for i, (start, _) in enumerate(spans) if start < at), default=None)
        if owner is not None:
            cited[owner] |= numbers
    for (start, end), numbers in zip(spans, cited, strict=True):
        text = clean[start:end]
        if any(ch.isalnum() for ch in text):
            pieces.append((text, numbers))
    return pieces


def unsupported_entry(text: str, check: str) -> str:
    """How a dropped sentence or cut clause is reported: its text and the check it failed."""
    return f"{text.strip()} (check failed: {check})"


def is_abstention(reply: str) -> bool:
    return any(p in reply.lower() for p in ABSTAIN_PHRASES) and len(reply) < 80


class Verifier:
    """Checks reply sentences one at a time, so a streamed reply can be verified as it comes.

    ``question`` may be used for names and words (not numbers: its premise may be false).
    """

    def __init__(
        self, hits: list[Hit], index: SearchIndex, embedder: Embedder, question: str = ""
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.question = question
        self.candidates = [row for row, _ in candidate_rows(index, [h.row for h in hits])]
        self.passage_of: dict[int, set[int]] = {}
        for n, hit in enumerate(hits, 1):
            for row in index.chunk_sentences[hit.row]:
                self.passage_of.setdefault(row, set()).add(n)
        self.vectors = index.sentence_vectors[self.candidates]
        self.cited: dict[int, Citation] = {}
        self.supported: list[str] = []
        self.unsupported: list[str] = []
        self.dropped = 0

    def check(self, text: str, cited: set[int]) -> str | None:
        """The sentence (or its supported part) with verified markers, or None when dropped."""
        if not self.candidates:
            self._drop(text, "no passages")
            return None
        cross = is_cross_language(text)
        support = self._support(text, cross)
        best = int(support.argmax())
        if support[best] < (CROSS_SUPPORT_MIN if cross else SUPPORT_MIN):
            self._drop(text, "no passage sentence is close to it")
            return None
        in_cited = [
            i for i, r in enumerate(self.candidates) if self.passage_of.get(r, set()) & cited
        ]
        choice = max(in_cited, key=lambda i: support[i], default=best)
        if support[choice] < support[best] - KEEP_MODEL_CHOICE:
            choice = best  # the model pointed at the wrong passage
        ranked = [int(i) for i in np.argsort(-support)[: ALTERNATIVES + 1] if i != choice]
        rows = [self.candidates[choice]]
        alternatives = [self.candidates[i] for i in ranked]
        clauses = split_clauses(text)
        for n, clause in enumerate(clauses):
            problem = self._problem(clause, [rows[0]], cross)
            if problem and not contradiction(problem):
                # Another sentence may state this clause: one that covers it better.
                primary = coverage(clause, self.index.sentence_text(rows[0]))
                for row in alternatives:
                    if coverage(clause, self.index.sentence_text(row)) <= primary:
                        continue
                    if self._problem(clause, [row], cross) is None:
                        problem = None
                        if row not in rows:
                            rows.append(row)
                        break
            if problem is None:
                continue
            kept = "".join(clauses[:n])
            if len(squash(kept)) < MIN_KEPT * len(squash(text)):
                self._drop(text, problem)  # what would be left does not stand on its own
                return None
            # The clauses before this one stand on their own: keep them, report the rest.
            rest = "".join(clauses[n:])
            self.unsupported.append(unsupported_entry(rest, problem))
            text = _end_sentence(kept, text)
            rows = [r for r in rows if self._uses(r, text, cross)] or rows[:1]
            break
        markers = "".join(f"[{self._cite(row).id}]" for row in rows)
        out = f"{text}{markers}"
        self.supported.append(out)
        return out

    def _support(self, text: str, cross: bool) -> np.ndarray:
        """How closely each candidate sentence states ``text`` (see the thresholds above)."""
        sims = self.vectors @ self.embedder.embed_queries([text])[0]
        terms = tuple(dict.fromkeys(tokenize(text)))
        mine = quantities(text) if cross else []
        scores = []
        for row, sim in zip(self.candidates, sims, strict=True):
            source = self.index.sentence_text(row)
            score = float(sim) + SUPPORT_OVERLAP * overlap_score(self.index, terms, source)
            if mine:
                theirs = quantities(source)
                stated = sum(quantity_supported(q, theirs) for q in mine)
                score += CROSS_NUMBERS * stated / len(mine)
            scores.append(score)
        return np.array(scores)

    def _problem(self, clause: str, rows: list[int], cross: bool = False) -> str | None:
        sources = tuple(self.index.sentence_text(r) for r in rows)
        docs = {self.index.sentences[r].doc for r in rows}
        dates = " ".join(self.index.documents[d].date or "" for d in docs)
        titles = "".join(self.index.documents[d].title for d in docs)
        support = Support(sources, self.question + titles, tuple(quantities(dates)))
        if not cross:
            return check_clause(clause, support)
        # An English clause may gloss names in Chinese ("Tongyi Qianwen (通义千问)"): each gloss
        # must be in the sources or the question as written; the rest is checked as English.
        for gloss in _CJK_RUN.findall(clause):
            if squash(gloss) not in support.text:
                return f"name {gloss!r} not in the source"
        english = re.sub(r"\s*[(（]\s*[)）]", "", _CJK_RUN.sub("", clause))
        problem = check_clause(english, support)
        if problem is not None:
            return problem
        # The word-level negation check pairs clauses by shared words, which two languages do
        # not have: a negated English clause needs a negated source clause, and one without
        # negation must not cite a sentence that only denies (没有透露 = "did not disclose").
        negations = [negated(c) for c in support.source_clauses]
        if negated(english) and not any(negations):
            return "negation added"
        if not negated(english) and negations and all(negations):
            return "negation dropped"
        return None

    def _uses(self, row: int, text: str, cross: bool = False) -> bool:
        """Whether ``text`` still needs ``row`` (after a cut, an added source may be unused)."""
        return any(self._problem(c, [row], cross) is None for c in split_clauses(text))

    def _cite(self, row: int) -> Citation:
        if row not in self.cited:
            s = self.index.sentences[row]
            self.cited[row] = make_citation(self.index, len(self.cited) + 1, s.doc, s.start, s.end)
        return self.cited[row]

    def _drop(self, text: str, check: str) -> None:
        self.unsupported.append(unsupported_entry(text, check))
        self.dropped += 1

    def result(self, joiner: str) -> Verified:
        total = len(self.supported) + self.dropped
        return Verified(
            joiner.join(self.supported),
            list(self.cited.values()),
            self.unsupported,
            round(len(self.supported) / total, 4) if total else 0.0,
        )


def _end_sentence(kept: str, original: str) -> str:
    """``kept`` clauses closed with the original sentence's final punctuation."""
    kept = kept.rstrip(CLAUSE_BREAK + " \t")
    end = original.rstrip()[-1:]
    return kept + (end if end in SENTENCE_END else "")


def is_cross_language(text: str) -> bool:
    """An English reply sentence (the sources are Chinese), Chinese glosses of names allowed."""
    return detect_language(text) == "en" and bool(re.search(r"[A-Za-z]{2}", text))


_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def joiner_for(text: str) -> str:
    return " " if detect_language(text) == "en" else ""


def verify(
    reply: str, hits: list[Hit], index: SearchIndex, embedder: Embedder, question: str = ""
) -> Verified:
    """Align every reply sentence to its best source sentence among the given passages."""
    if is_abstention(reply):
        return Verified(strip_markup(reply).strip(), [], [], 1.0, abstained=True)
    verifier = Verifier(hits, index, embedder, question)
    for text, cited in split_reply(reply):
        verifier.check(text, cited)
    return verifier.result(joiner_for(reply))
