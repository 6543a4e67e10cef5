"""StreamConsumer through the chat consumer: Channels' communicator, the in-memory layer,
SQLite; the same on MySQL and Redis through nginx in ../proving_ground/tests."""

import pytest
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator

from channels_tutorial.asgi import application
from realtime.streams import CLOSE_RESYNC, StreamConsumer
from talk import services

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = [(b"origin", b"http://localhost")]
create = database_sync_to_async(services.message_create)


async def joined(query: str = "", room: str = "lobby"):
    path = f"/ws/talk/{room}/" + (f"?{query}" if query else "")
    communicator = WebsocketCommunicator(application, path, headers=ORIGIN)
    connected, _ = await communicator.connect()
    assert connected
    return communicator, await communicator.receive_json_from()


async def stored(count: int, room: str = "lobby") -> list[dict]:
    return [await create(room=room, nickname="bot", text=f"m{n}") for n in range(count)]


async def live(message: dict, room: str = "lobby") -> None:
    """A broadcast as the consumer sends it, without storing anything."""
    await get_channel_layer().group_send(
        f"talk_{room}", {"type": "talk.message", "message": message}
    )


async def test_history_carries_the_epoch_and_the_last_offset():
    messages = await stored(3)
    communicator, history = await joined()
    assert (history["epoch"], history["offset"]) == (messages[0]["epoch"], 3)
    assert [m["offset"] for m in history["messages"]] == [1, 2, 3]
    assert "recovered" not in history  # a new client asked for nothing
    await communicator.disconnect()


async def test_a_returning_client_gets_exactly_what_it_missed():
    messages = await stored(80)  # more than the 50 of a new client's page
    epoch = messages[0]["epoch"]
    communicator, history = await joined(f"epoch={epoch}&offset=12")
    assert history["recovered"] is True
    assert [m["offset"] for m in history["messages"]] == list(range(13, 81))
    assert history["offset"] == 80
    await communicator.disconnect()


async def test_a_client_that_saw_nothing_gets_everything_whatever_its_epoch():
    await stored(60)
    communicator, history = await joined("epoch=&offset=0")
    assert history["recovered"] is True
    assert len(history["messages"]) == 60
    await communicator.disconnect()


@pytest.mark.parametrize("why", ["past the limit", "another epoch", "a bad position"])
async def test_an_unrecoverable_resume_says_so_and_sends_the_latest_page(why, settings):
    settings.REALTIME_RESUME_LIMIT = 20
    messages = await stored(60)
    query = {
        "past the limit": f"epoch={messages[0]['epoch']}&offset=10",
        "another epoch": "epoch=0123456789abcdef&offset=55",
        "a bad position": "epoch=e&offset=-3",
    }[why]
    communicator, first = await joined(query)
    if why == "a bad position":
        assert first["type"] == "error" and "bad resume position" in first["detail"]
        first = await communicator.receive_json_from()
    assert first["recovered"] is False
    assert [m["offset"] for m in first["messages"]] == list(range(11, 61))
    await communicator.disconnect()


async def test_live_messages_arrive_in_offset_order_and_once():
    messages = await stored(4)
    communicator, history = await joined(f"epoch={messages[0]['epoch']}&offset=1")
    assert [m["offset"] for m in history["messages"]] == [2, 3, 4]
    later = await stored(3)  # offsets 5, 6, 7, broadcast out of order and twice
    for message in (later[1], messages[3], later[0], later[1], later[2]):
        await live(message)
    frames = [await communicator.receive_json_from() for _ in range(3)]
    assert [f["offset"] for f in frames] == [5, 6, 7]
    assert await communicator.receive_nothing()
    await communicator.disconnect()


async def test_a_gap_on_an_open_socket_is_filled_from_the_store(monkeypatch):
    monkeypatch.setattr(StreamConsumer, "gap_wait", 0.05)
    communicator, _ = await joined()
    lost = await stored(5)  # stored, but their broadcasts never came (a layer dropped them)
    await live(lost[-1])
    frames = [await communicator.receive_json_from() for _ in range(5)]
    assert [f["offset"] for f in frames] == [1, 2, 3, 4, 5]
    await communicator.disconnect()


async def test_a_gap_is_read_once_for_every_socket_of_the_worker(monkeypatch):
    # The in-memory layer hands each socket its own copy; the worker's stream counts the
    # first, and reads the missing items once for both sockets.
    monkeypatch.setattr(StreamConsumer, "gap_wait", 0.05)
    reads = []
    page = services.aroom_page

    async def counted(**kwargs):
        reads.append(kwargs)
        return await page(**kwargs)

    monkeypatch.setattr(services, "aroom_page", counted)
    sockets = [(await joined())[0] for _ in range(2)]
    joins = len(reads)
    lost = await stored(5)
    await live(lost[-1])
    for communicator in sockets:
        frames = [await communicator.receive_json_from() for _ in range(5)]
        assert [f["offset"] for f in frames] == [1, 2, 3, 4, 5]
        assert await communicator.receive_nothing()
    assert len(reads) - joins == 1
    for communicator in sockets:
        await communicator.disconnect()


async def test_a_consumer_without_its_stream_item_handler_says_so():
    class Unmarked(StreamConsumer):
        async def connect(self):
            await self.join("unmarked")
            await self.accept()
            await self.stream_start()

    communicator = WebsocketCommunicator(Unmarked.as_asgi(), "/ws/unmarked/")
    await communicator.send_input({"type": "websocket.connect"})
    assert (await communicator.receive_output())["type"] == "websocket.accept"
    with pytest.raises(TypeError, match="mark exactly one handler @stream_item"):
        await communicator.receive_output()


async def test_a_gap_too_long_to_fill_closes_the_socket_for_a_resume(monkeypatch, settings):
    monkeypatch.setattr(StreamConsumer, "gap_wait", 0.05)
    settings.REALTIME_RESUME_LIMIT = 3
    communicator, _ = await joined()
    lost = await stored(5)
    await live(lost[-1])
    assert await communicator.receive_output() == {"type": "websocket.close", "code": CLOSE_RESYNC}


async def test_a_stream_made_again_closes_its_sockets_for_a_resume():
    old = await stored(1)
    communicator, _ = await joined()
    await live({**old[0], "epoch": "fedcba9876543210", "offset": 2})
    assert await communicator.receive_output() == {"type": "websocket.close", "code": CLOSE_RESYNC}


async def test_a_resume_frame_on_an_open_socket_replays_from_there():
    messages = await stored(5)
    communicator, _ = await joined()
    await communicator.send_json_to({"type": "resume", "epoch": messages[0]["epoch"], "offset": 3})
    replay = await communicator.receive_json_from()
    assert replay["type"] == "history" and replay["recovered"] is True
    assert [m["offset"] for m in replay["messages"]] == [4, 5]
    await communicator.send_json_to({"type": "resume", "epoch": 5, "offset": "x"})
    assert (await communicator.receive_json_from())["type"] == "error"
    await communicator.disconnect()
