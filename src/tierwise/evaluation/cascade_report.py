"""The outputs of `tierwise eval-cascade`: metrics.json, decisions.csv, report.md, the
plots, and the route config that runs a chosen policy in the gateway."""

from __future__ import annotations

import csv
import importlib.util
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from tierwise.checks.cascade_policy import ANY, CascadePolicy
from tierwise.evaluation.cascade_choose import Choice
from tierwise.evaluation.cascade_eval import CascadeEval, Served
from tierwise.evaluation.report import markdown, plot
from tierwise.evaluation.runner import to_json

TIER = "tier-"


def chosen_summary(points: Sequence[Served]) -> list[dict[str, Any]]:
    """Per point and category: each cascade chosen and in how many fits."""
    out = []
    for p in points:
        per: dict[str, Counter[str]] = {}
        for fold in p.chosen:
            for name, label in fold.items():
                per.setdefault(name, Counter())[label] += 1
        out.append(
            {
                "label": p.label,
                "param": p.param,
                "chosen": {k: dict(v.most_common()) for k, v in sorted(per.items())},
            }
        )
    return out


def cascade_json(ev: CascadeEval) -> dict[str, Any]:
    """The `cascade` part of metrics.json."""
    return {
        **ev.settings,
        "weight_unit": "quality per mean cost of the strong model",
        "categories": dict(sorted(Counter(ev.categories).items())),
        "chosen": chosen_summary(ev.points),
        "nested": ev.nested,
    }


def _pct(value: float) -> str:
    return f"{value:.1%}"


def nested_markdown(nested: Sequence[dict[str, Any]]) -> list[str]:
    """report.md's lines on the target points chosen on training data only."""
    lines = [
        "",
        "## Targets chosen on training data only",
        "",
        "Per fit, the cost weight whose inner cross-validated quality reaches the target "
        "at the least inner cost, applied to the fit's training rows, then measured on its "
        "held-out rows (shares of the strong model's, pooled; 95% bootstrap intervals):",
        "",
        "| target | quality share | cost share | per fit: weight, quality share, cost share |",
        "| --- | --- | --- | --- |",
    ]
    for n in nested:
        fits = "; ".join(
            f"{f['fit']}: w={f['weight']:g}, {_pct(f['quality_share'])}, {_pct(f['cost_share'])}"
            for f in n["fits"]
        )
        q, c = n["quality_share_ci"], n["cost_share_ci"]
        lines.append(
            f"| {n['target']:g} | {_pct(n['quality_share'])} ({_pct(q[0])}-{_pct(q[1])}) "
            f"| {_pct(n['cost_share'])} ({_pct(c[0])}-{_pct(c[1])}) | {fits} |"
        )
    return lines


def cascade_markdown(data: dict[str, Any]) -> str:
    """report.md's sections on the target points and the cascades chosen."""
    counts = ", ".join(f"{k} {v}" for k, v in data["categories"].items())
    lines = [
        *nested_markdown(data["nested"]),
        "",
        "## Cascades",
        "",
        f"Prompt categories: {counts}. {data['candidates']} candidate cascades; cheap models "
        f"cost at most {data['cheap_share']:.0%} of the strong model's mean, groups of up to "
        f"{data['max_group']}. Chosen per category ({ANY}: any category the training rows "
        "lack) on the training rows (in how many fits):",
        "",
        "| point | category | cascade (fits) |",
        "| --- | --- | --- |",
    ]
    for point in data["chosen"]:
        for name, chosen in point["chosen"].items():
            text = "; ".join(f"{label} ({n})" for label, n in chosen.items())
            lines.append(f"| {point['label']} | {name} | {text} |")
    return "\n".join(lines) + "\n"


def write_cascade_decisions(ev: CascadeEval, path: Path) -> None:
    """decisions.csv: per point and prompt the served model, the models called (in
    call order, joined by '+'), the cost, the prompt's category and its fit."""
    ids = ev.result.prompt_ids
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt_id", "point", "model", "called", "cost", "category", "fold"])
        for p in ev.points:
            for row, pid in enumerate(ids):
                model = ev.result.models[int(p.served[row])]
                cost = float(p.cost[row])
                fold = int(ev.folds[row])
                writer.writerow(
                    [pid, p.label, model, p.called[row], repr(cost), ev.categories[row], fold]
                )


def write_cascade_outputs(ev: CascadeEval, out: Path) -> list[Path]:
    """metrics.json, decisions.csv, report.md and (with matplotlib) the plots of
    `tierwise eval`, with the cascades chosen; returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    data = to_json(ev.result)
    data["cascade"] = cascade_json(ev)
    paths = [out / "metrics.json", out / "decisions.csv", out / "report.md"]
    paths[0].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    write_cascade_decisions(ev, paths[1])
    paths[2].write_text(markdown(data) + cascade_markdown(data["cascade"]))
    if importlib.util.find_spec("matplotlib") is not None:
        paths += plot(data, out)
    return paths


def route_config(
    policy: CascadePolicy, order: Sequence[str], strong: str, name: str = "cascade"
) -> dict[str, Any]:
    """`tiers` (`tier-<model>` for each model the executor calls: stage anchors, final
    models and `strong`, in `order`) and `routes` (`name`: the `answer_cascade` router
    and the `vote` check on the same cascades) that run `policy` in the gateway as it
    was simulated. Deployments are named after the models."""
    called = {strong} | set(policy.tiered())
    models = [m for m in order if m in called]
    cascades = policy.options()
    route = {
        "tiers": [TIER + m for m in models],
        "baseline": strong,
        "router": {"kind": "answer_cascade", "cascades": cascades},
        "checks": [{"kind": "vote", "cascades": cascades}],
        "on_checks_exhausted": "return_last",
        "stream_hold_back": 1_000_000,
    }
    return {"tiers": {TIER + m: [m] for m in models}, "routes": {name: route}}


def route_yaml(config: dict[str, Any], notes: Sequence[str]) -> str:
    """The route config as YAML, `notes` as comments on top."""
    head = "".join(f"# {line}\n" for line in notes)
    return head + yaml.safe_dump(config, sort_keys=False, width=100)


def route_notes(ev: CascadeEval, choice: Choice, name: str) -> list[str]:
    r = ev.result
    source = r.split.get("train_hash") or r.data["hash"]
    return [
        "Answer cascade chosen by `tierwise eval-cascade` on the training table",
        f"(sha256 {source[:16]}...) for {choice.target:g} of {r.strong}'s quality: cost "
        f"weight {choice.weight:g};",
        f"inner cross-validation on the training rows: {choice.inner_quality:.1%} of its "
        f"quality at {choice.inner_cost:.1%} of its cost.",
        "Merge into a gateway config that defines a deployment named after each model",
        f"named below (tiers and cascades); send requests to model {name!r}.",
    ]
