"""Checking an LLM reply against real retrieved passages: markers read off each sentence,
wrong markers re-pointed, missing ones added, invented sentences and numbers reported."""

from __future__ import annotations

import pytest

from rag.citations import Answer, check_answer
from rag.embedding import E5Embedder
from rag.index import SearchIndex
from rag.retrieval import Hit, Retriever
from rag.verify import Verifier, is_abstention, split_reply, unsupported_entry, verify

# Two sentences copied from the bundled articles (2023 and 2024) and a question that retrieves
# both of them, in different passages.
SHARE = (
    "根据第三方市调机构Canalys最新发布的2022年中国云市场数据显示,阿里云在2022年占中国云市场"
    "份额的36%,排名第一,虽然业绩稳定增长,但增速持续放缓。"
)
PRICE = (
    "随着模型算力成本的下降,通义千问三款主力模型再次大幅降价,最高降幅 85%,每百万 tokens 的"
    "价格低至三毛钱,这将大幅降低企业、开发者使用大模型的门槛,推动更多模型上的创新。"
)
QUESTION = "阿里云2022年在中国云市场的份额是多少?通义千问降价后每百万tokens多少钱?"
INVENTED = "阿里云在火星上建了数据中心。"
FAR = "no passage sentence is close to it"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("份额是36%[1]。降幅85%[2]。", [("份额是36%。", {1}), ("降幅85%。", {2})]),
        ("份额是36%。[1]降幅85%。[2]", [("份额是36%。", {1}), ("降幅85%。", {2})]),
        ("份额是36%。[1][2]降幅85%。", [("份额是36%。", {1, 2}), ("降幅85%。", set())]),
        ("份额是36%【2】。降幅85%。【1】", [("份额是36%。", {2}), ("降幅85%。", {1})]),
        ("份额是36%[1, 3]。降幅85%[2、3]。", [("份额是36%。", {1, 3}), ("降幅85%。", {2, 3})]),
        ("份额是36%。 [1] 降幅85%", [("份额是36%。", {1}), ("降幅85%", set())]),
        (
            "The share was 36% [1]. Prices fell 85%.[2]",
            [("The share was 36%.", {1}), ("Prices fell 85%.", {2})],
        ),
        ("没有标记的一句。", [("没有标记的一句。", set())]),
    ],
    ids=[
        "before-punctuation",
        "after-punctuation",
        "two-markers",
        "fullwidth-brackets",
        "lists",
        "spaces-and-no-final-punctuation",
        "english",
        "no-markers",
    ],
)
def test_split_reply_gives_each_marker_to_its_sentence(
    reply: str, expected: list[tuple[str, set[int]]]
) -> None:
    assert split_reply(reply) == expected


def test_split_reply_drops_pieces_without_words() -> None:
    assert split_reply("份额是36%。[1] …… 。") == [("份额是36%。", {1})]


@pytest.fixture(scope="module")
def hits(retriever: Retriever) -> list[Hit]:
    return retriever.search(QUESTION, 5).hits


def passage_with(hits: list[Hit], sentence: str) -> int:
    """The 1-based number of the passage holding ``sentence`` (as the LLM prompt numbers them)."""
    return next(n for n, hit in enumerate(hits, 1) if sentence in hit.text)


def test_question_retrieves_both_sentences_in_different_passages(hits: list[Hit]) -> None:
    assert passage_with(hits, SHARE) != passage_with(hits, PRICE)


