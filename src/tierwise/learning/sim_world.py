"""The world of `tierwise simulate`: an outcome table and its recorded answers played
by the fake upstream, and the gateway config that routes among its models.

Each model of the table is a deployment (named after the model) in a tier of its
own, tiers ordered by the model's mean cost. The fake upstream answers each prompt
with the model's recorded answer and reports usage that bills the recorded cost: a
model's output price is its mean cost per thousand tokens, and an answer reports
round(cost / that price) output tokens (so a bill is the recorded cost within 0.05%).
The `judge` model answers the absolute judge question of `checks.judge` by reading
the recorded score of the (question, answer) pair: "Yes" with logprob ln(score)
when the score is at least 0.5, else "No" with logprob ln(1 - score).
"""

from __future__ import annotations

import csv
import math
import sys
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.checks.judge import MAX_ANSWER_CHARS
from tierwise.evaluation.answers import AnswerTable
from tierwise.learning.outcomes import OutcomeTable
from tierwise.testing import FakeUpstream, Scripted, text_of

JUDGE = "judge"
JUDGE_PRICE = {"input": "0.1", "output": "0.1"}
"""USD per million tokens: a small model's price."""
ROUTE = "auto"
TOKENS_PER_MEAN_ANSWER = 1000


@dataclass(frozen=True, slots=True)
class World:
    """The table's models, cheapest first, and the output price of each (USD per
    million tokens)."""

    models: list[str]
    prices: dict[str, float]

    def tier(self, model: str) -> str:
        return f"tier-{self.models.index(model) + 1}"


def world_of(table: OutcomeTable) -> World:
    means = np.nan_to_num(table.mean_costs(), nan=0.0)
    order = sorted(range(len(table.models)), key=lambda j: (means[j], table.models[j]))
    models = [table.models[j] for j in order]
    prices = {
        table.models[j]: max(float(means[j]), 1e-12) * 1e6 / TOKENS_PER_MEAN_ANSWER for j in order
    }
    return World(models, prices)


def script_answers(
    fake: FakeUpstream, world: World, table: OutcomeTable, answers: AnswerTable, rows: Sequence[int]
) -> int:
    """Script every known answer of `rows`; how many were scripted."""
    scripted = 0
    for i in rows:
        for j, model in enumerate(table.models):
            text, cost = answers.texts[i][j], float(table.costs[i, j])
            if not text or math.isnan(cost):
                continue
            per_token = world.prices[model] / 1e6
            tokens = max(0, round(cost / per_token))
            fake.script(model, table.texts[i], text, prompt_tokens=0, completion_tokens=tokens)
            scripted += 1
    return scripted


class RecordedJudge:
    """A fake judge model's replies: the recorded score of each (question, answer)."""

    def __init__(self, table: OutcomeTable, answers: AnswerTable, rows: Sequence[int]) -> None:
        found: dict[tuple[str, str], list[float]] = defaultdict(list)
        for i in rows:
            for j in range(len(table.models)):
                text, score = answers.texts[i][j], float(table.scores[i, j])
                if text and not math.isnan(score):
                    found[(table.texts[i], text[:MAX_ANSWER_CHARS])].append(score)
        self.scores = {key: sum(v) / len(v) for key, v in found.items()}
        self.asked = self.unknown = 0

    def __call__(self, messages: Sequence[Any]) -> Scripted | None:
        self.asked += 1
        turns = [m for m in messages if isinstance(m, dict)]
        if len(turns) < 3:
            self.unknown += 1
            return None
        question, answer = text_of(turns[-3].get("content")), text_of(turns[-2].get("content"))
        score = self.scores.get((question, answer))
        if score is None:
            self.unknown += 1
            return Scripted("Unsure", prompt_tokens=None, completion_tokens=1)
        word, p = ("Yes", score) if score >= 0.5 else ("No", 1.0 - score)
        return Scripted(word, completion_tokens=1, logprob=math.log(max(p, 1e-9)))


def gateway_data(
    world: World,
    base_url: str,
    store_url: str,
    *,
    router: str,
    explore: dict[str, Any],
    baseline: str,
) -> dict[str, Any]:
    """The gateway config: one deployment and tier per model, the judge, and the
    route `auto` that starts on `router` and explores with `explore`."""
    deployments: dict[str, Any] = {
        model: {
            "model": model,
            "api_base": base_url + "/v1",
            "price": {"input": "0", "output": f"{world.prices[model]:.12g}"},
        }
        for model in world.models
    }
    deployments[JUDGE] = {"model": JUDGE, "api_base": base_url + "/v1", "price": JUDGE_PRICE}
    tiers = {world.tier(m): [m] for m in world.models}
    route = {
        "router": {"kind": router},
        "tiers": list(tiers),
        "baseline": baseline,
        "explore": {"mode": "random", "judge": JUDGE, **explore},
    }
    return {
        "deployments": deployments,
        "tiers": tiers,
        "routes": {ROUTE: route},
        "store": {"url": store_url, "capture_prompts": True},
        "server": {"monitor_interval_s": 3600.0},
    }


def write_rows(source: Path, ids: set[str], models: Sequence[str], target: Path) -> None:
    """The rows of the outcome CSV `source` whose prompt id is in `ids`, keeping the
    score and cost columns of `models` only."""
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [c for c in reader.fieldnames or [] if _kept(c, models)]
        kept = [row for row in reader if row.get("prompt_id") in ids]
    with target.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, header, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)


def _kept(column: str, models: Sequence[str]) -> bool:
    _, sep, model = column.partition("__")
    return not sep or model in models
