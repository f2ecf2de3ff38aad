"""The learned answer layer with the real index, e5 and the shipped models: the sentence that
answers (not the most similar one), the three outcomes, content-free input, and that the
shipped models are the ones the training script produced."""

from __future__ import annotations

import json
from pathlib import Path

import lightgbm
import numpy as np
import pytest

from rag.answer import Answerer
from rag.answering.features import (
    ANSWERABILITY_FEATURES,
    EVIDENCE_FEATURES,
    Candidate,
    form_match,
)
from rag.answering.qa_sets import DEFAULT_DATA_DIR
from rag.answering.rerank import RERANK_FEATURES, reordered, rerank_rows
from rag.answering.selector import (
    CARD,
    MODELS_DIR,
    has_words,
    load_models,
    span_probability,
    span_second,
)
from rag.citations import NOT_ANSWERED_ZH, NOT_FOUND_EN, NOT_FOUND_ZH, check_answer
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.evidence import ScoredSentence
from rag.index import SearchIndex
from rag.question import analyse
from rag.retrieval import Retriever
from rag.sentences import split_sentences
from rag.settings import Settings
from tests.helpers.corpora import answerer_over

ARTICLE_2023 = "000_64977604fa216111.txt"


@pytest.fixture(scope="module")
def answerer(bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever) -> Answerer:
    return Answerer(Engine(Settings.model_construct(), e5, bundled_index, retriever))


def test_who_is_question_cites_the_sentence_that_says_who_he_is(answerer: Answerer) -> None:
    """Not "张勇如是说。", the most similar sentence, but the one giving his titles."""
    answer = answerer.answer("张勇是谁?", "extractive")

    assert answer.outcome == "answered"
    assert "阿里巴巴集团董事会主席兼CEO" in answer.citations[0].quote, answer.answer
    assert check_answer(answer, answerer.engine.index) == []


USER_ARTICLES = {
    "metro.txt": "成都地铁30号线一期今日开通\n\n2025-08-15 成都晚报\n\n"
    "成都地铁30号线一期工程于今天上午正式开通运营。这条线路全长六十二公里,共设九座车站。"
    "沿线居民对开通表示欢迎,早高峰客流平稳。\n",
    "panda.txt": "大熊猫双胞胎幼崽在成都诞生\n\n2025-08-10 成都晚报\n\n"
    "大熊猫“晶晶”在成都大熊猫繁育研究基地产下一对双胞胎幼崽。哥哥体重一百八十二克,妹妹体重一百五十六克。"
    "饲养员说,两只幼崽目前住在育幼箱里,状态良好。\n",
    "factory.txt": "苏州新工厂投产\n\n2024-05-20 苏州日报\n\n"
    "2023年,这家公司宣布在苏州建设新工厂。2024年,新工厂的年产能达到十二万台。\n",
}


@pytest.fixture(scope="module")
def user_answerer(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> Answerer:
    return answerer_over(tmp_path_factory.mktemp("user-corpus"), USER_ARTICLES, e5)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("成都地铁30号线一期全长多少公里?", "全长六十二公里"),
        ("双胞胎幼崽各重多少?", "一百八十二克"),
    ],
    ids=["pronoun-subject", "weights"],
)
def test_sentence_that_states_the_answer_wins_over_the_similar_one(
    user_answerer: Answerer, question: str, expected: str
) -> None:
    answer = user_answerer.answer(question, "extractive")

    assert answer.outcome == "answered", answer.unsupported
    assert expected in answer.citations[0].quote, answer.answer


@pytest.mark.parametrize(
    "question",
    ["？？？", "...", "😀😀😀", "\u200b\u200b\u200b"],
    ids=["qmarks", "dots", "emoji", "zwsp"],
)
def test_content_free_input_is_not_found_with_a_reason(answerer: Answerer, question: str) -> None:
    assert not has_words(question)
    answer = answerer.answer(question, "extractive")

    assert (answer.outcome, answer.answerable, answer.citations) == ("none", False, [])
    assert answer.answer in (NOT_FOUND_ZH, NOT_FOUND_EN)
    assert answer.unsupported == ["the question has no words"]


