"""Group memberships that survive Redis losing its data.

Memberships live in Redis. If Redis restarts or is flushed, or expires them, sockets
would silently stop receiving. Each worker process runs one monitor: every `interval`
seconds it asks Redis about every watched (group, channel) pair in one pipelined round
trip per shard, so 1000 sockets cost one connection, not 1000, and calls back the
sockets whose membership is gone.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer
from redis.exceptions import RedisError

from .compat import group_members
from .layer import PerWorker

logger = logging.getLogger(__name__)

OnLost = Callable[[], Awaitable[None]]


class MembershipMonitor:
    def __init__(self, layer, interval: float):
        self.layer, self.interval = layer, interval
        self.watched: dict[str, tuple[list[str], OnLost]] = {}
        self.task: asyncio.Task | None = None

    def watch(self, channel: str, groups: list[str], on_lost: OnLost) -> None:
        """Watch `channel` in exactly `groups` (a later call replaces the earlier one)."""
        self.watched[channel] = (list(groups), on_lost)
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())

    def unwatch(self, channel: str) -> None:
        self.watched.pop(channel, None)

    async def _run(self) -> None:
        while self.watched:
            await asyncio.sleep(self.interval)
            pairs = [(g, ch) for ch, (groups, _) in list(self.watched.items()) for g in groups]
            try:
                present = await self.members(pairs)
            except (RedisError, OSError):
                continue  # Redis is away; the consumers' receive loops report that
            for group, channel in set(pairs) - present:
                entry = self.watched.get(channel)
                # Still watched in that group: a socket that left it meanwhile did so itself.
                if entry is None or group not in entry[0]:
                    continue
                del self.watched[channel]
                try:
                    await entry[1]()
                except Exception:  # one socket's failure must not stop the worker's monitor
                    logger.exception("closing %s after its membership was lost failed", channel)

    async def members(self, pairs: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """The (group, channel) pairs of `pairs` the layer still lists."""
        if isinstance(self.layer, RedisChannelLayer):
            return await group_members(self.layer, pairs)
        if isinstance(self.layer, InMemoryChannelLayer):
            return {(g, ch) for g, ch in pairs if ch in self.layer.groups.get(g, {})}
        return set(pairs)  # e.g. RedisPubSubChannelLayer: subscriptions live in this process


_monitors = PerWorker(MembershipMonitor)


def monitor_for(layer, interval: float) -> MembershipMonitor | None:
    """This worker's monitor for `layer`, or None where memberships cannot be read."""
    if not isinstance(layer, (RedisChannelLayer, InMemoryChannelLayer)):
        return None
    return _monitors.get(layer, interval)
