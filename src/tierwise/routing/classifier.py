"""An LLM classifier as router: a cheap model labels the request's complexity
through structured output; its tokens are the router tax."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import orjson

from tierwise.deployments import Deployment
from tierwise.errors import ConfigError, ProviderError
from tierwise.providers.base import Timeouts
from tierwise.record import Decision
from tierwise.routing.base import Router
from tierwise.routing.context import BuildContext
from tierwise.routing.heuristic import CHEAPEST, STRONGEST, HeuristicRouter, resolve_tier
from tierwise.routing.options import reject_unknown
from tierwise.types import ChatRequest, Message, Usage

DEFAULT_LABELS = {
    "simple": ("Greetings, FAQs, simple factual questions, yes/no questions.", CHEAPEST),
    "moderate": ("Summarization, standard analysis, comparisons, explanations.", CHEAPEST),
    "complex": (
        "Multi-step reasoning, long document analysis, code generation, creative "
        "writing, nuanced judgment calls.",
        STRONGEST,
    ),
}
MAX_PROMPT_CHARS = 2000


@dataclass(slots=True)
class ClassifierRouter:
    """Asks `deployment` for a label among `labels` (label -> (description,
    tier)); on a failure or an invalid label, `fallback` decides."""

    deployment: Deployment
    labels: Mapping[str, tuple[str, str]] = field(default_factory=lambda: dict(DEFAULT_LABELS))
    fallback: Router = field(default_factory=HeuristicRouter)
    timeout_s: float = 3.0
    max_tokens: int = 120
    cache_size: int = 4096
    name: str = "classifier"
    _cache: OrderedDict[str, tuple[str, str]] = field(default_factory=OrderedDict)

    @classmethod
    def from_options(
        cls,
        context: BuildContext,
        deployment: object = None,
        labels: object = None,
        fallback: object = "heuristic",
        timeout_s: float = 3.0,
        max_tokens: int = 120,
        cache_size: int = 4096,
        name: str = "classifier",
        **unknown: object,
    ) -> ClassifierRouter:
        known = ("deployment", "labels", "fallback", "timeout_s", "max_tokens", "cache_size")
        reject_unknown(unknown, (*known, "name"), "router 'classifier'", "router")
        return cls(
            context.deployment(deployment, "router.deployment"),
            DEFAULT_LABELS if labels is None else _parse_labels(labels),
            context.router(fallback, "router.fallback"),
            timeout_s=timeout_s,
            max_tokens=max_tokens,
            cache_size=cache_size,
            name=name,
        )

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        started = time.perf_counter()
        key = _cache_key(request)
        cached = self._cache.get(key)
        if cached is not None:
            self._cache.move_to_end(key)
            return self._decision(cached[0], cached[1], targets, started, Decimal(0), "cached: ")
        try:
            text, usage, cost = await self._ask(request)
        except (ProviderError, TimeoutError, ValueError) as exc:
            return await self._fall_back(request, targets, exc, started)
        try:
            label, reasoning = self._parse(text)
        except ValueError as exc:
            decision = await self._fall_back(request, targets, exc, started, cost)
            return replace(decision, usage=usage)
        self._remember(key, label, reasoning)
        decision = self._decision(label, reasoning, targets, started, cost)
        return replace(decision, usage=usage)

    async def _ask(self, request: ChatRequest) -> tuple[str, Usage, Decimal]:
        """The classifier's answer text, and the tokens and cost of the call."""
        query = self.classifier_request(request)
        timeouts = Timeouts(min(2.0, self.timeout_s), self.timeout_s, None)
        async with asyncio.timeout(self.timeout_s):
            response = await self.deployment.provider.complete(query, timeouts)
        usage, cost = self.deployment.cost_usd(query, response)
        return response.text(), usage, cost

    def _parse(self, text: str) -> tuple[str, str]:
        """(label, reasoning) from the classifier's answer; ValueError when invalid."""
        try:
            parsed = orjson.loads(text)
            label, reasoning = str(parsed["complexity"]), str(parsed.get("reasoning", ""))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise ValueError(f"invalid classifier output {text[:80]!r}") from None
        if label not in self.labels:
            raise ValueError(f"unknown label {label!r}")
        return label, reasoning

    def classifier_request(self, request: ChatRequest) -> ChatRequest:
        """The structured-output request sent to the classifier model."""
        lines = [f"{name}: {desc}" for name, (desc, _) in self.labels.items()]
        system = (
            "Classify the complexity of the user's latest request. Answer with JSON: "
            '{"complexity": <label>, "reasoning": <one short sentence>}.\n' + "\n".join(lines)
        )
        turns = sum(1 for m in request.messages if m.role == "user")
        text = request.last_user_text()[-MAX_PROMPT_CHARS:]
        if turns > 1:
            text = f"(turn {turns} of a conversation)\n{text}"
        schema = {
            "type": "object",
            "additionalProperties": False,
            "required": ["complexity", "reasoning"],
            "properties": {
                "complexity": {"type": "string", "enum": list(self.labels)},
                "reasoning": {"type": "string"},
            },
        }
        fmt = {
            "type": "json_schema",
            "json_schema": {"name": "route", "schema": schema, "strict": True},
        }
        return ChatRequest(
            [Message("system", system), Message("user", text)],
            model=self.deployment.name,
            max_tokens=self.max_tokens,
            temperature=0.0,
            response_format=fmt,
        )

    def _decision(
        self,
        label: str,
        reasoning: str,
        targets: list[str],
        started: float,
        cost: Decimal,
        prefix: str = "",
    ) -> Decision:
        target = resolve_tier(self.labels[label][1], targets)
        scores = {name: 1.0 if name == label else 0.0 for name in self.labels}
        elapsed_ms = (time.perf_counter() - started) * 1000
        return Decision(
            target, scores, f"{prefix}{label}: {reasoning}"[:300], self.name, cost, elapsed_ms
        )

    async def _fall_back(
        self,
        request: ChatRequest,
        targets: list[str],
        exc: Exception,
        started: float,
        spent: Decimal = Decimal(0),
    ) -> Decision:
        """The fallback router's decision, charged with `spent` (the classifier call's
        cost, when it answered) on top of its own."""
        backup = await self.fallback.decide(request, targets)
        elapsed_ms = (time.perf_counter() - started) * 1000
        reason = f"classifier failed ({exc}); {backup.router}: {backup.reason}"
        return Decision(
            backup.target,
            backup.scores,
            reason[:300],
            f"{self.name}>{backup.router}",
            spent + backup.cost_usd,
            elapsed_ms,
            confident=backup.confident,
        )

    def _remember(self, key: str, label: str, reasoning: str) -> None:
        self._cache[key] = (label, reasoning)
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def _cache_key(request: ChatRequest) -> str:
    turns = sum(1 for m in request.messages if m.role == "user")
    text = f"{turns}\x00{request.last_user_text()}"
    return hashlib.sha256(text.encode()).hexdigest()


def _parse_labels(raw: Any) -> dict[str, tuple[str, str]]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("labels must map label -> {description, tier}", key="router.labels")
    parsed = {}
    for label, spec in raw.items():
        if not isinstance(spec, Mapping) or "tier" not in spec:
            raise ConfigError(f"label {label!r} needs a tier", key=f"router.labels.{label}")
        parsed[str(label)] = (str(spec.get("description", "")), str(spec["tier"]))
    return parsed
