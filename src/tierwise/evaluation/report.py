"""Write an evaluation to a folder: metrics.json, decisions.csv, report.md and, when
matplotlib is importable, cost_quality.png and strong_share.png."""

from __future__ import annotations

import csv
import importlib.util
import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tierwise.evaluation.metrics import Index, Matrix
from tierwise.evaluation.runner import EvalResult, to_json

if TYPE_CHECKING:
    from tierwise.evaluation.replay import ReplayResult


def write_outputs(result: EvalResult, out: Path) -> list[Path]:
    """Write every output file into `out` (created); returns the paths written."""
    out.mkdir(parents=True, exist_ok=True)
    data = to_json(result)
    paths = [out / "metrics.json", out / "decisions.csv", out / "report.md"]
    paths[0].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    write_decisions(paths[1], result.prompt_ids, result.models, result.choices, result.costs)
    paths[2].write_text(markdown(data))
    if importlib.util.find_spec("matplotlib") is not None:
        paths += plot(data, out)
    return paths


def write_replay(result: ReplayResult, out: Path) -> list[Path]:
    """A replay's metrics.json, decisions.csv (by request id) and report.md."""
    from tierwise.evaluation.replay import replay_json

    out.mkdir(parents=True, exist_ok=True)
    data = replay_json(result)
    paths = [out / "metrics.json", out / "decisions.csv", out / "report.md"]
    paths[0].write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
    table = result.log.table
    write_decisions(paths[1], table.prompt_ids, table.models, result.choices, table.costs)
    paths[2].write_text(replay_markdown(data))
    return paths


DECISION_COLUMNS = ("prompt_id", "point", "model", "called", "cost")


def write_decisions(
    path: Path,
    ids: list[str],
    models: list[str],
    choices: list[tuple[str, float, Index]],
    costs: Matrix | None,
) -> None:
    """One row per prompt and point: the model served, every model called (in call
    order, joined by `+`; a router calls one) and the cost of the calls (empty when
    unknown)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(DECISION_COLUMNS)
        for label, _, choice in choices:
            for i, (pid, j) in enumerate(zip(ids, choice.tolist(), strict=True)):
                cost = "" if costs is None else _cost_cell(float(costs[i, j]))
                writer.writerow([pid, label, models[j], models[j], cost])


def _cost_cell(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.10g}"


def replay_markdown(data: dict[str, Any]) -> str:
    """report.md of a replay: what the log holds, the estimator's condition, points."""
    log = data["log"]
    served = ", ".join(f"{name} {n}" for name, n in log["served_by"].items())
    lines = [
        f"# Replay of `{data['router']}` on the request log",
        "",
        f"{log['source']}: {log['logged']} requests logged, {log['served']} served by a "
        f"model, {log['with_prompt']} with a prompt, {log['with_feedback']} with feedback, "
        f"{log['with_prompt_and_feedback']} with both; {log['with_variant']} carry an "
        f"experiment variant. Re-routed requests served by: {served}. Strong model: "
        f"{data['strong']}; cheap: {data['cheap']}. Cost unit: {data['cost_unit']}.",
        "",
        f"Estimator: {data['estimator']}",
    ]
    if not log["with_variant"]:
        lines[-1] += (
            " No request here carries a variant, so the served models were probably "
            "chosen by a router and these estimates are biased."
        )
    lines += ["", *point_table(data["baselines"] + data["points"], matched=True), ""]
    lines += target_table(data["targets"])
    return "\n".join(lines) + "\n"


