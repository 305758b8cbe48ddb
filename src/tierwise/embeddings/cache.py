"""Embeddings of example texts kept on disk, so a router embeds its examples once.

One `.npz` file per (embedder name, example set) under `$TIERWISE_HOME/embeddings`
(default `~/.cache/tierwise/embeddings`), holding the sha256 of each text and its vector.
Writes are atomic (temporary file, then rename); a missing, unreadable or mismatched
file is recomputed, and a cache that cannot be written is skipped.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import tempfile
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from tierwise.embeddings.base import Embedder

Vectors = npt.NDArray[np.float32]
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def default_embeddings_dir() -> Path:
    """`$TIERWISE_HOME/embeddings`, or `~/.cache/tierwise/embeddings`."""
    home = os.environ.get("TIERWISE_HOME")
    if home:
        return Path(home).expanduser() / "embeddings"
    return Path.home() / ".cache" / "tierwise" / "embeddings"


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class EmbeddingCache:
    """Vectors of text sets, keyed by embedder name and the texts' sha256."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory if directory is not None else default_embeddings_dir()

    def path(self, embedder_name: str, hashes: Sequence[str]) -> Path:
        """The file that holds this embedder's vectors of the texts with these hashes."""
        digest = hashlib.sha256(f"{embedder_name}\n{','.join(hashes)}".encode()).hexdigest()
        return self.directory / f"{_UNSAFE.sub('_', embedder_name)}-{digest[:32]}.npz"

    def load(self, embedder_name: str, texts: Sequence[str], dimension: int) -> Vectors | None:
        """The stored vectors of `texts` in order, or None when absent or invalid."""
        hashes = [text_sha256(t) for t in texts]
        try:
            raw = self.path(embedder_name, hashes).read_bytes()
            data = np.load(io.BytesIO(raw), allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                return None
            with data:
                stored, vectors = data["sha256"], data["vectors"]
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None
        if stored.tolist() != hashes or vectors.shape != (len(texts), dimension):
            return None
        if vectors.dtype != np.float32 or not np.isfinite(vectors).all():
            return None
        result: Vectors = vectors
        return result

    def store(self, embedder_name: str, texts: Sequence[str], vectors: Vectors) -> bool:
        """Write atomically; False when the directory cannot be written."""
        hashes = [text_sha256(t) for t in texts]
        target = self.path(embedder_name, hashes)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.directory)
        except OSError:
            return False
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                np.savez(out, sha256=np.array(hashes, dtype="U64"), vectors=vectors)
                out.flush()
                os.fsync(out.fileno())
            tmp.chmod(0o644)
            os.replace(tmp, target)
        except OSError:
            return False
        finally:
            tmp.unlink(missing_ok=True)
        return True

    def embed(self, embedder: Embedder, texts: Sequence[str]) -> Vectors:
        """The vectors of `texts`: from disk when stored, else computed and stored."""
        found = self.load(embedder.name, texts, embedder.dimension)
        if found is not None:
            return found
        vectors = np.ascontiguousarray(embedder.embed(texts), dtype=np.float32)
        self.store(embedder.name, texts, vectors)
        return vectors
