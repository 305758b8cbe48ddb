"""`router: pretrained`: the router shipped in the package, for any route of two tiers or
more, with nothing to train.

The model (`tierwise/data/pretrained_router.json`, made by `scripts/train_pretrained.py`)
is a logistic regression on the `structure` embedder's features of a prompt's form,
trained on GPT-4 against Mixtral-8x7B outcomes (RouteLLM's benchmark data). It gives each
prompt a strong win rate; the route's tiers are put in price order (the tiers'
deployments' input + output price; config order among equal prices), the cheapest being
the weak side and the priciest the strong side. With two tiers, a win rate above the
threshold (saved with the model, or the `threshold` option) goes to the priciest tier.
With more, the cheapest tier keeps the prompts it gets with two tiers and the rest are
spread over the pricier tiers in equal shares of the training prompts' win rates
(`bands`).

The model is trusted only on the prompt kinds (`tierwise.routing.prompt_kind`) where it
beat random routing on benchmarks it was not trained on (leave-one-benchmark-out, 95%
interval of APGR above 0.5, saved in the file); on the other kinds, open-ended chat
always among them, the heuristic router decides and the route's checks do the rest. The
decision's reason says which happened. The file's sha256 is pinned here and checked
when it is loaded.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from tierwise.embeddings.structure import BIAS, FEATURES, StructureEmbedder
from tierwise.errors import ConfigError
from tierwise.record import Decision
from tierwise.routing.context import BuildContext
from tierwise.routing.heuristic import HeuristicRouter
from tierwise.routing.prompt_kind import prompt_kind
from tierwise.types import ChatRequest

KEY = "router"
FORMAT = "tierwise-pretrained-router"
FORMAT_VERSION = 1
MODEL_FILE = Path(__file__).resolve().parent.parent / "data" / "pretrained_router.json"
MODEL_SHA256 = "3723cd105ad0d4849dd3c01aea3a40b3dcb17d4d527dba5c1cb5e0a9313173ab"


@dataclass(frozen=True)
class PretrainedModel:
    """The shipped model: a logistic regression per side (weak, strong) on the
    structure features, its saved threshold, the trusted prompt kinds with the evidence
    per kind, and the win-rate quantiles of its training prompts."""

    weights: tuple[tuple[float, float], ...]
    bias: tuple[float, float]
    threshold: float
    trusted: frozenset[str]
    kinds: Mapping[str, Mapping[str, Any]]
    quantiles: tuple[float, ...]

    def win_rate(self, text: str) -> float:
        """0.5 + (P(strong good) - P(weak good)) / 2 for `text` (pure Python: the
        structure embedder's vector, then one dot product per side)."""
        vector = [feature(text) for _, feature in FEATURES] + [BIAS]
        norm = math.sqrt(sum(v * v for v in vector))
        pairs = list(zip(vector, self.weights, strict=True))
        weak, strong = (
            _sigmoid(self.bias[j] + sum(v * w[j] for v, w in pairs) / norm) for j in (0, 1)
        )
        return 0.5 + 0.5 * (strong - weak)

    def evidence(self, kind: str) -> str:
        """The held-out APGR behind trusting (or not) `kind`, for reasons."""
        entry = self.kinds.get(kind, {})
        if "apgr" not in entry:
            return f"{entry.get('prompts', 0)} held-out prompts"
        low, high = entry["interval"]
        return f"held-out APGR {entry['apgr']:.3f} ({low:.3f}-{high:.3f})"


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def load_model(path: Path = MODEL_FILE, sha256: str = MODEL_SHA256) -> PretrainedModel:
    """Read the model file after checking its sha256; a ConfigError otherwise."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"pretrained router: cannot read {path}: {exc}", key=KEY) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise ConfigError(
            f"pretrained router: {path} has sha256 {digest}, expected {sha256}; the file "
            "is damaged or was replaced (reinstall tierwise)",
            key=KEY,
        )
    try:
        return parse_model(json.loads(data))
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise ConfigError(f"pretrained router: {path} is unreadable: {exc}", key=KEY) from None


def parse_model(raw: Mapping[str, Any]) -> PretrainedModel:
    """The model from the file's JSON; a ValueError when it is not one."""
    if raw.get("format") != FORMAT or raw.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"not a {FORMAT} file of version {FORMAT_VERSION}")
    if raw["embedder"] != StructureEmbedder().name or len(raw["weights"]) != len(FEATURES) + 1:
        raise ValueError(f"trained on {raw['embedder']!r}, not this structure embedder")
    weights = tuple((float(w[0]), float(w[1])) for w in raw["weights"])
    return PretrainedModel(
        weights,
        (float(raw["bias"][0]), float(raw["bias"][1])),
        float(raw["threshold"]),
        frozenset(str(k) for k in raw["trusted_kinds"]),
        dict(raw["kinds"]),
        tuple(float(q) for q in raw["win_rate_quantiles"]),
    )


@lru_cache(maxsize=1)
def shipped_model() -> PretrainedModel:
    """The packaged model, read and checked once per process."""
    return load_model()


