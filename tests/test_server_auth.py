"""API keys: required when configured, hashed, per-key models, never echoed."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator

import anthropic
import openai
import pytest

from tests.helpers import gateway_config
from tierwise.errors import ConfigError
from tierwise.server.auth import KeyRing
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream

SECRET = "sk-tw-team-a-0123456789abcdef"
LIMITED = "sk-tw-limited-9876543210"


@pytest.fixture
async def server(upstream: FakeUpstream) -> AsyncIterator[Running]:
    server = {
        "api_keys": [
            {"name": "team-a", "key": SECRET},
            {
                "name": "limited",
                "key_sha256": hashlib.sha256(LIMITED.encode()).hexdigest(),
                "models": ["cheap"],
            },
        ]
    }
    async with running(gateway_config(upstream.base_url, server=server)) as live:
        yield live


async def test_keys_are_required_and_checked(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    url = server.base_url + "/v1"
    messages: list[dict[str, str]] = [{"role": "user", "content": "hi"}]
    async with openai.AsyncOpenAI(base_url=url, api_key=SECRET, max_retries=0) as good:
        ok = await good.chat.completions.create(model="auto", messages=messages)  # type: ignore[arg-type]
        assert ok.choices[0].message.content
    async with openai.AsyncOpenAI(base_url=url, api_key="sk-wrong", max_retries=0) as bad:
        with pytest.raises(openai.AuthenticationError) as caught:
            await bad.chat.completions.create(model="auto", messages=messages)  # type: ignore[arg-type]
    assert "sk-wrong" not in str(caught.value.body)
    async with openai.AsyncOpenAI(base_url=url, api_key=LIMITED, max_retries=0) as limited:
        with pytest.raises(openai.PermissionDeniedError):
            await limited.chat.completions.create(model="auto", messages=messages)  # type: ignore[arg-type]
        allowed = await limited.chat.completions.create(model="cheap", messages=messages)  # type: ignore[arg-type]
        assert allowed.choices[0].message.content
    async with anthropic.AsyncAnthropic(
        base_url=server.base_url, api_key="nope", max_retries=0
    ) as claude:
        with pytest.raises(anthropic.AuthenticationError) as denied:
            await claude.messages.create(model="auto", max_tokens=5, messages=messages)  # type: ignore[arg-type]
    assert denied.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]
    assert SECRET not in caplog.text and LIMITED not in caplog.text


def test_keys_are_kept_only_as_digests() -> None:
    config = gateway_config(
        "http://127.0.0.1:9", server={"api_keys": [{"name": "a", "key": SECRET}]}
    )
    ring = KeyRing.from_config(config.server)
    assert SECRET not in repr(ring.keys) and SECRET not in repr(config)
    assert ring.keys[0].sha256 == hashlib.sha256(SECRET.encode()).digest()


def test_public_bind_without_keys_is_refused() -> None:
    config = gateway_config("http://127.0.0.1:9", server={"host": "0.0.0.0"})
    with pytest.raises(ConfigError, match="api_keys"):
        KeyRing.from_config(config.server)
    opened = config.server.model_copy(update={"allow_unauthenticated": True})
    assert KeyRing.from_config(opened).keys == []
