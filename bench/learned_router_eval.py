"""Held-out quality and cost of tierwise's learned routers on public outcome tables.

RouterBench (routerbench_train.csv: 2,218 prompts, 11 models, real costs): K-fold
cross-validation grouped by prompt text; per cost weight, the mean held-out score of
the chosen model and its mean cost, against each single model, the best single model
(chosen on the training folds), a uniform random mix and the per-prompt oracle.

RouteLLM (routellm_gpt4_vs_mixtral.csv: 15,441 prompts, GPT-4 vs Mixtral): the same
folds; test prompts are ranked by the strong win rate 0.5 + (p_strong - p_weak) / 2
and the top share goes to GPT-4. Reports quality against the share of strong calls,
APGR (area under performance gap recovered over shares 0..1) and CPT(50%), CPT(80%),
computed by tierwise.evaluation.metrics.

RouteLLM leave-one-benchmark-out (`--only lobo`): `tierwise eval --holdout-by
source_benchmark` for each method and embedder: GSM8K, MMLU and MT-Bench each evaluated
by a router trained on the other two only (the 25 contaminated prompts excluded), with
APGR, CPT and the strong calls needed for 95% of GPT-4's quality against random routing.

    .venv/bin/python bench/learned_router_eval.py [--data DIR] [--embedders hashing,minilm]
        [--methods knn,logistic,mf] [--only routerbench|routellm|lobo] [--cache DIR]

Embeddings are cached per embedder and table hash (default ~/.cache/tierwise/
bench-embeddings; the lobo part uses tierwise's embedding cache, ~/.cache/tierwise/
embeddings): MiniLM on the 15,441 RouteLLM prompts takes about 25 minutes on 2 shared
cores the first time; every later run of either table is under 4 minutes.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tierwise.evaluation.metrics import SHARES, apgr, pooled_curve
from tierwise.evaluation.metrics import cpt as cpt_share
from tierwise.evaluation.runner import EvalResult, evaluate
from tierwise.learning.models import strong_win_rate
from tierwise.learning.outcomes import OutcomeTable, read_outcomes
from tierwise.learning.store import make_embedder
from tierwise.learning.train import (
    Metrics,
    cross_validate,
    embed_table,
    held_out_predictions,
    summarize,
)

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data"
DEFAULT_CACHE = Path.home() / ".cache" / "tierwise" / "bench-embeddings"
ROUTERBENCH, ROUTELLM = "routerbench_train.csv", "routellm_gpt4_vs_mixtral.csv"
STRONG = "gpt-4-1106-preview"
WEIGHTS = (0.0, 0.02, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3, 0.5, 1.0)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    embedders = [e for e in args.embedders.split(",") if e]
    if "minilm" in embedders and importlib.util.find_spec("tierwise.embeddings.minilm") is None:
        print("tierwise.embeddings.minilm is not installed; skipping minilm\n")
        embedders.remove("minilm")
    methods = args.methods.split(",")
    if args.only in (None, "routerbench"):
        routerbench(args.data / ROUTERBENCH, embedders, methods, args)
    if args.only in (None, "routellm"):
        routellm(args.data / ROUTELLM, embedders, methods, args)
    if args.only in (None, "lobo"):
        lobo(args.data / ROUTELLM, embedders, methods, args.seed)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="outcome-table folder")
    parser.add_argument("--embedders", default="hashing,minilm")
    parser.add_argument("--methods", default="knn,logistic,mf")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=("routerbench", "routellm", "lobo"))
    parser.add_argument(
        "--cache", default=str(DEFAULT_CACHE), help="embedding cache folder ('' for none)"
    )
    return parser.parse_args(argv)


def embed(table: OutcomeTable, name: str, cache: Path | None) -> tuple[np.ndarray, str]:
    """Embeddings of the table's texts, read from `cache` when computed before."""
    embedder = make_embedder(name)
    path = None if cache is None else cache / f"{embedder.name}-{table.content_hash[:16]}.npy"
    if path is not None and path.exists():
        x = np.load(path)
        if x.shape == (len(table), embedder.dimension):
            return x, f"{embedder.name}: {len(table)} embeddings read from {path}"
    started = time.perf_counter()
    x = embed_table(table, embedder)
    note = f"{embedder.name}: {len(table)} prompts embedded in {time.perf_counter() - started:.1f}s"
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, x)
    return x, note


