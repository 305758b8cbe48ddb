"""Drift settings: how often and over which window routes are checked, the bounds beyond
which a change counts, and the share of calls to the strongest tier each route keeps."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DriftRouteConfig(_Spec):
    """Keep `route`'s share of calls to its strongest tier near `strong_share`."""

    strong_share: float = Field(gt=0, lt=1)
    apply: bool = False
    bounds: tuple[float, float] | None = None


class DriftConfig(_Spec):
    enabled: bool = False
    interval_s: float = Field(default=300.0, gt=0)
    window_s: float = Field(default=86_400.0, gt=0)
    min_requests: int = Field(default=200, ge=10)
    alpha: float = Field(default=0.01, gt=0, lt=1)
    share_bound: float = Field(default=0.10, gt=0, lt=1)
    embedding_bound: float = Field(default=0.05, gt=0)
    embedding_sample: float = Field(default=0.05, ge=0, le=1)
    quality_bound: float = Field(default=0.05, gt=0, lt=1)
    routes: dict[str, DriftRouteConfig] = Field(default_factory=dict)
