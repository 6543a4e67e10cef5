"""Group memberships that survive Redis losing its data.

Memberships live in Redis. If Redis restarts or is flushed, or expires them, sockets
would silently stop receiving. Each worker process runs one monitor: every `interval`
seconds it asks Redis about every watched (group, channel) pair in one pipelined round
trip per shard, so 1000 sockets cost one connection, not 1000 (redis-py's pool holds 100),
and calls back the sockets whose membership is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

OnLost = Callable[[], Awaitable[None]]


class MembershipMonitor:
    def __init__(self, layer, interval: float):
        self.layer, self.interval = layer, interval
        self.watched: dict[str, tuple[list[str], OnLost]] = {}
        self.task: asyncio.Task | None = None

    def watch(self, channel: str, groups: list[str], on_lost: OnLost) -> None:
        self.watched[channel] = (list(groups), on_lost)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    def unwatch(self, channel: str) -> None:
        self.watched.pop(channel, None)

    async def _run(self) -> None:
        while self.watched:
            await asyncio.sleep(self.interval)
            try:
                lost = await self.lost_channels()
            except (RedisError, OSError):
                continue  # Redis is away; the consumers' receive loops report that
            for channel in lost:
                entry = self.watched.pop(channel, None)
                if entry is None:
                    continue
                try:
                    await entry[1]()
                except Exception:  # one socket's failure must not stop the worker's monitor
                    logger.exception("closing %s after its membership was lost failed", channel)

    async def lost_channels(self) -> set[str]:
        pairs = [(group, ch) for ch, (groups, _) in list(self.watched.items()) for group in groups]
        if isinstance(self.layer, RedisChannelLayer):
            by_shard: dict[int, list[tuple[str, str]]] = {}
            for group, channel in pairs:
                by_shard.setdefault(self.layer.consistent_hash(group), []).append((group, channel))
            lost = set()
            for shard, shard_pairs in by_shard.items():
                async with self.layer.connection(shard).pipeline(transaction=False) as pipe:
                    for group, channel in shard_pairs:
                        pipe.zscore(self.layer._group_key(group), channel)
                    scores = await pipe.execute()
                lost |= {
                    ch for (_, ch), score in zip(shard_pairs, scores, strict=True) if score is None
                }
            return lost
        if isinstance(self.layer, InMemoryChannelLayer):
            return {ch for group, ch in pairs if ch not in self.layer.groups.get(group, {})}
        return set()  # e.g. RedisPubSubChannelLayer: subscriptions live in this process


_monitors: dict[tuple[int, int], MembershipMonitor] = {}


def monitor_for(layer, interval: float) -> MembershipMonitor | None:
    """This worker's monitor for `layer`, or None where memberships cannot be read."""
    if not isinstance(layer, (RedisChannelLayer, InMemoryChannelLayer)):
        return None
    key = (id(asyncio.get_running_loop()), id(layer))
    if key not in _monitors:
        _monitors[key] = MembershipMonitor(layer, interval)
    return _monitors[key]
