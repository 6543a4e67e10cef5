"""compat.channels_redis reaches a layer's Redis servers the way channels-redis does."""

import pytest
from channels_redis.core import RedisChannelLayer

from compat.channels_redis import connection_of, shard_of

HOSTS = ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"]


def test_a_group_lands_on_the_shard_channels_redis_hashes_it_to():
    layer = RedisChannelLayer(hosts=HOSTS)
    shards = {shard_of(layer, f"room-{n}") for n in range(64)}
    assert shards == {0, 1}  # 64 names all on one of two: 2^-63
    assert shard_of(layer, "room-1") == layer.consistent_hash("room-1")


async def test_each_shard_has_its_own_client_and_there_are_no_more():
    layer = RedisChannelLayer(hosts=HOSTS)
    first, second = connection_of(layer, 0), connection_of(layer, 1)
    assert first.connection_pool is not second.connection_pool
    assert first.connection_pool.connection_kwargs["port"] == 1
    with pytest.raises(ValueError, match="only 2 hosts"):
        connection_of(layer, 2)
    await layer.close_pools()
