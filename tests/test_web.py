"""The web page: served assets, the no-JavaScript form, and the page driven in real Chromium.

Two real servers run for the session on 127.0.0.1: one over the bundled articles with API
keys off, and one over a single hostile article (``<script>`` and ``<img onerror>`` markup in
its text and file name) with API keys on and a stand-in LLM, so the mode selector shows.
Browser tests are ``slow``; screenshots go to ``artifacts/`` (laptop 1280x800, phone 390x844).

What the answer layer says (short answer or not, "related" or "none" for an unrelated
question) comes from trained models, so the page tests ask ``/api/ask`` first and check that
the page shows that outcome; the rendering of each outcome is also checked on fixed answers
built from real index offsets.
"""

from __future__ import annotations

import html
import json
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from rag.api.app import create_app
from rag.citations import Answer, Citation, ShortAnswer, make_citation, not_answered, not_found
from rag.embedding import E5Embedder
from rag.index import SearchIndex, StoredDocument
from rag.settings import BUNDLED_CORPUS, Settings
from rag.web.page import key_accepted
from rag.web.render import NOTICES, PageContext, render_page, sources_for

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "artifacts"
CHROMIUM = Path("/usr/bin/chromium")
# The network is closed: without these flags Chromium floods refused connections.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
LAPTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

KEY = "web-test-key"
QUESTION = "阿里云新一代磐久服务器单机支持多少卡GPU？"
QUOTE_PART = "单机支持 16 卡 GPU 高速扩展互连"
FOLLOW_UP = "那共享显存呢？"
UNANSWERABLE = "How do I cook braised pork?"
UNRELATED = [UNANSWERABLE, "今天天气怎么样?"]
FACTOID = "阿里云2022年的市场份额是多少?"  # "36%"
RELATIVE_DATE = "阿里云什么时候发布开源模型Qwen2-72B?"  # "今年 6 月", i.e. 2024年6月
# The reply's class for each outcome (render.REPLY_STATES and app.js REPLY_STATES).
REPLY_CLASS = {
    "answered": ".reply",
    "related": ".reply.is-related",
    "none": ".reply.is-unanswerable",
}

SCRIPT = "<script>window.__xss=1</script>"
IMG = '<img src=x onerror="window.__xss=1">'
XSS_FILE = "耳机<img src=x onerror=window.__xss=1>.txt"  # its stem becomes the title
XSS_ARTICLE = (
    "星河科技发布<b>新款</b>翻译耳机\n"
    "2024-05-01\n\n"
    f"星河科技在杭州发布了新款翻译耳机{SCRIPT}，售价为1999元。\n"
    f"该耳机支持32种语言的实时翻译{IMG}，续航时间为12小时。\n"
    "星河科技表示，这款耳机将于六月在全国上市。\n"
)
XSS_PRICE = "星河科技的翻译耳机售价是多少？"
XSS_LANGUAGES = "翻译耳机支持多少种语言？"


# --- servers ----------------------------------------------------------------------------------


class EchoLLM:
    """A stand-in LLM: answers with the first sentence of passage [1], cited."""

    model = "echo"

    def complete(self, messages: Sequence[dict[str, str]]) -> str:
        return messages[-1]["content"]  # follow-up rewrite: keep the question

    def stream(self, messages: Sequence[dict[str, str]]) -> Iterator[str]:
        found = re.search(r"^\[1\][^\n]*\n(.+?[。！？])", messages[-1]["content"], re.M)
        reply = f"{found.group(1)}[1]" if found else "文中未提及。"
        for start in range(0, len(reply), 8):
            yield reply[start : start + 8]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _settings(corpus: Path, index_dir: Path, keys: str = "") -> Settings:
    return Settings(
        corpus_dir=corpus,
        index_dir=index_dir,
        api_keys=keys,
        embedder="e5",
        llm_base_url=None,
        llm_model=None,
        cors_origins="",
    )


@contextmanager
def _serve(settings: Settings, embedder: E5Embedder, llm: Any = None) -> Iterator[str]:
    """A real uvicorn server in a thread; yields its base URL once ``/readyz`` says ready."""
    app = create_app(settings, llm)
    app.state.service.embedder = embedder  # share the session's model instead of loading another
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while True:
        try:
            with urllib.request.urlopen(f"{url}/readyz", timeout=5) as response:
                if response.status == 200:
                    break
        except (urllib.error.URLError, ConnectionError):
            pass
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the web test server on {url} did not become ready")
        time.sleep(0.2)
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture(scope="session")
def open_server(bundled_index: SearchIndex, e5: E5Embedder) -> Iterator[str]:
    """The bundled articles (the session's index, reused), keys off, no LLM."""
    index_dir = bundled_index.path.parent.parent
    with _serve(_settings(BUNDLED_CORPUS, index_dir), e5) as url:
        yield url


@pytest.fixture(scope="session")
def xss_server(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> Iterator[str]:
    """One hostile article, API keys on, and a stand-in LLM (so the mode selector shows)."""
    corpus = tmp_path_factory.mktemp("xss-corpus")
    (corpus / XSS_FILE).write_text(XSS_ARTICLE, encoding="utf-8")
    settings = _settings(corpus, tmp_path_factory.mktemp("xss-index"), keys=KEY)
    with _serve(settings, e5, EchoLLM()) as url:
        yield url


def _http(
    url: str, data: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], str]:
    """(status, lower-cased headers, body) for a GET, or a form POST when ``data`` is given."""
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, head, raw = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, head, raw = exc.code, exc.headers, exc.read()
    return status, {k.lower(): v for k, v in head.items()}, raw.decode("utf-8")


