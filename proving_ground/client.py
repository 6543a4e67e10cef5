"""A chat participant over a real WebSocket, as the browser page is: it can reconnect
after its socket drops, and it keeps the messages the server acknowledged (broadcast
back with an id), so tests can check every one of them reached MySQL. Also the two
helpers every WebSocket client here shares: the ws:// URL, and one socket per worker."""

from __future__ import annotations

import asyncio
import json
import time

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


class ChatClient:
    def __init__(self, base_url: str, room: str, nickname: str, origin: str | None = None):
        self.base_url, self.room, self.nickname = base_url, room, nickname
        self.origin = origin or base_url
        self.socket = None
        self.worker_pid: int | None = None
        self.server: str | None = None  # the host name of the replica holding the socket
        self.last_history: dict | None = None
        self.acknowledged: list[dict] = []  # own messages the server stored and broadcast
        self.received: list[dict] = []  # every "message" frame seen
        self.refusals: list[str] = []  # why reconnect attempts failed, e.g. "HTTP 403"

    @property
    def url(self) -> str:
        return ws_url(self.base_url, f"/ws/chat/{self.room}/")

    async def connect(self, timeout: float = 10) -> dict:
        self.socket = await websockets.connect(self.url, origin=self.origin, open_timeout=timeout)
        history = await self.next_frame(timeout)
        if history.get("type") != "history":
            raise AssertionError(f"expected history, got {history}")
        self.worker_pid, self.server = history["worker_pid"], history["server"]
        self.last_history = history
        return history

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
    """Send a message a second until `stop` is set (or `limit` are sent: a room's history
    shows its last 50); on a closed socket reconnect, as the page does, and check that the
    history it gets holds every message acknowledged so far. Counts log["reconnects"] and
    appends the time.monotonic() each reconnect completed to log["reconnected"]."""
    await client.connect()
    n = 0
    while not stop.is_set() and n < limit:
        try:
            await client.say(f"{client.nickname} {n}", timeout=10)
            n += 1
            await asyncio.sleep(1)
        except (websockets.ConnectionClosed, TimeoutError):
            log["reconnects"] += 1
            await client.reconnect(within=60)
            log.setdefault("reconnected", []).append(time.monotonic())
            history = {m["id"] for m in client.last_history["messages"]}
            missing = {m["id"] for m in client.acknowledged} - history
            assert not missing, f"acknowledged but not in the history: {missing}"


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