def tier_prices(context: BuildContext) -> dict[str, float]:
    """Per tier, the mean input + output price per million tokens of its deployments."""
    prices: dict[str, list[float]] = {}
    for deployment in context.deployments.values():
        price = deployment.price
        total = float(price.input_per_mtok + price.output_per_mtok)
        prices.setdefault(deployment.tier, []).append(total)
    return {tier: sum(values) / len(values) for tier, values in prices.items()}


def price_order(targets: Sequence[str], prices: Mapping[str, float]) -> list[str]:
    """`targets` cheapest first by price; config order among equal or unknown prices."""
    return sorted(targets, key=lambda t: prices.get(t, 0.0))


def bands(threshold: float, quantiles: Sequence[float], tiers: int) -> list[float]:
    """The `tiers - 1` win-rate cuts: the threshold, then cuts splitting the training
    prompts above it into equal shares for the pricier tiers."""
    levels = [i / (len(quantiles) - 1) for i in range(len(quantiles))]
    below = _interp(threshold, quantiles, levels)
    shares = [below + j * (1.0 - below) / (tiers - 1) for j in range(1, tiers - 1)]
    return [threshold, *(max(threshold, _interp(s, levels, quantiles)) for s in shares)]


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear interpolation of increasing `xs`, clamped at the ends."""
    if x <= xs[0]:
        return ys[0]
    for i in range(1, len(xs)):
        if x <= xs[i]:
            span = xs[i] - xs[i - 1]
            t = (x - xs[i - 1]) / span if span > 0 else 1.0
            return ys[i - 1] + t * (ys[i] - ys[i - 1])
    return ys[-1]


class PretrainedRouter:
    """The shipped model's strong win rate, mapped onto the route's tiers by price;
    the heuristic router on the prompt kinds the model is not trusted on (with
    `defer: false`, the model decides every prompt)."""

    def __init__(
        self,
        *,
        threshold: float | None = None,
        defer: bool = True,
        prices: Mapping[str, float] | None = None,
        model: PretrainedModel | None = None,
        name: str = "pretrained",
    ) -> None:
        self.model = model if model is not None else shipped_model()
        self.threshold = self.model.threshold if threshold is None else threshold
        self.defer, self.prices, self._name = defer, dict(prices or {}), name
        self.heuristic = HeuristicRouter(name="heuristic")

    @classmethod
    def from_options(
        cls,
        threshold: object = None,
        defer: object = True,
        context: BuildContext | None = None,
    ) -> PretrainedRouter:
        """Build from config options, with a ConfigError for each invalid one."""
        if threshold is not None and (
            isinstance(threshold, bool)
            or not isinstance(threshold, int | float)
            or not 0 <= threshold <= 1
        ):
            raise ConfigError(
                f"pretrained router: 'threshold' must be a number from 0 to 1, not {threshold!r}",
                key=f"{KEY}.threshold",
            )
        if not isinstance(defer, bool):
            raise ConfigError("pretrained router: 'defer' is true or false", key=f"{KEY}.defer")
        cut = None if threshold is None else float(threshold)
        prices = tier_prices(context or BuildContext())
        return cls(threshold=cut, defer=defer, prices=prices)

    @property
    def name(self) -> str:
        return self._name

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        started = time.perf_counter()
        order = price_order(targets, self.prices)
        text = request.last_user_text()
        kind = prompt_kind(text)
        if self.defer and kind not in self.model.trusted:
            return await self._deferred(request, order, kind, started)
        if len(order) < 2:
            reason = f"{kind} prompt; one tier only"
            return Decision(order[0], {}, reason, self.name, latency_ms=_ms(started))
        win = self.model.win_rate(text)
        cuts = bands(self.threshold, self.model.quantiles, len(order))
        index = sum(1 for cut in cuts if win > cut)
        target = order[index]
        trust = "trusted" if kind in self.model.trusted else "not deferred (defer: false)"
        reason = (
            f"{kind} prompt ({trust}: {self.model.evidence(kind)}); strong win rate "
            f"{win:.3f} {_against(win, cuts)}: {target}, tier {index + 1} of {len(order)} "
            "by price"
        )
        scores = {"strong_win_rate": win, "deferred": 0.0}
        return Decision(target, scores, reason, self.name, latency_ms=_ms(started))

    async def _deferred(
        self, request: ChatRequest, order: list[str], kind: str, started: float
    ) -> Decision:
        """The heuristic's decision, with why the model was not asked."""
        decided = await self.heuristic.decide(request, order)
        reason = (
            f"{kind} prompt: the pretrained model is not better than random here "
            f"({self.model.evidence(kind)}), so the heuristic decides: {decided.reason}"
        )
        return Decision(
            decided.target,
            {"deferred": 1.0},
            reason,
            self.name,
            latency_ms=_ms(started),
            confident=decided.confident,
        )


def _against(win: float, cuts: list[float]) -> str:
    """The win rate against the cuts, e.g. `> 0.605` or `> 0.605, <= 0.700`."""
    above = [c for c in cuts if win > c]
    below = [c for c in cuts if win <= c]
    parts = [f"> {max(above):.3f}"] if above else []
    parts += [f"<= {min(below):.3f}"] if below else []
    return ", ".join(parts)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000