def _api_answer(server: str, question: str) -> dict[str, Any]:
    """What ``POST /api/ask`` answers (the page must show the same outcome)."""
    request = urllib.request.Request(
        f"{server}/api/ask",
        data=json.dumps({"question": question}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return dict(json.loads(response.read()))


# --- rendering, no server ---------------------------------------------------------------------


def _hostile_answer() -> tuple[Answer, dict[str, StoredDocument]]:
    text = f"前文。{SCRIPT}{IMG}后文。"
    start = text.index(SCRIPT)
    quote = text[start : start + len(SCRIPT) + len(IMG)]
    title = f"<i>{IMG}</i>"
    doc = StoredDocument(id="x.txt", title=title, date="2024-05-01", text=text)
    citation = Citation(1, "x.txt", title, quote, start, start + len(quote))
    answer = Answer(
        question=f"问{SCRIPT}",
        answer=f"{quote}[1][7]",
        citations=[citation],
        answerable=True,
        mode="extractive",
        rewritten_question=IMG,
        short_answer=ShortAnswer(SCRIPT, "x.txt", start, start + len(SCRIPT), 0.9, IMG),
    )
    return answer, {"x.txt": doc}


CONTEXT = PageContext(
    keys_required=False, llm=False, default_mode="extractive", documents=3, max_question_chars=99
)


def test_render_escapes_questions_answers_titles_and_quotes() -> None:
    answer, documents = _hostile_answer()
    page = render_page(
        CONTEXT,
        question=f'"></textarea>{SCRIPT}',
        asked=answer.question,
        answer=answer,
        sources=sources_for(answer, documents),
    )
    assert page.count("<script") == 1  # only the page's own <script src=...>
    assert "<img" not in page and "<i>" not in page and "</textarea><script" not in page
    assert "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;window.__xss=1&quot;&gt;" in page
    assert '<a class="cite" href="#t1-src-1">[1]</a>' in page
    assert "[7]" in page and 'href="#t1-src-7"' not in page  # a marker with no citation
    assert "前文。<mark>" in page  # the quote in its context
    assert '<mark><strong class="span">&lt;script&gt;window.__xss=1&lt;/script&gt;</strong>' in page
    assert "<strong>&lt;script&gt;window.__xss=1&lt;/script&gt;</strong></a>" in page
    assert '<span class="resolved">即 &lt;img src=x' in page
    assert "$" not in page  # every template placeholder was filled


def test_render_page_shows_state_and_options() -> None:
    page = render_page(CONTEXT)
    assert 'data-keys="off"' in page and 'id="mode"' not in page and 'name="key"' not in page
    assert "已收录 3 篇文章" in page and 'maxlength="99"' in page
    with_llm = PageContext(True, True, "auto", None, 2000)
    page = render_page(with_llm, asked="问题", error="出错了：<b>x</b>")
    assert '<option value="auto" selected>' in page and 'data-llm="on"' in page
    assert '<noscript><label class="key-field">' in page and "索引加载中" in page
    assert 'class="reply is-error"' in page and "&lt;b&gt;x&lt;/b&gt;" in page


def _sentence_citation(index: SearchIndex, number: int, words: str) -> Citation:
    """A citation of the indexed sentence that holds ``words``, at its real offsets."""
    for doc in index.documents.values():
        at = doc.text.find(words)
        if at >= 0:
            for s in index.sentences:
                if s.doc == doc.id and s.start <= at and at + len(words) <= s.end:
                    return make_citation(index, number, doc.id, s.start, s.end)
    raise AssertionError(f"no indexed sentence holds {words!r}")


def _short(index: SearchIndex, c: Citation, words: str, resolved: str | None = None) -> ShortAnswer:
    start = index.documents[c.doc].text.index(words, c.start)
    return ShortAnswer(words, c.doc, start, start + len(words), 0.87, resolved)


def _page_for(answer: Answer, index: SearchIndex) -> str:
    return render_page(
        CONTEXT,
        asked=answer.question,
        answer=answer,
        sources=sources_for(answer, index.documents),
    )


def _answered(question: str, citations: list[Citation], short: ShortAnswer | None) -> Answer:
    text = "".join(f"{c.quote}[{c.id}]" for c in citations)
    return Answer(
        question=question,
        answer=text,
        citations=citations,
        answerable=True,
        mode="extractive",
        short_answer=short,
        confidence=0.9507,
        timings={"total": 0.05},
    )


def test_render_short_answer_in_bold_above_the_cited_sentence(bundled_index: SearchIndex) -> None:
    cite = _sentence_citation(bundled_index, 1, "市场份额的36%")
    short = _short(bundled_index, cite, "36%")
    assert bundled_index.documents[cite.doc].text[short.start : short.end] == "36%"
    page = _page_for(_answered(FACTOID, [cite], short), bundled_index)
    line = (
        '<p class="short-answer"><span class="short-label">答</span>'
        '<a class="short-link" href="#t1-src-1"><strong>36%</strong></a></p>'
    )
    assert line in page and page.index(line) < page.index('<div class="answer">')
    # Its link leads to the cited sentence, where the same words are in bold.
    source = page[page.index('<li id="t1-src-1">') :]
    before, _, after = cite.quote.partition("36%")
    marked = f'{html.escape(before)}<strong class="span">36%</strong>{html.escape(after)}'
    assert f"<mark>{marked}</mark>" in source
    assert "<h2>来源</h2>" in page and "置信度 0.95" in page and 'class="reply"' in page


def test_render_short_answer_with_a_restated_relative_date(bundled_index: SearchIndex) -> None:
    cite = _sentence_citation(bundled_index, 1, "今年 6 月,阿里云发布开源模型")
    short = _short(bundled_index, cite, "今年 6 月", resolved="2024年6月")
    page = _page_for(_answered(RELATIVE_DATE, [cite], short), bundled_index)
    assert '<strong>今年 6 月</strong></a> <span class="resolved">即 2024年6月</span></p>' in page


def test_render_short_answer_outside_the_citations_gets_its_own_source(
    bundled_index: SearchIndex,
) -> None:
    cite = _sentence_citation(bundled_index, 1, "市场份额的36%")
    elsewhere = _sentence_citation(bundled_index, 9, "今年 6 月,阿里云发布开源模型")
    short = _short(bundled_index, elsewhere, "今年 6 月")
    page = _page_for(_answered(FACTOID, [cite], short), bundled_index)
    assert '<a class="short-link" href="#t1-src-0"><strong>今年 6 月</strong></a>' in page
    assert '<li id="t1-src-0"><span class="num">答</span>' in page
    assert '<mark><strong class="span">今年 6 月</strong></mark>' in page


def test_render_related_passages_under_their_own_heading(bundled_index: SearchIndex) -> None:
    related = [
        _sentence_citation(bundled_index, 1, "就像修建一条通往未来的高速公路"),
        _sentence_citation(bundled_index, 2, "市场份额的36%"),
    ]
    answer = Answer(
        question="今天天气怎么样?",
        answer=not_answered("zh"),
        citations=[],
        answerable=False,
        mode="extractive",
        outcome="related",
        confidence=0.0004,
        related=related,
    )
    page = _page_for(answer, bundled_index)
    assert 'class="reply is-related"' in page and "is-unanswerable" not in page
    assert f'<div class="answer">{not_answered("zh")}</div>' in page
    assert f'<p class="notice">{NOTICES["related"]}</p>' in page
    section = '<section class="sources related" aria-label="相关段落"><h2>相关段落</h2>'
    assert section in page and "<h2>来源</h2>" not in page
    assert page.index(NOTICES["related"]) < page.index(section)
    for c in related:
        assert f'<li id="t1-rel-{c.id}"><span class="num">{c.id}</span>' in page
        assert f"<mark>{html.escape(c.quote)}</mark>" in page
    assert 'class="cite"' not in page and 'class="short-answer"' not in page


@pytest.mark.parametrize("outcome", ["none", "answered"])  # "answered": a mode without outcomes
def test_render_not_found_has_no_sources(outcome: str) -> None:
    answer = Answer(
        question=UNANSWERABLE,
        answer=not_found("en"),
        citations=[],
        answerable=False,
        mode="extractive",
        outcome=outcome,  # type: ignore[arg-type]
    )
    assert sources_for(answer, {}) == []
    page = render_page(CONTEXT, asked=answer.question, answer=answer, sources=())
    assert 'class="reply is-unanswerable"' in page and "is-related" not in page
    assert not_found("en") in page and NOTICES["none"] in page
    assert 'class="sources' not in page and "相关段落" not in page


def test_key_accepted_from_form_field_or_bearer_header() -> None:
    keys = ["a-key", "b-key"]
    assert key_accepted(keys, "b-key", "")
    assert key_accepted(keys, " a-key ", "")
    assert key_accepted(keys, "", "Bearer a-key")
    assert key_accepted(keys, "wrong", "bearer b-key")
    assert not key_accepted(keys, "", "")
    assert not key_accepted(keys, "wrong", "Basic a-key")


# --- HTTP against the real server -------------------------------------------------------------


def test_page_is_served_with_security_and_cache_headers(open_server: str) -> None:
    status, headers, page = _http(f"{open_server}/")
    assert status == 200
    assert headers["content-type"] == "text/html; charset=utf-8"
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["cache-control"] == "no-cache"
    assert '<form id="ask-form" class="composer" method="post" action="/ask"' in page
    assert 'data-keys="off"' in page and 'data-llm="off"' in page and 'id="mode"' not in page
    assert "已收录 2 篇文章" in page


@pytest.mark.parametrize(
    ("name", "media_type"),
    [("app.css", "text/css; charset=utf-8"), ("app.js", "text/javascript; charset=utf-8")],
)
def test_static_assets_have_types_and_versioned_caching(
    open_server: str, name: str, media_type: str
) -> None:
    _, _, page = _http(f"{open_server}/")
    found = re.search(rf'"/static/{re.escape(name)}\?v=([0-9a-f]+)"', page)
    assert found, f"the page links {name} with a version"
    status, headers, body = _http(f"{open_server}/static/{name}?v={found.group(1)}")
    assert status == 200 and headers["content-type"] == media_type and body
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    assert headers["x-content-type-options"] == "nosniff"
    status, headers, _ = _http(f"{open_server}/static/{name}?v=old")
    assert headers["cache-control"] == "no-cache"
    status, _, _ = _http(f"{open_server}/static/{name}", headers={"If-None-Match": headers["etag"]})
    assert status == 304


@pytest.mark.parametrize("path", ["/static/index.html", "/static/render.py", "/static/..%2Fapp.py"])
def test_only_the_page_assets_are_served(open_server: str, path: str) -> None:
    status, headers, body = _http(f"{open_server}{path}")
    assert status == 404 and headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["message"]


def test_form_post_renders_the_answer_with_citations(open_server: str) -> None:
    status, headers, page = _http(f"{open_server}/ask", {"question": QUESTION})
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert 'class="intro" hidden' in page
    assert '<a class="cite" href="#t1-src-1">[1]</a>' in page
    unbolded = re.sub(r"</?strong[^>]*>", "", page)  # the short answer may be bold in the quote
    assert re.search(r'<li id="t1-src-1">.*<mark>[^<]*' + re.escape(QUOTE_PART), unbolded)
    assert '<span class="date">2024-09-21</span>' in page


@pytest.mark.parametrize(
    ("form", "status", "message"),
    [
        ({"question": "   "}, 400, "the question is empty"),
        ({"question": QUESTION, "mode": "poetry"}, 400, "unknown mode"),
        ({"question": "问" * 2001}, 400, "the limit is 2000"),
    ],
)
def test_form_errors_are_pages_too(
    open_server: str, form: dict[str, str], status: int, message: str
) -> None:
    got, headers, page = _http(f"{open_server}/ask", form)
    assert got == status and headers["content-type"] == "text/html; charset=utf-8"
    assert 'class="reply is-error"' in page and message in page


def test_form_shows_the_short_answer_of_a_factoid_question(open_server: str) -> None:
    short = _api_answer(open_server, FACTOID)["short_answer"]
    if short is None:
        pytest.skip("the answer layer gives no short answer for this question")
    status, _, page = _http(f"{open_server}/ask", {"question": FACTOID})
    assert status == 200
    found = re.search(
        r'<p class="short-answer">.*?<a class="short-link" href="#(t1-src-\d+)">'
        r"<strong>([^<]*)</strong></a>",
        page,
    )
    assert found and found.group(2) == html.escape(short["text"])
    assert found.start() < page.index('<div class="answer">')
    target = page[page.index(f'<li id="{found.group(1)}">') :]
    assert target.index(f'<strong class="span">{found.group(2)}</strong>') < target.index("</li>")


@pytest.mark.parametrize("question", UNRELATED)
def test_form_shows_related_passages_or_not_found_for_an_unrelated_question(
    open_server: str, question: str
) -> None:
    expected = _api_answer(open_server, question)
    status, _, page = _http(f"{open_server}/ask", {"question": question})
    assert status == 200 and 'class="short-answer"' not in page and 'class="cite"' not in page
    assert f'<div class="answer">{html.escape(expected["answer"])}</div>' in page
    if expected["outcome"] == "related":
        assert expected["related"] and 'class="reply is-related"' in page
        assert NOTICES["related"] in page and "<h2>相关段落</h2>" in page
        assert page.count('<li id="t1-rel-') == len(expected["related"])
        assert "<h2>来源</h2>" not in page
    else:
        assert expected["outcome"] == "none" and expected["answer"] in (
            not_found("zh"),
            not_found("en"),
        )
        assert 'class="reply is-unanswerable"' in page and NOTICES["none"] in page
        assert 'class="sources' not in page


def test_with_keys_on_the_page_loads_and_the_api_needs_the_key(xss_server: str) -> None:
    status, _, page = _http(f"{xss_server}/")
    assert status == 200 and 'data-keys="on"' in page and 'data-llm="on"' in page
    assert '<noscript><label class="key-field">' in page and 'id="mode"' in page
    found = re.search(r'"(/static/app\.js\?v=[0-9a-f]+)"', page)
    assert found and _http(f"{xss_server}{found.group(1)}")[0] == 200
    assert _http(f"{xss_server}/ask", {"question": XSS_PRICE})[0] == 401
    status, _, page = _http(
        f"{xss_server}/ask", {"question": XSS_PRICE}, {"Authorization": f"Bearer {KEY}"}
    )
    assert status == 200 and "&lt;script&gt;window.__xss=1&lt;/script&gt;" in page
    assert "<script>window" not in page and "<img" not in page


def test_form_key_field_works_without_a_header(xss_server: str) -> None:
    status, _, page = _http(f"{xss_server}/ask", {"question": XSS_PRICE, "key": KEY})
    assert status == 200 and "售价为1999元" in page
    status, _, page = _http(f"{xss_server}/ask", {"question": XSS_PRICE, "key": "wrong"})
    assert status == 401 and "API 密钥" in page


# --- Chromium ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} missing: apt-get install chromium fonts-noto-cjk")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A browser page on one server, recording uncaught page errors."""

    def __init__(self, browser: Any, url: str, viewport: dict[str, int], **options: Any) -> None:
        self.context = browser.new_context(
            viewport=viewport,
            device_scale_factor=2 if viewport["width"] < 600 else 1,
            locale="zh-CN",
            **options,
        )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.goto(f"{url}/")

    def ask(self, question: str) -> None:
        self.page.fill("#question", question)
        self.page.press("#question", "Enter")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"web-{name}.png"))

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"errors on the page: {self.errors}"


