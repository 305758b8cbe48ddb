"""The request explorer's store reads and the report filter on SQLite and
PostgreSQL: newest first, paged, narrowed by route, model and team keys."""

from __future__ import annotations

from decimal import Decimal

from tierwise.observability.report import summarize
from tierwise.record import AttemptRecord, CostBreakdown, Decision, RequestRecord
from tierwise.store import Store, to_pusd
from tierwise.store.reports import EVERYTHING, RequestFilter

SINCE = 1_700_000_000.0
UNTIL = SINCE + 1000


def served(request_id: str, at: float, route: str, tier: str, key: str) -> RequestRecord:
    """Answered by `tier` after one failed attempt on the same tier."""
    model = f"{tier}-model"
    attempts = [
        AttemptRecord(f"{tier}-0", tier, model, "openai", outcome="error", trigger="upstream_5xx"),
        AttemptRecord(f"{tier}-1", tier, model, "openai", cost_usd=Decimal("0.00002908")),
    ]
    return RequestRecord(
        request_id,
        route,
        decision=Decision(tier, scores={tier: 0.75, "other": 0.25}, router="emb"),
        attempts=attempts,
        final_deployment=f"{tier}-1",
        final_tier=tier,
        cost=CostBreakdown(attempts_usd=Decimal("0.00002908"), baseline_usd=Decimal("0.001")),
        latency_ms=12.0,
        started_at=at,
        api_key=key,
        prompt=f"<b>{request_id}</b>",
    )


async def fill(store: Store) -> None:
    await store.record(
        [
            served("a1", SINCE + 10, "support", "cheap", "alpha-1"),
            served("a2", SINCE + 20, "support", "strong", "alpha-2"),
            served("b1", SINCE + 30, "search", "cheap", "beta-1"),
            served("b2", SINCE + 40, "search", "cheap", "beta-1"),
        ]
    )


async def test_recent_requests_are_newest_first_paged_and_filtered(store: Store) -> None:
    await fill(store)
    rows = await store.recent_requests(SINCE, UNTIL, EVERYTHING, 3)
    assert [r["request_id"] for r in rows] == ["b2", "b1", "a2"]
    older = await store.recent_requests(SINCE, UNTIL, EVERYTHING, 3, offset=3)
    assert [r["request_id"] for r in older] == ["a1"]
    assert rows[0]["cost_pusd"] == to_pusd(Decimal("0.00002908")) and rows[0]["calls"] == 2
    support = RequestFilter(route="support")
    assert [r["request_id"] for r in await store.recent_requests(SINCE, UNTIL, support, 9)] == [
        "a2",
        "a1",
    ]
    strong = RequestFilter(model="strong-model")
    assert await store.count_matching(SINCE, UNTIL, strong) == 1
    team = RequestFilter(api_keys=("alpha-1", "alpha-2"))
    assert await store.count_matching(SINCE, UNTIL, team) == 2
    assert await store.count_matching(SINCE, UNTIL, RequestFilter(api_keys=())) == 0
    both = RequestFilter(route="search", api_keys=("alpha-1",))
    assert await store.recent_requests(SINCE, UNTIL, both, 9) == []
    choices = await store.filter_choices(SINCE, UNTIL)
    assert choices == {"routes": ["search", "support"], "models": ["cheap-model", "strong-model"]}


async def test_request_detail_holds_the_decision_and_money(store: Store) -> None:
    await fill(store)
    detail = await store.request_detail("a2")
    assert detail is not None
    assert (detail["router"], detail["decision_target"], detail["final_model"]) == (
        "emb",
        "strong",
        "strong-model",
    )
    assert detail["decision_scores"] is not None and "0.75" in detail["decision_scores"]
    assert detail["cost_pusd"] == to_pusd(Decimal("0.00002908"))
    assert detail["savings_pusd"] == to_pusd(Decimal("0.001") - Decimal("0.00002908"))
    assert detail["prompt"] == "<b>a2</b>" and detail["api_key"] == "alpha-2"
    assert await store.request_detail("missing") is None


async def test_the_report_counts_only_matching_requests(store: Store) -> None:
    await fill(store)
    everything = await summarize(store, SINCE, UNTIL)
    search = await summarize(store, SINCE, UNTIL, where=RequestFilter(route="search"))
    alpha = await summarize(store, SINCE, UNTIL, where=RequestFilter(api_keys=("alpha-2",)))
    assert (everything.counts.requests, search.counts.requests) == (4, 2)
    assert search.money.spend_usd == Decimal("0.00005816")
    assert [g.route for g in search.groups] == ["search"]
    assert sum(b.requests for b in search.buckets) == 2
    assert [t.fallbacks for t in search.triggers] == [2]
    assert alpha.counts.requests == 1 and alpha.groups[0].tier == "strong"
