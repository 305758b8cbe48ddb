"""End to end on the embedded default: two real local models behind the
heuristic router, offline."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import anthropic
import openai
import pytest

from tierwise import ChatRequest, Gateway, Message
from tierwise.defaults import embedded_config

pytest.importorskip("xllamacpp", reason="local models need the xllamacpp wheel (make setup)")


async def test_embedded_default_routes_and_answers_with_local_models() -> None:
    async with Gateway(embedded_config()) as gateway:
        simple = await gateway.chat(ChatRequest([Message("user", "Say hello.")], max_tokens=16))
        hard = ChatRequest(
            [
                Message(
                    "user",
                    "Compare Python and Go for a web service and "
                    "recommend one. Answer in one sentence.",
                )
            ],
            max_tokens=40,
        )
        stream = await gateway.stream(hard)
        text = "".join([d.text async for d in stream])
    assert simple.record.final_deployment == "smollm2-135m"
    assert simple.response.text().strip()
    assert simple.record.decision is not None and "short" in simple.record.decision.reason
    assert stream.record.final_deployment == "qwen2.5-0.5b"
    assert text.strip()
    usage = stream.record.attempts[-1].usage
    assert usage is not None and usage.input_tokens > 10 and 0 < usage.output_tokens <= 40


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _wait_ready(base_url: str, process: subprocess.Popen[bytes], limit_s: float) -> None:
    deadline = time.monotonic() + limit_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, "tierwise serve exited early"
            try:
                async with session.get(base_url + "/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.5)
    raise AssertionError("tierwise serve did not become ready")


async def test_serve_with_no_config_answers_both_sdks(tmp_path: Path) -> None:
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "tierwise", "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        await _wait_ready(base_url, process, 300)
        async with openai.AsyncOpenAI(base_url=base_url + "/v1", api_key="x") as oai:
            raw = await oai.chat.completions.with_raw_response.create(
                model="auto", max_tokens=16, messages=[{"role": "user", "content": "Say hi."}]
            )
        assert raw.headers["x-tierwise-model"] == "smollm2-135m"
        assert raw.parse().choices[0].message.content
        async with anthropic.AsyncAnthropic(base_url=base_url, api_key="x") as claude:
            message = await claude.messages.create(
                model="qwen2.5-0.5b",
                max_tokens=16,
                messages=[{"role": "user", "content": "Name a colour."}],
            )
        assert message.content and message.usage.output_tokens > 0
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)
        log.close()
    assert "loading local model" in (tmp_path / "serve.log").read_text()


async def test_classifier_router_on_the_local_model() -> None:
    from tierwise import parse_config
    from tierwise.defaults import EMBEDDED

    data = dict(EMBEDDED)
    data["routes"] = {
        "auto": {"router": {"kind": "classifier", "deployment": "smollm2-135m", "timeout_s": 60}}
    }
    async with Gateway(parse_config(data)) as gateway:
        result = await gateway.chat(
            ChatRequest(
                [
                    Message(
                        "user", "Write a Python function that merges two sorted lists, with tests."
                    )
                ],
                max_tokens=16,
            )
        )
    decision = result.record.decision
    assert decision is not None and decision.router == "classifier", decision
    assert decision.reason.split(":")[0] in ("simple", "moderate", "complex")
    assert decision.usage is not None and decision.usage.input_tokens > 20
    assert decision.cost_usd > 0
    assert result.record.cost.router_usd == decision.cost_usd
