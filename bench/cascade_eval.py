"""Held-out cost of answer-agreement cascades at 95% and 100% of GPT-4's accuracy on
RouterBench (routerbench_train.csv + routerbench_train_responses.csv, 2,218 prompts,
11 models, real USD costs).

Cascades are chosen per prompt category (two options, more options, open / code) and
cost weight on the training folds (K-fold, grouped by prompt text) and measured on the
held-out fold; see tierwise.evaluation.cascade_eval. Compared with always-GPT-4, the
per-prompt oracle, a uniform random mix of the cheapest model and GPT-4 (as in
`tierwise eval`), a random mix on the single models' cost-quality hull, and fixed
cascades applied to every prompt. Cost share = mean cost / GPT-4's mean cost; '-' when a
policy never reaches the target.

    .venv/bin/python bench/cascade_eval.py [--data DIR] [--folds 5] [--seeds 0,1,2,3,4]
        [--out DIR] [--learned]

`--learned` also measures learned acceptance (a logistic regression on the stage's
answers decides whether to escalate; tierwise.evaluation.acceptance) on the same folds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tierwise.evaluation.acceptance import Inputs, evaluate_learned
from tierwise.evaluation.answers import AnswerTable, answer_codes, category, read_answers
from tierwise.evaluation.cascade import parse_cascade
from tierwise.evaluation.cascade_eval import CascadeEval, evaluate_cascades
from tierwise.evaluation.cascade_report import chosen_summary, write_cascade_outputs
from tierwise.evaluation.metrics import Point, cheapest_at, cost_of
from tierwise.learning.outcomes import OutcomeTable, read_outcomes
from tierwise.learning.train import fold_indices

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
TABLE, ANSWERS = "routerbench_train.csv", "routerbench_train_responses.csv"
STRONG = "gpt-4-1106-preview"
FIXED = (
    "Yi-34B-Chat+mixtral-8x7b-chat:2 > gpt-4-1106-preview",
    "Yi-34B-Chat+mixtral-8x7b-chat+gpt-3.5-turbo-1106:2 > gpt-4-1106-preview",
    "Yi-34B-Chat+mixtral-8x7b-chat+claude-instant-v1:3 > gpt-4-1106-preview",
)
TARGETS = (0.95, 1.0)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    table = read_outcomes(args.data / TABLE)
    answers = read_answers(args.data / ANSWERS, table.prompt_ids, table.models)
    fixed = [parse_cascade(spec) for spec in FIXED]
    seeds = [int(s) for s in args.seeds.split(",")]
    runs = []
    for seed in seeds:
        started = time.perf_counter()
        runs.append(
            evaluate_cascades(
                table, answers, folds=args.folds, seed=seed, strong=STRONG, fixed=fixed
            )
        )
        print(f"seed {seed}: {time.perf_counter() - started:.1f} s")
    first = runs[0]
    print_setup(first, args.folds, seeds)
    print_table(first, len(fixed))
    print_seeds(runs, seeds)
    print_chosen(first)
    if args.learned:
        print_learned(table, answers, args.folds, seeds)
    if args.out is not None:
        paths = write_cascade_outputs(first, args.out)
        print("\nwrote " + ", ".join(str(p) for p in paths))


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seeds", default="0", help="comma-separated fold seeds")
    parser.add_argument("--out", type=Path, help="also write the outputs of seed 0 here")
    parser.add_argument(
        "--learned", action="store_true", help="also measure learned acceptance (per seed)"
    )
    return parser.parse_args(argv)


def print_setup(ev: CascadeEval, folds: int, seeds: Sequence[int]) -> None:
    r = ev.result
    strong = _strong(ev)
    print(
        f"\n{r.data['evaluated']} of {r.data['prompts']} prompts (every model scored), "
        f"{folds}-fold CV grouped by prompt text, seeds {','.join(map(str, seeds))}; "
        f"table below: seed {seeds[0]}. GPT-4: quality {strong.quality:.4f}, "
        f"${strong.cost * 1000:.3f} per 1k requests."
    )


def _strong(ev: CascadeEval) -> Point:
    return ev.result.baselines[ev.result.models.index(ev.result.strong)]


def _share(points: Sequence[Point], target: float, strong: Point) -> float:
    best = cheapest_at(points, target * strong.quality, strong)
    return math.nan if best is None else cost_of(best, strong)


def mix_share(a: Point, b: Point, target: float, strong: Point) -> float:
    """Cost share of the cheapest random mix of `a` and `b` reaching the target."""
    floor = target * strong.quality
    if a.quality >= floor:
        return a.cost / strong.cost
    if b.quality < floor - 1e-12 or b.quality <= a.quality:
        return math.nan
    s = (floor - a.quality) / (b.quality - a.quality)
    return ((1 - s) * a.cost + s * b.cost) / strong.cost


def hull_mix_share(singles: Sequence[Point], target: float, strong: Point) -> float:
    """The cheapest random mix of any two single models reaching the target."""
    values = [mix_share(a, b, target, strong) for a in singles for b in singles]
    known = [v for v in values if math.isfinite(v)]
    return min(known) if known else math.nan


def rows_of(ev: CascadeEval, n_fixed: int) -> list[tuple[str, Point | None, list[float]]]:
    r, strong = ev.result, _strong(ev)
    singles = r.baselines[: len(r.models)]
    cheapest = min(singles, key=lambda p: p.cost)
    chosen = r.points[: len(r.points) - n_fixed]
    oracle = next(p for p in r.baselines if p.label == "oracle")
    rows: list[tuple[str, Point | None, list[float]]] = [
        (
            "cascades chosen per category (held out)",
            None,
            [_share(chosen, t, strong) for t in TARGETS],
        ),
        ("always GPT-4", strong, [_share([strong], t, strong) for t in TARGETS]),
        (
            "oracle (per prompt best, then cheapest)",
            oracle,
            [_share([oracle], t, strong) for t in TARGETS],
        ),
        (
            f"random mix {cheapest.label[7:]} / GPT-4",
            None,
            [mix_share(cheapest, strong, t, strong) for t in TARGETS],
        ),
        (
            "random mix of two single models (best)",
            None,
            [hull_mix_share(singles, t, strong) for t in TARGETS],
        ),
    ]
    for p in r.points[len(r.points) - n_fixed :]:
        rows.append((f"fixed: {p.label}", p, [_share([p], t, strong) for t in TARGETS]))
    return rows


def _pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1%}"


def print_table(ev: CascadeEval, n_fixed: int) -> None:
    strong = _strong(ev)
    print("\n| policy | accuracy (% of GPT-4) | cost share at 95% | cost share at 100% |")
    print("| --- | --- | --- | --- |")
    for name, p, shares in rows_of(ev, n_fixed):
        acc = "-" if p is None else f"{p.quality:.4f} ({p.quality / strong.quality:.1%})"
        if p is not None:
            acc += f" at {cost_of(p, strong):.1%} cost"
        print(f"| {name} | {acc} | {_pct(shares[0])} | {_pct(shares[1])} |")
    print("\nHeld-out cascade points (cost weight w):")
    print("| point | accuracy | % of GPT-4 | cost share | GPT-4 called |")
    print("| --- | --- | --- | --- | --- |")
    for p in ev.result.points[: len(ev.result.points) - n_fixed]:
        print(
            f"| {p.label} | {p.quality:.4f} | {p.quality / strong.quality:.1%} "
            f"| {cost_of(p, strong):.1%} | {p.strong_share:.1%} |"
        )


def print_seeds(runs: Sequence[CascadeEval], seeds: Sequence[int]) -> None:
    if len(runs) < 2:
        return
    print("\nPer fold seed: cost share of the cheapest held-out point at 95% / 100% of GPT-4")
    values: dict[float, list[float]] = {t: [] for t in TARGETS}
    for seed, ev in zip(seeds, runs, strict=True):
        chosen = [p for p in ev.result.points if p.label.startswith("cascade w=")]
        shares = [_share(chosen, t, _strong(ev)) for t in TARGETS]
        for t, v in zip(TARGETS, shares, strict=True):
            values[t].append(v)
        print(f"  seed {seed}: {_pct(shares[0])} / {_pct(shares[1])}")
    for t, v in values.items():
        known = [x for x in v if math.isfinite(x)]
        if known:
            print(f"  {t:.0%}: mean {statistics.mean(known):.1%} over {len(known)} seeds")


def print_chosen(ev: CascadeEval) -> None:
    strong = _strong(ev)
    chosen = [p for p in ev.result.points if p.label.startswith("cascade w=")]
    best = cheapest_at(chosen, TARGETS[0] * strong.quality, strong)
    if best is None:
        return
    summary = next(s for s in chosen_summary(ev.points) if s["label"] == best.label)
    print(f"\nCascades chosen at {best.label} (folds choosing each):")
    for name, picks in summary["chosen"].items():
        print(f"  {name}: " + "; ".join(f"{k} ({n})" for k, n in picks.items()))


def learned_shares(table: OutcomeTable, answers: AnswerTable, folds: int, seed: int) -> list[float]:
    """Held-out cost share at each target of learned acceptance (on the same folds)."""
    rows = np.flatnonzero(~np.isnan(table.scores).any(axis=1))
    sub = table.subset(rows)
    strong = sub.models.index(STRONG)
    codes = answer_codes([answers.texts[i] for i in rows], sub.texts)
    data = Inputs(codes, sub.scores, sub.costs, [category(t) for t in sub.texts], strong)
    learned = evaluate_learned(data, fold_indices(sub, folds, seed))
    every = np.arange(len(rows))
    quality = sub.scores[every, learned.served].mean(axis=1) / sub.scores[:, strong].mean()
    share = learned.cost.mean(axis=1) / sub.costs[:, strong].mean()
    out = []
    for target in TARGETS:
        reached = share[quality >= target - 1e-12]
        out.append(float(reached.min()) if reached.size else math.nan)
    return out


def print_learned(
    table: OutcomeTable, answers: AnswerTable, folds: int, seeds: Sequence[int]
) -> None:
    print("\nLearned acceptance (tierwise.evaluation.acceptance), cost share at 95% / 100%:")
    values = [learned_shares(table, answers, folds, seed) for seed in seeds]
    for seed, (at95, at100) in zip(seeds, values, strict=True):
        print(f"  seed {seed}: {_pct(at95)} / {_pct(at100)}")
    known = [v[0] for v in values if math.isfinite(v[0])]
    if known:
        print(f"  95%: mean {statistics.mean(known):.1%} over {len(known)} seeds")


if __name__ == "__main__":
    main()
