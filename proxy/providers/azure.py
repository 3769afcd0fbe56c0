"""Azure OpenAI: OpenAI's bodies at deployment URLs, with an ``api-key`` header.

``base_url`` is the resource endpoint (``https://NAME.openai.azure.com``); a
model's ``upstream_model`` is the deployment name; ``api_version`` is required.
"""

from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import quote

from proxy.providers.base import UpstreamCall
from proxy.providers.openai import OpenAIAdapter


class AzureOpenAIAdapter(OpenAIAdapter):
    """Adapter for Azure OpenAI deployments."""

    type_name = "azure"
    default_base_url = None
    output_limit_field = "max_tokens"

    @classmethod
    def config_problem(cls, body: Mapping[str, Any]) -> str | None:
        """Azure needs the ``api-version`` of its REST API."""
        if not body.get("api_version"):
            return "api_version: an azure provider needs an api_version (e.g. 2024-10-21)"
        return None

    def key_header(self, key: str) -> dict[str, str]:
        """The key goes in ``api-key``, not ``Authorization``."""
        return {"api-key": key}

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
