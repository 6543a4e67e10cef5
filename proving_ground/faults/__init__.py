"""Fault injection and hostile input on the native stack, and the table of what survived.

    make faults        # runs every scenario on fresh native stacks and prints the table

Each scenario is a coroutine that injects one fault (or hostile input) into a running
stack, checks the stack's promise under it with assertions, and returns its figures. The
whole-stack tests (proving_ground/tests/test_faults.py, test_hostile.py) run the same scenarios.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import itertools
import json
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field

import httpx
import MySQLdb
import websockets

from proving_ground import reports
from proving_ground.clients import Account, ChatClient, chat_steadily, one_per_worker, ws_url
from proving_ground.stacks.compose import ROOT
from proving_ground.stacks.native import NativeStack

sys.path.insert(0, str(ROOT / "Django"))
from channels_tutorial.config import Settings  # noqa: E402

# The close codes the scenarios expect, as the template defines them.
from compat.uvicorn import CLOSE_TOO_SLOW  # noqa: E402
from realtime.consumers import CLOSE_TRY_AGAIN  # noqa: E402, F401 - test_faults uses it
from realtime.streams import STREAM_CHECK  # noqa: E402


@dataclass
class Outcome:
    kind: str  # "fault" or "hostile"
    name: str
    survived: bool = False
    recovery_s: float | None = None
    detail: str = ""
    acknowledged: list[dict] = field(default_factory=list)
    stored: int = 0
    clients: int = 0  # clients accounted for, each against its room's stored messages
    account: Account = field(default_factory=Account)
    applies: bool = True  # False: the fault cannot happen on this stack (NotApplicable)


class NotApplicable(Exception):
    """Raised by a scenario whose fault cannot happen on the stack it was given."""


# The chat clients of the running scenario: run() accounts for them even when the
# scenario fails half-way, so that a failed row still says whether a client lost a message.
_scenario_clients: contextvars.ContextVar[list | None] = contextvars.ContextVar(
    "scenario_clients", default=None
)


def chat_client(*args, **kwargs) -> ChatClient:
    """A ChatClient, counted in the running scenario's outcome however it ends."""
    client = ChatClient(*args, **kwargs)
    if (tracked := _scenario_clients.get()) is not None:
        tracked.append(client)
    return client


def untrack(client: ChatClient) -> None:
    if (tracked := _scenario_clients.get()) is not None and client in tracked:
        tracked.remove(client)


def room() -> str:
    return f"fault-{uuid.uuid4().hex[:10]}"


# Layers whose groups are Redis subscriptions held by each worker, not keys in Redis:
# channels-redis's pub/sub layer and the stack's own (realtime/fanout.py).
SUBSCRIBING = ("pubsub", "fanout")
# The channel layer the stack ships with: config.py's default.
SHIPPED_LAYER = Settings.model_fields["channel_layer"].default


def layer_of(stack) -> str:
    """The channel layer the stack's Django runs on (CHANNEL_LAYER: core, pubsub, fanout;
    unset, the app's default)."""
    return stack.django_env().get("CHANNEL_LAYER") or SHIPPED_LAYER


def mysql_connect(stack: NativeStack):
    """A connection to the stack's MySQL as Django's user, from the host."""
    env = stack.django_env()
    return MySQLdb.connect(
        host="127.0.0.1",
        port=stack.mysql_port,
        user=env["MYSQL_USER"],
        password=env["MYSQL_PASSWORD"],
        database=env["MYSQL_DATABASE"],
    )


def _query(stack: NativeStack, sql: str, params: list) -> list[tuple]:
    connection = mysql_connect(stack)
    try:
        cursor = connection.cursor()
        cursor.execute(sql, params)
        return list(cursor.fetchall())
    finally:
        connection.close()


def stored_ids(stack: NativeStack, ids: list[int]) -> set[int]:
    """Which of these message ids are rows in MySQL."""
    if not ids:
        return set()
    marks = ",".join(["%s"] * len(ids))
    rows = _query(stack, f"SELECT id FROM talk_message WHERE id IN ({marks})", ids)
    return {row[0] for row in rows}


def room_offsets(stack, room_name: str) -> list[int]:
    """The offsets of the room's stored messages, read from MySQL."""
    if hasattr(stack, "room_offsets"):  # a stack whose MySQL the host cannot reach
        return stack.room_offsets(room_name)
    sql = (
        "SELECT m.`offset` FROM talk_message m JOIN talk_room r ON r.id = m.room_id"
        " WHERE r.slug = %s"
    )
    return [row[0] for row in _query(stack, sql, [room_name])]


