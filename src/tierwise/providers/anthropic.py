"""The Anthropic provider: HTTP and streaming here, the format in
`tierwise.wire.anthropic.outbound`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tierwise.errors import UpstreamConnectionError
from tierwise.providers.base import (
    HttpClient,
    Timeouts,
    iter_sse,
    post_for_json,
    post_for_stream,
)
from tierwise.types import JSON, ChatRequest, ChatResponse, StreamDelta
from tierwise.wire.anthropic.outbound import (
    DEFAULT_MAX_TOKENS,
    StreamDecoder,
    classify_error,
    decode_event,
    decode_response,
    encode_request,
)

API_VERSION = "2023-06-01"


class AnthropicProvider:
    """Speaks `/v1/messages`."""

    def __init__(
        self,
        http: HttpClient,
        *,
        model: str,
        api_key: str | None = None,
        api_base: str = "https://api.anthropic.com",
        max_output_tokens: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._http, self._model = http, model
        self._url = api_base.rstrip("/").removesuffix("/v1") + "/v1/messages"
        self._max_tokens = max_output_tokens or DEFAULT_MAX_TOKENS
        self._headers = {
            "content-type": "application/json",
            "anthropic-version": API_VERSION,
            **(headers or {}),
        }
        if api_key:
            self._headers["x-api-key"] = api_key

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        body = self.encode(request)
        answer = await post_for_json(
            self._http, self._url, body, self._headers, timeouts, classify_error
        )
        return decode_response(answer, self._model)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        body = self.encode(request)
        body["stream"] = True
        response = await post_for_stream(
            self._http, self._url, body, self._headers, timeouts, classify_error
        )
        try:
            decoder = StreamDecoder()
            async for event, data in iter_sse(response):
                for delta in decode_event(event, data, decoder):
                    yield delta
                if decoder.done:
                    return
            raise UpstreamConnectionError("stream ended without message_stop")
        finally:
            response.release()

    async def aclose(self) -> None:
        return None

    def encode(self, request: ChatRequest) -> JSON:
        return encode_request(request, self._model, self._max_tokens)
