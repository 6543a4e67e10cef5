"""WorkerStream: one worker's ordering, gap filling and join hand-off for all its sockets
on a stream, against a stand-in for its two delivery calls (Sockets; the fan-out layer
itself, on a real Redis, in ../proving_ground/tests/test_fanout_layer.py)."""

import asyncio
import json

from realtime.positions import Page, Position
from realtime.streams import JOIN_BUFFER, WorkerStream, WorkerStreams

EPOCH = "e1"
GAP_WAIT = 0.05


class Layer:
    """What a WorkerStream calls (its Sockets): every socket idle, every frame written at
    once."""

    def __init__(self):
        self.frames: dict[str, list[int]] = {}  # channel -> offsets written to it
        self.events: dict[str, list[dict]] = {}
        self.written: list[bytes] = []  # every frame written, kept (ids stay unique)

    def deliver_frame(self, channel, frame, sent_at=None):
        self.written.append(frame[0])
        payload = json.loads(frame[0][2:] if frame[0][1] < 126 else frame[0][4:])
        self.frames.setdefault(channel, []).append(payload["offset"])
        return None  # counted: not the stream's business here

    def deliver_event(self, channel, message):
        self.events.setdefault(channel, []).append(message)


class Streams:
    def __init__(self):
        self.layer = self.sockets = Layer()
        self.dropped = []

    def drop(self, key, stream):
        self.dropped.append(key)


class Store:
    """The stream's items as the store has them; counts the reads."""

    def __init__(self, last: int = 0, epoch: str = EPOCH):
        self.items = {n: item(n, epoch) for n in range(1, last + 1)}
        self.epoch = epoch
        self.reads = 0

    async def page(self, after, limit):
        self.reads += 1
        offsets = sorted(self.items)
        chosen = (
            [o for o in offsets if o > after][:limit] if after is not None else offsets[-limit:]
        )
        return Page(self.epoch, [self.items[o] for o in chosen])

    def add(self, n: int) -> dict:
        self.items[n] = item(n, self.epoch)
        return self.items[n]


def item(offset: int, epoch: str = EPOCH) -> dict:
    return {"epoch": epoch, "offset": offset, "text": f"m{offset}"}


def stream_of(store: Store, resume_limit: int = 1000) -> WorkerStream:
    return WorkerStream(Streams(), ("room", None), store.page, None, resume_limit, GAP_WAIT)


def live(stream: WorkerStream, channel: str, end: int, epoch: str = EPOCH) -> None:
    stream.hold(channel)
    stream.go_live(channel, Position(epoch, end))


async def test_each_item_is_built_once_and_written_to_every_live_socket_in_order():
    store = Store(last=2)
    stream = stream_of(store)
    for channel in ("a", "b", "c"):
        live(stream, channel, 2)
    for n in (3, 4, 5):
        stream.take(store.add(n))
    layer = stream.streams.layer
    assert layer.frames == {"a": [3, 4, 5], "b": [3, 4, 5], "c": [3, 4, 5]}
    assert len({id(frame) for frame in layer.written}) == 3  # one per item, for every socket
    assert store.reads == 0


async def test_duplicates_are_dropped_and_an_item_that_overtook_waits():
    store = Store(last=1)
    stream = stream_of(store)
    live(stream, "a", 1)
    stream.take(store.add(2))
    stream.take(item(2))
    item_3, item_4 = store.add(3), store.add(4)
    stream.take(item_4)  # overtook 3
    assert stream.streams.layer.frames["a"] == [2]
    stream.take(item_3)
    assert stream.streams.layer.frames["a"] == [2, 3, 4]


async def test_a_gap_is_filled_with_one_read_for_every_socket():
    store = Store(last=1)
    stream = stream_of(store)
    for channel in ("a", "b", "c", "d"):
        live(stream, channel, 1)
    store.add(2)  # stored, its broadcast lost
    stream.take(store.add(3))
    await asyncio.sleep(GAP_WAIT * 4)
    assert store.reads == 1
    assert all(offsets == [2, 3] for offsets in stream.streams.layer.frames.values())


async def test_a_joining_socket_gets_what_came_during_its_history_then_the_live_items():
    store = Store(last=5)
    stream = stream_of(store)
    live(stream, "a", 5)
    stream.hold("b")  # reads its history now
    stream.take(store.add(6))
    stream.take(store.add(7))  # b's history read saw 6, not 7
    stream.go_live("b", Position(EPOCH, 6))
    stream.take(store.add(8))
    frames = stream.streams.layer.frames
    assert frames["a"] == [6, 7, 8]
    assert frames["b"] == [7, 8]


async def test_a_socket_whose_history_is_ahead_of_the_stream_skips_what_it_has():
    store = Store(last=3)
    stream = stream_of(store)
    live(stream, "a", 3)
    items = [store.add(n) for n in (4, 5, 6)]  # stored; their broadcasts still on the way
    live(stream, "b", 6)
    for found in items:
        stream.take(found)
    stream.take(store.add(7))
    frames = stream.streams.layer.frames
    assert frames["a"] == [4, 5, 6, 7]
    assert frames["b"] == [7]


