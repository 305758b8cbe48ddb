"""Answer cascades chosen on one table and measured on another, and run by the gateway
exactly as evaluated: the route `eval-cascade --write-route` writes is served by the real
gateway server in front of a fake upstream that replays each model's recorded answer
(with usage that prices to the table's cost), asked through the openai SDK; every
prompt's served model, models called (in order) and cost match the offline decisions."""

from __future__ import annotations

import csv
import json
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import openai
import pytest
import yaml
from typer.testing import CliRunner

from tierwise.checks.cascade_policy import CascadePolicy
from tierwise.cli import app
from tierwise.commands import check_config
from tierwise.config import parse_config
from tierwise.errors import ConfigError
from tierwise.evaluation.answers import AnswerTable, answer_codes, read_answers
from tierwise.evaluation.cascade import simulate
from tierwise.evaluation.cascade_eval import evaluate_cascades
from tierwise.learning.outcomes import OutcomeTable, read_outcomes
from tierwise.server.run import running
from tierwise.testing import FakeUpstream

FIXTURES = Path(__file__).parent / "fixtures"
TRAIN, TEST = FIXTURES / "cascade_train.csv", FIXTURES / "cascade_test.csv"
ANSWERS = FIXTURES / "cascade_train_test_answers.csv"
TOKEN_USD = Decimal("1e-9")
PRICE = {"input": "0", "output": "0.001"}
HAND_POLICY = {
    "choice2": "small+mid+tiny:2 > big",
    "choiceN": "tiny+small+mid:3 > big",
    "open": "small:1 > big",
}


@dataclass(frozen=True)
class Recorded:
    """A table with its answers and the exact cost cells (USD, as written)."""

    table: OutcomeTable
    answers: AnswerTable
    cells: dict[tuple[str, str], Decimal]


def recorded(path: Path) -> Recorded:
    table = read_outcomes(path)
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    cells = {
        (row["prompt_id"], m): Decimal(row[f"cost_usd__{m}"]) for row in rows for m in table.models
    }
    return Recorded(table, read_answers(ANSWERS, table.prompt_ids, table.models), cells)


