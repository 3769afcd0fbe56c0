"""Who spent what: ``UsageQuery``, the SQL for SQLite and PostgreSQL, ``UsageReader`` and ``GET /v1/usage``.

Rows are inserted by hand into tables made from the ledger's migrations, in a
real SQLite file and in the real PostgreSQL, and every answer is checked
against the same sums computed in plain Python.
"""

from __future__ import annotations

import itertools
import math
from pathlib import Path
from typing import Any

import pytest

from proxy.config import parse_config
from proxy.config.model import UsageConfig
from proxy.errors import GatewayError
from proxy.usage.query import (
    GROUP_FIELDS,
    MAX_WINDOW_DAYS,
    METRICS,
    UsageQuery,
    UsageReader,
    format_time,
    summary_sql,
)
from tests.conftest import make_config
from tests.usage.usage_rows import (  # noqa: F401  (the *_fixture names are fixtures)
    Ledger,
    close_enough,
    database_url,
    expected,
    ledger_fixture,
    postgres_ledger,
    record,
    sqlite_ledger,
    ts,
    usage_gateway_fixture,
)

NOW = ts("2025-05-03T12:00:00")
START, END = "2025-05-01T00:00:00Z", "2025-05-03T00:00:00Z"


def sample_records() -> list[Any]:
    """Two days of traffic: three callers (one of them nobody, as with auth off), costs, errors, no prices."""
    return [
        record("2025-05-01T00:00:00", caller="alice", team="red", user="u1", agent="planner", task_type="code",
               provider="openai", model="gpt-4o", prompt_tokens=100, completion_tokens=20, cached_tokens=40,
               cost_usd=0.5, saved_usd=0.03, saved_prompt_cache_usd=0.02, saved_trim_usd=0.01),
        record("2025-05-01T00:59:59", caller="alice", team="red", user="u2", agent="planner", task_type="chat",
               provider="openai", model="fast", prompt_tokens=10, completion_tokens=5, cost_usd=0.01),
        record("2025-05-01T01:00:00", caller="bob", team="blue", user="u1", agent="writer", task_type="code",
               provider="anthropic", model="claude", prompt_tokens=300, completion_tokens=70, cost_usd=1.25,
               saved_usd=0.75, saved_cache_usd=0.5, saved_routing_usd=0.25),
        record("2025-05-01T23:59:59.5", caller="bob", team="blue", agent="writer", provider="anthropic",
               model="claude", status=502, error="upstream_error"),
        record("2025-05-02T00:00:00", caller="bob", team="blue", agent="planner", provider="openai",
               model="gpt-4o", prompt_tokens=50, completion_tokens=50, status=200, error="upstream_stream_cut",
               cost_usd=0.2),
        record("2025-05-02T13:30:00", caller="alice", team="red", user="u1", agent=None, task_type="code",
               provider="mock", model="mock-gpt", prompt_tokens=7, completion_tokens=3, cost_usd=None),
        record("2025-05-02T23:59:59.999", provider="mock", model="mock-gpt", prompt_tokens=1,
               completion_tokens=1, cost_usd=None),
        # outside the window on both sides: the end is exclusive, the start inclusive
        record("2025-04-30T23:59:59.999", caller="alice", provider="openai", model="gpt-4o", cost_usd=9.0),
        record("2025-05-03T00:00:00", caller="alice", provider="openai", model="gpt-4o", cost_usd=9.0),
    ]


@pytest.fixture
async def filled(ledger: Ledger) -> Ledger:
    await ledger.insert(sample_records())
    return ledger


async def summarise(ledger: Ledger, params: dict[str, str], caller: str | None = None,
                    **reader_options: Any) -> dict[str, Any]:
    reader = await UsageReader.open(ledger.usage, **reader_options)
    try:
        return await reader.summary(UsageQuery.from_params(params, NOW), caller)
    finally:
        await reader.close()


