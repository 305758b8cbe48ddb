"""The gateway's own traffic as an outcome table: one row per logged request, in the
schema of the benchmark outcome tables (`prompt_id`, `prompt`, `source_benchmark`,
`score__<model>`, `cost_usd__<model>`), plus `propensity` when the log keeps one.

Each model that answered a request gets a score by one rule:
- the answer that was returned gets the judge's verdict when there is one, else the
  mean feedback score, else stays empty (an accepted answer is not assumed correct);
- an answer that failed a check or had too little confidence (the request escalated
  or fell back from it) scores 0;
- a model whose every call failed (errors, skips) gets no score.
Its cost is what its attempts were billed, in USD. A request whose every cell is
empty is not a row (outcome tables need one score per row); `LogOutcomes.unlabelled`
counts them.
"""

from __future__ import annotations

import csv
import io
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tierwise.routing.explore import SIDE_ROUTERS
from tierwise.store.base import Store
from tierwise.store.outcomes import OutcomeAttempt, OutcomeRequest

PICO = 1e12
ANSWERED = ("ok", "rejected")


@dataclass(frozen=True, slots=True)
class OutcomeRow:
    """One request: its scores and billed costs per model, and which model the
    route's router started it on (`chosen`; None for exploration's side calls, a
    shadow call or a judge's grade, or when that tier is unknown)."""

    prompt_id: str
    prompt: str
    route: str
    scores: dict[str, float]
    costs: dict[str, float]
    chosen: str | None = None
    propensity: float | None = None


@dataclass(frozen=True, slots=True)
class LogOutcomes:
    """Labelled rows (oldest first), how many requests had no label, and the tier
    each model served from (for a router trained on these rows)."""

    rows: list[OutcomeRow]
    unlabelled: int
    tiers: dict[str, str] = field(default_factory=dict)

    @property
    def models(self) -> list[str]:
        return sorted({m for r in self.rows for m in (*r.scores, *r.costs)})


def request_row(
    request: OutcomeRequest,
    attempts: Sequence[OutcomeAttempt],
    verdict: float | None,
    feedback: float | None,
) -> OutcomeRow:
    """The outcome row of one request by the rule in the module docstring."""
    label = verdict if verdict is not None else feedback
    scores: dict[str, float] = {}
    costs: dict[str, float] = defaultdict(float)
    for attempt in attempts:
        model = attempt["model"]
        if not model or not attempt["called"]:
            continue
        costs[model] += attempt["cost_pusd"] / PICO
        if attempt["outcome"] == "rejected":
            scores.setdefault(model, 0.0)
        elif attempt["outcome"] == "ok" and label is not None:
            scores[model] = float(label)
    called = [a for a in attempts if a["called"] and a["model"]]
    chosen = next((a["model"] for a in called if a["tier"] == request["decision_target"]), None)
    if chosen is None and called:
        chosen = called[0]["model"]
    return OutcomeRow(
        request["request_id"],
        request["prompt"],
        request["route"],
        scores,
        dict(costs),
        None if request["router"] in SIDE_ROUTERS else chosen,
        request["propensity"],
    )


def join(
    requests: Iterable[OutcomeRequest],
    attempts: Iterable[OutcomeAttempt],
    verdicts: Mapping[str, float],
    feedback: Mapping[str, float],
) -> LogOutcomes:
    """Every request's row; those without any score are only counted."""
    by_request: dict[str, list[OutcomeAttempt]] = defaultdict(list)
    tiers: dict[str, str] = {}
    for attempt in attempts:
        by_request[attempt["request_id"]].append(attempt)
        if attempt["model"] and attempt["tier"] and attempt["called"]:
            tiers.setdefault(attempt["model"], attempt["tier"])
    rows, unlabelled = [], 0
    for request in requests:
        rid = request["request_id"]
        row = request_row(request, by_request.get(rid, []), verdicts.get(rid), feedback.get(rid))
        if row.scores:
            rows.append(row)
        else:
            unlabelled += 1
    return LogOutcomes(rows, unlabelled, tiers)


async def collect(store: Store, since: float, route: str | None = None) -> LogOutcomes:
    """The outcome rows of requests (with a captured prompt) since `since`."""
    return join(
        await store.outcome_requests(since, route),
        await store.outcome_attempts(since, route),
        await store.outcome_verdicts(since, route),
        await store.outcome_feedback(since, route),
    )


def header(models: Sequence[str], propensity: bool) -> list[str]:
    columns = ["prompt_id", "prompt", "source_benchmark"]
    columns += [f"score__{m}" for m in models] + [f"cost_usd__{m}" for m in models]
    return columns + (["propensity"] if propensity else [])


def _cell(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else f"{value:.12g}"


def to_csv(outcomes: LogOutcomes) -> str:
    """The rows as outcome-table CSV text."""
    models = outcomes.models
    propensity = any(r.propensity is not None for r in outcomes.rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header(models, propensity))
    for row in outcomes.rows:
        cells = [row.prompt_id, row.prompt, row.route]
        cells += [_cell(row.scores.get(m)) for m in models]
        cells += [_cell(row.costs.get(m)) for m in models]
        writer.writerow(cells + ([_cell(row.propensity)] if propensity else []))
    return out.getvalue()


def write_csv(outcomes: LogOutcomes, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv(outcomes), encoding="utf-8")
