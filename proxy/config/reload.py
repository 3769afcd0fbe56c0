"""Hot reload: watch the config file and swap in a new snapshot when it changes.

The watcher polls the file's identity (device, inode, size, mtime) twice a
second, so it sees both an in-place write and a new file renamed over the old
one (editors, Kubernetes ConfigMaps). A new file is read and validated off the
event loop; if it is invalid the old config stays in force and one log line
names the error. Requests in flight keep the snapshot they started with.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from typing import Any, Callable, Mapping

from aiohttp import web

from proxy.config import ConfigError, GatewayConfig, load_config, with_api_overrides
from proxy.observability.logs import log_event, set_level
from proxy.pipeline.auth import unsafe_bind_reason
from proxy.state import StateHolder, build_state
from proxy.upstream.pool import UpstreamPool

RESTART_ONLY = (("api", "host"), ("api", "port"), ("api", "workers"), ("api", "idle_timeout"),
                ("monitoring", "metrics_enabled"), ("monitoring", "prometheus_port"), ("monitoring", "tracing"))


def file_identity(path: str) -> tuple[int, int, int, int] | None:
    """What changes when the file at ``path`` is rewritten or replaced."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class ConfigWatcher:
    """Reloads ``path`` into ``holder`` when it changes, or when asked (SIGHUP)."""

    def __init__(self, path: str, holder: StateHolder, pool: UpstreamPool, bind_host: str,
                 interval: float = 0.5,
                 on_reload: Callable[[GatewayConfig], None] | None = None,
                 on_failure: Callable[[], None] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.holder = holder
        self.pool = pool
        self.bind_host = bind_host
        self.interval = interval
        self.on_reload = on_reload
        self.on_failure = on_failure
        self.overrides = overrides
        self._identity = file_identity(path)
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    def start(self) -> None:
        """Begin polling."""
        self._task = asyncio.get_running_loop().create_task(self._poll())

    async def stop(self) -> None:
        """Stop polling."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def request_reload(self) -> None:
        """Reload now whether or not the file looks changed (the SIGHUP path)."""
        asyncio.get_running_loop().create_task(self.reload(reason="signal"))

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            identity = file_identity(self.path)
            if identity is not None and identity != self._identity:
                await self.reload(reason="file_changed", identity=identity)

    async def reload(self, reason: str, identity: tuple[int, int, int, int] | None = None) -> bool:
        """Load the file and swap it in; ``False`` (old config kept) if it is invalid."""
        async with self._lock:
            self._identity = identity or file_identity(self.path)
            try:
                config = with_api_overrides(await asyncio.to_thread(load_config, self.path), self.overrides)
                problem = unsafe_bind_reason(config.auth, self.bind_host)
                if problem:
                    raise ConfigError(problem)
            except ConfigError as exc:
                log_event("config_reload_failed", logging.ERROR, path=self.path, reason=reason,
                          error=str(exc), note="the previous config stays in force")
                if self.on_failure is not None:
                    self.on_failure()
                return False
            self.apply(config, reason)
            return True

    def apply(self, config: GatewayConfig, reason: str) -> None:
        """Swap in ``config``; log what changed that only a restart can apply."""
        old = self.holder.current
        self.holder.replace(build_state(config, self.pool, old.generation + 1))
        if self.on_reload is not None:
            self.on_reload(config)
        set_level(config.monitoring.log_level)
        ignored = [f"{section}.{name}" for section, name in RESTART_ONLY
                   if getattr(getattr(old.config, section), name) != getattr(getattr(config, section), name)]
        if old.config.usage != config.usage:
            ignored.append("usage")
        if (old.config.limits_redis_url, old.config.limits.redis_timeout) != \
                (config.limits_redis_url, config.limits.redis_timeout):
            ignored.append("limits.redis_url")
        fields = {"path": self.path, "reason": reason, "generation": old.generation + 1}
        if ignored:
            fields["needs_restart"] = ignored
        log_event("config_reloaded", **fields)


WATCHER = web.AppKey("watcher", "ConfigWatcher | None")
"""The running watcher, or ``None`` when the app was made without a config path."""
