"""The embedding router's pure decision rule, and its replay on logged scores under
another `margin` (the router's `ReplayRule` for drift's re-tuning)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

Scores = Mapping[str, float]


def choose(
    scores: Mapping[str, float],
    order: Sequence[str],
    margin: float,
    abstain_below: float | None,
    on_unsure: str,
) -> tuple[str, str, bool]:
    """(target, reason, confident) from scores over `order` (cheapest first): pure."""
    best = max(order, key=lambda t: scores[t])
    if abstain_below is not None and scores[best] < abstain_below:
        reason = (
            f"unsure: best similarity {scores[best]:.3f} ({best}) is below "
            f"abstain_below {abstain_below:g}; sent to {on_unsure}"
        )
        return on_unsure, reason, False
    if len(order) == 1:
        return best, f"{best}: similarity {scores[best]:.3f}, the only tier with examples", True
    for tier in order:
        rival = max((t for t in order if t != tier), key=lambda t: scores[t])
        if scores[tier] >= scores[rival] - margin:
            return tier, _explain(scores, order, tier, rival, margin), True
    strongest = order[-1]
    reason = (
        f"{strongest}: no tier leads the others by {-margin:g} "
        f"(best {best} {scores[best]:.3f}); the strongest tier goes"
    )
    return strongest, reason, True


def _explain(
    scores: Mapping[str, float], order: Sequence[str], tier: str, rival: str, margin: float
) -> str:
    if scores[tier] < scores[rival]:
        return (
            f"{tier}: similarity {scores[tier]:.3f} is within margin {margin:g} of "
            f"{rival} {scores[rival]:.3f}; the cheaper tier goes"
        )
    skipped = order[: order.index(tier)]
    if not skipped:
        return f"{tier}: most similar ({scores[tier]:.3f}; next {rival} {scores[rival]:.3f})"
    cheaper = ", ".join(f"{t} {scores[t]:.3f}" for t in skipped)
    return (
        f"{tier}: most similar ({scores[tier]:.3f}); cheaper tiers more than "
        f"margin {margin:g} below: {cheaper}"
    )


@dataclass(frozen=True, slots=True)
class EmbeddingMargin:
    """The embedding router's `margin`. `order` is the route's targets, cheapest first
    (tiers without examples are simply absent from the scores); `abstain_below` and
    `on_unsure` as configured on the router."""

    value: float
    order: tuple[str, ...]
    abstain_below: float | None = None
    on_unsure: str | None = None

    @property
    def name(self) -> str:
        return "margin"

    def replay(self, logged_scores: Sequence[Scores], value: float) -> list[str | None]:
        unsure = self.on_unsure if self.on_unsure in self.order else self.order[-1]
        routed: list[str | None] = []
        for scores in logged_scores:
            tiers = [t for t in self.order if t in scores]
            if not tiers:
                routed.append(None)
                continue
            routed.append(choose(scores, tiers, value, self.abstain_below, unsure)[0])
        return routed

    def solve_share(
        self, logged_scores: Sequence[Scores], strong_tier: str, target_share: float
    ) -> float | None:
        return None
