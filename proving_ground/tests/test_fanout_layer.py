"""realtime.fanout, the stack's own channel layer, against a real Redis: Channels' layer
API between two workers (two layer instances), one subscription per group per worker,
one frame built per message per worker, order kept between prepared frames and
ordinary events, and what it does when its Redis connections die."""

import asyncio
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from channels.exceptions import ChannelFull

from proving_ground.stacks.native import free_port, require_binaries

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Django"))
from realtime.fanout import FRAME_EVENT, FanoutChannelLayer, Listener  # noqa: E402


@pytest.fixture(scope="module")
def redis_port(tmp_path_factory):
    """A Redis of this module's own: its tests kill every client connection of it, which
    on the stack's Redis would hit the stack's workers too."""
    port = free_port()
    binary = require_binaries({"redis-server": "redis-server"})["redis-server"]
    folder = tmp_path_factory.mktemp("redis")
    command = [
        binary,
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(folder),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 30
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        client.close()
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def address(redis_port):
    return f"redis://127.0.0.1:{redis_port}/0"


@pytest.fixture
def admin(redis_port):
    client = redis.Redis(port=redis_port)
    yield client
    client.close()


def layer(address: str, prefix: str) -> FanoutChannelLayer:
    return FanoutChannelLayer(hosts=[address], prefix=prefix)


@pytest.fixture
async def workers(address):
    """Two workers' layers on one Redis, and the prefix their names in Redis take."""
    prefix = a_prefix()
    one, two = layer(address, prefix), layer(address, prefix)
    yield one, two, prefix
    await one.flush()
    await two.flush()


def a_prefix() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


async def received(the_layer, channel, timeout: float = 5.0) -> dict:
    return await asyncio.wait_for(the_layer.receive(channel), timeout)


class Socket:
    """A socket's side of the fast path: the frames written to it, and its counts."""

    def __init__(self, builders: dict):
        self.frames: list[bytes] = []
        self.counted: list[tuple] = []
        self.closed: list[str] = []
        self.listener = Listener(self.write, self.closed.append, builders, self.count)

    def write(self, frame: bytes) -> bool:
        self.frames.append(frame)
        return True

    def count(self, *sent) -> None:
        self.counted.append(sent)


async def eventually(predicate, timeout: float = 5.0) -> None:
    """Until predicate() holds (a message on its way through Redis, say)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def subscribers(admin, key: str) -> int:
    return admin.pubsub_numsub(key)[0][1]


async def a_socket_in_a_room(the_layer) -> tuple[str, Socket]:
    """A channel in group "room" whose socket has the fast path for room.event."""
    channel = await the_layer.new_channel()
    socket = Socket({"room_event": lambda event: {"n": event["n"]}})
    await the_layer.group_add("room", channel)
    the_layer.attach(channel, socket.listener)
    return channel, socket


async def waiting(the_layer, channel) -> asyncio.Task:
    """A receive that waits, as a consumer between events does."""
    task = asyncio.create_task(the_layer.receive(channel))
    await asyncio.sleep(0.05)
    return task


async def test_two_workers_send_to_each_other_and_to_groups(workers):
    one, two, prefix = workers
    here, there = await one.new_channel(), await two.new_channel()
    await two.send(here, {"type": "hello", "n": 1})
    assert await received(one, here) == {"type": "hello", "n": 1}
    await one.group_add("room", here)
    await two.group_add("room", there)
    await one.group_send("room", {"type": "chat", "text": "hi"})
    assert await received(one, here) == {"type": "chat", "text": "hi"}
    assert await received(two, there) == {"type": "chat", "text": "hi"}
    await two.group_discard("room", there)
    await one.group_send("room", {"type": "chat", "text": "again"})
    assert await received(one, here) == {"type": "chat", "text": "again"}
    with pytest.raises(TimeoutError):
        await received(two, there, timeout=0.5)


async def test_a_plain_channel_is_a_queue_each_message_taken_by_one_receiver(workers):
    one, two, prefix = workers
    # Sent before anyone receives: it waits in Redis for the first receiver.
    await one.send("jobs", {"type": "job", "id": 1})
    assert await received(two, "jobs") == {"type": "job", "id": 1}
    # Two receivers waiting, on two workers: each message reaches one of them, once.
    tasks = [asyncio.create_task(w.receive("jobs")) for w in (one, two)]
    await asyncio.sleep(0.1)
    for n in (2, 3):
        await one.send("jobs", {"type": "job", "id": n})
    got = await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert sorted(message["id"] for message in got) == [2, 3]


async def test_a_plain_channel_past_its_capacity_refuses_the_message(address):
    the_layer = FanoutChannelLayer(hosts=[address], prefix=a_prefix(), capacity=2)
    try:
        for n in range(2):
            await the_layer.send("jobs", {"type": "job", "id": n})
        with pytest.raises(ChannelFull):
            await the_layer.send("jobs", {"type": "job", "id": 2})
        assert [(await received(the_layer, "jobs"))["id"] for _ in range(2)] == [0, 1]
    finally:
        await the_layer.flush()


def test_the_channels_tutorials_shell_check_gets_its_message_back(address):
    """The tutorial's check in `manage.py shell`, each call on a loop of its own."""
    from asgiref.sync import async_to_sync

    channel_layer = layer(address, a_prefix())
    async_to_sync(channel_layer.send)("test_channel", {"type": "hello"})
    assert async_to_sync(channel_layer.receive)("test_channel") == {"type": "hello"}


async def test_a_worker_subscribes_once_per_group_whatever_its_members(address, admin):
    prefix = a_prefix()
    the_layer = layer(address, prefix)
    key = f"{prefix}:group:room"
    try:
        channels = [await the_layer.new_channel() for _ in range(50)]
        for channel in channels:
            await the_layer.group_add("room", channel)
        assert subscribers(admin, key) == 1
        for channel in channels[:-1]:
            await the_layer.group_discard("room", channel)
        assert subscribers(admin, key) == 1
        await the_layer.group_discard("room", channels[-1])
        await eventually(lambda: subscribers(admin, key) == 0)  # not waited for
    finally:
        await the_layer.flush()


async def test_a_frame_is_built_once_per_worker_and_written_to_every_idle_socket(address):
    the_layer = layer(address, a_prefix())
    built = []

    def build(event):
        built.append(event)
        return {"type": "broadcast", "text": event["text"]}

    try:
        sockets = [Socket({"room_event": build}) for _ in range(100)]
        channels = []
        for socket in sockets:
            channels.append(channel := await the_layer.new_channel())
            await the_layer.group_add("room", channel)
            the_layer.attach(channel, socket.listener)
        receives = [asyncio.create_task(the_layer.receive(channel)) for channel in channels]
        await asyncio.sleep(0.1)
        await the_layer.group_send("room", {"type": "room.event", "text": "hi"})
        await eventually(lambda: all(s.frames for s in sockets))
        assert len(built) == 1
        payload = b'{"type": "broadcast", "text": "hi"}'
        expected = bytes([0x81, len(payload)]) + payload  # a final text frame, unmasked
        assert {bytes(s.frames[0]) for s in sockets} == {expected}
        assert all(len(s.frames) == 1 for s in sockets)
        assert sum(s.counted[0][0] for s in sockets) == 100  # counted once: (n, size, stamp)
        assert not any(task.done() for task in receives)  # no event, no dispatch
    finally:
        await the_layer.flush()


async def test_a_busy_socket_gets_its_frame_after_the_events_before_it(address):
    """A frame for a socket whose consumer is still handling an earlier event waits in
    its queue, so the order the messages were sent in holds."""
    the_layer = layer(address, a_prefix())
    try:
        channel, socket = await a_socket_in_a_room(the_layer)
        # No receive waiting: the consumer is busy.
        await the_layer.group_send("room", {"type": "other.event", "n": 1})
        await the_layer.group_send("room", {"type": "room.event", "n": 2})
        mailbox = the_layer.local().mailboxes[channel]
        await eventually(lambda: len(mailbox.queue) == 2)
        assert socket.frames == []
        first, second = await received(the_layer, channel), await received(the_layer, channel)
        assert first == {"type": "other.event", "n": 1}
        assert second["type"] == FRAME_EVENT and second["frame"][0].endswith(b'{"n": 2}')
        # Idle again: the next frame is written at once.
        task = await waiting(the_layer, channel)
        await the_layer.group_send("room", {"type": "room.event", "n": 3})
        await eventually(lambda: socket.frames)
        assert [f[-8:] for f in socket.frames] == [b'{"n": 3}'] and not task.done()
    finally:
        await the_layer.flush()


async def test_a_frame_for_a_consumer_busy_with_a_handler_waits_for_its_turn(address):
    """Channels keeps a socket's receive waiting while its consumer handles a client's
    frame or its connect: a frame written then could overtake what the handler sends
    (a presence change before the history). Marked busy, it goes to the queue."""
    the_layer = layer(address, a_prefix())
    try:
        channel, socket = await a_socket_in_a_room(the_layer)
        task = await waiting(the_layer, channel)
        socket.listener.busy = True  # as JsonConsumer.dispatch marks it
        await the_layer.group_send("room", {"type": "room.event", "n": 1})
        event = await asyncio.wait_for(task, 5)
        assert event["type"] == FRAME_EVENT and event["frame"][0].endswith(b'{"n": 1}')
        assert socket.frames == []
        socket.listener.busy = False
        task = await waiting(the_layer, channel)
        await the_layer.group_send("room", {"type": "room.event", "n": 2})
        await eventually(lambda: socket.frames)
        assert socket.frames[0].endswith(b'{"n": 2}') and not task.done()
    finally:
        await the_layer.flush()


async def test_a_consumer_that_ends_between_receives_leaves_no_queue(address, admin):
    """A consumer can end with a message just received and more waiting (its receive
    not pending, so nothing cancels it): close_channel ends the channel all the same."""
    the_layer = layer(address, a_prefix())
    try:
        channel, _ = await a_socket_in_a_room(the_layer)
        for n in range(3):
            await the_layer.group_send("room", {"type": "other.event", "n": n})
        mailbox = the_layer.local().mailboxes[channel]
        await eventually(lambda: len(mailbox.queue) == 3)
        await the_layer.close_channel(channel)
        assert channel not in the_layer.local().mailboxes
        await eventually(lambda: subscribers(admin, f"{the_layer.prefix}:group:room") == 0)
    finally:
        await the_layer.flush()


async def test_a_cancelled_receive_ends_its_channel_and_its_subscriptions(address, admin):
    prefix = a_prefix()
    the_layer = layer(address, prefix)
    key = f"{prefix}:group:room"
    try:
        channel = await the_layer.new_channel()
        await the_layer.group_add("room", channel)
        task = await waiting(the_layer, channel)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert channel not in the_layer.local().mailboxes
        assert "room" not in the_layer.local().groups
        await eventually(lambda: subscribers(admin, key) == 0)
    finally:
        await the_layer.flush()


async def test_a_publish_on_a_dead_pooled_connection_is_sent_again(workers, admin):
    """Redis restarted: every pooled connection is dead. The pub/sub layer of
    channels-redis loses that message (docs/evidence/faults.md); this one sends it on a new
    connection."""
    one, two, prefix = workers
    channel = await two.new_channel()
    await two.group_add("room", channel)
    await one.group_send("room", {"type": "first"})
    assert await received(two, channel) == {"type": "first"}
    admin.client_kill_filter(_type="normal", skipme=True)  # the publisher's pool
    await one.group_send("room", {"type": "second"})
    assert await received(two, channel) == {"type": "second"}


async def test_a_lost_subscriber_connection_subscribes_again_and_says_so(workers, admin):
    one, two, prefix = workers
    restored = asyncio.Event()
    channel = await two.new_channel()
    await two.group_add("room", channel)
    two.local().on_resubscribed = restored.set
    admin.client_kill_filter(_type="pubsub")
    await asyncio.wait_for(restored.wait(), 10)
    await one.group_send("room", {"type": "after"})
    assert await received(two, channel) == {"type": "after"}


async def test_joining_while_redis_is_away_fails_at_once():
    """The handshake is told to try again later (ChannelLayerLost, 1013), not held."""
    the_layer = layer("redis://127.0.0.1:9/0", a_prefix())  # nothing listens on port 9
    try:
        started = asyncio.get_running_loop().time()
        with pytest.raises((redis.exceptions.RedisError, OSError)):
            await the_layer.new_channel()
        assert asyncio.get_running_loop().time() - started < 5
    finally:
        await the_layer.flush()


def test_group_send_from_sync_code_closes_its_connections(address, admin):
    """A view or a management command sends with async_to_sync, on a loop of its own
    that then closes: the connections it opened close with it."""
    from asgiref.sync import async_to_sync

    prefix = a_prefix()
    the_layer = layer(address, prefix)
    name = f"sync-{prefix}"

    def clients() -> int:
        return sum(1 for c in admin.client_list() if c.get("name") == name)

    the_layer.hosts[0]["client_name"] = name
    result = {}

    def send():
        for _ in range(3):
            async_to_sync(the_layer.group_send)("room", {"type": "from.sync"})
        result["loops"] = len(the_layer._loops)

    thread = threading.Thread(target=send)  # no running loop there, as in a command
    thread.start()
    thread.join(30)
    assert result == {"loops": 0}
    assert clients() == 0


async def test_a_socket_whose_queue_is_full_is_closed_not_left_with_a_hole(address):
    """Dropping a prepared frame would leave the client a hole it never learns of: the
    socket is closed as too slow instead (4008), and resumes."""
    the_layer = FanoutChannelLayer(hosts=[address], prefix=a_prefix(), capacity=1)
    try:
        _, socket = await a_socket_in_a_room(the_layer)
        # No receive waiting (the consumer is busy): the first waits, the second finds
        # the queue full.
        await the_layer.group_send("room", {"type": "room.event", "n": 1})
        await the_layer.group_send("room", {"type": "room.event", "n": 2})
        await eventually(lambda: socket.closed)
        assert socket.closed == ["1 events waiting for its consumer"]
        assert socket.frames == []
    finally:
        await the_layer.flush()
