import pytest

from channels_tutorial.channel_layers import RedisChannelLayer


async def test_a_receive_reaches_redis_through_the_subclass():
    # Nothing listens on port 1: the subclass's pop still goes to Redis, and fails there.
    layer = RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])
    channel = await layer.new_channel()
    with pytest.raises(Exception, match="Connect|connect"):
        await layer.receive(channel)
