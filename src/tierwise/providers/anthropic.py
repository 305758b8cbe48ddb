"""The Anthropic provider: HTTP and streaming here, the format in
`tierwise.wire.anthropic.outbound`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from tierwise.errors import UpstreamConnectionError
from tierwise.providers.base import HttpClient, Timeouts, iter_sse, parse_retry_after, read_json
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
        response = await self._http.post(self._url, self.encode(request), self._headers, timeouts)
        body = await read_json(response)
        if response.status >= 400:
            raise classify_error(response.status, body, parse_retry_after(response.headers))
        return decode_response(body, self._model)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        body = self.encode(request)
        body["stream"] = True
        response = await self._http.post(self._url, body, self._headers, timeouts)
        try:
            if response.status >= 400:
                error = await read_json(response)
                raise classify_error(response.status, error, parse_retry_after(response.headers))
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