def assert_matches(doc: dict[str, Any], ledger: Ledger, group_by: tuple[str, ...], caller: str | None = None,
                   start: str = START, end: str = END) -> None:
    rows, totals = expected(ledger.records, ts(start), ts(end), group_by, caller)
    got = sorted(doc["data"], key=lambda row: tuple((row[n] is None, row[n] or "") for n in group_by))
    assert len(got) == len(rows), (got, rows)
    for mine, theirs in zip(got, rows):
        assert close_enough(mine, theirs), (mine, theirs)
    assert close_enough(doc["totals"], totals), (doc["totals"], totals)
    assert doc["group_by"] == list(group_by)
    assert doc["truncated"] is False


# ------------------------------------------------------------------ the question's parameters


def test_defaults_are_the_last_24_hours_and_no_grouping() -> None:
    query = UsageQuery.from_params({}, 1_000_000.75)  # through the current second: a request just made counts
    assert query == UsageQuery(1_000_001 - 86400.0, 1_000_001.0, ())


@pytest.mark.parametrize(("text", "seconds"), [
    ("2025-05-01", ts("2025-05-01T00:00:00")),
    ("2025-05-01T10:30", ts("2025-05-01T10:30:00")),
    ("2025-05-01T10:30:00Z", ts("2025-05-01T10:30:00")),
    ("2025-05-01T12:30:00+02:00", ts("2025-05-01T10:30:00")),
    ("2025-05-01T10:30:00.250", ts("2025-05-01T10:30:00") + 0.25),
    (" 2025-05-01T10:30:00z ", ts("2025-05-01T10:30:00")),
    ("2025-05-01T12:30:00 02:00", ts("2025-05-01T10:30:00")),  # "+02:00" unescaped in a URL
])
def test_times_are_iso_8601_and_naive_means_utc(text: str, seconds: float) -> None:
    query = UsageQuery.from_params({"start": text, "end": "2025-05-02T00:00:00Z"}, NOW)
    assert query.start == seconds


def test_only_start_or_only_end() -> None:
    assert UsageQuery.from_params({"start": "2025-05-03T00:00:00"}, NOW).end == math.floor(NOW) + 1
    only_end = UsageQuery.from_params({"end": "2025-05-02T00:00:00"}, NOW)
    assert only_end.start == ts("2025-05-01T00:00:00")


def test_group_by_is_a_comma_list_in_the_order_given() -> None:
    query = UsageQuery.from_params({"group_by": " model, day ,caller"}, NOW)
    assert query.group_by == ("model", "day", "caller")
    assert UsageQuery.from_params({"group_by": ",".join(GROUP_FIELDS)}, NOW).group_by == GROUP_FIELDS


BAD_PARAMETERS = [
    ({"start": "yesterday"}, "start"),
    ({"start": ""}, "start"),
    ({"end": "2025-13-01"}, "end"),
    ({"end": "2025-05-01T25:00:00"}, "end"),
    ({"start": "0001-01-01T00:00:00+05:00"}, "start"),
    ({"start": "2025-05-02", "end": "2025-05-01"}, "end"),  # end before start
    ({"start": "2025-05-01", "end": "2025-05-01"}, "end"),  # an empty window
    ({"start": "2020-01-01", "end": "2025-01-01"}, "start"),  # longer than the longest window
    ({"group_by": "colour"}, "group_by"),
    ({"group_by": "agent,agent"}, "group_by"),
    ({"group_by": "agent,"}, "group_by"),
    ({"group_by": "Agent"}, "group_by"),
    ({"group_by": "time"}, "group_by"),
    ({"group_by": 'caller" FROM x; --'}, "group_by"),
    ({"limit": "5"}, "limit"),
]


@pytest.mark.parametrize(("params", "param"), BAD_PARAMETERS)
def test_every_bad_parameter_is_a_400_naming_it(params: dict[str, str], param: str) -> None:
    with pytest.raises(GatewayError) as caught:
        UsageQuery.from_params(params, NOW)
    error = caught.value
    assert (error.status, error.param, error.code) == (400, param, "invalid_request")
    assert f"'{param}'" in error.message


