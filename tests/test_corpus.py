"""Loading articles: exact text, title and date, debris kept out of the body, bad files named."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rag.chunking import Chunk, chunk_corpus
from rag.corpus import Corpus, Document, find_date, is_debris, load_corpus, load_document
from rag.errors import CorpusError
from rag.readers.html import looks_like_html
from rag.settings import BUNDLED_CORPUS

HUXIU = "000_64977604fa216111.txt"
AIGC = "001_bc9c23b05ece68e4.txt"

# Lines of the bundled articles that are page furniture, quoted from the files.
REAL_DEBRIS = {
    HUXIU: [
        "<返回更多",
        "2023-04-12\xa0\xa0虎嗅APP",
        "加入收藏",
        "出品|虎嗅科技",
        "作者|齐健",
        "编辑|陈伊凡",
        "头图|阿里云",
        "声明:本站部分内容来自互联网",
        "▍相关推荐",
        "更多资讯 >>>",
    ],
    AIGC: ["当前位置:首页|资讯", "作者:赵赛坡发布时间:2024-09-21", "Copyright ©", "京ICP备"],
}
# Section headings and the first and last real paragraphs (their opening words suffice).
REAL_CONTENT = {
    HUXIU: [
        "AI大转型的浪潮,似乎正将所有互联网厂商拉到同一起跑线上。",
        "算力仍是重点",
        "生态是制胜的关键",
        "抓住用户,让企业加入自己的生态,光有价格优惠还不够。",
    ],
    AIGC: [
        "如果说 2023 年的科技产业还在紧紧追赶 OpenAI 步伐",
        "生成式 AI 时代的新需求",
        "长期投资基础设施,阿里云的 AI 基建护城河初现",
        "当基础大模型成为全新 AI 基础设施",
        "写在最后:通往 AGI 的「修路人」",
        "阿里云就是这样的「修路人」。",
    ],
}


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus(BUNDLED_CORPUS)


@pytest.fixture(scope="module")
def chunks(corpus: Corpus) -> list[Chunk]:
    return chunk_corpus(corpus)


def body_text(doc: Document) -> list[str]:
    return [doc.text[s:e] for s, e in doc.body]


def check_body(doc: Document) -> None:
    """Body spans are ordered, disjoint, inside the text and trimmed of blanks and BOMs."""
    previous = 0
    for s, e in doc.body:
        assert previous <= s < e <= len(doc.text)
        piece = doc.text[s:e]
        assert piece.strip().strip("\ufeff") == piece
        previous = e


def is_covered(doc: Document, chunks: list[Chunk], start: int, end: int) -> bool:
    """Whether every visible character of ``text[start:end]`` lies in one of the chunks."""
    spans = [(c.start, c.end) for c in chunks if c.doc == doc.id]
    return all(
        doc.text[i].isspace() or any(s <= i < e for s, e in spans) for i in range(start, end)
    )


# --- the bundled articles -----------------------------------------------------------------


def test_real_titles_and_dates(corpus: Corpus) -> None:
    found = {d.id: (d.title, d.date) for d in corpus.documents}
    assert found == {
        HUXIU: ("阿里进入大模型时代,核心是算力和生态", "2023-04-12"),
        AIGC: ("全面布局 AI 大基建,阿里云要建一条通往 AGI 的快捷通道", "2024-09-21"),
    }
    assert corpus.skipped == ()


def test_real_text_is_untouched(corpus: Corpus) -> None:
    for doc in corpus.documents:
        raw = (BUNDLED_CORPUS / doc.id).read_bytes()
        assert doc.text == raw.decode("utf-8")
        assert doc.sha256 == hashlib.sha256(raw).hexdigest()
        assert doc.path == BUNDLED_CORPUS / doc.id
        check_body(doc)


@pytest.mark.parametrize("doc_id", [HUXIU, AIGC])
def test_real_debris_is_in_no_chunk(corpus: Corpus, chunks: list[Chunk], doc_id: str) -> None:
    doc = next(d for d in corpus.documents if d.id == doc_id)
    for line in REAL_DEBRIS[doc_id]:
        assert line in doc.text
        assert not any(line in piece for piece in body_text(doc)), line
        assert not any(line in c.text for c in chunks), line
    assert not any(doc.title in c.text for c in chunks)


@pytest.mark.parametrize("doc_id", [HUXIU, AIGC])
def test_real_content_is_chunked(corpus: Corpus, chunks: list[Chunk], doc_id: str) -> None:
    doc = next(d for d in corpus.documents if d.id == doc_id)
    for opening in REAL_CONTENT[doc_id]:
        start = doc.text.index(opening)
        end = doc.text.find("\n", start)
        assert is_covered(doc, chunks, start, len(doc.text) if end < 0 else end), opening


def test_every_real_paragraph_is_kept(corpus: Corpus, chunks: list[Chunk]) -> None:
    """Anything ending like a sentence, except the disclaimer, is article text."""
    for doc in corpus.documents:
        offset = 0
        for line in doc.text.splitlines(keepends=True):
            visible = line.strip()
            if visible.endswith("。") and not visible.startswith("声明"):
                assert is_covered(doc, chunks, offset, offset + len(line)), visible[:30]
            offset += len(line)


def test_fingerprint_follows_content(corpus: Corpus, tmp_path: Path) -> None:
    assert corpus.fingerprint() == load_corpus(BUNDLED_CORPUS).fingerprint()
    for doc in corpus.documents:
        (tmp_path / doc.id).write_bytes((BUNDLED_CORPUS / doc.id).read_bytes())
    assert load_corpus(tmp_path).fingerprint() == corpus.fingerprint()
    with (tmp_path / HUXIU).open("a", encoding="utf-8") as handle:
        handle.write("\n补充一句。")
    assert load_corpus(tmp_path).fingerprint() != corpus.fingerprint()


# --- rules on other wording ---------------------------------------------------------------

SYNTHETIC = (
    "\ufeff您的位置:首页 > 科技 > 人工智能\r\n"
    "\r\n"
    "通义千问开源新一代模型\r\n"
    "\r\n"
    "2024/3/5 10:21  新浪科技\r\n"
    "分享到:微信 微博 QQ空间\r\n"
    "文丨王五\r\n"
    "(责任编辑:赵六)\r\n"
    "\r\n"
    "阿里云今天宣布开源新一代通义千问模型。该模型在多项评测中表现优异,开发者可以免费下载。\r\n"
    "\r\n"
    "技术细节\r\n"
    "\r\n"
    "模型参数规模达到 72B,支持 128K 上下文。训练数据覆盖中文、英文和代码。\r\n"
    "\r\n"
    "数据来源:公司公告\r\n"
    "\r\n"
    "分析人士认为,开源策略有助于扩大生态。更多企业将基于它构建应用。\r\n"
    "\r\n"
    "免责声明:本文仅代表作者观点,不代表本站立场。\r\n"
    "推荐阅读:\r\n"
    "阿里云发布新款服务器\r\n"
    "Qwen2.5 性能评测\r\n"
    "© 2024 某某科技 版权所有\r\n"
)


def test_synthetic_article_with_other_debris(tmp_path: Path) -> None:
    path = tmp_path / "news.txt"
    path.write_bytes(SYNTHETIC.encode("utf-8"))
    doc = load_document(path)
    assert doc.text == SYNTHETIC  # its BOM included: plain text is never rewritten
    assert (doc.format, doc.encoding) == ("text", "utf-8-sig")
    assert (doc.title, doc.date) == ("通义千问开源新一代模型", "2024-03-05")
    check_body(doc)
    body = "\n".join(body_text(doc))
    for line in SYNTHETIC.splitlines():
        line = line.strip("\ufeff")
        if not line:
            continue
        wanted = (line.endswith("。") and "声明" not in line) or line == "技术细节"
        assert (line in body) == wanted, line


def test_markdown_heading_is_the_title(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text("# 通义千问的故事\n\n发布日期:2024年5月6日\n\n## 背景\n\n正文第一段。\n")
    doc = load_document(path)
    assert (doc.title, doc.date) == ("通义千问的故事", "2024-05-06")
    assert body_text(doc) == ["背景\n\n正文第一段。"]  # rendered: no "##" to quote


def test_markdown_front_matter_is_metadata(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text('---\ntitle: "前言里的标题"\ndate: 2024-05-06\n---\n\n正文。\n')
    doc = load_document(path)
    assert (doc.title, doc.date, body_text(doc)) == ("前言里的标题", "2024-05-06", ["正文。"])


def test_front_matter_title_keeps_the_first_heading_in_the_body(tmp_path: Path) -> None:
    path = tmp_path / "note.md"
    path.write_text("---\ntitle: 真标题\n---\n背景\n\n正文。\n")
    doc = load_document(path)
    assert (doc.title, doc.date, body_text(doc)) == ("真标题", None, ["背景\n\n正文。"])


def test_title_falls_back_to_the_file_stem(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("这篇文章没有标题,直接开始正文。第二句。\n")
    doc = load_document(path)
    assert (doc.title, doc.date, body_text(doc)) == ("plain", None, [path.read_text().strip()])


@pytest.mark.parametrize(
    "line",
    [
        "首页 | 新闻 | 科技 | 财经",
        "返回首页",
        "记者 张三",
        "2024年3月5日",
        "相关阅读",
        "（完）",
        "扫一扫",
    ],
)
def test_more_debris_wordings(line: str) -> None:
    assert is_debris(line)


@pytest.mark.parametrize(
    "line",
    [
        "2024年9月21日,阿里云发布了新模型。",
        "相关报道显示,收入增长了。",
        "分享经济改变了生活。",
        "完成了训练",
        "How to use it",
        "编者按:本文讨论算力。",
    ],
)
def test_sentences_that_only_resemble_debris(line: str) -> None:
    assert not is_debris(line)


@pytest.mark.parametrize(
    ("text", "iso"),
    [
        ("2024-9-1", "2024-09-01"),
        ("2024/09/01", "2024-09-01"),
        ("2024.09.01", "2024-09-01"),
        ("2024 年 9 月 1 日", "2024-09-01"),
        ("2024-02-30 然后 2024-02-29", "2024-02-29"),
        ("2024 年 8 月", None),
        ("3.2.1", None),
    ],
)
def test_find_date(text: str, iso: str | None) -> None:
    assert find_date(text) == iso


# --- bad files and folders ----------------------------------------------------------------


def test_bad_files_are_skipped_with_reasons(tmp_path: Path) -> None:
    good = tmp_path / "good.txt"
    good.write_text("标题\n\n正文一句。\n", encoding="utf-8")
    (tmp_path / "latin1.txt").write_bytes("标题\n".encode() + b"\xb0\xa1 gbk")
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.md").write_text(" \n\t\r\n\u3000\n")
    (tmp_path / "x.txt").mkdir()
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "nowhere")
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "notes.csv").write_text("not an article")
    (tmp_path / ".hidden.txt").write_text("标题\n\n隐藏。")

    corpus = load_corpus(tmp_path)
    assert [d.id for d in corpus.documents] == ["good.txt"]
    reasons = {s.path.name: s.reason for s in corpus.skipped}
    assert set(reasons) == {
        "latin1.txt",
        "empty.txt",
        "blank.md",
        "x.txt",
        "dangling.txt",
        "pipe.txt",
    }
    # UTF-8 followed by GBK bytes is neither encoding: refused, not read as mojibake.
    assert reasons["latin1.txt"] == "not valid UTF-8 (byte 0xb0 at offset 7), GB18030 or Big5 text"
    assert "empty" in reasons["empty.txt"]
    assert "whitespace" in reasons["blank.md"]
    assert "folder" in reasons["x.txt"]
    assert "cannot be read" in reasons["dangling.txt"]
    assert "regular file" in reasons["pipe.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("标题\n\n正文。")
    locked = tmp_path / "locked.txt"
    locked.write_text("标题\n\n正文。")
    locked.chmod(0)
    try:
        corpus = load_corpus(tmp_path)
    finally:
        locked.chmod(0o644)
    assert [(s.path.name, s.reason) for s in corpus.skipped] == [
        ("locked.txt", "permission denied")
    ]


def test_read_refusal_is_skipped_even_as_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root ignores file modes, so the refusal chmod would cause is simulated instead."""
    (tmp_path / "good.txt").write_text("标题\n\n正文。")
    locked = tmp_path / "locked.txt"
    locked.write_text("标题\n\n正文。")
    real_read = Path.read_bytes

    def refuse(self: Path) -> bytes:
        if self.name == "locked.txt":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    monkeypatch.setattr(Path, "read_bytes", refuse)
    corpus = load_corpus(tmp_path)
    assert [d.id for d in corpus.documents] == ["good.txt"]
    assert [(s.path.name, s.reason) for s in corpus.skipped] == [
        ("locked.txt", "permission denied")
    ]
    with pytest.raises(CorpusError, match=r"locked\.txt: permission denied"):
        load_document(locked)


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"\x80\xff", "not valid UTF-8"),
        (b"\xff\xfe\x41", "byte order mark but is not utf-16"),
        (b"", "empty"),
        (b"\xff\xfe", "empty"),
        (b"\n \n", "whitespace"),
    ],
)
def test_load_document_names_file_and_problem(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(CorpusError, match=re.escape(str(path)) + ".*" + problem):
        load_document(path)


def test_article_of_debris_only_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nav.txt"
    path.write_text("当前位置:首页|资讯\n\n标题\n\n作者:某人\n")
    with pytest.raises(CorpusError, match="no article text"):
        load_document(path)


def test_nested_folders_use_relative_ids(tmp_path: Path) -> None:
    (tmp_path / "2024" / "09").mkdir(parents=True)
    (tmp_path / "2024" / "09" / "b.md").write_text("# 乙\n\n正文。")
    (tmp_path / "a.txt").write_text("甲\n\n正文。")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "c.txt").write_text("丙\n\n正文。")
    assert [d.id for d in load_corpus(tmp_path).documents] == ["2024/09/b.md", "a.txt"]


