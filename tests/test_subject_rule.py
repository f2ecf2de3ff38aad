"""The subject rule of the answer layer (``subject_first`` in selector.py): a question naming a
company, person or product is answered from a passage about it, not from one that gives the
same kind of figure for someone else. Real index, e5 and the shipped models."""

from __future__ import annotations

import pytest

from rag.answer import Answerer
from rag.answering.features import subject_names
from rag.answering.selector import Models, assess, names_missing
from rag.embedding import E5Embedder
from rag.engine import Engine
from rag.index import SearchIndex
from rag.retrieval import Retriever
from rag.settings import Settings
from tests.helpers.corpora import answerer_over


@pytest.fixture(scope="module")
def answerer(bundled_index: SearchIndex, e5: E5Embedder, retriever: Retriever) -> Answerer:
    return Answerer(Engine(Settings.model_construct(), e5, bundled_index, retriever))


def test_subject_names_are_proper_names_not_unknown_words() -> None:
    assert subject_names("2024年上半年OpenAI的资本支出总额是多少?") == ("openai",)
    assert subject_names("比亚迪一季度的营收是多少?") == ("比亚迪",)  # 营收: unknown, not a name
    assert subject_names("这家公司哪款产品最贵?") == ()


def test_a_name_glued_to_a_character_or_shortened_still_counts_as_stated() -> None:
    assert names_missing(["由威廉"], "1066年威廉一世将封建制度带到英格兰。") == []
    assert names_missing(["联合国安理会"], "联合国安全理事会常任理事国") == []
    assert names_missing(["阿里巴巴"], "微软、alphabet、亚马逊和 meta 的资本支出") == ["阿里巴巴"]
    assert names_missing(["刘德华"], "张学友在香港获得金像奖。") == ["刘德华"]


def test_a_figure_about_other_companies_does_not_answer_for_this_one(answerer: Answerer) -> None:
    """The 2024 article gives Microsoft's, Alphabet's, Amazon's and Meta's spending, and names
    OpenAI elsewhere: asked about OpenAI's, the passages are related but do not answer."""
    swapped = answerer.answer("2024年上半年OpenAI的资本支出总额是多少?", "extractive")
    twin = answerer.answer("2024年上半年微软、亚马逊和Meta的资本支出总额是多少?", "extractive")

    assert answerer.engine.index.mentions("OpenAI")  # so not "never mentioned"
    assert swapped.outcome == "related" and swapped.answerable is False, swapped.answer
    assert any("openai" in reason for reason in swapped.unsupported), swapped.unsupported
    assert swapped.citations == [] and swapped.related
    assert twin.outcome == "answered", twin.unsupported
    assert "1060 亿美元" in twin.citations[0].quote


CARS = {
    "cars.txt": "新能源车企公布一季度交付量\n\n2025-04-02 财经日报\n\n"
    "一季度,比亚迪共交付新能源汽车三十万辆,同比增长百分之十三。"
    "特斯拉同期在全球交付了三十八万辆汽车,比上年同期略有下降。"
    "业内人士认为,价格战仍将持续,车企利润承压。\n",
    "phone.txt": "华为在深圳发布新款折叠屏手机\n\n2025-03-20 科技日报\n\n"
    "华为在深圳发布了新款折叠屏手机,起售价九千九百九十九元。"
    "新机采用自研芯片,续航比上一代提升两成。\n",
}


@pytest.fixture(scope="module")
def car_answerer(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> Answerer:
    return answerer_over(tmp_path_factory.mktemp("car-corpus"), CARS, e5)


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("一季度比亚迪交付了多少辆新能源汽车?", "三十万辆"),
        ("一季度特斯拉在全球交付了多少辆汽车?", "三十八万辆"),
    ],
    ids=["byd", "tesla"],
)
def test_each_company_is_answered_from_its_own_sentence_next_to_the_others(
    car_answerer: Answerer, question: str, expected: str
) -> None:
    answer = car_answerer.answer(question, "extractive")

    assert answer.outcome == "answered", answer.unsupported
    assert expected in answer.citations[0].quote, answer.answer


def test_a_company_the_corpus_names_only_elsewhere_is_not_answered_with_anothers_figure(
    car_answerer: Answerer,
) -> None:
    """华为 is in the corpus (a phone launch), but no delivery figure is about it."""
    answer = car_answerer.answer("一季度华为交付了多少辆新能源汽车?", "extractive")

    assert answer.outcome == "related" and answer.answerable is False, answer.answer
    assert any("华为" in reason for reason in answer.unsupported), answer.unsupported


def test_a_question_about_someone_the_top_passage_names_is_never_nothing_relevant(
    answerer: Answerer,
) -> None:
    """With the relevance cut-off raised past every score, only a question naming someone the
    top passage names escapes "nothing relevant"; a question naming nobody does not."""
    strict = Models()
    strict.related_threshold = 1.01
    index = answerer.engine.index

    def outcome(question: str) -> str:
        p = answerer.prepare(question)
        return assess(index, p.info, p.scored, p.pool, strict).outcome

    assert outcome("蒋林泉在阿里云担任什么职务?") != "none"
    assert outcome("企业为什么越来越多地选择开源模型?") == "none"