def test_the_longest_window_is_allowed() -> None:
    start = ts("2024-01-01T00:00:00")
    query = UsageQuery.from_params({"start": format_time(start), "end": format_time(start + MAX_WINDOW_DAYS * 86400)},
                                   NOW)
    assert query.end - query.start == MAX_WINDOW_DAYS * 86400


def test_times_are_reported_in_utc_with_z() -> None:
    assert format_time(ts("2025-05-01T10:30:00")) == "2025-05-01T10:30:00Z"
    assert format_time(ts("2025-05-01T10:30:00") + 0.5) == "2025-05-01T10:30:00.500000Z"


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_values_are_parameters_and_columns_come_from_the_list(dialect: str) -> None:
    query = UsageQuery.from_params({"start": START, "end": END, "group_by": "user,day"}, NOW)
    sql = summary_sql(query, dialect, "o'brien", limit=50)
    assert "o'brien" not in sql.rows and "o'brien" not in sql.totals
    assert sql.rows_params == (ts(START), ts(END), "o'brien", 51)
    assert sql.totals_params == (ts(START), ts(END), "o'brien")
    assert '"user"' in sql.rows and '"time"' in sql.rows


# ------------------------------------------------------------------ the answers, in both databases


@pytest.mark.parametrize("field", GROUP_FIELDS)
async def test_grouping_by_each_field(filled: Ledger, field: str) -> None:
    doc = await summarise(filled, {"start": START, "end": END, "group_by": field})
    assert_matches(doc, filled, (field,))
    assert doc["object"] == "list" and doc["start"] == START and doc["end"] == END


@pytest.mark.parametrize("group_by", [
    ("caller", "model"), ("day", "provider"), ("team", "user", "agent"), ("hour", "caller", "task_type"),
    GROUP_FIELDS,
])
async def test_grouping_by_several_fields(filled: Ledger, group_by: tuple[str, ...]) -> None:
    doc = await summarise(filled, {"start": START, "end": END, "group_by": ",".join(group_by)})
    assert_matches(doc, filled, group_by)


async def test_the_exact_rows_by_caller(filled: Ledger) -> None:
    doc = await summarise(filled, {"start": START, "end": END, "group_by": "caller"})
    by_caller = {row["caller"]: row for row in doc["data"]}
    assert [row["caller"] for row in doc["data"]] == ["bob", "alice", None]  # most expensive first
    assert by_caller["bob"] == {
        "caller": "bob", "requests": 3, "prompt_tokens": 350, "completion_tokens": 120, "cached_tokens": 0,
        "cost_usd": 1.45, "unpriced_requests": 1, "saved_usd": 0.75, "errors": 2,
        "saved_cache_usd": 0.5, "saved_routing_usd": 0.25, "saved_prompt_cache_usd": 0.0, "saved_trim_usd": 0.0,
    }
    assert by_caller["alice"]["requests"] == 3 and by_caller["alice"]["cached_tokens"] == 40
    assert by_caller["alice"]["cost_usd"] == 0.51 and by_caller["alice"]["unpriced_requests"] == 1
    assert by_caller[None]["cost_usd"] == 0.0 and by_caller[None]["unpriced_requests"] == 1
    assert doc["totals"] == {
        "requests": 7, "prompt_tokens": 468, "completion_tokens": 149, "cached_tokens": 40, "cost_usd": 1.96,
        "unpriced_requests": 3, "saved_usd": 0.78, "errors": 2,
        "saved_cache_usd": 0.5, "saved_routing_usd": 0.25, "saved_prompt_cache_usd": 0.02, "saved_trim_usd": 0.01,
    }


