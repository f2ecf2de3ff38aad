"""Questions about the articles themselves, answered from their metadata on real indexes: the
right fields of the right documents with exact offsets, and None for questions on content."""

from __future__ import annotations

import pytest

from rag.answering.about import MetaHit, answer_about, choose_documents
from rag.embedding import E5Embedder
from rag.index import SearchIndex, StoredDocument, load_index
from tests.helpers.corpora import indexed

HUXIU = "000_64977604fa216111.txt"
AIGC = "001_bc9c23b05ece68e4.txt"
HUXIU_TITLE = "阿里进入大模型时代,核心是算力和生态"
AIGC_TITLE = "全面布局 AI 大基建,阿里云要建一条通往 AGI 的快捷通道"
AIGC_SITE = "aigcdaily.cn \xa0北京智识时代科技有限公司"


def described(hits: list[MetaHit] | None, index: SearchIndex) -> list[tuple[str, str, str]]:
    """(asked, doc, value) per hit, after checking that value and line are exact slices."""
    assert hits is not None
    for hit in hits:
        text = index.documents[hit.doc].text
        field = hit.field
        assert text[field.start : field.end] == field.value
        assert field.line_start <= field.start < field.end <= field.line_end
        assert "\n" not in text[field.line_start : field.line_end]
    return [(hit.asked, hit.doc, hit.field.value) for hit in hits]


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("2023年那篇文章的作者是谁?", [("author", HUXIU, "齐健")]),
        ("Who wrote the 2024 article?", [("author", AIGC, "赵赛坡")]),
        (
            "两篇文章分别发表于哪一天?",
            [("date", HUXIU, "2023-04-12"), ("date", AIGC, "2024-09-21")],
        ),
        ("第一篇文章来自哪个媒体?", [("source", HUXIU, "虎嗅APP")]),
        ("第一篇文章的编辑是谁?", [("editor", HUXIU, "陈伊凡")]),
        ("2024-09-21发布的文章是谁写的?", [("author", AIGC, "赵赛坡")]),
        ("2024年那篇文章的标题是什么?", [("title", AIGC, AIGC_TITLE)]),
        ("What is the title of the first article?", [("title", HUXIU, HUXIU_TITLE)]),
        (
            "When were the articles published?",
            [("date", HUXIU, "2023-04-12"), ("date", AIGC, "2024-09-21")],
        ),
        ("Which outlet published the first article?", [("source", HUXIU, "虎嗅APP")]),
        (
            "两篇文章的作者和发表日期分别是什么?",
            [
                ("author", HUXIU, "齐健"),
                ("author", AIGC, "赵赛坡"),
                ("date", HUXIU, "2023-04-12"),
                ("date", AIGC, "2024-09-21"),
            ],
        ),
        ("算力和生态那篇文章是谁写的?", [("author", HUXIU, "齐健")]),
        ("Who is the author of the AGI article?", [("author", AIGC, "赵赛坡")]),
        ("第一篇文章的出品方是谁?", [("publisher", HUXIU, "虎嗅科技")]),
        # The 2024 article names no source: the site of its copyright line stands in.
        ("第二篇文章来自哪个媒体?", [("source", AIGC, AIGC_SITE)]),
        # About the articles, but they do not say: an empty answer, not None.
        ("第二篇文章的编辑是谁?", []),
        ("第三篇文章的作者是谁?", []),
        ("2022年的文章是谁写的?", []),
    ],
)  # fmt: skip
def test_questions_about_the_bundled_articles(
    bundled_index: SearchIndex, question: str, expected: list[tuple[str, str, str]]
) -> None:
    assert described(answer_about(question, bundled_index), bundled_index) == expected


def test_hits_cite_the_metadata_lines(bundled_index: SearchIndex) -> None:
    hits = answer_about("两篇文章的作者分别是谁?", bundled_index)
    assert hits is not None
    lines = [
        bundled_index.documents[h.doc].text[h.field.line_start : h.field.line_end] for h in hits
    ]
    assert lines == ["作者|齐健", "作者:赵赛坡发布时间:2024-09-21"]