@pytest.mark.parametrize(
    "question",
    ["腾讯云2022年在中国云市场的份额是多少?", "asdf qwerty zxcv", "How do I cook braised pork?"],
    ids=["absent-name", "nonsense", "english-off-topic"],
)
def test_nothing_relevant_is_not_found(answerer: Answerer, question: str) -> None:
    answer = answerer.answer(question, "extractive")

    assert answer.outcome == "none", (answer.answer, answer.confidence)
    assert answer.answerable is False and answer.citations == [] and answer.related == []
    assert answer.answer in (NOT_FOUND_ZH, NOT_FOUND_EN)


def test_related_but_unanswered_offers_passages_as_sources_not_as_the_answer(
    answerer: Answerer,
) -> None:
    """The server is described, its price is not: related, with the nearest passages."""
    answer = answerer.answer("磐久服务器的售价是多少?", "extractive")

    assert answer.outcome == "related", (answer.answer, answer.confidence)
    assert answer.answer == NOT_ANSWERED_ZH
    assert answer.answerable is False and answer.citations == []
    assert answer.related and any("磐久" in c.quote for c in answer.related)
    index = answerer.engine.index
    for c in answer.related:
        assert index.documents[c.doc].text[c.start : c.end] == c.quote


def test_answered_question_has_a_confidence_above_the_threshold(answerer: Answerer) -> None:
    question = "阿里云在2022年占中国云市场份额的多少?"
    answer = answerer.answer(question, "extractive")

    assert answer.outcome == "answered" and answer.confidence is not None
    assert answer.confidence >= load_models().threshold(analyse(question))
    assert "36%" in answer.citations[0].quote


def test_shipped_models_reproduce_the_training_scripts_validation_scores() -> None:
    """The card's fixed examples were scored by the training run; the shipped files agree."""
    card = json.loads((MODELS_DIR / CARD).read_text(encoding="utf-8"))
    assert tuple(card["evidence_features"]) == EVIDENCE_FEATURES
    assert tuple(card["answerability_features"]) == ANSWERABILITY_FEATURES
    models = load_models()
    assert card["fixed_examples"], "the card should carry examples to check"
    for example in card["fixed_examples"]:
        evidence = models.ranker.predict(np.array([example["evidence_row"]]))
        judged = models.probability(example["answerability_row"])
        relevant = models.relevant(example["answerability_row"])
        assert evidence[0] == pytest.approx(example["evidence_score"], abs=1e-9)
        assert judged == pytest.approx(example["answerability"], abs=1e-9)
        assert relevant == pytest.approx(example["relevance"], abs=1e-9)
    if card.get("rerank_top"):
        assert card["rerank_features"] == list(RERANK_FEATURES)
        assert card["fixed_rerank_examples"], "the card should carry reranker rows to check"
        for example in card["fixed_rerank_examples"]:
            scores = models.reranker.predict(np.array(example["rows"]))
            assert scores == pytest.approx(example["scores"], abs=1e-9)
    for name in ("validation", "bundled"):  # the validation sets
        figures = card["validation"][name]
        assert figures["false_abstention"] <= 0.2, figures
    assert not any(p.suffix in (".pkl", ".pickle") for p in MODELS_DIR.iterdir())


@pytest.mark.slow
@pytest.mark.skipif(not DEFAULT_DATA_DIR.is_dir(), reason=f"{DEFAULT_DATA_DIR} is absent")
def test_training_script_runs_on_a_small_sample(tmp_path: Path) -> None:
    from rag.answering.train_evidence import main

    out = tmp_path / "models"
    args = ["--paragraphs", "20", "--work", str(tmp_path / "work"), "--out", str(out)]
    code = main([*args, "--no-span", "--no-bundled"])

    assert code == 0
    card = json.loads((out / CARD).read_text(encoding="utf-8"))
    assert card["train_paragraphs"] == 20
    assert 0.0 <= card["validation"]["validation"]["sentence_accuracy"] <= 1.0
    ranker = lightgbm.Booster(model_file=str(out / "evidence.txt"))
    assert ranker.num_feature() == len(EVIDENCE_FEATURES)


