"""``llm-gateway usage``: the real process reads the configured ledger and prints a table or the endpoint's JSON."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from proxy.usage.query import UsageQuery
from proxy.usage.report import format_table, parse_when
from tests.conftest import make_config
from tests.process import child_env, run_cli, write_config
from tests.usage.test_query import END, START, sample_records
from tests.usage.usage_rows import (  # noqa: F401  (the *_fixture names are fixtures)
    Ledger,
    database_url,
    ledger_fixture,
    record,
    sqlite_ledger,
    ts,
    usage_gateway_fixture,
)

NOW = ts("2025-05-03T12:00:00")


def config_file(tmp_path: Path, database: str | None, name: str = "gateway.json") -> Path:
    sections = {"usage": {"database": database}} if database else {}
    return write_config(tmp_path / name, make_config(**sections))


@pytest.fixture
async def filled(ledger: Ledger) -> Ledger:
    await ledger.insert(sample_records())
    return ledger


def config_for(tmp_path: Path, found: Ledger) -> Path:
    """A config file naming the ledger; SQLite relatively (``sqlite:///usage.db``, beside the config)."""
    return config_file(tmp_path, found.database if found.dialect == "postgresql" else "sqlite:///usage.db")


def usage_cli(*args: str, cwd: Path, **env: str | None) -> Any:
    return run_cli(["usage", *args], cwd=cwd, env=child_env(**env))


# ------------------------------------------------------------------ the real process


async def test_a_table_by_agent(filled: Ledger, tmp_path: Path) -> None:
    path = config_for(tmp_path, filled)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = usage_cli("--config", str(path), "--since", START, "--until", END, "--by", "agent", cwd=elsewhere)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"usage from {START} to {END} by agent"
    assert lines[1].split() == ["agent", "requests", "prompt", "completion", "cached", "cost", "errors"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:6]}
    assert rows == {
        "writer": ["2", "300", "70", "0", "$1.2500", "1"],
        "planner": ["3", "160", "75", "40", "$0.7100", "1"],
        "-": ["2", "8", "4", "0", "$0.0000", "0"],
    }
    assert [line.split()[0] for line in lines[3:6]] == ["writer", "planner", "-"]  # most expensive first
    assert lines[7].split() == ["total", "7", "468", "149", "40", "$1.9600", "2"]
    assert "3 request(s) had no price" in done.stdout
    assert ("the gateway saved $0.7800 (response cache $0.5000, routing $0.2500, prompt cache $0.0200, "
            "trimming $0.0100)") in done.stdout


