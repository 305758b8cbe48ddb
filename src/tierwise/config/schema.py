"""The config's schema: frozen pydantic models, validated once (see `docs/configuration.md`).
API keys are pydantic `SecretStr`s (see `tierwise.config.secrets`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from tierwise.capabilities import default_capabilities
from tierwise.config.base import FrozenModel
from tierwise.config.routes import RouteConfig
from tierwise.drift.config import DriftConfig
from tierwise.errors import ErrorKind
from tierwise.experiments.spec import ExperimentConfig
from tierwise.pricing import Price, lookup_model


class ProviderKind(StrEnum):
    OPENAI = "openai"
    ANTHROPIC = "anthropic"
    LLAMACPP = "llamacpp"
    AZURE = "azure"
    GEMINI = "gemini"
    BEDROCK = "bedrock"


class PriceConfig(FrozenModel):
    input: Decimal = Field(ge=0, description="USD per million input tokens")
    output: Decimal = Field(ge=0, description="USD per million output tokens")
    cached_input: Decimal | None = Field(
        default=None, ge=0, description="USD per million input tokens read from the prompt cache"
    )
    cache_write: Decimal | None = Field(
        default=None, ge=0, description="USD per million input tokens written to the prompt cache"
    )

    def to_price(self) -> Price:
        return Price(self.input, self.output, self.cached_input, self.cache_write)


class TimeoutConfig(FrozenModel):
    connect_s: float = Field(default=5.0, gt=0)
    total_s: float = Field(default=120.0, gt=0)
    first_token_s: float | None = Field(default=None, gt=0)


class DeploymentConfig(FrozenModel):
    name: str = ""
    provider: str = ProviderKind.OPENAI.value
    model: str
    api_base: str | None = None
    api_key: SecretStr | None = None
    price: PriceConfig | None = None
    context_window: int | None = Field(default=None, gt=0)
    max_output_tokens: int | None = Field(default=None, gt=0)
    timeout: TimeoutConfig = TimeoutConfig()
    weight: float = Field(default=1.0, gt=0)
    headers: dict[str, str] = Field(default_factory=dict)
    model_path: str | None = None
    fallbacks: list[str] = Field(default_factory=list)
    capabilities: list[Literal["vision", "audio", "tools", "json_schema"]] | None = Field(
        default=None,
        description="what the deployment accepts beyond text; default: the price table's "
        "entry for the model, else the provider's conservative default",
    )
    kind: Literal["chat", "embedding"] = Field(
        default="chat", description="What the deployment serves: chat, or /v1/embeddings."
    )
    azure_deployment: str | None = None
    api_version: str | None = None
    aws_region: str | None = None
    aws_access_key_id: SecretStr | None = None
    aws_secret_access_key: SecretStr | None = None
    aws_session_token: SecretStr | None = None

    @model_validator(mode="after")
    def _check_base(self) -> DeploymentConfig:
        needs_base = self.provider == ProviderKind.OPENAI and self.api_key is None
        if needs_base and not self.api_base:
            raise ValueError("an openai deployment needs api_base or api_key")
        if self.provider == ProviderKind.LLAMACPP and not (self.model_path or self.api_base):
            raise ValueError("a llamacpp deployment needs model_path or api_base")
        if self.provider == ProviderKind.AZURE and not self.api_base:
            raise ValueError("an azure deployment needs api_base (https://NAME.openai.azure.com)")
        if self.provider == ProviderKind.BEDROCK and not (
            self.aws_region and self.aws_access_key_id and self.aws_secret_access_key
        ):
            raise ValueError(
                "a bedrock deployment needs aws_region, aws_access_key_id and aws_secret_access_key"
            )
        return self

    def resolved_price(self) -> Price:
        if self.price is not None:
            return self.price.to_price()
        info = lookup_model(self.model)
        return info.price if info else Price()

    def resolved_capabilities(self) -> frozenset[str]:
        if self.capabilities is not None:
            return frozenset(self.capabilities)
        return default_capabilities(self.provider, self.model)

    def resolved_context_window(self) -> int | None:
        info = lookup_model(self.model)
        return self.context_window or (info.context_window if info else None)

    def resolved_max_output(self) -> int | None:
        info = lookup_model(self.model)
        return self.max_output_tokens or (info.max_output_tokens if info else None)


class Action(StrEnum):
    RETRY = "retry"
    NEXT = "next"
    ESCALATE = "escalate"
    FAIL = "fail"


class Cooldown(StrEnum):
    NONE = "none"
    COUNT = "count"
    IMMEDIATE = "immediate"


class TriggerPolicy(FrozenModel):
    action: Action
    cooldown: Cooldown = Cooldown.NONE
    cooldown_s: float | None = Field(default=None, ge=0)


QUALITY_CHECK = "quality_check"
LOW_CONFIDENCE = "low_confidence"
TRIGGERS = [kind.value for kind in ErrorKind] + [QUALITY_CHECK, LOW_CONFIDENCE]

_P = TriggerPolicy
DEFAULT_TRIGGERS: dict[str, TriggerPolicy] = {
    ErrorKind.RATE_LIMITED: _P(action=Action.NEXT, cooldown=Cooldown.IMMEDIATE),
    ErrorKind.TIMEOUT: _P(action=Action.NEXT, cooldown=Cooldown.COUNT),
    ErrorKind.FIRST_TOKEN_TIMEOUT: _P(action=Action.NEXT, cooldown=Cooldown.COUNT),
    ErrorKind.UPSTREAM_5XX: _P(action=Action.RETRY, cooldown=Cooldown.COUNT),
    ErrorKind.CONNECTION: _P(action=Action.RETRY, cooldown=Cooldown.COUNT),
    ErrorKind.CONTEXT_WINDOW: _P(action=Action.NEXT),
    ErrorKind.CONTENT_POLICY: _P(action=Action.NEXT),
    ErrorKind.AUTH: _P(action=Action.NEXT, cooldown=Cooldown.IMMEDIATE, cooldown_s=300),
    ErrorKind.BAD_REQUEST: _P(action=Action.FAIL),
    ErrorKind.INVALID_RESPONSE: _P(action=Action.RETRY, cooldown=Cooldown.COUNT),
    QUALITY_CHECK: _P(action=Action.ESCALATE),
    LOW_CONFIDENCE: _P(action=Action.ESCALATE),
}


class BackoffConfig(FrozenModel):
    base_s: float = Field(default=0.25, ge=0)
    max_s: float = Field(default=8.0, ge=0)
    max_retry_after_s: float = Field(default=30.0, ge=0)


class BreakerConfig(FrozenModel):
    failure_threshold: int = Field(default=5, ge=1)
    cooldown_s: float = Field(default=30.0, ge=0)
    max_cooldown_s: float = Field(default=300.0, ge=0)


class Balancing(StrEnum):
    WEIGHTED = "weighted"
    LOWEST_LATENCY = "lowest_latency"
    LEAST_BUSY = "least_busy"


class FallbackConfig(FrozenModel):
    max_attempts: int = Field(default=4, ge=1)
    deadline_s: float = Field(default=120.0, gt=0)
    attempt_timeout_s: float | None = Field(
        default=30.0,
        gt=0,
        description="while another deployment remains in the plan, an attempt that has not "
        "committed (a stream's first token, a non-streamed answer's response) after this "
        "long moves on; the last option gets the rest of the deadline; null: no cap",
    )
    retries_per_deployment: int = Field(default=1, ge=0)
    backoff: BackoffConfig = BackoffConfig()
    breaker: BreakerConfig = BreakerConfig()
    balancing: Balancing = Balancing.WEIGHTED
    triggers: dict[str, TriggerPolicy] = Field(default_factory=dict)

    @field_validator("triggers")
    @classmethod
    def _known_triggers(cls, value: dict[str, TriggerPolicy]) -> dict[str, TriggerPolicy]:
        unknown = sorted(set(value) - set(TRIGGERS))
        if unknown:
            raise ValueError(f"unknown trigger(s) {unknown}; known: {TRIGGERS}")
        return value

    def policy(self, trigger: str) -> TriggerPolicy:
        return self.triggers.get(trigger) or DEFAULT_TRIGGERS[trigger]


class ApiKeyConfig(FrozenModel):
    name: str
    team: str | None = None
    key: SecretStr | None = None
    key_sha256: str | None = Field(default=None, pattern="^[0-9a-f]{64}$")
    models: list[str] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> ApiKeyConfig:
        if (self.key is None) == (self.key_sha256 is None):
            raise ValueError("give exactly one of key (env:VAR or literal) and key_sha256")
        return self


class ServerConfig(FrozenModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    api_keys: list[ApiKeyConfig] = Field(default_factory=list)
    admin_keys: list[ApiKeyConfig] = Field(default_factory=list)
    allow_unauthenticated: bool = False
    allow_unauthenticated_admin: bool = False
    monitor_interval_s: float = Field(default=10.0, gt=0)
    key_refresh_s: float = Field(default=2.0, gt=0, le=60)
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)


class StoreConfig(FrozenModel):
    enabled: bool = True
    url: str | None = None
    capture_prompts: bool = False
    capture_answers: bool = False
    max_text_chars: int = Field(default=4000, ge=0)
    redact_patterns: list[str] = Field(default_factory=list)
    retention_days: float | None = Field(default=30.0, gt=0)
    batch_size: int = Field(default=500, ge=1)
    flush_interval_s: float = Field(default=0.25, gt=0)

    def resolved_url(self, environ: Mapping[str, str] | None = None) -> str:
        """`url`, else `$TIERWISE_STORE_URL`, else `$TIERWISE_HOME/requests.db`, else
        `~/.cache/tierwise/requests.db`."""
        env = os.environ if environ is None else environ
        if self.url or env.get("TIERWISE_STORE_URL"):
            return self.url or env["TIERWISE_STORE_URL"]
        home = Path(env.get("TIERWISE_HOME") or Path.home() / ".cache" / "tierwise")
        return f"sqlite:///{home / 'requests.db'}"


class StateConfig(FrozenModel):
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    namespace: str = "default"
    on_unavailable: Literal["open", "closed"] = "open"
    cache_max_entries: int = Field(default=10_000, ge=1)


class BudgetConfig(FrozenModel):
    limit_usd: Decimal = Field(gt=0)
    period: Literal["minute", "hour", "day", "month"] = "day"


class RateLimitConfig(FrozenModel):
    requests: int | None = Field(default=None, ge=1)
    tokens: int | None = Field(default=None, ge=1)


class TelemetryConfig(FrozenModel):
    otlp_endpoint: str | None = None
    service_name: str = "tierwise"


class LearnRouteConfig(FrozenModel):
    """Learning settings of one route (each default: the `learn` block's own)."""

    apply: bool | None = None
    min_labelled: int | None = Field(default=None, ge=10)
    quality_target: float = Field(default=0.95, gt=0, le=1.5)


class LearnConfig(FrozenModel):
    """Train a router on each listed route's own logged outcomes every `interval_s`
    (over the last `since_s`), compare it with the route's router on held-out logged
    requests, and propose the winner in the audit log (`apply`: also serve it)."""

    enabled: bool = False
    routes: dict[str, LearnRouteConfig] = Field(default_factory=dict)
    interval_s: float = Field(default=86_400.0, gt=0)
    since_s: float = Field(default=30 * 86_400.0, gt=0)
    apply: bool = False
    min_labelled: int = Field(default=200, ge=10)
    embedder: str = "hashing"


class GatewayConfig(FrozenModel):
    deployments: dict[str, DeploymentConfig]
    tiers: dict[str, list[str]] = Field(default_factory=dict)
    routes: dict[str, RouteConfig] = Field(default_factory=dict)
    fallback: FallbackConfig = FallbackConfig()
    server: ServerConfig = ServerConfig()
    store: StoreConfig = StoreConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    state: StateConfig = StateConfig()
    budgets: dict[str, BudgetConfig] = Field(default_factory=dict)
    rate_limits: dict[str, RateLimitConfig] = Field(default_factory=dict)
    experiments: dict[str, ExperimentConfig] = Field(default_factory=dict)
    drift: DriftConfig = DriftConfig()
    learn: LearnConfig = LearnConfig()

    @model_validator(mode="before")
    @classmethod
    def _name_deployments(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("deployments"), dict):
            named = {}
            for name, body in data["deployments"].items():
                named[name] = {**body, "name": name} if isinstance(body, dict) else body
            data = {**data, "deployments": named}
        return data

    @model_validator(mode="after")
    def _check_references(self) -> GatewayConfig:
        _check_names(self)
        return self

    def tier_order(self, route: RouteConfig) -> list[str]:
        return route.tiers or list(self.tiers)


def _check_names(config: GatewayConfig) -> None:
    for problem in _reference_problems(config):
        raise ValueError(problem)
    clashes = (set(config.routes) & set(config.tiers)) | (
        (set(config.routes) | set(config.tiers)) & set(config.deployments)
    )
    if clashes:
        raise ValueError(
            f"names used twice across routes, tiers and deployments: {sorted(clashes)}"
        )


def _reference_problems(config: GatewayConfig) -> list[str]:
    """Every name that points nowhere, as `key: problem`."""
    problems = [
        f"tiers.{tier}: unknown deployment {member!r}"
        for tier, members in config.tiers.items()
        for member in members
        if member not in config.deployments
    ]
    problems += [
        f"deployments.{name}.fallbacks: unknown name {fallback!r}"
        for name, deployment in config.deployments.items()
        for fallback in deployment.fallbacks
        if fallback not in config.deployments and fallback not in config.tiers
    ]
    for name, route in config.routes.items():
        problems += [
            f"routes.{name}.tiers: unknown tier {t!r}" for t in route.tiers if t not in config.tiers
        ]
        if route.baseline and route.baseline not in config.deployments:
            problems.append(f"routes.{name}.baseline: unknown deployment {route.baseline!r}")
        if not config.tier_order(route):
            problems.append(f"routes.{name}: no tiers defined")
        problems += _explore_problems(config, name, route)
    names = set(config.routes) | set(config.tiers) | set(config.deployments)
    problems += [
        f"experiments.{name}: unknown route, tier or deployment {target!r}"
        for name, experiment in config.experiments.items()
        for target in experiment.targets()
        if target not in names
    ]
    problems += [
        f"drift.routes: unknown route {r!r}" for r in config.drift.routes if r not in config.routes
    ]
    problems += [
        f"learn.routes: unknown route {r!r}" for r in config.learn.routes if r not in config.routes
    ]
    return problems


def _explore_problems(config: GatewayConfig, name: str, route: RouteConfig) -> list[str]:
    explore = route.explore
    if explore is None or explore.share == 0:
        return []
    problems = []
    judge = explore.judge
    if judge and judge not in config.deployments and judge not in config.tiers:
        problems.append(f"routes.{name}.explore.judge: unknown deployment or tier {judge!r}")
    if len(config.tier_order(route)) < 2:
        problems.append(f"routes.{name}.explore: exploring needs at least two tiers")
    return problems