async def test_days_and_hours_are_utc_buckets(filled: Ledger) -> None:
    days = await summarise(filled, {"start": START, "end": END, "group_by": "day"})
    assert sorted((row["day"], row["requests"]) for row in days["data"]) == [("2025-05-01", 4), ("2025-05-02", 3)]
    hours = await summarise(filled, {"start": START, "end": END, "group_by": "hour"})
    assert sorted((row["hour"], row["requests"]) for row in hours["data"]) == [
        ("2025-05-01T00:00:00Z", 2), ("2025-05-01T01:00:00Z", 1), ("2025-05-01T23:00:00Z", 1),
        ("2025-05-02T00:00:00Z", 1), ("2025-05-02T13:00:00Z", 1), ("2025-05-02T23:00:00Z", 1),
    ]


async def test_a_window_given_in_another_timezone_is_the_same_instant(filled: Ledger) -> None:
    doc = await summarise(filled, {"start": "2025-05-01T02:00:00+02:00", "end": "2025-05-01T03:00:00+02:00",
                                   "group_by": "hour"})
    assert [(row["hour"], row["requests"]) for row in doc["data"]] == [("2025-05-01T00:00:00Z", 2)]
    assert doc["start"] == "2025-05-01T00:00:00Z"


async def test_the_start_is_inclusive_and_the_end_exclusive(filled: Ledger) -> None:
    doc = await summarise(filled, {"start": "2025-05-01T00:59:59", "end": "2025-05-01T01:00:00"})
    assert doc["totals"]["requests"] == 1 and doc["totals"]["cost_usd"] == 0.01
    assert doc["data"] == [{**doc["totals"]}]  # no grouping: one row, the totals
    assert_matches(await summarise(filled, {"start": "2025-04-30T23:59:59.999", "end": "2025-05-03T00:00:00.001"}),
                   filled, (), start="2025-04-30T23:59:59.999", end="2025-05-03T00:00:00.001")


async def test_an_empty_window_has_no_rows_and_zero_totals(filled: Ledger) -> None:
    doc = await summarise(filled, {"start": "2024-01-01", "end": "2024-01-02", "group_by": "agent"})
    assert doc["data"] == [] and doc["totals"] == {name: 0 for name in METRICS}
    doc = await summarise(filled, {"start": "2024-01-01", "end": "2024-01-02"})
    assert doc["data"] == []


@pytest.mark.parametrize("caller", ["alice", "bob", "nobody", "o'brien"])
async def test_one_callers_usage(filled: Ledger, caller: str) -> None:
    doc = await summarise(filled, {"start": START, "end": END, "group_by": "caller,model"}, caller)
    assert_matches(doc, filled, ("caller", "model"), caller)
    assert {row["caller"] for row in doc["data"]} <= {caller}


async def test_rows_are_ordered_by_cost_then_group_fields_with_nulls_last(ledger: Ledger) -> None:
    await ledger.insert([
        record("2025-05-01T10:00:00", agent="b", cost_usd=1.0),
        record("2025-05-01T10:00:00", agent="a", cost_usd=1.0),
        record("2025-05-01T10:00:00", agent=None, cost_usd=1.0),
        record("2025-05-01T10:00:00", agent="B", cost_usd=1.0),
        record("2025-05-01T10:00:00", agent="z", cost_usd=3.0),
        record("2025-05-01T10:00:00", agent="y", cost_usd=None),
    ])
    doc = await summarise(ledger, {"start": START, "end": END, "group_by": "agent"})
    assert [row["agent"] for row in doc["data"]] == ["z", "B", "a", "b", None, "y"]


async def test_too_many_rows_are_cut_and_said_so_but_totals_cover_all(filled: Ledger) -> None:
    doc = await summarise(filled, {"start": START, "end": END, "group_by": "hour"}, limit=2)
    assert doc["truncated"] is True
    assert [row["hour"] for row in doc["data"]] == ["2025-05-01T01:00:00Z", "2025-05-01T00:00:00Z"]
    assert doc["totals"]["requests"] == 7
    exact = await summarise(filled, {"start": START, "end": END, "group_by": "caller"}, limit=3)
    assert exact["truncated"] is False and len(exact["data"]) == 3