@pytest.mark.parametrize(
    ("question", "sentence", "expected"),
    [
        ("该公司在全球排名第几?", "该公司的市场份额为36%,排名全球第三。", 1.0),
        ("该公司在全球排名第几?", "该公司的市场份额为36%。", 0.0),
        ("这款手机最低多少钱?", "这款手机的续航提升了85%。", 0.0),
        ("这款手机最低多少钱?", "这款手机起售价为3999元。", 1.0),
        ("2022年的份额占多少?", "2022年阿里云份额为36%。", 1.0),
        # A year the question already names is not an answer to "哪一年".
        ("2022年的大会是哪一年开始举办的?", "2022年的大会在杭州举办。", 0.0),
        ("这家公司是谁创办的?", "这家公司由张三创办。", 0.5),  # no particular form asked
    ],
)
def test_form_match_reads_the_form_the_wording_asks_for(
    question: str, sentence: str, expected: float
) -> None:
    assert form_match(question, sentence) == expected


@pytest.mark.parametrize(
    "question", ["明天会下雨吗?", "北京今天多少度?", "红烧肉怎么做?", "How do I cook braised pork?"]
)
def test_everyday_question_the_articles_never_touch_is_nothing_relevant(
    answerer: Answerer, question: str
) -> None:
    answer = answerer.answer(question, "extractive")

    assert answer.outcome == "none", (answer.answer, answer.confidence)
    assert answer.answerable is False and answer.citations == []


def test_todays_weather_is_never_answered_from_the_articles(answerer: Answerer) -> None:
    """ "今天天气怎么样?" shares 今天 with the articles; the relevance model puts it just on the
    related side (0.487 against a cut-off of 0.484), so it is "related", never answered."""
    answer = answerer.answer("今天天气怎么样?", "extractive")

    assert answer.outcome != "answered", answer.answer
    assert answer.answerable is False and answer.citations == []


def _candidate(index: SearchIndex, words: str, row: int) -> Candidate:
    doc = index.documents[ARTICLE_2023]
    at = doc.text.index(words)
    start, end = next((s, e) for s, e in split_sentences(doc.text) if s <= at < e)
    sentence = ScoredSentence(row, ARTICLE_2023, start, end, doc.text[start:end], 0, 0, 0, 0)
    return Candidate(sentence, tuple(0.0 for _ in EVIDENCE_FEATURES))


def test_runner_up_with_a_far_likelier_answer_span_is_cited_first(
    bundled_index: SearchIndex,
) -> None:
    question = "阿里云在2022年占中国云市场份额的多少?"
    info = analyse(question)
    other = _candidate(bundled_index, "张勇如是说", 0)
    states = _candidate(bundled_index, "阿里云在2022年占中国云市场份额的36%", 1)
    top_span = span_probability(info, bundled_index, other.sentence)

    close = span_second(info, bundled_index, [(other, 1.0), (states, 0.9)], top_span)
    far = span_second(info, bundled_index, [(other, 9.0), (states, 0.9)], top_span)

    assert close[0][0] is states  # the ranker barely preferred the other sentence
    assert far[0][0] is other  # a large ranker lead is not overturned


