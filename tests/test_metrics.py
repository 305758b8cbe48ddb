"""Prometheus metrics after real traffic with faults add up to what was sent."""

from __future__ import annotations

from decimal import Decimal

import aiohttp
import openai
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import gateway_config
from tierwise.server.run import running
from tierwise.testing import FakeUpstream


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def total(
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return sum(
        v
        for (n, lab), v in found.items()
        if n == name and all((k, want) in lab for k, want in labels.items())
    )


async def test_metrics_count_requests_fallbacks_cost_and_breakers(upstream: FakeUpstream) -> None:
    routes = {"auto": {"router": "fixed", "baseline": "big", "checks": ["punt"]}}
    config = gateway_config(upstream.base_url, routes=routes)
    spent = Decimal(0)
    prompts = [
        "a",
        "b [[fault=500 model=cheap-model]]",
        "c [[fault=punt model=cheap-model]]",
        "d [[fault=429 retry_after=30 model=cheap-model]]",
        "e",
        "f",
    ]
    async with (
        running(config) as live,
        openai.AsyncOpenAI(base_url=live.base_url + "/v1", api_key="x", max_retries=0) as client,
    ):
        for prompt in prompts:
            raw = await client.chat.completions.with_raw_response.create(
                model="auto", messages=[{"role": "user", "content": prompt}]
            )
            spent += Decimal(raw.headers["x-tierwise-cost-usd"])
        async with (
            aiohttp.ClientSession() as session,
            session.get(live.base_url + "/metrics") as response,
        ):
            text = await response.text()
    found = samples(text)
    assert total(found, "tierwise_requests_total") == 6
    assert total(found, "tierwise_requests_total", tier="strong") == 5
    assert total(found, "tierwise_fallbacks_total", trigger="upstream_5xx") == 1
    assert total(found, "tierwise_fallbacks_total", trigger="quality_check") == 1
    assert total(found, "tierwise_fallbacks_total", trigger="rate_limited") == 1
    assert total(found, "tierwise_fallbacks_total", trigger="circuit_open") == 2
    assert total(found, "tierwise_errors_total", kind="upstream_5xx") == 2
    assert abs(total(found, "tierwise_cost_usd_total") - float(spent)) < 1e-12
    assert total(found, "tierwise_breaker_state", deployment="mini") == 2.0
    assert total(found, "tierwise_breaker_state", deployment="big") == 0.0
    assert total(found, "tierwise_request_latency_seconds_count", route="auto") == 6
    assert total(found, "tierwise_router_decision_seconds_count", router="fixed") == 6
