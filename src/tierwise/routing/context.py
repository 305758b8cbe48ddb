"""What a router or check may need from the gateway when it is built."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.deployments import Deployment
    from tierwise.routing.base import Router


@dataclass(frozen=True, slots=True)
class BuildContext:
    deployments: Mapping[str, Deployment] = field(default_factory=dict)
    sub_router: Callable[[object, BuildContext, str], Router] | None = None

    def deployment(self, name: object, key: str) -> Deployment:
        """The deployment called `name`; a ConfigError naming `key` otherwise."""
        found = self.deployments.get(str(name))
        if found is None:
            known = ", ".join(sorted(self.deployments))
            raise ConfigError(f"unknown deployment {name!r}; known: {known}", key=key)
        return found

    def router(self, raw: object, key: str) -> Router:
        """A router configured inside another router's options at `key` (e.g.
        `router.fallback`), built by the registry that built the outer one."""
        if self.sub_router is None:
            raise ConfigError("nested routers are built through the router registry", key=key)
        return self.sub_router(raw, self, key)
