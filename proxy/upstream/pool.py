"""One pooled ``aiohttp.ClientSession`` per upstream origin.

Sessions are opened when the gateway starts (and when a reload names a new
upstream) and closed at shutdown. A session is never closed under a request
that may still be using it: one whose upstream left the config is kept until
shutdown, and reused if the upstream comes back.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web


def origin_of(url: str) -> str:
    """``scheme://host:port`` of a URL: connections are pooled per origin."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.scheme}://{parts.hostname}:{port}"


def _json_dumps(value: object) -> str:
    return orjson.dumps(value).decode()


class UpstreamPool:
    """Keeps the client sessions, keyed by origin."""

    def __init__(self, connect_timeout: float = 10.0) -> None:
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._connect_timeout = connect_timeout

    def session_for(self, base_url: str) -> aiohttp.ClientSession:
        """The session for ``base_url``'s origin, opened on first use."""
        key = origin_of(base_url)
        session = self._sessions.get(key)
        if session is None or session.closed:
            session = self._open()
            self._sessions[key] = session
        return session

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=0,
            limit_per_host=0,
            ttl_dns_cache=300,
            keepalive_timeout=30,
        )
        return aiohttp.ClientSession(
            connector=connector,
            json_serialize=_json_dumps,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout),
            auto_decompress=True,
            trust_env=False,
            skip_auto_headers=("User-Agent",),
        )

    async def close(self) -> None:
        """Close every session; called once at shutdown."""
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            await session.close()


POOL = web.AppKey("pool", UpstreamPool)