def room_rows(stack: NativeStack, room_name: str) -> int:
    """How many messages MySQL holds for the room."""
    sql = (
        "SELECT COUNT(*) FROM talk_message m JOIN talk_room r ON r.id = m.room_id WHERE r.slug = %s"
    )
    return _query(stack, sql, [room_name])[0][0]


async def clients_on_distinct_workers(stack: NativeStack, room_name: str) -> list[ChatClient]:
    """One client per Uvicorn worker (connections are spread by the kernel)."""
    names = (f"user{n}" for n in itertools.count())

    async def connect():
        client = chat_client(stack.http_url, room_name, next(names))
        await client.reconnect(within=15)  # as the page does: retry with backoff
        return client, client.worker_pid

    chosen, spares = await one_per_worker(stack.gunicorn_workers(), connect)
    for client in spares:
        await client.close()
        untrack(client)  # not the scenario's: nothing to account for
    return list(chosen.values())


# How long a broadcast may take to reach a socket: a few seconds, or, for one that Redis
# lost on channels-redis's layers, until its worker's next check of its rooms in MySQL
# (realtime/streams.py).
HEARD_WITHIN_S = 5.0
CHECKED_WITHIN_S = HEARD_WITHIN_S + STREAM_CHECK


async def everyone_hears(
    sender: ChatClient, others: list[ChatClient], text: str, within: float = HEARD_WITHIN_S
) -> None:
    await sender.say(text, timeout=within)
    for other in others:
        await other.wait_for(lambda f: f.get("text") == text, timeout=within)


# -- faults ------------------------------------------------------------------------------


async def mysql_late(stack: NativeStack, outcome: Outcome) -> None:
    """MySQL is not up when Django starts: Django waits (bounded), then becomes ready."""
    stack.start(("redis",))
    failure: list[BaseException] = []

    def start_django():
        try:
            stack.start_service("django")
        except BaseException as error:  # reported below
            failure.append(error)

    django = threading.Thread(target=start_django)
    django.start()
    await asyncio.sleep(4)
    assert django.is_alive(), f"Django did not wait for MySQL: {failure}"
    mysql_up = time.monotonic()
    stack.start_service("mysql")
    await asyncio.to_thread(django.join, 120)
    assert not failure, failure
    outcome.recovery_s = time.monotonic() - mysql_up
    log = stack.log_tail("django", 10_000)
    assert "database not ready" in log, "the wait was not logged"
    assert "database ready after" in log, "the outcome of the wait was not logged"
    stack.start_service("nginx")
    client = chat_client(stack.http_url, room(), "late")
    await client.connect()
    await client.say("stored once MySQL arrived")
    await finish(stack, outcome, [client])
    outcome.detail = "Django waited for MySQL, then migrated and served"


async def redis_restart(stack: NativeStack, outcome: Outcome) -> None:
    """Redis restarts under connected clients, several per worker, and broadcasts flow
    again without restarting Django. On the stack's own layer no socket closes: its
    workers subscribe again and catch their rooms up from MySQL. On channels-redis's
    layers a socket that meets the Redis error closes with 1011 and reconnects; one that
    does not stays open, and what it missed comes from its worker's check of MySQL."""
    name = room()
    clients = []
    for _ in range(5):
        clients += await clients_on_distinct_workers(stack, name)
    await everyone_hears(clients[0], clients[1:], "before the restart")
    codes = set() if layer_of(stack) == "fanout" else {1011}
    stack.restart_service("redis")
    restarted = time.monotonic()
    closes = await closed_then_rejoined(
        clients, codes, "the Redis restart", outcome=outcome, within=heard_within(stack)
    )
    outcome.recovery_s = time.monotonic() - restarted
    await finish(stack, outcome, clients)
    outcome.detail = f"{closed_codes(closes)}, clients reconnected, broadcasts flow"


async def redis_flushed(stack: NativeStack, outcome: Outcome) -> None:
    """Redis loses its data but not its connections (FLUSHALL, or eviction at maxmemory).
    The pub/sub layers keep no group state in Redis. channels-redis's core layer keeps
    its groups there: they are gone, the sockets stay open and hear nothing through the
    layer; each message reaches them from their worker's check of MySQL, up to
    REALTIME_STREAM_CHECK late, until they reconnect."""
    import redis

    name = room()
    clients = await clients_on_distinct_workers(stack, name)
    await everyone_hears(clients[0], clients[1:], "before the flush")
    client = redis.Redis(host="127.0.0.1", port=stack.redis_port)
    try:
        client.flushall()
    finally:
        client.close()
    flushed = time.monotonic()
    within = heard_within(stack)
    closes = await closed_then_rejoined(clients, set(), "the flush", outcome=outcome, within=within)
    if layer_of(stack) in SUBSCRIBING:
        outcome.detail = f"no group state in Redis to lose: {closed_codes(closes)}"
    else:
        outcome.detail = f"groups lost, {closed_codes(closes)}: messages came from MySQL"
    outcome.recovery_s = time.monotonic() - flushed
    await finish(stack, outcome, clients)


