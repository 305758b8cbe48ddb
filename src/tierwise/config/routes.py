"""The config of a route: its router, checks, confidence, cache and exploration."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from tierwise.config.base import FrozenModel


def inline_options(value: object, default_kind: str | None = None) -> object:
    """`name`, or `{kind: name, option: value, ...}` with the options inline, as
    `{kind, options}`; a mapping that already has `options` stays as it is."""
    if isinstance(value, str):
        return {"kind": value}
    if isinstance(value, dict) and "options" not in value:
        return {
            "kind": value.get("kind", default_kind),
            "options": {k: v for k, v in value.items() if k != "kind"},
        }
    return value


class CheckConfig(FrozenModel):
    kind: str
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        return inline_options(value)


class ConfidenceConfig(FrozenModel):
    kind: Literal["logprob", "self_reported", "auto"]
    threshold: float
    field: str = "confidence"


class RouterConfig(FrozenModel):
    kind: str = "heuristic"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat(cls, value: Any) -> Any:
        return inline_options(value, "heuristic")


class ExploreConfig(FrozenModel):
    """Exploration on a route: a share of requests starts at a tier drawn at random
    (`random`), or gets a judged shadow call to another tier (`shadow`).

    `judge` names the deployment or tier that judges: in `shadow` mode (where it is
    required) it compares each shadow answer with the served one; in `random` mode
    (optional) it grades served answers, so the route's log carries labels to learn
    from: every explored request and `judge_share` of the other answered requests
    (outside experiments) get a verdict, P("Yes") to "is that answer correct?",
    kept as the request's judgment. Judge calls are billed on the `exploration`
    line and count toward its caps."""

    share: float = Field(default=0.0, ge=0, le=1)
    mode: Literal["random", "shadow"] = "random"
    budget_usd_per_day: Decimal | None = Field(default=None, gt=0)
    max_spend_share: float = Field(
        default=0.05,
        gt=0,
        le=1,
        description="exploration stops for the day once its spend reaches this share "
        "of the route's spend that day",
    )
    judge: str | None = Field(
        default=None,
        description="the deployment or tier that judges: shadow answers against the "
        "served ones (`shadow`, required), or served answers on their own so learning "
        "has labels (`random`, optional)",
    )
    judge_share: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="in `random` mode with a judge: the share of the route's answered "
        "requests that were not explored whose answer the judge grades (explored ones "
        "are always graded)",
    )

    @model_validator(mode="after")
    def _judge_for_shadow(self) -> ExploreConfig:
        if self.mode == "shadow" and self.share > 0 and not self.judge:
            raise ValueError("shadow exploration needs a judge (a deployment or tier)")
        return self


class SemanticCacheConfig(FrozenModel):
    threshold: float = Field(
        default=0.955,
        gt=0,
        le=1,
        description="cosine similarity of the last user message at or above which a cached "
        "answer to a different wording is served (calibrated: see BENCHMARKS.md)",
    )
    embedder: str = "static"


class RouteCacheConfig(FrozenModel):
    ttl_s: float = Field(default=300.0, gt=0)
    cache_nonzero_temperature: bool = Field(
        default=False,
        description="also cache requests whose temperature is above 0 or absent (the "
        "provider's default)",
    )
    semantic: SemanticCacheConfig | None = None


class RouteConfig(FrozenModel):
    router: Annotated[RouterConfig, Field(default_factory=RouterConfig)]
    tiers: list[str] = Field(default_factory=list)
    baseline: str | None = None
    checks: list[CheckConfig] = Field(default_factory=list)
    confidence: ConfidenceConfig | None = None
    on_checks_exhausted: Literal["return_last", "error"] = "return_last"
    stream_hold_back: int | None = Field(
        default=None,
        ge=0,
        description="content deltas a stream reads before it commits, so checks judge them; "
        "default: 256 on a route with checks or confidence (answers up to that length are "
        "judged whole), 0 otherwise",
    )
    cache: RouteCacheConfig | None = Field(
        default=None, description="answer repeated requests from the response cache"
    )
    explore: ExploreConfig | None = None
