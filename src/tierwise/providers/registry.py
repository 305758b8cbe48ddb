"""Build a provider for a configured deployment; plugins register more kinds."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from tierwise.config import DeploymentConfig, ProviderKind, reveal
from tierwise.errors import ConfigError
from tierwise.providers.base import HttpClient, Provider

ProviderFactory = Callable[[DeploymentConfig, HttpClient, Mapping[str, str] | None], Provider]
OPENAI_BASE = "https://api.openai.com/v1"
ANTHROPIC_BASE = "https://api.anthropic.com"


def _api_key(config: DeploymentConfig, environ: Mapping[str, str] | None) -> str | None:
    if config.api_key is None:
        return None
    try:
        return reveal(config.api_key, environ)
    except ConfigError as exc:
        raise ConfigError(exc.problem, key=f"deployments.{config.name}.api_key") from None


def _openai(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> Provider:
    from tierwise.providers.openai_compat import OpenAICompatProvider

    return OpenAICompatProvider(
        http,
        api_base=config.api_base or OPENAI_BASE,
        model=config.model,
        api_key=_api_key(config, environ),
        headers=dict(config.headers),
    )


def _anthropic(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> Provider:
    from tierwise.providers.anthropic import AnthropicProvider

    return AnthropicProvider(
        http,
        model=config.model,
        api_key=_api_key(config, environ),
        api_base=config.api_base or ANTHROPIC_BASE,
        max_output_tokens=config.resolved_max_output(),
        headers=dict(config.headers),
    )


def _llamacpp(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> Provider:
    if config.api_base:
        return _openai(config, http, environ)
    from tierwise.providers.local import LlamaCppProvider

    return LlamaCppProvider(http, config)


def _azure(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> Provider:
    from tierwise.providers.azure import AzureOpenAIProvider

    return AzureOpenAIProvider(
        http,
        api_base=config.api_base or "",
        model=config.model,
        deployment=config.azure_deployment,
        api_version=config.api_version,
        api_key=_api_key(config, environ),
        headers=dict(config.headers),
    )


def _gemini(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> Provider:
    from tierwise.providers.gemini import GEMINI_BASE, GeminiProvider

    return GeminiProvider(
        http,
        model=config.model,
        api_key=_api_key(config, environ),
        api_base=config.api_base or GEMINI_BASE,
        headers=dict(config.headers),
    )


def _bedrock(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> Provider:
    from tierwise.providers.bedrock import bedrock_provider

    return bedrock_provider(config, http, environ)


def _minilm(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None
) -> Provider:
    if config.kind != "embedding":
        raise ConfigError(
            "the minilm provider serves embeddings: set kind: embedding",
            key=f"deployments.{config.name}.kind",
        )
    from tierwise.providers.minilm_embed import MiniLMEmbedProvider

    return MiniLMEmbedProvider(config.model)


_FACTORIES: dict[str, ProviderFactory] = {
    ProviderKind.OPENAI: _openai,
    ProviderKind.ANTHROPIC: _anthropic,
    ProviderKind.LLAMACPP: _llamacpp,
    "minilm": _minilm,
    ProviderKind.AZURE: _azure,
    ProviderKind.GEMINI: _gemini,
    ProviderKind.BEDROCK: _bedrock,
}


def register_provider(kind: str, factory: ProviderFactory) -> None:
    _FACTORIES[kind] = factory


def build_provider(
    config: DeploymentConfig, http: HttpClient, environ: Mapping[str, str] | None = None
) -> Provider:
    factory = _FACTORIES.get(config.provider)
    if factory is None:
        raise ConfigError(
            f"unknown provider {config.provider!r}", key=f"deployments.{config.name}.provider"
        )
    return factory(config, http, environ)