@pytest.fixture
def open_page(browser: Any, open_server: str) -> Iterator[Any]:
    pages: list[Page] = []

    def make(viewport: dict[str, int] = LAPTOP, **options: Any) -> Page:
        pages.append(Page(browser, open_server, viewport, **options))
        return pages[-1]

    yield make
    for page in pages:
        page.close()


def _expect() -> Any:
    return pytest.importorskip("playwright.sync_api").expect


def _mark_in_view(page: Any) -> bool:
    return bool(
        page.evaluate(
            """() => {
                const m = document.querySelector('#reader mark.current').getBoundingClientRect();
                const b = document.getElementById('reader-body').getBoundingClientRect();
                return m.height > 0 && m.top >= b.top && m.top < b.bottom;
            }"""
        )
    )


def _expect_unanswered(turn: Any, expected: dict[str, Any]) -> None:
    """The reply in ``turn`` (JavaScript or not) shows the API's "related" or "none" outcome."""
    expect = _expect()
    outcome = expected["outcome"]
    reply = turn.locator(REPLY_CLASS[outcome])
    expect(reply.locator(".answer")).to_have_text(expected["answer"])
    expect(reply.locator(".notice")).to_have_text(NOTICES[outcome])
    expect(reply.locator(".short-answer, .cite")).to_have_count(0)
    if outcome == "related":
        expect(reply.locator(".sources.related h2")).to_have_text("相关段落")
        quotes = reply.locator(".sources.related .quote")
        expect(quotes).to_have_count(len(expected["related"]))
        for i, c in enumerate(expected["related"]):
            expect(quotes.nth(i)).to_contain_text(c["quote"])
        expect(reply.locator(".sources:not(.related)")).to_have_count(0)
    else:
        assert outcome == "none"
        expect(reply.locator(".sources")).to_have_count(0)


