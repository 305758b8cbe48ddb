"""The executor's call for an embeddings request, and what `Gateway.embed` returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tierwise.deployments import Deployment
from tierwise.embedding_types import EmbeddingRequest, EmbeddingResponse
from tierwise.errors import BadRequestError
from tierwise.executor import Answer
from tierwise.providers.base import EmbeddingProvider, Timeouts
from tierwise.record import RequestRecord
from tierwise.types import ChatRequest


@dataclass(slots=True)
class EmbeddingResult:
    response: EmbeddingResponse
    record: RequestRecord


def embedding_call(
    request: EmbeddingRequest,
) -> Callable[[Deployment, ChatRequest, Timeouts], Awaitable[Answer[EmbeddingResponse]]]:
    """Embed `request` on a deployment (the chat request the executor passes is only
    its view of it); the answer carries usage for the bill and is not judged."""

    async def call(
        deployment: Deployment, _: ChatRequest, timeouts: Timeouts
    ) -> Answer[EmbeddingResponse]:
        provider = deployment.provider
        if not isinstance(provider, EmbeddingProvider):
            raise BadRequestError(f"deployment {deployment.name!r} cannot embed", status=400)
        response = await provider.embed(request, timeouts)
        return Answer(response, response.as_answer(), judged=False)

    return call
