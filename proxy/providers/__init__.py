"""Provider adapters, one module each, and the table that picks one by ``type``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.azure import AzureOpenAIAdapter
from proxy.providers.base import ProviderAdapter
from proxy.providers.mock import MockAdapter
from proxy.providers.openai import OpenAIAdapter
from proxy.providers.openrouter import OpenRouterAdapter
from proxy.redaction import NO_SECRETS, Redactor

if TYPE_CHECKING:
    import aiohttp

    from proxy.config import ApiConfig, ProviderConfig

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    "openai": OpenAIAdapter,
    "openai_compatible": OpenAIAdapter,
    "openrouter": OpenRouterAdapter,
    "azure": AzureOpenAIAdapter,
    "mock": MockAdapter,
    "anthropic": AnthropicAdapter,
}


def build_adapter(
    config: "ProviderConfig", api: "ApiConfig", session: "aiohttp.ClientSession | None",
    redactor: Redactor = NO_SECRETS,
) -> ProviderAdapter:
    """An adapter for one configured provider; ``redactor`` knows every configured upstream secret."""
    return ADAPTERS[config.type](config, api, session, redactor)
