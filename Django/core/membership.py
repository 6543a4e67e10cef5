"""Is this channel still in that group? Group memberships live in Redis; if Redis
restarts (data gone) or expires them, sockets would silently stop receiving."""

from __future__ import annotations

from channels.layers import InMemoryChannelLayer
from channels_redis.core import RedisChannelLayer


async def is_member(layer, group: str, channel: str) -> bool | None:
    """True/False where the layer stores memberships we can read; None otherwise (e.g.
    RedisPubSubChannelLayer, whose subscriptions live in the worker process itself)."""
    if isinstance(layer, RedisChannelLayer):
        connection = layer.connection(layer.consistent_hash(group))
        return await connection.zscore(layer._group_key(group), channel) is not None
    if isinstance(layer, InMemoryChannelLayer):
        return channel in layer.groups.get(group, {})
    return None
