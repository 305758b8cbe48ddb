"""API keys as pydantic `SecretStr`: `env:VAR` (a reference, resolved when the gateway
starts) or a literal. `SecretStr` keeps both out of reprs, logs and JSON dumps."""

from __future__ import annotations

import os
from collections.abc import Mapping

from pydantic import SecretStr

from tierwise.errors import ConfigError

ENV_REF = "env:"


def reveal(secret: SecretStr, environ: Mapping[str, str] | None = None) -> str:
    """The key's value: the variable's for `env:VAR`, else the literal; raises
    ConfigError when the variable is unset or empty."""
    name = env_variable(secret)
    if name is None:
        return secret.get_secret_value()
    value = (os.environ if environ is None else environ).get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set", key="api_key")
    return value


def env_variable(secret: SecretStr) -> str | None:
    """The environment variable of an `env:VAR` reference; None for a literal."""
    ref = secret.get_secret_value()
    return ref.removeprefix(ENV_REF) if ref.startswith(ENV_REF) else None
