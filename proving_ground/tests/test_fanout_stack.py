"""The stack on its own channel layer (CHANNEL_LAYER=fanout), through nginx: broadcasts
built once per worker reach every socket on every worker in order, the readiness probe
goes through Redis, a chat room keeps its order and history, and a client that stops
reading prepared frames is closed with 4008 before its worker holds more than the bound."""

import asyncio
import contextlib
import json
import socket
import time
import uuid

import httpx
import pytest
import redis
import websockets

from proving_ground.clients import ChatClient, one_per_worker, ws_url
from proving_ground.experiments.configs import DAPHNE
from proving_ground.faults import clients_on_distinct_workers, mysql_connect, room_offsets
from proving_ground.stacks.native import NativeStack

from .conftest import open_socket

CLOSE_TOO_SLOW = 4008


@pytest.fixture(scope="module")
def fanout():
    with NativeStack(django_env={"WEB_CONCURRENCY": "2", "CHANNEL_LAYER": "fanout"}) as stack:
        yield stack


def connect_echo(stack):
    async def connect():
        connection, hello = await open_socket(stack)
        return connection, hello["pid"]

    return connect


async def frames_until(connection, count: int, kind: str, timeout: float = 10) -> list[dict]:
    got = []
    async with asyncio.timeout(timeout):
        while len(got) < count:
            frame = json.loads(await connection.recv())
            if frame.get("type") == kind:
                got.append(frame)
    return got


async def test_broadcasts_reach_every_socket_on_every_worker_in_order(fanout):
    by_pid, spare = await one_per_worker(fanout.gunicorn_workers(), connect_echo(fanout))
    sockets = [(pid, s) for pid, s in by_pid.items()]
    for _ in range(8):  # more than one socket per worker, wherever they land
        connection, hello = await open_socket(fanout)
        sockets.append((hello["pid"], connection))
    try:
        (sender_pid, sender), *_ = by_pid.items()
        tokens = [f"{uuid.uuid4().hex}-{n}" for n in range(15)]  # within the rate burst
        for token in tokens:
            await sender.send(json.dumps({"type": "broadcast", "text": token}))
        for pid, connection in sockets:
            frames = await frames_until(connection, len(tokens), "broadcast")
            assert [f["text"] for f in frames] == tokens
            assert {f["pid"] for f in frames} == {pid}, "built by the worker that holds it"
            assert {f["from_pid"] for f in frames} == {sender_pid}
    finally:
        for _, connection in sockets:
            await connection.close()
        for connection in spare:
            await connection.close()


def test_the_readiness_probe_goes_through_the_new_layer(fanout):
    body = httpx.get(fanout.http_url + "/readyz", timeout=10).json()
    layer = body["checks"]["channel_layer"]
    assert layer["ok"], layer
    assert layer["detail"]["backend"] == "realtime.fanout.FanoutChannelLayer"


async def test_a_chat_room_on_two_workers_keeps_its_order_and_history(fanout):
    room = f"fanout-{uuid.uuid4().hex[:8]}"
    clients = [ChatClient(fanout.http_url, room, f"c{n}", origin=fanout.http_url) for n in range(6)]
    for client in clients:
        await client.connect()
    try:
        for n in range(10):
            await clients[n % len(clients)].say(f"m{n}")
        for client in clients:
            while len(client.received) < 10:
                await client.next_frame(timeout=10)
            assert [f["text"] for f in client.received] == [f"m{n}" for n in range(10)]
            offsets = [f["offset"] for f in client.received]
            assert offsets == list(range(offsets[0], offsets[0] + 10))
        late = ChatClient(fanout.http_url, room, "late", origin=fanout.http_url)
        history = await late.connect()
        assert [m["text"] for m in history["messages"]] == [f"m{n}" for n in range(10)]
        await late.close()
    finally:
        for client in clients:
            await client.close()


async def test_a_socket_asking_for_presence_gets_its_history_first(fanout):
    """Presence changes are prepared frames; one that comes while a joining socket's
    consumer is still in its connect waits until the history is sent. 100 sockets join
    one room in turn, each asking for presence, while the earlier ones' arrivals are
    broadcast (every half second): each one's first frame is its history."""
    room = f"presence-{uuid.uuid4().hex[:8]}"
    sockets = []
    try:
        for _ in range(100):
            connection = await websockets.connect(
                ws_url(fanout.http_url, f"/ws/talk/{room}/?presence=1"), origin=fanout.http_url
            )
            sockets.append(connection)
            first = json.loads(await asyncio.wait_for(connection.recv(), 10))
            assert first["type"] == "history", first
    finally:
        for connection in sockets:
            await connection.close()