def _shortly_above(page: Any, upper: str, lower: str) -> bool:
    """Whether element ``upper`` ends above where element ``lower`` starts."""
    a = page.locator(upper).bounding_box()
    b = page.locator(lower).bounding_box()
    return bool(a and b and a["y"] + a["height"] <= b["y"] + 1)


@pytest.mark.slow
def test_ask_read_the_source_and_follow_up(open_page: Any) -> None:
    expect = _expect()
    p = open_page()
    page = p.page
    expect(page.locator("#intro h1")).to_have_text("问问这些文章")
    assert page.locator("#mode").count() == 0  # no LLM configured: no mode selector
    p.shot("laptop-start")

    p.ask(QUESTION)
    reply = page.locator("#c1 .reply")
    expect(reply.locator(".sources li")).to_have_count(1)
    expect(reply.locator(".answer")).to_contain_text(QUOTE_PART)
    expect(reply.locator(".source-head .date")).to_have_text("2024-09-21")
    expect(reply.locator(".quote")).to_contain_text(QUOTE_PART)
    expect(page.locator("#intro")).to_be_hidden()

    reply.locator("a.cite").first.click()
    mark = page.locator("#reader mark.current")
    expect(mark).to_contain_text(QUOTE_PART)
    expect(page.locator("#reader-title")).to_contain_text("阿里云要建一条通往 AGI")
    page.wait_for_function("document.getElementById('reader-body').scrollTop > 0")
    assert _mark_in_view(page)
    p.shot("laptop-source")
    page.keyboard.press("Escape")
    expect(page.locator("#reader")).to_be_hidden()

    with page.expect_request("**/v1/chat/completions") as request:
        p.ask(FOLLOW_UP)
    sent = json.loads(request.value.post_data)
    assert sent["model"] == "qianwen-rag" and sent["stream"] is True and "mode" not in sent
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][0]["content"] == QUESTION and "[1]" in sent["messages"][1]["content"]
    second = page.locator("#c2 .reply")
    expect(second.locator(".rewrite")).to_contain_text("共享显存")
    expect(second.locator(".answer")).to_contain_text("1.5TB 共享显存")
    p.shot("laptop-follow-up")

    page.click("#new-chat")
    expect(page.locator("#conversation .turn")).to_have_count(0)
    expect(page.locator("#intro")).to_be_visible()
    with page.expect_request("**/v1/chat/completions") as request:
        p.ask(QUESTION)
    assert len(json.loads(request.value.post_data)["messages"]) == 1
    expect(page.locator("#c1 .sources li")).to_have_count(1)


