"""Evaluate a saved router as it is: nothing refitted, its own operating point.

A saved router is a router file (`.npz`, as `tierwise train` writes it), or a YAML file
holding a router config (`router: {kind: ..., ...}`, as `tierwise calibrate` prints it,
optionally with `tiers:` listing the route's tiers cheapest first), a bare router mapping
(`kind: ...`, as `tierwise fit-examples` writes it) or only `examples:` (older
`fit-examples` output, embedded with `embedder:` or hashing). It is built by the
gateway's router registry and decides every prompt of the table as it would decide a
request whose last user message is the prompt; a learned router decides from the
table's embeddings (through the embedding cache) with the same decision code.

Tiers are the table's model columns: a config's tier names must be model names (give a
column a tier's name with `--map MODEL=TIER`), or, for a learned router, the tier its
`models` option maps exactly one model column to. Without `tiers:`, a learned router's
tiers are the ones its models map to, and any other router's are the cheap and the
strong model. Tiers are ordered by their model's mean cost (cheapest first).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from tierwise.errors import ConfigError
from tierwise.evaluation.metrics import Index, Matrix
from tierwise.evaluation.runner import (
    EvalResult,
    Routed,
    eval_costs,
    evaluate,
    evaluated_rows,
    pick_models,
    result_of,
)
from tierwise.learning.models import strong_win_rate
from tierwise.learning.outcomes import OutcomeTable

SUFFIXES = (".npz", ".yaml", ".yml")


def is_saved(spec: str) -> bool:
    """A router file or YAML config (by suffix, or an existing file)."""
    path = Path(spec)
    return path.suffix.lower() in SUFFIXES or path.is_file()


def router_config(path: Path) -> tuple[dict[str, Any], list[str] | None]:
    """The router config of a YAML file and its `tiers` (None when not given)."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the router config: {exc}", file=str(path)) from None
    if not isinstance(data, dict):
        raise ConfigError("a router config is a mapping", file=str(path))
    tiers = data.get("tiers")
    if tiers is not None and not (
        isinstance(tiers, list) and all(isinstance(t, str) for t in tiers)
    ):
        raise ConfigError("'tiers' is a list of tier names, cheapest first", file=str(path))
    if isinstance(data.get("router"), dict | str):
        router = data["router"]
        return ({"kind": router} if isinstance(router, str) else dict(router)), tiers
    if "kind" in data:
        return {k: v for k, v in data.items() if k != "tiers"}, tiers
    if "examples" in data:
        embedder = data.get("embedder", "hashing")
        return {"kind": "embedding", "embedder": embedder, "examples": data["examples"]}, tiers
    raise ConfigError(
        "not a router config: expected 'router:', 'kind:' or 'examples:' at the top level",
        file=str(path),
    )


def build(spec: str, table: OutcomeTable) -> tuple[Any, list[str] | None]:
    """The router of a saved file, built as the gateway builds it, and its tiers."""
    from tierwise.config import RouterConfig
    from tierwise.routing.learned import LearnedRouter
    from tierwise.routing.registry import build_router

    path = Path(spec)
    if path.suffix.lower() == ".npz":
        from tierwise.learning.store import load_router

        known = load_router(path).models
        models = {name: name for name in table.models if name in known}
        if len(models) < 2:
            raise ValueError(f"the router predicts {known}; the table has {table.models}")
        return LearnedRouter(path, models), None
    raw, tiers = router_config(path)
    return build_router(RouterConfig.model_validate(raw)), tiers


def served_models(router: Any, tiers: Sequence[str], table: OutcomeTable) -> list[int]:
    """The table column serving each tier."""
    mapped: dict[str, list[str]] = {}
    for model, tier in getattr(router, "models", {}).items():
        mapped.setdefault(tier, []).append(model)
    out = []
    for tier in tiers:
        if tier in table.models:
            out.append(table.models.index(tier))
            continue
        names = [n for n in mapped.get(tier, []) if n in table.models]
        if len(names) != 1:
            raise ValueError(
                f"tier {tier!r} is not a model of the table ({', '.join(table.models)}); "
                f"name a column after it with --map MODEL={tier}"
            )
        out.append(table.models.index(names[0]))
    return out


