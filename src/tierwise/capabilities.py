"""What a deployment accepts beyond plain text, and what a request needs.

Capabilities are `vision` (image parts), `audio` (audio parts), `tools` (function
tools) and `json_schema` (`response_format` of type `json_schema`); the context
window is checked apart. A deployment's capabilities come from its config, else
from the price table when it knows the model, else from a conservative default
by provider (see `default_capabilities`).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum

from tierwise.pricing import lookup_model
from tierwise.types import ChatRequest


class Capability(StrEnum):
    VISION = "vision"
    AUDIO = "audio"
    TOOLS = "tools"
    JSON_SCHEMA = "json_schema"


CAPABILITIES = tuple(c.value for c in Capability)

PROVIDER_DEFAULTS: dict[str, frozenset[str]] = {
    "openai": frozenset({Capability.TOOLS, Capability.JSON_SCHEMA}),
    "anthropic": frozenset({Capability.VISION, Capability.TOOLS, Capability.JSON_SCHEMA}),
    "llamacpp": frozenset({Capability.JSON_SCHEMA}),
}
"""For a model the price table does not know: any OpenAI-compatible server is
assumed to take tools and JSON schemas but not images or audio; every Claude
model takes images; llama.cpp constrains output to a schema with a grammar for
any model, but tool calls need a chat template made for them."""

_WORDS = {
    Capability.VISION: "images",
    Capability.AUDIO: "audio",
    Capability.TOOLS: "tools",
    Capability.JSON_SCHEMA: "JSON schemas",
}
_PARAMS = {
    Capability.VISION: "messages",
    Capability.AUDIO: "messages",
    Capability.TOOLS: "tools",
    Capability.JSON_SCHEMA: "response_format",
}
_PART_NEEDS = {
    "image_url": Capability.VISION,
    "image": Capability.VISION,
    "input_audio": Capability.AUDIO,
    "audio": Capability.AUDIO,
}


def default_capabilities(provider: str, model: str) -> frozenset[str]:
    """The price table's capabilities for `model`, else the provider's default."""
    info = lookup_model(model)
    if info is not None and info.capabilities is not None:
        return info.capabilities
    return PROVIDER_DEFAULTS.get(provider, PROVIDER_DEFAULTS["openai"])


def request_needs(request: ChatRequest) -> frozenset[str]:
    """What serving `request` takes: image or audio parts, tools, a JSON schema."""
    needs: set[str] = set()
    for message in request.messages:
        if isinstance(message.content, list):
            for part in message.content:
                need = _PART_NEEDS.get(str(part.get("type")))
                if need is not None:
                    needs.add(need)
    if request.tools:
        needs.add(Capability.TOOLS)
    fmt = request.response_format
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        needs.add(Capability.JSON_SCHEMA)
    return frozenset(needs)


def ordered(capabilities: Iterable[str]) -> list[str]:
    """Capabilities in their documented order (unknown names last, sorted)."""
    chosen = set(capabilities)
    known = [c for c in CAPABILITIES if c in chosen]
    return known + sorted(chosen - set(CAPABILITIES))


def describe_needs(needs: Iterable[str]) -> str:
    """`images and tools (needs: vision, tools)`."""
    names = ordered(needs)
    words = [_WORDS.get(Capability(n), n) if n in CAPABILITIES else n for n in names]
    return f"{' and '.join(words)} (needs: {', '.join(names)})"


def param_of(needs: Iterable[str]) -> str | None:
    """The request parameter that carries the first need."""
    names = ordered(needs)
    return _PARAMS.get(Capability(names[0])) if names and names[0] in CAPABILITIES else None