@pytest.mark.slow
def test_short_answer_in_bold_above_the_cited_sentence(open_page: Any, open_server: str) -> None:
    expected = _api_answer(open_server, FACTOID)
    short = expected["short_answer"]
    if short is None:
        pytest.skip("the answer layer gives no short answer for this question")
    expect = _expect()
    p = open_page()
    page = p.page
    p.ask(FACTOID)
    line = page.locator("#c1 .short-answer")
    expect(line.locator(".short-link strong")).to_have_text(short["text"])
    weight = line.locator("strong").evaluate("e => getComputedStyle(e).fontWeight")
    assert int(weight) >= 700
    first = expected["citations"][0]
    expect(page.locator("#c1 .answer")).to_contain_text(first["quote"])
    assert _shortly_above(page, "#c1 .short-answer", "#c1 .answer")
    expect(page.locator("#c1 .resolved")).to_have_count(1 if short["resolved"] else 0)
    expect(page.locator("#c1 .sources .quote strong.span")).to_have_text(short["text"])
    expect(page.locator("#c1 .meta")).to_contain_text(f"置信度 {expected['confidence']:.2f}")
    p.shot("laptop-short-answer")

    line.locator(".short-link").click()  # the source opens on the short answer's words
    expect(page.locator("#reader-kicker")).to_have_text("短答案")
    expect(page.locator("#reader mark.current")).to_have_text(short["text"])
    expect(page.locator("#reader mark.holder")).to_have_text(first["quote"])
    page.wait_for_function("document.getElementById('reader-body').scrollTop > 0")
    assert _mark_in_view(page)
    p.shot("laptop-short-answer-source")
    page.keyboard.press("Escape")

    # A relative date is shown restated beside the words of the article.
    dated = _api_answer(open_server, RELATIVE_DATE)["short_answer"]
    p.ask(RELATIVE_DATE)
    expect(page.locator("#c2 .meta")).to_be_visible()
    if dated is None:
        expect(page.locator("#c2 .short-answer")).to_have_count(0)
    else:
        expect(page.locator("#c2 .short-answer strong")).to_have_text(dated["text"])
        resolved = page.locator("#c2 .short-answer .resolved")
        if dated["resolved"]:
            expect(resolved).to_have_text(f"即 {dated['resolved']}")
        else:
            expect(resolved).to_have_count(0)
    p.shot("laptop-short-answer-date")


@pytest.mark.slow
def test_unrelated_questions_show_related_passages_or_not_found(
    open_page: Any, open_server: str
) -> None:
    expect = _expect()
    p = open_page()
    page = p.page
    for question in UNRELATED:
        expected = _api_answer(open_server, question)
        page.click("#new-chat")  # a question of its own, not a follow-up
        p.ask(question)
        _expect_unanswered(page.locator("#c1"), expected)
        p.shot(f"laptop-unrelated-{expected['outcome']}")
        if expected["outcome"] == "related":
            page.locator("#c1 .sources.related .source-title").first.click()
            expect(page.locator("#reader-kicker")).to_have_text("相关段落 1")
            expect(page.locator("#reader mark.current")).to_have_text(
                expected["related"][0]["quote"]
            )
            page.keyboard.press("Escape")
            expect(page.locator("#reader")).to_be_hidden()


@pytest.mark.slow
def test_phone_width(open_page: Any, open_server: str) -> None:
    expect = _expect()
    p = open_page(PHONE)
    page = p.page
    p.shot("phone-start")
    p.ask(QUESTION)
    expect(page.locator("#c1 .sources li")).to_have_count(1)
    p.ask(UNANSWERABLE)
    _expect_unanswered(page.locator("#c2"), _api_answer(open_server, UNANSWERABLE))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    p.shot("phone-answer")
    page.locator("#c1 a.cite").first.click()
    expect(page.locator("#reader mark.current")).to_contain_text(QUOTE_PART)
    box = page.locator("#reader").bounding_box()
    assert box and box["width"] >= PHONE["width"] - 1  # the article takes the whole screen
    page.wait_for_function("document.getElementById('reader-body').scrollTop > 0")
    assert _mark_in_view(page)
    p.shot("phone-source")


