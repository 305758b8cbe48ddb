"""Routers decide which tier or model starts a request."""

from tierwise.routing.base import FixedRouter, Router
from tierwise.routing.compose import CascadeRouter, ChainRouter
from tierwise.routing.context import BuildContext
from tierwise.routing.heuristic import HeuristicRouter, Rule
from tierwise.routing.registry import build_router, known_routers, register_router

__all__ = [
    "BuildContext",
    "CascadeRouter",
    "ChainRouter",
    "FixedRouter",
    "HeuristicRouter",
    "Router",
    "Rule",
    "build_router",
    "known_routers",
    "register_router",
]
