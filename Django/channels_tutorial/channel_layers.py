"""channels-redis's RedisChannelLayer with fixes around a receiver that goes away, and a
connection pool that gives idle connections back.

Written against channels-redis 4.3.0 (with redis-py 8.1). ../stack/tests/test_channel_layers.py
shows each defect on the unpatched class against a real Redis, and fails once upstream
fixes it: then delete that part, and this module once all are gone (settings.py names
the class). Minimal reproductions, to report upstream: docs/channels-redis.md.
"""

import asyncio
import collections
import time

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from redis.asyncio import ConnectionPool


class IdleClosingConnectionPool(ConnectionPool):
    """redis-py's pool, closing its idle connections once a minute.

    redis-py keeps every connection it ever opened. After a burst (hundreds of sockets
    joining at once) a worker would hold that many idle Redis connections, and their file
    descriptors, for ever. Closed connections reconnect when next used."""

    idle_close_interval = 60.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next_idle_close = time.monotonic() + self.idle_close_interval

    async def release(self, connection) -> None:
        await super().release(connection)
        if time.monotonic() >= self._next_idle_close:
            self._next_idle_close = time.monotonic() + self.idle_close_interval
            await self.disconnect(inuse_connections=False)


class ReceiveBuffers(collections.defaultdict):
    """channels-redis's per-channel receive queues, minus queues for closed channels.

    The worker's receiver hands each message it pops from Redis to the queue of every
    local channel it names, and a defaultdict makes a queue for a channel that has none.
    A group message can still arrive for a socket that has just closed; its new queue,
    message included, would then stay for ever. Channels whose receiver has gone get a
    throwaway queue instead, for as long as a late message can arrive (the layer's
    expiry); channel names are never reused."""

    def __init__(self, default_factory, expiry: float) -> None:
        super().__init__(default_factory)
        self.expiry = expiry
        self.closed: collections.OrderedDict[str, float] = collections.OrderedDict()

    def close(self, channel: str) -> None:
        self.pop(channel, None)
        now = time.monotonic()
        self.closed[channel] = now
        while self.closed and next(iter(self.closed.values())) < now - self.expiry:
            self.closed.popitem(last=False)

    def __missing__(self, channel):
        if channel in self.closed:
            return self.default_factory()
        return super().__missing__(channel)


class RedisChannelLayer(BaseRedisChannelLayer):
    """Loses no message when a receiving socket closes, keeps no queue for a channel
    whose receiver has gone, and closes idle Redis connections."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.receive_buffer = ReceiveBuffers(self.receive_buffer.default_factory, self.expiry)
        self._unfinished_pops: dict[str, asyncio.Future] = {}
        self._idle_pops: set[asyncio.Future] = set()

    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:  # Sentinel and keyword hosts: channels-redis's own pool
            return super().create_pool(index)
        return IdleClosingConnectionPool.from_url(host.pop("address"), **host)

    async def receive_single(self, channel):
        if not channel.endswith("!"):  # a plain channel: nobody else waits on this pop
            return await super().receive_single(channel)
        # The receive-lock holder pops for every socket of this worker: BZPOPMIN, then a
        # copy into the backup queue. Cancelled in between (its own socket closed just as
        # a message for another socket arrived), the popped message was lost and that
        # socket never saw it. So the pop runs in a task of its own, which a cancelled
        # holder leaves running, and the next holder waits for that same pop.
        pop = self._unfinished_pops.pop(channel, None)
        if pop is None or (pop.done() and (pop.cancelled() or pop.exception())):
            pop = asyncio.ensure_future(super().receive_single(channel))
            pop.add_done_callback(_retrieve_exception)  # the next holder starts afresh
        self._idle_pops.discard(pop)
        try:
            return await asyncio.shield(pop)
        except asyncio.CancelledError:
            self._unfinished_pops[channel] = pop
            raise

    async def _brpop_with_clean(self, index, channel, timeout):
        if asyncio.current_task() in self._idle_pops:
            # No socket of this worker is receiving: stop rather than block again. What
            # this pop already took stays in it for the next receiver.
            self._idle_pops.discard(asyncio.current_task())
            raise asyncio.CancelledError
        return await super()._brpop_with_clean(index, channel, timeout)

    async def receive(self, channel):
        # Channels cancels a consumer's receive when its socket closes. receive() drops
        # that channel's queue itself only when the cancellation arrives while it waits;
        # cancelled while holding the receive lock, the queue stayed for ever (about
        # 3 KiB per closed socket, `make soak`).
        try:
            return await super().receive(channel)
        except asyncio.CancelledError:
            self.receive_buffer.close(channel)
            if self.receive_count == 0:
                self._idle_pops.update(self._unfinished_pops.values())
            raise


def _retrieve_exception(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()