def heard_within(stack) -> float:
    """How long a broadcast may take after Redis lost its data or restarted: on
    channels-redis's layers, which lose memberships (core) or publishes on stale
    connections (pub/sub), until the worker's check of its rooms."""
    return HEARD_WITHIN_S if layer_of(stack) == "fanout" else CHECKED_WITHIN_S


async def closed_then_rejoined(
    clients: list[ChatClient],
    codes: set[int],
    event: str,
    outcome: Outcome | None = None,
    within: float = HEARD_WITHIN_S,
):
    """Every socket stays open 10 s (None) or closes with one of `codes`; those closed
    reconnect; broadcasts flow again, each heard `within`. The closes go into the
    `outcome`'s detail at once, so that a failure after them still shows them."""
    closes = await asyncio.gather(*(closed_within(client, 10) for client in clients))
    if outcome is not None:
        outcome.detail = closed_codes(closes)
    assert set(closes) <= codes | {None}, f"sockets not closed cleanly after {event}: {closes}"
    for client in clients:
        if not client.is_open:
            await client.reconnect(within=30)
    await everyone_hears(clients[-1], clients[:-1], f"after {event}", within=within)
    return closes


def closed_codes(closes: list[int | None]) -> str:
    """'3 sockets closed ([1011]), 7 stayed open', from closed_then_rejoined's closes."""
    closed = [code for code in closes if code is not None]
    said = f"{len(closed)} sockets closed ({sorted(set(closed))})" if closed else "no socket closed"
    return said + (
        f", {len(closes) - len(closed)} stayed open" if len(closed) < len(closes) else ""
    )


async def finish(stack, outcome: Outcome, clients: list[ChatClient]) -> None:
    """Count what the clients had acknowledged; bring each up to its room's last stored
    message (reconnecting and resuming if its socket is closed), hold what it got against
    the room's stored messages since it joined (Outcome.account), and close it. Rooms are
    read once each, after every message was sent, and the clients settle all at once."""
    joined = [client for client in clients if client.joined_at is not None]
    rooms = sorted({client.room for client in joined})
    offsets = await asyncio.gather(*(asyncio.to_thread(room_offsets, stack, r) for r in rooms))
    stored = dict(zip(rooms, offsets, strict=True))

    async def settle(client: ChatClient) -> None:
        await client.catch_up(max(stored[client.room], default=0))

    await asyncio.gather(*(settle(client) for client in joined))
    for client in clients:
        outcome.acknowledged += client.acknowledged
    for client in joined:
        outcome.account += client.account(stored[client.room])
        outcome.clients += 1
    await asyncio.gather(*(client.close() for client in clients))


async def closed_within(client: ChatClient, seconds: float) -> int | None:
    try:
        await client.wait_for(lambda f: False, timeout=seconds)
    except websockets.ConnectionClosed:
        pass
    except TimeoutError:
        return None
    return client.socket.close_code


# Messages the others send while worker_killed's victim is away, and their pace (under
# the per-socket rate limit).
AWAY_MESSAGES = 60
WS_RATE = 8


async def worker_killed(stack: NativeStack, outcome: Outcome) -> None:
    """SIGKILL one Uvicorn worker: Gunicorn replaces it, the other worker's clients do
    not notice, the killed worker's clients reconnect."""
    clients = await clients_on_distinct_workers(stack, room())
    victim, survivors = clients[0], clients[1:]
    killed_pid, worker_count = victim.worker_pid, len(stack.gunicorn_workers())
    os.kill(killed_pid, signal.SIGKILL)
    killed = time.monotonic()
    while (workers := stack.gunicorn_workers()) and (
        killed_pid in workers or len(workers) < worker_count
    ):
        assert time.monotonic() - killed < 30, "Gunicorn did not replace the worker"
        await asyncio.sleep(0.05)
    outcome.recovery_s = time.monotonic() - killed
    assert await closed_within(victim, 10) is not None, "the killed worker's socket stayed open"
    # While the victim is away, more messages than a new client's page holds (50).
    for n in range(AWAY_MESSAGES):
        await survivors[n % len(survivors)].say(f"while it was away {n}")
        await asyncio.sleep(1 / WS_RATE)
    assert all(client.is_open for client in survivors), "a survivor's socket dropped"
    await victim.reconnect(within=30)
    resumed = len(victim.last_history["messages"])
    assert victim.last_history["recovered"] and resumed == AWAY_MESSAGES, victim.last_history
    await everyone_hears(victim, survivors, "reconnected after the kill")
    await finish(stack, outcome, clients)
    outcome.detail = (
        f"worker {killed_pid} replaced; the other worker's clients unaffected; the killed"
        f" worker's client resumed the {resumed} messages sent while it was away"
    )