def routerbench(
    path: Path, embedders: list[str], methods: list[str], args: argparse.Namespace
) -> None:
    table, folds, seed = read_outcomes(path), args.folds, args.seed
    print(
        f"## RouterBench ({path.name}): {len(table)} prompts, {len(table.models)} models, "
        f"{folds}-fold CV grouped by prompt text, seed {seed}\n"
    )
    print("Cost weight w: utility = P(good) - w x (mean cost / GPT-4's mean cost).\n")
    baselines: list[Metrics] = []
    rows: list[tuple[str, Metrics]] = []
    for name in embedders:
        x, note = embed(table, name, Path(args.cache) if args.cache else None)
        print(f"- {note}")
        for method in methods:
            started = time.perf_counter()
            results = cross_validate(
                table,
                method,
                make_embedder(name),
                folds=folds,
                seed=seed,
                cost_weights=WEIGHTS,
                embeddings=x,
            )
            print(f"- {method}: {time.perf_counter() - started:.1f}s for {folds} folds")
            rows += [(f"{method} / {name}", m) for m in summarize([r.router for r in results])]
            baselines = summarize([r.baselines for r in results])
    print()
    reference = next(b for b in baselines if b.name == f"always {STRONG}")
    print_metrics([("baseline", b) for b in baselines] + rows, reference)
    print_targets(rows, reference)