async def test_a_new_epoch_sends_every_socket_to_resync():
    store = Store(last=3)
    stream = stream_of(store)
    live(stream, "a", 3)
    live(stream, "b", 3)
    stream.take(item(1, epoch="e2"))  # the stream was made again
    events = stream.streams.layer.events
    assert [e["type"] for e in events["a"]] == [e["type"] for e in events["b"]] == ["stream.resync"]
    assert "a" not in stream.streams.layer.frames


async def test_a_socket_that_missed_more_than_was_kept_for_it_reads_it_itself():
    store = Store(last=1)
    stream = stream_of(store, resume_limit=JOIN_BUFFER * 2)
    live(stream, "a", 1)
    stream.hold("b")
    for n in range(2, JOIN_BUFFER + 3):
        stream.take(store.add(n))
    assert not stream.go_live("b", Position(EPOCH, 1))
    assert "b" not in stream.streams.layer.frames
    # It read up to the stream's position meanwhile: live from there.
    assert stream.go_live("b", Position(EPOCH, JOIN_BUFFER + 2))
    stream.take(store.add(JOIN_BUFFER + 3))
    assert stream.streams.layer.frames["b"] == [JOIN_BUFFER + 3]


async def test_a_socket_that_read_an_empty_room_waits_for_its_first_items():
    """The first socket saw an empty room (no epoch yet); a second one's history already
    has the items whose broadcasts are still on the way: the first still gets them."""
    store = Store(last=0, epoch="")
    stream = stream_of(store)
    live(stream, "a", 0, epoch="")
    store.epoch = EPOCH
    items = [store.add(n) for n in (1, 2, 3)]
    live(stream, "b", 3)
    for found in items:
        stream.take(found)
    frames = stream.streams.layer.frames
    assert frames["a"] == [1, 2, 3]
    assert "b" not in frames


async def test_the_last_socket_leaving_drops_the_stream_and_its_timer():
    store = Store(last=1)
    stream = stream_of(store)
    stream.attached = 1
    live(stream, "a", 1)
    stream.take(store.add(3))  # a gap: the timer runs
    stream.detach("a")
    await asyncio.sleep(GAP_WAIT * 4)
    assert stream.streams.dropped == [("room", None)]
    assert store.reads == 0


async def test_a_stream_whose_last_broadcast_was_lost_catches_up_at_the_next_check():
    store = Store(last=2)
    stream = stream_of(store)
    live(stream, "a", 2)
    store.add(3)  # stored; its broadcast lost, and no message comes after it
    assert stream.behind(Position(EPOCH, 3))
    assert not stream.behind(Position(EPOCH, 2))
    stream.catch_up()
    await asyncio.sleep(0.05)
    assert stream.streams.layer.frames["a"] == [3]
    assert store.reads == 1
    assert not stream.behind(Position(EPOCH, 3))


async def test_a_stream_that_began_in_an_empty_room_takes_the_rooms_epoch_on_catching_up():
    store = Store(last=0, epoch="")
    stream = stream_of(store)
    live(stream, "a", 0, epoch="")
    store.epoch = EPOCH
    store.add(1)
    assert stream.behind(Position(EPOCH, 1))
    stream.catch_up()
    await asyncio.sleep(0.05)
    assert stream.streams.layer.frames["a"] == [1]
    assert "a" not in stream.streams.layer.events  # no resync


class Consumer:
    """What WorkerStreams takes from a StreamConsumer, for one room of a shared store."""

    gap_wait = GAP_WAIT
    resume_limit = 1000
    heads_asked: list[list[str]] = []

    def __init__(self, room: str, stores: dict[str, Store]):
        self.stream_group = self.stream_name = room
        self.stores = stores

    async def stream_page(self, after, limit):
        return await self.stores[self.stream_name].page(after, limit)

    async def stream_heads(self, names):
        Consumer.heads_asked.append(sorted(names))
        return {name: Position(EPOCH, max(self.stores[name].items)) for name in names}


async def test_a_worker_checks_all_its_rooms_heads_in_one_read():
    stores = {"r1": Store(last=2), "r2": Store(last=5)}
    streams = WorkerStreams(Layer())
    one = streams.get(Consumer("r1", stores), item_of=lambda event: event)
    two = streams.get(Consumer("r2", stores), item_of=lambda event: event)
    live(one, "a", 2)
    live(two, "b", 5)
    stores["r2"].add(6)  # lost
    Consumer.heads_asked.clear()
    await streams.check()
    await asyncio.sleep(0.05)
    assert Consumer.heads_asked == [["r1", "r2"]]
    assert streams.sockets.layer.frames == {"b": [6]}
    assert (stores["r1"].reads, stores["r2"].reads) == (0, 1)
    streams.checker.cancel()
