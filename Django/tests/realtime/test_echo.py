"""The echo socket on the realtime base (realtime/echo.py), through the whole app."""

import os

import pytest
from channels.testing import WebsocketCommunicator

from channels_tutorial.asgi import application

ORIGIN = [(b"origin", b"http://localhost")]

# AuthMiddlewareStack looks up the session user, as in the running app.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def communicator():
    comm = WebsocketCommunicator(application, "/ws/echo/", headers=ORIGIN)
    connected, _ = await comm.connect()
    assert connected
    yield comm
    await comm.disconnect()


async def test_greets_with_the_worker_pid(communicator):
    assert await communicator.receive_json_from() == {"type": "hello", "pid": os.getpid()}


async def test_echoes(communicator):
    await communicator.receive_json_from()
    await communicator.send_json_to({"type": "echo", "text": "絵文字 🎉"})
    assert await communicator.receive_json_from() == {
        "type": "echo",
        "text": "絵文字 🎉",
        "pid": os.getpid(),
    }


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ({"text_data": "{not json"}, "not valid JSON"),
        ({"bytes_data": b"\x00\x01"}, "binary frames"),
        ({"text_data": '{"type": "nope"}'}, "unknown frame type"),
        ({"text_data": "[1, 2]"}, "unknown frame type"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(communicator, frame, detail):
    await communicator.receive_json_from()
    await communicator.send_to(**frame)
    error = await communicator.receive_json_from()
    assert error["type"] == "error" and detail in error["detail"]
    await communicator.send_json_to({"type": "echo", "text": "still here"})
    assert (await communicator.receive_json_from())["text"] == "still here"


async def test_broadcast_reaches_every_socket(communicator):
    other = WebsocketCommunicator(application, "/ws/echo/", headers=ORIGIN)
    assert (await other.connect())[0]
    await communicator.receive_json_from()
    await other.receive_json_from()
    await communicator.send_json_to({"type": "broadcast", "text": "hi all"})
    for comm in (communicator, other):
        message = await comm.receive_json_from()
        assert message["type"] == "broadcast" and message["text"] == "hi all"
    await other.disconnect()


async def test_foreign_origin_is_refused():
    comm = WebsocketCommunicator(
        application, "/ws/echo/", headers=[(b"origin", b"http://evil.example")]
    )
    connected, _ = await comm.connect()
    assert not connected


async def test_without_debug_endpoints_the_echo_socket_is_refused(settings):
    settings.DEBUG_ENDPOINTS = False
    comm = WebsocketCommunicator(application, "/ws/echo/", headers=ORIGIN)
    connected, _ = await comm.connect()
    assert not connected


async def test_a_flood_is_rate_limited_with_error_frames_and_the_socket_survives(communicator):
    await communicator.receive_json_from()
    for n in range(60):
        await communicator.send_json_to({"type": "echo", "text": str(n)})
    frames = [await communicator.receive_json_from() for _ in range(60)]
    echoed = [f for f in frames if f["type"] == "echo"]
    limited = [f for f in frames if f["type"] == "error"]
    assert 20 <= len(echoed) < 60
    assert limited and all("rate limit" in f["detail"] for f in limited)


@pytest.mark.parametrize("path", ["/ws/echo/", "/ws/figures/"])
async def test_the_status_pages_sockets_open_for_guests_where_the_chat_refuses_them(settings, path):
    settings.REALTIME_GUESTS = False
    comm = WebsocketCommunicator(application, path, headers=ORIGIN)
    assert (await comm.connect())[0]
    assert (await comm.receive_json_from(timeout=5))["type"] != "error"  # figures: 2 s
    await comm.disconnect()
    talk = WebsocketCommunicator(application, "/ws/talk/lobby/", headers=ORIGIN)
    assert (await talk.connect())[0]
    assert await talk.receive_json_from() == {"type": "error", "detail": "sign in first"}
    await talk.disconnect()
