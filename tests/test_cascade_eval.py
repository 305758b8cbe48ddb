"""Cascade simulation: answer normalisation, the simulator on hand-made answers with
hand-computed cost and quality, selection on training folds only, the command's
outputs, and errors for bad answers files."""

from __future__ import annotations

import csv
import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from tierwise.cli import app
from tierwise.errors import ConfigError
from tierwise.evaluation.acceptance import Inputs, evaluate_learned, pick_stage, stage_features
from tierwise.evaluation.answers import (
    AnswerTable,
    answer_codes,
    category,
    normalise,
    normalise_choice,
    normalise_code,
    options,
    parse_answers,
    read_answers,
)
from tierwise.evaluation.cascade import (
    Cascade,
    Run,
    Simulated,
    Stage,
    candidates,
    parse_cascade,
    select,
    simulate,
    simulate_all,
)
from tierwise.evaluation.cascade_choose import WEIGHTS, Pool, Settings, choose_for_targets
from tierwise.evaluation.cascade_eval import evaluate_cascades
from tierwise.learning.outcomes import OutcomeTable, read_outcomes

FIXTURES = Path(__file__).parent / "fixtures"
OUTCOMES, ANSWERS = FIXTURES / "cascade_outcomes.csv", FIXTURES / "cascade_answers.csv"
FIXED = "small+mid:2 > big"
TWO = "Who?\nA) Ann\nB) Bob\nAnswer:"
FOUR = "Which?\nA) red\nB) blue\nC) green\nD) yellow"


@pytest.fixture(scope="module")
def table() -> OutcomeTable:
    return read_outcomes(OUTCOMES)


@pytest.fixture(scope="module")
def answers(table: OutcomeTable) -> AnswerTable:
    return read_answers(ANSWERS, table.prompt_ids, table.models)


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("D", "D"),
        ("C\n", "C"),
        (" b ", "B"),
        ("A)", "A"),
        ("(B)", "B"),
        ("A. red", "A"),
        ("D (yellow, because)", "D"),
        ("Answer: C", "C"),
        ("The answer is B.", "B"),
        ("green", "C"),
        ("Blue.", "B"),
        ("I do", None),
        ("A hypothesis is needed", None),
        ("Unfortunately I cannot answer", None),
        ("E", None),
        ("13", None),
        ("", None),
    ],
)
def test_normalise_choice_extracts_the_option_label(answer: str, expected: str | None) -> None:
    assert normalise_choice(answer, options(FOUR)) == expected


def test_numbered_options_take_the_option_number() -> None:
    prompt = "Pick one.\n1) the cat\n2) the dog\nAnswer:"
    assert options(prompt) == {"1": "the cat", "2": "the dog"}
    assert normalise("2", prompt) == "2"
    assert normalise("Option 1", prompt) == "1"
    assert normalise("3", prompt) is None


def test_categories_come_from_the_listed_options() -> None:
    assert category(TWO) == "choice2"
    assert category(FOUR) == "choiceN"
    assert category("Write a function that sorts a list.") == "open"
    assert category("Only one:\nA) this\nAnswer:") == "open"
    assert category("Write code that:\n1. reads a file\n2. counts its lines") == "open"


def test_code_answers_compare_by_syntax_tree() -> None:
    fenced = "Sure:\n```python\ndef f(x):\n    return x + 1\n```\nDone."
    tagged = "[PYTHON]\ndef f(x):\n    # add one\n    return x+1\n[/PYTHON]"
    assert normalise_code(fenced) is not None
    assert normalise_code(fenced) == normalise_code(tagged)
    assert normalise_code("def f(x):\n    return x + 2") != normalise_code(fenced)
    assert normalise_code("def f(x) return x") is None
    assert normalise_code("I do") is None
    assert normalise_code("") is None


def test_answer_codes_are_equal_exactly_when_answers_agree() -> None:
    codes = answer_codes([["A", "a)", "B", "I do"]], [TWO])
    assert codes.tolist() == [[0, 0, 1, -1]]


def run_fixed(
    table: OutcomeTable, answers: AnswerTable, spec: str = FIXED
) -> tuple[Run, np.ndarray]:
    codes = answer_codes(answers.texts, table.texts)
    run = simulate(parse_cascade(spec), codes, table.costs, table.models)
    quality = table.scores[np.arange(len(table)), run.served]
    return run, quality


