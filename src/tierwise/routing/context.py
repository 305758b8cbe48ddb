"""What a router or check may need from the gateway when it is built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.plan import Deployment


@dataclass(frozen=True, slots=True)
class BuildContext:
    deployments: Mapping[str, Deployment] = field(default_factory=dict)

    def deployment(self, name: object, key: str) -> Deployment:
        """The deployment called `name`; a ConfigError naming `key` otherwise."""
        found = self.deployments.get(str(name))
        if found is None:
            known = ", ".join(sorted(self.deployments))
            raise ConfigError(f"unknown deployment {name!r}; known: {known}", key=key)
        return found
