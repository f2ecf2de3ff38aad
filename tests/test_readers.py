"""Readers of each format and encoding, on real files written by the libraries made for them:
what is kept and what is dropped, metadata with exact offsets, and the reasons a file is
refused. The whole scenario through the index is in test_own_articles.py."""

from __future__ import annotations

import codecs
import io
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.corpus import DEFAULT_MAX_FILE_BYTES, Document, ReadOptions, load_corpus, load_document
from rag.errors import CorpusError
from rag.index import StoredDocument
from rag.readers import Unreadable, extract
from rag.readers.extracted import with_header
from rag.settings import Settings
from tests.article_files import (
    DOCX_TITLE,
    GBK_TEXT,
    PANDA_HTML,
    PDF_TITLE,
    TEA_MARKDOWN,
    docx_bytes,
    pdf_bytes,
)

DEFAULTS = ReadOptions()


def write(folder: Path, name: str, content: str | bytes) -> Path:
    path = folder / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def body(doc: Document) -> str:
    return "\n".join(doc.text[s:e] for s, e in doc.body)


def meta(doc: Document) -> list[tuple[str, str]]:
    for field in doc.meta:
        assert doc.text[field.start : field.end] == field.value
        line = doc.text[field.line_start : field.line_end]
        assert field.value in line and "\n" not in line
    return [(f.name, f.value) for f in doc.meta]


# --- web pages ----------------------------------------------------------------------------


def test_html_keeps_the_article_and_drops_the_page_around_it(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path, "panda.html", PANDA_HTML), DEFAULTS)
    assert doc.format == "html"
    assert "每天称重三次" in body(doc) and "姐姐的体重已经达到五点二公斤。" in body(doc)
    for boilerplate in ("首页", "关于我们", "广告", "买房", "相关阅读", "门票涨价", "ICP", "©"):
        assert boilerplate not in doc.text, boilerplate
    assert "<" not in doc.text and ">" not in doc.text
    assert (doc.title, doc.date) == ("大熊猫双胞胎首次亮相", "2025-08-15")
    assert meta(doc) == [
        ("title", "大熊猫双胞胎首次亮相"),
        ("date", "2025-08-15"),
        ("source", "成都晚报"),
        ("author", "李四"),  # from <meta name="author">: trafilatura drops two-character names
    ]
    assert doc.text.startswith("大熊猫双胞胎首次亮相\n2025-08-15 · 成都晚报\n作者：李四\n\n")


def test_short_html_page_keeps_no_navigation_and_guesses_no_date(tmp_path: Path) -> None:
    """Two Chinese sentences are below trafilatura's default minimum (250 characters), under
    which it takes the whole page; the year in a copyright line is no publication date."""
    page = (
        "<html><head><title>熊猫新闻</title></head><body><nav>首页 新闻 体育 财经</nav>"
        "<article><h1>熊猫新闻</h1><p>成都大熊猫繁育研究基地的双胞胎幼崽今天首次与游客见面。</p>"
        "<p>幼崽目前住在月亮产房，每天称重三次。</p></article>"
        "<footer>Copyright © 2021 某网 版权所有</footer></body></html>"
    )
    doc = load_document(write(tmp_path, "short.html", page), DEFAULTS)
    assert (doc.title, doc.date) == ("熊猫新闻", None)
    assert "首页" not in doc.text and "2021" not in doc.text
    assert body(doc).split("\n\n") == [
        "成都大熊猫繁育研究基地的双胞胎幼崽今天首次与游客见面。",
        "幼崽目前住在月亮产房，每天称重三次。",
    ]


def test_other_endings_of_the_same_formats(tmp_path: Path) -> None:
    assert load_document(write(tmp_path, "p.HTM", PANDA_HTML), DEFAULTS).format == "html"
    assert load_document(write(tmp_path, "t.markdown", TEA_MARKDOWN), DEFAULTS).format == "markdown"


def test_html_saved_as_txt_is_read_as_html(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path, "page.txt", PANDA_HTML), DEFAULTS)
    assert doc.format == "html"
    assert doc.title == "大熊猫双胞胎首次亮相"
    assert not any(doc.text[s:e].lstrip().startswith("<") for s, e in doc.body)


