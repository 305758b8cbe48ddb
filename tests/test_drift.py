"""Drift end to end: an embedding router's traffic is logged, the prompt mix shifts
toward complex prompts, the monitor sees it and a recalibrated margin, applied
through the audit log, brings the share of strong calls back to its target."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from tests.conftest import GatewayFactory
from tierwise.drift.audit import read_calibrations
from tierwise.drift.monitor import apply_calibrations, check_route
from tierwise.gateway import Gateway
from tierwise.record import RequestRecord
from tierwise.store import RecordWriter, Store, open_store
from tierwise.types import ChatRequest, Message

SIMPLE = (
    "What are your hours on {x}?",
    "How do I reset my {x} password?",
    "Thanks for the help with {x}",
    "Hi, is {x} open today?",
    "What is the return policy for {x}?",
)
COMPLEX = (
    "Analyze the {x} contract and identify every liability clause with its implications",
    "Compare three architectural approaches for {x} and recommend one with tradeoffs",
    "Debug the {x} service and explain why the race condition occurs under load",
    "Write a detailed technical specification for a distributed {x} caching system",
)
TOPICS = ("billing", "the store", "shipping", "accounts", "payments", "search", "orders")
TARGET = 0.3
WINDOW = 100.0


def prompt(rng: random.Random, complex_share: float) -> str:
    pool = COMPLEX if rng.random() < complex_share else SIMPLE
    return rng.choice(pool).format(x=rng.choice(TOPICS)) + f" (ref {rng.randrange(10**6)})"


class Traffic:
    """Requests through the gateway, logged with the simulated time of their window."""

    def __init__(self, gateway: Gateway, store: Store) -> None:
        self.gateway, self.store, self.now = gateway, store, 0.0
        self.writer = RecordWriter(store)
        gateway.sinks += [self._stamp, self.writer.submit]

    def _stamp(self, record: RequestRecord) -> None:
        record.started_at = self.now

    async def window(self, start: float, n: int, complex_share: float, seed: int) -> float:
        """`n` requests spread over [start, start + WINDOW); their strong share."""
        rng = random.Random(seed)
        strong = 0
        for i in range(n):
            self.now = start + WINDOW * i / n
            request = ChatRequest([Message("user", prompt(rng, complex_share))], max_tokens=20)
            record = (await self.gateway.chat(request)).record
            strong += record.decision is not None and record.decision.target == "strong"
        await self.writer.flush()
        return strong / n


def drift_settings(**route: Any) -> dict[str, Any]:
    return {
        "enabled": True,
        "window_s": WINDOW,
        "min_requests": 100,
        "embedding_sample": 1.0,
        "routes": {"auto": {"strong_share": TARGET, "apply": True, **route}},
    }


def embedding_route(margin: float = 0.0) -> dict[str, Any]:
    router = {"kind": "embedding", "embedder": "hashing", "margin": margin}
    return {"auto": {"router": router, "baseline": "big"}}


async def test_a_shift_in_the_prompt_mix_is_recalibrated_back_to_the_target_share(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = make_gateway(routes=embedding_route(0.12), drift=drift_settings())
    store = open_store(f"sqlite:///{tmp_path / 'drift.db'}")
    await store.migrate()
    traffic = Traffic(gateway, store)
    rng = np.random.default_rng(0)
    try:
        await traffic.window(0.0, 300, 0.2, seed=1)
        first = await check_route(gateway, store, "auto", WINDOW, rng=rng)
        assert first["status"] == "applied" and first["off_target"]
        steady = await traffic.window(WINDOW, 300, 0.2, seed=2)
        assert abs(steady - TARGET) < 0.07
        shifted = await traffic.window(2 * WINDOW, 300, 0.6, seed=3)
        assert shifted > TARGET + 0.15
        found = await check_route(gateway, store, "auto", 3 * WINDOW, rng=rng)
        assert found["drifted"] and found["status"] == "applied"
        assert any("drifted" in line for line in found["signals"])
        evidence = found["calibration"]
        assert abs(evidence["share_after"] - TARGET) <= 0.02
        assert evidence["share_before"] > TARGET + 0.15
        restored = await traffic.window(3 * WINDOW, 300, 0.6, seed=4)
        assert abs(restored - TARGET) < 0.07
        log = await read_calibrations(store, "auto")
        assert [r["applied"] for r in log] == [True, True]
        assert log[0]["old_value"] == log[1]["new_value"]
        assert log[0]["new_value"] == gateway.targets.get("auto").router.margin  # type: ignore[union-attr]
    finally:
        await traffic.writer.close()
        await store.close()


async def test_a_proposal_is_logged_but_not_applied_unless_enabled(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = make_gateway(routes=embedding_route(), drift=drift_settings(apply=False))
    store = open_store(f"sqlite:///{tmp_path / 'propose.db'}")
    await store.migrate()
    traffic = Traffic(gateway, store)
    try:
        share = await traffic.window(0.0, 200, 0.6, seed=5)
        result = await check_route(gateway, store, "auto", WINDOW)
        assert result["status"] == "proposed"
        router: Any = gateway.targets.get("auto").router
        assert router.margin == 0.0
        [entry] = await read_calibrations(store, "auto")
        assert not entry["applied"] and entry["evidence"]["share_before"] == share
        again = await check_route(gateway, store, "auto", WINDOW + 1)
        assert again["status"] == "unchanged" and len(await read_calibrations(store)) == 1
        other = make_gateway(routes=embedding_route(), drift=drift_settings())
        await apply_calibrations(other, store)
        assert other.targets.get("auto").router.margin == 0.0  # type: ignore[union-attr]
    finally:
        await traffic.writer.close()
        await store.close()


async def test_another_replica_picks_up_an_applied_calibration(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    gateway = make_gateway(routes=embedding_route(), drift=drift_settings())
    store = open_store(f"sqlite:///{tmp_path / 'replica.db'}")
    await store.migrate()
    traffic = Traffic(gateway, store)
    try:
        await traffic.window(0.0, 200, 0.6, seed=6)
        result = await check_route(gateway, store, "auto", WINDOW)
        other = make_gateway(routes=embedding_route(), drift=drift_settings())
        await apply_calibrations(other, store)
        moved: Any = other.targets.get("auto").router
        assert moved.margin == result["calibration"]["new_value"] != 0.0
        later = await check_route(other, store, "auto", WINDOW + 1)
        assert later["status"] == "waiting" and later["requests"] == 0
    finally:
        await traffic.writer.close()
        await store.close()


async def test_too_little_traffic_waits(make_gateway: GatewayFactory, tmp_path: Path) -> None:
    gateway = make_gateway(routes=embedding_route(), drift=drift_settings())
    store = open_store(f"sqlite:///{tmp_path / 'quiet.db'}")
    await store.migrate()
    try:
        result = await check_route(gateway, store, "auto", time.time())
        assert result["status"] == "waiting" and result["requests"] == 0
    finally:
        await store.close()
