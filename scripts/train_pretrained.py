"""Train the pretrained router shipped in the package (`router: pretrained`).

Data: the two outcome tables of ../shared/data, as GPT-4 (strong) against Mixtral-8x7B
(weak): RouteLLM's evaluation data (MMLU, GSM8K, MT-Bench; Apache-2.0) and the
RouterBench training part (ARC-Challenge, Winogrande, MBPP; the same two models' columns).
Prompts are embedded with the `structure` embedder (topic-free features of a prompt's
form; no model file), so the shipped file is JSON: a 14 x 2 logistic model, its
threshold, the prompt kinds it is trusted on and the evidence, read without numpy.

Candidates: logistic regression at each C of `CS`, trained on RouteLLM alone or on both
tables. Everything is decided by leave-one-benchmark-out (LOBO) on training rows only:

- the candidate: the best mean APGR over the benchmarks held out in turn from the
  training benchmarks (inner LOBO; every benchmark weighs the same);
- the operating point: the fewest strong calls (a share of prompts) whose pooled
  inner-LOBO quality reaches 95% of the strong model's; the threshold saved is the
  fitted model's win rate above which that share of its training prompts lies (a
  share carries over between fits, a raw win rate does not);
- the prompt kinds the router is trusted on (`tierwise.routing.prompt_kind`): those
  whose pooled inner-LOBO APGR has its 95% interval above 0.5; open-ended prompts never.

The estimate is nested: each benchmark is held out, the whole choice above is made
again on the other benchmarks only, and the result routes the held-out benchmark once.
The shipped router is then chosen the same way on every benchmark, and refitted without
each benchmark in turn (its choice saw that benchmark, so these numbers are optimistic
next to the nested ones).

    .venv/bin/python scripts/train_pretrained.py [--data ../shared/data] [--out FILE]

With the same data the file is byte-identical; its sha256 (printed) is the one pinned
in `tierwise/routing/pretrained.py` (MODEL_SHA256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.structure import FEATURES, StructureEmbedder
from tierwise.evaluation import metrics as m
from tierwise.evaluation.operating import Outcomes, pick, threshold_curve
from tierwise.evaluation.splits import group_names
from tierwise.learning import sklearn_fit
from tierwise.learning.models import LogisticPredictor, Predictor, Vectors
from tierwise.learning.outcomes import OutcomeTable
from tierwise.learning.prepare import load_table
from tierwise.learning.train import table_vectors
from tierwise.routing.heuristic import STRONGEST, Features, seed_rules
from tierwise.routing.pretrained import FORMAT, FORMAT_VERSION
from tierwise.routing.prompt_kind import KINDS, OPEN, prompt_kind

Matrix = npt.NDArray[np.float64]
Index = npt.NDArray[np.intp]
Mask = npt.NDArray[np.bool_]

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "src" / "tierwise" / "data" / "pretrained_router.json"
STRONG, WEAK = "gpt-4-1106-preview", ("mixtral-8x7b-instruct", "mixtral-8x7b-chat")
TABLES = {"routellm": "routellm_gpt4_vs_mixtral.csv", "routerbench": "routerbench_train.csv"}
CS = (0.0003, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
TABLE_SETS = (("routellm",), ("routellm", "routerbench"))
TARGET = 0.95
MIN_KIND_PROMPTS = 50
QUANTILES = 101


@dataclass(frozen=True)
class Pool:
    """Every row of both tables: structure vectors, scores and costs as (weak, strong)
    columns (costs: USD where the table has them, else one unit per strong call), the
    table and benchmark of each row, rows left out of training, texts and kinds."""

    x: Vectors
    y: Matrix
    cost: Matrix
    table: npt.NDArray[np.str_]
    group: npt.NDArray[np.str_]
    excluded: Mask
    texts: list[str]
    kind: npt.NDArray[np.str_]


@dataclass(frozen=True)
class Candidate:
    c: float
    tables: tuple[str, ...]

    def label(self) -> str:
        return f"logistic C={self.c:g} on {'+'.join(self.tables)}"


@dataclass(frozen=True)
class Choice:
    """A candidate chosen on some benchmarks, its share of strong calls and trusted
    kinds, with the inner-LOBO evidence (mean APGR per candidate, APGR and interval per
    kind)."""

    candidate: Candidate
    strong_share: float
    trusted: frozenset[str]
    scores: dict[Candidate, float]
    kinds: dict[str, dict[str, Any]]


def two_models(table: OutcomeTable) -> tuple[Matrix, Matrix]:
    """Scores and costs of (weak, strong); a strong call costs 1 where costs are unknown."""
    weak = next(w for w in WEAK if w in table.models)
    cols = [table.models.index(weak), table.models.index(STRONG)]
    cost = table.costs[:, cols]
    if np.isnan(cost).all():
        cost = np.tile([0.0, 1.0], (len(table), 1))
    means = np.nanmean(cost, axis=0)
    return table.scores[:, cols], np.where(np.isnan(cost), means[None, :], cost)


def load_pool(data: Path) -> Pool:
    """Both tables, embedded through the embedding cache."""
    parts: list[tuple[str, OutcomeTable, Vectors]] = []
    embedder = StructureEmbedder()
    for name, file in TABLES.items():
        table = load_table(data / file)
        parts.append((name, table, table_vectors(table, embedder)))
    ys, costs = zip(*(two_models(t) for _, t, _ in parts), strict=True)
    flagged = [
        t.contaminated if t.contaminated is not None else np.zeros(len(t), bool)
        for _, t, _ in parts
    ]
    texts = [text for _, t, _ in parts for text in t.texts]
    return Pool(
        np.vstack([x for _, _, x in parts]),
        np.vstack(ys),
        np.vstack(costs),
        np.concatenate([np.full(len(t), n) for n, t, _ in parts]),
        np.concatenate([np.array(group_names(t.sources)) for _, t, _ in parts]),
        np.concatenate(flagged) | np.isnan(np.vstack(ys)).any(axis=1),
        texts,
        np.array([prompt_kind(t) for t in texts]),
    )


def training_rows(pool: Pool, groups: Sequence[str], tables: Sequence[str], held: str) -> Index:
    """Rows of `groups` in `tables`, without excluded rows or texts of `held`."""
    held_texts = {pool.texts[i] for i in np.flatnonzero(pool.group == held)}
    keep = np.isin(pool.group, list(groups)) & np.isin(pool.table, list(tables)) & ~pool.excluded
    unseen = np.array([t not in held_texts for t in pool.texts])
    rows: Index = np.flatnonzero(keep & unseen)
    return rows


def held_rows(pool: Pool, group: str) -> Index:
    """The rows of `group` that are evaluated when it is held out."""
    rows: Index = np.flatnonzero((pool.group == group) & ~pool.excluded)
    return rows


def win_rate(predictor: Predictor, x: Vectors) -> Matrix:
    p = predictor.predict(x)
    result: Matrix = 0.5 + 0.5 * (p[:, 1] - p[:, 0])
    return result


def lobo_wins(pool: Pool, groups: Sequence[str], tables: Sequence[str]) -> dict[str, list[Matrix]]:
    """Per group of `groups` held out: the strong win rate of its rows from each C
    of `CS`, fitted on the other groups (of `tables`) only."""
    out = {}
    for held in groups:
        others = [g for g in groups if g != held]
        train = training_rows(pool, others, tables, held)
        np.random.seed(0)
        fits = sklearn_fit.fit_logistic_path(pool.x[train], pool.y[train], CS)
        test = held_rows(pool, held)
        out[held] = [win_rate(f, pool.x[test]) for f in fits]
    return out


def apgr(y: Matrix, preference: Matrix, parts: Index) -> float:
    """APGR of `preference`, compared within each part only."""
    if parts.min() == parts.max():
        curve = m.gain_curve(y[:, 0], y[:, 1], preference, m.SHARES)
    else:
        curve = m.pooled_curve(y[:, 0], y[:, 1], preference, parts)
    return m.apgr(m.pgr(curve, float(y[:, 0].mean()), float(y[:, 1].mean())))


def apgr_interval(
    y: Matrix, preference: Matrix, parts: Index, samples: int, seed: int = 0
) -> tuple[float, float]:
    """95% percentile interval of APGR, prompts resampled within each part."""
    rng = np.random.default_rng(seed)
    members = [np.flatnonzero(parts == g) for g in np.unique(parts)]
    values = np.empty(samples)
    for b in range(samples):
        pick_ = np.concatenate([r[rng.integers(0, len(r), len(r))] for r in members])
        values[b] = apgr(y[pick_], preference[pick_], parts[pick_])
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def pooled(pool: Pool, wins: dict[str, list[Matrix]], c_index: int) -> tuple[Index, Matrix, Index]:
    """Rows, win rates and part (group number) of the held-out predictions at one C."""
    rows = [held_rows(pool, g) for g in wins]
    parts = [np.full(len(r), k) for k, r in enumerate(rows)]
    values = [wins[g][c_index] for g in wins]
    return np.concatenate(rows), np.concatenate(values), np.concatenate(parts)


def choose_on(pool: Pool, groups: Sequence[str], samples: int) -> Choice:
    """Candidate, threshold and trusted kinds from LOBO over `groups` only."""
    scores: dict[Candidate, float] = {}
    evidence: dict[Candidate, dict[str, list[Matrix]]] = {}
    for tables in TABLE_SETS:
        wins = lobo_wins(pool, groups, tables)
        for k, c in enumerate(CS):
            candidate = Candidate(c, tables)
            evidence[candidate] = wins
            values = [
                apgr(pool.y[held_rows(pool, g)], wins[g][k], _zeros(wins[g][k])) for g in wins
            ]
            scores[candidate] = float(np.mean(values))
    best = max(scores, key=lambda cand: (scores[cand], -cand.c, -len(cand.tables)))
    rows, win, parts = pooled(pool, evidence[best], CS.index(best.c))
    share = operating_share(pool.y[rows], win)
    kinds = kind_evidence(pool, rows, win, parts, samples)
    trusted = frozenset(k for k, e in kinds.items() if e["trusted"])
    return Choice(best, share, trusted, scores, kinds)


def _zeros(values: Matrix) -> Index:
    return np.zeros(len(values), dtype=np.intp)


def operating_share(y: Matrix, win: Matrix) -> float:
    """The fewest strong calls (a share) whose quality reaches TARGET x strong's."""
    outcomes = Outcomes(y, np.tile([0.0, 1.0], (len(y), 1)), 1)
    curve = threshold_curve(win, 0, outcomes)
    return float(curve.strong[pick(curve, TARGET * float(y[:, 1].mean()))])


