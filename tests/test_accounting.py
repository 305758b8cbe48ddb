"""Exact accounting, including the seed's worked example of the router tax."""

from __future__ import annotations

from decimal import Decimal

from tierwise.accounting import bill, totals
from tierwise.pricing import Price
from tierwise.record import AttemptRecord, CheckResult, CostBreakdown, Decision
from tierwise.types import Usage

D = Decimal


def test_seed_worked_example_router_tax() -> None:
    """70% cheap at $0.001 router + $0.003 vs $0.05 expensive: $0.018 vs $0.05, 64% saved.

    Exactly, 0.7 x 0.004 + 0.3 x 0.051 = $0.0181 per request and 63.8% saved; the
    seed's figures are these, rounded."""
    router = D("0.001")
    cheap = [
        CostBreakdown(attempts_usd=D("0.003"), router_usd=router, baseline_usd=D("0.05"))
        for _ in range(70)
    ]
    strong = [
        CostBreakdown(attempts_usd=D("0.05"), router_usd=router, baseline_usd=D("0.05"))
        for _ in range(30)
    ]
    result = totals(cheap + strong)
    assert result.requests == 100
    per_request = result.total_usd / result.requests
    assert per_request == D("0.0181")
    assert round(per_request, 3) == D("0.018")
    assert result.baseline_usd / result.requests == D("0.05")
    assert result.router_usd == D("0.1")
    assert result.savings_share == D("0.638")
    assert round(result.savings_share, 2) == D("0.64")


def test_bill_counts_failed_attempts_checks_and_router() -> None:
    price = Price(D("2.50"), D("10.00"))
    failed = AttemptRecord(
        "a",
        "cheap",
        "m",
        "openai",
        outcome="rejected",
        trigger="quality_check",
        usage=Usage(100, 50),
        cost_usd=D("0.0000450"),
        checks=[CheckResult("judge", False, "bad", D("0.0002"))],
    )
    final = AttemptRecord(
        "b", "strong", "m2", "openai", usage=Usage(100, 40), cost_usd=D("0.00065")
    )
    decision = Decision("cheap", cost_usd=D("0.0001"))
    cost = bill([failed, final], decision, price, final.usage)
    assert cost.attempts_usd == D("0.000695")
    assert cost.checks_usd == D("0.0002")
    assert cost.router_usd == D("0.0001")
    assert cost.total_usd == D("0.000995")
    assert cost.baseline_usd == D("0.00065")
    assert cost.savings_usd == D("-0.000345")


def test_cached_input_is_priced_apart() -> None:
    price = Price(D("2.50"), D("10.00"), D("1.25"))
    assert price.cost_usd(Usage(1_000_000, 0, 400_000)) == D("2.0")
    assert price.cost_usd(Usage(3, 7)) == D("0.0000775")
