"""Parse throughput of server-sent-event readers over an aiohttp response body.

One OpenAI-style stream (a role chunk, N content chunks, a usage chunk, `[DONE]`)
is fed into a real `aiohttp.StreamReader` in pieces the size of TCP reads, and
each reader turns it back into `(event, data)` pairs:

  tierwise          `providers.base.iter_sse`: splits whatever arrived on blank lines
  httpx-sse         its `SSELineDecoder` + `SSEDecoder` (transport-neutral, but a
                    private module of a package whose public API needs httpx)
  line by line      aiohttp's own line iterator + the per-line field parser that
                    aiohttp-sse-client2 uses (that package cannot read a response
                    it did not open: it sends its own request and reconnects)
  sseclient-py      `SSEClient(chunks).events()`: synchronous, over a list of chunks

    .venv/bin/python bench/sse_parse.py [--events 200] [--read 1400] [--rounds 5]

httpx-sse and sseclient-py are not dependencies of tierwise: install them into a
scratch directory and pass it with --libs (`pip install --target DIR httpx-sse
sseclient-py`); readers whose package is missing are skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, cast

import aiohttp
import orjson
from aiohttp.base_protocol import BaseProtocol

from tierwise.providers.base import iter_sse

Reader = Callable[[aiohttp.StreamReader], AsyncIterator[tuple[str, str]]]


def stream_body(events: int) -> bytes:
    def chunk(delta: dict[str, Any], **rest: Any) -> bytes:
        body = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0}
        body |= {"model": "gpt-4o-mini", "choices": [{"index": 0, "delta": delta, **rest}]}
        return b"data: " + orjson.dumps(body) + b"\n\n"

    parts = [chunk({"role": "assistant", "content": ""}, finish_reason=None)]
    parts += [chunk({"content": f" word{i}"}, finish_reason=None) for i in range(events)]
    parts.append(chunk({}, finish_reason="stop"))
    usage = {"prompt_tokens": 9, "completion_tokens": events, "total_tokens": events + 9}
    parts.append(b"data: " + orjson.dumps({"choices": [], "usage": usage}) + b"\n\n")
    return b"".join(parts) + b"data: [DONE]\n\n"


def pieces(body: bytes, size: int) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


def feed(chunks: list[bytes]) -> aiohttp.StreamReader:
    loop = asyncio.get_running_loop()
    reader = aiohttp.StreamReader(BaseProtocol(loop), 2**20, loop=loop)
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return reader


class _Response:
    """What `iter_sse` reads from an aiohttp response: `.content`."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self.content = content


async def tierwise(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    async for pair in iter_sse(cast(aiohttp.ClientResponse, _Response(content))):
        yield pair


def httpx_sse_reader() -> Reader | None:
    try:
        decoders = importlib.import_module("httpx_sse._decoders")
    except ImportError:
        return None

    async def read(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
        lines, events = decoders.SSELineDecoder(), decoders.SSEDecoder()
        async for chunk in content.iter_any():
            for line in lines.decode(chunk.decode()):
                sse = events.decode(line)
                if sse is not None:
                    yield sse.event, sse.data

    return read


async def line_by_line(content: aiohttp.StreamReader) -> AsyncIterator[tuple[str, str]]:
    event, data = "", list[str]()
    async for raw in content:
        line = raw.decode().rstrip("\n").rstrip("\r")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "", []
        elif line[0] != ":":
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value.lstrip(" "))
            elif name == "event":
                event = value.lstrip(" ")


def sseclient_count(chunks: list[bytes]) -> int | None:
    try:
        sseclient = importlib.import_module("sseclient")
    except ImportError:
        return None
    return sum(1 for _ in sseclient.SSEClient(iter(chunks)).events())


async def time_async(reader: Reader, chunks: list[bytes], repeat: int) -> tuple[float, int]:
    started, count = time.perf_counter(), 0
    for _ in range(repeat):
        async for _pair in reader(feed(chunks)):
            count += 1
    return time.perf_counter() - started, count


def run(main: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(main)


async def measure(args: argparse.Namespace) -> list[tuple[str, float]]:
    chunks = pieces(stream_body(args.events), args.read)
    readers: dict[str, Reader | None] = {
        "tierwise": tierwise,
        "httpx-sse": httpx_sse_reader(),
        "line by line": line_by_line,
    }
    best: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, reader in readers.items():
            if reader is None:
                continue
            seconds, count = await time_async(reader, chunks, args.repeat)
            best[name] = max(best.get(name, 0.0), count / seconds)
        started = time.perf_counter()
        counted = [sseclient_count(chunks) for _ in range(args.repeat)]
        if counted[0] is not None:
            rate = sum(c or 0 for c in counted) / (time.perf_counter() - started)
            best["sseclient-py (sync)"] = max(best.get("sseclient-py (sync)", 0.0), rate)
    return sorted(best.items(), key=lambda item: -item[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200, help="content chunks per stream")
    parser.add_argument("--read", type=int, default=1400, help="bytes per TCP read")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=200, help="streams per round")
    parser.add_argument("--libs", help="a directory with httpx-sse and sseclient-py")
    args = parser.parse_args()
    if args.libs:
        sys.path.append(args.libs)
    rows = run(measure(args))
    print(f"{args.events + 3} events per stream, {args.read}-byte reads, best of {args.rounds}")
    print("| reader | events/s | vs tierwise |")
    print("|---|---:|---:|")
    base = dict(rows)["tierwise"]
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / base:.2f}x |")


if __name__ == "__main__":
    main()
