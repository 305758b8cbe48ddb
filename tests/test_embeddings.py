"""Embedders (hashing, MiniLM on onnxruntime) and the on-disk cache of example vectors."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from tierwise.embeddings.cache import EmbeddingCache, default_embeddings_dir, text_sha256
from tierwise.embeddings.hashing import HashingEmbedder
from tierwise.embeddings.minilm import MiniLMEmbedder
from tierwise.localmodels import LocalModelError, PackageFile

PASSWORD = "How do I reset my password?"
PASSWORD_2 = "I forgot my password, how can I change it?"
SONNET = "Write a sonnet about the ocean at night."

# Cosine similarities from sentence-transformers 5 + torch 2.13 on the same weights (fp32).
REFERENCE_PAIRS = [
    (PASSWORD, PASSWORD_2, 0.8939),
    (PASSWORD, SONNET, 0.0560),
    ("A man is eating food.", "A man is eating a piece of bread.", 0.7553),
    ("A man is eating food.", "The new movie is awesome.", -0.0461),
]


def cos(a: npt.NDArray[np.float32], b: npt.NDArray[np.float32]) -> float:
    return float(a @ b)


class CountingEmbedder:
    """Wraps an embedder and counts the texts it is asked to embed."""

    def __init__(self, inner: HashingEmbedder | None = None) -> None:
        self.inner = inner or HashingEmbedder()
        self.calls: list[int] = []

    @property
    def name(self) -> str:
        return self.inner.name

    @property
    def dimension(self) -> int:
        return self.inner.dimension

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        self.calls.append(len(texts))
        return self.inner.embed(texts)


# --- hashing ---------------------------------------------------------------------------


def test_hashing_shape_norm_and_determinism() -> None:
    embedder = HashingEmbedder()
    vectors = embedder.embed([PASSWORD, SONNET, ""])
    assert vectors.shape == (3, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:2], axis=1), 1.0, atol=1e-6)
    assert not vectors[2].any()
    assert np.array_equal(vectors, HashingEmbedder().embed([PASSWORD, SONNET, ""]))


def test_hashing_similar_texts_are_closer() -> None:
    a, b, c = HashingEmbedder().embed(
        [PASSWORD, "How can I reset my password please?", "Explain quantum chromodynamics."]
    )
    assert cos(a, b) > cos(a, c) + 0.3


# --- on-disk cache ---------------------------------------------------------------------


def test_default_dir_follows_tierwise_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("TIERWISE_HOME", str(tmp_path))
    assert default_embeddings_dir() == tmp_path / "embeddings"
    monkeypatch.delenv("TIERWISE_HOME")
    assert default_embeddings_dir() == Path.home() / ".cache" / "tierwise" / "embeddings"


def test_cache_round_trip_and_reuse(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path / "emb")
    embedder = CountingEmbedder()
    texts = [PASSWORD, SONNET]
    first = cache.embed(embedder, texts)
    second = EmbeddingCache(tmp_path / "emb").embed(embedder, texts)
    assert embedder.calls == [2]
    assert np.array_equal(first, second)
    files = os.listdir(tmp_path / "emb")
    assert len(files) == 1 and files[0].startswith("hashing-512-c3-") and files[0].endswith(".npz")
    assert cache.embed(embedder, [SONNET, PASSWORD]).shape == (2, 512)
    assert embedder.calls == [2, 2]


def test_cache_key_depends_on_embedder_and_texts(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    hashes = [text_sha256(PASSWORD)]
    assert cache.path("a", hashes) != cache.path("b", hashes)
    assert cache.path("a", hashes) != cache.path("a", [text_sha256(SONNET)])
    assert cache.path("a/../x", hashes).parent == tmp_path


def test_cache_rejects_mismatched_or_corrupt_files(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path)
    vectors = HashingEmbedder().embed([PASSWORD])
    assert cache.store("hashing-512-c3", [PASSWORD], vectors)
    assert cache.load("hashing-512-c3", [PASSWORD], 512) is not None
    assert cache.load("hashing-512-c3", [PASSWORD], 384) is None
    assert cache.load("hashing-512-c3", [SONNET], 512) is None
    path = cache.path("hashing-512-c3", [text_sha256(PASSWORD)])
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    assert cache.load("hashing-512-c3", [PASSWORD], 512) is None
    path.write_bytes(b"not a numpy file")
    assert cache.load("hashing-512-c3", [PASSWORD], 512) is None
    with path.open("wb") as fh:
        np.save(fh, vectors)
    assert cache.load("hashing-512-c3", [PASSWORD], 512) is None
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_cache_that_cannot_be_written_is_skipped(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    cache = EmbeddingCache(blocker / "embeddings")
    embedder = CountingEmbedder()
    assert cache.embed(embedder, [PASSWORD]).shape == (1, 512)
    assert not cache.store("x", [PASSWORD], np.zeros((1, 4), dtype=np.float32))


# --- MiniLM ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MiniLMEmbedder]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tokenizers")
    from tierwise.embeddings import minilm as module

    if module.missing_requirements():
        pytest.skip(f"MiniLM not installed: {module.REQUIREMENTS_HINT}")
    embedder = module.MiniLMEmbedder(cache_size=8, cache_dir=tmp_path_factory.mktemp("models"))
    embedder.load()
    yield embedder


def test_minilm_shape_norm_and_name(minilm: MiniLMEmbedder) -> None:
    vectors = minilm.embed([PASSWORD, SONNET, ""])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert minilm.embed([]).shape == (0, 384)
    assert "minilm" in minilm.name and minilm.dimension == 384


def test_minilm_matches_sentence_transformers(minilm: MiniLMEmbedder) -> None:
    for a, b, expected in REFERENCE_PAIRS:
        va, vb = minilm.embed([a, b])
        assert cos(va, vb) == pytest.approx(expected, abs=0.01)
    assert cos(*minilm.embed([PASSWORD, PASSWORD_2])) > cos(*minilm.embed([PASSWORD, SONNET]))


def test_minilm_lru_cache(minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch) -> None:
    first = minilm.embed(["cache me"])
    computed: list[int] = []
    original = minilm._compute

    def counting(texts: Sequence[str]) -> npt.NDArray[np.float32]:
        computed.append(len(texts))
        return original(texts)

    monkeypatch.setattr(minilm, "_compute", counting)
    again = minilm.embed(["cache me", "new text"])
    assert computed == [1]
    assert np.array_equal(first[0], again[0])
    hit = minilm.cached("cache me")
    assert hit is not None and not hit.flags.writeable
    minilm.embed([f"filler {i}" for i in range(8)])
    assert minilm.cached("cache me") is None


def test_minilm_truncates_long_text(minilm: MiniLMEmbedder) -> None:
    long, longer = "word " * 1000, "word " * 20000 + "completely different ending"
    a, b = minilm.embed([long, longer])
    assert np.allclose(a, b, atol=1e-6)
    assert np.linalg.norm(b) == pytest.approx(1.0, abs=1e-5)


def test_minilm_batch_equals_single_and_odd_text(minilm: MiniLMEmbedder) -> None:
    texts = ["short", "a somewhat longer sentence to force padding in the batch", "bad \udc80 x"]
    fresh = MiniLMEmbedder(cache_size=0, batch_size=8, cache_dir=minilm._cache_dir)
    batched = fresh.embed(texts)
    singles = np.vstack([fresh.embed([t]) for t in texts])
    assert np.allclose(batched, singles, atol=1e-5)


def test_minilm_missing_package_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from tierwise.embeddings import minilm as module

    fake = module.PinnedFile(PackageFile("tierwise-no-such-model", "x/model.onnx"), "0" * 64)
    monkeypatch.setattr(module, "MODEL_FILES", (fake,))
    with pytest.raises(LocalModelError, match=r"tierwise-no-such-model.*requirements/embeddings"):
        module.resolve_files(tmp_path)
    assert "tierwise-no-such-model" in module.missing_requirements()


def test_minilm_checksum_mismatch_is_refused(
    minilm: MiniLMEmbedder, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from tierwise.embeddings import minilm as module

    wrong = module.PinnedFile(module.TOKENIZER_FILE.source, "0" * 64)
    monkeypatch.setattr(module, "MODEL_FILES", (module.ONNX_FILE, wrong))
    with pytest.raises(LocalModelError, match="fails its checksum"):
        module.resolve_files(tmp_path)
    monkeypatch.undo()
    module.resolve_files(tmp_path)
    assert (tmp_path / f"{module.MODEL_ID}.verified.json").is_file()