@pytest.mark.slow
def test_thinking_unanswerable_server_error_and_network_down(
    open_page: Any, open_server: str
) -> None:
    expect = _expect()
    p = open_page()
    page = p.page

    held: list[Any] = []
    page.route("**/v1/chat/completions", lambda route: held.append(route))  # hold: thinking
    p.ask(QUESTION)
    expect(page.locator("#c1 .reply.is-thinking .status")).to_have_text("正在查找相关文章")
    expect(page.locator("#send")).to_be_disabled()
    held[0].continue_()
    page.unroute("**/v1/chat/completions")
    expect(page.locator("#c1 .sources li")).to_have_count(1)

    p.ask(UNANSWERABLE)
    _expect_unanswered(page.locator("#c2"), _api_answer(open_server, UNANSWERABLE))

    error = {"error": {"message": "the index is still loading", "code": "index_missing"}}
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(status=503, json=error),
    )
    p.ask(QUESTION)
    expect(page.locator("#c3 .reply.is-error .notice")).to_have_text(
        "服务器出错：the index is still loading"
    )
    page.unroute("**/v1/chat/completions")
    in_band = 'data: {"error": {"message": "LLM stream failed", "code": "llm_error"}}\n\n'
    page.route(
        "**/v1/chat/completions",
        lambda route: route.fulfill(
            status=200, content_type="text/event-stream", body=f"{in_band}data: [DONE]\n\n"
        ),
    )
    page.locator("#c3 .retry").click()
    expect(page.locator("#c3 .reply.is-error .notice")).to_have_text(
        "服务器出错：LLM stream failed"
    )
    page.unroute("**/v1/chat/completions")
    p.shot("laptop-errors")

    p.context.set_offline(True)
    expect(page.locator("#net-banner")).to_be_visible()
    page.locator("#c3 .retry").click()
    expect(page.locator("#c3 .reply.is-error .notice")).to_have_text(
        "网络已断开，请检查网络后重试。"
    )
    p.shot("laptop-offline")
    p.context.set_offline(False)
    expect(page.locator("#net-banner")).to_be_hidden()
    page.locator("#c3 .retry").click()
    expect(page.locator("#c3 .sources li")).to_have_count(1)


@pytest.mark.slow
@pytest.mark.parametrize(("viewport", "label"), [(LAPTOP, "laptop"), (PHONE, "phone")])
def test_the_page_works_without_javascript(
    open_page: Any, open_server: str, viewport: dict[str, int], label: str
) -> None:
    expect = _expect()
    p = open_page(viewport, java_script_enabled=False)
    page = p.page
    page.fill("#question", QUESTION)
    page.click("#send")
    expect(page).to_have_url(re.compile(r"/ask$"))
    cite = page.locator("#t1 a.cite").first
    expect(cite).to_have_attribute("href", "#t1-src-1")
    expect(page.locator("#t1-src-1 mark")).to_contain_text(QUOTE_PART)
    expect(page.locator("#t1-src-1 .date")).to_have_text("2024-09-21")
    cite.click()
    expect(page).to_have_url(re.compile(r"#t1-src-1$"))
    p.shot(f"{label}-no-javascript")
    for question in UNRELATED:
        page.fill("#question", question)
        page.click("#send")
        _expect_unanswered(page.locator("#t1"), _api_answer(open_server, question))
    p.shot(f"{label}-no-javascript-unrelated")
    page.click("#new-chat")
    expect(page.locator("#intro")).to_be_visible()


@pytest.mark.slow
def test_hostile_article_markup_shows_as_text_and_never_runs(browser: Any, xss_server: str) -> None:
    expect = _expect()
    p = Page(browser, xss_server, LAPTOP)
    page = p.page
    try:
        dialog = page.locator("#key-dialog")
        expect(dialog).to_be_visible()  # keys are on: the page asks for one first
        page.fill("#key-input", "wrong")
        page.press("#key-input", "Enter")
        expect(page.locator("#key-error")).to_have_text("密钥无效，请检查后重试。")
        page.fill("#key-input", KEY)
        page.press("#key-input", "Enter")
        expect(dialog).to_be_hidden()
        assert page.evaluate("sessionStorage.getItem('qianwen-rag.api-key')") == KEY
        assert page.evaluate("localStorage.length") == 0
        expect(page.locator("#mode")).to_have_value("auto")  # an LLM is configured

        p.ask(XSS_PRICE)
        reply = page.locator("#c1 .reply")
        expect(reply.locator(".answer")).to_contain_text(f"翻译耳机{SCRIPT}，售价为1999元")
        expect(reply.locator(".source-title")).to_have_text(Path(XSS_FILE).stem)
        reply.locator("a.cite").first.click()
        expect(page.locator("#reader mark.current")).to_contain_text(SCRIPT)
        expect(page.locator("#reader-body")).to_contain_text(IMG)
        expect(page.locator("#reader-title")).to_have_text(Path(XSS_FILE).stem)
        p.shot("laptop-hostile-article")
        page.keyboard.press("Escape")

        page.select_option("#mode", "llm")
        with page.expect_request("**/v1/chat/completions") as request:
            p.ask(XSS_LANGUAGES)
        assert json.loads(request.value.post_data)["mode"] == "llm"
        assert request.value.headers["authorization"] == f"Bearer {KEY}"
        second = page.locator("#c2 .reply")
        expect(second.locator(".meta")).to_contain_text("大模型生成")
        # The LLM's reply reaches the page as plain text: the verifier strips markup (rag.markup).
        expect(second.locator(".answer")).to_contain_text("星河科技")
        expect(second.locator(".answer")).not_to_contain_text("<script")

        assert page.evaluate("typeof window.__xss") == "undefined"
        markup = "#conversation script, #conversation img, #reader script, #reader img, b"
        assert page.locator(markup).count() == 0
    finally:
        p.close()

    # The no-JavaScript page renders the same article on the server. It shows a key field; the
    # header gets the form past the middleware, which does not read that field yet.
    p = Page(
        browser,
        xss_server,
        PHONE,
        java_script_enabled=False,
        extra_http_headers={"Authorization": f"Bearer {KEY}"},
    )
    try:
        p.page.fill("#question", XSS_PRICE)
        p.page.fill("input[name=key]", KEY)
        p.page.click("#send")
        expect(p.page.locator("#t1 .answer")).to_contain_text(SCRIPT)
        expect(p.page.locator("#t1-src-1 .source-title")).to_have_text(Path(XSS_FILE).stem)
        assert p.page.locator("#conversation script, #conversation img").count() == 0
        p.shot("phone-hostile-article-no-javascript")
    finally:
        p.close()


# --- the articles: start page list, example questions, upload and delete ----------------------