@pytest.mark.parametrize(
    "question",
    [
        "张勇是谁?",
        "阿里云2022年的市场份额是多少?",
        "文章中提到的作者观点",
        "文章作者认为云业务的关键是什么?",
        "阿里云什么时候发布了Qwen2.5?",
        "第一篇文章中,阿里云峰会是哪一天举办的?",
        "基于Qwen开发的代码领域专属模型CodeFuse-Qwen出自哪家公司?",
        "2023年和2024年的两篇文章中,担任阿里云智能集团CEO的分别是谁?",
        "文章称阿里的AI大模型能力与阿里云成立之初一样,第一步都是服务谁?",
        "第二篇文章有哪些小标题?",
        "Who is the CEO of Alibaba Cloud?",
        "What does the author of the first article think about pricing?",
        "According to the 2024 article, when was Qwen2.5 released?",
        "Who built CodeFuse-Qwen?",
    ],
)
def test_questions_about_content_are_left_alone(bundled_index: SearchIndex, question: str) -> None:
    assert answer_about(question, bundled_index) is None


MADE_UP = {
    "a_wire.txt": (
        "国产大模型加速落地\n\n记者 王小明\n来源:新华社\n2024年05月06日 10:21\n\n"
        "多家企业发布了新的大模型产品。业内人士认为,应用将很快普及。\n"
    ),
    "b_note.md": (
        "---\ntitle: Ulanqab data centre opens\nauthor: Jane Doe\ndate: 2024-06-01\n"
        "source: Example Daily\n---\n\nAlibaba Cloud opened a data centre in Ulanqab.\n"
    ),
}


@pytest.fixture(scope="module")
def made_up_index(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> SearchIndex:
    corpus, index_dir = (tmp_path_factory.mktemp(f"made-up-{n}") for n in ("corpus", "index"))
    return load_index(indexed(corpus, index_dir, MADE_UP, e5))


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("那篇2024年5月的文章的记者是谁?", [("author", "a_wire.txt", "王小明")]),
        ("2024年6月那篇文章的标题是什么?", [("title", "b_note.md", "Ulanqab data centre opens")]),
        ("第一篇报道来源是哪家媒体?", [("source", "a_wire.txt", "新华社")]),
        ("Where does the Ulanqab article come from?", [("source", "b_note.md", "Example Daily")]),
        ("Who wrote the second article?", [("author", "b_note.md", "Jane Doe")]),
        (
            "两篇文章分别是什么时候发布的?",
            [("date", "a_wire.txt", "2024年05月06日"), ("date", "b_note.md", "2024-06-01")],
        ),
    ],
)
def test_questions_about_made_up_articles(
    made_up_index: SearchIndex, question: str, expected: list[tuple[str, str, str]]
) -> None:
    assert described(answer_about(question, made_up_index), made_up_index) == expected


def test_documents_are_chosen_by_date_ordinal_title_or_all() -> None:
    docs = [
        StoredDocument("a.txt", "云计算的新战场", "2023-04-12", "云计算的新战场\n正文。"),
        StoredDocument("b.txt", "开源模型的下一步", "2024-09-21", "开源模型的下一步\n正文。"),
    ]
    chosen = {
        question: [d.id for d in choose_documents(question, docs)]
        for question in (
            "这篇文章是谁写的?",
            "2023年那篇文章是谁写的?",
            "2023年4月12日那篇文章是谁写的?",
            "第二篇文章是谁写的?",
            "最后一篇文章是谁写的?",
            "Who wrote the last article?",
            "开源模型那篇文章是谁写的?",
            "两篇文章分别是谁写的?",
            "2022年那篇文章是谁写的?",
            "2023年的第二篇文章是谁写的?",
        )
    }
    assert list(chosen.values()) == [
        ["a.txt", "b.txt"],
        ["a.txt"],
        ["a.txt"],
        ["b.txt"],
        ["b.txt"],
        ["b.txt"],
        ["b.txt"],
        ["a.txt", "b.txt"],
        [],
        [],
    ]