async def mysql_restart(stack: NativeStack, outcome: Outcome) -> None:
    """MySQL restarts: the next chat message after it is back is stored."""
    client = chat_client(stack.http_url, room(), "db")
    await client.connect()
    await client.say("before the MySQL restart")
    stack.restart_service("mysql")
    back = time.monotonic()
    await client.say("first message after the restart")  # no stale-connection error
    outcome.recovery_s = time.monotonic() - back
    await finish(stack, outcome, [client])
    outcome.detail = "no stale connection: CONN_MAX_AGE = 0"


async def _echo_visits(stack: NativeStack) -> None:
    """Echo sockets that come, broadcast and go, on every worker."""
    url = ws_url(stack.http_url, "/ws/echo/")

    async def connect():
        echo = await websockets.connect(url, origin=stack.http_url)
        return echo, json.loads(await echo.recv())["pid"]

    chosen, spares = await one_per_worker(stack.gunicorn_workers(), connect)
    sockets = [*chosen.values(), *spares]
    await sockets[0].send(json.dumps({"type": "broadcast", "text": "visiting"}))
    await asyncio.sleep(0.5)
    for echo in sockets:
        await echo.close()


# The in-flight request's 2 s, channels-redis's 5 s BZPOPMIN, and a margin.
EXIT_BOUND_S = 10
# Uvicorn closes open WebSockets with 1012 "service restart" when it shuts down.
CLOSE_SERVICE_RESTART = 1012


async def gunicorn_sigterm(stack: NativeStack, outcome: Outcome) -> None:
    """SIGTERM to Gunicorn: in-flight requests complete, WebSockets close with 1012,
    the process exits well within graceful_timeout, nginx shows its 'restarting' page.

    Sockets that opened and closed before (ordinary disconnects) must not hold the
    shutdown up: the exit comes within EXIT_BOUND_S. (On channels-redis's core layer a
    closed socket's receive can lose its cancellation inside Redis's BZPOPMIN and hold
    the exit until graceful_timeout: docs/channels-redis.md.)"""
    await _echo_visits(stack)
    client = chat_client(stack.http_url, room(), "term")
    await client.connect()
    await client.say("before SIGTERM")
    graceful = int(stack.django_env()["GRACEFUL_TIMEOUT"])
    master = stack.executors["django"].process
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            in_flight = asyncio.create_task(http.get(stack.http_url + "/debug/slow?seconds=2"))
            await asyncio.sleep(0.5)
            master.send_signal(signal.SIGTERM)
            sent = time.monotonic()
            response = await in_flight
            assert response.status_code == 200, f"in-flight request got {response.status_code}"
            closed = await closed_within(client, 10)
            assert closed == CLOSE_SERVICE_RESTART, f"WebSocket closed with {closed}"
            exit_code = await asyncio.to_thread(master.wait, graceful + 10)
            exited = time.monotonic() - sent
            assert exit_code == 0, f"exit {exit_code}"
            assert exited < EXIT_BOUND_S, f"exited after {exited:.1f}s"
            down = await http.get(stack.http_url + "/")
            assert down.status_code == 503 and "restarting" in down.text, down.text
    finally:  # the rows after this one need Django, whatever this one found
        stack.stop_service("django")
        stack.start_service("django")
    await client.reconnect(within=30)
    await client.say("after the restart")
    outcome.recovery_s = exited
    await finish(stack, outcome, [client])
    outcome.detail = (
        f"exited in {exited:.1f}s (< {EXIT_BOUND_S}s, graceful_timeout {graceful}s);"
        " in-flight request completed"
    )


# How long after the kill the steady chatters of redis_primary_killed keep talking.
AFTER_FAILOVER_S = 25


