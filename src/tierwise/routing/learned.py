"""Routing with a trained router: predict each model's chance of a good answer and
pick the tier of the model with the best utility (P(good) - cost_weight x relative cost),
or, with `threshold` (two-tier use, as in RouteLLM), the strongest mapped tier when the
strong win rate 0.5 + (P(good | strongest) - P(good | cheapest)) / 2 exceeds it and the
cheapest mapped tier otherwise.

Train a router with `tierwise train` (or `tierwise.learning.train`) and save it with
`tierwise.learning.store.save_router`; `models` maps the router's model names to tiers.
Without `cost_weight` or `threshold` in the config, the router decides at the operating
point stored in its file (its threshold when it has one, else its cost weight).
Decisions carry `strong_win_rate` among their scores whenever two tiers are eligible.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.base import Embedder
from tierwise.errors import ConfigError
from tierwise.learning.models import (
    Matrix,
    TrainedRouter,
    Vectors,
    choose,
    strong_win_rate,
    utilities,
)
from tierwise.learning.store import load_router, make_embedder
from tierwise.record import Decision
from tierwise.routing.options import reject_unknown
from tierwise.routing.tuning import LearnedCostWeight, PreferenceThreshold
from tierwise.types import ChatRequest

KEY = "router"
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class _Loaded:
    router: TrainedRouter
    embedder: Embedder
    mapped: list[int]


class LearnedRouter:
    """A trained per-model quality predictor over prompt embeddings. Loads its file at
    construction, or at the first decision (in a worker thread) when `lazy`. `offload`
    embeds and predicts in a worker thread (default: for MiniLM embedders only).
    `threshold` (in [0, 1]) decides between the strongest and the cheapest mapped tier
    by the strong win rate instead of by utility."""

    def __init__(
        self,
        path: str | Path,
        models: Mapping[str, str],
        *,
        cost_weight: float | None = None,
        threshold: float | None = None,
        embedder: Embedder | str | None = None,
        lazy: bool = False,
        offload: bool | None = None,
        name: str = "learned",
    ) -> None:
        self.path, self.models, self.offload = Path(path), dict(models), offload
        self.cost_weight, self._embedder, self._name = cost_weight, embedder, name
        self.threshold = threshold
        self._loaded: _Loaded | None = None
        if not self.models:
            raise ConfigError("learned router: 'models' maps no model to a tier", key=KEY)
        if cost_weight is not None and threshold is not None:
            raise ConfigError(
                "learned router: give 'cost_weight' or 'threshold', not both", key=KEY
            )
        if not lazy:
            self.load()

    @classmethod
    def from_options(
        cls,
        path: object = None,
        models: object = None,
        cost_weight: object = None,
        embedder: object = None,
        lazy: object = False,
        offload: object = None,
        threshold: object = None,
        context: object = None,
        **unknown: object,
    ) -> LearnedRouter:
        """Build from config options, with a ConfigError for each invalid one (the
        registry's `context` is not needed)."""
        known = ("path", "models", "cost_weight", "embedder", "lazy", "offload", "threshold")
        reject_unknown(unknown, known, "router 'learned'", KEY)
        if not isinstance(path, str | Path) or not str(path):
            raise ConfigError("learned router needs 'path': the trained router file", key=KEY)
        if not isinstance(models, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in models.items()
        ):
            raise ConfigError(
                "learned router needs 'models': a mapping of model name to tier name", key=KEY
            )
        weight, cut = _cost_weight(cost_weight), _threshold(threshold)
        if embedder is not None and not isinstance(embedder, str):
            raise ConfigError(
                "learned router: 'embedder' must be a name such as 'hashing'", key=KEY
            )
        if not isinstance(lazy, bool) or not isinstance(offload, bool | None):
            raise ConfigError("learned router: 'lazy' and 'offload' are true or false", key=KEY)
        return cls(
            path,
            models,
            cost_weight=weight,
            threshold=cut,
            embedder=embedder,
            lazy=lazy,
            offload=offload,
        )

    @property
    def name(self) -> str:
        return self._name

    def tuning_rule(self, tiers: Sequence[str]) -> PreferenceThreshold | LearnedCostWeight:
        """The operating point `decide` uses, for a route whose targets are `tiers`
        (`Tunable`): the threshold between the cheapest and the strongest tier when
        configured or saved with the router (and no cost weight is configured), else
        the cost weight."""
        trained = self.load()
        cut = self.threshold
        if cut is None and self.cost_weight is None:
            cut = trained.threshold
        if cut is not None:
            return PreferenceThreshold(float(cut), tiers[-1], tiers[0])
        return LearnedCostWeight.from_router(trained, self.models, self.cost_weight)

    def retune(self, parameter: str, value: float) -> bool:
        """Set `threshold` or `cost_weight` (`Tunable`), clearing the other so that
        the new one decides; False for any other parameter."""
        if parameter == "threshold":
            self.threshold, self.cost_weight = float(value), None
        elif parameter == "cost_weight":
            self.threshold, self.cost_weight = None, float(value)
        else:
            return False
        return True

    def load(self) -> TrainedRouter:
        """Read the router file (once) and check it against the mapping and embedder."""
        return self._state().router

    def _state(self) -> _Loaded:
        if self._loaded is None:
            router = load_router(self.path)
            embedder = self._make_embedder(router)
            unknown = sorted(set(self.models) - set(router.models))
            if unknown:
                raise ConfigError(
                    f"learned router: {unknown} are not models of {self.path} "
                    f"(it predicts {router.models})",
                    key=KEY,
                )
            mapped = [i for i, m in enumerate(router.models) if m in self.models]
            self._loaded = _Loaded(router, embedder, mapped)
        return self._loaded

    def _offload(self, loaded: _Loaded) -> bool:
        if self.offload is not None:
            return self.offload
        return "minilm" in loaded.embedder.name.lower()

    def _make_embedder(self, router: TrainedRouter) -> Embedder:
        chosen = self._embedder if self._embedder is not None else router.embedder_name
        embedder = make_embedder(chosen) if isinstance(chosen, str) else chosen
        if embedder.name != router.embedder_name or embedder.dimension != router.embedder_dimension:
            raise ConfigError(
                f"learned router {self.path} was trained with embedder "
                f"{router.embedder_name!r} (dimension {router.embedder_dimension}), "
                f"not {embedder.name!r} (dimension {embedder.dimension})",
                key=KEY,
            )
        return embedder

    def _allowed(self, loaded: _Loaded, targets: list[str]) -> Mask:
        models = loaded.router.models
        return np.array(
            [i in loaded.mapped and self.models[m] in targets for i, m in enumerate(models)],
            dtype=bool,
        )

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        started = time.perf_counter()
        loaded = self._loaded if self._loaded else await asyncio.to_thread(self._state)
        router = loaded.router
        allowed = self._allowed(loaded, targets)
        if not allowed.any():
            reason = f"no mapped model's tier is among {targets}; cheapest target"
            return Decision(targets[0], {}, reason, self.name, latency_ms=_ms(started))
        text = [request.last_user_text()]
        if self._offload(loaded):
            p = await asyncio.to_thread(lambda: router.predict(loaded.embedder.embed(text)))
        else:
            p = router.predict(loaded.embedder.embed(text))
        best, scores, reason = self._choose(router, p[0], allowed, targets)
        target = self.models[router.models[best]]
        return Decision(target, scores, reason, self.name, latency_ms=_ms(started))

    def decide_embedded(self, x: Vectors, targets: list[str]) -> list[str]:
        """The target `decide` picks for each row of prompt embeddings `x` (as the
        router's embedder makes them), without the async machinery: for offline
        evaluation of many prompts at once."""
        loaded = self._state()
        router = loaded.router
        allowed = self._allowed(loaded, targets)
        if not allowed.any():
            return [targets[0]] * len(x)
        p = router.predict(x)
        picks = [self._choose(router, row, allowed, targets)[0] for row in p]
        return [self.models[router.models[best]] for best in picks]

    def _choose(
        self, router: TrainedRouter, p: Matrix, allowed: Mask, targets: list[str]
    ) -> tuple[int, dict[str, float], str]:
        """The chosen model's index, the scores to log and the reason."""
        weight = router.cost_weight if self.cost_weight is None else self.cost_weight
        cut = self.threshold
        if cut is None and self.cost_weight is None:
            cut = router.threshold
        scores = _scores(router, p, weight, allowed)
        pair = _tier_pair(router, self.models, allowed, targets)
        win = None if pair is None else float(strong_win_rate(p[None], *pair)[0])
        if win is not None:
            scores["strong_win_rate"] = win
        if cut is not None and pair is not None and win is not None:
            best = pair[1] if win > cut else pair[0]
            sign = ">" if win > cut else "<="
            reason = (
                f"strong win rate {win:.3f} {sign} threshold {cut:g}: "
                f"{router.models[best]} ({self.models[router.models[best]]})"
            )
            return best, scores, reason
        best = int(choose(p[None], router.relative_costs, weight, allowed)[0])
        target = self.models[router.models[best]]
        return best, scores, _reason(router, p, weight, allowed, best, target)


def _tier_pair(
    router: TrainedRouter, models: Mapping[str, str], allowed: Mask, targets: list[str]
) -> tuple[int, int] | None:
    """(cheapest, strongest): the eligible models of the cheapest and of the strongest
    target tier (ties: the cheaper, the better scoring); None when one tier only."""
    eligible = [i for i in range(len(router.models)) if allowed[i]]
    tier = {i: targets.index(models[router.models[i]]) for i in eligible}
    relative, quality = router.relative_costs, np.nan_to_num(router.mean_scores)
    weak = min(eligible, key=lambda i: (tier[i], relative[i], i))
    strong = max(eligible, key=lambda i: (tier[i], quality[i], -i))
    return None if tier[weak] == tier[strong] else (weak, strong)


def _cost_weight(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigError(
            f"learned router: 'cost_weight' must be a number >= 0, not {value!r}", key=KEY
        )
    return float(value)


def _threshold(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConfigError(
            f"learned router: 'threshold' must be a number from 0 to 1, not {value!r}", key=KEY
        )
    return float(value)


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


def _scores(router: TrainedRouter, p: Matrix, weight: float, allowed: Mask) -> dict[str, float]:
    """p:<model>, utility:<model> and (when known) cost_usd:<model>, for eligible models."""
    utility = utilities(p[None], router.relative_costs, weight)[0]
    out: dict[str, float] = {}
    for i, model in enumerate(router.models):
        if not allowed[i]:
            continue
        out[f"p:{model}"] = float(p[i])
        out[f"utility:{model}"] = float(utility[i])
        if not math.isnan(router.mean_costs[i]):
            out[f"cost_usd:{model}"] = float(router.mean_costs[i])
    return out


def _reason(
    router: TrainedRouter, p: Matrix, weight: float, allowed: Mask, best: int, target: str
) -> str:
    utility = utilities(p[None], router.relative_costs, weight)[0]
    relative = router.relative_costs
    text = (
        f"{router.models[best]} ({target}) has the best utility {utility[best]:.3f}: "
        f"P(good) {p[best]:.2f} - {weight:g} x relative cost {relative[best]:.2f}"
    )
    others = [i for i in np.argsort(-utility) if allowed[i] and i != best]
    if others:
        second = int(others[0])
        text += f"; next {router.models[second]} at {utility[second]:.3f}"
    return text
