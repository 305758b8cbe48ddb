"""Experiment settings: what is compared, how traffic splits, what stops it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Unit = Literal["user", "session", "api_key", "request"]
Metric = Literal["satisfaction", "judge", "error_rate", "cost", "latency"]
HIGHER_IS_BETTER: dict[str, bool] = {
    "satisfaction": True,
    "judge": True,
    "error_rate": False,
    "cost": False,
    "latency": False,
}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VariantConfig(_Spec):
    """`target`: a route, tier or deployment name that serves this variant; none
    means the experiment's route as configured."""

    target: str | None = None
    weight: float = Field(default=1.0, gt=0)


class GuardrailConfig(_Spec):
    """Stop and roll back when a variant is worse than the control on `metric` by
    more than `max_drop` (absolute: 0.02 is 2 points of satisfaction), with confidence."""

    metric: Metric = "satisfaction"
    max_drop: float = Field(default=0.0, ge=0)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_samples: int = Field(default=100, ge=2)


class JudgeConfig(_Spec):
    """For a `sample` share of a variant's requests, also ask `reference` (the strong
    target) and let `judge` (a target name) score the variant's answer against it."""

    judge: str
    reference: str
    sample: float = Field(default=0.02, gt=0, le=1)


class ExperimentConfig(_Spec):
    route: str
    variants: dict[str, VariantConfig]
    control: str
    unit: Unit = "user"
    guardrails: list[GuardrailConfig] = Field(default_factory=list)
    alpha: float = Field(default=0.05, gt=0, lt=1)
    min_effect: float = Field(default=0.02, gt=0)
    judge: JudgeConfig | None = None
    enabled: bool = True

    @model_validator(mode="after")
    def _check(self) -> ExperimentConfig:
        if len(self.variants) < 2:
            raise ValueError("an experiment needs at least two variants")
        if self.control not in self.variants:
            raise ValueError(f"control {self.control!r} is not one of {sorted(self.variants)}")
        return self

    def targets(self) -> list[str]:
        named = [v.target for v in self.variants.values() if v.target]
        if self.judge is not None:
            named += [self.judge.judge, self.judge.reference]
        return [self.route, *named]