async def redis_primary_killed(stack, outcome: Outcome, after_kill=None) -> None:
    """Redis behind Sentinels (a DockerStack of docker-compose.sentinel.yml): the primary
    is killed, the Sentinels promote the replica. Sockets that were using the lost
    primary close and reconnect (on the stack's own layer none closes: its workers
    subscribe again to the new primary); broadcasts flow again without restarting Django. Beside
    them, clients in rooms of their own chat steadily throughout, reconnecting when they
    must: every message they had acknowledged is in MySQL and in the history they get.
    The recovery is the time from the kill until the room's broadcasts flow and every
    steady chatter is back. `after_kill`, if given, runs in a thread right after the
    kill (a further fault)."""
    name = room()
    clients = []
    for _ in range(3):
        clients += await clients_on_distinct_workers(stack, name)
    await everyone_hears(clients[0], clients[1:], "before the failover")
    stop, log = threading.Event(), {"reconnects": 0}
    chatters = [chat_client(stack.http_url, room(), f"steady{n}") for n in range(3)]
    talk = asyncio.gather(*(chat_steadily(chatter, stop, log) for chatter in chatters))
    await asyncio.sleep(3)
    stack.compose("kill", "redis")
    killed, closed, attempt = time.monotonic(), 0, 0
    further = asyncio.create_task(asyncio.to_thread(after_kill)) if after_kill else None
    while True:  # until one message reaches every socket
        attempt += 1
        for client in clients:
            if not client.is_open:
                closed += 1
                await client.reconnect(within=60)
        try:
            sender = clients[attempt % len(clients)]
            others = [client for client in clients if client is not sender]
            await everyone_hears(sender, others, f"after the failover ({attempt})")
            break
        except (websockets.ConnectionClosed, TimeoutError, AssertionError):
            assert time.monotonic() - killed < 90, "broadcasts did not come back in 90 s"
    room_back = time.monotonic() - killed
    if further:
        await further
    # The steady clients go on past the layer's socket timeout (REDIS_CLIENT in config.py):
    # a command left hanging on the lost primary must not close sockets after recovery.
    await asyncio.sleep(max(3, killed + AFTER_FAILOVER_S - time.monotonic()))
    stop.set()
    try:
        await talk
    finally:
        refusals = collections.Counter(r for c in clients + chatters for r in c.refusals)
        outcome.detail = "refused meanwhile: " + (
            ", ".join(f"{why} x{count}" for why, count in refusals.most_common()) or "never"
        )
    back_at = sorted(at - killed for at in log.get("reconnected", []))
    chatters_back = max(back_at, default=0.0)
    outcome.recovery_s = max(room_back, chatters_back)
    ask = (
        'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli -p 26379'
        ' sentinel get-master-addr-by-name "$REDIS_SENTINEL_MASTER"'
    )
    primary = stack.exec("sentinel", "sh", "-c", ask).stdout.split()[0]
    networks = stack.container("redis-replica")["NetworkSettings"]["Networks"].values()
    assert primary in {network["IPAddress"] for network in networks}, "no failover happened"
    # A Sentinel whose own thread stalled for over 2 s (a slow DNS lookup, say) stops
    # acting for 30 s: "+tilt" in its log. None may, or a failover can take minutes.
    sentinel_log = stack.compose("logs", "sentinel").stdout
    assert "+tilt" not in sentinel_log, "a Sentinel entered TILT mode during the failover"
    await finish(stack, outcome, clients + chatters)
    if layer_of(stack) == "fanout":
        assert closed == log["reconnects"] == 0, (
            f"the failover closed sockets: {closed} in the room, {log['reconnects']} of"
            f" the steady chatters' ({outcome.detail})"
        )
    outcome.detail = (
        f"the replica ({primary}) promoted; room broadcasts back after {room_back:.1f} s,"
        f" steady chatters after {chatters_back:.1f} s; {closed} of {len(clients)} sockets"
        f" closed and reconnected; steady chatters reconnected {log['reconnects']} times"
        f" (at {', '.join(f'+{at:.1f}' for at in back_at) or 'no time'} s); {outcome.detail}"
    )


# A channel layer that holds one waiting message per worker drops most of a burst.
DROPPING_LAYER = {"CHANNEL_CAPACITY": "1"}


