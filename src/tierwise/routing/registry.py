"""Build routers from config; plugins register more kinds."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tierwise.config import RouterConfig
from tierwise.errors import ConfigError
from tierwise.routing.base import FixedRouter, Router
from tierwise.routing.heuristic import HeuristicRouter

RouterFactory = Callable[..., Router]

_ROUTERS: dict[str, RouterFactory] = {"heuristic": HeuristicRouter, "fixed": FixedRouter}


def register_router(kind: str, factory: RouterFactory) -> None:
    _ROUTERS[kind] = factory


def build_router(config: RouterConfig) -> Router:
    factory = _ROUTERS.get(config.kind)
    if factory is None:
        raise ConfigError(
            f"unknown router {config.kind!r}; known: {sorted(_ROUTERS)}", key="router"
        )
    options: dict[str, Any] = dict(config.options)
    if "keywords" in options:
        options["keywords"] = tuple(str(k).lower() for k in options["keywords"])
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"router {config.kind!r}: {exc}", key="router") from None