def test_simulated_cascade_matches_hand_computed_cost_and_quality(
    table: OutcomeTable, answers: AnswerTable
) -> None:
    run, quality = run_fixed(table, answers)
    small, mid, big = 0.001, 0.002, 0.01
    both, escalated, stopped = small + mid, small + mid + big, small + big
    expected = [both, escalated, stopped, both, both, escalated, both, stopped, both, both]
    assert run.cost == pytest.approx(expected)
    assert run.cost.mean() == pytest.approx(0.0066)
    assert quality.tolist() == [1, 1, 1, 0, 1, 1, 1, 1, 1, 1]
    served = " ".join(table.models[j] for j in run.served)
    assert served == "small big big small small big small big small small"
    assert run.called[2].tolist() == [True, False, True]


def test_a_two_of_three_stage_serves_the_anchor_when_one_more_model_agrees() -> None:
    """The third model is asked only when the second disagrees with the anchor; two
    voters agreeing against the anchor, or an anchor without an answer, escalate."""
    rows = [[0, 0, 1, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 2, 0], [-1, 0, 0, 0]]
    codes = np.array(rows, dtype=np.intp)
    costs = np.tile([1.0, 2.0, 4.0, 100.0], (5, 1))
    cascade = Cascade((Stage(("a", "b", "c"), 2),), "d")
    run = simulate(cascade, codes, costs, ["a", "b", "c", "d"])
    assert run.cost.tolist() == [3.0, 7.0, 107.0, 107.0, 101.0]
    assert run.served.tolist() == [0, 0, 3, 3, 3]
    assert run.called[4].tolist() == [True, False, False, True]


def test_a_later_stage_reuses_answers_already_paid_for() -> None:
    codes = np.array([[0, 1, 1, 0]], dtype=np.intp)
    costs = np.array([[1.0, 2.0, 4.0, 100.0]])
    cascade = parse_cascade("a+b:2 > b+c:2 > d")
    run = simulate(cascade, codes, costs, ["a", "b", "c", "d"])
    assert run.cost.tolist() == [7.0]
    assert run.served.tolist() == [1]
    assert cascade.label == "a+b 2/2 > b+c 2/2 > d"


@pytest.mark.parametrize("spec", ["", "a+b:2 >", "a:3 > b", "a:x > b", "a > b+c", "a > b:1"])
def test_bad_cascade_specs_are_rejected(spec: str) -> None:
    with pytest.raises(ValueError, match="cascade"):
        parse_cascade(spec)


def test_unknown_model_in_a_cascade_is_named(table: OutcomeTable, answers: AnswerTable) -> None:
    with pytest.raises(ValueError, match="'huge'"):
        run_fixed(table, answers, "small+mid:2 > huge")


def test_candidates_cover_singles_and_every_ordered_group() -> None:
    found = candidates(["a", "b", "c"], "z", ["a", "b", "c", "z"], max_group=3)
    labels = [c.label for c in found]
    assert labels[:4] == ["a", "b", "c", "z"]
    assert "a 1/1 > z" in labels and "b+a 2/2 > z" in labels and "c+a+b 2/3 > z" in labels
    assert "b+a 1/2 > z" not in labels
    assert len(found) == 4 + 3 + 6 + 6 * 2
    assert len(set(labels)) == len(labels)


def test_select_maximises_quality_minus_weighted_cost_per_category() -> None:
    quality = np.array([[1.0, 1.0, 0.5, 0.0], [1.0, 0.0, 0.0, 0.0]])
    cost = np.array([[10.0, 10.0, 10.0, 10.0], [1.0, 1.0, 1.0, 1.0]])
    runs = [simulate(Cascade((), "x"), np.zeros((4, 1), np.intp), np.ones((4, 1)), ["x"])] * 2
    sim = Simulated([Cascade((), "x"), Cascade((), "y")], runs, quality, cost)
    cats = ["p", "p", "q", "q"]
    train = np.arange(4)
    assert select(sim, train, cats, 0.0, 10.0) == {"p": 0, "q": 0}
    assert select(sim, train, cats, 0.5, 10.0) == {"p": 0, "q": 1}
    assert select(sim, np.array([2, 3]), cats, 0.5, 10.0) == {"q": 1}
    allowed = np.array([False, True])
    assert select(sim, train, cats, 0.0, 10.0, allowed) == {"p": 1, "q": 1}


