"""`POST /v1/embeddings` through the official `openai` SDK: embedding tiers balanced,
fallback on upstream faults, priced and logged, OpenAI-format errors, and the
embedded default's MiniLM."""

from __future__ import annotations

import base64
import math
import struct
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import openai
import pytest

from tests.helpers import gateway_data
from tierwise import Gateway, parse_config
from tierwise.defaults import EMBEDDED, embedded_config
from tierwise.embedding_types import EmbeddingRequest
from tierwise.server.app import WRITER
from tierwise.server.run import Running, running
from tierwise.store import from_pusd
from tierwise.store.inspect import select
from tierwise.testing import FakeUpstream
from tierwise.testing._fake_embed import vector

SMALL = "text-embedding-3-small"
OTHER = "text-embedding-other"


def embedding_data(base_url: str, **overrides: Any) -> dict[str, Any]:
    """The usual chat config plus an embedding tier `embed` of two deployments
    (`emb-a` priced from the table, `emb-b` priced in the config) and `emb-a`
    falling back to `emb-b` when named directly."""
    data = gateway_data(base_url, **overrides)
    v1, timeout = base_url + "/v1", {"connect_s": 2, "total_s": 5}
    data["deployments"] |= {
        "emb-a": {
            "kind": "embedding",
            "model": SMALL,
            "api_base": v1,
            "timeout": timeout,
            "fallbacks": ["emb-b"],
        },
        "emb-b": {
            "kind": "embedding",
            "model": OTHER,
            "api_base": v1,
            "price": {"input": "0.5", "output": "0"},
            "timeout": timeout,
        },
    }
    data["tiers"] = {**data["tiers"], "embed": ["emb-a", "emb-b"]}
    return data


@pytest.fixture
async def server(upstream: FakeUpstream) -> AsyncIterator[Running]:
    async with running(parse_config(embedding_data(upstream.base_url))) as live:
        yield live


@pytest.fixture
async def oai(server: Running) -> AsyncIterator[openai.AsyncOpenAI]:
    url = server.base_url + "/v1"
    async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
        yield client


def close(a: list[float], b: list[float]) -> bool:
    if len(a) != len(b):
        return False
    return all(math.isclose(x, y, abs_tol=1e-6) for x, y in zip(a, b, strict=True))


async def test_single_and_batch_input_come_back_in_order(oai: openai.AsyncOpenAI) -> None:
    one = await oai.embeddings.create(model="emb-a", input="hello", encoding_format="float")
    assert len(one.data) == 1 and close(one.data[0].embedding, vector("hello", 8))
    assert one.model == SMALL and one.usage.prompt_tokens == len("hello") // 4 + 1
    texts = ["alpha", "beta", "gamma"]
    batch = await oai.embeddings.create(model="emb-a", input=texts, dimensions=16)
    assert [d.index for d in batch.data] == [0, 1, 2]
    for item, text in zip(batch.data, texts, strict=True):
        assert close(item.embedding, vector(text, 16))