async def stalled_echo(stack) -> websockets.ClientConnection:
    """An echo socket on Django's own port that reads nothing after its hello: a 4 KiB
    receive buffer, and no pings of its own (their answers would go unread)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", stack.django_port))
    connection = await websockets.connect(
        ws_url(stack.django_url, "/ws/echo/"),
        origin=stack.http_url,
        sock=sock,
        max_queue=1,
        ping_interval=None,
        max_size=None,
    )
    await connection.recv()  # hello
    return connection


async def drain(connection) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in connection:
            pass


async def test_a_client_that_stops_reading_prepared_frames_is_closed_with_4008(fanout):
    """Prepared frames do not wait for a socket's buffer to drain: past the bound of
    unread bytes the worker closes it (before the missing pong would, 10 + 10 s)."""
    stalled = await stalled_echo(fanout)
    senders = [(await open_socket(fanout))[0] for _ in range(10)]
    drains = [asyncio.create_task(drain(sender)) for sender in senders]
    text = "x" * 60_000  # under the 64 KiB a client frame may have
    closing = "bytes unread); closing"
    before = fanout.log_tail("django", 100_000).count(closing)
    started = time.monotonic()
    try:
        # 6 MB a second (10 senders, each within its 10 frames a second): past the
        # kernel's buffers (a few MB), then the worker's bound, well within 10 s.
        n = 0
        while fanout.log_tail("django", 100_000).count(closing) == before:
            assert time.monotonic() - started < 10, "still open after 10 s"
            for sender in senders:
                await sender.send(json.dumps({"type": "broadcast", "text": f"{n}-{text}"}))
            n += 1
            await asyncio.sleep(0.1)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            async with asyncio.timeout(30):
                while True:
                    await stalled.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_TOO_SLOW
    finally:
        for task in drains:
            task.cancel()
        for connection in [stalled, *senders]:
            await connection.close()


async def chat_in(stack, room: str, senders: list[ChatClient], count: int) -> None:
    """`count` messages from each sender, 5 a second each (within the rate limit)."""

    async def send(sender: ChatClient) -> None:
        for n in range(count):
            await sender.send_frame(
                {"type": "message", "nickname": sender.nickname, "text": f"{n}"}
            )
            await asyncio.sleep(0.2)

    await asyncio.gather(*(send(sender) for sender in senders))


async def read_all(clients: list[ChatClient], stop: asyncio.Event) -> None:
    async def read(client: ChatClient) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, websockets.ConnectionClosed):
                await client.next_frame(timeout=0.2)

    await asyncio.gather(*(read(client) for client in clients))


def assert_every_message_once_in_order(stack, room: str, clients: list[ChatClient]) -> None:
    stored = room_offsets(stack, room)
    for client in clients:
        account = client.account(stored)
        assert (account.gaps, account.duplicates, account.out_of_order) == (0, 0, 0), account
        assert client.is_open, f"closed with {client.socket.close_code}"


async def join_a_busy_room(stack) -> None:
    """Each worker keeps a room's order once for all its sockets; one that joins reads
    its history while messages flow, then goes live from its end: nothing lost or
    doubled in between."""
    room = f"joins-{uuid.uuid4().hex[:8]}"
    senders = [ChatClient(stack.http_url, room, f"s{n}") for n in range(4)]
    for sender in senders:
        await sender.connect()
    joiners: list[ChatClient] = []
    stop = asyncio.Event()

    async def join() -> None:
        for n in range(12):
            await asyncio.sleep(0.2)
            joiner = ChatClient(stack.http_url, room, f"j{n}")
            await joiner.connect()
            joiners.append(joiner)

    reading = asyncio.create_task(read_all(senders, stop))
    try:
        await asyncio.gather(chat_in(stack, room, senders, 15), join())
        last = max(room_offsets(stack, room))
        for client in [*senders, *joiners]:
            await client.catch_up(last)
        assert_every_message_once_in_order(stack, room, [*senders, *joiners])
        assert last == 60
    finally:
        stop.set()
        await reading
        for client in [*senders, *joiners]:
            await client.close()


async def test_sockets_that_join_a_busy_room_get_every_message_once_in_order(fanout):
    await join_a_busy_room(fanout)


async def test_on_a_server_without_the_fast_write_the_room_keeps_its_promises():
    """daphne writes no prepared frame: every frame built once per worker is sent in its
    turn by the consumer's own send. Same room, same promises, only slower."""
    env = {"CHANNEL_LAYER": "fanout", "DEBUG_ENDPOINTS": "1"}
    with NativeStack(django_env=env, django_command=DAPHNE) as daphne:
        await join_a_busy_room(daphne)
        connection, _ = await open_socket(daphne)
        try:
            await connection.send(json.dumps({"type": "broadcast", "text": "once"}))
            (frame,) = await frames_until(connection, 1, "broadcast")
            assert frame["text"] == "once"
        finally:
            await connection.close()


