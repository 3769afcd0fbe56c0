"""OpenRouter: OpenAI's protocol, plus the optional headers that name the calling app.

``http_referer`` and ``x_title`` from the provider's config become the
``HTTP-Referer`` and ``X-Title`` headers. OpenRouter's ``: OPENROUTER
PROCESSING`` keep-alive comments are dropped by the SSE parser, and an error
event inside a 200 stream is treated as an upstream failure, as for every
OpenAI-style upstream.
"""

from __future__ import annotations

from proxy.providers.base import UpstreamCall
from proxy.providers.openai import OpenAIAdapter


class OpenRouterAdapter(OpenAIAdapter):
    """Adapter for OpenRouter's OpenAI-compatible API."""

    type_name = "openrouter"
    default_base_url = "https://openrouter.ai/api/v1"
    output_limit_field = "max_tokens"

    def request_headers(self, call: UpstreamCall) -> dict[str, str]:
        """OpenAI's headers plus ``HTTP-Referer`` and ``X-Title`` when configured."""
        headers = super().request_headers(call)
        if self.config.http_referer:
            headers["HTTP-Referer"] = self.config.http_referer
        if self.config.x_title:
            headers["X-Title"] = self.config.x_title
        return headers
