import os
import socket

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from channels_tutorial.asgi import application
from talk import services
from talk.consumers import CLOSE_INVALID_ROOM
from talk.models import Message, Room

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
        (
            {"text_data": '{"type": "message", "text": "no nickname"}'},
            "nickname: a guest's message needs one",
        ),
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


async def test_a_socket_whose_membership_was_lost_still_gets_each_message(settings):
    # What a Redis flush does on channels-redis's layer: the memberships are gone, the
    # socket is not. The worker's check of its rooms' heads reads what it missed.
    settings.REALTIME_STREAM_CHECK = 0.1
    communicator, _ = await joined("flushed")
    from channels.layers import get_channel_layer

    get_channel_layer().groups.clear()
    sender, _ = await joined("flushed")  # a socket of another worker, say
    await sender.send_json_to({"type": "message", "nickname": "ann", "text": "still here"})
    assert (await sender.receive_json_from())["text"] == "still here"
    frame = await communicator.receive_json_from(timeout=5)
    assert (frame["type"], frame["text"]) == ("message", "still here")
    assert await communicator.receive_nothing()  # once
    for each in (communicator, sender):
        await each.disconnect()


# -- authors and private rooms -------------------------------------------------------


@database_sync_to_async
def session_cookie(username: str) -> tuple[bytes, bytes]:
    """The Cookie header of a browser signed in as `username` (made if need be)."""
    client = Client()
    client.force_login(User.objects.get_or_create(username=username)[0])
    return (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode())


async def joined_as(username: str, room: str = "lobby"):
    headers = [*ORIGIN, await session_cookie(username)]
    communicator = WebsocketCommunicator(application, f"/ws/talk/{room}/", headers=headers)
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_json_from()


async def test_a_signed_in_users_message_is_theirs_whatever_name_the_frame_gives():
    bob, _ = await joined_as("bob")
    await bob.send_json_to({"type": "message", "nickname": "alice", "text": "I am alice"})
    frame = await bob.receive_json_from()
    assert (frame["nickname"], frame["guest"], frame["text"]) == ("bob", False, "I am alice")
    stored = await database_sync_to_async(Message.objects.select_related("author").get)()
    assert (stored.author.username, stored.nickname, stored.guest) == ("bob", "bob", False)
    await bob.disconnect()


async def test_a_user_id_in_a_frame_is_refused_and_nothing_is_stored():
    bob, _ = await joined_as("bob")
    await bob.send_json_to({"type": "message", "text": "hi", "user_id": 1})
    error = await bob.receive_json_from()
    assert error["type"] == "error" and "user_id" in error["detail"]
    assert await message_count() == 0
    await bob.disconnect()


async def test_a_guests_message_is_marked_as_a_guests():
    guest, _ = await joined()
    await guest.send_json_to({"type": "message", "nickname": "bob", "text": "hi"})
    frame = await guest.receive_json_from()
    assert (frame["nickname"], frame["guest"]) == ("bob", True)
    await guest.disconnect()


@database_sync_to_async
def private_room(slug: str, *members: str) -> None:
    room = Room.objects.create(slug=slug, private=True)
    room.members.set([User.objects.get_or_create(username=name)[0] for name in members])


@database_sync_to_async
def private_room_members(slug: str, *members: str) -> None:
    Room.objects.get(slug=slug).members.set(User.objects.filter(username__in=members))


async def test_a_private_room_admits_its_members_only():
    await private_room("staff", "ann")
    member, history = await joined_as("ann", "staff")
    assert history["type"] == "history"
    await member.send_json_to({"type": "message", "text": "members only"})
    assert (await member.receive_json_from())["text"] == "members only"
    for headers in ([*ORIGIN], [*ORIGIN, await session_cookie("bob")]):  # a guest, a user
        outsider = WebsocketCommunicator(application, "/ws/talk/staff/", headers=headers)
        assert (await outsider.connect())[0]
        assert (await outsider.receive_json_from())["detail"] == "you may not join this room"
        assert await outsider.receive_output() == {"type": "websocket.close", "code": 4403}
    await member.disconnect()


async def test_a_member_taken_off_a_private_room_can_no_longer_post():
    await private_room("staff", "ann")
    member, _ = await joined_as("ann", "staff")
    await private_room_members("staff")
    await member.send_json_to({"type": "message", "text": "still here?"})
    assert (await member.receive_json_from())["detail"] == "you may not post here"
    assert await member.receive_output() == {"type": "websocket.close", "code": 4403}
    assert await message_count() == 0


# -- presence ---------------------------------------------------------------------------


async def listening(headers=()):
    """A socket in the lobby that asked for presence (?presence=1); its history read."""
    communicator = WebsocketCommunicator(
        application, "/ws/talk/lobby/?presence=1", headers=[*ORIGIN, *headers]
    )
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "history"
    return communicator


async def test_a_listener_hears_who_comes_and_goes_users_by_name_guests_counted():
    watcher = await listening()
    first = await watcher.receive_json_from(timeout=3)
    assert first == {
        "type": "presence",
        **{"users": [], "user_count": 0, "guests": 1, "sockets": 1},
        **{"joined": [""], "left": []},
    }
    ann, _ = await joined_as("ann")
    arrived = await watcher.receive_json_from(timeout=3)
    assert (arrived["users"], arrived["guests"], arrived["sockets"]) == (["ann"], 1, 2)
    assert arrived["joined"] == ["ann"]
    await ann.disconnect()
    gone = await watcher.receive_json_from(timeout=3)
    assert (gone["users"], gone["sockets"], gone["left"]) == ([], 1, ["ann"])
    await watcher.disconnect()


async def test_a_socket_that_did_not_ask_gets_no_presence_frames_but_is_counted():
    quiet, _ = await joined()
    watcher = await listening([await session_cookie("bob")])
    frame = await watcher.receive_json_from(timeout=3)
    assert (frame["users"], frame["guests"], frame["sockets"]) == (["bob"], 1, 2)
    assert await quiet.receive_nothing(timeout=1)
    for communicator in (quiet, watcher):
        await communicator.disconnect()


async def test_presence_off_in_settings_lists_no_one(settings):
    settings.REALTIME_PRESENCE = False
    watcher = await listening()
    assert await watcher.receive_nothing(timeout=1)
    await watcher.disconnect()
