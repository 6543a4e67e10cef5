"""redis-py: a connection pool that closes its idle connections.

Upstream: redis/redis-py#3430 (open), garbage collection of a pool's idle connections.
Remove once redis-py closes them itself: the stack's layer (realtime/fanout.py) then
takes redis-py's own ConnectionPool.
"""

import asyncio

from redis.asyncio import ConnectionPool

# The version this module was written against and tested with (tests/compat).
UPSTREAM = ("redis", "8.1.0")


class IdleClosingConnectionPool(ConnectionPool):
    """redis-py's pool, closing its idle connections once a minute.

    redis-py keeps every connection it ever opened. After a burst (hundreds of sockets
    joining at once) a worker would hold that many idle Redis connections, and their file
    descriptors, for ever. Its own disconnect(inuse_connections=False) cannot be used for
    this: it does not take the pool's lock, so a task can take an idle connection while
    it is being closed, and its command fails ("Connection closed by server"; `make soak`
    saw it once a minute or so). Idle connections are taken out of the pool under its
    lock (private: _lock, _available_connections), then closed; new ones open on demand.
    A task of the pool's closes them once a minute for as long as any are idle, so they
    close even when the worker's last socket has gone and nothing uses the pool again
    (`make soak PATTERN=sessions` saw them stay until the next socket came)."""

    idle_close_interval = 60.0
    _idle_closer: asyncio.Task | None = None

    async def release(self, connection) -> None:
        await super().release(connection)
        if self._idle_closer is None or self._idle_closer.done():
            self._idle_closer = asyncio.create_task(self._close_idle_while_any())

    async def _close_idle_while_any(self) -> None:
        while self._available_connections:
            await asyncio.sleep(self.idle_close_interval)
            await self.close_idle()

    async def disconnect(self, inuse_connections: bool = True) -> None:
        if self._idle_closer is not None:
            self._idle_closer.cancel()
        await super().disconnect(inuse_connections)

    async def close_idle(self) -> None:
        async with self._lock:
            idle, self._available_connections = self._available_connections, []
        await asyncio.gather(*(c.disconnect() for c in idle), return_exceptions=True)
