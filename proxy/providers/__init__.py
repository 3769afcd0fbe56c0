"""Provider adapters, one module each, and the table that picks one by ``type``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxy.providers.anthropic import AnthropicAdapter
from proxy.providers.azure import AzureOpenAIAdapter
from proxy.providers.base import ProviderAdapter
from proxy.providers.mock import MockAdapter
from proxy.providers.openai import OpenAIAdapter, OpenAICompatibleAdapter
from proxy.providers.openrouter import OpenRouterAdapter
from proxy.upstream.redaction import NO_SECRETS, Redactor

if TYPE_CHECKING:
    import aiohttp

    from proxy.config import ApiConfig, ProviderConfig

ADAPTERS: dict[str, type[ProviderAdapter]] = {
    adapter.type_name: adapter
    for adapter in (OpenAIAdapter, AnthropicAdapter, OpenRouterAdapter, OpenAICompatibleAdapter,
                    AzureOpenAIAdapter, MockAdapter)
}
"""Every provider type, by the name a config's ``type`` uses; each adapter states its type's facts."""


def build_adapter(
    config: "ProviderConfig", api: "ApiConfig", session: "aiohttp.ClientSession | None",
    redactor: Redactor = NO_SECRETS,
) -> ProviderAdapter:
    """An adapter for one configured provider; ``redactor`` knows every configured upstream secret."""
    return ADAPTERS[config.type](config, api, session, redactor)
