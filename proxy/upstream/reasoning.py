"""``reasoning_effort`` only where the model takes it, for translated Messages requests.

Claude Code asks for thinking on every turn (``thinking`` and
``output_config.effort``), which the translation sends as Chat Completions'
``reasoning_effort`` (:mod:`proxy.formats.anthropic.inbound_request`).
OpenAI's API (and Azure's) refuses that field for models that do not reason
(GPT-4o, GPT-4.1...) and takes only ``low``, ``medium`` and ``high`` from
Anthropic's effort words. So, per deployment (:func:`fit_reasoning`):

* ``openai`` and ``azure``: kept for the reasoning families (``o1``, ``o3``,
  ``o4-mini``..., ``gpt-5``..., ``codex``), ``xhigh`` and ``max`` sent as
  ``high``; left out for every other model, which then answers without it (as
  it would have anyway);
* other provider types (OpenRouter, compatible servers, the mock): sent as
  translated; they ignore what their model cannot use.
"""

from __future__ import annotations

import re
from typing import Any

STRICT_TYPES = frozenset({"openai", "azure"})
"""Provider types whose API refuses ``reasoning_effort`` for a model that does not reason."""
REASONING_MODELS = re.compile(r"(?:o\d|gpt-5|codex)", re.IGNORECASE)
"""Upstream model ids (their start) of OpenAI's reasoning families."""
OPENAI_EFFORTS = {"low": "low", "medium": "medium", "high": "high", "xhigh": "high", "max": "high"}
"""The effort OpenAI's API takes for each of Anthropic's effort words."""
FIELD = "reasoning_effort"


def fit_reasoning(body: dict[str, Any], provider_type: str, upstream_model: str) -> dict[str, Any]:
    """``body`` with ``reasoning_effort`` as ``upstream_model`` at a provider of ``provider_type`` takes it.

    ``body`` itself when nothing changes, else a shallow copy.
    """
    effort = body.get(FIELD)
    if effort is None or provider_type not in STRICT_TYPES:
        return body
    if REASONING_MODELS.match(upstream_model):
        fitted = OPENAI_EFFORTS.get(effort, effort)
        return body if fitted == effort else {**body, FIELD: fitted}
    return {key: value for key, value in body.items() if key != FIELD}
