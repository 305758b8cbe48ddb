"""Answer cascades and per-category cascade policies, shared by the offline evaluation
(`tierwise eval-cascade`) and the gateway (the `answer_cascade` router and the `vote`
check), so both read the same policy the same way.

A cascade is a list of stages and a final model. A stage's first model (its anchor)
answers; when its answer normalises to something (`tierwise.checks.normalise`), the
stage's other models are asked in order until `k` answers (the anchor's included) are
the same, when the anchor's answer is served, or until that can no longer happen; the
next stage (or the final model) then runs. A model called by an earlier stage is not
called again. The final model's answer is always served.

A policy maps a prompt category (`choice2`, `choiceN`, `open`) to a cascade, with `*`
for any category it does not name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from tierwise.checks.normalise import category
from tierwise.errors import ConfigError

ANY = "*"


@dataclass(frozen=True, slots=True)
class Stage:
    """The anchor (first model) and the models asked after it; accept the anchor's
    answer when `k` of them give it."""

    models: tuple[str, ...]
    k: int

    def __post_init__(self) -> None:
        if not self.models or not 1 <= self.k <= len(self.models):
            raise ValueError(f"a stage needs 1 <= k <= {len(self.models)} models, got k={self.k}")

    @property
    def label(self) -> str:
        return f"{'+'.join(self.models)} {self.k}/{len(self.models)}"

    @property
    def spec(self) -> str:
        return f"{'+'.join(self.models)}:{self.k}"


@dataclass(frozen=True, slots=True)
class Cascade:
    stages: tuple[Stage, ...]
    final: str

    @property
    def label(self) -> str:
        return " > ".join([s.label for s in self.stages] + [self.final])

    @property
    def spec(self) -> str:
        """The cascade in the syntax `parse_cascade` reads."""
        return " > ".join([s.spec for s in self.stages] + [self.final])

    def call_order(self) -> list[str]:
        """Every model the cascade may call, in the order it would call them."""
        names = [m for stage in self.stages for m in stage.models] + [self.final]
        return list(dict.fromkeys(names))


def parse_cascade(spec: str) -> Cascade:
    """`m1+m2:2 > m3:1 > final`: stages `models:k` (k defaults to every model of the
    stage), separated by '>', the last part one model."""
    parts = [p.strip() for p in spec.split(">")]
    if not all(parts) or ":" in parts[-1] or "+" in parts[-1]:
        raise ValueError(f"bad cascade {spec!r}: use 'a+b:2 > c:1 > final' (final: one model)")
    stages = []
    for part in parts[:-1]:
        names, _, k = part.partition(":")
        models = tuple(n.strip() for n in names.split("+"))
        try:
            stages.append(Stage(models, int(k) if k.strip() else len(models)))
        except ValueError as exc:
            raise ValueError(f"bad cascade stage {part!r}: {exc}") from None
    return Cascade(tuple(stages), parts[-1])


def tiered_models(cascade: Cascade) -> list[str]:
    """The models the executor calls as tiers, in order: the stage's anchor (if any),
    then the final model."""
    return [cascade.stages[0].models[0], cascade.final] if cascade.stages else [cascade.final]


def runnable_problem(cascade: Cascade) -> str | None:
    """Why the gateway cannot run `cascade` as simulated, or None: it runs one stage
    (its anchor a tier, the others asked by the `vote` check), then the final model."""
    if len(cascade.stages) > 1:
        return "the gateway runs at most one stage before the final model"
    if cascade.stages and cascade.final in cascade.stages[0].models:
        return "the final model is also in the stage"
    if cascade.stages and len(set(cascade.stages[0].models)) < len(cascade.stages[0].models):
        return "a model appears twice in the stage"
    return None


@dataclass(frozen=True, slots=True)
class CascadePolicy:
    """Per prompt category the cascade to run; `*` for the other categories."""

    cascades: Mapping[str, Cascade]

    def for_prompt(self, prompt: str) -> tuple[str, Cascade | None]:
        """The prompt's category and its cascade (None when the policy has none)."""
        name = category(prompt)
        return name, self.cascades.get(name) or self.cascades.get(ANY)

    def models(self) -> list[str]:
        """Every model the policy may call."""
        names = [m for c in self.cascades.values() for m in c.call_order()]
        return list(dict.fromkeys(names))

    def tiered(self) -> list[str]:
        """The models the executor calls as tiers: stage anchors and final models (the
        others are asked by the `vote` check)."""
        names = [m for c in self.cascades.values() for m in tiered_models(c)]
        return list(dict.fromkeys(names))

    def options(self) -> dict[str, str]:
        """The policy as config: category to cascade spec."""
        return {name: c.spec for name, c in self.cascades.items()}

    @classmethod
    def from_options(cls, raw: object, key: str) -> CascadePolicy:
        """From config `{category: 'anchor+voter:k > final', ...}`; a ConfigError at `key`
        for anything the gateway cannot run as evaluated."""
        if not isinstance(raw, Mapping) or not raw:
            raise ConfigError("cascades must map prompt categories to cascades", key=key)
        cascades = {}
        for name, spec in raw.items():
            where = f"{key}.{name}"
            try:
                cascade = parse_cascade(str(spec))
            except ValueError as exc:
                raise ConfigError(str(exc), key=where) from None
            problem = runnable_problem(cascade)
            if problem is not None:
                raise ConfigError(f"cascade {spec!r}: {problem}", key=where)
            cascades[str(name)] = cascade
        return cls(cascades)
