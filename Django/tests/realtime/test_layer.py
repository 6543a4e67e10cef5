import pytest
from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime.layer import ChannelLayerLost, GuardedLayer


def test_sockets_on_one_layer_share_one_wrapper():
    layer = InMemoryChannelLayer()
    wrapper = GuardedLayer.of(layer)
    assert GuardedLayer.of(layer) is wrapper
    assert GuardedLayer.of(InMemoryChannelLayer()) is not wrapper


async def test_the_shared_wrapper_calls_the_layer_as_it_is_at_each_call(monkeypatch):
    wrapper = GuardedLayer.of(InMemoryChannelLayer())
    await wrapper.group_add("kitchen", "socket-1")  # its group_add wrapper is kept

    async def refused(self, group, channel):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(InMemoryChannelLayer, "group_add", refused)
    with pytest.raises(ChannelLayerLost):
        await wrapper.group_add("kitchen", "socket-2")
