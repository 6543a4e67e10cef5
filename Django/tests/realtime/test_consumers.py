"""The realtime base, through Channels' test communicator and its in-memory layer."""

import pytest
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from channels.layers import InMemoryChannelLayer, get_channel_layer
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.core import signing
from django.urls import path
from redis.exceptions import ConnectionError as RedisConnectionError
from uvicorn.protocols.utils import ClientDisconnected

from realtime import consumers, metrics, ratelimit, tickets
from realtime.consumers import JsonConsumer
from realtime.tickets import TicketAuthMiddleware, ticket_issue

QUIET_S = 0.5  # how long "nothing came" is watched for

# Channels' per-event clean-up closes stale database connections.
pytestmark = pytest.mark.django_db(transaction=True)


class RoomConsumer(JsonConsumer):
    """Joins "lobby" on connect; frames join and leave other rooms."""

    async def connect(self):
        await self.join("lobby")
        await self.accept()

    async def on_join(self, content):
        await self.join(content["room"])
        await self.send_json({"type": "joined", "room": content["room"]})

    async def on_leave(self, content):
        await self.leave(content["room"])
        await self.send_json({"type": "left", "room": content["room"]})

    async def on_cache(self, content):
        raise RedisConnectionError("the handler's own Redis (a cache) is down")

    async def room_event(self, event):
        await self.send_json({"type": "event"})


@pytest.fixture
def layer_failures():
    """realtime_channel_layer_failures_total, summed over operations, as it moves."""
    from prometheus_client import REGISTRY

    from metrics import tally

    def total():
        tally.flush()
        family = REGISTRY.get_sample_value
        return sum(
            family("realtime_channel_layer_failures_total", {"operation": op}) or 0.0
            for op in ("group_add", "group_discard", "group_send", "send", "receive")
        )

    before = total()
    return lambda: total() - before


async def connected(consumer=RoomConsumer) -> WebsocketCommunicator:
    comm = WebsocketCommunicator(consumer.as_asgi(), "/ws/room/")
    ok, _ = await comm.connect()
    assert ok
    return comm


async def frame(comm, **content) -> dict:
    await comm.send_json_to(content)
    return await comm.receive_json_from()


async def test_leaving_a_group_sticks_and_the_socket_stays_open():
    comm = await connected()
    assert await frame(comm, type="join", room="kitchen") == {"type": "joined", "room": "kitchen"}
    assert await frame(comm, type="leave", room="kitchen") == {"type": "left", "room": "kitchen"}
    await get_channel_layer().group_send("kitchen", {"type": "room.event"})
    assert await comm.receive_nothing(timeout=QUIET_S)  # not closed, not reached
    await get_channel_layer().group_send("lobby", {"type": "room.event"})
    assert await comm.receive_json_from() == {"type": "event"}
    await comm.disconnect()


async def test_a_redis_error_in_a_handler_is_the_handlers_not_a_lost_layer(layer_failures):
    comm = await connected()
    await comm.send_json_to({"type": "cache"})
    with pytest.raises(RedisConnectionError, match="cache"):
        await comm.receive_output(timeout=2)
    assert layer_failures() == 0


async def test_a_layer_failing_during_the_handshake_says_try_again_not_forbidden(
    monkeypatch, layer_failures
):
    async def refused(self, group, channel):
        raise RedisConnectionError("Connection refused")

    monkeypatch.setattr(InMemoryChannelLayer, "group_add", refused)
    comm = WebsocketCommunicator(RoomConsumer.as_asgi(), "/ws/room/")
    await comm.send_input({"type": "websocket.connect"})
    # Closed before accept, Uvicorn would answer HTTP 403.
    assert await comm.receive_output(timeout=2) == {"type": "websocket.accept"}
    assert await comm.receive_output(timeout=2) == {
        "type": "websocket.close",
        "code": consumers.CLOSE_TRY_AGAIN,
    }
    assert layer_failures() == 1


