"""channels-redis: the Redis connection that holds a group's keys.

The presence store (realtime/presence.py) keeps a group's entries on the Redis server
that channels-redis hashes the group to, through its layer's connection() and
consistent_hash(): public names, but not documented API. The stack's own layer
(realtime/fanout.py) offers the same two.

Upstream: no issue filed yet for a documented way to reach a layer's Redis; remove this
module if channels-redis documents one.
"""

# The version this module was written against and tested with (tests/compat).
UPSTREAM = ("channels-redis", "4.3.0")


def shard_of(layer, key: str) -> int:
    """The index of the Redis server that holds `key` among the layer's hosts."""
    return layer.consistent_hash(key)


def connection_of(layer, shard: int):
    """A redis-py client for the layer's Redis server number `shard`."""
    return layer.connection(shard)
