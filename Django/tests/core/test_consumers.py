"""The book's echo socket (core.consumers.EchoConsumer) on Channels alone. In the whole
app realtime's echo takes its path (tests/realtime/test_echo.py)."""

import os

import pytest
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from core.routing import websocket_urlpatterns

application = URLRouter(websocket_urlpatterns)
# Channels closes stale database connections before each event, as for every consumer.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def communicator():
    comm = WebsocketCommunicator(application, "/ws/echo/")
    connected, _ = await comm.connect()
    assert connected
    assert await comm.receive_json_from() == {"type": "hello", "pid": os.getpid()}
    yield comm
    await comm.disconnect()


async def test_echoes(communicator):
    await communicator.send_json_to({"type": "echo", "text": "絵文字 🎉"})
    assert await communicator.receive_json_from() == {
        "type": "echo",
        "text": "絵文字 🎉",
        "pid": os.getpid(),
    }


async def test_broadcast_reaches_every_socket(communicator):
    other = WebsocketCommunicator(application, "/ws/echo/")
    assert (await other.connect())[0]
    await other.receive_json_from()
    await communicator.send_json_to({"type": "broadcast", "text": "hi all"})
    for comm in (communicator, other):
        message = await comm.receive_json_from()
        assert message["type"] == "broadcast" and message["text"] == "hi all"
        assert message["from_pid"] == os.getpid()
    await other.disconnect()


@pytest.mark.parametrize(
    ("frame", "detail"),
    [
        ({"text_data": "{not json"}, "not valid JSON"),
        ({"bytes_data": b"\x00\x01"}, "not valid JSON"),
        ({"text_data": '{"type": "nope"}'}, "unknown frame type"),
        ({"text_data": "[1, 2]"}, "unknown frame type"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays_open(communicator, frame, detail):
    await communicator.send_to(**frame)
    assert await communicator.receive_json_from() == {"type": "error", "detail": detail}
    await communicator.send_json_to({"type": "echo", "text": "still here"})
    assert (await communicator.receive_json_from())["text"] == "still here"


async def test_without_debug_endpoints_the_echo_socket_is_refused(settings):
    settings.DEBUG_ENDPOINTS = False
    comm = WebsocketCommunicator(application, "/ws/echo/")
    connected, code = await comm.connect()
    assert not connected and code == 1000  # Channels' close before accept: HTTP 403
