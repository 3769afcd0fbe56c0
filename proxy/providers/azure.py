"""Azure OpenAI: OpenAI's bodies at deployment URLs, with an ``api-key`` header.

``base_url`` is the resource endpoint (``https://NAME.openai.azure.com``); a
model's ``upstream_model`` is the deployment name; ``api_version`` is required.
"""

from __future__ import annotations

from urllib.parse import quote

from proxy.providers.base import UpstreamCall
from proxy.providers.openai import OpenAIAdapter


class AzureOpenAIAdapter(OpenAIAdapter):
    """Adapter for Azure OpenAI deployments."""

    def request_headers(self, call: UpstreamCall) -> dict[str, str]:
        """The key goes in ``api-key``, not ``Authorization``."""
        headers = {"Content-Type": "application/json", "X-Request-Id": call.request_id}
        key = self.key_for(call)
        if key:
            headers["api-key"] = key
        headers.update(self.config.headers)
        return headers

    def _deployment_url(self, call: UpstreamCall, operation: str) -> str:
        deployment = quote(call.model.upstream_model, safe="")
        return (f"{self.config.base_url}/openai/deployments/{deployment}/{operation}"
                f"?api-version={quote(self.config.api_version or '', safe='')}")

    def chat_url(self, call: UpstreamCall) -> str:
        """``{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=...``."""
        return self._deployment_url(call, "chat/completions")

    def embeddings_url(self, call: UpstreamCall) -> str:
        """``{endpoint}/openai/deployments/{deployment}/embeddings?api-version=...``."""
        return self._deployment_url(call, "embeddings")
