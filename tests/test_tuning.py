"""Tuned routers: exact operating curves, choices made on training rows only, saved
routers evaluated as they are, score scales, renamed models and the embedding cache."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.config import RouterConfig
from tierwise.errors import ConfigError
from tierwise.evaluation.operating import Outcomes, pick, threshold_curve, weight_curve
from tierwise.evaluation.runner import eval_costs
from tierwise.learning.command import Plan, problem_of, run
from tierwise.learning.models import choose, strong_win_rate
from tierwise.learning.outcomes import OutcomeTable, parse_outcomes, read_outcomes
from tierwise.learning.store import load_router, make_embedder
from tierwise.learning.train import table_vectors
from tierwise.learning.tuning import select, selection_json
from tierwise.routing.learned import LearnedRouter
from tierwise.routing.registry import build_router
from tierwise.types import ChatRequest, Message

FIXTURES = Path(__file__).parent / "fixtures"
FIXTURE = FIXTURES / "outcomes_small.csv"
SAMPLE = FIXTURES / "routellm_sample.csv"
CHEAP, STRONG = "cheap-model", "strong-model"
GPT4, MIXTRAL = "gpt-4-1106-preview", "mixtral-8x7b-instruct"
DECISION_HEADER = ["prompt_id", "point", "model", "called", "cost"]


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $TIERWISE_HOME, so the embedding cache is this test's own."""
    path = tmp_path / "home"
    monkeypatch.setenv("TIERWISE_HOME", str(path))
    return path


def cli(*args: object, ok: bool = True) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert (result.exit_code == 0) == ok, result.output
    return result.output


def decisions(folder: Path) -> list[dict[str, str]]:
    with (folder / "decisions.csv").open(newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == DECISION_HEADER
        return list(reader)


def complete(table: OutcomeTable) -> np.ndarray:
    return np.flatnonzero(~np.isnan(table.scores).any(axis=1))


def random_problem(seed: int, n: int = 240, m: int = 4) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    p = np.round(rng.random((n, m)), 2)
    scores = (rng.random((n, m)) < 0.6).astype(float)
    costs = rng.random((n, m))
    groups = rng.integers(0, 3, n).astype(np.intp)
    relative = rng.random((3, m))
    relative[:, -1] = relative[:, -2]
    return p, scores, costs, groups, relative / relative.max(axis=1, keepdims=True)


def choices_at(p: np.ndarray, groups: np.ndarray, relative: np.ndarray, w: float) -> np.ndarray:
    """Each row's choice at cost weight `w`, decided with its group's relative costs."""
    choice = np.zeros(len(p), dtype=np.intp)
    for g in range(len(relative)):
        at = groups == g
        choice[at] = choose(p[at], relative[g], w)
    return choice


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_weight_curve_is_exact_between_breakpoints(seed: int) -> None:
    p, scores, costs, groups, relative = random_problem(seed)
    c = weight_curve(p, groups, relative, Outcomes(scores, costs, 0))
    assert c.low[0] == 0.0 and np.isinf(c.high[-1])
    assert (np.diff(c.low) > 0).all() and (c.low <= c.values).all() and (c.values < c.high).all()
    rows = np.arange(len(p))
    for i in range(len(c)):
        choice = choices_at(p, groups, relative, c.values[i])
        assert scores[rows, choice].mean() == pytest.approx(c.quality[i], abs=1e-12)
        assert costs[rows, choice].mean() == pytest.approx(c.cost[i], abs=1e-12)
        assert (choice == 0).mean() == pytest.approx(c.strong[i], abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1])
def test_weight_curve_on_sparse_scores_is_the_replay_mean(seed: int) -> None:
    p, scores, costs, groups, relative = random_problem(seed)
    sparse = scores.copy()
    sparse[np.random.default_rng(seed).random(scores.shape) < 0.7] = np.nan
    c = weight_curve(p, groups, relative, Outcomes(sparse, costs, 0))
    rows = np.arange(len(p))
    for i in range(len(c)):
        choice = choices_at(p, groups, relative, c.values[i])
        got = sparse[rows, choice]
        assert np.nanmean(got) == pytest.approx(c.quality[i], abs=1e-12)
        assert costs[rows, choice].mean() == pytest.approx(c.cost[i], abs=1e-12)


