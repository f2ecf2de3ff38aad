"""Article metadata: every field of the bundled articles with exact offsets, bylines in other
wordings, front matter, copyright footers, and offsets that hold for any header line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.corpus import Document, load_corpus, load_document
from rag.metadata import MetaField, find_dates, locate_field, read_line
from rag.settings import BUNDLED_CORPUS

HUXIU = "000_64977604fa216111.txt"
AIGC = "001_bc9c23b05ece68e4.txt"

COPYRIGHT = (
    "Copyright ©\xa02024 aigcdaily.cn \xa0北京智识时代科技有限公司"
    " \xa0版权所有\xa0 京ICP备2023006237号-1"
)
# (field, value, the line it sits on) for every field of the bundled articles, in text order.
BUNDLED_META = {
    HUXIU: [
        ("title", "阿里进入大模型时代,核心是算力和生态", "阿里进入大模型时代,核心是算力和生态"),
        ("date", "2023-04-12", "2023-04-12\xa0\xa0虎嗅APP"),
        ("source", "虎嗅APP", "2023-04-12\xa0\xa0虎嗅APP"),
        ("publisher", "虎嗅科技", "出品|虎嗅科技"),
        ("author", "齐健", "作者|齐健"),
        ("editor", "陈伊凡", "编辑|陈伊凡"),
    ],
    AIGC: [
        (
            "title",
            "全面布局 AI 大基建,阿里云要建一条通往 AGI 的快捷通道",
            "全面布局 AI 大基建,阿里云要建一条通往 AGI 的快捷通道",
        ),
        ("author", "赵赛坡", "作者:赵赛坡发布时间:2024-09-21"),
        ("date", "2024-09-21", "作者:赵赛坡发布时间:2024-09-21"),
        ("site", "aigcdaily.cn \xa0北京智识时代科技有限公司", COPYRIGHT),
    ],
}


def check_offsets(text: str, field: MetaField) -> None:
    """The value and its line are exact slices; the line holds the value; nothing is padded."""
    assert text[field.start : field.end] == field.value
    assert field.line_start <= field.start < field.end <= field.line_end
    assert field.value == field.value.strip() != ""
    line = text[field.line_start : field.line_end]
    assert "\n" not in line and "\r" not in line and line == line.strip()


def described(doc: Document) -> list[tuple[str, str, str]]:
    for field in doc.meta:
        check_offsets(doc.text, field)
    return [(f.name, f.value, doc.text[f.line_start : f.line_end]) for f in doc.meta]


@pytest.mark.parametrize("doc_id", [HUXIU, AIGC])
def test_bundled_fields_and_offsets(doc_id: str) -> None:
    doc = next(d for d in load_corpus(BUNDLED_CORPUS).documents if d.id == doc_id)
    assert described(doc) == BUNDLED_META[doc_id]
    # The fields fit the exact places in the file, and title and date agree with them.
    title = doc.meta[0]
    assert (title.start, title.end) == (
        doc.text.index(doc.title),
        doc.text.index(doc.title) + len(doc.title),
    )
    assert doc.date in {f.value for f in doc.meta if f.name == "date"}
    # Metadata lines stay out of the body.
    body = "".join(doc.text[s:e] for s, e in doc.body)
    assert not any(doc.text[f.line_start : f.line_end] in body for f in doc.meta)


WIRE_STORY = (
    "国产大模型加速落地\n"
    "\n"
    "记者 王小明\n"
    "来源:新华社\n"
    "2024年05月06日 10:21\n"
    "\n"
    "多家企业发布了新的大模型产品。业内人士认为,应用将很快普及。\n"
    "\n"
    "数据来源:公司公告\n"
    "\n"
    "分析人士表示,价格仍在下降。\n"
    "（责任编辑:赵六）\n"
)


def test_made_up_wire_story(tmp_path: Path) -> None:
    path = tmp_path / "wire.txt"
    path.write_text(WIRE_STORY, encoding="utf-8")
    doc = load_document(path)
    assert described(doc) == [
        ("title", "国产大模型加速落地", "国产大模型加速落地"),
        ("author", "王小明", "记者 王小明"),
        ("source", "新华社", "来源:新华社"),
        ("date", "2024年05月06日", "2024年05月06日 10:21"),
        ("editor", "赵六", "（责任编辑:赵六）"),
    ]
    assert (doc.title, doc.date) == ("国产大模型加速落地", "2024-05-06")
    # A credit inside the body is a caption, not the article's source.
    assert "公司公告" not in {f.value for f in doc.meta}


def test_front_matter_fields(tmp_path: Path) -> None:
    text = (
        "---\n"
        'title: "Qwen 2.5 发布"\n'
        "author: [张三, '李四']\n"
        "editors:\n"
        "editor:\n"
        "  - 王五\n"
        "date: 2024-09-19 08:00\n"
        "source: 新华社\n"
        "tags: [ai]\n"
        "---\n"
        "\n"
        "# 正文的大标题\n"
        "\n"
        "正文。\n"
    )
    path = tmp_path / "note.md"
    path.write_text(text, encoding="utf-8")
    doc = load_document(path)
    # Front matter is not shown: its values become header lines above the rendered text.
    assert doc.text.startswith(
        "Qwen 2.5 发布\n2024-09-19 · 新华社\n作者：张三、李四\n编辑：王五\n\n正文的大标题\n\n正文。"
    )
    assert described(doc) == [
        ("title", "Qwen 2.5 发布", "Qwen 2.5 发布"),
        ("date", "2024-09-19", "2024-09-19 · 新华社"),
        ("source", "新华社", "2024-09-19 · 新华社"),
        ("author", "张三", "作者：张三、李四"),
        ("author", "李四", "作者：张三、李四"),
        ("editor", "王五", "编辑：王五"),
    ]
    assert (doc.title, doc.date) == ("Qwen 2.5 发布", "2024-09-19")
    assert [doc.text[s:e] for s, e in doc.body] == ["正文的大标题\n\n正文。"]


def test_markdown_heading_title_is_shown_without_the_marks(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text(
        "# 通义千问的故事 #\n\n发布日期：2024年5月6日\n\n正文第一段。\n", encoding="utf-8"
    )
    doc = load_document(path)
    assert described(doc) == [
        ("title", "通义千问的故事", "通义千问的故事"),
        ("date", "2024年5月6日", "发布日期：2024年5月6日"),
    ]


@pytest.mark.parametrize(
    ("line", "fields"),
    [
        ("作者:赵赛坡发布时间:2024-09-21", [("author", "赵赛坡"), ("date", "2024-09-21")]),
        ("作者：张三  编辑：李四", [("author", "张三"), ("editor", "李四")]),
        ("文丨王五 图丨网络", [("author", "王五")]),
        ("（来源：人民日报（海外版））", [("source", "人民日报（海外版）")]),
        ("本报记者｜张三、李四", [("author", "张三、李四")]),
        ("2024/3/5 10:21  新浪科技", [("date", "2024/3/5"), ("source", "新浪科技")]),
        ("新浪科技 2024-03-05", [("source", "新浪科技"), ("date", "2024-03-05")]),
        ("2024-09-21 来源:新华社", [("date", "2024-09-21"), ("source", "新华社")]),
        ("来源:新华社 2024-09-21", [("source", "新华社"), ("date", "2024-09-21")]),
        ("2024-09-21 星期六", [("date", "2024-09-21")]),
        ("时间:上午", []),
        ("头图|阿里云", []),
        ("中文/英文", []),
        ("当前位置:首页|资讯", []),
        ("作者认为,价格还会下降。", []),
    ],
)
def test_header_line_wordings(line: str, fields: list[tuple[str, str]]) -> None:
    text = f"标题\n\n {line} \n正文。"
    start = text.index(line)
    found = read_line(text, start, start + len(line))
    for field in found:
        check_offsets(text, field)
        assert (field.line_start, field.line_end) == (start, start + len(line))
    assert [(f.name, f.value) for f in found] == fields


def test_locate_field_for_metadata_found_outside_the_text() -> None:
    text = "标题\r\n  作者 张三 李四  \r\n正文。"
    field = locate_field(text, "author", "张三 李四")
    assert field is not None
    check_offsets(text, field)
    assert text[field.line_start : field.line_end] == "作者 张三 李四"
    assert locate_field(text, "author", "王五") is None


def test_find_dates() -> None:
    assert find_dates("2023年4月12日和2024-09-21,不是2024-02-30") == ["2023-04-12", "2024-09-21"]


FRAGMENTS = [
    "作者", "记者", "编辑", "责任编辑", "来源", "出品", "发布时间", "文", "图", "|", "｜", ":",
    "：", "丨", "/", " ", "\u3000", "(", ")", "（", "）", "张三", "新华社", "2024-09-21",
    "2024年9月21日", "10:21", "、", "·", "APP",
]  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=4), min_size=1, max_size=10))
def test_any_header_line_gives_exact_offsets(parts: list[str]) -> None:
    line = "".join(parts).replace("\n", " ").replace("\r", " ").strip()
    text = f"标题\n{line}\n正文。"
    for field in read_line(text, 3, 3 + len(line)):
        check_offsets(text, field)
        assert (field.line_start, field.line_end) == (3, 3 + len(line))