def test_evaluation_reports_fixed_and_chosen_points(
    table: OutcomeTable, answers: AnswerTable
) -> None:
    ev = evaluate_cascades(table, answers, folds=2, inner_folds=2, fixed=[parse_cascade(FIXED)])
    result = ev.result
    assert result.strong == "big" and result.cheap == "small"
    fixed = result.points[-1]
    assert fixed.label == "small+mid 2/2 > big"
    assert (fixed.quality, fixed.cost, fixed.strong_share) == pytest.approx((0.9, 0.0066, 0.4))
    assert fixed.shares == pytest.approx({"small": 0.6, "mid": 0.0, "big": 0.4})
    always_big = result.baselines[2]
    assert (always_big.quality, always_big.cost) == pytest.approx((1.0, 0.01))
    assert [p.label for p in result.points[:2]] == ["cascade w=0", "cascade w=0.01"]
    assert [p.label for p in result.points[-3:-1]] == ["target 0.95", "target 1"]
    assert set(result.targets) == {"0.95", "0.99", "1"}
    assert sorted(set(ev.categories)) == ["choice2", "choiceN", "open"]


def test_cascades_are_chosen_without_the_held_out_scores(
    table: OutcomeTable, answers: AnswerTable
) -> None:
    """Scrambling the scores of one fold's prompts changes nothing decided for them."""
    before = evaluate_cascades(table, answers, folds=2, inner_folds=2, strong="big")
    held = before.folds == 0
    scores = table.scores.copy()
    rng = np.random.default_rng(7)
    scores[held] = rng.integers(0, 2, size=scores[held].shape).astype(np.float64)
    after = evaluate_cascades(
        dataclasses.replace(table, scores=scores), answers, folds=2, inner_folds=2, strong="big"
    )
    assert np.array_equal(after.folds, before.folds)
    for old, new in zip(before.points, after.points, strict=True):
        assert new.chosen[0] == old.chosen[0]
        assert np.array_equal(new.served[held], old.served[held])
        assert [c for c, h in zip(new.called, held, strict=True) if h] == [
            c for c, h in zip(old.called, held, strict=True) if h
        ]