def test_web_page_with_a_bom_or_a_markdown_name_is_read_as_html(tmp_path: Path) -> None:
    for name, raw in [
        ("bom.txt", codecs.BOM_UTF8 + PANDA_HTML.encode()),
        ("page.md", PANDA_HTML.encode()),
    ]:
        doc = load_document(write(tmp_path, name, raw), DEFAULTS)
        assert (doc.format, doc.title) == ("html", "大熊猫双胞胎首次亮相"), name
        assert "<" not in doc.text and "首页" not in doc.text


def test_html_fragment_in_txt_is_detected_but_a_scraped_back_link_is_not(tmp_path: Path) -> None:
    fragment = "<p>熊猫基地今天开放。</p>\n<p>游客很多，排队超过一小时。</p>\n<div>第三段。</div>"
    assert load_document(write(tmp_path, "a.txt", fragment), DEFAULTS).format == "html"
    scraped = "<返回更多\n\n标题\n\n正文第一句。\n"
    assert load_document(write(tmp_path, "b.txt", scraped), DEFAULTS).format == "text"


def test_html_without_article_text_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "ok.txt", "标题\n\n正文。\n")
    write(tmp_path, "nav.html", "<html><body><nav><a href='/'>首页</a></nav></body></html>")
    corpus = load_corpus(tmp_path, DEFAULTS)
    assert [(s.path.name, s.reason) for s in corpus.skipped] == [
        ("nav.html", "holds no article text that trafilatura could find")
    ]


# --- Markdown -----------------------------------------------------------------------------


def test_markdown_is_rendered_without_markup(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path, "tea.md", TEA_MARKDOWN), DEFAULTS)
    assert doc.format == "markdown"
    text = body(doc)
    assert "今年的春茶产量预计比去年增加一成。\n茶农们凌晨五点就上山采摘。" in text
    assert "蒙顶山春茶今天正式开采" in text  # **春茶** without its stars
    assert not re.search(r"^\s*[-*>#]", doc.text, re.M)
    assert "**" not in doc.text and "---" not in doc.text
    # The front matter and the *date · source* line say the same: shown once.
    assert meta(doc) == [
        ("title", "蒙顶山春茶开采"),
        ("author", "王五"),
        ("date", "2025-03-20"),
        ("source", "雅安日报"),
    ]
    assert doc.text.count("雅安日报") == 1


def test_markdown_lists_links_tables_and_cjk_emphasis(tmp_path: Path) -> None:
    source = (
        "# 熊猫近况\n\n"
        "见[基地官网](https://example.cn)的公告![照片](a.png)。\n\n"
        "1. 幼崽目前住在月亮产房。\n"
        "2. 每天称重**“三次”**后喂奶。\n\n"
        "| 名字 | 体重 |\n|---|---|\n| 姐姐 | 五点二公斤 |\n\n"
        "```\n代码原样保留\n```\n"
    )
    doc = load_document(write(tmp_path, "x.md", source), DEFAULTS)
    assert doc.title == "熊猫近况"
    assert body(doc) == (
        "见基地官网的公告。\n\n"
        "幼崽目前住在月亮产房。\n每天称重“三次”后喂奶。\n\n"
        "名字\t体重\n姐姐\t五点二公斤\n\n"
        "代码原样保留"
    )


def test_emphasised_dateline_in_plain_text(tmp_path: Path) -> None:
    """The issue's line ``*2025-08-15 · 成都晚报*`` is a dateline in a .txt file too."""
    text = "熊猫幼崽亮相\n*2025-08-15 · 成都晚报*\n\n- 幼崽目前住在月亮产房。\n"
    doc = load_document(write(tmp_path, "a.txt", text), DEFAULTS)
    assert doc.text == text  # plain text is never rewritten
    assert meta(doc) == [
        ("title", "熊猫幼崽亮相"),
        ("date", "2025-08-15"),
        ("source", "成都晚报"),
    ]
    assert "成都晚报" not in body(doc)


# --- PDF and Word -------------------------------------------------------------------------


def test_pdf_pages_and_properties(tmp_path: Path) -> None:
    data = pdf_bytes(title="川剧进校园的报道", author="孙七")
    doc = load_document(write(tmp_path, "opera.pdf", data), DEFAULTS)
    assert (doc.format, doc.encoding) == ("pdf", None)
    # The property title differs from the first line, so it is shown above the text.
    assert meta(doc)[:2] == [("title", "川剧进校园的报道"), ("author", "孙七")]
    assert PDF_TITLE in doc.text
    stored = StoredDocument(doc.id, doc.title, doc.date, doc.text, doc.meta, pages=doc.pages)
    assert len(doc.pages) == 2
    second = doc.text.index("第二页的内容")
    assert stored.page_at(second) == 2
    assert stored.page_at(doc.text.index("四川省川剧院")) == 1
    assert stored.page_at(0) is None  # the header lines are on no page


