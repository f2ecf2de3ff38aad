"""Short answers with the shipped span model and real jieba, on the bundled articles."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.answering import span
from rag.answering.qa_sets import DEFAULT_DATA_DIR
from rag.answering.train_span import main as train_main
from rag.corpus import Document, load_document
from rag.sentences import split_sentences
from rag.settings import BUNDLED_CORPUS

DOC_2023 = "000_64977604fa216111.txt"  # dated 2023-04-12
DOC_2024 = "001_bc9c23b05ece68e4.txt"  # dated 2024-09-21


@pytest.fixture(scope="module")
def docs() -> dict[str, Document]:
    return {name: load_document(BUNDLED_CORPUS / name) for name in (DOC_2023, DOC_2024)}


def sentence_with(doc: Document, words: str) -> tuple[int, int]:
    """Offsets of the sentence of ``doc`` holding ``words``."""
    at = doc.text.index(words)
    return next((s, e) for s, e in split_sentences(doc.text) if s <= at < e)


def test_number_question_gives_the_percentage(docs: dict[str, Document]) -> None:
    doc = docs[DOC_2023]
    start, end = sentence_with(doc, "阿里云在2022年占中国云市场份额的36%")
    short = span.short_answer(
        "阿里云在2022年占中国云市场份额的多少?", doc.text, start, end, doc=doc.id, date=doc.date
    )
    assert short is not None
    assert short.text == "36%"
    assert doc.text[short.start : short.end] == short.text
    assert start <= short.start < short.end <= end
    assert short.doc == doc.id
    assert short.resolved is None
    assert 0 < short.score <= 1


def test_who_question_gives_the_title_or_nothing(docs: dict[str, Document]) -> None:
    """The sentence names 张勇 by his titles; a fragment such as "阿里巴巴" would be wrong."""
    doc = docs[DOC_2023]
    start, end = sentence_with(doc, "阿里云智能集团CEO张勇说")
    short = span.short_answer("张勇是谁?", doc.text, start, end, doc=doc.id)
    titles = {
        "阿里巴巴集团董事会主席兼CEO、阿里云智能集团CEO",
        "阿里巴巴集团董事会主席兼CEO",
        "阿里巴巴集团董事会主席",
        "阿里云智能集团CEO",
    }
    assert short is None or short.text in titles


def test_offsets_are_exact_for_every_sentence(docs: dict[str, Document]) -> None:
    for doc in docs.values():
        for start, end in split_sentences(doc.text)[:80]:
            short = span.short_answer("这是多少?", doc.text, start, end, doc=doc.id)
            if short is not None:
                assert doc.text[short.start : short.end] == short.text
                assert start <= short.start < short.end <= end


def test_non_factoid_questions_get_no_short_answer(docs: dict[str, Document]) -> None:
    doc = docs[DOC_2023]
    start, end = sentence_with(doc, "阿里云在2022年占中国云市场份额的36%")
    assert (
        span.short_answer("为什么阿里云的市场份额最高?", doc.text, start, end, doc=doc.id) is None
    )
    assert span.span_score("为什么阿里云的市场份额最高?", doc.text, start, end) == 0.0
    assert not span.is_factoid("阿里云如何降低大模型的训练成本?")
    assert span.is_factoid("通义千问是哪家公司发布的?")
    assert span.is_factoid("How many tokens does the model support?")


@pytest.mark.parametrize(
    ("words", "article_date", "resolved"),
    [
        ("今年6月", "2023-04-12", "2023年6月"),
        ("今年 6 月", "2024-09-21", "2024年6月"),
        ("去年", "2023-04-12", "2022年"),
        ("本月11日", "2023-04-12", "2023年4月11日"),
        ("上月3日", "2023-01-12", "2022年12月3日"),
        ("2022年", "2023-04-12", None),
        ("4月11日", "2023-04-12", None),
        ("今年6月", None, None),
    ],
)
def test_relative_dates_resolve_against_the_article_date(
    words: str, article_date: str | None, resolved: str | None
) -> None:
    assert span.resolve_date(words, article_date) == resolved


def test_when_question_resolves_the_relative_date(docs: dict[str, Document]) -> None:
    doc = docs[DOC_2024]
    start, end = sentence_with(doc, "今年 6 月,阿里云发布开源模型")
    short = span.short_answer(
        "阿里云什么时候发布了开源模型Qwen2?", doc.text, start, end, doc=doc.id, date=doc.date
    )
    assert short is not None
    assert short.text == "今年 6 月"
    assert short.resolved == "2024年6月"


def test_shipped_model_reproduces_the_training_scores() -> None:
    meta = json.loads((span.MODEL_DIR / "span.json").read_text(encoding="utf-8"))
    assert tuple(meta["features"]) == span.FEATURES
    model = span.load_model()
    assert model.threshold == meta["threshold"]
    assert len(meta["fixed_examples"]) >= 4
    for example in meta["fixed_examples"]:
        best = span.best_span(example["question"], example["sentence"], model)
        assert best is not None
        s, e, score = best
        assert example["sentence"][s:e] == example["span"]
        assert score == pytest.approx(example["score"], abs=1e-9)


@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason="needs ../shared/data")
def test_training_script_runs_on_a_sample(tmp_path: Path) -> None:
    train_main(["--sample", "120", "--rounds", "60", "--out", str(tmp_path)])
    meta = json.loads((tmp_path / "span.json").read_text(encoding="utf-8"))
    assert meta["features"] == list(span.FEATURES)
    assert meta["training"]["sample_paragraphs"] == 120
    assert 0 < meta["threshold"] <= 1
    model = span.load_model(tmp_path)
    for example in meta["fixed_examples"]:
        best = span.best_span(example["question"], example["sentence"], model)
        assert best is not None
        assert best[2] == pytest.approx(example["score"], abs=1e-9)


@pytest.mark.parametrize(
    ("question", "sentence", "wanted", "not_wanted"),
    [
        # The wording asks for an amount of money, a rank, a year: another number is wrong.
        ("这款手机最低多少钱?", "这款手机的续航提升了85%,起售价为3999元。", "3999元", "85%"),
        ("该公司在全球排名第几?", "该公司的市场份额为36%,排名全球第三。", "第三", "36%"),
        ("该公司的市场份额是多少?", "该公司的市场份额为36%,排名全球第三。", "36%", "第三"),
        ("电视台在哪一年改名?", "1978年5月1日,经批准,原电视台更名为中央电视台。", "1978年", None),
    ],
)
def test_the_form_asked_for_decides_between_numbers(
    question: str, sentence: str, wanted: str, not_wanted: str | None
) -> None:
    short = span.short_answer(question, sentence, 0, len(sentence), doc="d.txt")
    assert short is not None
    assert short.text == wanted
    assert sentence[short.start : short.end] == wanted


def test_money_question_gets_no_percentage_when_no_price_is_stated() -> None:
    sentence = "这款手机的续航提升了85%,屏幕尺寸为6.1英寸。"
    short = span.short_answer("这款手机最低多少钱?", sentence, 0, len(sentence), doc="d.txt")
    assert short is None or short.text != "85%"


def test_candidates_include_the_year_of_a_date_and_whole_clauses() -> None:
    sentence = "1978年5月1日,经中共中央批准,原北京电视台更名为中央电视台,全称改为中国中央电视台。"
    texts = {sentence[c.start : c.end] for c in span.candidates(sentence)}
    assert {"1978年", "1978年5月", "原北京电视台更名为中央电视台"} <= texts
    assert span.asked_form("该公司最低多少钱?") == ("money", "")
    assert span.asked_form("这条线路全长多少公里?") == ("count", "公里")
    assert span.asked_form("谁创办了这家公司?")[0] == "any"


def test_a_list_question_gets_no_single_item_as_its_answer(docs: dict[str, Document]) -> None:
    """ "哪些" asks for several things: the model's confident single phrase is withheld, while a
    listed answer ("微软、谷歌") would pass."""
    doc = docs[DOC_2023]
    start, end = sentence_with(doc, "微软、谷歌")
    question = "协同办公软件厂商担心哪些海外巨头不计成本地卷起来?"
    best = span.best_span(question, doc.text[start:end])
    assert best is not None and best[2] >= span.load_model().threshold  # it would be shown
    assert "、" not in doc.text[start + best[0] : start + best[1]]
    assert span.short_answer(question, doc.text, start, end, doc=doc.id) is None
    assert span.answers_whole(question, "微软、谷歌")
    assert span.answers_whole("哪些公司参与了投资?", "红杉和a16z")


def test_a_question_of_two_parts_gets_no_single_span(docs: dict[str, Document]) -> None:
    doc = docs[DOC_2023]
    start, end = sentence_with(doc, "阿里云在2022年占中国云市场份额的36%")
    question = "2022年阿里云占中国云市场多大份额?排名第几?"
    best = span.best_span(question, doc.text[start:end])
    assert best is not None and best[2] >= span.load_model().threshold
    assert span.short_answer(question, doc.text, start, end, doc=doc.id) is None
    one_part = "阿里云在2022年占中国云市场份额的多少?"
    assert span.short_answer(one_part, doc.text, start, end, doc=doc.id) is not None
