"""A chat participant over a real WebSocket, as the browser page is: it reconnects after
its socket drops and resumes from the last offset it saw, it keeps the messages the
server acknowledged (broadcast back with an id), so tests can check every one of them
reached MySQL, and it records every message it ended up with, live or resumed, so tests
can hold that against the room's stored messages (Account). Also the two helpers every
WebSocket client here shares: the ws:// URL, and one socket per worker."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import socket
import time
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import websockets


def ws_url(base: str, path: str) -> str:
    """The WebSocket URL for `path` on an http:// base URL."""
    return base.replace("http://", "ws://", 1) + path


async def one_per_worker(workers, connect, attempts: int = 100):
    """Connect until every worker PID in `workers` holds a connection. Each worker listens
    on a socket of its own and the kernel hashes every new connection over them, so each
    attempt lands on any worker alike: with 4 workers, 100 attempts all miss one with a
    chance of 4 * (3/4)**100, about 1e-12. `connect()` returns (connection, worker_pid).
    Returns {pid: the first connection that worker took} and the spare connections,
    still open, for the caller to use or close."""
    chosen, spares = {}, []
    for _ in range(attempts):
        connection, pid = await connect()
        if pid in chosen:
            spares.append(connection)
        else:
            chosen[pid] = connection
        if set(chosen) >= set(workers):
            return chosen, spares
    raise AssertionError(
        f"{attempts} connections reached workers {sorted(chosen)} only,"
        f" not all of {sorted(workers)}"
    )


def describe_refusal(error: BaseException) -> str:
    """A failed connect in a few words: "HTTP 403", "close 1011", "TimeoutError"."""
    if isinstance(error, websockets.InvalidStatus):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, websockets.ConnectionClosed):
        return f"close {error.rcvd.code if error.rcvd else 'none'}"
    return type(error).__name__


@dataclass
class Account:
    """One client's messages held against the room's stored ones from its join to its end."""

    expected: int = 0  # stored in the room after the client joined
    live: int = 0  # message frames received
    resumed: int = 0  # messages replayed on a reconnect
    gaps: int = 0  # stored but never received
    duplicates: int = 0
    out_of_order: int = 0
    recovered: int = 0  # reconnects whose resume replayed everything missed
    not_recovered: int = 0

    def __add__(self, other: Account) -> Account:
        pairs = zip(vars(self).values(), vars(other).values(), strict=True)
        return Account(*(a + b for a, b in pairs))

    @property
    def clean(self) -> bool:
        return not (self.gaps or self.duplicates or self.out_of_order or self.not_recovered)


class ChatClient:
    def __init__(
        self,
        base_url: str,
        room: str,
        nickname: str,
        origin: str | None = None,
        options: dict | None = None,
    ):
        self.base_url, self.room, self.nickname = base_url, room, nickname
        self.origin = origin or base_url
        # More of websockets.connect's options: where to connect, headers, local address.
        self.options = options or {}
        self.socket = None
        self.worker_pid: int | None = None
        self.server: str | None = None  # the host name of the replica holding the socket
        self.last_history: dict | None = None
        self.acknowledged: list[dict] = []  # own messages the server stored and broadcast
        self.received: list[dict] = []  # every "message" frame seen
        self.refusals: list[str] = []  # why reconnect attempts failed, e.g. "HTTP 403"
        # The room's epoch and the last offset this client has; where it joined.
        self.epoch: str | None = None
        self.offset: int | None = None
        self.joined_at: int | None = None
        self.seen: list[int] = []  # the offset of every message it got, live or resumed
        self.resumed = 0
        self.resumes: collections.Counter[str] = collections.Counter()

    @property
    def url(self) -> str:
        path = f"/ws/talk/{self.room}/"
        if self.offset is not None:
            path += f"?epoch={quote(self.epoch or '')}&offset={self.offset}"
        return ws_url(self.base_url, path)

    async def connect(self, timeout: float = 10, stalling: bool = False) -> dict:
        """Connect, resuming from the last offset seen if there is one. `stalling`: with a
        4 KiB receive buffer, room for one frame and no pings of its own (a client that
        stopped reading would miss their answers and close), so that not reading stalls."""
        options = dict(self.options)
        if stalling:
            host, port = urlsplit(self.base_url).hostname, urlsplit(self.base_url).port or 80
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            options = {"sock": sock, "max_queue": 1, "ping_interval": None}
        self.socket = await websockets.connect(
            self.url, origin=self.origin, open_timeout=timeout, **options
        )
        history = await self.next_frame(timeout)
        if history.get("type") != "history":
            raise AssertionError(f"expected history, got {history}")
        self.worker_pid, self.server = history["worker_pid"], history["server"]
        self.last_history = history
        if self.offset is None:  # joined: what came before is history, not missed
            self.joined_at = self.offset = history["offset"]
        else:
            recovered = history["recovered"]
            self.resumes["recovered" if recovered else "not recovered"] += 1
            for message in history["messages"]:
                if recovered or message["offset"] > self.offset:  # not the page's old ones
                    self.resumed += 1
                    self._got(message)
        self.epoch = history["epoch"]
        return history

    def _got(self, message: dict) -> None:
        self.seen.append(message["offset"])
        self.epoch, self.offset = message["epoch"], max(self.offset or 0, message["offset"])

    def account(self, stored: list[int]) -> Account:
        """This client's messages against `stored`, the offsets the room's messages had
        in MySQL when the client ended."""
        expected = {offset for offset in stored if offset > (self.joined_at or 0)}
        return Account(
            expected=len(expected),
            live=len(self.seen) - self.resumed,
            resumed=self.resumed,
            gaps=len(expected - set(self.seen)),
            duplicates=len(self.seen) - len(set(self.seen)),
            out_of_order=sum(b < a for a, b in zip(self.seen, self.seen[1:], strict=False)),
            recovered=self.resumes["recovered"],
            not_recovered=self.resumes["not recovered"],
        )

    async def catch_up(self, offset: int, timeout: float = 15) -> None:
        """Read (reconnecting if the socket is closed) until this client has `offset`, or
        `timeout` passed: what it still lacks then shows as gaps in its account."""
        with contextlib.suppress(TimeoutError):
            await self._catch_up(offset, timeout)

    async def _catch_up(self, offset: int, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            while (self.offset or 0) < offset:
                if not self.is_open:
                    await self.reconnect(within=timeout)
                    continue
                with contextlib.suppress(websockets.ConnectionClosed):
                    await self.next_frame(timeout)

    async def reconnect(self, within: float = 30) -> float:
        """Reconnect with backoff, like the page does; returns the seconds it took."""
        start, delay = time.monotonic(), 0.2
        while True:
            try:
                await self.connect(timeout=5)
                return time.monotonic() - start
            except (OSError, websockets.WebSocketException, AssertionError, TimeoutError) as error:
                self.refusals.append(describe_refusal(error))
                if time.monotonic() - start > within:
                    raise
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2)

    @property
    def is_open(self) -> bool:
        return self.socket is not None and self.socket.close_code is None

    async def next_frame(self, timeout: float = 5) -> dict:
        async with asyncio.timeout(timeout):
            frame = json.loads(await self.socket.recv())
        if frame.get("type") == "message":
            self.received.append(frame)
            self._got(frame)
        return frame

    async def wait_for(self, predicate, timeout: float = 5) -> dict:
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.next_frame(timeout)
                if predicate(frame):
                    return frame

    async def say(self, text: str, timeout: float = 5) -> dict:
        """Send a message and wait until the server broadcasts it back (stored)."""
        await self.send_frame({"type": "message", "nickname": self.nickname, "text": text})
        frame = await self.wait_for(
            lambda f: (
                f.get("type") == "error"
                or (
                    f.get("type") == "message"
                    and f["nickname"] == self.nickname
                    and f["text"] == text
                )
            ),
            timeout,
        )
        if frame["type"] == "error":
            raise AssertionError(f"server refused {text!r}: {frame['detail']}")
        self.acknowledged.append(frame)
        return frame

    async def send_frame(self, frame: dict | str | bytes) -> None:
        await self.socket.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    async def close(self) -> None:
        if self.socket is not None:
            await self.socket.close()


