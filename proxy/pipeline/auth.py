"""Caller authentication: ``Authorization: Bearer <key>`` or ``x-api-key``.

Keys are kept only as SHA-256 digests. A presented key is hashed and compared
with every configured digest in constant time, so neither the result nor the
time taken says which key, or how much of one, matched.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress

from aiohttp import web

from proxy.config import AuthConfig, AuthKey
from proxy.context import RequestContext
from proxy.errors import ErrorCode, GatewayError
from proxy.pipeline.header_values import header_bytes

PUBLIC_ENDPOINTS = frozenset({"health"})


def presented_key(request: web.Request) -> str | None:
    """The key the caller sent, from ``Authorization: Bearer`` or ``x-api-key``."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return request.headers.get("x-api-key") or None


def match_key(auth: AuthConfig, key: str) -> AuthKey | None:
    """The configured key equal to ``key``, or ``None``."""
    digest = hashlib.sha256(header_bytes(key)).digest()
    matched: AuthKey | None = None
    for entry in auth.keys:
        if hmac.compare_digest(digest, entry.sha256):
            matched = entry
    return matched


def authenticate(request: web.Request, ctx: RequestContext) -> None:
    """Let a request through only with a valid key (unless auth is off); names the caller."""
    auth = ctx.state.config.auth
    if not auth.enabled or ctx.endpoint in PUBLIC_ENDPOINTS:
        return
    key = presented_key(request)
    if key is None:
        raise GatewayError(
            401,
            "Missing API key. Send it as 'Authorization: Bearer <key>' (or 'x-api-key').",
            code=ErrorCode.MISSING_API_KEY,
        )
    entry = match_key(auth, key)
    if entry is None:
        raise GatewayError(401, "Invalid API key.", code=ErrorCode.INVALID_API_KEY)
    ctx.caller, ctx.team, ctx.admin, ctx.key = entry.name, entry.team, entry.admin, entry


def is_loopback(host: str) -> bool:
    """True if ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def unsafe_bind_reason(auth: AuthConfig, host: str) -> str | None:
    """Why serving on ``host`` with this auth config would be unsafe, if it would."""
    if auth.enabled or auth.explicitly_disabled or is_loopback(host):
        return None
    return (
        f"refusing to listen on {host} with no API keys: anyone who can reach it could use "
        "your providers. Add auth.keys, bind to 127.0.0.1, or set auth.enabled to false "
        "if something in front of the gateway authenticates callers."
    )
