"""Azure OpenAI: the OpenAI wire format at a deployment URL, with `api-version` in
the query and the key in the `api-key` header."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import quote

from tierwise.errors import ContentPolicyError
from tierwise.providers.base import HttpClient, Timeouts
from tierwise.providers.openai_compat import OpenAICompatProvider
from tierwise.types import ChatRequest, ChatResponse, Choice, StreamDelta

DEFAULT_API_VERSION = "2024-10-21"
"""The newest generally available data-plane version of the inference API."""
FILTERED = "content_filter"


class AzureOpenAIProvider(OpenAICompatProvider):
    """Speaks `/openai/deployments/{deployment}/chat/completions`."""

    def __init__(
        self,
        http: HttpClient,
        *,
        api_base: str,
        model: str,
        deployment: str | None = None,
        api_version: str | None = None,
        api_key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(http, api_base=api_base, model=model, headers=headers)
        self._url = deployment_url(api_base, deployment or model, api_version)
        if api_key:
            self._headers["api-key"] = api_key

    async def complete(self, request: ChatRequest, timeouts: Timeouts) -> ChatResponse:
        response = await super().complete(request, timeouts)
        if all(_filtered_blank(c) for c in response.choices):
            raise ContentPolicyError("the answer was withheld by the Azure content filter")
        return response

    async def stream(self, request: ChatRequest, timeouts: Timeouts) -> AsyncIterator[StreamDelta]:
        produced = False
        async for delta in super().stream(request, timeouts):
            produced = produced or bool(delta.text or delta.tool_calls)
            if delta.finish_reason == FILTERED and not produced:
                raise ContentPolicyError("the answer was withheld by the Azure content filter")
            yield delta


def deployment_url(api_base: str, deployment: str, api_version: str | None) -> str:
    """`{api_base}/openai/deployments/{deployment}/chat/completions?api-version=...`."""
    base = api_base.rstrip("/").removesuffix("/openai")
    version = quote(api_version or DEFAULT_API_VERSION, safe="")
    return f"{base}/openai/deployments/{quote(deployment, safe='')}/chat/completions" + (
        f"?api-version={version}"
    )


def _filtered_blank(choice: Choice) -> bool:
    return choice.finish_reason == FILTERED and not (
        choice.message.content or choice.message.tool_calls
    )