def test_a_log_with_one_label_per_prompt_trains_a_finite_router(home: Path) -> None:
    table = read_outcomes(FIXTURE)
    rng = np.random.default_rng(0)
    keep = rng.integers(0, len(table.models), len(table))
    scores = np.full_like(table.scores, np.nan)
    scores[np.arange(len(table)), keep] = table.scores[np.arange(len(table)), keep]
    sparse = replace(table, scores=scores)
    plan = Plan(("knn",), ("hashing",), 0.95, 0, 3, None, None, None, 0)
    router, selection, _ = run(sparse, replace(plan, partial=True))
    assert np.isfinite(router.cost_weight) and np.isfinite(selection.chosen.quality_share)
    assert selection.rows == len(table)


def test_threshold_curve_and_pick() -> None:
    p, scores, costs, _, _ = random_problem(3, m=2)
    win = strong_win_rate(p, 1, 0)
    c = threshold_curve(win, 1, Outcomes(scores, costs, 0))
    assert c.strong[0] == 1.0 and c.strong[-1] == 0.0
    rows = np.arange(len(p))
    for i in range(len(c)):
        choice = np.where(win > c.values[i], 0, 1)
        assert scores[rows, choice].mean() == pytest.approx(c.quality[i], abs=1e-12)
    floor = 0.9 * scores[:, 0].mean()
    best = pick(c, floor)
    reaching = c.quality >= floor - 1e-12
    assert reaching[best] and c.cost[best] == c.cost[reaching].min()
    assert pick(c, 2.0) == int(np.argmax(c.quality))


def test_selection_never_looks_outside_its_rows(home: Path) -> None:
    table = read_outcomes(FIXTURE)
    plan = Plan(("knn", "logistic"), ("hashing",), 0.95, 0, 3, None, None, None, 0)
    problem, _ = problem_of(table, plan)
    train = np.arange(0, 200, 2)
    first = selection_json(select(problem, train))
    scores, costs = table.scores.copy(), table.costs.copy()
    scores[1::2] = 1.0 - np.nan_to_num(scores[1::2])
    costs[1::2] = 7.0
    other = replace(table, scores=scores, costs=costs)
    changed = replace(problem, table=other, costs=eval_costs(other, problem.strong)[0])
    assert selection_json(select(changed, train)) == first
    assert first["chosen"]["met"] and first["rows"] == 100