def test_pdf_lines_broken_by_the_layout_are_joined(tmp_path: Path) -> None:
    import pymupdf

    sentence = "成都大熊猫繁育研究基地的饲养员介绍说，" * 6 + "幼崽的食量每天都在增加。"
    document = pymupdf.open()
    page = document.new_page()
    page.insert_textbox(pymupdf.Rect(56, 56, 300, 400), sentence, fontname="china-s", fontsize=11)
    page.insert_text((56, 500), "短标题", fontname="china-s", fontsize=11)
    doc = load_document(write(tmp_path, "wrap.pdf", document.tobytes()), DEFAULTS)
    assert sentence in doc.text


def test_docx_paragraphs_table_and_title(tmp_path: Path) -> None:
    doc = load_document(write(tmp_path, "hotpot.docx", docx_bytes()), DEFAULTS)
    assert doc.format == "docx"
    assert doc.title == DOCX_TITLE
    assert meta(doc) == [("title", DOCX_TITLE), ("author", "赵六")]
    assert doc.text.startswith(f"{DOCX_TITLE}\n作者：赵六\n\n郫都区")
    assert "展品\t数量\n铜火锅\t一百二十件" in body(doc)


def scanned_pdf() -> bytes:
    import pymupdf

    document = pymupdf.open()
    document.new_page().draw_rect(pymupdf.Rect(50, 50, 300, 300), fill=(0.5, 0.5, 0.5))
    return document.tobytes()


def broken_docx() -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types><broken")
        archive.writestr("word/document.xml", "not xml at all")
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("scan.pdf", scanned_pdf(), "has no text layer (scanned pages need OCR first)"),
        ("odd.docx", broken_docx(), "could not be parsed (XMLSyntaxError"),
        ("bad.pdf", b"%PDF-1.7 not really", "is not a readable PDF"),
        ("bad.docx", b"PK\x03\x04 not a zip", "is not a readable .docx file"),
        ("text.docx", "只是文字".encode(), "is not a readable .docx file"),
    ],
)
def test_broken_files_are_skipped_with_reasons(
    tmp_path: Path, name: str, content: bytes, reason: str
) -> None:
    write(tmp_path, "ok.txt", "标题\n\n正文。\n")
    write(tmp_path, name, content)
    skipped = load_corpus(tmp_path, DEFAULTS).skipped
    assert [s.path.name for s in skipped] == [name]
    assert skipped[0].reason.startswith(reason)


# --- encodings ----------------------------------------------------------------------------

BIG5_TEXT = "熊貓郵局推出新明信片\n\n位於寬窄巷子的熊貓郵局推出了一套新明信片，售價為六十元。\n"


@pytest.mark.parametrize(
    ("raw", "encoding", "text"),
    [
        (GBK_TEXT.encode("gbk"), "gb18030", GBK_TEXT),
        (GBK_TEXT.encode("gb18030"), "gb18030", GBK_TEXT),
        (BIG5_TEXT.encode("big5"), "big5", BIG5_TEXT),
        (GBK_TEXT.encode("utf-16"), "utf-16", GBK_TEXT),  # with its BOM, little-endian here
        (codecs.BOM_UTF16_BE + GBK_TEXT.encode("utf-16-be"), "utf-16", GBK_TEXT),
        (codecs.BOM_UTF8 + GBK_TEXT.encode(), "utf-8-sig", "\ufeff" + GBK_TEXT),
        (GBK_TEXT.encode(), "utf-8", GBK_TEXT),
    ],
    ids=["gbk", "gb18030", "big5", "utf-16-le", "utf-16-be", "utf-8-bom", "utf-8"],
)
def test_encodings_are_detected_and_recorded(
    tmp_path: Path, raw: bytes, encoding: str, text: str
) -> None:
    doc = load_document(write(tmp_path, "a.txt", raw), DEFAULTS)
    assert (doc.text, doc.encoding) == (text, encoding)
    assert doc.title == GBK_TEXT.splitlines()[0] or doc.title == BIG5_TEXT.splitlines()[0]


