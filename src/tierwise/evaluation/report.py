"""Write an evaluation to a folder: metrics.json, decisions.csv, report.md and, when
matplotlib is importable, cost_quality.png and strong_share.png."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

from tierwise.evaluation.runner import EvalResult, to_json


def write_outputs(result: EvalResult, out: Path) -> list[Path]:
    """Write every output file into `out` (created); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    data = to_json(result)
    paths = [out / "metrics.json", out / "decisions.csv", out / "report.md"]
    paths[0].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    write_decisions(result, paths[1])
    paths[2].write_text(markdown(data))
    if importlib.util.find_spec("matplotlib") is not None:
        paths += plot(data, out)
    return paths


def write_decisions(result: EvalResult, path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["prompt_id", "point", "model"])
        for label, _, choice in result.choices:
            for pid, j in zip(result.prompt_ids, choice.tolist(), strict=True):
                writer.writerow([pid, label, result.models[j]])


def _fmt(value: Any, pattern: str = "{:.4f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value) if isinstance(value, int | float) else str(value)


def markdown(data: dict[str, Any]) -> str:
    """report.md: setup, operating points against baselines, targets, APGR / AIQ."""
    split = data["split"]
    how = (
        f"{split['folds']}-fold cross-validation grouped by prompt text, seed {split['seed']}"
        if split["kind"] == "folds"
        else "trained on a separate table; prompts seen in training dropped"
    )
    lines = [
        f"# Evaluation of `{data['router']}`",
        "",
        f"{data['data']['evaluated']} of {data['data']['prompts']} prompts evaluated "
        f"(every model scored), {how}. Strong model: {data['strong']}; cheap: {data['cheap']}. "
        f"Cost unit: {data['cost_unit']}.",
        "",
        "| point | quality | % of strong quality | cost | % of strong cost | strong calls |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for p in data["baselines"] + data["points"]:
        lines.append(
            f"| {p['label']} | {_fmt(p['quality'])} "
            f"| {_fmt(p['quality_share_of_strong'], '{:.1%}')}"
            f" | {_fmt(p['cost'], '{:.6g}')} | {_fmt(p['cost_share_of_strong'], '{:.1%}')}"
            f" | {_fmt(p['strong_share'], '{:.1%}')} |"
        )
    lines += ["", "| target (share of strong quality) | point | quality | % of strong cost |"]
    lines.append("| --- | --- | --- | --- |")
    for target, t in data["targets"].items():
        lines.append(
            f"| {target} | {_fmt(t['label'])} | {_fmt(t['quality'])} "
            f"| {_fmt(t['cost_share_of_strong'], '{:.1%}')} |"
        )
    aiq = data["aiq"]
    lines += ["", f"AIQ: router {_fmt(aiq['router'])}, single models {_fmt(aiq['single_models'])}"]
    lines[-1] += f", random {_fmt(aiq['random'])}."
    two = data["two_model"]
    if two is not None:
        cpt = ", ".join(f"CPT({k}) {_fmt(v, '{:.1%}')}" for k, v in two["cpt"].items())
        lines += ["", f"APGR {_fmt(two['apgr'])} (random 0.5); {cpt}."]
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], out: Path) -> list[Path]:
    """The cost-quality curve with baselines, and quality over the share of strong calls."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for group, style in (("points", "o-"), ("baselines", "s")):
        rows = [p for p in data[group] if p["cost"] is not None and p["quality"] is not None]
        rows.sort(key=lambda p: p["cost"])
        if group == "points":
            ax.plot([p["cost"] for p in rows], [p["quality"] for p in rows], style, label="router")
            continue
        mix = [p for p in rows if p["label"].startswith("random")]
        xs, ys = [p["cost"] for p in mix], [p["quality"] for p in mix]
        ax.plot(xs, ys, "x--", color="grey", label="random mix")
        for p in (p for p in rows if p not in mix):
            ax.plot([p["cost"]], [p["quality"]], style)
            ax.annotate(p["label"], (p["cost"], p["quality"]), fontsize=6)
    ax.set_xlabel(f"cost ({data['cost_unit']})")
    ax.set_ylabel("quality")
    ax.set_title(data["router"])
    ax.legend()
    paths = [out / "cost_quality.png"]
    fig.savefig(paths[0], dpi=120, bbox_inches="tight")
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    if data["two_model"] is not None:
        curve = data["two_model"]["curve"]
        ax.plot([s for s, _ in curve], [q for _, q in curve], label="router (ranked)")
    points = [p for p in data["points"] if p["quality"] is not None]
    ax.plot(
        [p["strong_share"] for p in points], [p["quality"] for p in points], "o", label="points"
    )
    ax.set_xlabel(f"share of calls to {data['strong']}")
    ax.set_ylabel("quality")
    ax.legend()
    paths.append(out / "strong_share.png")
    fig.savefig(paths[1], dpi=120, bbox_inches="tight")
    plt.close(fig)
    return paths
