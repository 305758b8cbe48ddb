"""Cross-validated cost of answer cascades at 95% and 100% of GPT-4's accuracy on
RouterBench (routerbench_train.csv + routerbench_train_responses.csv), with every
operating point chosen on training prompts only.

Nested cross-validation: per outer fold (5-fold grouped by prompt text, each seed; or
each benchmark held out in turn), the cost weight that reaches the target on an inner
5-fold cross-validation of the training prompts is chosen, the per-category cascades it
picks on all training prompts run on the held-out prompts, and the pooled held-out cost
and accuracy (shares of GPT-4's, 95% bootstrap intervals over prompts) are printed. The
cascades are the ones the gateway runs (`tierwise.checks.cascade_policy`).

`--variants` also runs the candidate families tried: all ten other models as voters,
stages of up to two or four models. `--bound` prints, for reference, the best any
per-category choice of candidates reaches when chosen and measured on all prompts
(in-sample, so optimistic), for those families and for any other model as the final
one, two stages, and a category per number of options: with one candidate per category,
and when each category may mix two candidates at random (as choices that differ across
folds do); no held-out estimate of the family can beat the latter.

    .venv/bin/python bench/cascade_targets.py [--data DIR] [--seeds 0,1,2,3,4]
        [--variants] [--bound]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.checks.cascade_policy import Cascade, Stage
from tierwise.checks.normalise import category, options
from tierwise.evaluation.answers import AnswerTable, answer_codes, read_answers
from tierwise.evaluation.cascade import candidates, cheap_models, simulate_all
from tierwise.evaluation.cascade_eval import CascadeEval, evaluate_cascades
from tierwise.learning.outcomes import OutcomeTable, read_outcomes

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
TABLE, ANSWERS = "routerbench_train.csv", "routerbench_train_responses.csv"
STRONG = "gpt-4-1106-preview"
VARIANTS: dict[str, dict[str, Any]] = {
    "voters: every other model (cheap share 1.0)": {"cheap_share": 1.0},
    "stages of up to 2 models": {"max_group": 2},
    "stages of up to 4 models": {"max_group": 4},
}


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    table = read_outcomes(args.data / TABLE)
    answers = read_answers(args.data / ANSWERS, table.prompt_ids, table.models)
    print(f"{len(table)} prompts; GPT-4 = {STRONG}; shares of GPT-4's accuracy and cost\n")
    print("| split | target | accuracy share (95% CI) | cost share (95% CI) | weights chosen |")
    print("| --- | --- | --- | --- | --- |")
    for seed in [int(s) for s in args.seeds.split(",")]:
        report(f"5-fold, seed {seed}", run(table, answers, seed=seed))
    lobo = run(table, answers, holdout_by="source_benchmark")
    report("leave one benchmark out", lobo)
    per_benchmark(lobo)
    if args.variants:
        for name, options in VARIANTS.items():
            report(f"5-fold, seed 0, {name}", run(table, answers, **options))
    if args.bound:
        print_bound(table, answers)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="data folder")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated fold seeds")
    parser.add_argument("--variants", action="store_true", help="also the candidate variants")
    parser.add_argument("--bound", action="store_true", help="also the in-sample bound")
    return parser.parse_args(argv)


def run(table: OutcomeTable, answers: AnswerTable, **options: Any) -> CascadeEval:
    started = time.perf_counter()
    ev = evaluate_cascades(table, answers, strong=STRONG, **options)
    print(f"<!-- {time.perf_counter() - started:.0f} s -->")
    return ev


def _ci(pair: Sequence[float]) -> str:
    return f"{pair[0]:.1%}-{pair[1]:.1%}"


def report(split: str, ev: CascadeEval) -> None:
    for n in ev.nested:
        weights = ", ".join(f"{f['weight']:g}" for f in n["fits"])
        print(
            f"| {split} | {n['target']:.0%} | {n['quality_share']:.1%} "
            f"({_ci(n['quality_share_ci'])}) | {n['cost_share']:.1%} "
            f"({_ci(n['cost_share_ci'])}) | {weights} |"
        )


def per_benchmark(ev: CascadeEval) -> None:
    print("\nLeave one benchmark out, per held-out benchmark (shares of GPT-4's on it):\n")
    print("| target | held out | prompts | accuracy share | cost share | cascade for `*` |")
    print("| --- | --- | --- | --- | --- | --- |")
    for n in ev.nested:
        for f in n["fits"]:
            print(
                f"| {n['target']:.0%} | {f['fit']} | {f['prompts']} | {f['quality_share']:.1%} "
                f"| {f['cost_share']:.1%} | {f['chosen']['*']} |"
            )


def print_bound(table: OutcomeTable, answers: AnswerTable) -> None:
    """In-sample: the cheapest per-category choice of candidates reaching each target."""
    rows = np.flatnonzero(~np.isnan(table.scores).any(axis=1))
    sub = table.subset(rows)
    codes = answer_codes([answers.texts[i] for i in rows], sub.texts)
    s = sub.models.index(STRONG)
    means = dict(zip(sub.models, sub.costs.mean(axis=0).tolist(), strict=True))
    cheap = cheap_models(means, STRONG, 0.25)
    default = candidates(cheap, STRONG, sub.models, 3)
    pools = {
        "default (stages of up to 3 of the models under 25%)": default,
        "voters among all 10 other models": candidates(
            cheap_models(means, STRONG, 1.0), STRONG, sub.models, 3
        ),
        "stages of up to 2 models": candidates(cheap, STRONG, sub.models, 2),
        "stages of up to 4 models": candidates(cheap, STRONG, sub.models, 4),
        "any other model as the final one": default + other_finals(cheap, sub.models),
        "two stages of two (not runnable by the gateway)": default + two_stages(cheap),
    }
    categories = [category(t) for t in sub.texts]
    by_options = [f"choice{len(options(t))}" if options(t) else "open" for t in sub.texts]
    print("\nIn-sample bound (chosen and measured on all prompts):\n")
    print("| candidates | target | accuracy share | cost share | cost share, mixing |")
    print("| --- | --- | --- | --- | --- |")
    runs = [(name, pool, categories) for name, pool in pools.items()]
    runs.append(("default, a category per number of options", default, by_options))
    for name, pool, labels in runs:
        sim = simulate_all(pool, codes, sub.scores, sub.costs, sub.models)
        mixed = mixed_at(sim.quality, sim.cost, sub, s, labels)
        for target, (quality, cost) in frontier_at(sim.quality, sim.cost, sub, s, labels).items():
            print(f"| {name} | {target:.0%} | {quality:.1%} | {cost:.1%} | {mixed[target]:.1%} |")


def other_finals(cheap: Sequence[str], models: Sequence[str]) -> list[Cascade]:
    """Stages of one or two cheap models escalating to any model but GPT-4."""
    out = []
    for size in (1, 2):
        for group in itertools.permutations(cheap, size):
            finals = [m for m in models if m not in group and m != STRONG]
            out += [Cascade((Stage(group, size),), f) for f in finals]
    return out


def two_stages(cheap: Sequence[str]) -> list[Cascade]:
    pairs = list(itertools.permutations(cheap, 2))
    return [
        Cascade((Stage(a, 2), Stage(b, 2)), STRONG)
        for a in pairs
        for b in pairs
        if set(a) != set(b)
    ]


def frontier_at(
    quality: np.ndarray, cost: np.ndarray, sub: OutcomeTable, s: int, categories: Sequence[str]
) -> dict[float, tuple[float, float]]:
    """Per target, the cheapest combination of one candidate per category."""
    labels = np.array(categories)
    combos = [(0.0, 0.0)]
    for name in sorted(set(labels.tolist())):
        at = labels == name
        q, c = quality[:, at].sum(axis=1), cost[:, at].sum(axis=1)
        points = _pareto(list(zip(c.tolist(), q.tolist(), strict=True)))
        combos = _pareto([(c0 + c1, q0 + q1) for c0, q0 in combos for c1, q1 in points])
    q4, c4 = sub.scores[:, s].sum(), sub.costs[:, s].sum()
    out = {}
    for target in (0.95, 1.0):
        ok = [(c, q) for c, q in combos if q >= target * q4 - 1e-9]
        c, q = min(ok)
        out[target] = (q / q4, c / c4)
    return out


def mixed_at(
    quality: np.ndarray, cost: np.ndarray, sub: OutcomeTable, s: int, categories: Sequence[str]
) -> dict[float, float]:
    """Per target, the least cost share when each category may also mix two candidates
    at random (what choices differing across folds amount to): the lower convex hull of
    the per-category totals, from the choices maximising quality - x cost over x."""
    labels = np.array(categories)
    groups = [labels == name for name in sorted(set(labels.tolist()))]
    q = np.stack([quality[:, at].sum(axis=1) for at in groups])
    c = np.stack([cost[:, at].sum(axis=1) for at in groups])
    q4, c4 = sub.scores[:, s].sum(), sub.costs[:, s].sum()
    vertices = []
    for x in np.concatenate([[0.0], np.geomspace(1e-3, 1e4, 4000)]):
        best = np.argmax(q - x * c, axis=1)
        rows = np.arange(len(groups))
        vertices.append((float(c[rows, best].sum()), float(q[rows, best].sum())))
    hull = sorted(set(vertices))
    out = {}
    for target in (0.95, 1.0):
        floor = target * q4
        costs = [cc / c4 for cc, qq in hull if qq >= floor - 1e-9]
        for (c0, q0), (c1, q1) in itertools.pairwise(hull):
            if q0 < floor <= q1 and q1 > q0:
                costs.append((c0 + (c1 - c0) * (floor - q0) / (q1 - q0)) / c4)
        out[target] = min(costs)
    return out


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    best, out = -1.0, []
    for c, q in sorted(points, key=lambda p: (p[0], -p[1])):
        if q > best + 1e-9:
            out.append((c, q))
            best = q
    return out


if __name__ == "__main__":
    main()
