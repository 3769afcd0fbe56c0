"""``llm-gateway usage``: who spent what, read straight from the ledger's database.

``llm-gateway usage --since 24h --by agent [--until TIME] [--config PATH] [--json]``
finds the config as the server does (``--config``, else ``$LLM_GATEWAY_CONFIG``,
else the packaged default), reads its ``usage.database`` and prints a table
(the group fields, requests, tokens, cost, errors, and a totals line), or with
``--json`` exactly the document ``GET /v1/usage`` answers (everyone's usage:
whoever can read the database sees it all). Bad arguments, or a config
without ``usage``, exit 2; a database that cannot be read exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import re
import sys
import time
from typing import Any, Sequence

import orjson

from proxy.errors import GatewayError
from proxy.usage.query import (
    GROUP_FIELDS,
    UsageQuery,
    UsageReader,
    format_time,
    parse_time,
)

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PROG = "llm-gateway usage"


class _Exit(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def parse_when(text: str, now: float) -> float:
    """``30m``, ``24h``, ``7d`` (that long before ``now``) or an ISO 8601 time, as Unix seconds."""
    match = _DURATION.match(text)
    if match:
        return now - float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    try:
        return parse_time(text, "time")
    except GatewayError:
        raise ValueError(f"{text!r} is neither a duration (30m, 24h, 7d) nor an ISO 8601 time "
                         "(2025-05-01, 2025-05-01T12:00:00Z)") from None


def build_parser() -> argparse.ArgumentParser:
    """The subcommand's options."""
    from proxy.cli import CONFIG_ENV, default_config_label

    parser = argparse.ArgumentParser(prog=PROG, description="Who spent what: usage from the gateway's ledger.")
    parser.add_argument("--since", default="24h", metavar="WHEN",
                        help="start: a duration back from now (30m, 24h, 7d) or an ISO 8601 time; default 24h")
    parser.add_argument("--until", metavar="WHEN",
                        help="end (exclusive), in the same forms; default now")
    parser.add_argument("--by", default="", metavar="FIELDS",
                        help=f"group by a comma-separated list of {', '.join(GROUP_FIELDS)}; default none (totals)")
    parser.add_argument("--config", metavar="PATH",
                        help=f"config file (default: ${CONFIG_ENV} if set, else the packaged default "
                             f"{default_config_label()})")
    parser.add_argument("--json", action="store_true", help="print the same JSON document GET /v1/usage answers")
    return parser


def query_from_args(args: argparse.Namespace, now: float) -> UsageQuery:
    """The :class:`UsageQuery` the options ask for (the same checks as the endpoint's parameters)."""
    now = float(math.floor(now))
    params: dict[str, str] = {"group_by": args.by}
    for name, option in (("start", "since"), ("end", "until")):
        value = getattr(args, option)
        if value is None:
            continue
        try:
            params[name] = format_time(parse_when(value, now))
        except (ValueError, OverflowError, OSError) as exc:
            raise _Exit(2, f"--{option}: {exc}") from None
    try:
        return UsageQuery.from_params(params, now)
    except GatewayError as exc:  # the endpoint's message, in the command's words
        message = exc.message
        for param, option in (("'start'", "--since"), ("'end'", "--until"), ("'group_by'", "--by")):
            message = message.replace(param, option)
        raise _Exit(2, message) from None


def config_path(given: str | None) -> str:
    """The config file the server would read: ``given``, else ``$LLM_GATEWAY_CONFIG``, else the default."""
    from proxy.cli import CONFIG_ENV, default_config_path

    return given or os.environ.get(CONFIG_ENV) or default_config_path()


# ------------------------------------------------------------------ the table


def _cell(name: str, value: Any) -> str:
    if name in GROUP_FIELDS:
        return "-" if value is None else str(value)
    if name.endswith("_usd"):
        return f"${value:,.4f}" if value < 1000 else f"${value:,.2f}"
    return f"{value:,}"


