"""realtime.compat reaches into channels-redis and Uvicorn internals: these fail when
either changes under it. The defects themselves are shown against real Redis and real
servers in ../proving_ground/tests (test_channel_layers.py, test_hostile.py)."""

import inspect
from importlib.metadata import version

import pytest
from channels_redis.core import RedisChannelLayer as UpstreamLayer
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from realtime import compat


@pytest.mark.parametrize("package", sorted(compat.UPSTREAM))
def test_installed_versions_are_the_ones_the_workarounds_were_written_for(package):
    assert version(package) == compat.UPSTREAM[package], (
        f"{package} changed: re-run the tests named in realtime/compat.py, drop what upstream"
        " fixed, then update UPSTREAM"
    )


def test_the_channels_redis_internals_used_are_there():
    layer = UpstreamLayer(hosts=["redis://127.0.0.1:1/0"])
    assert isinstance(layer.receive_buffer.default_factory(), object)
    assert layer._group_key("room").endswith(b"room")
    assert layer.consistent_hash("room") == 0
    for name in ("receive_single", "_brpop_with_clean", "create_pool", "connection"):
        assert callable(getattr(layer, name)), name
    assert "channel" in inspect.signature(UpstreamLayer._brpop_with_clean).parameters


def test_uvicorn_still_closes_at_once_after_a_protocol_error():
    # The defect WebSocketProtocol works around: upstream closes the transport
    # straight after its close frame. If this line is gone, re-check test_hostile.py
    # without the subclass.
    source = inspect.getsource(WebSocketsSansIOProtocol.handle_parser_exception)
    assert "self.transport.close()" in source


async def test_a_receive_reaches_redis_through_the_subclass():
    # Nothing listens on port 1: the subclass's pop still goes to Redis, and fails there.
    layer = compat.RedisChannelLayer(hosts=[{"address": "redis://127.0.0.1:1/0"}])
    channel = await layer.new_channel()
    with pytest.raises(Exception, match="Connect|connect"):
        await layer.receive(channel)


def test_uvicorns_slow_client_internals_are_still_there():
    # WebSocketProtocol's slow-client close replaces keepalive_timeout and waits on the
    # private `writable` event that send() waits on.
    assert "self.conn.fail(1011" in inspect.getsource(WebSocketsSansIOProtocol.keepalive_timeout)
    assert "await self.writable.wait()" in inspect.getsource(WebSocketsSansIOProtocol.send)
    init = inspect.getsource(WebSocketsSansIOProtocol.__init__)
    assert "self.pong_timer" in init and "self.close_timeout" in init
