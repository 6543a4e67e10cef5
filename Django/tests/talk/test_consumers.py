import os
import socket

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from channels_tutorial.asgi import application
from talk import services
from talk.consumers import CLOSE_INVALID_ROOM
from talk.models import Message

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://localhost")]
message_count = database_sync_to_async(Message.objects.count)


async def joined(room: str = "lobby"):
    communicator = WebsocketCommunicator(application, f"/ws/talk/{room}/", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_json_from()


async def test_history_on_connect_is_the_last_fifty_oldest_first():
    create = database_sync_to_async(services.message_create)
    for n in range(55):
        await create(room="lobby", nickname="bot", text=f"m{n}")
    communicator, history = await joined()
    assert history["type"] == "history"
    assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(5, 55)]
    assert (history["server"], history["worker_pid"]) == (socket.gethostname(), os.getpid())
    await communicator.disconnect()


async def test_a_message_is_stored_and_broadcast_to_everyone_in_the_room():
    ann, _ = await joined()
    bob, _ = await joined()
    elsewhere, _ = await joined("elsewhere")
    await ann.send_json_to({"type": "message", "nickname": "ann", "text": "hi 👋 <b>"})
    for communicator in (ann, bob):
        frame = await communicator.receive_json_from()
        assert frame["type"] == "message"
        assert (frame["nickname"], frame["text"], frame["room"]) == ("ann", "hi 👋 <b>", "lobby")
        assert frame["id"] and frame["created_at"]
    assert await elsewhere.receive_nothing()
    assert await message_count() == 1
    for communicator in (ann, bob, elsewhere):
        await communicator.disconnect()


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ({"text_data": "{oops"}, "not valid JSON"),
        ({"bytes_data": b"\xff"}, "binary frames"),
        ({"text_data": '"just a string"'}, "unknown frame type"),
        ({"text_data": '{"type": "shout", "text": "x"}'}, "unknown frame type"),
        ({"text_data": '{"type": "message", "text": "no nickname"}'}, "nickname: Field required"),
        ({"text_data": '{"type": "message", "nickname": "", "text": "x"}'}, "nickname"),
        ({"text_data": '{"type": "message", "nickname": "n", "text": ""}'}, "text"),
        (
            {"text_data": '{"type": "message", "nickname": "' + "n" * 33 + '", "text": "x"}'},
            "nickname",
        ),
        (
            {"text_data": '{"type": "message", "nickname": "n", "text": "' + "x" * 2001 + '"}'},
            "text",
        ),
        ({"text_data": '{"type": "message", "nickname": "n", "text": 5}'}, "text"),
        ({"text_data": '{"type": "message", "nickname": "n", "text": "x", "admin": 1}'}, "admin"),
    ],
)
async def test_bad_input_gets_an_error_frame_stores_nothing_and_keeps_the_socket(frame, detail):
    communicator, _ = await joined()
    await communicator.send_to(**frame)
    error = await communicator.receive_json_from()
    assert error["type"] == "error"
    assert detail in error["detail"]
    assert await message_count() == 0
    await communicator.send_json_to({"type": "message", "nickname": "n", "text": "still open"})
    assert (await communicator.receive_json_from())["text"] == "still open"
    await communicator.disconnect()


@pytest.mark.parametrize("room", ["UPPER", "a" * 81, "%E6%97%A5", "a.b", "..", "a%2Fb"])
async def test_bad_room_names_are_refused_with_a_clear_error(room):
    communicator = WebsocketCommunicator(application, f"/ws/talk/{room}/", headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected  # accepted only to say why, then closed
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and "room names are" in error["detail"]
    assert (await communicator.receive_output())["code"] == CLOSE_INVALID_ROOM


async def test_a_socket_that_lost_its_group_membership_is_closed_to_resync(monkeypatch):
    # What a Redis restart does: the memberships are gone, the socket is not.
    monkeypatch.setattr("realtime.consumers.JsonConsumer.membership_check_interval", 0.05)
    communicator, _ = await joined("resync")
    from channels.layers import get_channel_layer

    get_channel_layer().groups.clear()
    closed = await communicator.receive_output(timeout=2)
    assert closed == {"type": "websocket.close", "code": 1012}
