"""End to end on the embedded default: two real local models behind the
heuristic router, offline."""

from __future__ import annotations

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