def test_train_save_eval_round_trip(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    text = cli(
        "train",
        FIXTURE,
        "--out",
        out,
        "--method",
        "knn,logistic",
        "--folds",
        "2",
        "--inner-folds",
        "3",
    )
    router = load_router(out)
    chosen = router.extra["tuning"]["chosen"]
    assert router.cost_weight == chosen["value"] and router.threshold is None
    assert router.method == chosen["method"] and router.extra["quality_target"] == 0.95
    estimate = router.extra["estimate"]
    assert estimate["split"]["kind"] == "folds" and len(estimate["parts"]) == 2
    low, high = estimate["intervals"]["cost_share"]
    assert low <= estimate["cost_share_of_strong"] <= high
    assert "estimate on unseen prompts" in text and f"wrote {out}" in text

    cli("eval", FIXTURE, "--router", out, "--out", tmp_path / "eval")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    [point] = metrics["points"]
    assert metrics["split"] == {"kind": "saved_router", "path": str(out), "in_sample": True}
    table = read_outcomes(FIXTURE)
    rows = complete(table)
    x = table_vectors(table, make_embedder(router.embedder_name))[rows]
    picked = router.choose(x, router.cost_weight)
    costs, _ = eval_costs(table, table.models.index(STRONG))
    assert point["param"] == router.cost_weight
    assert point["quality"] == pytest.approx(table.scores[rows, picked].mean(), abs=1e-12)
    assert point["cost"] == pytest.approx(costs[rows, picked].mean(), rel=1e-12)
    rows_out = decisions(tmp_path / "eval")
    assert [r["model"] for r in rows_out] == [table.models[j] for j in picked]
    assert all(r["called"] == r["model"] for r in rows_out)
    assert [float(r["cost"]) for r in rows_out] == pytest.approx(costs[rows, picked].tolist())


async def test_the_gateway_decides_at_the_saved_point(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    cli("train", FIXTURE, "--out", out, "--folds", "0", "--inner-folds", "3")
    weight = load_router(out).cost_weight
    router = build_router(
        RouterConfig(
            kind="learned", options={"path": str(out), "models": {CHEAP: "c", STRONG: "s"}}
        )
    )
    hard = ChatRequest([Message("user", "quick question about the integral please")])
    decision = await router.decide(hard, ["c", "s"])
    assert decision.target == "s" and f"{weight:g} x relative cost" in decision.reason


async def test_a_table_without_costs_stores_a_threshold(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    cli("train", SAMPLE, "--out", out, "--folds", "0", "--inner-folds", "3")
    saved = load_router(out)
    assert saved.threshold == saved.extra["tuning"]["chosen"]["value"]
    assert saved.extra["tuning"]["knob"] == "threshold"
    router = LearnedRouter(out, {MIXTRAL: "cheap", GPT4: "strong"})
    request = ChatRequest([Message("user", "Compute 22 / 2 + 9.")])
    decision = await router.decide(request, ["cheap", "strong"])
    assert f"threshold {saved.threshold:g}" in decision.reason
    cli("eval", SAMPLE, "--router", out, "--out", tmp_path / "eval")
    [point] = json.loads((tmp_path / "eval" / "metrics.json").read_text())["points"]
    assert point["label"] == f"saved threshold={saved.threshold:g}"


def test_eval_of_a_heuristic_route_config_with_mapped_tiers(tmp_path: Path) -> None:
    config = tmp_path / "route.yaml"
    route = {
        "router": {
            "kind": "heuristic",
            "rules": [{"tier": "strong", "keywords": ["integral"]}],
            "default": "cheap",
        },
        "tiers": ["cheap", "strong"],
    }
    config.write_text(yaml.safe_dump(route))
    args = ["eval", FIXTURE, "--router", config, "--out", tmp_path / "eval"]
    out = cli(*args, ok=False)
    assert "tier 'cheap' is not a model of the table" in out and "--map" in out
    cli(*args, "--map", f"{CHEAP}=cheap", "--map", f"{STRONG}=strong")
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert metrics["models"] == ["cheap", "strong"] and metrics["strong"] == "strong"
    table = read_outcomes(FIXTURE)
    texts = dict(zip(table.prompt_ids, table.texts, strict=True))
    rows = decisions(tmp_path / "eval")
    assert len(rows) == 199
    assert all((r["model"] == "strong") == ("integral" in texts[r["prompt_id"]]) for r in rows)
    strong = [r for r in rows if r["model"] == "strong"]
    assert metrics["points"][0]["strong_share"] == pytest.approx(len(strong) / len(rows))


def test_eval_of_fit_examples_output_decides_as_the_embedding_router(
    home: Path, tmp_path: Path
) -> None:
    examples = tmp_path / "examples.yaml"
    cli(
        "fit-examples",
        FIXTURE,
        "--cheap",
        CHEAP,
        "--strong",
        STRONG,
        "--out",
        examples,
        "--per-tier",
        "8",
    )
    cli("eval", FIXTURE, "--router", examples, "--out", tmp_path / "eval")
    rows = decisions(tmp_path / "eval")
    assert {r["point"] for r in rows} == {"saved"}
    router = build_router(
        RouterConfig(
            kind="embedding", options={"examples_file": str(examples), "embedder": "hashing"}
        )
    )
    table = read_outcomes(FIXTURE)
    texts = dict(zip(table.prompt_ids, table.texts, strict=True))

    async def decide(text: str) -> str:
        request = ChatRequest([Message("user", text)])
        return (await router.decide(request, [CHEAP, STRONG])).target

    expected = [asyncio.run(decide(texts[r["prompt_id"]])) for r in rows[:40]]
    assert [r["model"] for r in rows[:40]] == expected
    assert {r["model"] for r in rows} == {CHEAP, STRONG}


def test_a_binary_file_given_as_a_table_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    cli("train", FIXTURE, "--out", out, "--folds", "0", "--inner-folds", "3")
    text = cli("eval", FIXTURE, "--train", out, "--out", tmp_path / "e", ok=False)
    assert "zip archive (a router file?), not an outcome table" in text
    assert "--router" in text and "Traceback" not in text
    garbage = tmp_path / "table.csv"
    garbage.write_bytes(b"prompt_id,prompt,score__a\n1,\xff\xfe,1\n")
    text = cli("eval", garbage, "--router", "heuristic", "--out", tmp_path / "e", ok=False)
    assert "not UTF-8 text" in text
    text = cli("eval", FIXTURE, "--router", "nonsense", "--out", tmp_path / "e", ok=False)
    assert "unknown router spec 'nonsense'" in text and ".npz" in text


def test_score_scale_is_explicit_and_ambiguous_rows_are_errors(tmp_path: Path) -> None:
    data = b"prompt_id,prompt,score__a,score__b\np1,q1,7,3\np2,q2,1,1\np3,q3,1,0.5\n"
    with pytest.raises(ConfigError, match="line 3: every score is 1"):
        parse_outcomes(data)
    ten = parse_outcomes(data.replace(b"1,0.5", b"1,4"), score_scale="1-10").scores
    np.testing.assert_allclose(ten, [[6 / 9, 2 / 9], [0.0, 0.0], [0.0, 3 / 9]])
    with pytest.raises(ConfigError, match="line 2, column score__a: 7 is not a binary score"):
        parse_outcomes(data, score_scale="binary")
    with pytest.raises(ConfigError, match=r"line 4, column score__b: 0\.5 is not a 1-10 score"):
        parse_outcomes(data, score_scale="1-10")
    plain = parse_outcomes(b"prompt_id,prompt,score__a,score__b\np1,q,1,1\np2,q,0,1\n")
    np.testing.assert_allclose(plain.scores, [[1, 1], [0, 1]])
    column = b"prompt_id,prompt,score_scale,score__a\np1,q,judge_1_10,1\np2,q,stars,1\n"
    with pytest.raises(ConfigError, match="line 3, column score_scale: 'stars' names no scale"):
        parse_outcomes(column)
    table = tmp_path / "mixed.csv"
    table.write_bytes(data)
    args = ["eval", table, "--router", "heuristic", "--out", tmp_path / "e"]
    assert "every score is 1" in cli(*args, ok=False)
    assert "unknown score scale 'stars'" in cli(*args, "--score-scale", "stars", ok=False)


def three_models(path: Path) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        ["prompt_id", "prompt", *(f"{k}__{m}" for m in "abc" for k in ("score", "cost_usd"))]
    )
    for i in range(30):
        hard = i % 3 == 0
        writer.writerow(
            [
                f"p{i}",
                f"question {i} {'integral' if hard else 'recipe'}",
                0 if hard else 1,
                0.001,
                1,
                0.01,
                1,
                0.1,
            ]
        )
    path.write_text(out.getvalue())
    return path


def test_map_renames_and_strong_cheap_select_two_models(tmp_path: Path) -> None:
    table = three_models(tmp_path / "three.csv")
    base = ["eval", table, "--router", "heuristic", "--out", tmp_path / "e"]
    cli(*base)
    assert json.loads((tmp_path / "e" / "metrics.json").read_text())["models"] == ["a", "b", "c"]
    cli(*base, "--map", "a=tiny", "--map", "c=huge", "--strong", "huge", "--cheap", "tiny")
    metrics = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert metrics["models"] == ["tiny", "huge"] and metrics["two_model"] is not None
    assert {r["model"] for r in decisions(tmp_path / "e")} <= {"tiny", "huge"}
    assert "cannot rename ['nope']" in cli(*base, "--map", "nope=x", ok=False)
    assert "takes OLD=NEW" in cli(*base, "--map", "a", ok=False)
    assert "the same name" in cli(*base, "--map", "a=b", ok=False)


def test_one_embedding_cache_file_serves_every_command(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    cli("train", FIXTURE, "--out", out, "--folds", "0", "--inner-folds", "3")
    [cached] = list((home / "embeddings").iterdir())
    before = cached.stat()
    cli(
        "train", FIXTURE, "--out", out, "--method", "logistic", "--folds", "0", "--inner-folds", "3"
    )
    cli("eval", FIXTURE, "--router", out, "--out", tmp_path / "e1")
    cli(
        "eval", FIXTURE, "--router", "learned:knn:hashing", "--folds", "3", "--out", tmp_path / "e2"
    )
    cli("calibrate", FIXTURE, "--router", out, "--quality-floor", "0.95")
    cli(
        "fit-examples", FIXTURE, "--cheap", CHEAP, "--strong", STRONG, "--out", tmp_path / "ex.yaml"
    )
    assert list((home / "embeddings").iterdir()) == [cached]
    after = cached.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    spec_rows = decisions(tmp_path / "e2")
    assert {r["called"] for r in spec_rows} <= {CHEAP, STRONG}


def test_train_estimates_by_holding_out_each_benchmark(home: Path, tmp_path: Path) -> None:
    out = tmp_path / "router.npz"
    text = cli(
        "train", SAMPLE, "--out", out, "--holdout-by", "source_benchmark", "--inner-folds", "2"
    )
    estimate = load_router(out).extra["estimate"]
    assert estimate["split"]["kind"] == "holdout"
    assert [p["name"] for p in estimate["parts"]] == ["gsm8k", "mmlu", "mt_bench"]
    assert sum(p["prompts"] for p in estimate["parts"]) == estimate["prompts"]
    assert "each source_benchmark group held out in turn" in text