def targets_of(
    router: Any, tiers: list[str] | None, table: OutcomeTable, costs: Matrix, sc: tuple[int, int]
) -> tuple[list[str], list[int]]:
    """The router's tiers, cheapest first, and the column serving each."""
    if tiers is None:
        mapping = getattr(router, "models", None)
        if isinstance(mapping, dict):
            tiers = list(dict.fromkeys(mapping.values()))
        else:
            tiers = [table.models[sc[1]], table.models[sc[0]]]
    columns = served_models(router, tiers, table)
    means, quality = costs.mean(axis=0), np.nan_to_num(table.mean_scores())
    order = sorted(range(len(tiers)), key=lambda i: (means[columns[i]], quality[columns[i]]))
    return [tiers[i] for i in order], [columns[i] for i in order]


def decisions(router: Any, table: OutcomeTable, rows: Index, targets: list[str]) -> list[str]:
    """The tier chosen for each row's prompt."""
    from tierwise.learning.store import make_embedder
    from tierwise.learning.train import table_vectors
    from tierwise.routing.learned import LearnedRouter
    from tierwise.types import ChatRequest, Message

    if isinstance(router, LearnedRouter):
        x = table_vectors(table, make_embedder(router.load().embedder_name))[rows]
        return router.decide_embedded(x, targets)

    async def each() -> list[str]:
        out = []
        for i in rows:
            request = ChatRequest([Message("user", table.texts[i])])
            out.append((await router.decide(request, targets)).target)
        return out

    return asyncio.run(each())


def preference(
    router: Any, table: OutcomeTable, rows: Index, choice: Index, sc: tuple[int, int]
) -> Matrix:
    """A learned router's strong win rate (two models), else 1 where strong was chosen."""
    from tierwise.learning.store import make_embedder
    from tierwise.learning.train import table_vectors
    from tierwise.routing.learned import LearnedRouter

    s, c = sc
    if isinstance(router, LearnedRouter):
        trained = router.load()
        if {table.models[s], table.models[c]} <= set(trained.models):
            x = table_vectors(table, make_embedder(trained.embedder_name))[rows]
            p = trained.predict(x)
            pair = (trained.models.index(table.models[c]), trained.models.index(table.models[s]))
            result: Matrix = strong_win_rate(p, *pair)
            return result
    flat: Matrix = (choice == s).astype(np.float64)
    return flat


def point_label(router: Any) -> tuple[str, float]:
    """The saved point's label and value."""
    from tierwise.routing.learned import LearnedRouter

    if not isinstance(router, LearnedRouter):
        return "saved", 0.0
    trained = router.load()
    cut = router.threshold if router.threshold is not None else trained.threshold
    if cut is not None and router.cost_weight is None:
        return f"saved threshold={cut:g}", cut
    weight = trained.cost_weight if router.cost_weight is None else router.cost_weight
    return f"saved w={weight:g}", weight


def evaluate_saved(
    table: OutcomeTable, spec: str, strong: str | None, cheap: str | None, router_tax: float
) -> EvalResult:
    """`spec`'s decisions on every prompt where each model has a score."""
    s, c = pick_models(table, strong, cheap)
    costs, unit = eval_costs(table, s)
    rows = evaluated_rows(table, None)
    router, tiers = build(spec, table)
    targets, columns = targets_of(router, tiers, table, costs, (s, c))
    column = dict(zip(targets, columns, strict=True))
    choice = np.array([column[t] for t in decisions(router, table, rows, targets)], np.intp)
    label, value = point_label(router)
    routed = Routed(
        [(label, value, choice)],
        preference(router, table, rows, choice, (s, c)),
        np.zeros(len(rows), dtype=np.intp),
    )
    split = {
        "kind": "saved_router",
        "path": spec,
        "in_sample": _trained_hash(spec) == table.content_hash,
    }
    return result_of(table, spec, split, (s, c), (costs, unit), rows, routed, router_tax)


def _trained_hash(spec: str) -> str | None:
    if Path(spec).suffix.lower() != ".npz":
        return None
    from tierwise.learning.store import load_router

    return load_router(spec).data_hash


def evaluate_any(
    table: OutcomeTable,
    router_spec: str,
    *,
    train_table: OutcomeTable | None = None,
    holdout_by: str | None = None,
    **options: Any,
) -> EvalResult:
    """A saved router file (`is_saved`) evaluated as it is, on every prompt; any other
    spec through `runner.evaluate` with its folds, training table or held-out groups."""
    if not is_saved(router_spec):
        return evaluate(
            table, router_spec, train_table=train_table, holdout_by=holdout_by, **options
        )
    if train_table is not None or holdout_by is not None:
        raise ValueError(
            "a saved router is evaluated as it is, on every prompt: --train, "
            "--holdout-by and --folds apply to a router spec"
        )
    return evaluate_saved(
        table,
        router_spec,
        options.get("strong"),
        options.get("cheap"),
        options.get("router_tax", 0.0),
    )