def kind_evidence(
    pool: Pool, rows: Index, win: Matrix, parts: Index, samples: int
) -> dict[str, dict[str, Any]]:
    """Per prompt kind: held-out prompts, APGR and its interval, and whether trusted."""
    out: dict[str, dict[str, Any]] = {}
    for kind in KINDS:
        at = pool.kind[rows] == kind
        entry: dict[str, Any] = {"prompts": int(at.sum()), "trusted": False}
        if at.sum() >= MIN_KIND_PROMPTS:
            y, w, p = pool.y[rows[at]], win[at], parts[at]
            low, high = apgr_interval(y, w, p, samples)
            entry.update(apgr=apgr(y, w, p), interval=[low, high])
            entry["trusted"] = kind != OPEN and low > 0.5
        out[kind] = entry
    return out


def boot(fn: Any, n: int, samples: int, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of `fn(rows)` over prompts resampled with replacement."""
    rng = np.random.default_rng(seed)
    values = np.array([fn(rng.integers(0, n, n)) for _ in range(samples)], dtype=np.float64)
    low, high = np.nanpercentile(values, [2.5, 97.5])
    return float(low), float(high)


def cost_at_target(y: Matrix, cost: Matrix, preference: Matrix) -> float:
    """Cost share of always-strong at the cheapest point of the preference order (the
    top prompts to the strong model) reaching TARGET x the strong model's quality."""
    order = np.argsort(-preference, kind="stable")
    gains = np.concatenate([[0.0], np.cumsum((y[:, 1] - y[:, 0])[order])])
    extra = np.concatenate([[0.0], np.cumsum((cost[:, 1] - cost[:, 0])[order])])
    quality = (y[:, 0].sum() + gains) / len(y)
    spent = cost[:, 0].sum() + extra
    ok = quality >= TARGET * y[:, 1].mean() - 1e-12
    return float(spent[ok].min() / cost[:, 1].sum()) if ok.any() else math.nan


def shares(y: Matrix, cost: Matrix, strong: Mask) -> tuple[float, float]:
    """(cost, quality) of sending `strong` rows to the strong model, as shares of
    always-strong's."""
    at = np.arange(len(y))
    pick_ = strong.astype(np.intp)
    return (
        float(cost[at, pick_].sum() / cost[:, 1].sum()),
        float(y[at, pick_].mean() / y[:, 1].mean()),
    )


def heuristic_strong(texts: Sequence[str]) -> Mask:
    """Whether the heuristic router's seed rules send each text to the strongest tier."""
    rules = seed_rules()
    out = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):
        share = sum(1 for ch in text if ord(ch) > 127) / len(text) if text else 0.0
        f = Features(text, text.lower(), len(text), 1, False, False, None, "```" in text, share)
        tier = next((r.tier for r in rules if r.matches(f) is not None), None)
        out[i] = tier == STRONGEST
    return out


