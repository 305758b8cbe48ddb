"""Build routers from config; plugins register more kinds.

A factory is called with the router's options as keywords and the gateway's
`BuildContext` as the keyword `context` (deployments, and `sub_router` for routers
configured inside another's options); it raises a ConfigError for an option it does not
take (see `routing.options`). Built-in kinds that need heavy dependencies are imported
only when used; their `from_options` follow the same convention.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import ValidationError

from tierwise.config import RouterConfig
from tierwise.errors import ConfigError, MissingExtraError
from tierwise.extras import extra_of
from tierwise.routing.base import FixedRouter, Router
from tierwise.routing.compose import CascadeRouter, ChainRouter
from tierwise.routing.context import BuildContext
from tierwise.routing.heuristic import HeuristicRouter
from tierwise.routing.options import keyed, keywords

RouterFactory = Callable[..., Router]
KEY = "router"
_HEURISTIC = ("short_chars", "keywords", "rules", "default", "abstain", "name")

_ROUTERS: dict[str, RouterFactory] = {
    "heuristic": keywords(HeuristicRouter.from_options, _HEURISTIC, "router 'heuristic'", KEY),
    "fixed": keywords(FixedRouter, ("target", "name"), "router 'fixed'", KEY),
    "cascade": keywords(CascadeRouter, ("name",), "router 'cascade'", KEY),
    "chain": keywords(
        ChainRouter.from_options, ("routers", "name"), "router 'chain'", KEY, pass_context=True
    ),
}
_LAZY: dict[str, str] = {
    "answer_cascade": "tierwise.routing.answer_cascade:AnswerCascadeRouter.from_options",
    "classifier": "tierwise.routing.classifier:ClassifierRouter.from_options",
    "embedding": "tierwise.routing.embedding:EmbeddingRouter.from_options",
    "learned": "tierwise.routing.learned:LearnedRouter.from_options",
    "pretrained": "tierwise.routing.pretrained:PretrainedRouter.from_options",
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
    try:
        target: Any = importlib.import_module(module)
    except ImportError as exc:
        if (extra := extra_of(exc)) is None:
            raise
        raise ConfigError(
            str(MissingExtraError(f"router {kind!r}", extra, [str(exc.name)])), key="router"
        ) from None
    for part in attribute.split("."):
        target = getattr(target, part)
    factory: RouterFactory = target
    return factory


def build_router(config: RouterConfig, context: BuildContext | None = None) -> Router:
    """A router of `config.kind`, built with the gateway's deployments in `context`."""
    factory = _factory(config.kind)
    if factory is None:
        raise ConfigError(f"unknown router {config.kind!r}; known: {known_routers()}", key="router")
    given = replace(context or BuildContext(), sub_router=build_sub_router)
    try:
        return factory(context=given, **config.options)
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
