"""Capability-aware routing: a request that needs images, audio, tools or a JSON
schema goes only to deployments that accept them, recorded as skips, and gets a
clear 400 in the client's wire format when no deployment of the route does."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest
from typer.testing import CliRunner

from tests.helpers import gateway_data, write_config
from tierwise.capabilities import request_needs
from tierwise.cli import app
from tierwise.config import parse_config
from tierwise.defaults import EMBEDDED
from tierwise.errors import AllAttemptsFailedError, ConfigError, NoCapableDeploymentError
from tierwise.gateway import Gateway
from tierwise.server.run import Running, running
from tierwise.testing import FakeUpstream
from tierwise.types import ChatRequest, Message

PIXEL = "data:image/png;base64,iVBORw0KGgo="
IMAGE_PART = {"type": "image_url", "image_url": {"url": PIXEL}}
TOOLS = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
NO_IMAGES = "no deployment of route 'auto' accepts images (needs: vision)"


def with_image(text: str = "What is in this picture?", model: str = "auto") -> ChatRequest:
    return ChatRequest([Message("user", [{"type": "text", "text": text}, IMAGE_PART])], model)


def embedded_shape(upstream: FakeUpstream) -> dict[str, Any]:
    """The embedded default (two local text-only models behind the pretrained
    router), its llama.cpp servers replaced by the fake upstream."""
    data = local_only(upstream.base_url)
    for deployment in data["deployments"].values():
        deployment["timeout"] = {"connect_s": 2, "total_s": 5}
    return data


def local_only(base_url: str) -> dict[str, Any]:
    """The embedded default's chat deployments, served at `base_url`."""
    data = copy.deepcopy(EMBEDDED)
    data["deployments"] = {
        name: {**{k: v for k, v in d.items() if k != "model_path"}, "api_base": base_url + "/v1"}
        for name, d in data["deployments"].items()
        if d.get("provider") == "llamacpp"
    }
    return data


def vision_strong(upstream: FakeUpstream, **route: Any) -> dict[str, Any]:
    """Cheap tier: an unknown OpenAI-compatible model (text, tools, JSON schema);
    strong tier: one declared to take images. The router always picks cheap."""
    data = gateway_data(upstream.base_url)
    data["deployments"]["big"]["capabilities"] = ["vision", "tools", "json_schema"]
    data["routes"] = {"auto": {"router": {"kind": "fixed", **route}, "baseline": "big"}}
    return data


def test_needs_come_from_the_request_content() -> None:
    assert request_needs(with_image()) == {"vision"}
    audio = {"type": "input_audio", "input_audio": {"data": "", "format": "wav"}}
    schema = {"type": "json_schema", "json_schema": {"name": "a", "schema": {}}}
    request = ChatRequest([Message("user", [audio])], tools=TOOLS, response_format=schema)
    assert request_needs(request) == {"audio", "tools", "json_schema"}
    plain = ChatRequest([Message("user", "hi")], response_format={"type": "json_object"})
    assert request_needs(plain) == frozenset()


def test_capabilities_default_from_the_table_then_the_provider() -> None:
    data: dict[str, Any] = {
        "deployments": {
            "mini": {"model": "gpt-4o-mini", "api_key": "k"},
            "local": {"provider": "llamacpp", "model": "smollm2-135m", "api_base": "http://x"},
            "qwen": {"provider": "llamacpp", "model": "qwen2.5-0.5b", "api_base": "http://x"},
            "vllm": {"model": "some-new-model", "api_base": "http://x"},
            "claude": {"provider": "anthropic", "model": "claude-next", "api_key": "k"},
            "gguf": {"provider": "llamacpp", "model": "my-finetune", "api_base": "http://x"},
            "declared": {"model": "some-new-model", "api_base": "http://x",
                         "capabilities": ["vision", "audio"]},
        }
    }  # fmt: skip
    found = {n: d.resolved_capabilities() for n, d in parse_config(data).deployments.items()}
    assert found == {
        "mini": {"vision", "tools", "json_schema"},
        "local": {"json_schema"},
        "qwen": {"tools", "json_schema"},
        "vllm": {"tools", "json_schema"},
        "claude": {"vision", "tools", "json_schema"},
        "gguf": {"json_schema"},
        "declared": {"vision", "audio"},
    }
    data["deployments"]["declared"]["capabilities"] = ["sight"]
    with pytest.raises(ConfigError, match=r"deployments\.declared\.capabilities"):
        parse_config(data)


async def test_an_image_on_the_embedded_default_is_refused_at_once(
    upstream: FakeUpstream,
) -> None:
    async with Gateway(parse_config(embedded_shape(upstream))) as gateway:
        with pytest.raises(NoCapableDeploymentError) as caught:
            await gateway.chat(with_image())
        with pytest.raises(NoCapableDeploymentError):
            await gateway.stream(with_image())
        text = await gateway.chat(ChatRequest([Message("user", "hi")]))
    assert str(caught.value) == NO_IMAGES
    assert caught.value.status == 400 and caught.value.param == "messages"
    assert upstream.count() == 1 and text.record.status == "ok"


@pytest.fixture
async def embedded_server(upstream: FakeUpstream) -> AsyncIterator[Running]:
    async with running(parse_config(embedded_shape(upstream))) as live:
        yield live


