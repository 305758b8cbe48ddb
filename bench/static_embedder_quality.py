"""Routing quality of the static embedder against MiniLM, measured in the same run.

RouterBench (`../shared/data/routerbench_train.csv`, routed on `query_only`): each router
spec on each embedder, held out two ways: 5-fold cross-validation grouped by prompt text,
and leave-one-benchmark-out (`source_benchmark`). Reported per run:

  cost@95%  always-GPT-4's cost share at the cheapest operating point with at least 95%
            of GPT-4's quality (100% when none reaches it), all 11 models routed
  APGR      on the two-model table GPT-4 vs Mixtral-8x7B (RouteLLM's pairing)

with 95% percentile-bootstrap intervals over prompts; the resamples are shared by the
embedders, so "static - MiniLM" is a paired difference. Then the embedding router with
its seed examples: leave-one-out accuracy on those nine examples, and accuracy on the
crafted prompts of tests/test_embedding_router.py.

    .venv/bin/python bench/static_embedder_quality.py [--data PATH] [--resamples N]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierwise.evaluation import metrics as m
from tierwise.evaluation import runner
from tierwise.learning.outcomes import OutcomeTable, read_outcomes
from tierwise.learning.store import make_embedder
from tierwise.routing.embedding import COMPLEX_EXAMPLES, SIMPLE_EXAMPLES, EmbeddingRouter
from tierwise.types import ChatRequest, Message

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "routerbench_train.csv"
STRONG, WEAK = "gpt-4-1106-preview", "mixtral-8x7b-chat"
EMBEDDERS = ("minilm", "static")
SPECS = ("learned:knn:{}", "learned:logistic:{}", "embedding-centroid:{}")
SPLITS = (("5-fold CV", None), ("leave-one-benchmark-out", "source_benchmark"))
CRAFTED = (
    ("What time do you open on Saturdays?", "cheap"),
    ("Can I get a refund on a gift?", "cheap"),
    ("Hello!", "cheap"),
    ("Wie sind Ihre Öffnungszeiten am Samstag?", "cheap"),
    (
        "Compare microservices and a modular monolith for a 20-person team and "
        "recommend one, with the tradeoffs.",
        "strong",
    ),
    ("Analysiere diesen Vertrag und finde alle Haftungsklauseln.", "strong"),
)
Matrix = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Held:
    """Held-out routing of one spec: all models, and GPT-4 vs Mixtral."""

    rows: Index
    choices: list[Index]
    pair_rows: Index
    preference: Matrix
    groups: Index


def routed(table: OutcomeTable, spec: str, holdout_by: str | None) -> tuple[Index, list[Index]]:
    """Evaluated rows and each operating point's held-out choice per row."""
    s, c = runner.pick_models(table, STRONG, None)
    costs, _ = runner.eval_costs(table, s)
    plan = runner.split_plan(table, None, 5, 0, holdout_by, None)
    result = runner.route(runner.parse_spec(spec), table, costs, plan, s, c, 0, None)
    return plan.rows, [choice for _, _, choice in result.choices]


def held(table: OutcomeTable, pair: OutcomeTable, spec: str, holdout_by: str | None) -> Held:
    rows, choices = routed(table, spec, holdout_by)
    s, c = runner.pick_models(pair, STRONG, WEAK)
    costs, _ = runner.eval_costs(pair, s)
    plan = runner.split_plan(pair, None, 5, 0, holdout_by, None)
    two = runner.route(runner.parse_spec(spec), pair, costs, plan, s, c, 0, None)
    return Held(rows, choices, plan.rows, two.preference, two.groups)


def cost_at_95(table: OutcomeTable, costs: Matrix, run: Held, sample: Index) -> float:
    """Cheapest cost share of always-GPT-4 reaching 95% of its quality on `sample`."""
    s = table.models.index(STRONG)
    scores, rows = table.scores[run.rows][sample], costs[run.rows][sample]
    floor, strong_cost = 0.95 * scores[:, s].mean(), rows[:, s].mean()
    shares = [1.0]
    for choice in run.choices:
        picked = choice[sample]
        if scores[np.arange(len(sample)), picked].mean() >= floor - 1e-12:
            shares.append(float(rows[np.arange(len(sample)), picked].mean() / strong_cost))
    return min(shares)