def test_gbk_markdown_and_html_are_decoded_too(tmp_path: Path) -> None:
    md = load_document(write(tmp_path, "a.md", TEA_MARKDOWN.encode("gbk")), DEFAULTS)
    assert (md.encoding, md.title) == ("gb18030", "蒙顶山春茶开采")
    page = PANDA_HTML.replace('charset="utf-8"', 'charset="gbk"').replace("©", "(c)")
    page = page.encode("gbk")
    html = load_document(write(tmp_path, "a.html", page), DEFAULTS)
    assert (html.encoding, html.title) == ("gb18030", "大熊猫双胞胎首次亮相")


def test_a_fixed_encoding_overrides_detection(
    tmp_path: Path, isolated_settings: Callable[..., Settings]
) -> None:
    path = write(tmp_path, "a.txt", BIG5_TEXT.encode("big5"))
    isolated_settings(corpus_encoding="big5")
    assert load_document(path).encoding == "big5"  # the setting is read when loading
    forced = load_document(path, ReadOptions(encoding="gb18030"))
    assert forced.encoding == "gb18030" and forced.text != BIG5_TEXT
    other = tmp_path / "other"
    other.mkdir()
    write(other, "a.txt", "标题\n\n正文。\n")
    write(other, "b.txt", "标题\n\n正文。\n".encode("utf-16"))
    skipped = load_corpus(other, ReadOptions(encoding="utf-8")).skipped
    assert [(s.path.name, s.reason) for s in skipped] == [
        ("b.txt", "not valid utf-8 (byte 0xff at offset 0)")
    ]