async def test_a_lost_subscriber_connection_closes_no_socket_and_loses_nothing(fanout):
    """The workers' subscriber connections killed mid-conversation: each subscribes again
    and catches its rooms up from MySQL, once per room, with every socket still open."""
    room = f"lost-{uuid.uuid4().hex[:8]}"
    clients = [ChatClient(fanout.http_url, room, f"c{n}") for n in range(8)]
    for client in clients:
        await client.connect()
    stop = asyncio.Event()
    reading = asyncio.create_task(read_all(clients, stop))
    admin = redis.Redis(port=fanout.redis_port)
    caught_up = "missing items read from the store, once"
    before = fanout.log_tail("django", 100_000).count(caught_up)

    async def kill_subscribers() -> None:
        for _ in range(3):
            await asyncio.sleep(0.5)
            admin.client_kill_filter(_type="pubsub")

    try:
        await asyncio.gather(chat_in(fanout, room, clients[:4], 10), kill_subscribers())
        stop.set()
        await reading
        last = max(room_offsets(fanout, room))
        for client in clients:
            await client.catch_up(last)
        assert_every_message_once_in_order(fanout, room, clients)
        assert fanout.log_tail("django", 100_000).count(caught_up) > before
    finally:
        stop.set()
        admin.close()
        for client in clients:
            await client.close()


def store_without_broadcast(stack, room: str, text: str) -> int:
    """A message stored as the app stores one, whose broadcast never went out (Redis
    restarting as it was sent): the room's next offset, and the message row."""
    connection = mysql_connect(stack)
    try:
        cursor = connection.cursor()
        cursor.execute("SELECT id, last_offset FROM talk_room WHERE slug = %s FOR UPDATE", [room])
        room_id, last = cursor.fetchone()
        cursor.execute("UPDATE talk_room SET last_offset = %s WHERE id = %s", [last + 1, room_id])
        cursor.execute(
            "INSERT INTO talk_message (room_id, `offset`, nickname, guest, text, created_at)"
            " VALUES (%s, %s, 'lost', 1, %s, NOW(6))",
            [room_id, last + 1, text],
        )
        connection.commit()
        return last + 1
    finally:
        connection.close()


async def test_a_room_whose_last_broadcast_was_lost_gets_it_at_the_workers_next_check(fanout):
    """No later message shows the gap: each worker's check of its rooms' last offsets
    (REALTIME_STREAM_CHECK, 5 s) finds it, and every socket gets the message."""
    room = f"check-{uuid.uuid4().hex[:8]}"
    clients = [ChatClient(fanout.http_url, room, f"c{n}") for n in range(6)]
    for client in clients:
        await client.connect()
    await clients[0].say("first")
    offset = store_without_broadcast(fanout, room, "lost broadcast")
    started = time.monotonic()
    for client in clients:
        await client.catch_up(offset, timeout=15)
        assert client.offset == offset, "never got the message"
        assert not client.resumes, "got it by reconnecting, not on its open socket"
    # The check's interval, its read, and the frame's way to the client.
    assert time.monotonic() - started < 5 + 5
    assert_every_message_once_in_order(fanout, room, clients)
    for client in clients:
        await client.close()


async def test_a_message_sent_while_redis_is_down_reaches_everyone_with_sockets_open(fanout):
    """Its broadcast is lost, not the message: stored in MySQL, it reaches every socket,
    its sender's too, once the workers subscribe again, and no socket closes (on the
    core layer the sender's closes with 1011 and resumes)."""
    room = f"down-{uuid.uuid4().hex[:8]}"
    clients = await clients_on_distinct_workers(fanout, room)
    await clients[0].say("before")
    fanout.stop_service("redis")
    try:
        for client in clients:
            await client.send_frame({"type": "message", "nickname": client.nickname, "text": "x"})
        async with asyncio.timeout(10):  # stored while Redis is away
            while len(room_offsets(fanout, room)) < 1 + len(clients):
                await asyncio.sleep(0.2)
    finally:
        fanout.start_service("redis")
    last = max(room_offsets(fanout, room))
    for client in clients:
        await client.catch_up(last, timeout=30)
        assert not client.resumes, "got it by reconnecting, not on its open socket"
    assert_every_message_once_in_order(fanout, room, clients)
    for client in clients:
        await client.close()