def test_command_writes_metrics_decisions_and_report(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["eval-cascade", str(OUTCOMES), "--answers", str(ANSWERS), "--out", str(out)]
    result = CliRunner().invoke(
        app, [*args, "--folds", "2", "--inner-folds", "2", "--cascade", FIXED]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((out / "metrics.json").read_text())
    assert data["router"] == "cascade" and data["strong"] == "big"
    fixed = data["points"][-1]
    assert fixed["cost_share_of_strong"] == pytest.approx(0.66)
    assert data["cascade"]["categories"] == {"choice2": 5, "choiceN": 3, "open": 2}
    with (out / "decisions.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["point"] == fixed["label"]]
    by_id = {r["prompt_id"]: r for r in rows}
    assert by_id["q2"]["called"] == "small+mid+big" and by_id["q2"]["model"] == "big"
    assert by_id["q3"]["called"] == "small+big"
    assert by_id["q1"]["called"] == "small+mid" and by_id["q1"]["model"] == "small"
    assert float(by_id["q1"]["cost"]) == pytest.approx(0.003)
    report = (out / "report.md").read_text()
    assert "## Cascades" in report and "small+mid 2/2 > big" in report


def answers_csv(header: list[str], rows: list[list[str]]) -> bytes:
    lines = [",".join(header)] + [",".join(r) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def test_answers_missing_a_model_column_names_it() -> None:
    data = answers_csv(["prompt_id", "response__small"], [["q1", "A"]])
    with pytest.raises(ConfigError, match="response__mid"):
        parse_answers(data, ["q1"], ["small", "mid"], name="a.csv")


def test_rows_of_prompts_not_in_the_table_are_counted_and_skipped() -> None:
    data = answers_csv(["prompt_id", "response__small"], [["q9", "B"], ["q1", "A"], ["q8", "C"]])
    parsed = parse_answers(data, ["q1"], ["small"], name="a.csv")
    assert parsed.texts == [["A"]] and parsed.skipped == 2


def test_duplicate_and_missing_prompt_ids_are_errors() -> None:
    header = ["prompt_id", "response__small"]
    with pytest.raises(ConfigError, match="line 3: prompt_id 'q1' appears twice"):
        parse_answers(answers_csv(header, [["q1", "A"], ["q1", "B"]]), ["q1"], ["small"])
    with pytest.raises(ConfigError, match="no answers row, first 'q2'"):
        parse_answers(answers_csv(header, [["q1", "A"]]), ["q1", "q2"], ["small"])
    with pytest.raises(ConfigError, match="'prompt_id'"):
        parse_answers(b"id,response__small\nq1,A\n", ["q1"], ["small"])


def test_command_reports_bad_answers_and_bad_cascades(tmp_path: Path) -> None:
    bad = tmp_path / "answers.csv"
    bad.write_bytes(answers_csv(["prompt_id", "response__small", "response__big"], []))
    args = ["eval-cascade", str(OUTCOMES), "--out", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*args, "--answers", str(bad)])
    assert result.exit_code == 1
    assert "response__mid" in result.output
    result = CliRunner().invoke(app, [*args, "--answers", str(ANSWERS), "--cascade", "a >"])
    assert result.exit_code == 1 and "bad cascade" in result.output
    result = CliRunner().invoke(
        app, [*args, "--answers", str(ANSWERS), "--folds", "2", "--cascade", "tiny:1 > big"]
    )
    assert result.exit_code == 1 and "'tiny'" in result.output


def test_simulate_all_scores_every_candidate(table: OutcomeTable, answers: AnswerTable) -> None:
    codes = answer_codes(answers.texts, table.texts)
    pool = [parse_cascade(FIXED), Cascade((), "small")]
    sim = simulate_all(pool, codes, table.scores, table.costs, table.models)
    assert sim.quality.shape == sim.cost.shape == (2, len(table))
    assert sim.quality[0].mean() == pytest.approx(0.9)
    assert sim.cost[1].sum() == pytest.approx(0.01)


def test_code_answers_with_windows_line_ends_parse() -> None:
    crlf = "Here:\r\n\r\n```python\r\ndef f(x):\r\n    return x + 1\r\n```\r\nDone."
    assert normalise_code(crlf) == normalise_code("def f(x):\n    return x + 1")


def test_stage_features_take_the_plurality_answer_of_the_stage() -> None:
    codes = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=np.intp)
    x, served = stage_features(codes, [0, 1])
    assert served.tolist() == [0, 0, 1]
    assert x.tolist() == [
        [1, 1, 0, 0, 1.0, 0.5],
        [1, 0, 0, 0, 0.5, 1.0],
        [0, 1, 1, 0, 0.5, 0.5],
    ]


def test_pick_stage_takes_the_most_accurate_cheap_models() -> None:
    scores = np.array([[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 1.0, 1.0]])
    costs = np.array([[1.0, 2.0, 9.0, 10.0], [1.0, 2.0, 9.0, 10.0]])
    rows = np.arange(2)
    assert pick_stage(scores, costs, rows, 3, 0.25, 2) == [0, 1]
    assert pick_stage(scores, costs, rows, 3, 0.95, 2) == [2, 0]
    assert pick_stage(scores[:1], costs[:1], np.arange(1), 3, 0.25, 1) == [0]


def test_learned_acceptance_serves_the_stage_or_escalates_with_its_cost() -> None:
    codes = np.array([[0, 0, 0], [0, 1, 1], [0, 0, 1], [1, 0, 0]] * 2, dtype=np.intp)
    scores = np.array([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 1.0]] * 2)
    costs = np.tile([1.0, 2.0, 10.0], (8, 1))
    data = Inputs(codes, scores, costs, ["c"] * 8, 2)
    splits = [(np.arange(4, 8), np.arange(4)), (np.arange(4), np.arange(4, 8))]
    learned = evaluate_learned(data, splits, lambdas=(-1.0, 5.0), cheap_share=0.25, size=2)
    assert learned.stages == [{"c": [0, 1]}, {"c": [0, 1]}]
    assert learned.cost.tolist() == [[13.0] * 8, [3.0] * 8]
    assert learned.served.tolist() == [[2] * 8, [0, 0, 0, 0] * 2]


def synthetic_pool(scores: np.ndarray, costs: np.ndarray, categories: list[str]) -> Pool:
    """Single-model candidates over hand-made scores and costs; the last model is the
    strong one."""
    n, k = scores.shape
    models = [f"m{j}" for j in range(k)]
    texts = [f"prompt {i}" for i in range(n)]
    table = OutcomeTable([f"p{i}" for i in range(n)], texts, ["s"] * n, models, scores, costs, "h")
    sim = Simulated([Cascade((), m) for m in models], [], scores.T.copy(), costs.T.copy())
    return Pool(table, costs, k - 1, sim, categories, 0.25, k)


def test_the_target_choice_finds_a_weight_between_grid_values() -> None:
    """Only weights in (1/6, 0.168) pick the model reaching 95% below the strong
    model's cost: a grid stepping from 0.16 to 0.17 misses it."""
    quality, cost = [0.834, 0.96, 1.0], [0.01, 0.76, 1.0]
    pool = synthetic_pool(np.tile(quality, (20, 1)), np.tile(cost, (20, 1)), ["c"] * 20)
    rows = np.arange(20)
    coarse = choose_for_targets(pool, rows, [0.95], WEIGHTS, 5, 0)[0]
    assert coarse.picks == {"c": 2, "*": 2} and coarse.inner_cost == pytest.approx(1.0)
    exact = choose_for_targets(pool, rows, [0.95], Settings().choice_weights, 5, 0)[0]
    assert exact.picks == {"c": 1, "*": 1} and 1 / 6 < exact.weight < 0.168
    assert (exact.inner_quality, exact.inner_cost) == pytest.approx((0.96, 0.76))


@pytest.mark.parametrize("seed", range(8))
def test_the_exact_target_choice_is_as_good_as_a_very_fine_grid(seed: int) -> None:
    """Breakpoints here are below ref / (0.9 x 0.03) < 41, so the fine grid spans
    every policy but may step over narrow ones; the exact choice never does worse."""
    rng = np.random.default_rng(seed)
    n = 40
    scores = (rng.random((n, 5)) < [0.5, 0.6, 0.7, 0.8, 0.9]).astype(np.float64)
    costs = np.outer(rng.uniform(0.9, 1.1, n), [0.01, 0.04, 0.1, 0.3, 1.0])
    pool = synthetic_pool(scores, costs, rng.choice(["a", "b"], n).tolist())
    rows = np.arange(n)
    targets = [0.85, 0.9, 0.95, 1.0]
    fine = choose_for_targets(pool, rows, targets, tuple(np.linspace(0, 50, 20001)), 4, seed)
    exact = choose_for_targets(pool, rows, targets, None, 4, seed)
    for f, e in zip(fine, exact, strict=True):
        if f.inner_quality >= f.target - 1e-12:
            assert e.inner_quality >= e.target - 1e-12
            assert e.inner_cost <= f.inner_cost + 1e-12
        else:
            assert e.inner_quality >= f.inner_quality - 1e-12


def test_the_command_reads_every_row_on_the_scale_it_is_given(tmp_path: Path) -> None:
    """`--score-scale binary` holds both tables to 0/1 scores: a table of 1-10 scores is
    refused with the line and column of its first score off the scale."""
    args = ["eval-cascade", str(OUTCOMES), "--answers", str(ANSWERS), "--out", str(tmp_path)]
    small = ["--folds", "2", "--inner-folds", "2"]
    assert CliRunner().invoke(app, [*args, *small, "--score-scale", "binary"]).exit_code == 0
    rated = tmp_path / "rated.csv"
    with OUTCOMES.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows[0]["score__small"] = "7"
    with rated.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    refused = CliRunner().invoke(
        app, [*args[:1], str(rated), *args[2:], *small, "--score-scale", "binary"]
    )
    assert refused.exit_code == 1 and "7 is not a binary score" in refused.output
