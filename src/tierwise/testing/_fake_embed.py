"""The fake upstream's `POST /v1/embeddings` (OpenAI's format, written here on its own):
deterministic unit vectors from a hash of each input, `dimensions` long (8 unless
asked), as `float` lists or `base64` little-endian float32."""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from typing import Any

from tierwise.testing._fake_wire import OPENAI, Call, split_directives

DEFAULT_DIMENSIONS = 8


def parse_embedding_call(body: Any) -> Call:
    """Validate an embeddings body; directives (`[[fault=500]]`) come from the first
    text input. Raise ValueError when malformed."""
    if not isinstance(body, dict):
        raise ValueError("request body must be a JSON object")
    model, raw = body.get("model"), body.get("input")
    if not isinstance(model, str) or not model:
        raise ValueError("'model' is required")
    inputs = _inputs(raw)
    dims = body.get("dimensions", DEFAULT_DIMENSIONS)
    if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= 4096:
        raise ValueError("'dimensions' must be an integer from 1 to 4096")
    if body.get("encoding_format", "float") not in ("float", "base64"):
        raise ValueError("'encoding_format' must be float or base64")
    first = next((i for i in inputs if isinstance(i, str)), "")
    _, directives = split_directives(first)
    tokens = sum(len(i) if isinstance(i, list) else len(i) // 4 + 1 for i in inputs)
    return Call(OPENAI, model, False, body, "", tokens, directives, False, first)


def _inputs(raw: Any) -> list[Any]:
    if isinstance(raw, str):
        return [raw]
    if not isinstance(raw, list) or not raw:
        raise ValueError("'input' must be a string or a non-empty array")
    if all(isinstance(i, int) for i in raw):
        return [raw]
    if all(isinstance(i, str) for i in raw):
        return raw
    if all(isinstance(i, list) and i and all(isinstance(t, int) for t in i) for i in raw):
        return raw
    raise ValueError("'input' must be text, texts, or arrays of token ids")


def vector(text: str, dims: int) -> list[float]:
    """A unit vector that depends only on `text` and `dims`."""
    values: list[float] = []
    counter = 0
    while len(values) < dims:
        digest = hashlib.sha256(f"{counter}:{text}".encode()).digest()
        values += [b / 255.0 - 0.5 for b in digest]
        counter += 1
    values = values[:dims]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return [v / norm for v in values]


def embedding_list(call: Call, ident: str) -> dict[str, Any]:
    """The `list` of embeddings answering `call`; `[[usage=none]]` leaves usage out."""
    body = call.body
    raw = body["input"]
    inputs = [raw] if isinstance(raw, str) or isinstance(raw[0], int) else raw
    dims = body.get("dimensions", DEFAULT_DIMENSIONS)
    as_base64 = body.get("encoding_format") == "base64"
    data = []
    for index, item in enumerate(inputs):
        values = vector(item if isinstance(item, str) else repr(item), dims)
        encoded: Any = values
        if as_base64:
            encoded = base64.b64encode(struct.pack(f"<{dims}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": encoded})
    out: dict[str, Any] = {"object": "list", "data": data, "model": call.model, "id": ident}
    if call.option("usage") != "none":
        out["usage"] = {"prompt_tokens": call.prompt_tokens, "total_tokens": call.prompt_tokens}
    return out
