"""Reading a config: YAML file, then `TIERWISE__SECTION__KEY=value` environment overrides
(read by pydantic-settings), then validation. Errors name the file, the key and the
problem."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError
from pydantic_settings.sources.utils import parse_env_vars

from tierwise.config.schema import GatewayConfig
from tierwise.errors import ConfigError

ENV_PREFIX = "TIERWISE__"


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> GatewayConfig:
    """Read, override from the environment, and validate a YAML config file."""
    file = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError:
        raise ConfigError("file not found", file=file) from None
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror}", file=file) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"invalid YAML: {exc}", file=file) from None
    if not isinstance(data, dict):
        raise ConfigError("top level must be a mapping", file=file)
    try:
        data = apply_env_overrides(data, environ)
    except ConfigError as exc:
        raise ConfigError(exc.problem, file=file, key=exc.key) from None
    return parse_config(data, file=file)


def parse_config(data: Mapping[str, Any], *, file: str = "<config>") -> GatewayConfig:
    try:
        return GatewayConfig.model_validate(data)
    except ValidationError as exc:
        errors = sorted(exc.errors(), key=lambda e: e["type"] != "extra_forbidden")
        first = errors[0]
        key = ".".join(str(part) for part in first["loc"]) or None
        problem = str(first["msg"]).removeprefix("Value error, ")
        count = exc.error_count()
        suffix = f" (and {count - 1} more problem(s))" if count > 1 else ""
        raise ConfigError(problem + suffix, file=file, key=key) from None


class _Environment(BaseSettings, GatewayConfig):
    """GatewayConfig's layout as pydantic-settings reads it from `TIERWISE__A__B`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        case_sensitive=False,
        env_parse_none_str="null",
    )


class _EnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of os.environ."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(_Environment)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The `TIERWISE__A__B=value` variables as nested data: scalars as strings (validation
    converts them), lists and mappings as JSON, `null` as None."""
    env = os.environ if environ is None else environ
    for name in env:
        if name.upper().startswith(ENV_PREFIX):
            section = name[len(ENV_PREFIX) :].split("__")[0].lower()
            if section not in GatewayConfig.model_fields:
                raise ConfigError(
                    f"{name}: unknown section (extra inputs are not permitted)", key=section
                )
    try:
        return dict(_EnvSource(env)())
    except SettingsError as exc:
        raise ConfigError(f"{exc} (lists and mappings are given as JSON)") from None


def apply_env_overrides(
    data: Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """`data` with the environment's overrides merged in, key by key."""
    return _merge(data, env_overrides(environ))


def _merge(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in overrides.items():
        below = result.get(key)
        if isinstance(value, Mapping) and isinstance(below, Mapping):
            result[key] = _merge(below, value)
        else:
            result[key] = value
    return result