LIBRARY_ARTICLES = {
    "server.txt": (
        "阿里云发布新一代磐久服务器\n2024-09-19\n\n作者：李四\n\n"
        "阿里云在杭州云栖大会上发布了新一代磐久服务器。"
        "新服务器单机支持16卡GPU，可提供最高3.2Tbps的扩展网络带宽。\n"
    ),
    "price.txt": (
        "通义千问主力模型再次降价\n2024-05-21\n\n"
        "通义千问三款主力模型再次大幅降价，最高降幅达到85%。"
        "降价后每百万tokens的价格低至0.3元。\n"
    ),
}
EARPHONE = ("耳机.txt", XSS_ARTICLE.replace(SCRIPT, "").replace(IMG, ""))
ROBOT = (
    "robot.md",
    "# 杭州机器人展开幕\n\n2024-10-08\n\n杭州机器人展今天开幕，共有120家企业参展。\n"
    "展会上最受关注的是一款能爬楼梯的送货机器人。\n",
)


def test_render_lists_articles_and_examples_escaped() -> None:
    from rag.web.page import example_questions
    from rag.web.render import ArticleRow

    rows = (
        ArticleRow("x.txt", f"标题{SCRIPT}", "2024-05-01", 3, "html", "gb18030", author="张三"),
        ArticleRow("y.txt", "没有日期", None, 1),
    )
    examples = example_questions(rows)
    assert examples == (
        f"《标题{SCRIPT}》讲了什么？",
        "《没有日期》讲了什么？",
        f"《标题{SCRIPT}》这篇文章的作者是谁？",
    )
    context = PageContext(False, False, "extractive", 2, 99, rows, examples)
    page = render_page(context)
    assert page.count("<script") == 1 and "&lt;script&gt;" in page
    assert "2024-05-01 · 3 段 · html · gb18030" in page and "无日期 · 1 段" in page
    assert f'value="《标题{html.escape(SCRIPT)}》讲了什么？"' in page
    assert 'form class="examples" id="examples" method="post" action="/ask"' in page
    assert example_questions((rows[1],)) == ("《没有日期》讲了什么？",)  # no byline: no author
    many = tuple(ArticleRow(f"{i}.txt", f"第{i}篇", None, 1) for i in range(13))
    page = render_page(PageContext(False, False, "extractive", 13, 99, many))
    assert page.count('<li data-id="') == 10 and "另有 3 篇" in page


@pytest.fixture(scope="module")
def library_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two short articles in a temporary folder the page may change."""
    corpus = tmp_path_factory.mktemp("web-library")
    for name, text in LIBRARY_ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    return corpus


@pytest.fixture(scope="module")
def library_server(
    tmp_path_factory: pytest.TempPathFactory, library_corpus: Path, e5: E5Embedder
) -> Iterator[str]:
    """A server on :func:`library_corpus`, keys off."""
    settings = _settings(library_corpus, tmp_path_factory.mktemp("web-library-index"))
    with _serve(settings, e5) as url:
        yield url


def _drop(page: Any, selector: str, name: str, text: str) -> None:
    """Drop a file on ``selector`` the way a browser does (a DataTransfer holding a File)."""
    transfer = page.evaluate_handle(
        """([name, text]) => {
            const dt = new DataTransfer();
            dt.items.add(new File([text], name, { type: "text/plain" }));
            return dt;
        }""",
        [name, text],
    )
    page.dispatch_event(selector, "dragover", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})


@pytest.mark.slow
def test_articles_listed_uploaded_asked_and_deleted_on_the_page(
    browser: Any, library_server: str
) -> None:
    expect = _expect()
    p = Page(browser, library_server, LAPTOP)
    page = p.page
    try:
        intro = page.locator("#article-list li")
        expect(intro).to_have_count(2)
        expect(intro.first.locator(".article-title")).to_have_text("阿里云发布新一代磐久服务器")
        expect(intro.first.locator(".article-meta")).to_contain_text("2024-09-19 ·")
        examples = page.locator("#examples button")
        expect(examples.first).to_have_text("《阿里云发布新一代磐久服务器》讲了什么？")
        expect(examples.last).to_have_text("《阿里云发布新一代磐久服务器》这篇文章的作者是谁？")
        p.shot("laptop-start-articles")
        examples.last.click()
        expect(page.locator("#c1 .reply .answer")).to_contain_text("李四")

        page.click("#articles-button")
        dialog = page.locator("#articles")
        expect(dialog).to_be_visible()
        expect(dialog.locator("#articles-list li")).to_have_count(2)
        expect(page.locator("#accepted-types")).to_contain_text(".txt")
        page.set_input_files(
            "#file-input",
            files=[{"name": EARPHONE[0], "mimeType": "text/plain", "buffer": EARPHONE[1].encode()}],
        )
        expect(page.locator("#upload-message")).to_have_text("索引已更新，可以提问了。")
        expect(dialog.locator("#articles-list li")).to_have_count(3)
        expect(page.locator("#article-list li")).to_have_count(3)
        expect(page.locator("#library-line")).to_have_text("已收录 3 篇文章。")
        expect(page.locator("#build-status")).to_contain_text("3 篇文章")

        _drop(page, "#drop-zone", *ROBOT)
        expect(dialog.locator("#articles-list li")).to_have_count(4)
        robot = dialog.locator('#articles-list li[data-id="robot.md"]')
        expect(robot.locator(".article-title")).to_have_text("杭州机器人展开幕")
        expect(robot.locator(".article-meta")).to_contain_text("2024-10-08")
        robot.locator(".article-title").click()  # the whole article opens in the reader
        expect(page.locator("#reader-body")).to_contain_text("能爬楼梯的送货机器人")
        expect(page.locator("#reader-date")).to_have_text("2024-10-08")
        page.click("#reader-close")
        expect(dialog).to_be_visible()

        # An article the reader cannot use is refused with the reason; nothing changes.
        _drop(page, "#drop-zone", "空白.txt", "   \n")
        expect(page.locator("#upload-message.is-error")).to_contain_text("上传失败：'空白.txt'")
        p.shot("laptop-articles")

        # Delete: cancel first, then confirm.
        robot.locator("button.delete").click()
        robot.locator("button.cancel").click()
        expect(robot.locator("button.delete")).to_be_visible()
        robot.locator("button.delete").click()
        expect(robot).to_contain_text("删除这篇文章？")
        robot.locator("button.confirm").click()
        expect(dialog.locator("#articles-list li")).to_have_count(3)
        expect(page.locator('#article-list li[data-id="robot.md"]')).to_have_count(0)
        page.click("#articles-close")

        p.ask(XSS_PRICE)
        reply = page.locator("#c2 .reply")
        expect(reply.locator(".answer")).to_contain_text("售价为1999元")
        _, _, body = _http(f"{library_server}/api/documents/{urllib.parse.quote(EARPHONE[0])}")
        expect(reply.locator(".source-title")).to_have_text(json.loads(body)["title"])
    finally:
        p.close()


@pytest.mark.slow
def test_a_long_article_list_comes_a_page_at_a_time(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder
) -> None:
    """101 articles: the view shows the newest 100 and a button for the last one; the start
    page counts them all from the server's total."""
    corpus = tmp_path_factory.mktemp("web-many")
    for i in range(101):
        date = f"2024-{1 + i // 28:02d}-{1 + i % 28:02d}"
        text = f"第{i}号简报\n{date}\n\n第{i}号仓库今天收到了{i + 3}箱货物。\n"
        (corpus / f"{i:03d}.txt").write_text(text, encoding="utf-8")
    expect = _expect()
    settings = _settings(corpus, tmp_path_factory.mktemp("web-many-index"))
    with _serve(settings, e5) as url:
        p = Page(browser, url, LAPTOP)
        page = p.page
        try:
            expect(page.locator("#library-line")).to_have_text("已收录 101 篇文章。")
            expect(page.locator("#article-list li.more")).to_have_text("另有 91 篇")
            expect(page.locator("#article-list li").first).to_contain_text("第100号简报")
            page.click("#articles-button")
            rows, more = page.locator("#articles-list li"), page.locator("#articles-more")
            expect(rows).to_have_count(100)
            expect(rows.first).to_have_attribute("data-id", "100.txt")  # newest first
            expect(more).to_have_text("显示更多（还有 1 篇）")
            more.click()
            expect(rows).to_have_count(101)
            expect(rows.last).to_have_attribute("data-id", "000.txt")
            expect(more).to_be_hidden()
        finally:
            p.close()