def test_reranker_rows_read_the_span_model_for_the_top_candidates_only(
    bundled_index: SearchIndex,
) -> None:
    info = analyse("阿里云在2022年占中国云市场份额的多少?")
    other = _candidate(bundled_index, "张勇如是说", 0)
    states = _candidate(bundled_index, "阿里云在2022年占中国云市场份额的36%", 1)
    third = _candidate(bundled_index, "阿里云", 2)
    ranked = [(other, 2.0), (states, 1.0), (third, 0.0)]
    asked: list[Candidate] = []

    def span(c: Candidate) -> float:
        asked.append(c)
        return span_probability(info, bundled_index, c.sentence)

    rows = rerank_rows(info, ranked, 1.0, 2, span)

    assert rows is not None and rows.shape == (2, len(RERANK_FEATURES))
    assert asked == [other, states]  # the third candidate costs no span-model call
    column = {name: rows[:, i] for i, name in enumerate(RERANK_FEATURES)}
    assert column["span"][1] > column["span"][0]  # the sentence stating 36% holds the answer
    assert column["span_rank"].tolist() == [1.0, 0.0]
    assert column["rank"].tolist() == [0.0, 1.0] and column["gap"][0] == 0.0
    assert reordered(ranked, np.array([0.1, 0.9]))[:2] == [ranked[1], ranked[0]]
    assert reordered(ranked, np.array([0.9, 0.1])) == ranked
    # Nothing to reorder: several parts, English, a reason, or no candidate with an answer span.
    assert rerank_rows(analyse("阿里云为什么降价?"), ranked, 1.0, 2, span) is None
    assert rerank_rows(analyse("阿里云的份额是多少?营收是多少?"), ranked, 1.0, 2, span) is None
    assert rerank_rows(analyse("What share did Alibaba Cloud have?"), ranked, 1.0, 2, span) is None
    assert rerank_rows(info, ranked, 1.0, 2, lambda c: 0.0) is None


def test_gold_overlap_is_low_for_a_question_that_paraphrases_its_sentence() -> None:
    from rag.answering.qa_sets import Paragraph, QAItem, QASet
    from rag.answering.train_evidence import gold_overlap

    text = "阿里云成立于2009年。它的总部位于杭州。"
    qa = QASet({"p": Paragraph("p", "test", "阿里云", text)}, [])
    start = text.index("杭州")
    copied = QAItem("a", "它的总部位于哪里?", "p", (("杭州", start),))
    paraphrased = QAItem("b", "该公司的办公地设在哪座城市?", "p", (("杭州", start),))
    unanswerable = QAItem("c", "它有多少员工?", "p", ())

    assert gold_overlap(qa, copied) == pytest.approx(6 / 8)  # 它的总部位于 of 它的总部位于哪里
    assert gold_overlap(qa, paraphrased) < 0.2  # the sentence of the answer, not the paragraph
    assert gold_overlap(qa, unanswerable) == 1.0


def test_shipped_answerability_model_reads_only_what_its_card_allows() -> None:
    """The card's dropped answerability features never appear in the judge's splits."""
    card = json.loads((MODELS_DIR / CARD).read_text(encoding="utf-8"))
    dropped = set(card["variant"]["dropped_answerability_features"])
    importance = load_models().judge.feature_importance("split")
    used = {n for n, k in zip(ANSWERABILITY_FEATURES, importance, strict=True) if k > 0}
    assert used, "the judge should split on something"
    assert not used & dropped, used & dropped


def test_a_card_with_dense_mix_mixes_the_second_judge(tmp_path: Path) -> None:
    """``dense_mix`` (variant robust+en+blend+mix) weights a second judge into the probability."""
    import shutil

    from rag.answering.selector import DENSE_ANSWERABILITY_MODEL, Models

    for f in MODELS_DIR.iterdir():
        shutil.copy(f, tmp_path / f.name)
    card = json.loads((MODELS_DIR / CARD).read_text(encoding="utf-8"))
    (tmp_path / CARD).write_text(json.dumps({**card, "dense_mix": 0.25}), encoding="utf-8")
    # The relevance model stands in for the e5-only judge: any other booster shows the mixing.
    shutil.copy(MODELS_DIR / "relevance.txt", tmp_path / DENSE_ANSWERABILITY_MODEL)
    row = card["fixed_examples"][0]["answerability_row"]
    single, mixed = load_models(), Models(tmp_path)

    expected = 0.75 * single.probability(row) + 0.25 * single.relevant(row)
    assert mixed.probability(row) == pytest.approx(expected, abs=1e-12)
    assert mixed.probability(row) != pytest.approx(single.probability(row), abs=1e-6)


