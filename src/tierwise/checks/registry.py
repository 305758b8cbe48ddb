"""Build checks and confidence signals from config; plugins register more kinds.

A check factory is called with the check's options as keywords and the gateway's
`BuildContext` as the keyword `context` (as router factories are, see
`routing.options`); it raises a ConfigError for an option it does not take.
"""

from __future__ import annotations

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
from tierwise.routing.options import keywords

CheckFactory = Callable[..., Check]
KEY = "checks"

_CHECKS: dict[str, CheckFactory] = {
    "empty": keywords(EmptyCheck, ("name",), "check 'empty'", KEY),
    "min_length": keywords(MinLengthCheck, ("min_chars", "name"), "check 'min_length'", KEY),
    "punt": keywords(PuntCheck, ("phrases", "name"), "check 'punt'", KEY),
    "refusal": keywords(RefusalCheck, ("phrases", "name"), "check 'refusal'", KEY),
    "json": keywords(JsonCheck, ("name",), "check 'json'", KEY),
}


def register_check(kind: str, factory: CheckFactory) -> None:
    """Make `kind` usable in a route's `checks:` list. `factory(context=..., **options)`
    gets the check's options and the gateway's `BuildContext`."""
    _CHECKS[kind] = factory


def _agreement(context: BuildContext, **options: Any) -> Check:
    from tierwise.checks.agreement import AgreementCheck

    return AgreementCheck.from_options(context, **options)


_CHECKS["agreement"] = _agreement


def _vote(context: BuildContext, **options: Any) -> Check:
    from tierwise.checks.vote import VoteCheck

    return VoteCheck.from_options(context, **options)


_CHECKS["vote"] = _vote


def _judge(context: BuildContext, **options: Any) -> Check:
    from tierwise.checks.judge import JudgeCheck

    return JudgeCheck.from_options(context, **options)


_CHECKS["judge"] = _judge


def build_check(config: CheckConfig, context: BuildContext | None = None) -> Check:
    """A check of `config.kind`, built with the gateway's deployments in `context`."""
    factory = _CHECKS.get(config.kind)
    if factory is None:
        raise ConfigError(f"unknown check {config.kind!r}; known: {sorted(_CHECKS)}", key="checks")
    options: dict[str, Any] = dict(config.options)
    if "phrases" in options:
        options["phrases"] = tuple(str(p).lower() for p in options["phrases"])
    try:
        return factory(context=context or BuildContext(), **options)
    except TypeError as exc:
        raise ConfigError(f"check {config.kind!r}: {exc}", key="checks") from None


def build_confidence(config: ConfidenceConfig) -> ConfidenceSignal:
    if config.kind == "logprob":
        return LogprobConfidence()
    if config.kind == "self_reported":
        return SelfReportedConfidence(field=config.field)
    return FirstConfidence((LogprobConfidence(), SelfReportedConfidence(field=config.field)))
