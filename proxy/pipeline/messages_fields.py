"""The gateway's own fields of a Messages API body, taken out of it before routing.

A Messages caller names its task type in ``metadata.task_type`` (or, as for
Chat Completions, in a top-level ``task_type`` or ``X-Task-Type``), and its
end user in ``metadata.user_id``. :func:`take_gateway_fields` records the
user, and moves ``metadata.task_type`` to where routing reads (and removes)
the task type, so that no upstream sees it: Anthropic refuses metadata keys it
does not define. A ``metadata`` left empty by that is removed.
"""

from __future__ import annotations

from proxy.context import RequestContext

TASK_TYPE = "task_type"


def take_gateway_fields(ctx: RequestContext) -> None:
    """Set ``ctx.user`` from ``metadata.user_id``; hand ``metadata.task_type`` to routing."""
    body = ctx.body
    assert body is not None
    metadata = body.get("metadata")
    if not isinstance(metadata, dict):
        return
    user = metadata.get("user_id")
    ctx.user = user if isinstance(user, str) and user else None
    if TASK_TYPE not in metadata:
        return
    task_type = metadata[TASK_TYPE]
    rest = {key: value for key, value in metadata.items() if key != TASK_TYPE}
    if rest:
        body["metadata"] = rest
    else:
        del body["metadata"]
    body.setdefault(TASK_TYPE, task_type)  # a top-level task_type, when given too, wins
