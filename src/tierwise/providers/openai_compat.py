"""The OpenAI-compatible provider (OpenAI, vLLM, llama.cpp, Ollama, Groq, ...):
HTTP and streaming here, the format in `tierwise.wire.openai.outbound`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from tierwise.embedding_types import EmbeddingRequest, EmbeddingResponse, count_input_tokens
from tierwise.errors import UpstreamConnectionError
from tierwise.providers.base import (
    HttpClient,
    Timeouts,
    iter_sse,
    post_for_json,
    post_for_stream,
)
from tierwise.types import JSON, ChatRequest, ChatResponse, StreamDelta
from tierwise.wire.openai import embeddings
from tierwise.wire.openai.outbound import (
    classify_error,
    decode_event,
    decode_response,
    encode_request,
)


class OpenAICompatProvider:
    """Speaks `/chat/completions` to any OpenAI-compatible server."""

    def __init__(
        self,
        http: HttpClient,
        *,
        api_base: str,
        model: str,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._http, self._model = http, model
        self._url = api_base.rstrip("/") + "/chat/completions"
        self._embed_url = api_base.rstrip("/") + "/embeddings"
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["authorization"] = f"Bearer {api_key}"

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        body = self.encode(request)
        answer = await post_for_json(
            self._http, self._url, body, self._headers, timeouts, classify_error
        )
        return decode_response(answer, self._model)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        body = self.encode(request)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        response = await post_for_stream(
            self._http, self._url, body, self._headers, timeouts, classify_error
        )
        try:
            async for delta in _stream_deltas(response):
                yield delta
        finally:
            response.release()

    async def embed(self, request: EmbeddingRequest, timeouts: Timeouts) -> EmbeddingResponse:
        """`/embeddings` at the same base URL; usage counted when none is reported."""
        body = embeddings.encode_upstream(request, self._model)
        answer = await post_for_json(
            self._http, self._embed_url, body, self._headers, timeouts, classify_error
        )
        count = len(request.inputs)
        vectors, usage, model = embeddings.decode_upstream(answer, self._model, count)
        return EmbeddingResponse(vectors, model, usage or count_input_tokens(request, model))

    async def aclose(self) -> None:
        return None

    def encode(self, request: ChatRequest) -> JSON:
        return encode_request(request, self._model)


async def _stream_deltas(response: aiohttp.ClientResponse) -> AsyncIterator[StreamDelta]:
    async for _event, data in iter_sse(response):
        deltas = decode_event(data)
        if deltas is None:
            return
        for delta in deltas:
            yield delta
    raise UpstreamConnectionError("stream ended without [DONE]")