@pytest.mark.parametrize(
    ("question", "group"),
    [
        ("阿里云在2022年占中国云市场份额的多少?", "number"),
        ("通义千问是哪一年发布的?", "time"),
        ("这款产品是谁发布的?", "person"),
        ("张勇是谁?", "other"),  # asks for a description of him
        ("通义千问的主要用户是哪类企业?", "other"),
        ("2023年的CEO是谁?2024年的CEO又是谁?", "multi"),
    ],
)
def test_each_kind_of_question_has_the_threshold_chosen_for_its_kind(
    question: str, group: str
) -> None:
    """The card holds one answerability threshold per kind, each chosen on that kind's own
    validation questions; a question of several parts is judged as its own kind."""
    from rag.answering.selector import THRESHOLD_GROUPS, threshold_group

    card = json.loads((MODELS_DIR / CARD).read_text(encoding="utf-8"))
    assert set(card["thresholds"]) == set(THRESHOLD_GROUPS)
    info = analyse(question)
    assert threshold_group(info) == group
    assert load_models().threshold(info) == card["thresholds"][group]


def test_a_question_about_a_year_no_passage_is_about_is_related_not_answered(
    user_answerer: Answerer,
) -> None:
    """A near miss: the article gives the line's length but is dated 2025, not 2019."""
    asked_2019 = user_answerer.answer("2019年成都地铁30号线一期全长多少公里?", "extractive")
    asked_2025 = user_answerer.answer("2025年成都地铁30号线一期全长多少公里?", "extractive")

    assert asked_2019.outcome == "related" and asked_2019.answerable is False
    assert any("2019" in reason for reason in asked_2019.unsupported), asked_2019.unsupported
    assert asked_2025.outcome == "answered"  # the article's date gives the year
    assert "全长六十二公里" in asked_2025.citations[0].quote


def test_a_month_named_with_the_year_must_match_too(user_answerer: Answerer) -> None:
    """The article is dated August 2025 and names no other month."""
    asked_march = user_answerer.answer("2025年3月成都地铁30号线一期全长多少公里?", "extractive")
    asked_august = user_answerer.answer("2025年8月成都地铁30号线一期全长多少公里?", "extractive")

    assert asked_march.outcome == "related", asked_march.answer
    assert any("2025年3月" in reason for reason in asked_march.unsupported)
    assert asked_august.outcome == "answered"
    assert "全长六十二公里" in asked_august.citations[0].quote


def test_a_number_asked_about_a_year_needs_a_sentence_of_that_year_with_a_number(
    user_answerer: Answerer,
) -> None:
    """2023's sentence states no capacity and 2024's capacity is not 2023's: not answered."""
    asked_2023 = user_answerer.answer("2023年苏州新工厂的年产能是多少台?", "extractive")
    asked_2024 = user_answerer.answer("2024年苏州新工厂的年产能是多少台?", "extractive")

    assert asked_2023.outcome == "related", asked_2023.answer
    assert asked_2024.outcome == "answered"
    assert "十二万台" in asked_2024.citations[0].quote


def test_each_part_of_a_two_part_question_is_answered_from_its_own_evidence(
    user_answerer: Answerer,
) -> None:
    answer = user_answerer.answer(
        "成都地铁30号线一期全长多少公里?大熊猫双胞胎幼崽中哥哥体重多少克?", "extractive"
    )

    assert answer.outcome == "answered", answer.unsupported
    quotes = [c.quote for c in answer.citations]
    assert any("全长六十二公里" in q for q in quotes), answer.answer
    assert any("一百八十二克" in q for q in quotes), answer.answer