@pytest.mark.slow
def test_skipped_files_and_build_progress_show_in_the_articles_view(
    browser: Any, library_server: str, library_corpus: Path
) -> None:
    expect = _expect()
    corpus = library_corpus
    (corpus / "blank.txt").write_text(" \n \n", encoding="utf-8")  # unusable in any encoding
    p = Page(browser, library_server, PHONE)
    page = p.page
    try:
        with page.expect_response("**/api/index") as response:
            page.evaluate("fetch('/api/index', {method: 'POST'})")
        assert response.value.status == 202
        page.click("#articles-button")
        skipped = page.locator("#skipped-list li")
        expect(skipped).to_have_count(1, timeout=60_000)
        expect(skipped.locator(".path")).to_have_text("blank.txt")
        expect(skipped).to_contain_text("whitespace")
        p.shot("phone-articles-skipped")
        skipped.locator("button.delete").click()  # a skipped file can be deleted too
        skipped.locator("button.confirm").click()
        expect(skipped).to_have_count(0, timeout=60_000)
        assert not (corpus / "blank.txt").exists()
        # A build shows its progress on the button and in the view while it runs: a long
        # article (about 150 new texts to embed) keeps it running for a few seconds.
        long_text = "长文章的标题\n2024-10-09\n\n" + "".join(
            f"第{i}段说明杭州第{i}号仓库存放了{i * 7}台机器人，由{i % 9}号团队维护。\n"
            for i in range(120)
        )
        _drop(page, "#drop-zone", "long.txt", long_text)
        expect(page.locator("#articles-button.is-building")).to_be_visible()
        expect(page.locator("#build-status")).to_contain_text("正在建立索引")
        expect(page.locator("#build-progress")).to_be_visible()
        expect(page.locator("#upload-message")).to_have_text(
            "索引已更新，可以提问了。", timeout=120_000
        )
        expect(page.locator("#build-progress")).to_be_hidden()
        expect(page.locator('#articles-list li[data-id="long.txt"]')).to_have_count(1)
        page.locator('#articles-list li[data-id="long.txt"] button.delete').click()
        page.locator('#articles-list li[data-id="long.txt"] button.confirm').click()
        expect(page.locator('#articles-list li[data-id="long.txt"]')).to_have_count(0)
    finally:
        (corpus / "blank.txt").unlink(missing_ok=True)
        p.close()


@pytest.mark.slow
def test_examples_work_without_javascript(browser: Any, library_server: str) -> None:
    expect = _expect()
    p = Page(browser, library_server, LAPTOP, java_script_enabled=False)
    page = p.page
    try:
        expect(page.locator("#articles-button")).to_be_hidden()
        expect(page.locator("#article-list li").first).to_be_visible()
        page.locator("#examples button").last.click()
        expect(page).to_have_url(re.compile(r"/ask$"))
        expect(page.locator("#t1 .answer")).to_contain_text("李四")
    finally:
        p.close()


@pytest.mark.slow
def test_an_upload_asks_for_the_admin_key_when_one_is_needed(
    browser: Any, tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder
) -> None:
    expect = _expect()
    corpus = tmp_path_factory.mktemp("web-admin")
    for name, text in LIBRARY_ARTICLES.items():
        (corpus / name).write_text(text, encoding="utf-8")
    settings = _settings(corpus, tmp_path_factory.mktemp("web-admin-index"))
    settings = settings.model_copy(update={"admin_keys": "page-admin"})
    with _serve(settings, e5) as url:
        p = Page(browser, url, LAPTOP)
        page = p.page
        try:
            expect(page.locator("#key-dialog")).to_be_hidden()  # asking needs no key
            expect(page.locator("#key-button")).to_be_visible()
            page.click("#articles-button")
            _drop(page, "#drop-zone", *ROBOT)
            expect(page.locator("#key-dialog")).to_be_visible()
            expect(page.locator("#key-error")).to_have_text("修改文章需要管理员密钥。")
            page.fill("#key-input", "page-admin")
            page.press("#key-input", "Enter")
            expect(page.locator('#articles-list li[data-id="robot.md"]')).to_have_count(1)
            assert (corpus / ROBOT[0]).is_file()
        finally:
            p.close()
