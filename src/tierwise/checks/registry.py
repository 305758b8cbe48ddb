"""Build checks and confidence signals from config; plugins register more kinds."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from tierwise.checks.base import Check, ConfidenceSignal
from tierwise.checks.builtin import EmptyCheck, JsonCheck, MinLengthCheck, PuntCheck, RefusalCheck
from tierwise.checks.confidence import (
    FirstConfidence,
    LogprobConfidence,
    SelfReportedConfidence,
)
from tierwise.config import CheckConfig, ConfidenceConfig
from tierwise.errors import ConfigError
from tierwise.routing.context import BuildContext
from tierwise.routing.options import reject_unknown

CheckFactory = Callable[..., Check]

_CHECKS: dict[str, CheckFactory] = {
    "empty": EmptyCheck,
    "min_length": MinLengthCheck,
    "punt": PuntCheck,
    "refusal": RefusalCheck,
    "json": JsonCheck,
}


def register_check(kind: str, factory: CheckFactory) -> None:
    """Make `kind` usable in a route's `checks:` list."""
    _CHECKS[kind] = factory


def _agreement(context: BuildContext, **options: Any) -> Check:
    from tierwise.checks.agreement import AgreementCheck

    return AgreementCheck.from_options(context, **options)


_CHECKS["agreement"] = _agreement


def _vote(context: BuildContext, **options: Any) -> Check:
    from tierwise.checks.vote import VoteCheck

    return VoteCheck.from_options(context, **options)


_CHECKS["vote"] = _vote


def build_check(config: CheckConfig, context: BuildContext | None = None) -> Check:
    """A check of `config.kind`; factories with a `context` parameter get the
    gateway's deployments (agreement)."""
    factory = _CHECKS.get(config.kind)
    if factory is None:
        raise ConfigError(f"unknown check {config.kind!r}; known: {sorted(_CHECKS)}", key="checks")
    options: dict[str, Any] = dict(config.options)
    reject_unknown(factory, options, f"check {config.kind!r}", "checks")
    if "context" in inspect.signature(factory).parameters:
        options["context"] = context or BuildContext()
    if "phrases" in options:
        options["phrases"] = tuple(str(p).lower() for p in options["phrases"])
    try:
        return factory(**options)
    except TypeError as exc:
        raise ConfigError(f"check {config.kind!r}: {exc}", key="checks") from None


def build_confidence(config: ConfidenceConfig) -> ConfidenceSignal:
    if config.kind == "logprob":
        return LogprobConfidence()
    if config.kind == "self_reported":
        return SelfReportedConfidence(field=config.field)
    return FirstConfidence((LogprobConfidence(), SelfReportedConfidence(field=config.field)))
