"""The gateway's fields of a Messages body: metadata.user_id kept as the user, metadata.task_type moved for routing."""

from __future__ import annotations

from typing import Any

from proxy.context import RequestContext
from proxy.pipeline.messages_fields import take_gateway_fields


def taken(body: dict[str, Any]) -> tuple[dict[str, Any], RequestContext]:
    ctx = RequestContext(request_id="r", state=None)  # type: ignore[arg-type]
    ctx.body = body
    take_gateway_fields(ctx)
    return body, ctx


def test_task_type_leaves_metadata_for_routing_and_the_rest_stays_in_place() -> None:
    body, ctx = taken({"model": "m", "metadata": {"user_id": "u-1", "task_type": "review"}, "max_tokens": 5})
    assert body == {"model": "m", "metadata": {"user_id": "u-1"}, "max_tokens": 5, "task_type": "review"}
    assert list(body) == ["model", "metadata", "max_tokens", "task_type"]
    assert ctx.user == "u-1"


def test_metadata_left_empty_is_removed() -> None:
    body, ctx = taken({"metadata": {"task_type": "review"}})
    assert body == {"task_type": "review"} and ctx.user is None


def test_a_top_level_task_type_wins_and_bodies_without_metadata_are_untouched() -> None:
    body, _ = taken({"task_type": "chat", "metadata": {"task_type": "review"}})
    assert body == {"task_type": "chat"}
    plain = {"model": "m", "messages": []}
    assert taken(dict(plain))[0] == plain
    assert taken({"metadata": {"user_id": None}})[1].user is None