async def layer_drops(stack: NativeStack, outcome: Outcome) -> None:
    """The channel layer drops broadcasts (a stack run with DROPPING_LAYER): sockets stay
    open, see the jump in offsets at the next message, and read what they missed from
    MySQL, so every client still gets every message, in order, once."""
    if layer_of(stack) == "pubsub":
        raise NotApplicable(
            "the pub/sub layer has no capacity to overflow; what it loses (messages in"
            " flight while it subscribes again) is redis_restart's"
        )
    if layer_of(stack) == "fanout":
        raise NotApplicable(
            "the fanout layer queues nothing per worker; a socket whose own queue fills"
            " is closed with 4008 and resumes (slow_reader), and what a worker misses"
            " while it subscribes again is redis_restart's"
        )
    name = room()
    reader = chat_client(stack.http_url, name, "reader")
    await reader.connect()
    senders = [chat_client(stack.http_url, name, f"s{n}") for n in range(10)]
    for sender in senders:
        await sender.connect()
    filled_before = stack.log_tail("django", 100_000).count("missing items read")
    for burst in range(3):
        await asyncio.gather(
            *(s.send_frame({"type": "message", "nickname": s.nickname, "text": f"{burst}"})
              for s in senders)
        )  # fmt: skip
    await asyncio.sleep(2)
    # A drop is noticed at the next message: the last of a burst needs one after it.
    await senders[0].say("after the bursts")
    await finish(stack, outcome, [reader, *senders])
    filled = stack.log_tail("django", 100_000).count("missing items read") - filled_before
    assert filled, "the layer dropped nothing: no fault was injected"
    outcome.detail = (
        f"CHANNEL_CAPACITY=1: {filled} times a socket read dropped broadcasts from MySQL;"
        " no socket closed"
    )
    assert all(client.socket.close_code in (None, 1000) for client in [reader, *senders])


FAULTS = [mysql_late, redis_restart, redis_flushed, worker_killed, mysql_restart, gunicorn_sigterm]


# -- hostile input -----------------------------------------------------------------------


async def _error_and_still_open(client: ChatClient, frame) -> str:
    await client.send_frame(frame)
    error = await client.wait_for(lambda f: f.get("type") == "error")
    await client.say("still open")
    return error["detail"]


async def malformed_frames(stack: NativeStack, outcome: Outcome) -> None:
    client = chat_client(stack.http_url, room(), "m")
    await client.connect()
    for frame in [
        "{not json",
        b"\x00\xff",
        '{"type": "message"}',
        '{"type": "message", "nickname": "m", "text": ""}',
        '{"type": "nope"}',
        "[]",
    ]:
        await _error_and_still_open(client, frame)
    # Only the "still open" messages are stored, none of the bad frames.
    assert room_rows(stack, client.room) == len(client.acknowledged)
    await finish(stack, outcome, [client])
    outcome.detail = "6 kinds, each an error frame; socket stayed open; nothing stored"


async def oversized_frame(stack: NativeStack, outcome: Outcome) -> None:
    client = chat_client(stack.http_url, room(), "big")
    await client.connect()
    big = {"type": "message", "nickname": "big", "text": "x" * 100_000}
    await client.send_frame(big)
    code = await closed_within(client, 10)
    assert code == 1009, f"closed with {code}, not 1009"
    assert room_rows(stack, client.room) == 0, "the oversized message was stored"
    outcome.detail = "100 kB frame: closed with 1009 before the app saw it"


async def flood(stack: NativeStack, outcome: Outcome) -> None:
    flooder = chat_client(stack.http_url, room(), "flood")
    bystander = chat_client(stack.http_url, room(), "calm")
    await flooder.connect()
    await bystander.connect()
    for n in range(300):
        await flooder.send_frame({"type": "message", "nickname": "flood", "text": f"spam {n}"})
    start = time.monotonic()
    await bystander.say("other rooms are unaffected")
    latency = time.monotonic() - start
    errors = 0
    while errors == 0 or flooder.received == []:
        frame = await flooder.next_frame()
        errors += frame.get("type") == "error" and "rate limit" in frame["detail"]
    assert latency < 2, f"bystander waited {latency:.2f}s"
    outcome.detail = (
        f"rate-limited with error frames; other room answered in {latency * 1000:.0f} ms"
    )
    await finish(stack, outcome, [flooder, bystander])


async def foreign_origin(stack: NativeStack, outcome: Outcome) -> None:
    client = chat_client(stack.http_url, room(), "x", origin="http://evil.example")
    try:
        await client.connect()
    except websockets.InvalidStatus as refused:
        assert refused.response.status_code == 403
        outcome.detail = "handshake refused with 403"
        return
    raise AssertionError("a foreign Origin was accepted")


