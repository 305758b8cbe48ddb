"""Build routers from config; plugins register more kinds.

Built-in kinds that need heavy dependencies are imported only when used.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from tierwise.config import RouterConfig
from tierwise.errors import ConfigError
from tierwise.routing.base import FixedRouter, Router
from tierwise.routing.compose import CascadeRouter, ChainRouter
from tierwise.routing.context import BuildContext
from tierwise.routing.heuristic import HeuristicRouter
from tierwise.routing.options import keyed, reject_unknown

RouterFactory = Callable[..., Router]

_ROUTERS: dict[str, RouterFactory] = {
    "heuristic": HeuristicRouter.from_options,
    "fixed": FixedRouter,
    "cascade": CascadeRouter,
    "chain": ChainRouter.from_options,
}
_LAZY: dict[str, str] = {
    "answer_cascade": "tierwise.routing.answer_cascade:AnswerCascadeRouter.from_options",
    "classifier": "tierwise.routing.classifier:ClassifierRouter.from_options",
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


def build_router(config: RouterConfig, context: BuildContext | None = None) -> Router:
    """A router of `config.kind`; factories with a `context` parameter get the
    gateway's deployments (classifier, chain)."""
    factory = _factory(config.kind)
    if factory is None:
        raise ConfigError(f"unknown router {config.kind!r}; known: {known_routers()}", key="router")
    options: dict[str, Any] = dict(config.options)
    reject_unknown(factory, options, f"router {config.kind!r}", "router")
    if "context" in inspect.signature(factory).parameters:
        options["context"] = context or BuildContext()
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"router {config.kind!r}: {exc}", key="router") from None


def build_sub_router(raw: object, context: BuildContext, key: str) -> Router:
    """A router configured inside another router's options at `key` (relative to the
    outer router, e.g. `router.fallback`); its errors name that key."""
    try:
        config = RouterConfig.model_validate(raw)
    except ValidationError as exc:
        problem = str(exc.errors()[0]["msg"]).removeprefix("Value error, ")
        raise ConfigError(problem, key=key) from None
    with keyed("router", key):
        return build_router(config, context)
