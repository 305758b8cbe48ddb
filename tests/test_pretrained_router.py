"""The pretrained router shipped in the package: its checked file, tiers in price order,
deferral to the heuristic where it does not beat random, config check and a gateway."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.helpers import CHEAP_PRICE, STRONG_PRICE, GatewayFactory
from tierwise import ChatRequest, Message
from tierwise.cli import app
from tierwise.config import RouterConfig
from tierwise.defaults import EMBEDDED
from tierwise.errors import ConfigError
from tierwise.routing import build_router
from tierwise.routing.pretrained import (
    MODEL_FILE,
    MODEL_SHA256,
    PretrainedRouter,
    bands,
    load_model,
    shipped_model,
)
from tierwise.routing.prompt_kind import prompt_kind

LOW = "Which planet is largest?\nA. Mars\nB. Jupiter\nC. Venus\nD. Earth"
HIGH = (
    "A store sells pens at $2 each and notebooks at $5 each. Maria buys 12 pens and 7 "
    "notebooks, then returns 3 pens. She pays with a $100 bill. How much change does she "
    "get back, in dollars?"
)
TRUSTED_PROMPTS = [
    LOW,
    HIGH,
    "What is 7 + 5?",
    "Tom has 3 apples and buys 4 more. How many apples does he have?",
    "Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field.\nA. 0\nB. 1\nC. 2\nD. 3",
    "Statement 1 | Every group of order 4 is cyclic. Statement 2 | If H is a subgroup of "
    "G, then |H| divides |G|.\nA. True, True\nB. False, False\nC. True, False\nD. False, True",
    "The amount of energy in 3 kg of fuel is 120 MJ. What is the energy of 5 kg?",
    "John runs 3 sprints 3 times a week. He runs 60 meters each sprint. How many total "
    "meters does he run a week?",
]
OPEN_PROMPT = "Write a short poem about the sea and explain why sailors love it."


def user(text: str) -> ChatRequest:
    return ChatRequest([Message("user", text)])


def test_shipped_file_matches_its_pinned_sha256() -> None:
    assert hashlib.sha256(MODEL_FILE.read_bytes()).hexdigest() == MODEL_SHA256
    model = load_model()
    assert model.trusted and "open" not in model.trusted
    assert 0.0 < model.threshold < 1.0


def test_a_tampered_file_is_a_clear_config_error(tmp_path: Path) -> None:
    copy = tmp_path / "pretrained_router.json"
    data = MODEL_FILE.read_bytes()
    copy.write_bytes(data)
    assert load_model(copy).threshold == shipped_model().threshold
    copy.write_bytes(data.replace(b'"threshold": 0.', b'"threshold": 9.', 1))
    with pytest.raises(ConfigError) as raised:
        load_model(copy)
    message = str(raised.value)
    assert "sha256" in message and MODEL_SHA256 in message and "reinstall" in message
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "missing.json")


async def test_two_tiers_in_price_order_whatever_the_config_order() -> None:
    model = shipped_model()
    assert model.win_rate(LOW) <= model.threshold < model.win_rate(HIGH)
    assert prompt_kind(LOW) in model.trusted and prompt_kind(HIGH) in model.trusted
    prices = {"pricey": 12.5, "thrifty": 0.75}
    router = PretrainedRouter(prices=prices)
    for targets in (["thrifty", "pricey"], ["pricey", "thrifty"]):
        low = await router.decide(user(LOW), targets)
        high = await router.decide(user(HIGH), targets)
        assert (low.target, high.target) == ("thrifty", "pricey")
        assert high.scores["strong_win_rate"] > model.threshold
        assert "tier 2 of 2 by price" in high.reason and "trusted" in high.reason
    same_price = await PretrainedRouter().decide(user(HIGH), ["b", "a"])
    assert same_price.target == "a"


async def test_three_tiers_get_score_bands_by_price() -> None:
    model = shipped_model()
    prices = {"top": 20.0, "cheap": 0.5, "middle": 3.0}
    router = PretrainedRouter(prices=prices)
    cuts = bands(model.threshold, model.quantiles, 3)
    assert cuts[0] == model.threshold < cuts[1]
    landed: dict[str, list[float]] = {"cheap": [], "middle": [], "top": []}
    for text in TRUSTED_PROMPTS:
        decision = await router.decide(user(text), ["top", "middle", "cheap"])
        landed[decision.target].append(decision.scores["strong_win_rate"])
        cheap_in_two = (await router.decide(user(text), ["cheap", "top"])).target == "cheap"
        assert cheap_in_two == (decision.target == "cheap")
    assert all(landed.values()), landed
    assert max(landed["cheap"]) <= model.threshold < min(landed["middle"])
    assert max(landed["middle"]) <= cuts[1] < min(landed["top"])


async def test_the_threshold_option_moves_the_operating_point() -> None:
    model = shipped_model()
    low_win = model.win_rate(LOW)
    assert (await PretrainedRouter().decide(user(LOW), ["cheap", "strong"])).target == "cheap"
    lowered = PretrainedRouter(threshold=low_win - 0.001)
    decision = await lowered.decide(user(LOW), ["cheap", "strong"])
    assert decision.target == "strong" and f"> {low_win - 0.001:.3f}" in decision.reason


async def test_untrusted_kinds_defer_to_the_heuristic_with_the_reason() -> None:
    model = shipped_model()
    assert prompt_kind(OPEN_PROMPT) == "open" and "open" not in model.trusted
    router = PretrainedRouter()
    decision = await router.decide(user(OPEN_PROMPT), ["cheap", "strong"])
    assert decision.target == "strong" and decision.router == "pretrained"
    assert decision.scores == {"deferred": 1.0}
    assert "not better than random" in decision.reason
    assert "heuristic decides: keyword 'explain why'" in decision.reason
    short = await router.decide(user("Write a haiku."), ["cheap", "strong"])
    assert short.target == "cheap" and "heuristic decides: short" in short.reason
    undeferred = await PretrainedRouter(defer=False).decide(user(OPEN_PROMPT), ["a", "b"])
    assert "strong win rate" in undeferred.reason and undeferred.scores["deferred"] == 0.0


def test_options_are_checked() -> None:
    router = build_router(RouterConfig(kind="pretrained", options={"threshold": 0.7}))
    assert isinstance(router, PretrainedRouter) and router.threshold == 0.7
    for options, key in (
        ({"threshold": 1.5}, "router.threshold"),
        ({"defer": "no"}, "router.defer"),
    ):
        with pytest.raises(ConfigError) as raised:
            build_router(RouterConfig(kind="pretrained", options=options))
        assert raised.value.key == key


def test_the_embedded_default_routes_auto_with_it() -> None:
    assert EMBEDDED["routes"]["auto"]["router"] == "pretrained"


def write_config(tmp_path: Path, router: object) -> Path:
    v1 = "http://127.0.0.1:9/v1"
    data = {
        "deployments": {
            "mini": {"model": "cheap-model", "api_base": v1, "price": CHEAP_PRICE},
            "mid": {"model": "mid-model", "api_base": v1, "price": {"input": 1, "output": 4}},
            "big": {"model": "strong-model", "api_base": v1, "price": STRONG_PRICE},
        },
        "tiers": {"cheap": ["mini"], "middle": ["mid"], "strong": ["big"]},
        "routes": {"auto": {"router": router}},
    }
    path = tmp_path / "tierwise.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_config_check_builds_it(tmp_path: Path) -> None:
    runner = CliRunner()
    good = runner.invoke(app, ["config", "check", str(write_config(tmp_path, "pretrained"))])
    assert good.exit_code == 0, good.output
    bad_router = {"kind": "pretrained", "threshold": 2}
    bad = runner.invoke(app, ["config", "check", str(write_config(tmp_path, bad_router))])
    assert bad.exit_code == 1, bad.output
    assert "routes.auto.router.threshold" in bad.output and "from 0 to 1" in bad.output


async def test_requests_through_a_gateway_land_on_the_tier_it_picked(
    make_gateway: GatewayFactory,
) -> None:
    gateway = make_gateway(routes={"auto": {"router": "pretrained", "baseline": "big"}})
    low = await gateway.chat(user(LOW))
    high = await gateway.chat(user(HIGH))
    deferred = await gateway.chat(user(OPEN_PROMPT))
    for result, tier in ((low, "cheap"), (high, "strong"), (deferred, "strong")):
        record = result.record
        assert record.decision is not None and record.decision.router == "pretrained"
        assert record.decision.target == tier and record.final_tier == tier
    assert low.record.final_deployment == "mini" and high.record.final_deployment == "big"
    assert deferred.record.decision is not None
    assert "heuristic decides" in deferred.record.decision.reason
