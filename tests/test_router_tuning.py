"""Routers opt into drift's re-tuning through `Tunable`, and registries build routers and
checks through one factory shape (options as keywords, plus the build context)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from tierwise.config import RouterConfig
from tierwise.drift.apply import retune
from tierwise.embeddings.hashing import HashingEmbedder
from tierwise.errors import ConfigError
from tierwise.learning.outcomes import read_outcomes
from tierwise.learning.store import save_router
from tierwise.learning.train import train
from tierwise.routing import HeuristicRouter, build_router, register_router
from tierwise.routing import registry as router_registry
from tierwise.routing.base import FixedRouter
from tierwise.routing.context import BuildContext
from tierwise.routing.embedding_rule import EmbeddingMargin
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.tuning import LearnedCostWeight, PreferenceThreshold, Tunable
from tierwise.types import ChatRequest, Message

FIXTURE = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
MODELS = {"cheap-model": "cheap", "strong-model": "strong"}
TIERS = ["cheap", "strong"]


def ask(text: str) -> ChatRequest:
    return ChatRequest([Message("user", text)])


@pytest.fixture(scope="module")
def saved_with_threshold(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A trained router file whose saved operating point is a threshold of 0.4."""
    trained = train(read_outcomes(FIXTURE), "logistic", HashingEmbedder(256))
    path = tmp_path_factory.mktemp("tuning") / "router.npz"
    save_router(dataclasses.replace(trained, threshold=0.4), path)
    return path


async def test_a_learned_router_tunes_the_operating_point_it_decides_by(
    saved_with_threshold: Path,
) -> None:
    router = LearnedRouter(saved_with_threshold, MODELS)
    assert isinstance(router, Tunable)
    assert router.tuning_rule(TIERS) == PreferenceThreshold(0.4, "strong", "cheap")
    assert router.retune("threshold", 1.0)
    decided = await router.decide(ask("please tell me about the integral today"), TIERS)
    assert decided.target == "cheap" and "threshold 1" in decided.reason
    assert router.retune("cost_weight", 2.0) and router.threshold is None
    rule = router.tuning_rule(TIERS)
    assert isinstance(rule, LearnedCostWeight) and rule.value == 2.0
    assert not router.retune("margin", 0.2)
    assert router.cost_weight == 2.0


async def test_an_embedding_router_tunes_its_margin() -> None:
    router = build_router(RouterConfig(kind="embedding", options={"embedder": "hashing"}))
    assert isinstance(router, Tunable)
    assert router.tuning_rule(TIERS) == EmbeddingMargin(0.1, ("cheap", "strong"))
    simple = ask("What is the capital of France?")
    assert retune(router, "margin", 1.0)
    assert (await router.decide(simple, TIERS)).target == "cheap"
    assert retune(router, "margin", -1.0)
    assert (await router.decide(simple, TIERS)).target == "strong"
    assert not retune(router, "threshold", 0.5)
    assert router.tuning_rule(TIERS).value == -1.0


def test_routers_without_a_parameter_are_left_alone() -> None:
    heuristic = HeuristicRouter.from_options()
    assert not isinstance(heuristic, Tunable)
    assert not retune(heuristic, "threshold", 0.5)
    assert not retune(None, "margin", 0.1)


async def test_factories_get_the_options_and_the_build_context() -> None:
    seen: list[BuildContext] = []

    def factory(*, context: BuildContext, target: str = "cheap") -> FixedRouter:
        seen.append(context)
        return FixedRouter(target, name="test_router_tuning")

    register_router("test_router_tuning", factory)
    try:
        nested = {"routers": [{"kind": "test_router_tuning", "options": {"target": "strong"}}]}
        chain = build_router(RouterConfig(kind="chain", options=nested))
        assert (await chain.decide(ask("hi"), TIERS)).target == "strong"
        assert len(seen) == 1 and seen[0].sub_router is not None
    finally:
        router_registry._ROUTERS.pop("test_router_tuning", None)


def test_built_in_factories_name_their_unknown_options() -> None:
    with pytest.raises(ConfigError) as info:
        build_router(RouterConfig(kind="heuristic", options={"short_chars": 9, "bogus": 1}))
    assert info.value.key == "router.bogus"
    assert "known: abstain, default, keywords, name, rules, short_chars" in str(info.value)
    for kind in ("learned", "classifier", "answer_cascade"):
        with pytest.raises(ConfigError) as info:
            build_router(RouterConfig(kind=kind, options={"bogus": 1}))
        assert info.value.key == "router.bogus" and f"router {kind!r}" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build_router(RouterConfig(kind="chain", options={"routers": [{"kind": "nope"}]}))
    assert info.value.key == "router.routers[0]"
    with pytest.raises(ConfigError, match="router registry"):
        BuildContext().router({"kind": "fixed"}, "router.fallback")


def test_the_gateway_side_of_experiments_and_drift_needs_neither_numpy_nor_scipy() -> None:
    modules = (
        "tierwise.stats",
        "tierwise.experiments.status",
        "tierwise.experiments.monitor",
        "tierwise.drift.apply",
        "tierwise.drift.config",
        "tierwise.routing.tuning",
        "tierwise.routing.registry",
    )
    code = (
        f"import sys, importlib\nfor m in {modules!r}: importlib.import_module(m)\n"
        "print(sorted({'numpy', 'scipy'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