async def test_base64_is_little_endian_float32(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    """The SDK asks for base64 unless told otherwise and decodes it; asked explicitly,
    it hands the string over as sent."""
    raw = await oai.embeddings.create(model="emb-a", input="hi", encoding_format="base64")
    encoded = raw.data[0].embedding
    assert isinstance(encoded, str)
    assert close(list(struct.unpack("<8f", base64.b64decode(encoded))), vector("hi", 8))
    decoded = await oai.embeddings.create(model="emb-a", input="hi")
    assert close(decoded.data[0].embedding, vector("hi", 8))
    assert all(r.body["encoding_format"] == "float" for r in upstream.requests)


async def test_a_failing_deployment_falls_back_and_is_billed_once(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    upstream.set_failure_rate(SMALL, 1.0, "500")
    raw = await oai.embeddings.with_raw_response.create(model="emb-a", input="fall back")
    answer = raw.parse()
    assert raw.headers["x-tierwise-model"] == "emb-b"
    assert raw.headers["x-tierwise-attempts"] == str(upstream.count()) != "1"
    assert answer.model == OTHER and close(answer.data[0].embedding, vector("fall back", 8))
    tokens = answer.usage.prompt_tokens
    assert Decimal(raw.headers["x-tierwise-cost-usd"]) == Decimal("0.5") * tokens / 10**6
    assert upstream.requests[0].model == SMALL and upstream.requests[-1].model == OTHER


async def test_a_tier_balances_and_routes_around_a_dead_deployment(
    oai: openai.AsyncOpenAI, upstream: FakeUpstream
) -> None:
    served = set()
    for i in range(12):
        raw = await oai.embeddings.with_raw_response.create(model="embed", input=f"t{i}")
        served.add(raw.headers["x-tierwise-model"])
        assert raw.headers["x-tierwise-status"] == "ok", "no checks judge vectors"
    assert served == {"emb-a", "emb-b"}
    upstream.clear()
    upstream.set_failure_rate(OTHER, 1.0, "503")
    for i in range(6):
        raw = await oai.embeddings.with_raw_response.create(model="embed", input=f"u{i}")
        assert raw.headers["x-tierwise-model"] == "emb-a"
    assert upstream.count(OTHER) <= 3, "the breaker opens after three failures"


async def test_embeddings_are_logged_and_priced(upstream: FakeUpstream, store_url: str) -> None:
    store = {"url": store_url, "capture_prompts": True}
    config = parse_config(embedding_data(upstream.base_url, store=store))
    async with running(config) as live:
        url = live.base_url + "/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
            raw = await client.embeddings.with_raw_response.create(
                model="emb-a", input=["log me", "and me"], user="u7"
            )
        tokens = raw.parse().usage.prompt_tokens
        writer = live.app[WRITER]
        assert writer is not None and await writer.flush()
        rows = await select(writer.store, "SELECT * FROM requests")
    assert len(rows) == 1
    row = rows[0]
    assert row["request_id"] == raw.headers["x-tierwise-request-id"]
    assert row["route"] == "emb-a" and row["status"] == "ok" and row["user_id"] == "u7"
    assert from_pusd(row["cost_pusd"]) == Decimal("0.02") * tokens / 10**6 > 0
    assert "log me" in row["prompt"]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": "emb-a", "input": []}, 400, "input"),
        ({"model": "emb-a", "input": ["ok", 3]}, 400, "input"),
        ({"model": "emb-a", "input": "x", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": "emb-a", "input": "x", "dimensions": 0}, 400, "dimensions"),
        ({"model": "auto", "input": "x"}, 400, "model"),
        ({"model": "nope", "input": "x"}, 404, "model"),
    ],
)
async def test_bad_requests_are_refused_in_openai_format(
    server: Running, upstream: FakeUpstream, body: dict[str, Any], status: int, param: str
) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(server.base_url + "/v1/embeddings", json=body) as response,
    ):
        error = (await response.json())["error"]
    assert response.status == status and error["param"] == param
    assert error["type"] in ("invalid_request_error", "not_found_error")
    assert upstream.count() == 0


async def test_sdk_raises_typed_errors(oai: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        await oai.embeddings.create(model="emb-a", input=[])
    assert refused.value.param == "input"
    with pytest.raises(openai.BadRequestError):
        await oai.chat.completions.create(
            model="embed", messages=[{"role": "user", "content": "hi"}]
        )


def minilm_only() -> dict[str, Any]:
    return {"deployments": {"minilm": EMBEDDED["deployments"]["minilm"]}}


async def test_embedded_default_serves_minilm_offline() -> None:
    pytest.importorskip("onnxruntime")
    async with running(parse_config(minilm_only())) as live:
        url = live.base_url + "/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0) as client:
            texts = ["The cat sat on the mat.", "A cat was sitting on a mat.", "Tax law"]
            result = await client.embeddings.create(model="minilm", input=texts)
    vectors = [d.embedding for d in result.data]
    assert [len(v) for v in vectors] == [384, 384, 384]
    assert all(math.isclose(math.fsum(x * x for x in v), 1.0, abs_tol=1e-4) for v in vectors)

    def cosine(a: list[float], b: list[float]) -> float:
        return math.fsum(x * y for x, y in zip(a, b, strict=True))

    assert cosine(vectors[0], vectors[1]) > cosine(vectors[0], vectors[2]) + 0.3
    assert result.usage.prompt_tokens > 0


async def test_embedded_default_config_has_minilm() -> None:
    pytest.importorskip("onnxruntime")
    async with Gateway(embedded_config()) as gateway:
        result = await gateway.embed(EmbeddingRequest(["hello"], "minilm"))
    assert len(result.response.vectors[0]) == 384
    assert result.record.final_deployment == "minilm" and result.record.status == "ok"
