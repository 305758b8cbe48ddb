"""Build routers from config; plugins register more kinds.

Built-in kinds that need heavy dependencies are imported only when used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from tierwise.config import RouterConfig
from tierwise.errors import ConfigError
from tierwise.routing.base import FixedRouter, Router
from tierwise.routing.heuristic import HeuristicRouter

RouterFactory = Callable[..., Router]

_ROUTERS: dict[str, RouterFactory] = {"heuristic": HeuristicRouter, "fixed": FixedRouter}
_LAZY: dict[str, str] = {
    "embedding": "tierwise.routing.embedding:EmbeddingRouter.from_options",
    "learned": "tierwise.routing.learned:LearnedRouter.from_options",
}


def register_router(kind: str, factory: RouterFactory) -> None:
    _ROUTERS[kind] = factory


def known_routers() -> list[str]:
    return sorted({*_ROUTERS, *_LAZY})


def _factory(kind: str) -> RouterFactory | None:
    if kind in _ROUTERS:
        return _ROUTERS[kind]
    if kind not in _LAZY:
        return None
    module, _, attribute = _LAZY[kind].partition(":")
    target: Any = importlib.import_module(module)
    for part in attribute.split("."):
        target = getattr(target, part)
    factory: RouterFactory = target
    return factory


def build_router(config: RouterConfig) -> Router:
    factory = _factory(config.kind)
    if factory is None:
        raise ConfigError(f"unknown router {config.kind!r}; known: {known_routers()}", key="router")
    options: dict[str, Any] = dict(config.options)
    if "keywords" in options:
        options["keywords"] = tuple(str(k).lower() for k in options["keywords"])
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"router {config.kind!r}: {exc}", key="router") from None