def test_unusable_folders_raise(tmp_path: Path) -> None:
    with pytest.raises(CorpusError, match="not found"):
        load_corpus(tmp_path / "missing")
    (tmp_path / "file.txt").write_text("标题\n\n正文。")
    with pytest.raises(CorpusError, match="not a folder"):
        load_corpus(tmp_path / "file.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusError, match="no usable"):
        load_corpus(tmp_path / "empty")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.txt").write_bytes(b"\x80")
    with pytest.raises(CorpusError, match=r"a\.txt: not valid UTF-8"):
        load_corpus(tmp_path / "bad")


# --- any text at all ----------------------------------------------------------------------

LINES = [
    "标题",
    "阿里云发布大模型。",
    "第二段,还有“引号”!",
    "作者|某人",
    "2024-09-21 某网",
    "分享到",
    "算力仍是重点",
    "Copyright © 2024",
    "相关推荐",
    "\ufeff",
    "",
    " \u3000",
    "# 标题",
    "---",
    "title: 前言",
    "- 列表里的一句。",
    "*2024-09-21 · 某报*",
    "**粗体**后文。",
    "```",
    "<p>段落</p>",
]


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("generated")


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.sampled_from(LINES) | st.text(max_size=20), max_size=15),
    newline=st.sampled_from(["\n", "\r\n", "\r"]),
    suffix=st.sampled_from([".txt", ".md"]),
)
def test_any_text_loads_or_is_refused(
    scratch: Path, lines: list[str], newline: str, suffix: str
) -> None:
    """Plain text is kept exactly; Markdown is rendered, so only its offsets are checked."""
    text = newline.join(lines)
    path = scratch / f"doc{suffix}"
    path.write_bytes(text.encode("utf-8"))
    try:
        doc = load_document(path)
    except CorpusError as exc:
        assert str(path) in str(exc)
        return
    if suffix == ".txt" and not looks_like_html(text):
        assert doc.text == text
    assert doc.title and "\n" not in doc.title and "\r" not in doc.title
    assert doc.date is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", doc.date)
    assert doc.body
    check_body(doc)
    for field in doc.meta:
        assert doc.text[field.start : field.end] == field.value