def held_out_report(
    pool: Pool, rows: Index, win: Matrix, threshold: float, choice: Choice, samples: int
) -> dict[str, Any]:
    """APGR, cost share at 95% on the held-out curve, and the shares at the chosen
    threshold, of the model alone and as routed (untrusted kinds to the heuristic)."""
    y, cost = pool.y[rows], pool.cost[rows]
    parts = _zeros(win)
    model = win > threshold
    trusted = np.isin(pool.kind[rows], list(choice.trusted))
    routed = np.where(trusted, model, heuristic_strong([pool.texts[i] for i in rows]))
    out: dict[str, Any] = {
        "prompts": len(rows),
        "apgr": apgr(y, win, parts),
        "apgr_interval": apgr_interval(y, win, parts, samples),
        "cost_at_95": cost_at_target(y, cost, win),
        "cost_at_95_interval": boot(
            lambda r: cost_at_target(y[r], cost[r], win[r]), len(y), samples
        ),
        "deferred": float(1 - trusted.mean()),
    }
    for name, strong in (("model", model), ("routed", routed)):
        c, q = shares(y, cost, strong)
        out[name] = {"cost_share": c, "quality_share": q, "strong_calls": float(strong.mean())}
        out[name]["cost_interval"] = boot(
            lambda r, s=strong: shares(y[r], cost[r], s[r])[0], len(y), samples
        )
        out[name]["quality_interval"] = boot(
            lambda r, s=strong: shares(y[r], cost[r], s[r])[1], len(y), samples
        )
    return out