async def test_a_layer_failing_on_an_open_socket_closes_it_for_a_reconnect(
    monkeypatch, layer_failures
):
    add = InMemoryChannelLayer.group_add

    async def refused_for_kitchen(self, group, channel):
        if group == "kitchen":
            raise RedisConnectionError("Connection refused")
        await add(self, group, channel)

    monkeypatch.setattr(InMemoryChannelLayer, "group_add", refused_for_kitchen)
    comm = await connected()
    await comm.send_json_to({"type": "join", "room": "kitchen"})
    assert await comm.receive_output(timeout=2) == {
        "type": "websocket.close",
        "code": consumers.CLOSE_LAYER_LOST,
    }
    assert layer_failures() == 1


async def test_a_vanished_client_is_not_taken_for_a_lost_channel_layer(monkeypatch, layer_failures):
    # Uvicorn raises ClientDisconnected (an OSError) when a send meets a closed socket;
    # it must reach Uvicorn, not count as the layer failing.
    async def gone(self, *args, **kwargs):
        raise ClientDisconnected()

    monkeypatch.setattr(AsyncWebsocketConsumer, "send", gone)
    comm = await connected()
    await comm.send_json_to({"type": "join", "room": "kitchen"})
    with pytest.raises(ClientDisconnected):
        await comm.receive_output(timeout=2)
    assert layer_failures() == 0


async def test_the_rate_limit_has_defaults_without_settings(settings):
    del settings.WS_RATE_LIMIT, settings.WS_RATE_BURST
    comm = await connected()
    frames = []
    for _ in range(ratelimit.RATE_BURST + 5):
        await comm.send_json_to({"type": "nope"})
        frames.append(await comm.receive_json_from())
    limited = [f for f in frames if "rate limit" in f["detail"]]
    assert len(limited) == 5
    await comm.disconnect()


@pytest.fixture
def db_cleanups(monkeypatch):
    """Counts Channels' close-stale-DB-connections hops (channels.consumer.dispatch)."""
    import channels.consumer

    calls = []

    async def record():
        calls.append(1)

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", record)
    return calls


def bare(consumer_class):
    """A consumer outside a socket, with the counts its socket's wrapper would give it."""
    consumer = consumer_class()
    consumer.counts = metrics.SocketCounts(metrics.for_route(consumer_class.route_label()))
    return consumer


async def _dispatch_event(consumer_class) -> list:
    sent = []
    consumer = bare(consumer_class)

    async def send(message):
        sent.append(message)

    consumer.base_send = send
    await consumer.dispatch({"type": "room.event"})
    return sent


async def test_events_keep_channels_db_cleanup_unless_the_class_opts_out(db_cleanups):
    class ForwardOnly(RoomConsumer):
        event_db_cleanup = False

    assert await _dispatch_event(RoomConsumer)  # Channels' default: one hop per event
    assert db_cleanups == [1]
    assert await _dispatch_event(ForwardOnly)
    assert db_cleanups == [1]


async def test_client_frames_keep_the_db_cleanup_either_way(db_cleanups):
    class ForwardOnly(RoomConsumer):
        event_db_cleanup = False

    comm = await connected(ForwardOnly)
    before = len(db_cleanups)
    await frame(comm, type="join", room="kitchen")
    assert len(db_cleanups) > before
    await comm.disconnect()


async def test_an_event_without_a_handler_is_an_error(db_cleanups):
    class ForwardOnly(RoomConsumer):
        event_db_cleanup = False

    with pytest.raises(ValueError, match="No handler for message type chat.unknown"):
        await bare(ForwardOnly).dispatch({"type": "chat.unknown"})


# -- who the socket is, and what it may do --------------------------------------------


class WhoConsumer(JsonConsumer):
    """Says who it is; may not join "private", nor send a "forbidden" frame."""

    async def connect(self):
        await self.join(self.scope["url_route"]["kwargs"]["room"])
        await self.accept()
        await self.send_json({"type": "hello", "user": self.scope["user"].get_username()})

    async def may_join(self, group):
        return group != "private"

    async def may_post(self, content):
        return content.get("type") != "forbidden"

    async def on_forbidden(self, content):
        raise AssertionError("may_post said no")

    async def on_ping(self, content):
        await self.send_json({"type": "pong"})