async def unknown_host(stack: NativeStack, outcome: Outcome) -> None:
    response = httpx.get(stack.http_url + "/", headers={"Host": "attacker.example"})
    assert response.status_code == 400, response.status_code
    outcome.detail = "Host not in ALLOWED_HOSTS: 400"


async def path_tricks(stack: NativeStack, outcome: Outcome) -> None:
    refused_by = {}
    for trick in ["..%2F..%2Fetc", "a%00b", "%2e%2e", "UPPER", "a" * 120]:
        client = chat_client(stack.http_url, trick, "x")
        try:
            client.socket = await websockets.connect(client.url, origin=stack.http_url)
        except websockets.InvalidStatus as refused:  # refused before Django: also fine
            assert refused.response.status_code == 400, refused
            refused_by[trick] = "HTTP 400"
        else:
            frame = await client.next_frame()
            assert frame["type"] == "error" and "room names are" in frame["detail"], frame
            assert await closed_within(client, 5) == 4400
            refused_by[trick] = "close 4400"
        page = httpx.get(f"{stack.http_url}/talk/{trick}/")
        assert page.status_code == 400, (trick, page.status_code)
    outcome.detail = "room-name tricks refused: " + ", ".join(
        f"{trick[:12]} ({how})" for trick, how in refused_by.items()
    )


# A socket that stops reading is closed within Uvicorn's ping interval plus its pong
# timeout (workers.py: 10 s + WS_SEND_TIMEOUT), and a margin.
STALL_CLOSE_BOUND_S = 30


async def slow_reader(stack: NativeStack, outcome: Outcome) -> None:
    """A client that stops reading does not stall the others in its room; the server
    closes it with 4008, and once it reads again and resumes it has every message."""
    name = room()
    stalled = chat_client(stack.http_url, name, "stalled")
    await stalled.connect(stalling=True)
    senders = [chat_client(stack.http_url, name, f"s{n}") for n in range(10)]
    reader = chat_client(stack.http_url, name, "reader")
    await reader.connect()
    for sender in senders:
        await sender.connect()
    text = "z" * 1900
    log_before = stack.log_tail("django", 100_000).count("too slow to read")
    start = time.monotonic()
    for burst in range(2):
        await asyncio.gather(
            *(s.say(f"{burst}-{n}-{text}", timeout=15) for n, s in enumerate(senders))
        )
    expected = {f"{b}-{n}-{text}" for b in range(2) for n in range(10)}
    while expected - {f["text"] for f in reader.received}:
        await reader.next_frame(timeout=10)
    elapsed = time.monotonic() - start
    while stack.log_tail("django", 100_000).count("too slow to read") == log_before:
        waited = time.monotonic() - start
        assert waited < STALL_CLOSE_BOUND_S, f"the stalled socket still open after {waited:.0f} s"
        await asyncio.sleep(0.5)
    closed_after = time.monotonic() - start
    assert await closed_within(stalled, 10) == CLOSE_TOO_SLOW, stalled.socket.close_code
    await finish(stack, outcome, [*senders, reader, stalled])
    outcome.detail = (
        f"20 x 2 kB broadcasts reached the reader in {elapsed:.2f}s beside a non-reader;"
        f" the non-reader closed with 4008 after {closed_after:.0f} s, then resumed"
    )


HOSTILE = [
    malformed_frames,
    oversized_frame,
    flood,
    foreign_origin,
    unknown_host,
    path_tricks,
    slow_reader,
]


# -- running and reporting ---------------------------------------------------------------


# How long run() gives a failed scenario's clients to catch up for the accounting.
ACCOUNT_AFTER_FAILURE_S = 60


async def run(scenario, stack: NativeStack, kind: str) -> Outcome:
    outcome = Outcome(kind, scenario.__name__)
    clients: list[ChatClient] = []
    tracking = _scenario_clients.set(clients)
    try:
        await scenario(stack, outcome)
        outcome.survived = True
    except NotApplicable as why:
        outcome.applies, outcome.detail = False, f"not applicable: {why}"
    except Exception as error:  # a failed scenario is a row in the table, not a crash
        before = f" (before it: {outcome.detail})" if outcome.detail else ""
        outcome.detail = f"{type(error).__name__}: {error}{before}"
        if not outcome.clients:  # it failed before finish(): account for its clients now
            try:
                async with asyncio.timeout(ACCOUNT_AFTER_FAILURE_S):
                    await finish(stack, outcome, clients)
            except Exception as failed:
                outcome.detail += f" (clients not accounted for: {type(failed).__name__})"
                await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)
    finally:
        _scenario_clients.reset(tracking)
    ids = [m["id"] for m in outcome.acknowledged]
    outcome.stored = len(stored_ids(stack, ids)) if stack.is_running("mysql") else 0
    account = outcome.account
    if outcome.survived and not account.clean:
        outcome.survived = False
        outcome.detail = (
            f"a client missed messages: {account.gaps} gaps, {account.duplicates} duplicates,"
            f" {account.out_of_order} out of order, {account.not_recovered} resumes not"
            f" recovered; {outcome.detail}"
        )
    return outcome


