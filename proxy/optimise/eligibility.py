"""Whether a candidate can serve a request, and if not, why.

Checked in this order, the first that fails names the reason:

``breaker_open``
    its circuit breaker lets nothing through now;
``context_window``
    its window cannot hold the prompt plus the output it will be asked for
    (the request's ``max_tokens``, else the candidate's ``default_output``),
    or that output is more than its largest output. An unknown window or
    limit never skips;
``capability``
    it lacks something the request uses (tools, images, a JSON response format);
``rate_limited``
    its upstream's latest rate-limit headers left no request, or fewer
    tokens than the prompt, before their reset.
"""

from __future__ import annotations

from proxy.optimise.candidates import Candidate, RequestNeeds, SkipReason


def skip_reason(candidate: Candidate, request: RequestNeeds, now: float) -> SkipReason | None:
    """Why ``candidate`` cannot serve ``request`` (``now`` on the headroom's clock), or ``None``."""
    if candidate.breaker_open:
        return SkipReason.BREAKER_OPEN
    output = request.output_tokens(candidate)
    if ((candidate.context_window is not None and request.prompt_tokens + output > candidate.context_window)
            or (candidate.max_output is not None and output > candidate.max_output)):
        return SkipReason.CONTEXT_WINDOW
    if request.capabilities and not request.capabilities <= candidate.capabilities:
        return SkipReason.CAPABILITY
    if candidate.headroom is not None and candidate.headroom.exhausted(request.prompt_tokens, now):
        return SkipReason.RATE_LIMITED
    return None
