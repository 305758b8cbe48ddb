"""1,000 requests through a primary failing 30% of the time plus a healthy
backup: every request succeeds, attempts and cost add up exactly, and the
breaker opens and recovers."""

from __future__ import annotations

import asyncio
import random
from decimal import Decimal

from tests.helpers import ManualClock
from tierwise import ChatRequest, Gateway, Message, parse_config
from tierwise.record import RequestRecord
from tierwise.testing import FakeUpstream

PRIMARY = {"input": "0.15", "output": "0.60"}
BACKUP = {"input": "2.50", "output": "10.00"}


def config(base_url: str) -> dict[str, object]:
    v1 = base_url + "/v1"
    return {
        "deployments": {
            "primary": {"model": "primary-model", "api_base": v1, "price": PRIMARY},
            "backup": {"model": "backup-model", "api_base": v1, "price": BACKUP},
        },
        "tiers": {"main": ["primary"], "spare": ["backup"]},
        "routes": {"auto": {"router": "fixed", "baseline": "backup"}},
        "fallback": {
            "retries_per_deployment": 0,
            "breaker": {"failure_threshold": 3, "cooldown_s": 0.05, "max_cooldown_s": 0.2},
        },
    }


def expected_cost(record: RequestRecord) -> Decimal:
    """Cost recomputed from the usage the upstream reported, by hand."""
    prices = {"primary": PRIMARY, "backup": BACKUP}
    total = Decimal(0)
    for attempt in record.calls:
        if attempt.usage is None:
            continue
        price = prices[attempt.deployment]
        total += (
            attempt.usage.input_tokens * Decimal(price["input"])
            + attempt.usage.output_tokens * Decimal(price["output"])
        ) / 1_000_000
    return total


async def test_thousand_requests_with_a_flaky_primary() -> None:
    async with FakeUpstream(seed=11) as upstream:
        upstream.set_failure_rate("primary-model", 0.3, fault="500")
        clock = ManualClock()  # 10 ms pass between batches; backoffs pass without waiting
        gateway = Gateway(
            parse_config(config(upstream.base_url)), rng=random.Random(5), clock=clock
        )
        records = []
        try:
            for batch in range(100):
                results = await asyncio.gather(
                    *(
                        gateway.chat(ChatRequest([Message("user", f"question {batch}-{i}")]))
                        for i in range(10)
                    )
                )
                records.extend(r.record for r in results)
                clock.at += 0.01
        finally:
            await gateway.aclose()
        calls = sum(len(r.calls) for r in records)
        failures = [a for r in records for a in r.calls if a.trigger == "upstream_5xx"]
        skipped = [a for r in records for a in r.attempts if a.trigger == "circuit_open"]

        assert len(records) == 1000 and all(r.status == "ok" for r in records)
        assert calls == upstream.count()
        assert len(failures) == upstream.count("primary-model") - sum(
            1 for r in records if r.final_deployment == "primary"
        )
        assert all(a.cost_usd == 0 for a in failures)
        assert all(r.cost.attempts_usd == expected_cost(r) for r in records)
        assert sum(r.cost.total_usd for r in records) == sum(expected_cost(r) for r in records)

        assert skipped, "the breaker never opened"
        last_skip = max(
            i for i, r in enumerate(records) if any(a.trigger == "circuit_open" for a in r.attempts)
        )
        later = records[last_skip + 1 :]
        assert any(r.final_deployment == "primary" for r in later), "breaker never recovered"
        assert 0.55 < sum(r.final_deployment == "primary" for r in records) / 1000 < 0.8
