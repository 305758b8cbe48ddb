"""Routers decide which tier or model starts a request."""

from tierwise.routing.base import FixedRouter, Router
from tierwise.routing.heuristic import HeuristicRouter
from tierwise.routing.registry import build_router, register_router

__all__ = ["FixedRouter", "HeuristicRouter", "Router", "build_router", "register_router"]
