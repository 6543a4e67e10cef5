"""A WebSocket handshake on a path no route matches, through the project's ASGI app."""

import pytest
from asgiref.testing import ApplicationCommunicator

from channels_tutorial.asgi import application

# AuthMiddlewareStack looks the session up.
pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://localhost")]


def handshake(extensions: dict) -> ApplicationCommunicator:
    scope = {
        "type": "websocket",
        "path": "/ws/no-such-path/",
        "query_string": b"",
        "headers": ORIGIN,
        "subprotocols": [],
        "extensions": extensions,
    }
    return ApplicationCommunicator(application, scope)


async def test_a_server_with_the_denial_response_answers_404():
    communicator = handshake({"websocket.http.response": {}})
    await communicator.send_input({"type": "websocket.connect"})
    start = await communicator.receive_output()
    assert (start["type"], start["status"]) == ("websocket.http.response.start", 404)
    body = await communicator.receive_output()
    assert body["type"] == "websocket.http.response.body" and body["body"]


async def test_a_server_without_it_is_told_to_close():
    communicator = handshake({})
    await communicator.send_input({"type": "websocket.connect"})
    assert await communicator.receive_output() == {"type": "websocket.close"}
