"""Experiment events and per-variant sufficient statistics, in the request store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import orjson

from tierwise.experiments.spec import ExperimentConfig
from tierwise.experiments.state import Action, Event
from tierwise.store.base import Store
from tierwise.store.experiments import METRICS, UNIT_LIMIT
from tierwise.store.tables import EventRow


@dataclass(frozen=True, slots=True)
class Moments:
    """One metric over the units of assignment (users, sessions, keys or requests):
    `k` units; sums over units of each unit's total `s` and count `c` of observations,
    and of `s^2`, `c^2` and `s*c`, enough for the ratio estimate of the per-observation
    mean and its variance with units as the independent draws."""

    k: int = 0
    s: float = 0.0
    c: float = 0.0
    s2: float = 0.0
    c2: float = 0.0
    sc: float = 0.0

    @property
    def n(self) -> int:
        """Observations."""
        return int(self.c)

    @property
    def mean(self) -> float:
        return self.s / self.c if self.c else float("nan")


@dataclass(frozen=True, slots=True)
class VariantData:
    requests: int
    cost: Moments
    baseline_usd: float
    latency: Moments
    errors: Moments
    fallbacks: int
    escalations: int
    satisfaction: Moments
    judge: Moments
    judge_cost_usd: float
    first_at: float | None
    last_at: float | None


async def write_event(store: Store, event: Event) -> None:
    definition = event.definition.model_dump_json() if event.definition else None
    await store.add_experiment_event(
        EventRow(
            experiment=event.experiment,
            created_at=event.created_at,
            action=event.action,
            definition=definition,
            serving=event.serving,
            reason=event.reason,
            actor=event.actor,
        )
    )


async def read_events(store: Store, after: float = 0.0) -> list[Event]:
    return [_event(row) for row in await store.experiment_events(after)]


def _event(row: EventRow) -> Event:
    raw = row["definition"]
    definition = ExperimentConfig.model_validate(orjson.loads(raw)) if raw else None
    return Event(
        row["experiment"],
        row["created_at"],
        cast(Action, row["action"]),
        definition,
        row["serving"],
        row["reason"] or "",
        row["actor"] or "",
    )


async def metric_moments(store: Store, experiment: str, metric: str) -> dict[str, Moments]:
    """Per variant, `metric`'s moments over units."""
    found = await store.unit_moments(experiment, metric)
    return {variant: Moments(**row) for variant, row in found.items()}


async def variant_data(store: Store, experiment: str) -> dict[str, VariantData]:
    """Per variant of `experiment`: requests, cost, latency, errors, feedback, judge."""
    requests = await store.variant_totals(experiment)
    metrics = {m: await metric_moments(store, experiment, m) for m in METRICS}
    judge_cost = await store.judge_costs(experiment)
    out = {}
    for row in requests:
        name = row["variant"]
        per = {m: metrics[m].get(name, Moments()) for m in METRICS}
        out[name] = VariantData(
            requests=row["n"],
            cost=per["cost"],
            baseline_usd=row["baseline"],
            latency=per["latency"],
            errors=per["error_rate"],
            fallbacks=row["fallbacks"],
            escalations=row["escalations"],
            satisfaction=per["satisfaction"],
            judge=per["judge"],
            judge_cost_usd=judge_cost.get(name, 0.0),
            first_at=row["first_at"],
            last_at=row["last_at"],
        )
    return out


async def unit_values(
    store: Store, experiment: str, metric: str, limit: int = UNIT_LIMIT
) -> dict[str, tuple[list[float], list[float]]]:
    """Per variant: each unit's sum of `metric` and its count (up to `limit` units)."""
    out: dict[str, tuple[list[float], list[float]]] = {}
    for row in await store.unit_sums(experiment, metric, limit):
        sums, counts = out.setdefault(row["variant"], ([], []))
        sums.append(row["s"])
        counts.append(row["c"])
    return out
