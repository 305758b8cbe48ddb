"""The Bedrock provider (the Converse API): requests signed with SigV4 by
botocore, streams unframed by botocore's event-stream parser, the format in
`tierwise.wire.bedrock`. Needs the `bedrock` extra."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import aiohttp
import orjson
from yarl import URL

from tierwise.config import DeploymentConfig, reveal
from tierwise.errors import (
    ConfigError,
    InvalidResponseError,
    ProviderError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from tierwise.extras import require
from tierwise.providers.base import HttpClient, Timeouts, parse_retry_after, read_json
from tierwise.types import JSON, ChatRequest, ChatResponse, StreamDelta
from tierwise.wire.bedrock.events import StreamDecoder
from tierwise.wire.bedrock.outbound import classify_error, decode_response, encode_request

if TYPE_CHECKING:
    from botocore.credentials import Credentials

SERVICE = "bedrock"


class BedrockProvider:
    """Speaks `/model/{model}/converse` and `/model/{model}/converse-stream`."""

    def __init__(
        self,
        http: HttpClient,
        *,
        model: str,
        region: str,
        credentials: Credentials,
        api_base: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._http, self._model, self._region = http, model, region
        self._credentials = credentials
        base = (api_base or f"https://bedrock-runtime.{region}.amazonaws.com").rstrip("/")
        self._url = f"{base}/model/{quote(model, safe='')}/converse"
        self._headers = {"content-type": "application/json", **(headers or {})}

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        response = await self._post(self._url, self.encode(request), timeouts)
        body = await read_json(response)
        if response.status >= 400:
            raise _error(response, body)
        return decode_response(body, self._model)

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        response = await self._post(self._url + "-stream", self.encode(request), timeouts)
        try:
            if response.status >= 400:
                raise _error(response, await read_json(response))
            decoder = StreamDecoder()
            async for headers, payload in _events(response):
                for delta in decoder.feed(headers, payload):
                    yield delta
            if not decoder.stopped:
                raise UpstreamConnectionError("stream ended without messageStop")
        finally:
            response.release()

    async def aclose(self) -> None:
        return None

    def encode(self, request: ChatRequest) -> JSON:
        return encode_request(request)

    async def _post(self, url: str, body: JSON, timeouts: Timeouts) -> aiohttp.ClientResponse:
        headers = self.sign(url, orjson.dumps(body))
        return await self._http.post(URL(url, encoded=True), body, headers, timeouts)

    def sign(self, url: str, data: bytes) -> dict[str, str]:
        """The headers to send: ours plus SigV4's `Authorization`, `X-Amz-Date` and,
        with a session token, `X-Amz-Security-Token`."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        signed = AWSRequest(method="POST", url=url, data=data, headers=dict(self._headers))
        SigV4Auth(self._credentials, SERVICE, self._region).add_auth(signed)
        return {str(k): str(v) for k, v in signed.headers.items()}


def _error(response: aiohttp.ClientResponse, body: Any) -> ProviderError:
    kind = response.headers.get("x-amzn-errortype")
    return classify_error(response.status, kind, body, parse_retry_after(response.headers))


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[dict[str, Any], bytes]]:
    """(headers, payload) of each event-stream message, as bytes arrive; a cut or
    corrupt stream raises."""
    from botocore.eventstream import EventStreamBuffer, ParserError

    buffer = EventStreamBuffer()
    try:
        async for chunk in response.content.iter_any():
            buffer.add_data(chunk)
            for message in buffer:
                unframed = message.to_response_dict()
                yield unframed["headers"], unframed["body"]
    except ParserError as exc:
        raise InvalidResponseError(f"malformed event stream: {type(exc).__name__}") from None
    except TimeoutError:
        raise UpstreamTimeoutError("stream timed out") from None
    except aiohttp.ClientError as exc:
        raise UpstreamConnectionError(f"stream cut off: {type(exc).__name__}") from None


def bedrock_provider(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> BedrockProvider:
    """The provider for a `bedrock` deployment, its credentials revealed."""
    require("the bedrock provider", "bedrock", ("botocore",))
    from botocore.credentials import Credentials

    def secret(field: str) -> str | None:
        value = getattr(config, field)
        if value is None:
            return None
        try:
            return reveal(value, environ)
        except ConfigError as exc:
            raise ConfigError(exc.problem, key=f"deployments.{config.name}.{field}") from None

    access, key = secret("aws_access_key_id"), secret("aws_secret_access_key")
    if not (access and key and config.aws_region):
        raise ConfigError("needs aws_region and both AWS keys", key=f"deployments.{config.name}")
    credentials = Credentials(access, key, secret("aws_session_token"))
    return BedrockProvider(
        http,
        model=config.model,
        region=config.aws_region,
        credentials=credentials,
        api_base=config.api_base,
        headers=dict(config.headers),
    )
