"""Is this channel still in that group? Group memberships live in Redis; if Redis
restarts (data gone) or expires them, sockets would silently stop receiving."""

from __future__ import annotations


async def is_member(layer, group: str, channel: str) -> bool | None:
    """True/False where the layer can tell; None where it keeps no readable membership."""
    if hasattr(layer, "_group_key") and hasattr(layer, "consistent_hash"):  # RedisChannelLayer
        connection = layer.connection(layer.consistent_hash(group))
        return await connection.zscore(layer._group_key(group), channel) is not None
    groups = getattr(layer, "groups", None)  # InMemoryChannelLayer
    if isinstance(groups, dict):
        return channel in groups.get(group, {})
    return None
