"""Budget spend for the memory backend after a restart, rebuilt from the usage ledger.

With Redis, spend lives in Redis and survives a gateway's restart by itself. In memory
it would start from zero, so at start every budget's spend in its current period is
summed from the ledger's records (cost per caller key and per team). Records still in a
spool file when the gateway starts are replayed into the ledger afterwards and are not
in that sum.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from proxy.limits.demand import usd_to_units
from proxy.limits.model import KEY
from proxy.observability.logs import error_summary, log_event
from proxy.usage.query import UsageQuery

if TYPE_CHECKING:
    from proxy.config import GatewayConfig
    from proxy.limits.limiter import Limiter
    from proxy.usage.query import UsageReader


async def restore_budgets(limiter: "Limiter", config: "GatewayConfig", reader: "UsageReader") -> int:
    """Set each budget's spend from the ledger; the number of budgets restored (0 on a read failure)."""
    backend = limiter.backend
    if backend.name != "memory":
        return 0
    scopes = [scope for scope in limiter.all_scopes(config)
              if scope.limits.budget is not None and scope.period is not None]
    now = time.time()
    restored = 0
    sums: dict[tuple[float, str], dict[str, float]] = {}
    try:
        for scope in scopes:
            assert scope.period is not None
            period_id, start, _ = scope.period
            column = "caller" if scope.scope == KEY else "team"
            found = sums.get((start, column))
            if found is None:
                answer = await reader.summary(UsageQuery(start, now + 1, (column,)), None)
                found = sums[(start, column)] = {row[column]: row["cost_usd"] for row in answer["data"]
                                                 if row.get(column) is not None}
            spent = found.get(scope.name, 0.0)
            backend.restore_spend(scope.scope, scope.name, period_id, usd_to_units(spent))  # type: ignore[union-attr]
            restored += 1
    except Exception as exc:  # noqa: BLE001 - the gateway still starts; budgets then count from zero
        log_event("budgets_not_restored", logging.WARNING, exception=error_summary(exc),
                  note="budgets count from zero since this start")
        return 0
    if restored:
        log_event("budgets_restored", budgets=restored, source="usage ledger")
    return restored
