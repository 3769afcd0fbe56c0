"""One list of error codes: every code the gateway raises is on it, and so is every code the README documents."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from proxy.errors import ErrorCode, GatewayError, error_type_for
from proxy.observability.metrics import KNOWN_ERROR_CODES, error_label

ROOT = Path(__file__).resolve().parent.parent


def code_arguments() -> list[tuple[str, int, ast.expr]]:
    """Every ``code=...`` keyword argument and ``ctx.error = ...`` value in the gateway's source."""
    found = []
    for path in (ROOT / "proxy").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "code":
                found.append((str(path.relative_to(ROOT)), node.value.lineno, node.value))
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Attribute) and node.targets[0].attr == "error"):
                found.append((str(path.relative_to(ROOT)), node.lineno, node.value))
    return found


def test_no_code_is_written_as_a_bare_string() -> None:
    literals = [f"{path}:{line}" for path, line, value in code_arguments()
                if isinstance(value, ast.Constant) and isinstance(value.value, str)]
    assert not literals, f"use an ErrorCode member instead of a string at {literals}"


def test_every_member_the_code_names_exists() -> None:
    names = {value.attr for _, _, value in code_arguments()
             if isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name)
             and value.value.id == "ErrorCode"}
    assert names and names <= set(ErrorCode.__members__)


def documented_codes() -> set[str]:
    """The codes in the README's error table."""
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Errors"):]
    table = table[:table.index("\n## ", 1)]
    codes: set[str] = set()
    for row in table.splitlines():
        if row.startswith("| ") and not row.startswith("| status") and not row.startswith("| ---"):
            codes.update(re.findall(r"`([a-z_]+)`", row.split("|")[2]))
    return codes


def test_the_readme_documents_exactly_the_codes_on_the_list() -> None:
    documented = documented_codes()
    assert documented == {code.value for code in ErrorCode}


def test_metrics_label_the_codes_on_the_list_and_nothing_else() -> None:
    assert KNOWN_ERROR_CODES == frozenset(ErrorCode)
    assert error_label(ErrorCode.UPSTREAM_TIMEOUT) == "upstream_timeout"
    assert error_label("some_upstream_code") == "other"


@pytest.mark.parametrize(("status", "kind"), [(400, "invalid_request_error"), (401, "authentication_error"),
                                              (429, "rate_limit_error"), (503, "service_unavailable"),
                                              (431, "invalid_request_error"), (599, "api_error")])
def test_each_status_has_openais_error_type(status: int, kind: str) -> None:
    assert error_type_for(status) == kind
    body = GatewayError(status, "m", code=ErrorCode.INTERNAL_ERROR).payload()["error"]
    assert body == {"message": "m", "type": kind, "param": None, "code": "internal_error"}