def who(query: str = "", room: str = "lobby", scope_user=None) -> WebsocketCommunicator:
    # As asgi.py stacks it: a ticket's user over the scope's.
    application = TicketAuthMiddleware(URLRouter([path("ws/who/<room>/", WhoConsumer.as_asgi())]))
    comm = WebsocketCommunicator(application, f"/ws/who/{room}/{query}")
    if scope_user is not None:
        comm.scope["user"] = scope_user
    return comm


async def refused_with(comm: WebsocketCommunicator) -> tuple[dict, int]:
    """The error frame and close code of a handshake turned down with a code."""
    ok, _ = await comm.connect()
    assert ok  # accepted, so that the client can read why
    error = await comm.receive_json_from()
    closed = await comm.receive_output()
    assert closed["type"] == "websocket.close"
    return error, closed["code"]


async def test_a_guest_is_let_in_where_guests_are_allowed(settings):
    settings.REALTIME_GUESTS = True
    comm = who()
    assert (await comm.connect())[0]
    assert await comm.receive_json_from() == {"type": "hello", "user": ""}
    await comm.disconnect()


async def test_without_a_session_or_ticket_a_socket_is_refused_where_guests_are_not(settings):
    settings.REALTIME_GUESTS = False
    error, code = await refused_with(who())
    assert code == consumers.CLOSE_SIGN_IN_REQUIRED == 4401
    assert error == {"type": "error", "detail": "sign in first"}


async def test_the_sessions_user_is_the_sockets(settings):
    settings.REALTIME_GUESTS = False
    ann = await database_sync_to_async(User.objects.create_user)("ann")
    comm = who(scope_user=ann)
    assert (await comm.connect())[0]
    assert await comm.receive_json_from() == {"type": "hello", "user": "ann"}
    await comm.disconnect()


async def test_a_ticket_is_the_sockets_user_once(settings):
    settings.REALTIME_GUESTS = False
    ann = await database_sync_to_async(User.objects.create_user)("ann")
    ticket = ticket_issue(ann)
    comm = who(f"?ticket={ticket}")
    assert (await comm.connect())[0]
    assert await comm.receive_json_from() == {"type": "hello", "user": "ann"}
    await comm.disconnect()
    error, code = await refused_with(who(f"?ticket={ticket}"))
    assert code == tickets.CLOSE_TICKET_USED == 4412
    assert "already used" in error["detail"]


async def test_a_forged_ticket_is_refused_even_where_guests_are_allowed(settings):
    settings.REALTIME_GUESTS = True
    error, code = await refused_with(who("?ticket=ann:forged"))
    assert code == tickets.CLOSE_TICKET_INVALID == 4410
    assert error["detail"] == "ticket invalid"


async def test_an_expired_ticket_is_refused(settings, monkeypatch):
    ann = await database_sync_to_async(User.objects.create_user)("ann")
    ticket = ticket_issue(ann)
    later = signing.time.time() + settings.REALTIME_TICKET_MAX_AGE + 1
    monkeypatch.setattr(signing.time, "time", lambda: later)
    _, code = await refused_with(who(f"?ticket={ticket}"))
    assert code == tickets.CLOSE_TICKET_EXPIRED == 4411


async def test_may_join_turns_the_handshake_down_with_4403():
    error, code = await refused_with(who(room="private"))
    assert code == consumers.CLOSE_FORBIDDEN == 4403
    assert error["detail"] == "you may not join this room"


async def test_may_post_closes_a_socket_that_sends_what_it_may_not():
    comm = who()
    assert (await comm.connect())[0]
    await comm.receive_json_from()  # hello
    await comm.send_json_to({"type": "ping"})
    assert await comm.receive_json_from() == {"type": "pong"}
    await comm.send_json_to({"type": "forbidden"})
    assert await comm.receive_json_from() == {"type": "error", "detail": "you may not post here"}
    assert await comm.receive_output() == {"type": "websocket.close", "code": 4403}