def print_metrics(rows: list[tuple[str, Metrics]], reference: Metrics) -> None:
    print(
        "| router | policy | quality | % of GPT-4 quality | cost USD/req | % of GPT-4 cost "
        "| most chosen |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, m in rows:
        top = sorted(m.shares.items(), key=lambda kv: -kv[1])[:2]
        chosen = ", ".join(f"{k} {v:.0%}" for k, v in top if v > 0)
        print(
            f"| {label} | {m.name} | {m.quality:.4f} | {m.quality / reference.quality:.1%} "
            f"| {m.cost_usd:.6f} | {m.cost_usd / reference.cost_usd:.1%} | {chosen} |"
        )
    print()


def print_targets(rows: list[tuple[str, Metrics]], reference: Metrics) -> None:
    print(
        "Cheapest swept point reaching a share of GPT-4's held-out quality "
        "(picked among the swept weights, so slightly optimistic):\n"
    )
    print("| router | target | policy | quality | % of GPT-4 cost |")
    print("| --- | --- | --- | --- | --- |")
    for label in dict.fromkeys(r for r, _ in rows):
        for target in (0.95, 0.99, 1.0):
            ok = [m for r, m in rows if r == label and m.quality >= target * reference.quality]
            if not ok:
                print(f"| {label} | {target:.0%} | none | - | - |")
                continue
            best = min(ok, key=lambda m: m.cost_usd)
            print(
                f"| {label} | {target:.0%} | {best.name} | {best.quality:.4f} "
                f"| {best.cost_usd / reference.cost_usd:.1%} |"
            )
    print()


def routellm(
    path: Path, embedders: list[str], methods: list[str], args: argparse.Namespace
) -> None:
    table, folds, seed = read_outcomes(path), args.folds, args.seed
    weak = next(i for i, m in enumerate(table.models) if m != STRONG)
    strong = table.models.index(STRONG)
    print(
        f"## RouteLLM ({path.name}): {len(table)} prompts, {table.models[strong]} (strong) "
        f"vs {table.models[weak]} (weak), {folds}-fold CV grouped by prompt text\n"
    )
    groups = {"all": np.ones(len(table), dtype=bool)}
    for prefix in ("mmlu", "gsm8k", "mt_bench"):
        groups[prefix] = np.array([s.startswith(prefix) for s in table.sources])
    curves: list[tuple[str, dict[str, np.ndarray]]] = []
    for name in embedders:
        x, note = embed(table, name, Path(args.cache) if args.cache else None)
        print(f"- {note}")
        for method in methods:
            started = time.perf_counter()
            predictions = held_out_predictions(table, method, x, folds=folds, seed=seed)
            win = np.empty(len(table))
            for fold in predictions:
                win[fold.test_index] = strong_win_rate(fold.probabilities, weak, strong)
            fold_of = np.empty(len(table), dtype=np.intp)
            for fold in predictions:
                fold_of[fold.test_index] = fold.fold
            print(f"- {method}: {time.perf_counter() - started:.1f}s for {folds} folds")
            curve = {
                g: quality_curve(table, win, fold_of, mask, weak, strong)
                for g, mask in groups.items()
            }
            curves.append((f"{method} / {name}", curve))
    print()
    print_routellm(table, groups, curves, weak, strong)


def quality_curve(
    table: OutcomeTable,
    win: np.ndarray,
    fold_of: np.ndarray,
    mask: np.ndarray,
    weak: int,
    strong: int,
) -> np.ndarray:
    """Held-out quality when the top `share` of each fold's test prompts (by win rate)
    go to the strong model, for each share in SHARES (folds weighted by size)."""
    rows = mask & ~np.isnan(table.scores).any(axis=1)
    s, w = table.scores[rows, strong], table.scores[rows, weak]
    return pooled_curve(w, s, win[rows], fold_of[rows], SHARES)


def print_routellm(
    table: OutcomeTable,
    groups: dict[str, np.ndarray],
    curves: list[tuple[str, dict[str, np.ndarray]]],
    weak: int,
    strong: int,
) -> None:
    print(
        "APGR = area under (quality - weak) / (strong - weak) over strong-call shares 0..1; "
        "random routing scores 0.5. CPT(x) = share of strong calls to recover x of the gap.\n"
    )
    print(
        "| router | prompts | weak | strong | APGR | CPT(50%) | CPT(80%) "
        "| quality at 20 / 50 / 80% strong |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for group, mask in groups.items():
        rows = mask & ~np.isnan(table.scores).any(axis=1)
        q_weak, q_strong = table.scores[rows, weak].mean(), table.scores[rows, strong].mean()
        oracle = np.maximum(table.scores[rows, weak], table.scores[rows, strong]).mean()
        share = (table.scores[rows, strong] > table.scores[rows, weak]).mean()
        print(
            f"| oracle | {group} ({rows.sum()}) | {q_weak:.4f} | {q_strong:.4f} | - | - | - "
            f"| {oracle:.4f} with {share:.1%} strong |"
        )
        for label, curve in curves:
            pgr = (curve[group] - q_weak) / (q_strong - q_weak)
            at = ", ".join(f"{curve[group][int(s * 100)]:.4f}" for s in (0.2, 0.5, 0.8))
            print(
                f"| {label} | {group} | {q_weak:.4f} | {q_strong:.4f} | {apgr(pgr, SHARES):.3f} "
                f"| {cpt(pgr, 0.5)} | {cpt(pgr, 0.8)} | {at} |"
            )
    print()


def cpt(pgr: np.ndarray, target: float) -> str:
    share = cpt_share(pgr, target, SHARES)
    return "-" if np.isnan(share) else f"{share:.0%}"


def lobo(path: Path, embedders: list[str], methods: list[str], seed: int) -> None:
    """Leave one benchmark out of the RouteLLM table, per method and embedder."""
    table = read_outcomes(path)
    print(
        f"## RouteLLM leave-one-benchmark-out ({path.name}): each benchmark evaluated by a "
        "router trained on the other two only\n"
    )
    results: list[tuple[str, EvalResult]] = []
    for name in embedders:
        for method in methods:
            started = time.perf_counter()
            result = evaluate(
                table, f"learned:{method}:{name}", seed=seed, holdout_by="source_benchmark"
            )
            print(f"- {method} / {name}: {time.perf_counter() - started:.1f}s")
            results.append((f"{method} / {name}", result))
    excluded = results[0][1].split["excluded"] if results else None
    if excluded:
        print(f"- {excluded['rows']} prompts with {excluded['column']}=1 excluded")
    print()
    print_lobo(results)


def print_lobo(results: list[tuple[str, EvalResult]]) -> None:
    print(
        "APGR's 95% interval: 200 bootstrap resamples of the held-out prompts. "
        "Strong calls at 95% quality: the smallest share of GPT-4 calls whose quality "
        "reaches 95% of always-GPT-4 (random routing in brackets). RouteLLM's published "
        "reference at 95% of GPT-4's quality: about 15% (MT-Bench), 55% (MMLU), 65% "
        "(GSM8K) GPT-4 calls.\n"
    )
    print(
        "| router | held out | prompts | trained on | APGR (95% CI) | random | CPT(50%) "
        "| CPT(80%) | CPT(95%) | GPT-4 calls at 95% quality |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, result in results:
        trained = result.split["groups"]
        for group, g in (result.groups or {}).items():
            cpts = " | ".join(_share(v) for v in g["cpt"].values())
            at, rand = g["strong_share_at_quality"]["95%"], g["random"]["strong_share_at_quality"]
            print(
                f"| {label} | {group} | {g['prompts']} | {trained[group]['train_prompts']} "
                f"| {g['apgr']:.3f} ({g['apgr_ci'][0]:.2f} .. {g['apgr_ci'][1]:.2f}) "
                f"| {g['random']['apgr']:.3f} | {cpts} "
                f"| {_share(at)} ({_share(rand['95%'])}) |"
            )
    print()


def _share(value: float | None) -> str:
    return "-" if value is None or np.isnan(value) else f"{value:.0%}"


if __name__ == "__main__":
    sys.exit(main())
