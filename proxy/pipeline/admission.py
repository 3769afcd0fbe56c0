"""Admission control: past ``api.max_in_flight`` model requests, refuse new ones at once.

A gateway that accepts everything under overload makes every caller slow and
then times them all out. Refusing the excess immediately with 503 and
``Retry-After`` keeps the admitted requests fast and tells the rest (and the
``openai`` SDK, which retries 503 after ``Retry-After``) when to come back.
Only chat and embeddings requests count and can be refused; ``/health`` and
``/v1/models`` are always answered.
"""

from __future__ import annotations

from proxy.errors import ErrorCode, GatewayError
from proxy.lifecycle import Lifecycle


class Admission:
    """``with Admission(lifecycle, limit):`` holds one place among the requests in flight.

    Entering raises 503 ``gateway_overloaded`` when every place is taken.
    """

    __slots__ = ("_lifecycle", "_limit")

    def __init__(self, lifecycle: Lifecycle, limit: int) -> None:
        self._lifecycle = lifecycle
        self._limit = limit

    def __enter__(self) -> None:
        lifecycle, limit = self._lifecycle, self._limit
        if limit and lifecycle.admitted >= limit:
            raise GatewayError(
                503, f"The gateway is at its limit of {limit} requests in flight; retry shortly.",
                code=ErrorCode.GATEWAY_OVERLOADED, headers={"Retry-After": "1"})
        lifecycle.admitted += 1

    def __exit__(self, *exc_info: object) -> None:
        self._lifecycle.admitted -= 1
