"""The `minilm` provider: embeddings from the shipped all-MiniLM-L6-v2 (int8 ONNX on
onnxruntime, the `routing` extra), in process, in a worker thread. 384 dimensions,
each vector of unit length; it serves only `/v1/embeddings`."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tierwise.embedding_types import EmbeddingRequest, EmbeddingResponse, count_input_tokens
from tierwise.errors import BadRequestError, UpstreamServerError, UpstreamTimeoutError
from tierwise.localmodels import LocalModelError
from tierwise.providers.base import Timeouts
from tierwise.types import ChatRequest, ChatResponse, StreamDelta

if TYPE_CHECKING:
    from tierwise.embeddings.minilm import MiniLMEmbedder

CHAT_REFUSED = "this deployment serves embeddings only (POST /v1/embeddings)"
DIMENSION = 384
RUNTIME_HINT = "pip install 'tierwise[routing]'"


class MiniLMEmbedProvider:
    """Embeds on the local MiniLM; the model loads on `start` or the first call."""

    def __init__(self, model: str, *, threads: int = 1) -> None:
        self._model, self._threads = model, threads
        self._embedder: MiniLMEmbedder | None = None

    def _loaded(self) -> MiniLMEmbedder:
        """The embedder, loaded (in the calling thread)."""
        if self._embedder is None:
            from tierwise.embeddings.minilm import MiniLMEmbedder

            embedder = MiniLMEmbedder(threads=self._threads, cache_size=1024)
            embedder.load()
            self._embedder = embedder
        return self._embedder

    async def start(self) -> None:
        """Load the model now when the `routing` extra is installed (else the first
        call says what to install)."""
        try:
            await asyncio.to_thread(self._loaded)
        except (LocalModelError, ImportError, OSError, RuntimeError):
            return

    def _embed(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self._loaded().embed(texts).tolist()
        return vectors

    async def embed(self, request: EmbeddingRequest, timeouts: Timeouts) -> EmbeddingResponse:
        texts = request.texts()
        if len(texts) != len(request.inputs):
            raise BadRequestError("minilm embeds text, not token ids", status=400)
        if request.dimensions not in (None, DIMENSION):
            raise BadRequestError(f"minilm vectors have {DIMENSION} dimensions", status=400)
        try:
            async with asyncio.timeout(timeouts.total_s):
                vectors = await asyncio.to_thread(self._embed, texts)
        except TimeoutError:
            raise UpstreamTimeoutError(f"minilm took over {timeouts.total_s}s") from None
        except (LocalModelError, ImportError) as exc:
            raise UpstreamServerError(f"minilm unavailable: {exc} ({RUNTIME_HINT})") from None
        return EmbeddingResponse(vectors, self._model, count_input_tokens(request, self._model))

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        raise BadRequestError(CHAT_REFUSED, status=400)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        raise BadRequestError(CHAT_REFUSED, status=400)
        yield StreamDelta()  # pragma: no cover - makes this an async generator

    async def aclose(self) -> None:
        return None
