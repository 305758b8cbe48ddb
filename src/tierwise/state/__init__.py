"""Shared deployment health: breakers, latency and load, behind one interface."""

from tierwise.state.base import DeploymentHealth, HealthState
from tierwise.state.memory import MemoryHealthState

__all__ = ["DeploymentHealth", "HealthState", "MemoryHealthState"]