@pytest.fixture(scope="module")
def chosen(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cascade")
    args = ["eval-cascade", str(TEST), "--train", str(TRAIN), "--answers", str(ANSWERS)]
    args += ["--out", str(out), "--inner-folds", "3", "--write-route", str(out / "route.yaml")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return out


def decisions(out: Path, point: str) -> dict[str, dict[str, str]]:
    with (out / "decisions.csv").open(newline="") as handle:
        return {r["prompt_id"]: r for r in csv.DictReader(handle) if r["point"] == point}


def test_choosing_on_a_training_table_measures_only_the_test_table(chosen: Path) -> None:
    data = json.loads((chosen / "metrics.json").read_text())
    assert data["split"]["kind"] == "separate_train_table"
    assert data["data"]["evaluated"] == 16 and data["data"]["train_prompts"] == 32
    assert data["cascade"]["answers_skipped"] == 1
    test_ids = set(read_outcomes(TEST).prompt_ids)
    rows = decisions(chosen, "target 0.95")
    assert set(rows) == test_ids
    for row in rows.values():
        called = row["called"].split("+")
        assert row["model"] in called and float(row["cost"]) > 0
    nested = {n["target"]: n for n in data["cascade"]["nested"]}
    assert set(nested) == {0.95, 1.0}
    low, high = nested[0.95]["cost_share_ci"]
    assert low <= nested[0.95]["cost_share"] <= high


def test_a_training_table_with_other_models_or_a_holdout_is_refused(tmp_path: Path) -> None:
    args = ["eval-cascade", str(TEST), "--answers", str(ANSWERS), "--out", str(tmp_path)]
    other = FIXTURES / "cascade_outcomes.csv"
    result = CliRunner().invoke(app, [*args, "--train", str(other)])
    assert result.exit_code == 1 and "models differ" in result.output
    result = CliRunner().invoke(app, [*args, "--train", str(TRAIN), "--holdout-by", "x"])
    assert result.exit_code == 1 and "not both" in result.output


def test_the_written_route_is_the_policy_evaluated(chosen: Path) -> None:
    route = yaml.safe_load((chosen / "route.yaml").read_text())
    spec = route["routes"]["cascade"]
    assert spec["router"]["cascades"] == spec["checks"][0]["cascades"]
    policy = CascadePolicy.from_options(spec["router"]["cascades"], "cascades")
    data = json.loads((chosen / "metrics.json").read_text())
    fit = next(n for n in data["cascade"]["nested"] if n["target"] == 0.95)["fits"][0]
    assert {k: c.label for k, c in policy.cascades.items()} == fit["chosen"]
    assert any(c.stages and len(c.stages[0].models) > 1 for c in policy.cascades.values())


def gateway_data(route: dict[str, Any], base_url: str, models: Sequence[str]) -> dict[str, Any]:
    timeout = {"connect_s": 2, "total_s": 5}
    deployments = {
        m: {"model": m, "api_base": base_url + "/v1", "price": PRICE, "timeout": timeout}
        for m in models
    }
    return {**route, "deployments": deployments, "fallback": {"retries_per_deployment": 0}}


def script(fake: FakeUpstream, data: Recorded) -> None:
    """Each model replays its recorded answer to each prompt, with output tokens that
    price to the table's cost at TOKEN_USD a token."""
    for i, pid in enumerate(data.table.prompt_ids):
        for j, model in enumerate(data.table.models):
            tokens = data.cells[(pid, model)] / TOKEN_USD
            assert tokens == tokens.to_integral_value()
            text = data.answers.texts[i][j]
            fake.script(
                model, data.table.texts[i], text, prompt_tokens=0, completion_tokens=int(tokens)
            )


@dataclass(frozen=True)
class Replayed:
    served: str
    called: list[str]
    cost: Decimal
    text: str


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    async with FakeUpstream(models=("tiny", "small", "mid", "big")) as upstream:
        yield upstream


async def replay(
    fake: FakeUpstream, route: dict[str, Any], data: Recorded, stream: bool = False
) -> dict[str, Replayed]:
    """Send every prompt of `data` to route `cascade`, one at a time."""
    script(fake, data)
    config = parse_config(gateway_data(route, fake.base_url, data.table.models))
    out = {}
    async with running(config) as live:
        url = live.base_url + "/v1"
        async with openai.AsyncOpenAI(base_url=url, api_key="unused", max_retries=0) as client:
            for pid, text in zip(data.table.prompt_ids, data.table.texts, strict=True):
                before = len(fake.requests)
                out[pid] = await ask(client, text, stream)
                called = [r.model or "" for r in fake.requests[before:]]
                out[pid] = Replayed(out[pid].served, called, out[pid].cost, out[pid].text)
    return out


async def ask(client: openai.AsyncOpenAI, text: str, stream: bool) -> Replayed:
    messages: Any = [{"role": "user", "content": text}]
    chat = client.chat.completions.with_raw_response
    if stream:
        streamed = await chat.create(model="cascade", messages=messages, stream=True)
        chunks = [c async for c in streamed.parse()]
        answer = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        return Replayed(streamed.headers["x-tierwise-model"], [], Decimal("NaN"), answer)
    raw = await chat.create(model="cascade", messages=messages)
    answer = raw.parse().choices[0].message.content or ""
    cost = Decimal(raw.headers["x-tierwise-cost-usd"])
    return Replayed(raw.headers["x-tierwise-model"], [], cost, answer)


async def test_the_gateway_replays_the_chosen_policy_with_the_same_calls_and_costs(
    chosen: Path, fake: FakeUpstream
) -> None:
    data = recorded(TEST)
    route = yaml.safe_load((chosen / "route.yaml").read_text())
    got = await replay(fake, route, data)
    expected = decisions(chosen, "target 0.95")
    answer_of = dict(zip(data.table.prompt_ids, data.answers.texts, strict=True))
    for pid, row in expected.items():
        called = row["called"].split("+")
        assert (got[pid].served, got[pid].called) == (row["model"], called), pid
        exact = sum(data.cells[(pid, m)] for m in called)
        assert got[pid].cost == exact and float(row["cost"]) == pytest.approx(float(exact))
        assert got[pid].text == answer_of[pid][data.table.models.index(row["model"])]
    assert {len(r.called) for r in got.values()} >= {1, 2, 3}


def offline(policy: CascadePolicy, data: Recorded) -> dict[str, tuple[str, list[str]]]:
    """The simulator's served model and calls per prompt under `policy`."""
    table = data.table
    codes = answer_codes(data.answers.texts, table.texts)
    out = {}
    for i, (pid, text) in enumerate(zip(table.prompt_ids, table.texts, strict=True)):
        _, cascade = policy.for_prompt(text)
        assert cascade is not None
        run = simulate(cascade, codes[i : i + 1], table.costs[i : i + 1], table.models)
        order = [m for m in cascade.call_order() if run.called[0, table.models.index(m)]]
        out[pid] = (table.models[int(run.served[0])], order)
    return out


def hand_route(policy: dict[str, str]) -> dict[str, Any]:
    tiers = {f"tier-{m}": [m] for m in ("tiny", "small", "big")}
    cascades = {"router": {"kind": "answer_cascade", "cascades": policy}}
    route = {"tiers": list(tiers), **cascades, "checks": [{"kind": "vote", "cascades": policy}]}
    return {"tiers": tiers, "routes": {"cascade": route}}


async def test_three_model_stages_ask_voters_lazily_as_simulated(fake: FakeUpstream) -> None:
    data = recorded(TRAIN)
    got = await replay(fake, hand_route(HAND_POLICY), data)
    want = offline(CascadePolicy.from_options(HAND_POLICY, "cascades"), data)
    for pid, (served, called) in want.items():
        assert (got[pid].served, got[pid].called) == (served, called), pid
        assert got[pid].cost == sum(data.cells[(pid, m)] for m in called)
    assert {len(r.called) for r in got.values()} >= {2, 3, 4}


async def test_a_streamed_request_is_judged_whole_and_served_as_simulated(
    chosen: Path, fake: FakeUpstream
) -> None:
    data = recorded(TEST)
    route = yaml.safe_load((chosen / "route.yaml").read_text())
    got = await replay(fake, route, data, stream=True)
    for pid, row in decisions(chosen, "target 0.95").items():
        assert (got[pid].served, got[pid].called) == (row["model"], row["called"].split("+"))
        model = data.table.models.index(row["model"])
        assert got[pid].text == data.answers.texts[data.table.prompt_ids.index(pid)][model]


async def test_a_failing_voter_counts_as_disagreeing(fake: FakeUpstream) -> None:
    """A prompt on which small and mid agree: with mid failing, big answers."""
    data = recorded(TRAIN)
    policy = {"*": "small+mid:2 > big"}
    simulated = offline(CascadePolicy.from_options(policy, "cascades"), data)
    pid = next(p for p, (served, _) in simulated.items() if served == "small")
    table = data.table.subset([data.table.prompt_ids.index(pid)])
    one = Recorded(table, read_answers(ANSWERS, table.prompt_ids, table.models), data.cells)
    fake.add_fault("500", model="mid", times=5)
    got = await replay(fake, hand_route(policy), one)
    assert (got[pid].served, got[pid].called) == ("big", ["small", "mid", "big"])
    assert got[pid].cost == data.cells[(pid, "small")] + data.cells[(pid, "big")]


@pytest.mark.parametrize(
    ("cascades", "key", "problem"),
    [
        ({"choice2": "a+b:2 > c+d:2 > big"}, "cascades.choice2", "at most one stage"),
        ({"open": "small+big:2 > big"}, "cascades.open", "also in the stage"),
        ({"open": "small >"}, "cascades.open", "bad cascade"),
        ([], "cascades", "map prompt categories"),
    ],
)
def test_policies_the_gateway_cannot_run_as_evaluated_are_config_errors(
    cascades: object, key: str, problem: str
) -> None:
    with pytest.raises(ConfigError, match=problem) as caught:
        CascadePolicy.from_options(cascades, "cascades")
    assert caught.value.key == key


def test_route_config_errors_name_their_key() -> None:
    route = hand_route({"*": "small+huge:2 > big"})
    config = parse_config(gateway_data(route, "http://127.0.0.1:9", ["tiny", "small", "big"]))
    with pytest.raises(ConfigError, match="huge") as caught:
        check_config(config)
    assert caught.value.key == "routes.cascade.checks[0].cascades"


def test_an_anchor_sharing_its_tier_is_a_config_error() -> None:
    """The executor could answer from the tier's other deployment, unvoted."""
    route = hand_route({"*": "small+mid:2 > big"})
    route["tiers"] = {"tier-small": ["small", "tiny"], "tier-big": ["big"]}
    route["routes"]["cascade"]["tiers"] = ["tier-small", "tier-big"]
    config = parse_config(
        gateway_data(route, "http://127.0.0.1:9", ["tiny", "small", "mid", "big"])
    )
    with pytest.raises(ConfigError, match="must hold only 'small'") as caught:
        check_config(config)
    assert caught.value.key == "routes.cascade.router.cascades"


def test_leave_one_benchmark_out_uses_the_pooled_choice_for_the_unseen_category() -> None:
    data = recorded(TRAIN)
    ev = evaluate_cascades(
        data.table, data.answers, holdout_by="source_benchmark", inner_folds=2, bootstrap=50
    )
    fits = ev.nested[0]["fits"]
    assert [f["fit"] for f in fits] == ["code", "four", "two"]
    for k, fit in enumerate(fits):
        held = {ev.categories[i] for i in np.flatnonzero(ev.folds == k)}
        assert held.isdisjoint(fit["chosen"]) and "*" in fit["chosen"]
