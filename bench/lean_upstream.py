"""A minimal OpenAI-compatible upstream on raw asyncio, for load tests.

It answers every `POST .../chat/completions` with a canned completion (or, when
the body asks for `"stream": true`, a canned SSE stream), over HTTP/1.1
keep-alive, spending a few tens of microseconds of CPU per request so that the
gateway under test is what the measurement sees.

    python bench/lean_upstream.py --port 18099
"""

from __future__ import annotations

import argparse
import asyncio
import json

BODY = json.dumps(
    {
        "id": "chatcmpl-lean",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "lean-model",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {
                    "role": "assistant",
                    "content": "Our hours are 9 to 5, Monday to Friday.",
                },
            }
        ],
        "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26},
    }
).encode()
WORDS = ["Our", " hours", " are", " 9", " to", " 5,", " Monday", " to", " Friday."]


def _chunk(delta: dict[str, object], finish: str | None = None) -> bytes:
    payload = {
        "id": "chatcmpl-lean",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "lean-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def _stream_body() -> bytes:
    parts = [_chunk({"role": "assistant", "content": ""})]
    parts += [_chunk({"content": w}) for w in WORDS]
    parts.append(_chunk({}, "stop"))
    usage = {
        "id": "chatcmpl-lean",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "lean-model",
        "choices": [],
        "usage": {"prompt_tokens": 14, "completion_tokens": 12, "total_tokens": 26},
    }
    parts.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    parts.append(b"data: [DONE]\n\n")
    return b"".join(parts)


STREAM = _stream_body()
PLAIN_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
    + str(len(BODY)).encode()
    + b"\r\n\r\n"
)
SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: "
    + str(len(STREAM)).encode()
    + b"\r\n\r\n"
)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


class Lean(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            end = head_end + 4 + _content_length(self.buffer[:head_end])
            if len(self.buffer) < end:
                return
            body, self.buffer = self.buffer[head_end + 4 : end], self.buffer[end:]
            streaming = b'"stream": true' in body or b'"stream":true' in body
            self.transport.write(SSE_HEAD + STREAM if streaming else PLAIN_HEAD + BODY)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Lean, host, port, reuse_address=True, backlog=1024)
    print(f"listening on http://{host}:{port}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=18099)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