def fit(
    pool: Pool, choice: Choice, groups: Sequence[str], held: str
) -> tuple[LogisticPredictor, float, Matrix]:
    """The chosen candidate fitted on `groups`, its threshold (the win rate above which
    the chosen share of its training prompts lies) and its training prompts' win rates."""
    rows = training_rows(pool, groups, choice.candidate.tables, held)
    np.random.seed(0)
    predictor = sklearn_fit.fit_logistic(pool.x[rows], pool.y[rows], choice.candidate.c)
    win = win_rate(predictor, pool.x[rows])
    return predictor, float(np.quantile(win, 1.0 - choice.strong_share)), win


def nested(pool: Pool, groups: Sequence[str], samples: int) -> dict[str, dict[str, Any]]:
    """Each benchmark held out; every choice made again on the others only."""
    out = {}
    for held in groups:
        others = [g for g in groups if g != held]
        choice = choose_on(pool, others, max(samples // 4, 100))
        predictor, threshold, _ = fit(pool, choice, others, held)
        rows = held_rows(pool, held)
        win = win_rate(predictor, pool.x[rows])
        report = held_out_report(pool, rows, win, threshold, choice, samples)
        report["chosen"] = choice.candidate.label()
        report["threshold"] = threshold
        report["strong_share_chosen"] = choice.strong_share
        report["trusted"] = sorted(choice.trusted)
        out[held] = report
        print(f"  held out {held}: {describe(report)}", flush=True)
    return out


def shipped_lobo(
    pool: Pool, groups: Sequence[str], choice: Choice, samples: int
) -> dict[str, dict[str, Any]]:
    """The shipped choice (candidate, share of strong calls, trusted kinds: chosen on
    every benchmark) refitted without each benchmark in turn and run on it."""
    out = {}
    for held in groups:
        others = [g for g in groups if g != held]
        predictor, threshold, _ = fit(pool, choice, others, held)
        rows = held_rows(pool, held)
        win = win_rate(predictor, pool.x[rows])
        report = held_out_report(pool, rows, win, threshold, choice, samples)
        report.update(chosen=choice.candidate.label(), threshold=threshold)
        report["trusted"] = sorted(choice.trusted)
        out[held] = report
        print(f"  held out {held}: {describe(report)}", flush=True)
    return out


def candidate_table(pool: Pool, groups: Sequence[str], samples: int) -> list[str]:
    """Plain LOBO APGR (interval) of every candidate on every benchmark."""
    lines = ["| candidate | " + " | ".join(groups) + " |", "|---" * (len(groups) + 1) + "|"]
    for tables in TABLE_SETS:
        wins = lobo_wins(pool, groups, tables)
        for k, c in enumerate(CS):
            cells = []
            for g in groups:
                y, w = pool.y[held_rows(pool, g)], wins[g][k]
                low, high = apgr_interval(y, w, _zeros(w), samples)
                cells.append(f"{apgr(y, w, _zeros(w)):.3f} ({low:.3f}-{high:.3f})")
            lines.append(f"| {Candidate(c, tables).label()} | " + " | ".join(cells) + " |")
    return lines


def pct(value: float) -> str:
    return "-" if not math.isfinite(value) else f"{value:.1%}"


def describe(r: dict[str, Any]) -> str:
    lo, hi = r["apgr_interval"]
    clo, chi = r["cost_at_95_interval"]
    model, routed = r["model"], r["routed"]
    return (
        f"{r['prompts']} prompts, APGR {r['apgr']:.3f} ({lo:.3f}-{hi:.3f}), cost at 95% "
        f"{pct(r['cost_at_95'])} ({pct(clo)}-{pct(chi)}); at threshold {r['threshold']:.4f}: "
        f"model {pct(model['cost_share'])} cost, {pct(model['quality_share'])} quality; "
        f"as routed ({pct(r['deferred'])} deferred) {pct(routed['cost_share'])} cost "
        f"({pct(routed['cost_interval'][0])}-{pct(routed['cost_interval'][1])}), "
        f"{pct(routed['quality_share'])} quality ({pct(routed['quality_interval'][0])}-"
        f"{pct(routed['quality_interval'][1])}); chose {r['chosen']}, trusted {r['trusted']}"
    )


def final_router(
    pool: Pool, groups: Sequence[str], samples: int
) -> tuple[LogisticPredictor, Choice, dict[str, Any]]:
    """The choice on every benchmark, fitted on every training row, and the file's body."""
    choice = choose_on(pool, groups, samples)
    predictor, threshold, win = fit(pool, choice, groups, held="")
    rows = training_rows(pool, groups, choice.candidate.tables, held="")
    quantiles = np.quantile(win, np.linspace(0, 1, QUANTILES))
    texts = "\n".join(sorted(pool.texts[i] for i in rows)).encode()
    body = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "embedder": StructureEmbedder().name,
        "features": [name for name, _ in FEATURES] + ["constant"],
        "weights": predictor.weights.tolist(),
        "bias": predictor.bias.tolist(),
        "threshold": threshold,
        "trusted_kinds": sorted(choice.trusted),
        "kinds": choice.kinds,
        "win_rate_quantiles": [round(float(q), 6) for q in quantiles],
        "training": {
            "candidate": choice.candidate.label(),
            "tables": list(choice.candidate.tables),
            "models": {"strong": STRONG, "weak": list(WEAK)},
            "prompts": len(rows),
            "texts_sha256": hashlib.sha256(texts).hexdigest(),
            "quality_target": TARGET,
            "strong_share": choice.strong_share,
            "inner_lobo_mean_apgr": {c.label(): v for c, v in choice.scores.items()},
            "made_by": "scripts/train_pretrained.py",
        },
    }
    return predictor, choice, body


def clean(value: Any) -> Any:
    """`value` as JSON: non-finite floats as None, tuples as lists."""
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def write_router(body: dict[str, Any], path: Path) -> bytes:
    """The file's bytes (sorted keys, so the same router gives the same bytes)."""
    data = (json.dumps(clean(body), sort_keys=True, indent=1, allow_nan=False) + "\n").encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def alpaca_lines(
    data: Path, predictor: LogisticPredictor, threshold: float, trusted: frozenset[str]
) -> list[str]:
    """What can be said about AlpacaEval's prompts without outcome labels."""
    file = data / "prompts_alpacaeval.jsonl"
    if not file.exists():
        return [f"AlpacaEval: {file} not found"]
    texts = [json.loads(line)["prompt"] for line in file.read_text().splitlines() if line]
    kinds = np.array([prompt_kind(t) for t in texts])
    model = win_rate(predictor, StructureEmbedder().embed(texts)) > threshold
    deferred = ~np.isin(kinds, list(trusted))
    counts = {k: int((kinds == k).sum()) for k in KINDS}
    return [
        f"AlpacaEval ({len(texts)} prompts, no outcome labels): kinds {counts}; "
        f"deferred to the heuristic {pct(float(deferred.mean()))}; the model alone would "
        f"send {pct(float(model.mean()))} to the strong tier, the heuristic "
        f"{pct(float(heuristic_strong(texts).mean()))}, the router as shipped "
        f"{pct(float(np.where(deferred, heuristic_strong(texts), model).mean()))}"
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA, help="folder of the outcome tables")
    parser.add_argument("--out", type=Path, default=OUT, help="router file to write")
    parser.add_argument("--samples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--skip-estimate", action="store_true", help="only train and write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    pool = load_pool(args.data)
    groups = sorted(set(pool.group.tolist()))
    print(f"{len(pool.texts)} prompts; benchmarks {groups}; {time.perf_counter() - started:.0f} s")
    print("(candidate intervals: 200 bootstrap resamples; the rest: --samples)")
    if not args.skip_estimate:
        print("\nplain leave-one-benchmark-out APGR (95% CI) of each candidate:")
        print("\n".join(candidate_table(pool, groups, min(args.samples, 200))))
        print("\nnested leave-one-benchmark-out of the whole choice:")
        estimate = nested(pool, groups, args.samples)
        print(json.dumps(clean(estimate), sort_keys=True))
    predictor, choice, body = final_router(pool, groups, args.samples)
    threshold = float(body["threshold"])
    if not args.skip_estimate:
        print("\nthe shipped choice, refitted without each benchmark in turn:")
        print(json.dumps(clean(shipped_lobo(pool, groups, choice, args.samples)), sort_keys=True))
    data = write_router(body, args.out)
    print(
        f"\nshipped: {choice.candidate.label()}, threshold {threshold:.6f} "
        f"({pct(choice.strong_share)} of the training prompts above it)"
    )
    print(f"inner LOBO on every benchmark, per kind: {json.dumps(clean(choice.kinds))}")
    print(f"trusted kinds: {sorted(choice.trusted)}")
    print("\n".join(alpaca_lines(args.data, predictor, threshold, choice.trusted)))
    print(f"wrote {args.out} ({len(data)} bytes), sha256 {hashlib.sha256(data).hexdigest()}")
    print(f"{time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
