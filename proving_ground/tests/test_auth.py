"""Who is on the sockets, through nginx on the real stack: sign-up and the session's
user, tickets for clients without the cookie, guests, and private rooms (MySQL, Redis,
two workers)."""

import asyncio
import json
import uuid

import pytest
import websockets

from proving_ground.clients import ws_url
from proving_ground.clients.site import SiteUser
from proving_ground.faults import mysql_connect
from proving_ground.stacks.native import NativeStack


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def joined(stack, path: str, headers: dict | None = None):
    socket = await websockets.connect(
        ws_url(stack.http_url, path),
        origin=stack.http_url,
        additional_headers=headers or {},
        open_timeout=10,
    )
    history = json.loads(await socket.recv())
    assert history["type"] == "history", history
    return socket


async def refusal(stack, path: str, headers: dict | None = None) -> tuple[str, int]:
    """The error frame's detail and the close code of a socket turned down."""
    async with websockets.connect(
        ws_url(stack.http_url, path),
        origin=stack.http_url,
        additional_headers=headers or {},
        open_timeout=10,
    ) as socket:
        frame = json.loads(await socket.recv())
        assert frame["type"] == "error", frame
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await socket.recv()
    return frame["detail"], closed.value.rcvd.code


async def say(socket, frame: dict) -> dict:
    await socket.send(json.dumps({"type": "message", **frame}))
    while True:
        got = json.loads(await socket.recv())
        if got["type"] in ("message", "error"):
            return got


def stored(stack, room: str) -> list[tuple]:
    """(nickname, guest, author's user name) of the room's messages in MySQL."""
    connection = mysql_connect(stack)
    try:
        cursor = connection.cursor()
        cursor.execute(
            "SELECT m.nickname, m.guest, u.username FROM talk_message m"
            " JOIN talk_room r ON r.id = m.room_id LEFT JOIN auth_user u ON u.id = m.author_id"
            " WHERE r.slug = %s ORDER BY m.offset",
            [room],
        )
        return list(cursor.fetchall())
    finally:
        connection.close()


async def test_a_signed_in_users_messages_are_theirs_whatever_the_frame_says(stack):
    name, room = unique("ann"), unique("auth")
    ann = SiteUser(stack.http_url).sign_up(name)
    status, page = ann.request(f"/talk/{room}/")
    assert status == 200 and name in page and 'id="nickname"' not in page
    socket = await joined(stack, f"/ws/talk/{room}/", ann.socket_headers)
    async with socket:
        frame = await say(socket, {"nickname": "mallory", "text": "it is me"})
        assert (frame["nickname"], frame["guest"]) == (name, False)
        error = await say(socket, {"text": "as user 1", "user_id": 1})
        assert error["type"] == "error" and "user_id" in error["detail"]
    guest = await joined(stack, f"/ws/talk/{room}/")
    async with guest:
        frame = await say(guest, {"nickname": name, "text": "me too"})
        assert (frame["nickname"], frame["guest"]) == (name, True)
    assert stored(stack, room) == [(name, 0, name), (name, 1, None)]


async def test_a_ticket_opens_one_socket_as_its_user_and_no_more(stack):
    name, room = unique("bot"), unique("auth")
    bot = SiteUser(stack.http_url).sign_up(name)
    ticket = bot.ticket()
    path = f"/ws/talk/{room}/?ticket={ticket}"
    socket = await joined(stack, path)  # no cookie: the ticket alone
    async with socket:
        frame = await say(socket, {"text": "from a script"})
        assert (frame["nickname"], frame["guest"]) == (name, False)
    # Any worker: spent tickets are rows in MySQL.
    for _ in range(3):
        assert await refusal(stack, path) == ("ticket already used: ask for a new one", 4412)
    forged = ticket[:-1] + ("A" if ticket[-1] != "A" else "B")
    assert await refusal(stack, f"/ws/talk/{room}/?ticket={forged}") == ("ticket invalid", 4410)
    assert stored(stack, room) == [(name, 0, name)]


async def test_a_private_room_admits_its_members_only(stack):
    room = unique("staff")
    member = SiteUser(stack.http_url).sign_up(unique("ann"))
    outsider = SiteUser(stack.http_url).sign_up(unique("bob"))
    connection = mysql_connect(stack)  # as an admin would, in /admin/
    try:
        cursor = connection.cursor()
        cursor.execute(
            "INSERT INTO talk_room (slug, epoch, last_offset, private, created_at)"
            " VALUES (%s, 'e1', 0, 1, NOW())",
            [room],
        )
        cursor.execute(
            "INSERT INTO talk_room_members (room_id, user_id) SELECT r.id, u.id"
            " FROM talk_room r, auth_user u WHERE r.slug = %s AND u.username = %s",
            [room, member.username],
        )
        connection.commit()
    finally:
        connection.close()
    path = f"/ws/talk/{room}/"
    socket = await joined(stack, path, member.socket_headers)
    async with socket:
        assert (await say(socket, {"text": "members only"}))["nickname"] == member.username
    for headers in (outsider.socket_headers, None):  # a user who is not a member, a guest
        assert await refusal(stack, path, headers) == ("you may not join this room", 4403)


# How long members_only's tickets stay valid. Django's signatures carry whole seconds, so
# a ticket used e seconds after it was issued is e to e + 1 seconds old: the one the test
# uses at once is refused by chance only if issuing and handshake take over TICKET_S - 1
# seconds (4 s; they take tens of milliseconds here).
TICKET_S = 5


@pytest.fixture(scope="module")
def members_only():
    """A stack that lets no guest in, with tickets valid for TICKET_S seconds."""
    env = {"WEB_CONCURRENCY": "2", "REALTIME_GUESTS": "0", "REALTIME_TICKET_MAX_AGE": str(TICKET_S)}
    with NativeStack(django_env=env) as running:
        yield running


async def test_where_guests_are_off_only_a_session_or_ticket_opens_a_socket(members_only):
    stack, room = members_only, unique("closed")
    path = f"/ws/talk/{room}/"
    assert await refusal(stack, path) == ("sign in first", 4401)
    user = SiteUser(stack.http_url).sign_up(unique("ann"))
    socket = await joined(stack, path, user.socket_headers)
    await socket.close()
    socket = await joined(stack, f"{path}?ticket={user.ticket()}")
    await socket.close()
    late = user.ticket()
    await asyncio.sleep(TICKET_S + 1)  # past REALTIME_TICKET_MAX_AGE
    assert await refusal(stack, f"{path}?ticket={late}") == (
        "ticket expired: ask for a new one",
        4411,
    )