def apgr(pair: OutcomeTable, run: Held, sample: Index) -> float:
    s, c = pair.models.index(STRONG), pair.models.index(WEAK)
    scores = pair.scores[run.pair_rows][sample]
    summary = m.two_model_summary(
        scores[:, c], scores[:, s], run.preference[sample], run.groups[sample]
    )
    return float(summary["apgr"])  # type: ignore[arg-type]


def interval(values: Sequence[float], percent: bool = False) -> str:
    low, high = np.quantile(values, [0.025, 0.975])
    return f"[{low:.1%}, {high:.1%}]" if percent else f"[{low:.3f}, {high:.3f}]"


def compare(table: OutcomeTable, pair: OutcomeTable, spec: str, split: str | None, n: int) -> str:
    """One table row per embedder and one for the paired difference."""
    costs, _ = runner.eval_costs(table, table.models.index(STRONG))
    runs = {e: held(table, pair, spec.format(e), split) for e in EMBEDDERS}
    size, pair_size = len(runs["minilm"].rows), len(runs["minilm"].pair_rows)
    rng = np.random.default_rng(0)
    draws = [(rng.integers(0, size, size), rng.integers(0, pair_size, pair_size)) for _ in range(n)]
    full = (np.arange(size), np.arange(pair_size))
    values: dict[str, list[tuple[float, float]]] = {}
    for name, run in runs.items():
        values[name] = [
            (cost_at_95(table, costs, run, a), apgr(pair, run, b)) for a, b in [full, *draws]
        ]
    lines = []
    for name in EMBEDDERS:
        point, boot = values[name][0], values[name][1:]
        lines.append(
            f"| {spec.format(name)} | {point[0]:.1%} {interval([b[0] for b in boot], True)} "
            f"| {point[1]:.3f} {interval([b[1] for b in boot])} |"
        )
    pairs = zip(values["static"], values["minilm"], strict=True)
    diff = [(a[0] - b[0], a[1] - b[1]) for a, b in pairs]
    lines.append(
        f"| static - MiniLM | {diff[0][0]:+.1%} {interval([d[0] for d in diff[1:]], True)} "
        f"| {diff[0][1]:+.3f} {interval([d[1] for d in diff[1:]])} |"
    )
    return "\n".join(lines)


def seed_accuracy(embedder_name: str) -> tuple[float, float]:
    """(leave-one-out accuracy on the seed's nine examples, accuracy on CRAFTED)."""
    embedder = make_embedder(embedder_name)
    texts = [*SIMPLE_EXAMPLES, *COMPLEX_EXAMPLES]
    labels = np.array([0] * len(SIMPLE_EXAMPLES) + [1] * len(COMPLEX_EXAMPLES))
    vectors = embedder.embed(texts)
    hits = 0
    for i in range(len(texts)):
        keep = np.arange(len(texts)) != i
        sims = [vectors[i] @ vectors[keep & (labels == k)].mean(axis=0) for k in (0, 1)]
        hits += int(np.argmax(sims)) == labels[i]
    router = EmbeddingRouter(embedder)
    router.warm_up()

    async def target(prompt: str) -> str:
        request = ChatRequest([Message("user", prompt)])
        return (await router.decide(request, ["cheap", "strong"])).target

    crafted = [asyncio.run(target(p)) == want for p, want in CRAFTED]
    return hits / len(texts), sum(crafted) / len(crafted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--resamples", type=int, default=1000)
    args = parser.parse_args()
    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: RouterBench's table is not shipped (--data)")
    table = read_outcomes(args.data)
    pair = table.with_models([STRONG, WEAK])
    print(f"{args.data.name}: {len(table)} prompts; {args.resamples} bootstrap resamples")
    for label, split in SPLITS:
        started = time.perf_counter()
        print(f"\n{label}\n\n| router | cost@95% [95% CI] | APGR GPT-4 vs Mixtral [95% CI] |")
        print("|---|---:|---:|")
        for spec in SPECS:
            print(compare(table, pair, spec, split, args.resamples), flush=True)
        print(f"({time.perf_counter() - started:.0f} s)")
    print("\n| embedder | seed examples, leave-one-out | crafted prompts |\n|---|---:|---:|")
    for name in EMBEDDERS:
        loo, crafted = seed_accuracy(name)
        print(f"| {name} | {loo:.0%} | {crafted:.0%} |")


if __name__ == "__main__":
    main()
