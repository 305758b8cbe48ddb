"""The optional dependency groups (`pip install 'tierwise[NAME]'`) and the check that
names the missing one. A gateway-only install (no extra) routes with the heuristic,
fixed, chain, cascade and classifier routers and never imports numpy."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

from tierwise.errors import MissingExtraError

EXTRAS: dict[str, tuple[str, ...]] = {
    "routing": ("numpy", "onnxruntime", "tokenizers"),
    "eval": ("numpy", "sklearn", "scipy", "matplotlib"),
    "local": ("xllamacpp",),
    "postgres": ("asyncpg",),
    "otel": ("opentelemetry",),
}
OFFLINE = ("numpy", "sklearn")


def missing(modules: Sequence[str]) -> list[str]:
    """The top-level modules of `modules` that cannot be imported."""
    return [name for name in modules if importlib.util.find_spec(name) is None]


def require(what: str, extra: str, modules: Sequence[str] | None = None) -> None:
    """Raise MissingExtraError naming `extra` when any of `modules` (default: every
    module of the extra) is not installed."""
    absent = missing(EXTRAS[extra] if modules is None else modules)
    if absent:
        raise MissingExtraError(what, extra, absent)


def extra_of(error: ImportError) -> str | None:
    """The extra that installs the module an ImportError names, if any."""
    root = (error.name or "").partition(".")[0]
    return next((extra for extra, names in EXTRAS.items() if root in names), None)
