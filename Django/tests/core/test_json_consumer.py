import pytest
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from redis.exceptions import ConnectionError as RedisConnectionError
from uvicorn.protocols.utils import ClientDisconnected

from core import json_consumer
from core.consumers import EchoConsumer


@pytest.fixture
def resets(monkeypatch):
    calls = []

    async def record(layer):
        calls.append(layer)

    monkeypatch.setattr(json_consumer, "reset_layer_pools", record)
    return calls


def failing_with(monkeypatch, error):
    async def fail(self, scope, receive, send):
        raise error

    monkeypatch.setattr(AsyncJsonWebsocketConsumer, "__call__", fail)


async def test_a_lost_channel_layer_closes_the_socket_and_resets_the_pools(monkeypatch, resets):
    failing_with(monkeypatch, RedisConnectionError("Connection refused"))
    sent = []

    async def send(message):
        sent.append(message)

    consumer = EchoConsumer()
    consumer.channel_layer = object()
    await consumer({"type": "websocket"}, None, send)
    assert sent == [{"type": "websocket.close", "code": json_consumer.CLOSE_LAYER_LOST}]
    assert resets == [consumer.channel_layer]


async def test_a_vanished_client_is_not_taken_for_a_lost_channel_layer(monkeypatch, resets):
    # Uvicorn raises ClientDisconnected (an OSError) when a broadcast meets a closed
    # socket; it must reach Uvicorn, not reset the worker's Redis pools.
    failing_with(monkeypatch, ClientDisconnected())
    with pytest.raises(ClientDisconnected):
        await EchoConsumer()({"type": "websocket"}, None, None)
    assert resets == []


async def test_one_failing_socket_does_not_stop_the_workers_membership_monitor():
    from channels.layers import InMemoryChannelLayer

    from core.membership import MembershipMonitor

    layer = InMemoryChannelLayer()
    monitor = MembershipMonitor(layer, interval=0.01)
    closed = []

    async def gone_already():
        raise ClientDisconnected()

    async def still_here():
        closed.append("b")

    monitor.watch("chan-a", ["g"], gone_already)
    monitor.watch("chan-b", ["g"], still_here)  # neither is in the group: both lost
    await monitor.task
    assert closed == ["b"] and monitor.watched == {}


@pytest.fixture
def db_cleanups(monkeypatch):
    """Counts Channels' close-stale-DB-connections hops (channels.consumer.dispatch)."""
    import channels.consumer

    calls = []

    async def record():
        calls.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", record)
    return calls


async def test_layer_events_skip_the_per_message_db_cleanup(db_cleanups):
    sent = []
    consumer = EchoConsumer()
    consumer.base_send = lambda message: _append(sent, message)
    await consumer.dispatch({"type": "echo.broadcast", "text": "hi", "from_pid": 1})
    assert [message["type"] for message in sent] == ["websocket.send"]
    assert db_cleanups == []


async def test_client_frames_keep_the_db_cleanup(db_cleanups):
    consumer = EchoConsumer()
    consumer.base_send = lambda message: _append([], message)
    consumer.bucket = json_consumer.TokenBucket(10, 10)
    await consumer.dispatch({"type": "websocket.receive", "text": '{"type": "echo"}'})
    assert db_cleanups == [1]


async def test_the_db_cleanup_on_events_can_be_restored(db_cleanups, settings):
    settings.WS_EVENT_DB_CLEANUP = True
    consumer = EchoConsumer()
    consumer.base_send = lambda message: _append([], message)
    await consumer.dispatch({"type": "echo.broadcast", "text": "hi", "from_pid": 1})
    assert db_cleanups == [1]


async def test_an_event_without_a_handler_is_an_error(db_cleanups):
    with pytest.raises(ValueError, match="No handler for message type chat.unknown"):
        await EchoConsumer().dispatch({"type": "chat.unknown"})


async def _append(sent, message):
    sent.append(message)