async def test_json_is_exactly_the_endpoints_document(filled: Ledger, tmp_path: Path, usage_gateway: Any) -> None:
    path = config_for(tmp_path, filled)
    done = usage_cli("--config", str(path), "--since", START, "--until", END, "--by", "caller,day", "--json",
                     cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    client = await usage_gateway(make_config(usage={"database": database_url(filled)}))
    resp = await client.get("/v1/usage", params={"start": START, "end": END, "group_by": "caller,day"})
    assert resp.status == 200
    assert printed == await resp.json()
    assert printed["data"] and printed["group_by"] == ["caller", "day"]


def test_the_config_comes_from_the_environment_when_not_given(tmp_path: Path) -> None:
    import asyncio

    found = sqlite_ledger(tmp_path)
    asyncio.run(found.create())
    asyncio.run(found.insert([record("2025-05-01T10:00:00", caller="ops", cost_usd=2.0)]))
    path = config_file(tmp_path, "sqlite:///usage.db")
    done = usage_cli("--since", "2025-05-01", "--until", "2025-05-02", "--by", "caller", "--json", cwd=Path("/"),
                     LLM_GATEWAY_CONFIG=str(path))
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert [(row["caller"], row["cost_usd"]) for row in doc["data"]] == [("ops", 2.0)]


def test_durations_count_back_from_now(tmp_path: Path) -> None:
    import asyncio
    import time

    found = sqlite_ledger(tmp_path)
    asyncio.run(found.create())
    now = time.time()
    asyncio.run(found.insert([_at(now - 600, agent="recent"), _at(now - 7200, agent="older"),
                              _at(now - 3 * 86400, agent="oldest")]))
    path = config_file(tmp_path, "sqlite:///usage.db")
    for since, agents in (("30m", {"recent"}), ("3h", {"recent", "older"}), ("7d", {"recent", "older", "oldest"})):
        done = usage_cli("--config", str(path), "--since", since, "--by", "agent", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        assert {row["agent"] for row in json.loads(done.stdout)["data"]} == agents
    done = usage_cli("--config", str(path), "--since", "7d", "--until", "1h", "--by", "agent", "--json", cwd=tmp_path)
    assert {row["agent"] for row in json.loads(done.stdout)["data"]} == {"older", "oldest"}
    done = usage_cli("--config", str(path), cwd=tmp_path)  # the defaults: 24 hours, totals only
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1].split()[0] == "requests" and lines[3].split()[:2] == ["2", "0"]  # requests, prompt tokens
    assert lines[4] == "note: 2 request(s) had no price (counted as $0)"


def _at(when: float, **fields: Any) -> Any:
    from dataclasses import replace

    return replace(record("2025-01-01", **fields), time=when)


def test_a_config_without_usage_exits_2(tmp_path: Path) -> None:
    done = usage_cli("--config", str(config_file(tmp_path, None)), cwd=tmp_path)
    assert done.returncode == 2
    assert "no 'usage' section" in done.stderr and done.stdout == ""
    default = usage_cli(cwd=tmp_path)  # the packaged default has a ledger (in the data home)
    assert default.returncode == 0 and default.stdout.startswith("usage from ")


@pytest.mark.parametrize(("args", "says"), [
    (["--since", "yesterday"], "--since"),
    (["--until", "2025-13-01"], "--until"),
    (["--since", "2025-05-02", "--until", "2025-05-01"], "--until"),
    (["--since", "800d"], "--since"),
    (["--by", "colour"], "--by"),
    (["--by", "agent,agent"], "--by"),
    (["--group-by", "agent"], "unrecognized arguments"),
    (["--since"], "--since"),
])
def test_bad_arguments_exit_2_saying_which(tmp_path: Path, args: list[str], says: str) -> None:
    done = usage_cli("--config", str(config_file(tmp_path, "sqlite:///usage.db")), *args, cwd=tmp_path)
    assert done.returncode == 2, done.stdout
    assert says in done.stderr and done.stdout == ""


def test_a_bad_config_exits_2(tmp_path: Path) -> None:
    done = usage_cli("--config", str(tmp_path / "missing.json"), cwd=tmp_path)
    assert done.returncode == 2 and "cannot read config file" in done.stderr


def test_an_unreachable_database_exits_1_without_its_password(tmp_path: Path) -> None:
    path = config_file(tmp_path, "postgresql://postgres:hunter2@127.0.0.1:1/nothing")
    done = usage_cli("--config", str(path), cwd=tmp_path)
    assert done.returncode == 1
    assert "cannot be read" in done.stderr and "hunter2" not in done.stderr + done.stdout


def test_the_server_options_still_work(tmp_path: Path) -> None:
    path = config_file(tmp_path, "sqlite:///usage.db")
    done = run_cli(["--config", str(path), "--check"], cwd=tmp_path)
    assert done.returncode == 0 and "is valid" in done.stdout
    assert run_cli(["--bogus"], cwd=tmp_path).returncode == 2
    helped = run_cli(["usage", "--help"], cwd=tmp_path)
    assert helped.returncode == 0 and "--since" in helped.stdout and "--by" in helped.stdout


# ------------------------------------------------------------------ the pieces


@pytest.mark.parametrize(("text", "seconds"), [
    ("30m", NOW - 1800), ("24h", NOW - 86400), ("7d", NOW - 7 * 86400), ("90s", NOW - 90), ("2w", NOW - 14 * 86400),
    ("1.5h", NOW - 5400), ("2025-05-01", ts("2025-05-01T00:00:00")), ("2025-05-01T10:00:00+01:00",
                                                                      ts("2025-05-01T09:00:00")),
])
def test_when_is_a_duration_or_a_time(text: str, seconds: float) -> None:
    assert parse_when(text, NOW) == seconds


@pytest.mark.parametrize("text", ["", "yesterday", "-5m", "5y", "h"])
def test_bad_whens(text: str) -> None:
    with pytest.raises(ValueError):
        parse_when(text, NOW)


def test_the_table_aligns_and_shows_missing_groups_as_a_dash() -> None:
    query = UsageQuery.from_params({"start": START, "end": END, "group_by": "caller,model"}, NOW)
    metrics = {"requests": 1234, "prompt_tokens": 1_000_000, "completion_tokens": 5, "cached_tokens": 0,
               "cost_usd": 12345.678, "unpriced_requests": 0, "saved_usd": 0.0, "errors": 0}
    doc = {"object": "list", "group_by": list(query.group_by), "start": START, "end": END, "truncated": True,
           "data": [{"caller": "a-rather-long-name", "model": None, **metrics},
                    {"caller": "b", "model": "m", **metrics}],
           "totals": metrics}
    lines = format_table(doc).splitlines()
    assert lines[1].startswith("caller              model  requests")
    assert lines[3].split() == ["a-rather-long-name", "-", "1,234", "1,000,000", "5", "0", "$12,345.68", "0"]
    assert len({len(line) for line in lines[1:7]}) == 1  # every column lines up
    assert lines[6].startswith("total ")
    assert lines[-1] == "note: only the 2 most expensive rows are shown; the totals cover all"
    no_groups = format_table({**doc, "group_by": [], "data": [metrics], "truncated": False}).splitlines()
    assert no_groups[1].split() == ["requests", "prompt", "completion", "cached", "cost", "errors"]
    assert len(no_groups) == 4 and no_groups[3].split()[0] == "1,234"  # the totals, once


async def test_the_packaged_defaults_ledger_is_the_one_usage_reads(gateway_process: Any, tmp_path: Path) -> None:
    home = tmp_path / "home"  # a data home of this test's own, so only its requests are in it
    env = child_env(XDG_DATA_HOME=str(home))
    gw = gateway_process(None, env=env, cwd=tmp_path)
    port = await gw.await_started()
    async with aiohttp.ClientSession() as session:
        for _ in range(3):
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={
                    "model": "mock-gpt", "messages": [{"role": "user", "content": "hi"}]}) as resp:
                assert resp.status == 200
        await asyncio.sleep(1.5)  # the ledger writes at least once a second
        async with session.get(f"http://127.0.0.1:{port}/v1/usage") as resp:
            served = await resp.json()
    gw.send(signal.SIGTERM)
    assert await gw.await_exit() == 0
    assert (home / "llm-gateway" / "usage.db").exists()  # not inside the package
    assert served["totals"]["requests"] == 3 and served["totals"]["cost_usd"] > 0
    printed = usage_cli("--json", cwd=tmp_path, XDG_DATA_HOME=str(home))
    assert printed.returncode == 0 and json.loads(printed.stdout)["totals"]["requests"] == 3