_COLUMNS = (("requests", "requests"), ("prompt_tokens", "prompt"), ("completion_tokens", "completion"),
            ("cached_tokens", "cached"), ("cost_usd", "cost"), ("errors", "errors"))


def format_table(doc: dict[str, Any]) -> str:
    """The answer as a plain-text table: one line per row, then the totals (and what the window was)."""
    groups = list(doc["group_by"])
    columns = [(name, name) for name in groups] + list(_COLUMNS)
    lines = [[header for _, header in columns]]
    lines += [[_cell(name, row[name]) for name, _ in columns] for row in doc["data"]]
    totals = doc["totals"]
    total_line = [("total" if i == 0 else "") for i in range(len(groups))]
    total_line += [_cell(name, totals[name]) for name, _ in _COLUMNS]
    lines.append(total_line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    numeric = [name not in GROUP_FIELDS for name, _ in columns]

    def render(line: list[str]) -> str:
        cells = [cell.rjust(w) if right else cell.ljust(w) for cell, w, right in zip(line, widths, numeric)]
        return "  ".join(cells).rstrip()

    out = [f"usage from {doc['start']} to {doc['end']}" + (f" by {', '.join(groups)}" if groups else "")]
    out.append(render(lines[0]))
    out.append("  ".join("-" * w for w in widths))
    if groups:  # without groups the one row is the totals
        out += [render(line) for line in lines[1:-1]]
        out.append("  ".join("-" * w for w in widths))
    out.append(render(lines[-1]))
    notes = []
    if totals["unpriced_requests"]:
        notes.append(f"{totals['unpriced_requests']:,} request(s) had no price (counted as $0)")
    if totals["saved_usd"]:
        notes.append(f"the gateway saved {_cell('saved_usd', totals['saved_usd'])}" + _saved_by_reason(totals))
    if doc.get("truncated"):
        notes.append(f"only the {len(doc['data']):,} most expensive rows are shown; the totals cover all")
    out += [f"note: {note}" for note in notes]
    return "\n".join(out)


_SAVED_REASONS = (("saved_cache_usd", "response cache"), ("saved_routing_usd", "routing"),
                  ("saved_prompt_cache_usd", "prompt cache"), ("saved_trim_usd", "trimming"))


def _saved_by_reason(totals: dict[str, Any]) -> str:
    """`` (response cache $x, routing $y)``: the reasons that saved something (older records have none)."""
    parts = [f"{label} {_cell(name, totals[name])}" for name, label in _SAVED_REASONS if totals.get(name)]
    return f" ({', '.join(parts)})" if parts else ""


# ------------------------------------------------------------------ the command


async def _summary(usage: Any, query: UsageQuery) -> dict[str, Any]:
    reader = await UsageReader.open(usage)
    try:
        return await reader.summary(query, None)
    finally:
        await reader.close()


def main(argv: Sequence[str]) -> int:
    """``llm-gateway usage ...``; returns the exit code."""
    args = build_parser().parse_args(list(argv))  # bad options: argparse prints why and exits 2
    from proxy.config import ConfigError, load_config

    try:
        query = query_from_args(args, time.time())
        path = config_path(args.config)
        try:
            config = load_config(path)
        except ConfigError as exc:
            raise _Exit(2, str(exc)) from None
        if config.usage is None:
            raise _Exit(2, f"{path} has no 'usage' section, so there is no ledger to read; "
                           "add one with a 'database' (sqlite:///usage.db or postgresql://...).")
        try:
            doc = asyncio.run(_summary(config.usage, query))
        except GatewayError as exc:
            raise _Exit(1, exc.message) from None
        except OSError as exc:
            raise _Exit(1, f"cannot reach the usage database: {exc.strerror or type(exc).__name__}") from None
    except _Exit as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return exc.code
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(doc) + b"\n")
    else:
        print(format_table(doc))
    return 0