async def test_many_groups(ledger: Ledger) -> None:
    records = [record(f"2025-05-01T{h:02d}:{m:02d}:00", caller=f"c{m % 7}", model=f"m{h % 5}",
                      prompt_tokens=h * m, cost_usd=(h * 60 + m) / 1000)
               for h, m in itertools.product(range(24), range(60))]
    await ledger.insert(records)
    doc = await summarise(ledger, {"start": START, "end": END, "group_by": "caller,model,hour"})
    assert_matches(doc, ledger, ("caller", "model", "hour"))
    costs = [row["cost_usd"] for row in doc["data"]]
    assert costs == sorted(costs, reverse=True)


async def test_a_table_not_created_yet_is_no_usage(tmp_path: Path) -> None:
    missing = UsageConfig(database="sqlite:///nothing-here.db", config_dir=str(tmp_path))
    reader = await UsageReader.open(missing)
    doc = await reader.summary(UsageQuery.from_params({"group_by": "agent"}, NOW), None)
    assert doc["data"] == [] and doc["totals"]["requests"] == 0
    assert not (tmp_path / "nothing-here.db").exists()  # the reader never creates the database
    (tmp_path / "empty.db").write_bytes(b"")
    reader = await UsageReader.open(UsageConfig(database=f"sqlite:///{tmp_path}/empty.db", config_dir="/elsewhere"))
    assert (await reader.summary(UsageQuery.from_params({}, NOW), "alice"))["data"] == []


async def test_a_postgresql_database_without_the_table_is_no_usage() -> None:
    found, drop = await postgres_ledger()  # a fresh schema: no tables
    try:
        doc = await summarise(found, {"group_by": "caller"})
        assert doc["data"] == [] and doc["totals"]["requests"] == 0
    finally:
        await drop()


async def test_a_database_that_cannot_be_reached_is_a_503_without_its_url() -> None:
    usage = UsageConfig(database="postgresql://postgres:hunter2@127.0.0.1:1/nothing", config_dir="/")
    reader = await UsageReader.open(usage)  # opening does not connect
    try:
        with pytest.raises(GatewayError) as caught:
            await reader.summary(UsageQuery.from_params({}, NOW), None)
    finally:
        await reader.close()
    assert (caught.value.status, caught.value.code) == (503, "usage_unavailable")
    assert "hunter2" not in caught.value.message


async def test_relative_sqlite_paths_are_against_the_config_folder(tmp_path: Path) -> None:
    sub = tmp_path / "conf"
    sub.mkdir()
    found = sqlite_ledger(sub, "data/usage.db")
    (sub / "data").mkdir()
    await found.create()
    await found.insert(sample_records())
    assert (await summarise(found, {"start": START, "end": END}))["totals"]["requests"] == 7


# ------------------------------------------------------------------ GET /v1/usage


KEYS = [{"name": "alice", "key": "sk-alice", "team": "red"},
        {"name": "bob", "key": "sk-bob"},
        {"name": "root", "key": "sk-root", "admin": True}]
WINDOW = {"start": START, "end": END, "group_by": "caller"}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_an_admin_key_sees_everyone(usage_gateway: Any, filled: Ledger) -> None:
    client = await usage_gateway(make_config(auth={"keys": KEYS}, usage={"database": database_url(filled)}))
    resp = await client.get("/v1/usage", params=WINDOW, headers=bearer("sk-root"))
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert {row["caller"] for row in doc["data"]} == {"alice", "bob", None}
    assert_matches(doc, filled, ("caller",))


@pytest.mark.parametrize("who", ["alice", "bob"])
async def test_any_other_key_sees_only_its_own(usage_gateway: Any, filled: Ledger, who: str) -> None:
    client = await usage_gateway(make_config(auth={"keys": KEYS}, usage={"database": database_url(filled)}))
    resp = await client.get("/v1/usage", params={**WINDOW, "group_by": "caller,day"}, headers=bearer(f"sk-{who}"))
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    assert {row["caller"] for row in doc["data"]} == {who}
    assert_matches(doc, filled, ("caller", "day"), who)


