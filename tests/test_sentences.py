"""Sentence spans: stripped, ordered, disjoint, covering, and cut where a reader would cut."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.sentences import CLOSERS, TERMINATORS, split_sentences

PIECES = [
    *"阿里云大模型算力生态",
    "AI",
    "Qwen2.5",
    "3.2T",
    "0.3元",
    "1,060",
    "e.g.",
    "GPT-4o",
    *"。！？；!?;…,，、:：.",
    "……",
    "?!",
    "...",
    *"“”‘’「」『』《》()（）【】\"'",
    " ",
    "\u3000",
    "\xa0",
    "\t",
    "\n",
    "\r\n",
    "\r",
    "\n\n",
]
mixed_text = st.lists(st.sampled_from(PIECES), max_size=80).map("".join)


def check_spans(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    """The guarantees every caller relies on."""
    previous_end = start
    for s, e in spans:
        assert previous_end <= s < e <= end
        piece = text[s:e]
        assert piece == piece.strip() and piece
        previous_end = e
    inside = {i for s, e in spans for i in range(s, e)}
    for i in range(start, end):
        assert i in inside or text[i].isspace(), f"character {text[i]!r} at {i} was lost"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("他说:“好。”然后", ["他说:“好。”", "然后"]),
        ("真的吗?!是的。", ["真的吗?!", "是的。"]),
        ("等等……然后呢", ["等等……", "然后呢"]),
        ("第一；第二;第三", ["第一；", "第二;", "第三"]),
        ("「走吧！」』他喊", ["「走吧！」』", "他喊"]),
        (
            "带宽 3.2Tbps 和 Qwen2.5 只要 0.3元. 然后",
            ["带宽 3.2Tbps 和 Qwen2.5 只要 0.3元.", "然后"],
        ),
        ("It works. Next one", ["It works.", "Next one"]),
        ("版本 2. 不拆", ["版本 2. 不拆"]),
        ("标题\n\n正文第一句", ["标题", "正文第一句"]),
        ("一行\r\n二行\r三行", ["一行", "二行", "三行"]),
        ("  \n\t ", []),
        ("", []),
    ],
)
def test_examples(text: str, expected: list[str]) -> None:
    assert [text[s:e] for s, e in split_sentences(text)] == expected


def test_range_is_respected() -> None:
    text = "前文。目标一。目标二。后文。"
    start = text.index("目标一")
    end = text.index("后文")
    spans = split_sentences(text, start, end)
    assert [text[s:e] for s, e in spans] == ["目标一。", "目标二。"]


@pytest.mark.parametrize(("start", "end"), [(-1, None), (3, 2), (0, 99)])
def test_bad_range_is_refused(start: int, end: int | None) -> None:
    with pytest.raises(ValueError):
        split_sentences("一二三四五", start, end)


def test_long_sentence_is_cut_at_clause_commas_only_when_asked() -> None:
    text = "这是一个很长的分句," * 10 + "最后。"
    assert len(split_sentences(text)) == 1
    pieces = split_sentences(text, max_chars=20)
    assert len(pieces) > 1
    assert all(e - s <= 20 for s, e in pieces)
    assert all(text[e - 1] in ",。" for s, e in pieces)


def test_thousands_separator_is_not_a_clause_break() -> None:
    text = "总额达到1,060亿美元" * 8
    assert all(text[e - 1] != "," for _, e in split_sentences(text, max_chars=10))


@settings(max_examples=200, deadline=None)
@given(text=mixed_text, data=st.data())
def test_properties_on_mixed_text(text: str, data: st.DataObject) -> None:
    start = data.draw(st.integers(0, len(text)))
    end = data.draw(st.integers(start, len(text)))
    spans = split_sentences(text, start, end)
    check_spans(text, start, end, spans)
    for s, e in spans:
        piece = text[s:e]
        assert "\n" not in piece and "\r" not in piece
        # A terminator may only be followed, inside its sentence, by more of the same ending.
        for i, char in enumerate(piece):
            if char in TERMINATORS:
                assert all(c in TERMINATORS + CLOSERS for c in piece[i + 1 :]), piece


@settings(max_examples=200, deadline=None)
@given(text=st.text(), max_chars=st.none() | st.integers(1, 30))
def test_properties_on_any_unicode(text: str, max_chars: int | None) -> None:
    check_spans(text, 0, len(text), split_sentences(text, max_chars=max_chars))


@settings(max_examples=200, deadline=None)
@given(text=mixed_text, max_chars=st.integers(1, 12))
def test_clause_cutting_keeps_the_guarantees(text: str, max_chars: int) -> None:
    spans = split_sentences(text, max_chars=max_chars)
    check_spans(text, 0, len(text), spans)
    whole = split_sentences(text)
    # Cutting only refines: every cut piece lies inside one uncut sentence.
    for s, e in spans:
        assert any(ws <= s and e <= we for ws, we in whole)
