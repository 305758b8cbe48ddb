"""The static embedder distilled from MiniLM: its tokenizer, its shipped table, and the
embedding and learned routers running on it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tierwise.config import RouterConfig
from tierwise.embeddings import distill
from tierwise.embeddings.static import TABLE_FILE, TABLE_SHA256, StaticEmbedder, read_table
from tierwise.embeddings.wordpiece import WordPiece, normalize, split_punctuation
from tierwise.errors import ConfigError
from tierwise.learning.store import make_embedder
from tierwise.localmodels import LocalModelError
from tierwise.routing.embedding import EmbeddingRouter
from tierwise.routing.registry import build_router
from tierwise.types import ChatRequest, Message

TIERS = ["cheap", "strong"]
FIXED = [
    "How do I reset my password?",
    "I forgot my password, how can I change it?",
    "Write a sonnet about the ocean at night.",
    "Compare PostgreSQL and MongoDB for an event store and recommend one with tradeoffs.",
    "Debug this Python function and explain why it returns None for empty lists.",
    "What are your hours?",
]
ODD = [
    "Café naïve résumé — “quotes” ½ € 5€ 東京タワー İstanbul ß ﬁ \u2028x\u00a0y \x0bz\ufffd",
    "snake_case, CamelCase & e-mail@example.com: 3.14159; (a+b)^2 != a^2+b^2",
    "Ελληνικά, русский, עברית, हिन्दी, 한국어" + "x" * 120,
    "",
]
# Measured with the shipped table: cosine to MiniLM on FIXED, min 0.40, mean 0.56.
MIN_COSINE, MEAN_COSINE = 0.3, 0.45
CRAFTED = [
    ("What time do you open on Saturdays?", "cheap"),
    ("Can I get a refund on a gift?", "cheap"),
    ("Hello!", "cheap"),
    ("Wie sind Ihre Öffnungszeiten am Samstag?", "cheap"),
    (
        "Compare microservices and a modular monolith for a 20-person team and "
        "recommend one, with the tradeoffs.",
        "strong",
    ),
    ("Write a detailed design for a multi-region rate limiter.", "strong"),
]


def ask(text: str) -> ChatRequest:
    return ChatRequest([Message("user", text)])


@pytest.fixture(scope="module")
def static() -> StaticEmbedder:
    embedder = StaticEmbedder()
    embedder.load()
    return embedder


@pytest.fixture(autouse=True)
def _home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path / "home"))


# --- tokenizer ---------------------------------------------------------------------------


def test_normalize_and_punctuation() -> None:
    assert normalize("Crème BRÛLÉE\tnow\x00") == "creme brulee now"
    assert normalize("東京") == " 東  京 "
    assert split_punctuation("e-mail@x.org!") == ["e", "-", "mail", "@", "x", ".", "org", "!"]


def test_wordpiece_greedy_longest_match() -> None:
    pieces = WordPiece(["[UNK]", "un", "##aff", "##able", "aff", "!"])
    ids = pieces.encode("Unaffable! unzz")
    assert ids == [1, 2, 3, 5, 0]
    assert pieces.encode("unaffable " * 10, limit=4) == [1, 2, 3, 1]
    assert pieces.encode("x" * 101) == [0]


def test_wordpiece_matches_minilm_tokenizer(static: StaticEmbedder) -> None:
    tokenizers = pytest.importorskip("tokenizers")
    from tierwise.embeddings import minilm

    if minilm.missing_requirements():
        pytest.skip(f"MiniLM not installed: {minilm.REQUIREMENTS_HINT}")
    reference = tokenizers.Tokenizer.from_file(str(minilm.resolve_files()[1]))
    reference.no_padding()
    reference.no_truncation()
    for text in FIXED + ODD:
        expected = reference.encode(text).ids
        assert static.token_ids(text) == expected[:1] + expected[1:-1][:254] + expected[-1:]


# --- the shipped table -------------------------------------------------------------------


def test_table_loads_and_embeds(static: StaticEmbedder) -> None:
    vectors = static.embed(FIXED + ODD)
    assert vectors.shape == (len(FIXED + ODD), 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert static.dimension == 384 and static.loaded
    assert static.name == f"static-{TABLE_SHA256[:12]}-t256"
    assert static.embed([]).shape == (0, 384)
    assert TABLE_FILE.stat().st_size < 8_000_000
    meta = read_table().meta
    assert meta["teacher"] == "all-minilm-l6-v2-int8-t256" and meta["rank"] == 192


def test_embeddings_are_deterministic(static: StaticEmbedder) -> None:
    batch = static.embed(FIXED)
    fresh = StaticEmbedder().embed(FIXED)
    singles = np.vstack([static.embed([t]) for t in FIXED])
    assert np.array_equal(batch, fresh) and np.array_equal(batch, singles)


def test_long_text_is_cut_like_minilm(static: StaticEmbedder) -> None:
    a, b = static.embed(["word " * 1000, "word " * 20000 + "completely different ending"])
    assert np.array_equal(a, b)
    assert len(static.token_ids("word " * 1000)) == 256


def test_similar_texts_are_closer(static: StaticEmbedder) -> None:
    password, password_2, sonnet = static.embed(FIXED[:3])
    assert password @ password_2 > password @ sonnet + 0.2


def test_tampered_table_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "table.npz"
    shutil.copyfile(TABLE_FILE, copy)
    assert StaticEmbedder(path=copy).embed(["ok"]).shape == (1, 384)
    data = bytearray(copy.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    with pytest.raises(LocalModelError, match="fails its checksum"):
        StaticEmbedder(path=copy).embed(["ok"])
    with pytest.raises(LocalModelError, match="unreadable"):
        StaticEmbedder(path=tmp_path / "missing.npz").load()


def test_close_to_minilm_on_fixed_texts(static: StaticEmbedder) -> None:
    pytest.importorskip("onnxruntime")
    from tierwise.embeddings import minilm

    if minilm.missing_requirements():
        pytest.skip(f"MiniLM not installed: {minilm.REQUIREMENTS_HINT}")
    teacher = minilm.MiniLMEmbedder(cache_size=0).embed(FIXED)
    cosine = (static.embed(FIXED) * teacher).sum(axis=1)
    assert cosine.min() > MIN_COSINE, cosine
    assert cosine.mean() > MEAN_COSINE, cosine


# --- routers on the static embedder ------------------------------------------------------


@pytest.fixture(scope="module")
def static_router() -> Iterator[EmbeddingRouter]:
    router = EmbeddingRouter.from_options(embedder="static")
    router.warm_up()
    yield router


def test_static_is_the_embedding_routers_default() -> None:
    for options in ({}, {"embedder": "static"}):
        router = build_router(RouterConfig(kind="embedding", options=options))
        assert isinstance(router, EmbeddingRouter)
        assert not router.offload and router.embedder.name.startswith("static-")


@pytest.mark.parametrize(("prompt", "expected"), CRAFTED)
async def test_static_routes_crafted_prompts(
    static_router: EmbeddingRouter, prompt: str, expected: str
) -> None:
    decision = await static_router.decide(ask(prompt), TIERS)
    assert decision.target == expected, decision.reason
    assert decision.confident and set(decision.scores) == set(TIERS)


async def test_static_router_is_deterministic_and_handles_edges(
    static_router: EmbeddingRouter,
) -> None:
    first = await static_router.decide(ask("Explain recursion to a child."), TIERS)
    second = await EmbeddingRouter.from_options(embedder="static").decide(
        ask("Explain recursion to a child."), TIERS
    )
    assert (first.target, first.scores) == (second.target, second.scores)
    empty = await static_router.decide(ask(""), TIERS)
    assert empty.target == "strong" and empty.reason.startswith("unsure")
    long = await static_router.decide(ask("Summarise: " + "the cat sat on the mat. " * 5000), TIERS)
    assert long.target in TIERS


async def test_static_misses_a_german_contract_prompt(static_router: EmbeddingRouter) -> None:
    """A known difference from MiniLM, pinned: German words fall into English word
    pieces, so "analyse this contract" in German looks closer to the simple examples."""
    decision = await static_router.decide(
        ask("Analysiere diesen Vertrag und finde alle Haftungsklauseln."), TIERS
    )
    assert decision.target == "cheap", decision.reason


def test_learned_router_names_the_static_embedder(static: StaticEmbedder) -> None:
    assert make_embedder("static").name == static.name
    assert make_embedder(static.name).name == static.name
    assert make_embedder("static-0123456789ab-t128").name != static.name
    with pytest.raises(ConfigError, match="known: hashing, static, minilm"):
        make_embedder("statics")


async def test_learned_router_on_static_embeddings(tmp_path: Path) -> None:
    """Trained on the synthetic fixture (the strong model wins on "integral"), saved,
    loaded by name and deciding inline."""
    from tierwise.learning.outcomes import read_outcomes
    from tierwise.learning.store import save_router
    from tierwise.learning.train import train
    from tierwise.routing.learned import LearnedRouter

    fixture = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
    path = tmp_path / "router.npz"
    save_router(train(read_outcomes(fixture), "knn", make_embedder("static")), path)
    models = {"cheap-model": "cheap", "strong-model": "strong"}
    router = LearnedRouter.from_options(path=str(path), models=models, cost_weight=0.5)
    hard = await router.decide(ask("quick question about an integral, please tell"), TIERS)
    easy = await router.decide(ask("quick question about a recipe, please tell"), TIERS)
    assert (hard.target, easy.target) == ("strong", "cheap"), (hard.reason, easy.reason)


def test_fit_examples_names_the_static_embedder(tmp_path: Path) -> None:
    import yaml
    from typer.testing import CliRunner

    from tierwise.cli import app

    fixture = Path(__file__).parent / "fixtures" / "outcomes_small.csv"
    out = tmp_path / "examples.yaml"
    args = ["fit-examples", str(fixture), "--cheap", "cheap-model", "--strong", "strong-model"]
    result = CliRunner().invoke(app, [*args, "--embedder", "static", "--out", str(out)])
    assert result.exit_code == 0, result.output
    body = yaml.safe_load(out.read_text())
    assert body["embedder"] == "static"
    router = build_router(RouterConfig(kind="embedding", options={"examples_file": str(out)}))
    assert isinstance(router, EmbeddingRouter) and router.embedder.name.startswith("static-")


# --- the distillation's parts ------------------------------------------------------------


def test_ridge_matches_the_closed_form() -> None:
    rng = np.random.default_rng(0)
    a, y, prior = rng.random((40, 12)), rng.normal(size=(40, 3)), rng.normal(size=(12, 3))
    exact = np.linalg.solve(a.T @ a + 0.1 * np.eye(12), a.T @ y + 0.1 * prior)
    assert np.allclose(distill.ridge(a, y, prior, 0.1, 200), exact, atol=1e-6)


def test_write_npz_is_byte_identical(tmp_path: Path) -> None:
    arrays = {"b": np.arange(5, dtype=np.int8), "a": np.ones((2, 3), dtype=np.float32)}
    first = distill.write_npz(tmp_path / "1.npz", arrays)
    assert first == distill.write_npz(tmp_path / "2.npz", dict(reversed(arrays.items())))
    with np.load(tmp_path / "1.npz") as data:
        assert np.array_equal(data["b"], arrays["b"])


def test_corpus_takes_prompts_and_long_lines(tmp_path: Path) -> None:
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text(json.dumps({"prompt": "Short one\nthis line has at least five words"}) + "\n")
    csv = tmp_path / "p.csv"
    csv.write_text('prompt,prompt_turn2\n"Hello there",\n"a",Second turn text\n')
    texts = distill.corpus([jsonl, csv])
    assert texts == sorted(texts) and "this line has at least five words" in texts
    assert {"Hello there", "Second turn text", "a"} <= set(texts) and "" not in texts
