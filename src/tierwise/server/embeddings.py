"""`POST /v1/embeddings`: OpenAI's embeddings API over the gateway's embedding
tiers and deployments."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from tierwise.gateway import Gateway
from tierwise.server.admission import admit, caller_of
from tierwise.server.auth import ApiKey, check_model
from tierwise.server.headers import CLIENT_RID, record_headers
from tierwise.wire.openai import embeddings as wire


async def answer(
    request: web.Request, gateway: Gateway, key: ApiKey | None, rid: str, body: Any
) -> web.Response:
    """Validate, authorize (the key's models, the rate limits), embed, encode."""
    embedding, encoding = wire.decode_request(body)
    check_model(key, embedding.model)
    gateway.targets.embedding(embedding.model)
    chat = embedding.as_chat()
    caller = caller_of(key, chat)
    await admit(gateway.state.limiter, caller, chat)
    result = await gateway.embed(
        embedding,
        request_id=rid,
        origin=caller.origin(request[CLIENT_RID]),
    )
    deployment = gateway.deployments.get(result.record.final_deployment or "")
    model = deployment.model if deployment else result.response.model
    payload = wire.encode_response(result.response, model, encoding)
    return web.Response(
        body=orjson.dumps(payload),
        content_type="application/json",
        headers=record_headers(result.record),
    )
