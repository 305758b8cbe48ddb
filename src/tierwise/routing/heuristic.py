"""Rule-based routing: the first rule whose conditions all hold picks the tier.

The shipped rules are the seed's: a short message goes cheap; an attachment,
or a keyword such as "analyze" or "explain why", goes strong; anything else
goes cheap. Rules are data (`Rule`), so config and calibration can change them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tierwise.errors import ConfigError
from tierwise.record import Decision
from tierwise.types import ChatRequest

DEFAULT_KEYWORDS = (
    "analyze",
    "compare",
    "evaluate",
    "recommend",
    "debug",
    "explain why",
    "tradeoff",
    "architecture",
)
CHARS_PER_TOKEN = 4
CODE_FENCE = "```"
CHEAPEST, STRONGEST = "cheapest", "strongest"


@dataclass(frozen=True, slots=True)
class Features:
    """What the rules look at, computed once per request."""

    text: str
    lowered: str
    chars: int
    turns: int
    has_attachment: bool
    has_tools: bool
    response_format: str | None
    has_code: bool
    non_ascii_share: float

    @classmethod
    def of(cls, request: ChatRequest) -> Features:
        text = request.last_user_text()
        fmt = (request.response_format or {}).get("type")
        non_ascii = sum(1 for ch in text if ord(ch) > 127)
        return cls(
            text=text,
            lowered=text.lower(),
            chars=len(text),
            turns=sum(1 for m in request.messages if m.role == "user"),
            has_attachment=any(m.has_attachment() for m in request.messages),
            has_tools=bool(request.tools),
            response_format=fmt if fmt != "text" else None,
            has_code=CODE_FENCE in text,
            non_ascii_share=non_ascii / len(text) if text else 0.0,
        )


@dataclass(frozen=True, slots=True)
class Rule:
    """Conditions that must all hold, and the tier they send a request to.
    `tier` is a tier name, or `cheapest` / `strongest`."""

    tier: str
    name: str = ""
    max_chars: int | None = None
    max_tokens: int | None = None
    min_tokens: int | None = None
    keywords: tuple[str, ...] = ()
    regex: re.Pattern[str] | None = None
    has_attachment: bool | None = None
    has_tools: bool | None = None
    response_format: bool | None = None
    min_turns: int | None = None
    has_code: bool | None = None
    min_non_ascii_share: float | None = None

    def matches(self, f: Features) -> str | None:
        """Why the rule fires, or None when it does not."""
        conditions = self._conditions(f)
        if not all(ok for ok, _ in conditions):
            return None
        return self._words_reason(f, [why for _, why in conditions])

    def _conditions(self, f: Features) -> list[tuple[bool, str]]:
        tokens = f.chars // CHARS_PER_TOKEN
        out: list[tuple[bool, str]] = []
        if self.max_chars is not None:
            out.append((f.chars < self.max_chars, f"short ({f.chars} < {self.max_chars} chars)"))
        if self.max_tokens is not None:
            out.append((tokens < self.max_tokens, f"~{tokens} tokens < {self.max_tokens}"))
        if self.min_tokens is not None:
            out.append((tokens >= self.min_tokens, f"~{tokens} tokens >= {self.min_tokens}"))
        if self.has_attachment is not None:
            out.append((f.has_attachment == self.has_attachment, "attachment"))
        if self.has_tools is not None:
            out.append((f.has_tools == self.has_tools, "tools offered"))
        if self.response_format is not None:
            wanted = (f.response_format is not None) == self.response_format
            out.append((wanted, f"response_format {f.response_format}"))
        if self.min_turns is not None:
            out.append((f.turns >= self.min_turns, f"{f.turns} user turns"))
        if self.has_code is not None:
            out.append((f.has_code == self.has_code, "code block"))
        if self.min_non_ascii_share is not None:
            share = f.non_ascii_share
            out.append((share >= self.min_non_ascii_share, f"{share:.0%} non-ASCII"))
        return out

    def _words_reason(self, f: Features, reasons: list[str]) -> str | None:
        if self.keywords:
            hit = next((k for k in self.keywords if k in f.lowered), None)
            if hit is None:
                return None
            reasons.append(f"keyword {hit!r}")
        if self.regex is not None:
            found = self.regex.search(f.text)
            if found is None:
                return None
            reasons.append(f"pattern {found.group(0)[:40]!r}")
        return ", ".join(reasons) or "always"


def seed_rules(short_chars: int = 50, keywords: Sequence[str] = DEFAULT_KEYWORDS) -> list[Rule]:
    return [
        Rule(CHEAPEST, "short", max_chars=short_chars),
        Rule(STRONGEST, "attachment", has_attachment=True),
        Rule(STRONGEST, "complex keyword", keywords=tuple(k.lower() for k in keywords)),
    ]


@dataclass(frozen=True, slots=True)
class HeuristicRouter:
    """The first matching rule decides; `default` (cheapest) when none does.
    With `abstain` set, a request no rule matched is marked not confident, so
    a chain of routers can ask the next one."""

    rules: Sequence[Rule] = field(default_factory=seed_rules)
    default: str = CHEAPEST
    abstain: bool = False
    name: str = "heuristic"

    @classmethod
    def from_options(
        cls,
        short_chars: int = 50,
        keywords: Sequence[str] = DEFAULT_KEYWORDS,
        rules: Sequence[Mapping[str, Any]] | None = None,
        default: str = CHEAPEST,
        abstain: bool = False,
        name: str = "heuristic",
    ) -> HeuristicRouter:
        parsed = (
            seed_rules(short_chars, keywords)
            if rules is None
            else [parse_rule(r, i) for i, r in enumerate(rules)]
        )
        return cls(rules=parsed, default=default, abstain=abstain, name=name)

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        started = time.perf_counter()
        features = Features.of(request)
        for rule in self.rules:
            why = rule.matches(features)
            if why is not None:
                target = resolve_tier(rule.tier, targets)
                return self._decision(target, targets, why, started, True)
        target = resolve_tier(self.default, targets)
        return self._decision(target, targets, "no rule fired", started, not self.abstain)

    def _decision(
        self, target: str, targets: list[str], reason: str, started: float, confident: bool
    ) -> Decision:
        scores = {t: 1.0 if t == target else 0.0 for t in targets}
        elapsed_ms = (time.perf_counter() - started) * 1000
        return Decision(
            target, scores, reason, self.name, latency_ms=elapsed_ms, confident=confident
        )


def resolve_tier(tier: str, targets: list[str]) -> str:
    if tier == CHEAPEST:
        return targets[0]
    if tier == STRONGEST:
        return targets[-1]
    return tier if tier in targets else targets[-1]


RULE_KEYS = {
    "tier",
    "name",
    "max_chars",
    "max_tokens",
    "min_tokens",
    "keywords",
    "regex",
    "has_attachment",
    "has_tools",
    "response_format",
    "min_turns",
    "has_code",
    "min_non_ascii_share",
}


def parse_rule(raw: Mapping[str, Any], index: int) -> Rule:
    """A rule from config, e.g. `{tier: strong, keywords: [prove, derive]}`."""
    where = f"router.rules[{index}]"
    if not isinstance(raw, Mapping) or "tier" not in raw:
        raise ConfigError("each rule needs a tier", key=where)
    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise ConfigError(f"unknown rule key(s) {unknown}; known: {sorted(RULE_KEYS)}", key=where)
    values = dict(raw)
    if "keywords" in values:
        values["keywords"] = tuple(str(k).lower() for k in values["keywords"])
    if "regex" in values:
        try:
            values["regex"] = re.compile(str(values["regex"]))
        except re.error as exc:
            raise ConfigError(f"invalid regex: {exc}", key=f"{where}.regex") from None
    return Rule(**values)
