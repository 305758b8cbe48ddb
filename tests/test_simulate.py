"""`tierwise simulate` on a planted table: half the prompts ask about `ledger`
reconciliation, which only the big model answers correctly; the rest both models
answer. The gateway starts on the heuristic router, explores, has served answers
graded by the recorded-score judge, and learns; the final router (loaded by `tierwise
eval`) sends the ledger prompts to the big model and the rest to the small one."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.learning.outcomes import read_outcomes
from tierwise.learning.sim_report import Point, Result, caught_up, summary_text
from tierwise.learning.sim_world import RecordedJudge, world_of
from tierwise.learning.simulate import Spec, simulate

TOPICS = ["weather", "recipe", "garden", "travel", "music", "sports", "movies", "pets"]
SMALL_COST, BIG_COST = 0.0001, 0.002


def planted(folder: Path, prompts: int = 160) -> tuple[Path, Path]:
    """An outcome table and its answers file."""
    rng = np.random.default_rng(3)
    outcomes, answers = folder / "outcomes.csv", folder / "answers.csv"
    with outcomes.open("w", newline="") as o, answers.open("w", newline="") as a:
        table, texts = csv.writer(o), csv.writer(a)
        table.writerow(["prompt_id", "prompt", "source_benchmark", *_columns()])
        texts.writerow(["prompt_id", "response__small", "response__big"])
        for i in range(prompts):
            hard = i % 2 == 0
            words = " ".join(rng.choice(TOPICS, size=3))
            topic = "reconcile the ledger accounts" if hard else f"chat about {words}"
            prompt = f"Request {i}: please {topic}."
            small = 0 if hard else 1
            table.writerow([f"p{i}", prompt, "planted", small, SMALL_COST, 1, BIG_COST])
            texts.writerow([f"p{i}", f"small says {i}", f"big says {i}"])
    return outcomes, answers


def _columns() -> list[str]:
    return ["score__small", "cost_usd__small", "score__big", "cost_usd__big"]


@pytest.fixture(scope="module")
def simulated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Result, Spec]:
    folder = tmp_path_factory.mktemp("simulate")
    outcomes, answers = planted(folder)
    spec = Spec(
        outcomes,
        answers,
        folder / "out",
        requests=480,
        explore=0.3,
        every=160,
        router="heuristic",
        min_labelled=60,
        max_spend_share=0.5,
        judge_share=1.0,
    )
    import asyncio

    return asyncio.run(simulate(spec)), spec


def test_the_curve_has_a_row_per_learn_step_with_exploration_spend(
    simulated: tuple[Result, Spec],
) -> None:
    _, spec = simulated
    with (spec.out / "learning_curve.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["requests"]) for r in rows] == [160, 320, 480]
    assert all(float(r["exploration_usd"]) > 0 for r in rows)
    assert all(float(r["exploration_share"]) <= spec.max_spend_share + 0.05 for r in rows)
    labelled = [int(r["labelled"]) for r in rows]
    assert labelled == sorted(labelled) and labelled[-1] > 160
    assert (spec.out / "learning_curve.png").stat().st_size > 1000
    summary = json.loads((spec.out / "summary.json").read_text())
    assert summary["strong"] == "big" and summary["judge"]["asked"] > 0
    start = summary["start"]
    assert start["quality_share"] == pytest.approx(0.5, abs=0.15) and start["cost_share"] < 0.2
    assert (spec.out / "start_router.yaml").exists()


def test_the_learned_router_is_applied_and_matches_the_offline_one(
    simulated: tuple[Result, Spec],
) -> None:
    result, _ = simulated
    assert any(p.status == "applied" for p in result.curve)
    assert result.curve[-1].serving != "the configured router"
    last = result.curve[-1]
    assert last.learned_quality_share is not None and last.learned_quality_share >= 0.9
    assert last.learned_cost_share is not None and last.learned_cost_share < 0.7
    assert max(p.learned_quality_share or 0.0 for p in result.curve) >= 0.95
    assert result.offline["quality_share"] >= 0.95


def test_caught_up_is_the_first_point_near_the_offline_cost_at_its_quality() -> None:
    offline = {"cost_share": 0.40, "quality_share": 0.95}
    shares = [(None, None), (0.30, 0.90), (0.45, 0.945), (0.43, 0.96)]
    curve = [
        Point(250 * (i + 1), 0, "kept", cost, quality, "the configured router", 0.0, 0.0, 0.0)
        for i, (cost, quality) in enumerate(shares)
    ]
    result = Result({"requests": 1000}, 10, 5, "big", offline, curve)
    assert caught_up(result) == 1000
    result.curve[2] = replace(curve[2], learned_cost_share=0.44)
    assert caught_up(result) == 750
    assert "after 750 requests" in summary_text(result)
    result.curve = curve[:2]
    assert caught_up(result) is None and "not within 10%" in summary_text(result)


def test_eval_loads_the_final_router_as_it_is(simulated: tuple[Result, Spec]) -> None:
    result, spec = simulated
    out = spec.out / "eval"
    cli = ["eval", str(spec.out / "test.csv"), "--router", str(spec.out / "router.npz")]
    ran = CliRunner().invoke(app, [*cli, "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    with (out / "decisions.csv").open() as handle:
        decisions = list(csv.DictReader(handle))
    test = read_outcomes(spec.out / "test.csv")
    assert len(decisions) == len(test) == result.test
    hard = {pid for pid, text in zip(test.prompt_ids, test.texts, strict=True) if "ledger" in text}
    right = sum((d["model"] == "big") == (d["prompt_id"] in hard) for d in decisions)
    assert right / len(decisions) >= 0.9


def test_the_judge_reads_the_recorded_score_of_each_answer(tmp_path: Path) -> None:
    outcomes, answers_path = planted(tmp_path, prompts=4)
    from tierwise.evaluation.answers import read_answers

    table = read_outcomes(outcomes)
    answers = read_answers(answers_path, table.prompt_ids, table.models)
    judge = RecordedJudge(table, answers, range(4))
    ask = [
        {"role": "user", "content": table.texts[0]},
        {"role": "assistant", "content": "small says 0"},
        {"role": "user", "content": "Is that answer correct? Reply Yes or No."},
    ]
    said = judge(ask)
    assert said is not None and said.text == "No"
    ask[1]["content"] = "big says 0"
    said = judge(ask)
    assert said is not None and said.text == "Yes" and said.logprob == 0.0
    ask[1]["content"] = "something else"
    said = judge(ask)
    assert said is not None and said.text == "Unsure" and judge.unknown == 1
    world = world_of(table)
    assert world.models == ["small", "big"]
    assert world.prices["big"] / world.prices["small"] == pytest.approx(BIG_COST / SMALL_COST)