async def test_a_key_with_no_usage_sees_nothing(usage_gateway: Any, tmp_path: Path) -> None:
    found = sqlite_ledger(tmp_path)
    await found.create()
    await found.insert(sample_records())
    keys = [*KEYS, {"name": "carol", "key": "sk-carol", "admin": False}]
    client = await usage_gateway(make_config(auth={"keys": keys}, usage={"database": database_url(found)}))
    doc = await (await client.get("/v1/usage", params=WINDOW, headers=bearer("sk-carol"))).json()
    assert doc["data"] == [] and doc["totals"]["requests"] == 0


@pytest.mark.parametrize("auth", [None, {"enabled": False, "keys": KEYS}])
async def test_with_auth_off_everyone_sees_everything(usage_gateway: Any, filled: Ledger, auth: Any) -> None:
    sections: dict[str, Any] = {"usage": {"database": database_url(filled)}}
    if auth is not None:
        sections["auth"] = auth
    client = await usage_gateway(make_config(**sections))
    resp = await client.get("/v1/usage", params=WINDOW, headers=bearer("sk-alice"))
    assert resp.status == 200, await resp.text()
    assert_matches(await resp.json(), filled, ("caller",))


async def test_the_endpoint_needs_a_key_when_auth_is_on(usage_gateway: Any, tmp_path: Path) -> None:
    found = sqlite_ledger(tmp_path)
    client = await usage_gateway(make_config(auth={"keys": KEYS}, usage={"database": database_url(found)}))
    assert (await client.get("/v1/usage")).status == 401
    resp = await client.get("/v1/usage", headers=bearer("sk-nope"))
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
    ok = await client.get("/v1/usage", headers=bearer("sk-bob"))  # no table yet: no usage, not an error
    assert ok.status == 200 and (await ok.json())["data"] == []


async def test_without_a_usage_section_the_endpoint_says_so(gateway: Any) -> None:
    client = await gateway(make_config())
    resp = await client.get("/v1/usage")
    assert resp.status == 404
    error = (await resp.json())["error"]
    assert error["code"] == "usage_not_configured" and error["type"] == "invalid_request_error"
    assert "'usage'" in error["message"]


@pytest.mark.parametrize(("params", "param"), BAD_PARAMETERS)
async def test_bad_parameters_over_http(usage_gateway: Any, tmp_path: Path, params: dict[str, str],
                                        param: str) -> None:
    client = await usage_gateway(make_config(usage={"database": database_url(sqlite_ledger(tmp_path))}))
    resp = await client.get("/v1/usage", params=params)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert (error["param"], error["code"], error["type"]) == (param, "invalid_request", "invalid_request_error")


async def test_a_parameter_sent_twice_is_a_400(usage_gateway: Any, tmp_path: Path) -> None:
    client = await usage_gateway(make_config(usage={"database": database_url(sqlite_ledger(tmp_path))}))
    resp = await client.get("/v1/usage?group_by=agent&group_by=model")
    assert resp.status == 400 and (await resp.json())["error"]["param"] == "group_by"


async def test_only_get(usage_gateway: Any, tmp_path: Path) -> None:
    client = await usage_gateway(make_config(usage={"database": database_url(sqlite_ledger(tmp_path))}))
    resp = await client.post("/v1/usage", json={})
    assert resp.status == 405 and resp.headers["Allow"] == "GET"


def test_admin_is_read_from_the_config() -> None:
    config = parse_config(make_config(auth={"keys": KEYS}))
    assert [(key.name, key.admin) for key in config.auth.keys] == [("alice", False), ("bob", False), ("root", True)]
    from proxy.config import ConfigError

    with pytest.raises(ConfigError):
        parse_config(make_config(auth={"keys": [{"name": "x", "key": "k", "admin": "yes"}]}))
