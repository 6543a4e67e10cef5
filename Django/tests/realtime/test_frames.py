"""@frame handlers: the ordinary path where the server or layer has no fast one
(WebsocketCommunicator, the in-memory layer), and the builders the stack's layer uses."""

import pytest
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from realtime.consumers import JsonConsumer
from realtime.frames import builders, frame
from realtime.presence import PresenceMixin

# Channels closes stale database connections as each socket connects and disconnects.
pytestmark = pytest.mark.django_db(transaction=True)


class RoomConsumer(JsonConsumer):
    groups = ["frames-room"]
    event_db_cleanup = False  # its handlers only forward

    @frame
    def room_event(event):
        return {"type": "event", "n": event["n"]}

    async def room_other(self, event):
        await self.send_json({"type": "other", "n": event["n"]})


class OwnJsonConsumer(RoomConsumer):
    @classmethod
    async def encode_json(cls, content):
        return "custom"


async def test_a_frame_handler_sends_its_frame_per_socket_without_the_fast_path():
    communicator = WebsocketCommunicator(RoomConsumer.as_asgi(), "/ws/")
    connected, _ = await communicator.connect()
    assert connected
    layer = get_channel_layer()
    await layer.group_send("frames-room", {"type": "room.event", "n": 1})
    await layer.group_send("frames-room", {"type": "room.other", "n": 2})
    await layer.group_send("frames-room", {"type": "room.event", "n": 3})
    got = [await communicator.receive_json_from() for _ in range(3)]
    assert got == [
        {"type": "event", "n": 1},
        {"type": "other", "n": 2},
        {"type": "event", "n": 3},
    ]
    await communicator.disconnect()


def test_builders_are_the_classes_frame_handlers_by_handler_name():
    found = builders(RoomConsumer)
    assert set(found) == {"room_event"}
    assert found["room_event"]({"n": 5}) == {"type": "event", "n": 5}
    # A mixin's too: a consumer takes presence's frame by inheriting it.
    present = type("PresentRoomConsumer", (PresenceMixin, RoomConsumer), {})
    assert set(builders(present)) == {"room_event", "presence_changed"}


def test_a_class_that_encodes_json_its_own_way_has_no_prepared_frames():
    assert builders(OwnJsonConsumer) == {}


@pytest.fixture(autouse=True)
def _no_groups_left():
    yield
    get_channel_layer().groups.clear()
