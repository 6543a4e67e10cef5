"""What the realtime base counts (realtime/metrics.py), through Channels' communicator."""

import pytest
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.testing import WebsocketCommunicator
from prometheus_client import REGISTRY
from redis.exceptions import ConnectionError as RedisConnectionError

from metrics import tally
from realtime import consumers, metrics, presence
from realtime.presence import PresenceMixin

from .test_consumers import RoomConsumer, connected, frame

pytestmark = pytest.mark.django_db(transaction=True)


def sample(name: str, **labels) -> float:
    tally.flush()  # what the flusher thread adds once a second
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture(autouse=True)
def fresh_routes():
    # for_route() caches each route's children and whether metrics are on.
    metrics.for_route.cache_clear()
    yield
    metrics.for_route.cache_clear()


async def test_a_socket_is_counted_open_until_it_ends_and_its_close_code_kept():
    route = {"route": "room"}
    before = sample("realtime_socket_closes_total", code="1000", **route)
    comm = await connected()
    assert sample("realtime_sockets_open", **route) == 1
    await comm.disconnect()
    assert sample("realtime_sockets_open", **route) == 0
    assert sample("realtime_socket_closes_total", code="1000", **route) == before + 1


async def test_a_group_event_is_stamped_and_its_lag_observed_once_per_socket():
    before = sample("realtime_delivery_lag_seconds_count", route="room")
    sends = sample("realtime_group_send_seconds_count")
    comm = await connected()
    # Sent as a consumer sends: through its wrapped layer.
    sender = RoomConsumer()
    sender.channel_layer = get_channel_layer()
    await sender.channel_layer.group_send("lobby", {"type": "room.event"})
    assert await comm.receive_json_from() == {"type": "event"}
    assert sample("realtime_group_send_seconds_count") == sends + 1
    assert sample("realtime_delivery_lag_seconds_count", route="room") == before + 1
    await comm.disconnect()


class PresentConsumer(PresenceMixin, RoomConsumer):
    pass


@pytest.mark.parametrize(
    ("consumer", "where", "operation"),
    [
        (RoomConsumer, (InMemoryChannelLayer, "group_add"), "group_add"),
        # Presence's own Redis calls fail as the layer's do.
        (PresentConsumer, (presence.LocalStore, "enter"), "presence_enter"),
    ],
)
async def test_a_layer_failing_during_the_handshake_is_a_refusal_and_a_layer_failure(
    monkeypatch, consumer, where, operation
):
    async def refused(*args):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(*where, refused)
    route = consumer.route_label()
    labels = {"route": route, "reason": "layer_unavailable"}
    refusals = sample("realtime_handshakes_refused_total", **labels)
    failures = sample("realtime_channel_layer_failures_total", operation=operation)
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/room/")
    await comm.send_input({"type": "websocket.connect"})
    assert await comm.receive_output(timeout=2) == {"type": "websocket.accept"}
    assert (await comm.receive_output(timeout=2))["code"] == consumers.CLOSE_TRY_AGAIN
    assert sample("realtime_handshakes_refused_total", **labels) == refusals + 1
    assert sample("realtime_channel_layer_failures_total", operation=operation) == failures + 1
    assert sample("realtime_sockets_open", route=route) == 0
    assert sample("realtime_presence_sockets", route=route) == 0


async def test_with_metrics_off_nothing_is_counted_or_stamped(settings):
    settings.METRICS = False
    route = {"route": "room"}
    opened = sample("realtime_handshakes_accepted_total", **route)
    received = sample("realtime_frames_received_total", **route)
    comm = await connected()
    assert await frame(comm, type="nope") == {
        "type": "error",
        "detail": 'unknown frame type: "nope"',
    }
    assert metrics.stamp({"type": "x"}) == {"type": "x"}
    await comm.disconnect()
    assert sample("realtime_handshakes_accepted_total", **route) == opened
    assert sample("realtime_frames_received_total", **route) == received