def test_unknown_encoding_setting_is_refused(isolated_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        isolated_settings(corpus_encoding="klingon")


def test_undecodable_bytes_are_skipped_with_a_reason(tmp_path: Path) -> None:
    write(tmp_path, "ok.txt", "标题\n\n正文。\n")
    write(tmp_path, "latin1.txt", "Café crème brûlée à la carte".encode("latin-1"))
    assert [(s.path.name, s.reason) for s in load_corpus(tmp_path, DEFAULTS).skipped] == [
        ("latin1.txt", "not valid UTF-8 (byte 0xe9 at offset 3), GB18030 or Big5 text")
    ]


# --- what the folder may hold -------------------------------------------------------------


def test_links_inside_the_folder_are_read_and_links_outside_are_not(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    (corpus / "sub").mkdir(parents=True)
    write(corpus / "sub", "real.txt", "标题\n\n正文。\n")
    (corpus / "alias.txt").symlink_to(corpus / "sub" / "real.txt")
    (corpus / "relative.txt").symlink_to(Path("sub") / "real.txt")
    (corpus / "passwd.txt").symlink_to("/etc/passwd")
    write(tmp_path, "outside.md", "# 外面\n\n正文。\n")
    (corpus / "up.md").symlink_to(Path("..") / "outside.md")
    loaded = load_corpus(corpus, DEFAULTS)
    assert [d.id for d in loaded.documents] == ["alias.txt", "relative.txt", "sub/real.txt"]
    assert {s.path.name: s.reason for s in loaded.skipped} == {
        "passwd.txt": "is a symbolic link to a file outside the corpus folder",
        "up.md": "is a symbolic link to a file outside the corpus folder",
    }


def test_corpus_folder_reached_through_a_link_still_reads(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "标题\n\n正文。\n")
    (tmp_path.parent / f"{tmp_path.name}-link").symlink_to(tmp_path)
    linked = tmp_path.parent / f"{tmp_path.name}-link"
    try:
        assert [d.id for d in load_corpus(linked, DEFAULTS).documents] == ["a.txt"]
    finally:
        linked.unlink()


def test_names_that_are_not_utf8_are_skipped_printably(tmp_path: Path) -> None:
    write(tmp_path, "ok.txt", "标题\n\n正文。\n")
    (tmp_path / os.fsdecode(b"\xb1\xea\xcc\xe2.txt")).write_text("标题\n\n正文。\n")
    (tmp_path / os.fsdecode(b"dir\xff")).mkdir()
    (tmp_path / os.fsdecode(b"dir\xff") / "inner.txt").write_text("标题\n\n正文。\n")
    skipped = load_corpus(tmp_path, DEFAULTS).skipped
    assert sorted(str(s.path.relative_to(tmp_path)) for s in skipped) == [
        "\\xb1\\xea\\xcc\\xe2.txt",
        "dir\\xff/inner.txt",
    ]
    for s in skipped:
        str(s.path).encode("utf-8")  # printable and writable as UTF-8
        assert s.reason == "file name is not valid UTF-8; rename the file"


def test_a_corpus_folder_named_in_another_encoding_is_a_clear_error(tmp_path: Path) -> None:
    folder = tmp_path / os.fsdecode(b"\xd0\xc2\xce\xc5")  # 新闻 in GBK
    folder.mkdir()
    write(folder, "a.txt", "标题\n\n正文。\n")
    with pytest.raises(CorpusError, match=r"folder name is not valid UTF-8: .*\\xd0\\xc2"):
        load_corpus(folder, DEFAULTS)


def test_files_over_the_size_limit_are_skipped(
    tmp_path: Path, isolated_settings: Callable[..., Settings]
) -> None:
    write(tmp_path, "ok.txt", "标题\n\n正文。\n")
    with (tmp_path / "huge.txt").open("wb") as handle:  # sparse: nothing is written
        handle.truncate(DEFAULT_MAX_FILE_BYTES + 1)
    reasons = {s.path.name: s.reason for s in load_corpus(tmp_path, DEFAULTS).skipped}
    assert reasons == {
        "huge.txt": f"is {DEFAULT_MAX_FILE_BYTES + 1:,} bytes, over the limit of "
        f"{DEFAULT_MAX_FILE_BYTES:,} (RAG_MAX_FILE_BYTES)"
    }
    write(tmp_path, "longer.txt", "标题\n\n正文多一句。\n")
    isolated_settings(max_file_bytes=(tmp_path / "ok.txt").stat().st_size)  # 18: at the limit
    reasons = {s.path.name: s.reason for s in load_corpus(tmp_path).skipped}
    assert set(reasons) == {"huge.txt", "longer.txt"}
    assert reasons["longer.txt"] == "is 27 bytes, over the limit of 18 (RAG_MAX_FILE_BYTES)"


def test_files_of_other_kinds_are_not_articles(tmp_path: Path) -> None:
    write(tmp_path, "a.txt", "标题\n\n正文。\n")
    write(tmp_path, "notes.csv", "a,b")
    write(tmp_path, "picture.png", b"\x89PNG")
    assert [d.id for d in load_corpus(tmp_path, DEFAULTS).documents] == ["a.txt"]
    assert load_corpus(tmp_path, DEFAULTS).skipped == ()
    with pytest.raises(Unreadable, match="no reader"):
        extract("notes.csv", b"a,b")


# --- header lines -------------------------------------------------------------------------

_VALUE = st.text(st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=12)


@settings(max_examples=150, deadline=None)
@given(
    body=st.text(st.sampled_from("标题正文。\n \r甲乙2024-01-02作者:"), max_size=40),
    values=st.lists(
        st.tuples(st.sampled_from(["title", "author", "date", "source", "editor"]), _VALUE),
        max_size=6,
    ),
    pages=st.lists(st.integers(0, 40), max_size=3),
)
def test_header_offsets_are_exact_for_any_values(
    body: str, values: list[tuple[str, str]], pages: list[int]
) -> None:
    pages = sorted(p for p in pages if p <= len(body))
    out = with_header(body, values, format="test", pages=pages)  # type: ignore[arg-type]
    for field in out.fields:
        assert out.text[field.start : field.end] == field.value
        line = out.text[field.line_start : field.line_end]
        assert field.value in line and "\n" not in line
    # Every visible character of the body is still there, in order.
    rest = iter(out.text)
    assert all(char in rest for char in body if not char.isspace())
    if not out.fields:
        assert out.text == body  # nothing to add: the body is left as it is
    assert list(out.pages) == sorted(out.pages) and all(p <= len(out.text) for p in out.pages)


@settings(max_examples=120, deadline=None)
@given(
    raw=st.binary(max_size=300)
    | st.lists(st.sampled_from(["# 标", "- 项", "<p>段</p>", "---", "作者：甲", "\n", "正文。"]))
    .map("".join)
    .map(str.encode),
    suffix=st.sampled_from([".txt", ".md", ".html", ".pdf", ".docx"]),
)
def test_any_bytes_give_text_with_exact_fields_or_a_reason(raw: bytes, suffix: str) -> None:
    try:
        out = extract(f"x{suffix}", raw)
    except Unreadable as exc:
        assert str(exc)
        return
    for field in out.fields:
        assert out.text[field.start : field.end] == field.value
    assert list(out.pages) == sorted(out.pages)
