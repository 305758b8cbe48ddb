"""`POST /v1/completions`: OpenAI's legacy Completions API answered through chat. The
handler in `app` decodes, authorizes and answers as the chat handler does; this module
writes the answer, plain, or streamed as `text_completion` chunks by `stream_openai`."""

from __future__ import annotations

import time
from typing import Any

from tierwise.gateway import ChatResult
from tierwise.server.streams import OpenAIChunks
from tierwise.types import StreamDelta
from tierwise.wire.openai import completions as wire


def completion_id(rid: str) -> str:
    return CHUNKS.prefix + rid


def encode(result: ChatResult, rid: str, model: str) -> wire.OpenAICompletion:
    return wire.encode_response(result.response, completion_id(rid), model, int(time.time()))


def _chunk(delta: StreamDelta, cid: str, model: str, created: int) -> Any | None:
    if delta.text or delta.finish_reason:
        return wire.encode_chunk(delta, cid, model, created)
    return None


CHUNKS = OpenAIChunks("cmpl-", _chunk, wire.encode_usage_chunk)
