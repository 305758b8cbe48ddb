"""Offline evaluation: metric values on hand-made tables, held-out runs, outputs, calibration."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from tests.helpers import OUTCOMES_FIXTURE as FIXTURE
from tests.helpers import eval_app
from tierwise.evaluation import metrics as m
from tierwise.evaluation import runner, splits
from tierwise.evaluation.calibrate import Target, calibrate, share_threshold, snippet
from tierwise.evaluation.report import write_outputs
from tierwise.learning.outcomes import OutcomeTable, parse_outcomes, read_outcomes

SAMPLE = Path(__file__).parent / "fixtures" / "routellm_sample.csv"
GPT4, MIXTRAL = "gpt-4-1106-preview", "mixtral-8x7b-instruct"


@pytest.fixture(scope="module")
def table() -> OutcomeTable:
    return read_outcomes(FIXTURE)


def two_model(gains: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    strong = np.ones(n)
    weak = np.ones(n)
    weak[:gains] = 0.0
    return weak, strong


def test_oracle_ranking_apgr_has_closed_form() -> None:
    weak, strong = two_model(2, 10)
    curve = m.gain_curve(weak, strong, strong - weak, m.SHARES)
    values = m.pgr(curve, weak.mean(), strong.mean())
    assert m.apgr(values) == pytest.approx(0.9)
    assert m.cpt(values, 0.5) == pytest.approx(0.1)
    assert m.cpt(values, 0.95) == pytest.approx(0.19)
    weak, strong = two_model(1, 100)
    curve = m.gain_curve(weak, strong, strong - weak, m.SHARES)
    assert m.apgr(m.pgr(curve, weak.mean(), strong.mean())) == pytest.approx(0.995)


def test_random_ranking_gives_half() -> None:
    weak, strong = two_model(7, 40)
    summary = m.two_model_summary(weak, strong, np.zeros(40), np.zeros(40, dtype=np.intp))
    assert summary["apgr"] == pytest.approx(0.5)
    assert summary["cpt"] == pytest.approx({"50%": 0.5, "80%": 0.8, "95%": 0.95})


def test_reversed_ranking_is_worse_than_random() -> None:
    weak, strong = two_model(5, 20)
    curve = m.gain_curve(weak, strong, weak - strong, m.SHARES)
    assert m.apgr(m.pgr(curve, weak.mean(), strong.mean())) == pytest.approx(0.125)


def test_pooled_curve_ranks_within_groups() -> None:
    weak, strong = np.array([0.0, 1.0, 0.0, 1.0]), np.ones(4)
    preference = np.array([10.0, 9.0, 1.0, 0.0])
    groups = np.array([0, 0, 1, 1], dtype=np.intp)
    curve = m.pooled_curve(weak, strong, preference, groups, np.array([0.0, 0.5, 1.0]))
    assert curve.tolist() == pytest.approx([0.5, 1.0, 1.0])


def test_aiq_known_values() -> None:
    line = m.aiq(np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    assert line == pytest.approx(0.5)
    xs, qs = np.array([0.0, 0.5, 1.0, 0.6]), np.array([0.5, 1.0, 1.0, 0.7])
    assert m.aiq(xs, qs) == pytest.approx(0.875)
    assert m.aiq(np.array([0.2]), np.array([0.4]), (0.0, 1.0)) == pytest.approx(0.4)
    hull_x, _ = m.upper_hull(xs, qs)
    assert hull_x.tolist() == [0.0, 0.5]


def test_quality_cost_tax_and_targets() -> None:
    scores = np.array([[0.0, 1.0], [1.0, 1.0]])
    costs = np.array([[1.0, 10.0], [1.0, np.nan]])
    choice = np.array([1, 0], dtype=np.intp)
    assert m.quality_cost(scores, costs, choice) == (1.0, 5.5)
    assert m.quality_cost(scores, costs, choice, 0.5) == (1.0, 6.0)
    models = ["cheap", "strong"]
    always = np.ones(2, np.intp)
    strong = m.point("strong", 0, scores, costs[:, [0, 0]] * [1, 10], always, models, 1)
    points = m.sweep(scores, costs, [("a", 1.0, choice)], models, 1)
    targets = m.quality_targets(points, strong)
    assert targets["0.95"]["label"] == "a"
    assert targets["0.99"]["cost_share_of_strong"] == pytest.approx(0.55)


def test_oracle_prefers_cheaper_among_ties() -> None:
    scores = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    costs = np.full((3, 2), np.nan)
    assert m.oracle_choice(scores, costs, 1).tolist() == [0, 1, 0]


def test_parse_spec() -> None:
    assert str(runner.parse_spec("learned:knn:hashing")) == "learned:knn:hashing"
    assert runner.parse_spec("embedding-centroid:hashing").kind == "embedding-centroid"
    assert runner.parse_spec("heuristic").kind == "heuristic"
    with pytest.raises(ValueError):
        runner.parse_spec("bogus:1:2:3")


def test_heuristic_seed_rules() -> None:
    routed = runner.heuristic_routed(["hi", "Please analyze the following report " * 3], 1, 0)
    assert routed.choices[0][2].tolist() == [0, 1]


def test_learned_has_no_leakage(table: OutcomeTable, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[np.ndarray, np.ndarray]] = []
    from tierwise.learning.models import fit_predictor as fit

    def spy(method: str, x: Any, y: Any, rng: Any, hyper: Any) -> Any:
        fitted = fit(method, x, y, rng, hyper)
        outer = fitted.predict

        class Spy:
            def predict(self, z: Any) -> Any:
                seen.append((np.asarray(x), np.asarray(z)))
                return outer(z)

        return Spy()

    monkeypatch.setattr(runner, "fit_predictor", spy)
    result = runner.evaluate(table, "learned:knn:hashing", folds=5, seed=1)
    assert len(seen) == 5
    for train_x, test_x in seen:
        assert not (np.abs(test_x @ train_x.T - 1.0) < 1e-6).any()
    assert sum(len(t) for _, t in seen) == result.data["evaluated"]


def test_separate_train_table_drops_seen_prompts(table: OutcomeTable) -> None:
    half = table.subset(range(100))
    result = runner.evaluate(table, "learned:knn:hashing", train_table=half)
    assert not set(result.prompt_ids) & set(half.prompt_ids)
    with pytest.raises(ValueError):
        runner.evaluate(table, "learned:knn:hashing", train_table=table)


def test_learned_beats_random_on_fixture(table: OutcomeTable) -> None:
    result = runner.evaluate(table, "learned:knn:hashing", folds=5, seed=0)
    assert result.two_model is not None and result.two_model["apgr"] > 0.6
    assert result.aiq["router"] > result.aiq["random"]
    oracle = result.baselines[-1]
    assert oracle.label == "oracle" and oracle.quality >= max(p.quality for p in result.points)


def test_outputs_written_and_parseable(table: OutcomeTable, tmp_path: Path) -> None:
    result = runner.evaluate(table, "embedding-centroid:hashing", folds=5, seed=0)
    paths = write_outputs(result, tmp_path)
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["format"] == "tierwise-eval" and data["router"] == "embedding-centroid:hashing"
    assert {"points", "baselines", "targets", "aiq", "two_model"} <= set(data)
    with (tmp_path / "decisions.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(result.points) * data["data"]["evaluated"]
    assert list(rows[0]) == ["prompt_id", "point", "model", "called", "cost"]
    assert all(r["called"] == r["model"] and float(r["cost"]) > 0 for r in rows)
    assert "APGR" in (tmp_path / "report.md").read_text()
    if any(p.suffix == ".png" for p in paths):
        assert (tmp_path / "cost_quality.png").stat().st_size > 0


def test_missing_costs_count_strong_calls() -> None:
    data = b"prompt_id,prompt,score__a,score__b\n1,x,0,1\n2,y,1,1\n3,z,1,0\n4,w,0,0\n"
    small = parse_outcomes(data)
    result = runner.evaluate(small, "heuristic", folds=2)
    assert result.cost_unit == "strong_calls"
    assert all(math.isfinite(p.cost) for p in result.baselines)


@pytest.mark.parametrize("share", [0.2, 0.5])
def test_calibrate_hits_strong_share(table: OutcomeTable, share: float) -> None:
    result = calibrate(table, Target("strong_share", share), spec="learned:knn:hashing")
    assert result.met and abs(result.strong_share - share) < 0.02
    low, high = result.intervals["strong_share"]
    assert low <= result.strong_share <= high


def test_calibrate_quality_floor_and_snippet(table: OutcomeTable) -> None:
    target = Target("quality_floor", 0.97)
    first = calibrate(table, target, spec="learned:knn:hashing", seed=3)
    again = calibrate(table, target, spec="learned:knn:hashing", seed=3)
    assert first == again
    assert first.met and first.quality_share_of_strong >= 0.97
    config = yaml.safe_load(snippet(first))
    assert config["router"]["kind"] == "learned"
    assert config["router"]["cost_weight"] >= 0


def test_calibrate_budget(table: OutcomeTable) -> None:
    result = calibrate(table, Target("budget_per_1k", 0.05), spec="learned:logistic:hashing")
    assert result.met and result.cost_per_1k <= 0.05


def test_cli_commands(table: OutcomeTable, tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    from tierwise.cli.evaluation import calibrate_command, eval_command

    app = typer.Typer()
    app.command("eval")(eval_command)
    app.command("calibrate")(calibrate_command)
    cli = CliRunner()
    done = cli.invoke(app, ["eval", str(FIXTURE), "--out", str(tmp_path), "--router", "heuristic"])
    assert done.exit_code == 0, done.output
    assert (tmp_path / "metrics.json").exists()
    snippet_path = tmp_path / "router.yaml"
    args = ["calibrate", str(FIXTURE), "--strong-share", "0.3", "--out", str(snippet_path)]
    done = cli.invoke(app, args)
    assert done.exit_code == 0, done.output
    assert "cost_weight" in snippet_path.read_text()
    done = cli.invoke(app, ["calibrate", str(FIXTURE)])
    assert done.exit_code == 1


@pytest.fixture(scope="module")
def sample() -> OutcomeTable:
    """13 RouteLLM rows: mmlu 4, gsm8k 4 + 1 contaminated, mt_bench 3 + 1 contaminated."""
    return read_outcomes(SAMPLE)


def test_group_names_take_the_first_part_after_shared_ones() -> None:
    names = splits.group_names(["mmlu/anatomy", "mmlu/law", "gsm8k", "mt_bench/math", ""])
    assert names == ["mmlu", "mmlu", "gsm8k", "mt_bench", splits.NO_SOURCE]
    assert splits.group_names(["routerbench/arc", "routerbench/mbpp"]) == ["arc", "mbpp"]
    assert splits.group_names(["a/x", "a/x/y"]) == ["x", "x"]


def test_holdout_plan_counts_and_exclusions(sample: OutcomeTable) -> None:
    assert sample.contaminated is not None and int(sample.contaminated.sum()) == 2
    plan = splits.holdout_plan(sample, "source_benchmark", None, 0)
    assert plan.names == ["gsm8k", "mmlu", "mt_bench"]
    assert plan.info["groups"] == {
        "gsm8k": {"test_prompts": 4, "train_prompts": 7},
        "mmlu": {"test_prompts": 4, "train_prompts": 7},
        "mt_bench": {"test_prompts": 3, "train_prompts": 8},
    }
    assert plan.info["excluded"] == {"column": "contaminated_in_routellm_train", "rows": 2}
    assert len(plan.rows) == 11 and not sample.contaminated[plan.rows].any()
    for k, train in enumerate(plan.train):
        held = {sample.texts[i] for i in plan.rows[plan.part == k]}
        assert not held & {sample.texts[i] for i in train}
        assert not sample.contaminated[train].any()
    with pytest.raises(ValueError, match="groups: gsm8k, mmlu, mt_bench"):
        splits.holdout_plan(sample, "source_benchmark", "arena", 0)
    with pytest.raises(ValueError, match="known: source_benchmark"):
        splits.holdout_plan(sample, "prompt", None, 0)


def test_group_metrics_hand_checked() -> None:
    """Oracle ranking of 4 prompts, 2 of them gains: PGR reaches 1 at half the calls."""
    scores = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    plan = splits.SplitPlan(np.arange(4), [], np.zeros(4, np.intp), ["mmlu"], {})
    routed = runner.Routed([], scores[:, 0] - scores[:, 1], np.zeros(4, np.intp))
    costs = np.tile([1.0, 0.0], (4, 1))
    group = splits.group_metrics(plan, scores, costs, routed, [GPT4, MIXTRAL], 0, 1)["mmlu"]
    assert (group["quality_weak"], group["quality_strong"]) == (0.5, 1.0)
    assert group["apgr"] == pytest.approx(0.75)
    assert group["cpt"] == pytest.approx({"50%": 0.25, "80%": 0.4, "95%": 0.48})
    assert group["strong_share_at_quality"]["95%"] == pytest.approx(0.45)
    assert group["random"]["apgr"] == pytest.approx(0.5)
    assert group["random"]["strong_share_at_quality"]["95%"] == pytest.approx(0.9)
    low, high = group["apgr_ci"]
    assert 0.5 <= low <= high <= 1.0


def test_leave_one_benchmark_out(sample: OutcomeTable, tmp_path: Path) -> None:
    result = runner.evaluate(sample, "learned:knn:hashing", holdout_by="source_benchmark")
    assert result.split["kind"] == "holdout" and result.data["evaluated"] == 11
    assert result.groups is not None and set(result.groups) == {"gsm8k", "mmlu", "mt_bench"}
    expected = {"gsm8k": (0.5, 0.75), "mmlu": (0.5, 1.0), "mt_bench": (21 / 27, 1.0)}
    for name, (weak, strong) in expected.items():
        group = result.groups[name]
        assert (group["quality_weak"], group["quality_strong"]) == pytest.approx((weak, strong))
        assert group["random"]["apgr"] == pytest.approx(0.5)
        assert 0.0 <= group["apgr"] <= 1.0
    write_outputs(result, tmp_path)
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["split"]["excluded"]["rows"] == 2 and data["groups"]["mmlu"]["prompts"] == 4
    report = (tmp_path / "report.md").read_text()
    assert "## Per held-out group" in report and "| mt_bench | 3 | 8 |" in report
    only = runner.evaluate(sample, "heuristic", holdout_by="source_benchmark", holdout="gsm8k")
    assert only.data["evaluated"] == 4 and only.split["held_out"] == "gsm8k"
    assert only.groups is not None and list(only.groups) == ["gsm8k"]
    with pytest.raises(ValueError, match="needs --holdout-by"):
        runner.evaluate(sample, "heuristic", holdout="gsm8k")


def test_holdout_fits_only_on_other_groups(
    sample: OutcomeTable, monkeypatch: pytest.MonkeyPatch
) -> None:
    sizes: list[int] = []
    from tierwise.learning.models import fit_predictor as fit

    def spy(method: str, x: Any, y: Any, rng: Any, hyper: Any) -> Any:
        sizes.append(len(y))
        return fit(method, x, y, rng, hyper)

    monkeypatch.setattr(runner, "fit_predictor", spy)
    runner.evaluate(sample, "learned:logistic:hashing", holdout_by="source_benchmark")
    assert sizes == [7, 7, 8]


def test_strong_and_cheap_are_chosen_by_name(table: OutcomeTable) -> None:
    result = runner.evaluate(table, "heuristic", strong="cheap-model", cheap="strong-model")
    assert (result.strong, result.cheap) == ("cheap-model", "strong-model")
    with pytest.raises(ValueError, match=r"strong model 'gpt-9' .* cheap-model, strong-model"):
        runner.evaluate(table, "heuristic", strong="gpt-9")
    with pytest.raises(ValueError, match="both 'cheap-model'"):
        runner.pick_models(table, "cheap-model", "cheap-model")


def cost_less(path: Path) -> OutcomeTable:
    """The table without cost and token columns."""
    with path.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    keep = [k for k in rows[0] if not k.startswith(("cost_usd__", "out_tokens_est__"))]
    out = io.StringIO()
    writer = csv.DictWriter(out, keep, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return parse_outcomes(out.getvalue().encode())


def test_share_threshold_is_routellm_quantile() -> None:
    win = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    assert share_threshold(win, 0.4) == pytest.approx(0.34)
    assert share_threshold(win, 0.0) == 0.5 and share_threshold(win, 1.0) == 0.1


async def test_calibrate_cost_less_table_sets_threshold(tmp_path: Path) -> None:
    from tierwise.config import RouterConfig
    from tierwise.learning.store import save_router
    from tierwise.learning.train import train
    from tierwise.routing.registry import build_router
    from tierwise.types import ChatRequest, Message

    free = cost_less(FIXTURE)
    result = calibrate(free, Target("strong_share", 0.3), spec="learned:knn:hashing")
    assert result.knob == "threshold" and result.cost_weight is None and result.met
    assert result.cost_unit == "strong_calls" and abs(result.strong_share - 0.3) <= 0.02
    config = yaml.safe_load(snippet(result, str(tmp_path / "router.npz")))
    assert config["router"]["threshold"] == round(result.value, 6)
    assert "cost_weight" not in config["router"]
    save_router(train(free, "knn"), tmp_path / "router.npz")
    options = {k: v for k, v in config["router"].items() if k != "kind"}
    router = build_router(RouterConfig(kind="learned", options=options))
    hard = ChatRequest([Message("user", "quick question about the integral please")])
    decision = await router.decide(hard, ["cheap-model", "strong-model"])
    assert decision.target == "strong-model" and "threshold" in decision.reason


def test_cli_holdout_and_model_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    cli, app = CliRunner(), eval_app()
    args = ["eval", str(SAMPLE), "--out", str(tmp_path), "--router", "heuristic"]
    done = cli.invoke(app, [*args, "--holdout-by", "source_benchmark", "--holdout", "mmlu"])
    assert done.exit_code == 0, done.output
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["split"]["held_out"] == "mmlu" and list(data["groups"]) == ["mmlu"]
    done = cli.invoke(app, [*args, "--strong", MIXTRAL, "--cheap", GPT4])
    assert done.exit_code == 0, done.output
    assert json.loads((tmp_path / "metrics.json").read_text())["strong"] == MIXTRAL
    done = cli.invoke(app, [*args, "--strong", "gpt-9"])
    assert done.exit_code == 1
    assert "'gpt-9'" in done.output and f"{GPT4}, {MIXTRAL}" in done.output
    done = cli.invoke(app, [*args, "--holdout-by", "source_benchmark", "--holdout", "arena"])
    assert done.exit_code == 1 and "groups: gsm8k, mmlu, mt_bench" in done.output
    calibrate_args = ["calibrate", str(FIXTURE), "--strong-share", "0.3", "--cheap", "nope"]
    done = cli.invoke(app, calibrate_args)
    assert done.exit_code == 1 and "cheap model 'nope'" in done.output
    done = cli.invoke(app, ["eval", "--out", str(tmp_path)])
    assert done.exit_code == 1 and "--log" in done.output
