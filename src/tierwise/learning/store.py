"""Save and load trained routers, and build embedders by name.

File format: one NumPy `.npz` archive (no pickled objects) holding
`metadata` (UTF-8 JSON as uint8), `mean_scores`, `mean_costs` and the predictor's
arrays as `predictor__<name>`. The metadata records `format` and `format_version`,
`method`, `hyperparameters`, `models`, `embedder` {name, dimension}, `training`
{data_hash, n_prompts}, `created`, `cost_weight`, `cost_unit` and `extra`.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from tierwise.embeddings.base import Embedder
from tierwise.embeddings.hashing import HashingEmbedder
from tierwise.errors import ConfigError
from tierwise.learning.models import TrainedRouter, restore_predictor

FORMAT = "tierwise-learned-router"
FORMAT_VERSION = 1
PREFIX = "predictor__"
COST_UNIT = "usd_per_request_relative_to_priciest_model"
HASHING_NAME = re.compile(r"^hashing(?:-(\d+))?(?:-c(\d+))?$")
MINILM_TOKENS = re.compile(r"-t(\d+)$")
STATIC_NAME = re.compile(r"^static(?:-[0-9a-f]{12}-t\d+)?$")


def make_embedder(spec: str) -> Embedder:
    """ "hashing" (or a hashing name such as "hashing-512-c3"), "static" (or a static
    name such as "static-0123456789ab-t256"), or "minilm" (any name containing it),
    imported only when asked for."""
    if spec.strip().lower() in ("structure", "structure-v1"):
        from tierwise.embeddings.structure import StructureEmbedder

        return StructureEmbedder()
    match = HASHING_NAME.match(spec.strip().lower())
    if match:
        dimension, ngrams = match.groups()
        return HashingEmbedder(int(dimension or 512), int(ngrams or 3))
    if STATIC_NAME.match(spec.strip().lower()):
        from tierwise.embeddings.static import StaticEmbedder

        tokens = MINILM_TOKENS.search(spec)
        return StaticEmbedder(int(tokens.group(1))) if tokens else StaticEmbedder()
    if "minilm" in spec.lower():
        try:
            module = importlib.import_module("tierwise.embeddings.minilm")
        except ImportError as exc:
            raise ConfigError(
                f"embedder {spec!r} is not available: {exc}", key="embedder"
            ) from None
        tokens = MINILM_TOKENS.search(spec)
        options = {"max_tokens": int(tokens.group(1))} if tokens else {}
        embedder: Embedder = module.MiniLMEmbedder(**options)
        return embedder
    raise ConfigError(
        f"unknown embedder {spec!r}; known: hashing, static, minilm, structure", key="embedder"
    )


def metadata(router: TrainedRouter) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "method": router.method,
        "hyperparameters": router.predictor.hyperparameters(),
        "models": list(router.models),
        "embedder": {"name": router.embedder_name, "dimension": router.embedder_dimension},
        "training": {"data_hash": router.data_hash, "n_prompts": router.n_prompts},
        "created": router.created,
        "cost_weight": router.cost_weight,
        "threshold": router.threshold,
        "cost_unit": COST_UNIT,
        "extra": router.extra,
    }


def save_router(router: TrainedRouter, path: str | Path) -> None:
    """Write `router` to `path` atomically (a temporary file, then rename)."""
    target = Path(path)
    meta = json.dumps(metadata(router), sort_keys=True, allow_nan=False).encode()
    arrays: dict[str, Any] = {
        "metadata": np.frombuffer(meta, dtype=np.uint8),
        "mean_scores": router.mean_scores,
        "mean_costs": router.mean_costs,
    }
    arrays.update({PREFIX + k: v for k, v in router.predictor.arrays().items()})
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as out:
            np.savez_compressed(out, **arrays)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def load_router(path: str | Path, *, embedder_name: str | None = None) -> TrainedRouter:
    """Read a router saved by `save_router`; with `embedder_name`, require that the
    router was trained on that embedder."""
    name = str(path)
    try:
        data = Path(path).read_bytes()
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"cannot read learned router: {exc}", file=name) from None
    meta = _metadata(arrays, name)
    stored = str(meta["embedder"]["name"])
    if embedder_name is not None and embedder_name != stored:
        raise ConfigError(
            f"router was trained with embedder {stored!r}, not {embedder_name!r}", file=name
        )
    predictor_arrays = {k[len(PREFIX) :]: v for k, v in arrays.items() if k.startswith(PREFIX)}
    try:
        predictor = restore_predictor(meta["method"], meta["hyperparameters"], predictor_arrays)
    except (KeyError, ValueError) as exc:
        raise ConfigError(f"learned router is incomplete: {exc}", file=name) from None
    return TrainedRouter(
        predictor,
        [str(m) for m in meta["models"]],
        arrays["mean_scores"].astype(np.float64),
        arrays["mean_costs"].astype(np.float64),
        stored,
        int(meta["embedder"]["dimension"]),
        str(meta["training"]["data_hash"]),
        int(meta["training"]["n_prompts"]),
        str(meta["created"]),
        float(meta["cost_weight"]),
        dict(meta.get("extra") or {}),
        None if meta.get("threshold") is None else float(meta["threshold"]),
    )


def _metadata(arrays: dict[str, Any], name: str) -> dict[str, Any]:
    if "metadata" not in arrays:
        raise ConfigError("not a tierwise learned router (no metadata)", file=name)
    try:
        meta: dict[str, Any] = json.loads(arrays["metadata"].tobytes().decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"unreadable router metadata: {exc}", file=name) from None
    if meta.get("format") != FORMAT:
        raise ConfigError("not a tierwise learned router", file=name)
    if meta.get("format_version") != FORMAT_VERSION:
        raise ConfigError(
            f"router format version {meta.get('format_version')!r} is not supported "
            f"(expected {FORMAT_VERSION}); retrain it",
            file=name,
        )
    for key in ("mean_scores", "mean_costs"):
        if key not in arrays:
            raise ConfigError(f"learned router has no {key!r}", file=name)
    return meta
