"""Drift end to end: an embedding router's traffic is logged, the prompt mix shifts
toward complex prompts, the monitor sees it and a recalibrated margin, applied
through the audit log, brings the share of strong calls back to its target."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tests.helpers import GatewayFactory
from tierwise.drift.apply import apply_calibrations
from tierwise.drift.audit import read_calibrations
from tierwise.drift.monitor import check_route
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


Prompt = Callable[[random.Random, float], str]


class Traffic:
    """Requests through the gateway, logged with the simulated time of their window."""

    def __init__(self, gateway: Gateway, store: Store, make: Prompt = prompt) -> None:
        self.gateway, self.store, self.now, self.make = gateway, store, 0.0, make
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
            request = ChatRequest([Message("user", self.make(rng, complex_share))], max_tokens=20)
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


def integral_prompt(rng: random.Random, hard_share: float) -> str:
    """The learning fixture's kind of prompt: about an integral (cheap fails) or not."""
    topic = "integral" if rng.random() < hard_share else rng.choice(("weather", "recipe"))
    words = ["please", "tell", "me", "about", "the", "quick", "question", "today", "some"]
    return " ".join([*rng.sample(words, 3), topic, *rng.sample(words, 2)])


async def test_a_learned_router_threshold_is_recalibrated_after_the_mix_shifts(
    make_gateway: GatewayFactory, tmp_path: Path
) -> None:
    from tierwise.embeddings.hashing import HashingEmbedder
    from tierwise.learning.outcomes import read_outcomes
    from tierwise.learning.store import save_router
    from tierwise.learning.train import train

    fixture = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
    path = tmp_path / "router.npz"
    save_router(train(read_outcomes(fixture), "logistic", HashingEmbedder(256)), path)
    models = {"cheap-model": "cheap", "strong-model": "strong"}
    router = {"kind": "learned", "path": str(path), "threshold": 0.5, "models": models}
    routes = {"auto": {"router": router, "baseline": "big"}}
    gateway = make_gateway(routes=routes, drift=drift_settings(strong_share=0.25))
    store = open_store(f"sqlite:///{tmp_path / 'learned.db'}")
    await store.migrate()
    traffic = Traffic(gateway, store, integral_prompt)
    try:
        await traffic.window(0.0, 200, 0.6, seed=7)
        found = await check_route(gateway, store, "auto", WINDOW)
        assert found["status"] == "applied" and found["calibration"]["parameter"] == "threshold"
        assert found["calibration"]["share_before"] > 0.5
        assert abs(found["calibration"]["share_after"] - 0.25) <= 0.02
        live: Any = gateway.targets.get("auto").router
        assert live.threshold == found["calibration"]["new_value"] > 0.5
        restored = await traffic.window(WINDOW, 200, 0.6, seed=8)
        assert abs(restored - 0.25) < 0.08
    finally:
        await traffic.writer.close()
        await store.close()