async def chat_steadily(client: ChatClient, stop, log: dict, limit: int = 45) -> None:
    """Send a message a second until `stop` is set; after `limit` (the room's history
    holds them all) only listen. On a closed socket reconnect and resume, as the page
    does (Account then shows whether it missed anything). Counts log["reconnects"] and
    appends the time.monotonic() each reconnect completed to log["reconnected"]."""
    await client.connect()
    n = 0
    while not stop.is_set():
        try:
            if n < limit:
                await client.say(f"{client.nickname} {n}", timeout=10)
                n += 1
                await asyncio.sleep(1)
            else:  # still there, so that a close is noticed however long the fault lasts
                with contextlib.suppress(TimeoutError):
                    await client.next_frame(timeout=1)
        except (websockets.ConnectionClosed, TimeoutError):
            log["reconnects"] += 1
            await client.reconnect(within=60)
            log.setdefault("reconnected", []).append(time.monotonic())


async def one_per_server(
    base_url: str, room: str, servers: set[str], origin: str | None = None, attempts: int = 60
) -> list[ChatClient]:
    """Chat sockets in `room` until each of `servers` (replicas' host names, as the
    history frame names them) holds one; the spares are closed."""
    chosen: dict[str, ChatClient] = {}
    for attempt in range(attempts):
        client = ChatClient(base_url, room, f"user{attempt}", origin=origin)
        await client.connect()
        if client.server in chosen:
            await client.close()
        else:
            chosen[client.server] = client
        if set(chosen) == servers:
            return list(chosen.values())
    raise AssertionError(
        f"{attempts} sockets reached {sorted(chosen)}, not all of {sorted(servers)}"
    )


async def presence_socket(
    base_url: str, room: str, origin: str | None = None, headers: dict | None = None
):
    """A chat socket in `room` that asked for presence (?presence=1); (socket, history)."""
    connection = await websockets.connect(
        ws_url(base_url, f"/ws/talk/{room}/?presence=1"),
        origin=origin or base_url,
        additional_headers=headers or {},
        open_timeout=10,
    )
    history = json.loads(await asyncio.wait_for(connection.recv(), 10))
    if history.get("type") != "history":
        raise AssertionError(f"expected history, got {history}")
    return connection, history


async def presence_sockets(
    holders,
    key: str,
    base_url: str,
    room: str,
    origin: str | None = None,
    headers: dict | None = None,
) -> dict:
    """{holder: a presence socket (presence_socket) it holds}, for each of `holders`: the
    worker PIDs (`key` "worker_pid") or replica host names ("server") the history names."""

    async def connect():
        connection, history = await presence_socket(base_url, room, origin, headers)
        return connection, history[key]

    held, spares = await one_per_worker(holders, connect)
    for spare in spares:
        await spare.close()
    return held


async def presence_until(connection, predicate, timeout: float = 10) -> dict:
    """The first presence frame on `connection` for which `predicate(frame)` holds."""
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await connection.recv())
            if frame["type"] == "presence" and predicate(frame):
                return frame