def test_copied_sentence_with_a_wrong_marker_is_cited_where_it_is(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    right = passage_with(hits, SHARE)
    wrong = passage_with(hits, PRICE)
    verifier = Verifier(hits, bundled_index, e5)

    out = verifier.check(SHARE, {wrong})

    assert out == f"{SHARE}[1]"
    result = verifier.result("")
    [citation] = result.citations
    hit = hits[right - 1]
    assert citation.quote == SHARE
    assert citation.doc == hit.doc and hit.start <= citation.start < citation.end <= hit.end
    assert bundled_index.documents[citation.doc].text[citation.start : citation.end] == SHARE
    assert result.unsupported == [] and result.faithfulness == 1.0


def test_reply_without_markers_gets_them_added(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    result = verify("阿里云在2022年占中国云市场份额的36%,排名第一。", hits, bundled_index, e5)

    assert result.text == "阿里云在2022年占中国云市场份额的36%,排名第一。[1]"
    [citation] = result.citations
    assert citation.quote == SHARE
    assert result.faithfulness == 1.0 and not result.abstained


def test_two_sentences_from_two_passages_get_two_citations(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    reply = "阿里云在2022年占中国云市场份额的36%。通义千问每百万 tokens 的价格低至三毛钱。"

    result = verify(reply, hits, bundled_index, e5)

    assert [c.quote for c in result.citations] == [SHARE, PRICE]
    assert result.text == (
        "阿里云在2022年占中国云市场份额的36%。[1]通义千问每百万 tokens 的价格低至三毛钱。[2]"
    )


def test_invented_sentence_is_unsupported_and_lowers_faithfulness(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    right = passage_with(hits, SHARE)
    reply = f"阿里云在2022年占中国云市场份额的36%。[{right}]{INVENTED}[{right}]"

    result = verify(reply, hits, bundled_index, e5)

    assert result.unsupported == [unsupported_entry(INVENTED, FAR)]
    assert result.faithfulness < 1
    assert result.faithfulness == 0.5
    assert INVENTED not in result.text
    assert [c.quote for c in result.citations] == [SHARE]


def test_only_invented_sentence_gives_no_citation(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    result = verify(INVENTED, hits, bundled_index, e5)

    assert result.citations == [] and result.text == ""
    assert result.unsupported == [unsupported_entry(INVENTED, FAR)]
    assert result.faithfulness == 0.0


@pytest.mark.parametrize(
    "wrong_number",
    ["阿里云在2022年占中国云市场份额的46%。", "通义千问三款主力模型最高降幅 95%。"],
    ids=["share", "price-cut"],
)
def test_sentence_with_a_number_its_source_does_not_state_is_unsupported(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder, wrong_number: str
) -> None:
    reply = f"阿里云在2022年占中国云市场份额的36%,排名第一。{wrong_number}"

    result = verify(reply, hits, bundled_index, e5)

    [reported] = result.unsupported
    assert reported.startswith(f"{wrong_number} (check failed: number '")
    assert result.faithfulness == 0.5
    assert result.text == "阿里云在2022年占中国云市场份额的36%,排名第一。[1]"


@pytest.mark.parametrize(
    "reply",
    ["文中未提及。", "The articles do not say.", "抱歉,文中没有提到这一点。"],
    ids=["zh", "en", "paraphrased"],
)
def test_abstention_reply_is_recognised(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder, reply: str
) -> None:
    assert is_abstention(reply)

    result = verify(reply, hits, bundled_index, e5)

    assert result.abstained is True
    assert result.citations == [] and result.unsupported == []
    assert result.text == reply


def test_long_reply_that_mentions_not_found_is_not_an_abstention() -> None:
    reply = SHARE + "至于其他厂商的份额,文中未提及。"
    assert not is_abstention(reply)


def test_verified_citations_pass_the_answer_check(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    """The verifier's output is what an LLM answer carries: markers and citations agree."""
    reply = f"{PRICE}[1]{SHARE}[1]{INVENTED}"
    result = verify(reply, hits, bundled_index, e5)
    answer = Answer(QUESTION, result.text, result.citations, True, "llm")

    assert check_answer(answer, bundled_index) == []
    assert [c.id for c in result.citations] == [1, 2]


def test_sentence_joining_two_sources_cites_both(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    reply = "阿里云在2022年占中国云市场份额的36%,通义千问每百万tokens的价格低至三毛钱。"

    result = verify(reply, hits, bundled_index, e5, QUESTION)

    assert result.text == f"{reply}[1][2]"
    assert [c.quote for c in result.citations] == [SHARE, PRICE]
    assert result.unsupported == []


def test_same_fact_in_other_words_is_kept(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    reply = "通义千问降价后每百万tokens只要0.3元。"  # 三毛钱 in the source

    result = verify(reply, hits, bundled_index, e5, QUESTION)

    assert result.text == f"{reply}[1]" and result.citations[0].quote == PRICE


def test_contradicting_trailing_clause_is_cut_and_reported(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    reply = "阿里云的份额为36%,排名第一,但增速持续加快。"

    result = verify(reply, hits, bundled_index, e5, QUESTION)

    assert result.text == "阿里云的份额为36%,排名第一。[1]"
    assert result.unsupported == [
        unsupported_entry("但增速持续加快。", "direction (up/down) reversed")
    ]
    assert result.faithfulness == 1.0


def test_cut_that_would_leave_a_stub_drops_the_sentence(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    reply = "截至2022年,阿里云占中国云市场份额的46%,排名第一。"

    result = verify(reply, hits, bundled_index, e5, QUESTION)

    assert result.text == "" and result.citations == []
    assert result.unsupported == [unsupported_entry(reply, "number '46%' not in the source")]


def test_markup_never_reaches_the_text(
    hits: list[Hit], bundled_index: SearchIndex, e5: E5Embedder
) -> None:
    reply = "<b onclick='x()'>阿里云在2022年占中国云市场份额的36%</b>。<script>alert(1)</script>"

    result = verify(reply, hits, bundled_index, e5, QUESTION)

    assert result.text == "阿里云在2022年占中国云市场份额的36%。[1]"
