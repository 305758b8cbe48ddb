"""`POST /v1/embeddings` in OpenAI's format, both directions: the typed request and
the answer the gateway sends its clients, and the body it sends an OpenAI-compatible
upstream and the answer it reads back (always `float` upstream; `base64`, little-endian
float32 as OpenAI sends it, is encoded for the client here)."""

from __future__ import annotations

import base64
import sys
from array import array
from typing import Annotated, Any, Literal, NotRequired

from pydantic import Field, ValidationError, with_config
from typing_extensions import TypedDict

from tierwise.embedding_types import EmbeddingRequest, EmbeddingResponse, Vector
from tierwise.errors import InvalidResponseError
from tierwise.types import JSON, Usage
from tierwise.wire.models import STRICT, Integral, Positive, validator
from tierwise.wire.openai.inbound import request_error

MAX_INPUTS = 2048
Token = Annotated[int, Field(ge=0, le=2**31 - 1), Integral]
Tokens = Annotated[list[Token], Field(min_length=1)]
Encoding = Literal["float", "base64"]


@with_config(STRICT)
class OpenAIEmbeddingRequest(TypedDict):
    model: Annotated[str, Field(min_length=1, description="A tier or deployment of embeddings.")]
    input: Annotated[
        str
        | Annotated[list[str], Field(min_length=1, max_length=MAX_INPUTS)]
        | Tokens
        | Annotated[list[Tokens], Field(min_length=1, max_length=MAX_INPUTS)],
        Field(description="A text, texts, a token-id array, or token-id arrays."),
    ]
    encoding_format: NotRequired[Encoding | None]
    dimensions: NotRequired[Positive | None]
    user: NotRequired[str | None]


class OpenAIEmbedding(TypedDict):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str


class OpenAIEmbeddingUsage(TypedDict):
    prompt_tokens: Annotated[int, Field(ge=0)]
    total_tokens: Annotated[int, Field(ge=0)]


class OpenAIEmbeddingList(TypedDict):
    """The answer of `POST /v1/embeddings`."""

    object: Literal["list"]
    data: list[OpenAIEmbedding]
    model: str
    usage: OpenAIEmbeddingUsage


_validate = validator(OpenAIEmbeddingRequest)


def decode_request(body: Any) -> tuple[EmbeddingRequest, Encoding]:
    """(request, encoding_format) from a `/v1/embeddings` body."""
    try:
        valid = _validate(body)
    except ValidationError as exc:
        raise request_error(exc, body) from None
    raw = valid["input"]
    single = isinstance(raw, str) or isinstance(raw[0], int)
    inputs: list[str] | list[list[int]] = [raw] if single else raw
    request = EmbeddingRequest(inputs, valid["model"], valid.get("dimensions"), valid.get("user"))
    return request, valid.get("encoding_format") or "float"


def encode_vector(vector: Vector, encoding: Encoding) -> list[float] | str:
    if encoding == "float":
        return vector
    return base64.b64encode(_little_endian(array("f", vector)).tobytes()).decode("ascii")


def decode_base64(text: str) -> Vector:
    """Little-endian float32, as OpenAI's `base64` encoding sends vectors."""
    floats = array("f")
    floats.frombytes(base64.b64decode(text, validate=True))
    return _little_endian(floats).tolist()


def _little_endian(floats: array[float]) -> array[float]:
    if sys.byteorder == "big":
        floats.byteswap()
    return floats


def encode_response(
    response: EmbeddingResponse, model: str, encoding: Encoding
) -> OpenAIEmbeddingList:
    data: list[OpenAIEmbedding] = [
        {"object": "embedding", "index": i, "embedding": encode_vector(v, encoding)}
        for i, v in enumerate(response.vectors)
    ]
    tokens = response.usage.input_tokens
    usage: OpenAIEmbeddingUsage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return {"object": "list", "data": data, "model": model, "usage": usage}


def encode_upstream(request: EmbeddingRequest, model: str) -> JSON:
    """The body sent to an OpenAI-compatible `/embeddings`."""
    body: JSON = {"model": model, "input": request.inputs, "encoding_format": "float"}
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    return body


def decode_upstream(body: Any, model: str, count: int) -> tuple[list[Vector], Usage | None, str]:
    """(vectors in input order, usage if reported, model) of an upstream's answer to
    `count` inputs; anything else is an invalid response."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list) or len(data) != count:
        raise InvalidResponseError(f"expected {count} embeddings in 'data'")
    vectors: list[Vector | None] = [None] * count
    for position, item in enumerate(data):
        index, vector = _item(item, position)
        if not 0 <= index < count or vectors[index] is not None:
            raise InvalidResponseError(f"embedding index {index} is out of place")
        vectors[index] = vector
    usage = body.get("usage")
    tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
    reported = Usage(tokens) if isinstance(tokens, int) and tokens >= 0 else None
    served = body.get("model")
    model = served if isinstance(served, str) and served else model
    return [v for v in vectors if v is not None], reported, model


def _item(item: Any, position: int) -> tuple[int, Vector]:
    if not isinstance(item, dict):
        raise InvalidResponseError("an embedding is not an object")
    index, vector = item.get("index", position), item.get("embedding")
    if isinstance(vector, str):
        try:
            vector = decode_base64(vector)
        except ValueError:
            raise InvalidResponseError("an embedding is not base64 float32") from None
    ok = isinstance(vector, list) and all(isinstance(x, (int, float)) for x in vector)
    if not isinstance(index, int) or not ok or not vector:
        raise InvalidResponseError("an embedding is not a list of numbers")
    return index, [float(x) for x in vector]
