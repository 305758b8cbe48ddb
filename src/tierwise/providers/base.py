"""The provider interface and the HTTP plumbing its adapters share."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import aiohttp
import orjson
from yarl import URL

from tierwise.embedding_types import EmbeddingRequest, EmbeddingResponse
from tierwise.errors import (
    FirstTokenTimeoutError,
    InvalidResponseError,
    ProviderError,
    UpstreamConnectionError,
    UpstreamTimeoutError,
)
from tierwise.types import ChatRequest, ChatResponse, StreamDelta


@dataclass(frozen=True, slots=True)
class Timeouts:
    connect_s: float = 5.0
    total_s: float = 120.0
    first_token_s: float | None = None

    def within(self, remaining_s: float) -> Timeouts:
        """These timeouts, shortened to fit a request's remaining deadline."""
        total = max(0.001, min(self.total_s, remaining_s))
        first = None if self.first_token_s is None else min(self.first_token_s, total)
        return Timeouts(min(self.connect_s, total), total, first)

    def committing_within(self, limit_s: float | None) -> Timeouts:
        """These timeouts with the time to commit (a stream's first token, a
        whole answer otherwise) at most `limit_s`."""
        if limit_s is None:
            return self
        first = limit_s if self.first_token_s is None else min(self.first_token_s, limit_s)
        return Timeouts(self.connect_s, self.total_s, min(first, self.total_s))


class Provider(Protocol):
    """One deployment's wire format: a completed answer, or a stream of deltas."""

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse: ...

    def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class Startable(Protocol):
    """A provider with something to start before its first call (a local model
    server); the gateway starts it when it warms up."""

    async def start(self) -> object: ...


@runtime_checkable
class EmbeddingProvider(Protocol):
    """A deployment that embeds: one vector per input, in input order."""

    async def embed(self, request: EmbeddingRequest, timeouts: Timeouts) -> EmbeddingResponse: ...


class HttpClient:
    """A pooled keep-alive aiohttp session, created on first use in the running loop."""

    def __init__(self, *, limit_per_host: int = 256) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._limit = limit_per_host

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._limit, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=_dumps_str, auto_decompress=True
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def post(
        self, url: str | URL, body: dict[str, Any], headers: Mapping[str, str], timeouts: Timeouts
    ) -> aiohttp.ClientResponse:
        """POST JSON; time to response headers is bounded by `first_token_s`."""
        timeout = aiohttp.ClientTimeout(total=timeouts.total_s, sock_connect=timeouts.connect_s)
        started = time.monotonic()
        try:
            call = self.session().post(
                url, data=orjson.dumps(body), headers=headers, timeout=timeout
            )
            if timeouts.first_token_s is None:
                return await call
            async with asyncio.timeout(timeouts.first_token_s):
                return await call
        except TimeoutError:
            elapsed = time.monotonic() - started
            if timeouts.first_token_s is not None and elapsed < timeouts.total_s - 0.001:
                raise FirstTokenTimeoutError(
                    f"no response within {timeouts.first_token_s}s"
                ) from None
            raise UpstreamTimeoutError(f"timed out after {elapsed:.2f}s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamConnectionError(f"connection failed: {type(exc).__name__}") from None


Classify = Callable[[int, Any, float | None], Exception]
"""A wire format's error mapping: (status, decoded body, Retry-After) to the taxonomy."""


async def post_for_json(
    http: HttpClient,
    url: str | URL,
    body: dict[str, Any],
    headers: Mapping[str, str],
    timeouts: Timeouts,
    classify: Classify,
) -> Any:
    """POST `body` and return the decoded answer; an error status raises `classify`'s
    error for it."""
    response = await http.post(url, body, headers, timeouts)
    answer = await read_json(response)
    if response.status >= 400:
        raise classify(response.status, answer, parse_retry_after(response.headers))
    return answer


async def post_for_stream(
    http: HttpClient,
    url: str | URL,
    body: dict[str, Any],
    headers: Mapping[str, str],
    timeouts: Timeouts,
    classify: Classify,
) -> aiohttp.ClientResponse:
    """POST `body` and return the open streaming response (the caller releases it);
    an error status reads the body, releases the response and raises `classify`'s
    error for it."""
    response = await http.post(url, body, headers, timeouts)
    if response.status >= 400:
        try:
            error = await read_json(response)
        finally:
            response.release()
        raise classify(response.status, error, parse_retry_after(response.headers))
    return response


def _dumps_str(value: Any) -> str:
    return orjson.dumps(value).decode()


async def read_json(response: aiohttp.ClientResponse) -> Any:
    """The body as JSON; transport failures and non-JSON become provider errors."""
    try:
        raw = await response.read()
    except TimeoutError:
        raise UpstreamTimeoutError("timed out reading the response body") from None
    except aiohttp.ClientError as exc:
        raise UpstreamConnectionError(f"body cut off: {type(exc).__name__}") from None
    finally:
        response.release()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidResponseError(
            f"status {response.status}: body is not JSON", status=response.status
        ) from None


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or HTTP date)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - (time.time() if now is None else now))


async def iter_sse(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of a server-sent-event stream; a cut stream raises.
    Reads whatever has arrived at once and splits it, rather than line by line."""
    pending = b""
    try:
        async for chunk in response.content.iter_any():
            pending += chunk
            if b"\r" in chunk:
                pending = pending.replace(b"\r\n", b"\n")
            *blocks, pending = pending.split(b"\n\n")
            for block in blocks:
                parsed = parse_sse_block(block)
                if parsed is not None:
                    yield parsed
        parsed = parse_sse_block(pending)
        if parsed is not None:
            yield parsed
    except TimeoutError:
        raise UpstreamTimeoutError("stream timed out") from None
    except aiohttp.ClientError as exc:
        raise UpstreamConnectionError(f"stream cut off: {type(exc).__name__}") from None


def parse_sse_block(block: bytes) -> tuple[str, str] | None:
    """One event's (name, data), or None for a comment-only or empty block."""
    event, data = "", []
    for line in block.decode("utf-8").split("\n"):
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line.startswith("event:"):
            event = line[6:].strip()
    return (event, "\n".join(data)) if data else None


def loads_event(data: str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        raise InvalidResponseError("stream event is not JSON") from None


def error_for_status(
    status: int, message: str, kinds: Mapping[int, type[ProviderError]], retry_after: float | None
) -> ProviderError:
    """The taxonomy error for an HTTP status (>= 500 maps to upstream 5xx)."""
    from tierwise.errors import BadRequestError, UpstreamServerError

    cls = kinds.get(status) or (UpstreamServerError if status >= 500 else BadRequestError)
    return cls(f"status {status}: {message}", status=status, retry_after_s=retry_after)
