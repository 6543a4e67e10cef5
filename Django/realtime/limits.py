"""Caps on open sockets, so that one user or one flood cannot take the stack from everyone
else (docs/production.md, "Limits").

- Per signed-in user (settings.REALTIME_USER_SOCKETS), on every worker and replica: each
  socket of a user is an entry in the user's Redis sorted set, presence's store
  (presence.py), refreshed by its worker and expiring when the worker dies. Past the cap,
  the handshake is refused with CLOSE_TOO_MANY_SOCKETS (JsonConsumer.hold_user_slot).
- Per worker (settings.REALTIME_WORKER_SOCKETS, unset: worker_socket_limit() derives it
  from the container's memory limit): past it, WorkerSockets closes the handshake with
  1013, "try again later", before the consumer or the channel layer spend anything on it,
  so that a flood is shed while the worker is still well under the memory limit.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from django.conf import settings

from . import metrics
from .layer import PerWorker
from .presence import PRESENCE_TTL, STORED_ON, Presence

logger = logging.getLogger(__name__)

# Close code for a signed-in user's socket past REALTIME_USER_SOCKETS (4000-4999 are the
# application's own; 429 as in HTTP's "too many requests").
CLOSE_TOO_MANY_SOCKETS = 4429
# Close code for a handshake that came while the channel layer was unavailable
# (consumers.py), or past its worker's cap: the socket is accepted only to say "try again
# later", as a 403 would say "forbidden".
CLOSE_TRY_AGAIN = 1013

# The share of the container's memory limit the workers plan for; the rest is room for
# what the estimate leaves out (a burst's buffers, the garbage collector's lag).
MEMORY_SHARE = 0.8
SOCKET_MEMORY_KIB = 64
BUSY = json.dumps({"type": "error", "detail": "the server is full; try again later"})


class UserSockets(Presence):
    """One worker's sockets of signed-in users, as entries of one sorted set per user
    (presence's store and refresh: a killed worker's entries expire within its TTL)."""

    store_kind = "user-sockets"

    async def take(self, user: str, channel: str, limit: int) -> bool:
        """Count `channel` against `user`'s cap; False if the user holds `limit` already."""
        entry = f"{channel} "
        if not await self.store.take(user, entry, time.time(), self.ttl, limit):
            return False
        self.local.setdefault(user, set()).add(entry)
        self._start()
        return True

    async def release(self, user: str, channel: str) -> None:
        await self.store.leave(user, self.forget(user, channel, ""))

    async def _refresh(self) -> None:
        local = {user: list(entries) for user, entries in self.local.items()}  # a copy
        await self.store.refresh(local, time.time(), self.ttl)


_user_sockets = PerWorker(UserSockets)


def user_sockets_for(layer) -> UserSockets | None:
    """This worker's user sockets on `layer`, or None where the layer has no store for
    them (RedisPubSubChannelLayer: no per-user cap)."""
    if not isinstance(layer, STORED_ON):
        return None
    return _user_sockets.get(layer, getattr(settings, "REALTIME_PRESENCE_TTL", PRESENCE_TTL))


def memory_limit() -> int:
    """Bytes this process's container may use: its cgroup's limit (v2, then v1), or the
    machine's memory where there is none (natively)."""
    limits = []
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            value = Path(path).read_text().strip()
        except OSError:
            continue
        if value.isdigit():
            limits.append(int(value))
    limits.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    return min(limits)


def resident_memory() -> int:
    """Bytes of this process in memory now (RSS)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def worker_socket_limit(limit: int, workers: int, baseline: int, per_socket: int) -> int:
    """Sockets one worker may hold: MEMORY_SHARE of the memory `limit`, less every
    process's `baseline` (the Gunicorn master counted as large as a worker), shared by the
    `workers`, at `per_socket` bytes a socket; at least one."""
    spare = limit * MEMORY_SHARE - (workers + 1) * baseline
    return max(int(spare / workers / per_socket), 1)


class WorkerSockets:
    """ASGI middleware around a consumer: this worker's sockets, in their handshake or
    open, counted against its cap; past it, the handshake is accepted only to be closed
    with 1013 (an error frame says why), counted as refused ("worker_full")."""

    open = 0  # this worker's sockets, every route's
    _limit: int | None = None
    _limit_known = False

    def __init__(self, inner) -> None:
        self.inner = inner

    @classmethod
    def limit(cls) -> int | None:
        """This worker's cap, worked out at its first socket (its baseline memory is then
        the app's, loaded); None: no cap."""
        if not cls._limit_known:
            cls._limit, cls._limit_known = cls._work_out_limit(), True
            if cls._limit is not None and metrics.enabled():
                metrics.SOCKETS_LIMIT.set(cls._limit)
        return cls._limit

    @staticmethod
    def _work_out_limit() -> int | None:
        configured = getattr(settings, "REALTIME_WORKER_SOCKETS", None)
        if configured is not None:
            return configured or None
        limit, workers = memory_limit(), getattr(settings, "REALTIME_WORKERS", 1)
        baseline = resident_memory()
        per_socket = getattr(settings, "REALTIME_SOCKET_MEMORY", SOCKET_MEMORY_KIB) * 1024
        sockets = worker_socket_limit(limit, workers, baseline, per_socket)
        logger.info(
            "worker %d: at most %d sockets (memory limit %d MiB, %d workers of %d MiB,"
            " %d KiB a socket)",
            os.getpid(),
            sockets,
            limit >> 20,
            workers,
            baseline >> 20,
            per_socket >> 10,
        )
        if sockets == 1:
            logger.warning(
                "the memory limit leaves the workers no room for sockets: raise it, or set"
                " REALTIME_WORKER_SOCKETS"
            )
        return sockets

    async def __call__(self, scope, receive, send):
        limit = self.limit()
        if limit is not None and WorkerSockets.open >= limit:
            await self.refuse(scope, receive, send)
            return
        WorkerSockets.open += 1
        try:
            await self.inner(scope, receive, send)
        finally:
            WorkerSockets.open -= 1

    @staticmethod
    async def refuse(scope, receive, send) -> None:
        counts = scope[metrics.COUNTS]
        counts.refusing = True
        counts.route.refused("worker_full")
        if (await receive())["type"] != "websocket.connect":
            return  # the client left first
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": BUSY})
        await send({"type": "websocket.close", "code": CLOSE_TRY_AGAIN})
