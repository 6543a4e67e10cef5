"""GuardedLayer: the channel layer as a consumer sees it."""

import pytest
from channels.layers import InMemoryChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError

from realtime.layer import ChannelLayerLost, GuardedLayer

CALLS = {
    "receive": ("specific.a!b",),
    "send": ("plain", {"type": "x"}),
    "group_add": ("room", "specific.a!b"),
    "group_discard": ("room", "specific.a!b"),
    "group_send": ("room", {"type": "x"}),
    "new_channel": (),
    "flush": (),  # one the wrapper does not write out: wrapped when asked for
}


@pytest.mark.parametrize("method", CALLS)
async def test_a_failure_of_the_layer_itself_is_channel_layer_lost(monkeypatch, method):
    async def lost(self, *args):
        raise RedisConnectionError("Redis went away")

    layer = InMemoryChannelLayer()
    monkeypatch.setattr(InMemoryChannelLayer, method, lost)
    with pytest.raises(ChannelLayerLost) as raised:
        await getattr(GuardedLayer(layer), method)(*CALLS[method])
    assert raised.value.layer is layer
    assert isinstance(raised.value.__cause__, RedisConnectionError)


async def test_the_wrapper_keeps_nothing_of_its_own_per_socket(monkeypatch):
    # One per socket: used, it still holds only the layer (a wrapper kept per method
    # was 2.7 KiB a socket), and a method patched afterwards is the one called.
    layer = InMemoryChannelLayer()
    guarded = GuardedLayer(layer)
    channel = await guarded.new_channel()
    await guarded.group_add("room", channel)
    await guarded.group_send("room", {"type": "hello"})
    assert (await guarded.receive(channel))["type"] == "hello"
    with pytest.raises(AttributeError):  # nowhere to keep anything
        guarded.kept = True
    calls = []

    async def counted(self, group, channel):
        calls.append(group)

    monkeypatch.setattr(InMemoryChannelLayer, "group_discard", counted)
    await guarded.group_discard("room", channel)
    assert calls == ["room"]


async def test_anything_but_a_coroutine_method_is_the_layers_own():
    layer = InMemoryChannelLayer(capacity=7)
    guarded = GuardedLayer(layer)
    assert guarded.capacity == 7
    assert guarded.require_valid_channel_name("specific.a!b")
