"""The knowledge base over HTTP, against a real uvicorn server on a temporary corpus folder:
uploads, deletes, rebuilds, build status, skipped files, keys, and questions answered while
articles come and go."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from rag.document_store import DocumentStore, StoredDocument
from rag.embedding import E5Embedder
from rag.library import TEMP_PREFIX
from tests.api_server import LiveServer, api_settings, serve

READER, ADMIN = "reader-key", "admin-key"
ARTICLE = (
    "星河科技发布新款翻译耳机\n2024-05-01\n\n"
    "星河科技在杭州发布了新款翻译耳机，售价为1999元。\n"
    "该耳机支持32种语言的实时翻译，续航时间为12小时。\n"
)
QUESTION = "星河科技的翻译耳机售价是多少？"
ARTICLES = {
    "server.txt": (
        "阿里云发布新一代磐久服务器\n2024-09-19\n\n"
        "阿里云在杭州云栖大会上发布了新一代磐久服务器。"
        "新服务器单机支持16卡GPU，可提供最高3.2Tbps的扩展网络带宽。\n"
    ),
    "price.txt": (
        "通义千问主力模型再次降价\n2024-05-21\n\n"
        "通义千问三款主力模型再次大幅降价，最高降幅达到85%。"
        "降价后每百万tokens的价格低至0.3元。\n"
    ),
}


def write_corpus(folder: Path) -> Path:
    for name, text in ARTICLES.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def library_server(
    tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder
) -> Iterator[tuple[LiveServer, Path]]:
    """A server over its own small corpus folder (tests add and delete files)."""
    corpus = write_corpus(tmp_path_factory.mktemp("kb-corpus"))
    settings = api_settings(
        tmp_path_factory.mktemp("kb-index"), corpus_dir=corpus, max_upload_bytes=65536
    )
    with serve(settings, e5) as server:
        yield server, corpus


@pytest.fixture
def client(library_server: tuple[LiveServer, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=library_server[0].url, timeout=60) as c:
        yield c


def wait_idle(client: httpx.Client, timeout: float = 120) -> dict[str, Any]:
    """The index status once no build runs or is pending (the server has swapped by then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get("/api/index").json()
        if status["state"] == "idle" and not status["pending"]:
            return dict(status)
        time.sleep(0.1)
    raise AssertionError("the build did not finish")


def upload(client: httpx.Client, *files: tuple[str, bytes], **kw: Any) -> httpx.Response:
    return client.post("/api/documents", files=[("file", f) for f in files], **kw)


def assert_error(response: httpx.Response, status: int, words: str = "") -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert words in response.json()["error"]["message"]


def test_upload_is_indexed_incrementally_answered_then_deleted(client: httpx.Client) -> None:
    before = wait_idle(client)["last_build"]
    response = upload(client, ("耳机.txt", ARTICLE.encode()))
    assert response.status_code == 202, response.text
    assert response.json()["ids"] == ["耳机.txt"]
    status = wait_idle(client)
    build = status["last_build"]
    assert build["documents"] == before["documents"] + 1
    # Only the new article was embedded: the old texts' vectors were reused.
    assert build["reused"] == before["embedded"] + before["reused"]
    assert 0 < build["embedded"] < before["embedded"] + before["reused"]
    listed = {d["id"]: d for d in client.get("/api/documents").json()["documents"]}
    assert listed["耳机.txt"]["title"] == "星河科技发布新款翻译耳机"
    assert listed["耳机.txt"]["chunks"] >= 1 and "format" in listed["耳机.txt"]
    answer = client.post("/api/ask", json={"question": QUESTION}).json()
    assert answer["outcome"] == "answered" and "1999" in answer["answer"]
    assert answer["citations"][0]["doc"] == "耳机.txt"

    assert client.delete("/api/documents/耳机.txt").status_code == 202
    wait_idle(client)
    assert "耳机.txt" not in {d["id"] for d in client.get("/api/documents").json()["documents"]}
    assert_error(client.get("/api/documents/耳机.txt"), 404)


def test_bad_uploads_are_4xx_json_and_leave_the_folder_unchanged(
    client: httpx.Client, library_server: tuple[LiveServer, Path]
) -> None:
    corpus = library_server[1]
    before = {p.name for p in corpus.iterdir()}
    assert_error(upload(client, (".hidden.txt", ARTICLE.encode())), 400, "hidden")
    assert_error(upload(client, ("run.exe", b"MZ")), 415, "run.exe")
    assert_error(upload(client, ("blank.txt", b" \n\n ")), 400, "whitespace")
    assert_error(upload(client, ("big.txt", ARTICLE.encode() * 400)), 413, "65536")
    assert_error(upload(client, ("ok.txt", ARTICLE.encode()), ("bad.txt", b"")), 400, "bad.txt")
    assert_error(client.post("/api/documents", json={"file": "x"}), 400, "file")
    assert_error(client.post("/api/documents", files=[("other", ("a.txt", b"x"))]), 400, "file")
    assert {p.name for p in corpus.iterdir()} == before
    assert not [p for p in corpus.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_a_path_in_the_file_name_is_dropped_never_followed(
    client: httpx.Client, library_server: tuple[LiveServer, Path]
) -> None:
    corpus = library_server[1]
    response = upload(client, ("../../escape.txt", ARTICLE.encode()))
    assert response.status_code == 202 and response.json()["ids"] == ["escape.txt"]
    assert (corpus / "escape.txt").is_file() and not (corpus.parent.parent / "escape.txt").exists()
    assert client.delete("/api/documents/escape.txt").status_code == 202
    wait_idle(client)


@pytest.mark.parametrize("doc_id", ["nope.txt", "../kb-index0/manifest.json", "..%2Fserver.txt"])
def test_deleting_an_unknown_document_is_404(client: httpx.Client, doc_id: str) -> None:
    assert_error(client.delete(f"/api/documents/{doc_id}"), 404)


def test_rebuild_reports_skipped_files_with_reasons(
    client: httpx.Client, library_server: tuple[LiveServer, Path]
) -> None:
    corpus = library_server[1]
    (corpus / "blank.txt").write_text(" \n \n", encoding="utf-8")  # unusable in any encoding
    try:
        response = client.post("/api/index")
        assert response.status_code == 202 and response.json()["state"] in ("idle", "building")
        skipped = wait_idle(client)["skipped"]
        assert [s["path"] for s in skipped] == ["blank.txt"] and skipped[0]["reason"]
        # A skipped file can be deleted like any article file.
        assert client.delete("/api/documents/blank.txt").status_code == 202
        assert wait_idle(client)["skipped"] == []
    finally:
        (corpus / "blank.txt").unlink(missing_ok=True)


def _keyed_server(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder, **keys: str) -> Any:
    corpus = write_corpus(tmp_path_factory.mktemp("keys-corpus"))
    return serve(api_settings(tmp_path_factory.mktemp("keys-index"), corpus_dir=corpus, **keys), e5)


def _bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_changes_need_an_admin_key_when_admin_keys_are_set(
    tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder
) -> None:
    with (
        _keyed_server(tmp_path_factory, e5, api_keys=READER, admin_keys=ADMIN) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):
        file = ("耳机.txt", ARTICLE.encode())
        assert_error(upload(c, file), 401)  # the middleware: no key at all
        assert_error(upload(c, file, headers=_bearer(READER)), 403, "not change")
        assert_error(c.post("/api/index", headers=_bearer(READER)), 403)
        assert_error(c.delete("/api/documents/server.txt", headers=_bearer(READER)), 403)
        assert c.get("/api/index", headers=_bearer(READER)).status_code == 200
        assert c.get("/api/index", headers=_bearer(ADMIN)).status_code == 200  # admins read too
        assert upload(c, file, headers=_bearer(ADMIN)).status_code == 202
        assert c.delete("/api/documents/耳机.txt", headers=_bearer(ADMIN)).status_code == 202
        wait_idle(httpx.Client(base_url=server.url, headers=_bearer(ADMIN), timeout=60))


@pytest.mark.parametrize(
    ("keys", "reader_may_change"),
    [({"api_keys": READER}, True), ({"admin_keys": ADMIN}, False)],
    ids=["api-keys-only", "admin-keys-only"],
)
def test_who_may_change_without_both_kinds_of_keys(
    tmp_path_factory: pytest.TempPathFactory,
    e5: E5Embedder,
    keys: dict[str, str],
    reader_may_change: bool,
) -> None:
    with (
        _keyed_server(tmp_path_factory, e5, **keys) as server,
        httpx.Client(base_url=server.url, timeout=60) as c,
    ):
        if reader_may_change:  # API keys only: every key holder manages the articles
            assert_error(c.post("/api/index"), 401)
            assert c.post("/api/index", headers=_bearer(READER)).status_code == 202
        else:  # admin keys only: asking stays open, changing needs the admin key
            assert c.post("/api/ask", json={"question": QUESTION}).status_code == 200
            assert_error(c.post("/api/index"), 401, "admin key")
            assert_error(c.post("/api/index", headers=_bearer("wrong")), 401)
            assert c.post("/api/index", headers=_bearer(ADMIN)).status_code == 202
        wait_idle(httpx.Client(base_url=server.url, headers=_bearer(READER), timeout=60))


@pytest.mark.slow
def test_no_question_fails_while_articles_come_and_go(
    client: httpx.Client, library_server: tuple[LiveServer, Path]
) -> None:
    """A few threads ask continuously during 10 uploads and deletes: every answer is a 200."""
    url = library_server[0].url
    stop = threading.Event()
    results: list[int] = []
    lock = threading.Lock()

    def ask_forever(question: str) -> None:
        with httpx.Client(base_url=url, timeout=60) as c:
            while not stop.is_set():
                status = c.post("/api/ask", json={"question": question}).status_code
                with lock:
                    results.append(status)

    questions = ["磐久服务器单机支持多少卡GPU?", "通义千问主力模型最高降幅是多少?", QUESTION]
    threads = [threading.Thread(target=ask_forever, args=(q,)) for q in questions]
    for t in threads:
        t.start()
    try:
        for i in range(5):
            name = f"load-{i}.txt"
            assert (
                upload(client, (name, ARTICLE.replace("1999", str(2000 + i)).encode())).status_code
                == 202
            )
            time.sleep(0.3)
            assert client.delete(f"/api/documents/{name}").status_code == 202
            time.sleep(0.3)
        wait_idle(client)
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert results and all(s == 200 for s in results), sorted(set(results))
    assert not {d["id"] for d in client.get("/api/documents").json()["documents"]} & {
        f"load-{i}.txt" for i in range(5)
    }


def test_uploads_of_other_formats_show_their_format_and_encoding(client: httpx.Client) -> None:
    """Files made by the real libraries (HTML, GBK text, Word) upload, index and answer."""
    from tests.article_files import GBK_TEXT, PANDA_HTML, docx_bytes

    files = [
        ("panda.html", PANDA_HTML.encode("utf-8")),
        ("postcard.txt", GBK_TEXT.encode("gbk")),
        ("hotpot.docx", docx_bytes()),
    ]
    response = upload(client, *files)
    assert response.status_code == 202, response.text
    wait_idle(client)
    try:
        listed = {d["id"]: d for d in client.get("/api/documents").json()["documents"]}
        assert listed["panda.html"]["format"] == "html"
        assert listed["postcard.txt"]["encoding"] in ("gbk", "gb18030")
        assert listed["hotpot.docx"]["format"] == "docx"
        answer = client.post("/api/ask", json={"question": "熊猫邮局的明信片售价是多少？"}).json()
        assert "六十元" in answer["answer"]
        assert answer["citations"][0]["doc"] == "postcard.txt"
    finally:
        for name, _ in files:
            client.delete(f"/api/documents/{name}")
        wait_idle(client)


def test_a_rebuild_of_an_unchanged_folder_builds_nothing(
    client: httpx.Client, library_server: tuple[LiveServer, Path]
) -> None:
    served = wait_idle(client)["last_build"]["id"]
    assert client.post("/api/index").status_code == 202
    assert wait_idle(client)["last_build"]["id"] == served  # nothing changed, nothing built
    corpus = library_server[1]
    (corpus / "copied.txt").write_text(ARTICLE, encoding="utf-8")  # a file copied in by hand
    try:
        assert client.post("/api/index").status_code == 202
        build = wait_idle(client)["last_build"]
        assert build["id"] != served
        assert "copied.txt" in {d["id"] for d in client.get("/api/documents").json()["documents"]}
    finally:
        client.delete("/api/documents/copied.txt")
        wait_idle(client)


# --- the list, a page at a time ------------------------------------------------------------

# (name, date or None, title): newest first, undated last, ties by title.
SHELF = [
    ("a.txt", "2023-01-05", "一月的文章"),
    ("b.txt", "2024-03-01", "三月的文章之二"),
    ("c.txt", None, "没有日期的文章"),
    ("d.txt", "2024-03-01", "三月的文章之一"),
    ("e.txt", "2022-12-31", "去年的文章"),
    ("f.txt", "2024-11-11", "最新的文章"),
    ("g.txt", "2023-07-07", "七月的文章"),
]
NEWEST_FIRST = ["f.txt", "d.txt", "b.txt", "g.txt", "a.txt", "e.txt", "c.txt"]


@pytest.fixture(scope="module")
def shelf(tmp_path_factory: pytest.TempPathFactory, e5: E5Embedder) -> Iterator[httpx.Client]:
    corpus = tmp_path_factory.mktemp("shelf-corpus")
    for name, date, title in SHELF:
        dated = f"{date}\n\n" if date else "\n"
        body = f"{title}的正文写到第{name[0]}号仓库的货物已经送达。\n"
        (corpus / name).write_text(f"{title}\n{dated}{body}", encoding="utf-8")
    settings = api_settings(tmp_path_factory.mktemp("shelf-index"), corpus_dir=corpus)
    with serve(settings, e5) as server, httpx.Client(base_url=server.url, timeout=60) as c:
        wait_idle(c)
        yield c


def test_the_list_comes_a_page_at_a_time_newest_first(shelf: httpx.Client) -> None:
    whole = shelf.get("/api/documents").json()
    assert (whole["total"], whole["offset"], whole["limit"]) == (7, 0, 100)  # the defaults
    assert [d["id"] for d in whole["documents"]] == NEWEST_FIRST
    assert whole["documents"][0] == {
        "id": "f.txt",
        "title": "最新的文章",
        "date": "2024-11-11",
        "chunks": 1,
        "format": "text",
        "encoding": "utf-8",
    }
    pages = [shelf.get(f"/api/documents?limit=3&offset={at}").json() for at in (0, 3, 6)]
    assert [len(p["documents"]) for p in pages] == [3, 3, 1]
    assert all(p["total"] == 7 and p["limit"] == 3 for p in pages)
    assert [d["id"] for p in pages for d in p["documents"]] == NEWEST_FIRST
    past = shelf.get("/api/documents?offset=7&limit=1000").json()
    assert past["documents"] == [] and past["total"] == 7


@pytest.mark.parametrize(
    "query",
    ["limit=0", "limit=1001", "limit=-5", "limit=ten", "offset=-1", "offset=x", "limit=2.5"],
)
def test_bad_page_values_are_400_json(shelf: httpx.Client, query: str) -> None:
    name = query.split("=")[0]
    assert_error(shelf.get(f"/api/documents?{query}"), 400, name)


def test_listing_reads_no_article_text(
    shelf: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The list comes from the articles' info lines: not one article is decoded for it (the
    server runs in this process, so the store's reads can be counted)."""
    decoded: list[int] = []
    read = DocumentStore._read

    def counting(store: DocumentStore, n: int) -> StoredDocument:
        decoded.append(n)
        return read(store, n)

    monkeypatch.setattr(DocumentStore, "_read", counting)
    listed = shelf.get("/api/documents?limit=1000").json()["documents"]
    assert len(listed) == 7 and decoded == []
    opened = shelf.get("/api/documents/c.txt").json()  # reading one decodes that one at most
    assert opened["title"] == "没有日期的文章" and opened["date"] is None
    assert len(decoded) <= 1
