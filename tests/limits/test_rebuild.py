"""Budgets counted in memory survive a restart: the real ``python -m proxy`` rebuilds them from the usage ledger.

One gateway (no Redis, a SQLite ledger) spends part of a key's and a team's budget, is
stopped with SIGTERM and started again on the same config; the new process shows the
same spend and refuses once the rest of each budget is spent.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from tests.limits.test_process import ALPHA, BETA, Answer, gateway_config, post_chat, scope_of, session

KEY_BUDGET = 0.1
TEAM_BUDGET = 0.2
SPENT_BY_ALPHA, SPENT_BY_BETA = 6, 4
"""Requests each key makes before the restart: with about a cent each, more than half of alpha's budget."""
MOST_REQUESTS = 40
"""More requests than any budget here can pay for: a loop that has not been refused by then fails."""


def rebuild_config() -> dict[str, Any]:
    """Keys alpha (a weekly budget of its own) and beta in team red (a budget in total), and a SQLite ledger."""
    keys = [{"name": "alpha", "key": ALPHA, "team": "red", "limits": {"budget": {"usd": KEY_BUDGET, "period": "week"}}},
            {"name": "beta", "key": BETA, "team": "red"}]
    return gateway_config(keys, teams={"red": {"budget": {"usd": TEAM_BUDGET, "period": "total"}}},
                          usage={"database": "sqlite:///usage.db"})


async def spend_until_refused(client: Any, port: int, key: str) -> tuple[list[Answer], Answer]:
    """Requests one after another as ``key`` until one is refused; the ones that passed, and the refusal."""
    passed = []
    for _ in range(MOST_REQUESTS):
        answer = await post_chat(client, port, key)
        if answer.status != 200:
            return passed, answer
        passed.append(answer)
    raise AssertionError(f"{MOST_REQUESTS} requests as {key} and none refused")


async def test_budget_spend_is_rebuilt_from_the_ledger_after_a_restart(gateway_process) -> None:
    config = rebuild_config()
    first = gateway_process(config)
    port = await first.await_started()
    async with session() as client:
        before = [await post_chat(client, port, ALPHA) for _ in range(SPENT_BY_ALPHA)]
        before += [await post_chat(client, port, BETA) for _ in range(SPENT_BY_BETA)]
    assert [a.status for a in before] == [200] * (SPENT_BY_ALPHA + SPENT_BY_BETA)
    by_alpha = sum(a.cost for a in before[:SPENT_BY_ALPHA])
    by_team = sum(a.cost for a in before)
    first.send(signal.SIGTERM)
    assert await first.await_exit() == 0

    second = gateway_process(config)
    port = await second.await_started()
    restored = await second.await_for("budgets_restored")
    assert restored["budgets"] == 2 and restored["source"] == "usage ledger"
    async with session() as client:
        key_view = (await scope_of(client, port, ALPHA))["budget"]
        team_view = (await scope_of(client, port, BETA, scope="team"))["budget"]
        alpha_after, alpha_refused = await spend_until_refused(client, port, ALPHA)
        beta_after, beta_refused = await spend_until_refused(client, port, BETA)
        key_end = (await scope_of(client, port, ALPHA))["budget"]
        team_end = (await scope_of(client, port, ALPHA, scope="team"))["budget"]

    assert key_view["spent_usd"] == pytest.approx(by_alpha, abs=1e-9)
    assert team_view["spent_usd"] == pytest.approx(by_team, abs=1e-9)
    # what was spent before the restart still counts: the rest of each budget, and no more, is spent now
    alpha_total = by_alpha + sum(a.cost for a in alpha_after)
    team_total = by_team + sum(a.cost for a in alpha_after + beta_after)
    assert alpha_after and alpha_total <= KEY_BUDGET
    assert beta_after and team_total <= TEAM_BUDGET
    for refusal, who in ((alpha_refused, "key 'alpha'"), (beta_refused, "team 'red'")):
        assert (refusal.status, refusal.code) == (429, "budget_exceeded"), refusal.body
        assert refusal.body["error"]["type"] == "insufficient_quota" and who in refusal.body["error"]["message"]
    assert key_end["spent_usd"] == pytest.approx(alpha_total, abs=1e-9)
    assert team_end["spent_usd"] == pytest.approx(team_total, abs=1e-9)
