"""Answer slots and the rate limit, driven directly (the HTTP side is in test_api_errors)."""

from __future__ import annotations

import asyncio
import json

import pytest

from rag.api.admission import RateLimit, Slots, text_chars

SHORT = json.dumps({"question": "阿里云在哪里?"}, ensure_ascii=False).encode()
LONG = json.dumps({"question": "问" * 300}, ensure_ascii=False).encode()
JSON = b"application/json"


@pytest.mark.parametrize(
    ("body", "content_type", "chars"),
    [
        (SHORT, JSON, 7),  # values only, not keys
        (json.dumps({"question": "问" * 300}).encode(), JSON, 300),  # escapes count once
        (b'{"messages": [{"content": "ab"}, {"content": "cd"}]}', JSON, 4),
        ("question=问问问&key=k".encode(), b"application/x-www-form-urlencoded", 4),
        (b"{broken", JSON, 0),
    ],
    ids=["json", "escaped", "chat", "form", "broken"],
)
def test_text_chars_counts_the_text_a_request_carries(
    body: bytes, content_type: bytes, chars: int
) -> None:
    assert text_chars(body, content_type) == chars


def test_short_questions_find_a_slot_while_long_ones_queue() -> None:
    async def scenario() -> list[str]:
        slots = Slots(2, long_chars=200)
        events: list[str] = []
        release = asyncio.Event()

        async def work(name: str, body: bytes) -> None:
            async with slots.slot(body, JSON):
                events.append(f"{name} in")
                if name == "long-1":
                    await release.wait()
            events.append(f"{name} out")

        first = asyncio.create_task(work("long-1", LONG))
        await asyncio.sleep(0)
        second = asyncio.create_task(work("long-2", LONG))  # waits: one long slot, taken
        await asyncio.sleep(0)
        await work("short", SHORT)  # the other slot is free for it
        release.set()
        await asyncio.gather(first, second)
        return events

    events = asyncio.run(scenario())

    assert events[:3] == ["long-1 in", "short in", "short out"]
    assert events.index("long-2 in") > events.index("long-1 out")


def test_short_searches_skip_the_slots_and_leave_batching_to_the_query_batcher() -> None:
    slots = Slots(2, long_chars=200)
    short_search = json.dumps({"query": "阿里云在哪里?"}, ensure_ascii=False).encode()
    long_search = json.dumps({"query": "问" * 300}, ensure_ascii=False).encode()

    assert not slots.needed(("POST", "/api/search"), short_search, JSON)
    assert slots.needed(("POST", "/api/search"), long_search, JSON)
    assert slots.needed(("POST", "/api/ask"), SHORT, JSON)
    assert not slots.needed(("GET", "/api/documents"), b"", b"")


def test_rate_limit_counts_per_client_and_says_when_to_retry() -> None:
    limit = RateLimit("2/minute")

    first = [limit.retry_after("ip:a") for _ in range(3)]
    other = limit.retry_after("ip:b")

    assert first[:2] == [None, None]
    assert first[2] is not None and 1 <= first[2] <= 60
    assert other is None
    assert RateLimit.client_key("1.2.3.4", b"secret") != RateLimit.client_key("1.2.3.4", None)
    assert "secret" not in RateLimit.client_key("1.2.3.4", b"secret")