COLUMNS = (
    "kind", "scenario", "result", "recovery", "sent", "stored",
    "clients", "expected", "live", "resumed", "gaps", "dups", "disorder", "resumes ok/not",
)  # fmt: skip


def table(outcomes: list[Outcome]) -> str:
    """One row per scenario: its result, the messages acknowledged and stored, and every
    client's messages against its room's stored ones (clients: accounted for; expected:
    stored since each joined; live and resumed: what they got; gaps, dups, disorder:
    missed, twice, out of offset order; resumes: recovered or not)."""
    rows = [(*COLUMNS, "detail")]
    for o in outcomes:
        recovery = f"{o.recovery_s:.2f} s" if o.recovery_s is not None else "-"
        result = (
            "n/a"
            if not o.applies
            else "survived"
            if o.survived and o.kind == "fault"
            else "rejected"
            if o.survived
            else "FAILED"
        )
        a = o.account
        counts = (len(o.acknowledged), o.stored, o.clients, a.expected, a.live, a.resumed)
        counts += (a.gaps, a.duplicates, a.out_of_order)
        resumes = f"{a.recovered}/{a.not_recovered}"
        rows.append((o.kind, o.name, result, recovery, *map(str, counts), resumes, o.detail))
    lines = reports.columns(rows, last_free=True)
    faults = [o for o in outcomes if o.kind == "fault" and o.applies]
    hostile = [o for o in outcomes if o.kind == "hostile" and o.applies]
    sent = sum(len(o.acknowledged) for o in outcomes)
    stored = sum(o.stored for o in outcomes)
    total = sum((o.account for o in outcomes), Account())
    lines += [
        "",
        f"faults injected: {len(faults)}, survived: {sum(o.survived for o in faults)}",
        f"hostile inputs tried: {len(hostile)}, rejected: {sum(o.survived for o in hostile)}",
        f"messages acknowledged: {sent}, stored in MySQL: {stored}"
        + ("  (equal)" if sent == stored else "  (LOST MESSAGES)"),
        f"clients accounted for: {sum(o.clients for o in outcomes)}; gaps {total.gaps},"
        f" duplicates {total.duplicates}, out of order {total.out_of_order};"
        f" resumes recovered {total.recovered}, not recovered {total.not_recovered}",
    ]
    return "\n".join(lines)


async def run_all(env: dict | None = None) -> list[Outcome]:
    env = {"WEB_CONCURRENCY": "2", **(env or {})}
    outcomes = []
    late = NativeStack(django_env=env)  # mysql_late starts it itself
    try:
        outcomes.append(await run(mysql_late, late, "fault"))
    finally:
        late.stop()
    with NativeStack(django_env=env) as stack:
        for scenario in FAULTS[1:]:
            outcomes.append(await run(scenario, stack, "fault"))
        for scenario in HOSTILE:
            outcomes.append(await run(scenario, stack, "hostile"))
    with NativeStack(django_env={**env, **DROPPING_LAYER}) as stack:
        outcomes.insert(len(FAULTS), await run(layer_drops, stack, "fault"))
    from . import limits  # it builds on this module

    # The limits' hostile clients, on a stack with nginx's limits as shipped.
    with NativeStack(django_env={**env, **limits.STACK_ENV}, address_limits=True) as stack:
        for scenario in limits.HOSTILE:
            outcomes.append(await run(scenario, stack, "hostile"))
    return outcomes


def main() -> int:
    parser = reports.parser(__doc__)
    parser.add_argument(
        "--layer",
        choices=("core", "pubsub", "fanout"),
        help="the channel layer to run under (default: the one Django/.env.django sets)",
    )
    args = parser.parse_args()
    outcomes = asyncio.run(run_all({"CHANNEL_LAYER": args.layer} if args.layer else None))
    print(table(outcomes))
    lost = sum(len(o.acknowledged) for o in outcomes) != sum(o.stored for o in outcomes)
    return 1 if lost or not all(o.survived for o in outcomes if o.applies) else 0


if __name__ == "__main__":
    sys.exit(main())
