"""The Gemini provider (Google AI Studio's `generateContent`): HTTP and streaming
here, the format in `tierwise.wire.gemini`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from tierwise.errors import UpstreamConnectionError
from tierwise.providers.base import (
    HttpClient,
    Timeouts,
    iter_sse,
    post_for_json,
    post_for_stream,
)
from tierwise.types import JSON, ChatRequest, ChatResponse, StreamDelta
from tierwise.wire.gemini.outbound import (
    StreamDecoder,
    classify_error,
    decode_response,
    encode_request,
)

GEMINI_BASE = "https://generativelanguage.googleapis.com"


class GeminiProvider:
    """Speaks `/v1beta/models/{model}:generateContent` and, for streams,
    `:streamGenerateContent?alt=sse`; the key goes in `x-goog-api-key`."""

    def __init__(
        self,
        http: HttpClient,
        *,
        model: str,
        api_key: str | None = None,
        api_base: str = GEMINI_BASE,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._http, self._model = http, model
        root = f"{api_base.rstrip('/').removesuffix('/v1beta')}/v1beta/models/{quote(model)}"
        self._url = root + ":generateContent"
        self._stream_url = root + ":streamGenerateContent?alt=sse"
        self._headers = {"content-type": "application/json", **(headers or {})}
        if api_key:
            self._headers["x-goog-api-key"] = api_key

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        body = self.encode(request)
        answer = await post_for_json(
            self._http, self._url, body, self._headers, timeouts, classify_error
        )
        return decode_response(answer, self._model)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        body = self.encode(request)
        response = await post_for_stream(
            self._http, self._stream_url, body, self._headers, timeouts, classify_error
        )
        try:
            decoder = StreamDecoder()
            async for _event, data in iter_sse(response):
                for delta in decoder.feed(data):
                    yield delta
            if not decoder.finished:
                raise UpstreamConnectionError("stream ended without a finish reason")
            for delta in decoder.close():
                yield delta
        finally:
            response.release()

    async def aclose(self) -> None:
        return None

    def encode(self, request: ChatRequest) -> JSON:
        return encode_request(request)