def _fmt(value: Any, pattern: str = "{:.4f}") -> str:
    """A number in `pattern`, '-' for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return pattern.format(value) if isinstance(value, int | float) else str(value)


def split_text(split: dict[str, Any]) -> str:
    """How the evaluated prompts were held out, in words."""
    if split["kind"] == "folds":
        folds, seed = split["folds"], split["seed"]
        return f"{folds}-fold cross-validation grouped by prompt text, seed {seed}"
    if split["kind"] == "separate_train_table":
        return "trained on a separate table; prompts seen in training dropped"
    if split["kind"] == "saved_router":
        seen = " (the router was trained on this table: in-sample)" if split["in_sample"] else ""
        return f"saved router {split['path']} as it is, at its own operating point{seen}"
    text = (
        f"held out by {split['by']} group ({split['grouped_by']}): each group evaluated by "
        "a router fitted on the other groups only, training prompts whose text is in the "
        "held-out group dropped"
    )
    excluded = split["excluded"]
    if excluded is not None:
        text += f"; {excluded['rows']} rows with {excluded['column']}=1 excluded"
    return text


def markdown(data: dict[str, Any]) -> str:
    """report.md: setup, operating points against baselines, targets, APGR / AIQ."""
    lines = [
        f"# Evaluation of `{data['router']}`",
        "",
        f"{data['data']['evaluated']} of {data['data']['prompts']} prompts evaluated "
        f"(every model scored), {split_text(data['split'])}. Strong model: {data['strong']}; "
        f"cheap: {data['cheap']}. Cost unit: {data['cost_unit']}.",
        "",
        *point_table(data["baselines"] + data["points"]),
        "",
        *target_table(data["targets"]),
    ]
    aiq = data["aiq"]
    lines += ["", f"AIQ: router {_fmt(aiq['router'])}, single models {_fmt(aiq['single_models'])}"]
    lines[-1] += f", random {_fmt(aiq['random'])}."
    two = data["two_model"]
    if two is not None:
        cpt = ", ".join(f"CPT({k}) {_fmt(v, '{:.1%}')}" for k, v in two["cpt"].items())
        lines += ["", f"APGR {_fmt(two['apgr'])} (random 0.5); {cpt}."]
    if data.get("groups"):
        lines += ["", *group_table(data["groups"], data["split"])]
    return "\n".join(lines) + "\n"


def point_table(points: list[dict[str, Any]], matched: bool = False) -> list[str]:
    extra = " matched |" if matched else ""
    lines = [
        "| point | quality | % of strong quality | cost | % of strong cost | strong calls |"
        + extra,
        "| --- | --- | --- | --- | --- | --- |" + (" --- |" if matched else ""),
    ]
    for p in points:
        lines.append(
            f"| {p['label']} | {_fmt(p['quality'])} "
            f"| {_fmt(p['quality_share_of_strong'], '{:.1%}')}"
            f" | {_fmt(p['cost'], '{:.6g}')} | {_fmt(p['cost_share_of_strong'], '{:.1%}')}"
            f" | {_fmt(p['strong_share'], '{:.1%}')} |"
            + (f" {_fmt(p['matched'], '{:d}')} |" if matched else "")
        )
    return lines


def target_table(targets: dict[str, Any]) -> list[str]:
    lines = ["| target (share of strong quality) | point | quality | % of strong cost |"]
    lines.append("| --- | --- | --- | --- |")
    for target, t in targets.items():
        lines.append(
            f"| {target} | {_fmt(t['label'])} | {_fmt(t['quality'])} "
            f"| {_fmt(t['cost_share_of_strong'], '{:.1%}')} |"
        )
    return lines


def group_table(groups: dict[str, Any], split: dict[str, Any]) -> list[str]:
    """Per held-out group: APGR and CPT against random (two models), else the
    cheapest swept point at 95% of the strong model's quality."""
    lines = ["## Per held-out group", ""]
    trained = {g: v["train_prompts"] for g, v in split["groups"].items()}
    if "apgr" not in next(iter(groups.values())):
        lines += ["| group | prompts | trained on | point at 95% | % of strong cost |"]
        lines.append("| --- | --- | --- | --- | --- |")
        for name, g in groups.items():
            t = g["targets"]["0.95"]
            lines.append(
                f"| {name} | {g['prompts']} | {trained[name]} | {_fmt(t['label'])} "
                f"| {_fmt(t['cost_share_of_strong'], '{:.1%}')} |"
            )
        return lines
    lines += [
        "APGR's interval: 200 bootstrap resamples of the group's prompts. Strong calls at "
        "95% quality: the smallest share of strong calls whose quality reaches 95% of the "
        "strong model's (random routing in brackets).",
        "",
        "| group | prompts | trained on | weak | strong | APGR (95% CI) | random APGR "
        "| CPT(50%) | CPT(80%) | CPT(95%) | strong calls at 95% quality |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, g in groups.items():
        cpt = " | ".join(_fmt(v, "{:.0%}") for v in g["cpt"].values())
        at, rand = g["strong_share_at_quality"]["95%"], g["random"]["strong_share_at_quality"]
        lines.append(
            f"| {name} | {g['prompts']} | {trained[name]} | {_fmt(g['quality_weak'])} "
            f"| {_fmt(g['quality_strong'])} | {_fmt(g['apgr'], '{:.3f}')} "
            f"({_fmt(g['apgr_ci'][0], '{:.3f}')} .. {_fmt(g['apgr_ci'][1], '{:.3f}')}) "
            f"| {_fmt(g['random']['apgr'], '{:.3f}')} | {cpt} "
            f"| {_fmt(at, '{:.0%}')} ({_fmt(rand['95%'], '{:.0%}')}) |"
        )
    return lines


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