async def test_both_wire_formats_get_a_400_naming_the_need(
    embedded_server: Running, upstream: FakeUpstream
) -> None:
    url = embedded_server.base_url
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": "what?"}, IMAGE_PART]}]
    async with openai.AsyncOpenAI(base_url=url + "/v1", api_key="x", max_retries=0) as oai:
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.chat.completions.create(model="auto", messages=messages)
        with pytest.raises(openai.BadRequestError) as streamed:
            await oai.chat.completions.create(model="auto", messages=messages, stream=True)
    for error in (refused.value, streamed.value):
        body: Any = error.body
        assert body["type"] == "invalid_request_error" and body["message"] == NO_IMAGES
        assert body["param"] == "messages"
    source = {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    block = {"type": "image", "source": source}
    content: Any = [{"role": "user", "content": [{"type": "text", "text": "what?"}, block]}]
    async with anthropic.AsyncAnthropic(base_url=url, api_key="x", max_retries=0) as claude:
        with pytest.raises(anthropic.BadRequestError) as caught:
            await claude.messages.create(
                model="auto",
                max_tokens=16,
                messages=content,
            )
    answer: Any = caught.value.body
    assert answer["type"] == "error" and answer["error"]["type"] == "invalid_request_error"
    assert answer["error"]["message"] == NO_IMAGES
    assert upstream.count() == 0


async def test_an_image_lands_on_the_vision_tier_past_the_routers_choice(
    upstream: FakeUpstream,
) -> None:
    async with Gateway(parse_config(vision_strong(upstream))) as gateway:
        result = await gateway.chat(with_image())
        text = await gateway.chat(ChatRequest([Message("user", "hi")]))
    record = result.record
    assert record.decision is not None and record.decision.target == "cheap"
    assert record.final_deployment == "big" and record.status == "ok"
    skipped = record.attempts[0]
    assert (skipped.deployment, skipped.called, skipped.outcome) == ("mini", False, "skipped")
    assert skipped.trigger == "capability"
    assert skipped.detail == "does not accept images (needs: vision)"
    assert [a.deployment for a in record.calls] == ["big"]
    assert upstream.count("cheap-model") == 1 and upstream.count("strong-model") == 1
    assert text.record.final_deployment == "mini"


async def test_a_streamed_image_skips_the_text_tier_too(upstream: FakeUpstream) -> None:
    gateway = Gateway(parse_config(vision_strong(upstream)))
    async with gateway, await gateway.stream(with_image()) as stream:
        text = "".join([d.text async for d in stream])
    assert text and stream.record.final_deployment == "big"
    assert [a.trigger for a in stream.record.attempts] == ["capability", None]
    assert upstream.count("cheap-model") == 0


async def test_a_tier_without_the_capability_falls_back_to_one_with_it(
    upstream: FakeUpstream,
) -> None:
    """The router picks strong, text-only; the cheap tier takes images."""
    data = gateway_data(upstream.base_url)
    data["deployments"]["mini"]["capabilities"] = ["vision"]
    data["routes"] = {"auto": {"router": {"kind": "fixed", "target": "strong"}}}
    async with Gateway(parse_config(data)) as gateway:
        result = await gateway.chat(with_image())
    assert result.record.final_deployment == "mini"
    assert upstream.count("strong-model") == 0


async def test_tools_on_the_embedded_default_go_to_the_model_with_a_tool_template(
    upstream: FakeUpstream,
) -> None:
    request = ChatRequest([Message("user", "hi [[tool]]")], tools=TOOLS)
    async with Gateway(parse_config(embedded_shape(upstream))) as gateway:
        result = await gateway.chat(request)
    assert result.record.final_deployment == "qwen2.5-0.5b"
    assert result.response.tool_calls() and upstream.count("smollm2-135m") == 0


async def test_skips_for_capability_and_context_window_are_the_clients_fault(
    upstream: FakeUpstream,
) -> None:
    data = vision_strong(upstream)
    data["deployments"]["big"]["context_window"] = 64
    long = "Describe every object in this picture in great detail please. " * 20
    async with Gateway(parse_config(data)) as gateway:
        with pytest.raises(AllAttemptsFailedError) as caught:
            await gateway.chat(with_image(long))
    assert caught.value.status == 400
    assert [a.trigger for a in caught.value.record.attempts] == ["capability", "context_window"]
    assert upstream.count() == 0


def test_route_explain_names_the_filter(tmp_path: Path) -> None:
    upstream_url = "http://127.0.0.1:9"
    data = gateway_data(upstream_url)
    data["deployments"]["big"]["capabilities"] = ["vision", "tools", "json_schema"]
    data["routes"] = {"auto": {"router": "fixed", "baseline": "big"}}
    path = write_config(tmp_path, data)
    runner = CliRunner()
    args = ["route", "--config", str(path), "--explain", "hello", "--needs", "vision"]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    assert "start: strong" in shown.output and "needs: vision" in shown.output
    assert "filter: skips mini (lacks vision)" in shown.output
    assert "filter: start moved from cheap to strong" in shown.output
    assert "plan: cheap[mini] -> strong[big]" in shown.output
    short = runner.invoke(app, ["route", "--config", str(path), "hello", "--needs", "vision"])
    assert short.output.strip() == "strong"
    plain = runner.invoke(app, ["route", "--config", str(path), "--explain", "hello"])
    assert "start: cheap" in plain.output and "filter" not in plain.output
    listed = runner.invoke(app, ["models", "--config", str(path)]).output.splitlines()
    assert listed[0].endswith("capabilities")
    accepts = {line.split()[0]: line.split()[-1] for line in listed[1:]}
    assert accepts["mini"] == "tools,json_schema"
    assert accepts["big"] == "vision,tools,json_schema"


def test_route_explain_refuses_what_no_deployment_takes(tmp_path: Path) -> None:
    path = write_config(tmp_path, local_only("http://127.0.0.1:9"))
    args = ["route", "--config", str(path), "--explain", "what is this", "--needs", "vision"]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 1 and NO_IMAGES in refused.output
