"""Drives the Django app in this process, for `make bench-metrics` to count the machine
instructions of its work under callgrind (experiments/bench.py: metrics_instructions).

    python -m proving_ground.experiments.instructions_probe {http,echo,broadcast} COUNT

Runs COUNT operations through the ASGI app with Django's unit-test settings (SQLite)
and the stack's channel layer on the Redis at REDIS_URL, after a few to warm up: GET
/api/ping through every middleware, an echo round trip on /ws/echo/, or one broadcast to
the echo socket's group of BROADCAST_SOCKETS sockets (an operation per delivery).
METRICS comes from the environment, as in the stack. No server: what the count covers is
Django's, Channels' and the layer's work in the worker and the metrics' own, which is
what METRICS changes.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile

BROADCAST_SOCKETS = 20
WARM_UP = 30
ORIGIN = [(b"host", b"localhost"), (b"origin", b"http://localhost")]


async def http(application, count: int) -> None:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/api/ping",
        "raw_path": b"/api/ping",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"localhost"), (b"user-agent", b"probe")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8080),
    }
    statuses = []

    async def send(message):
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    for _ in range(count):
        body = asyncio.Queue()
        body.put_nowait({"type": "http.request", "body": b"", "more_body": False})
        await application(dict(scope), body.get, send)
    assert statuses == [200] * count, set(statuses)


class Socket:
    """One WebSocket on the echo route, driven through the ASGI app."""

    def __init__(self, application) -> None:
        scope = {
            "type": "websocket",
            "path": "/ws/echo/",
            "raw_path": b"/ws/echo/",
            "query_string": b"",
            "headers": ORIGIN,
            "subprotocols": [],
            "client": ("127.0.0.1", 40001),
            "server": ("127.0.0.1", 8080),
        }
        self.inbox: asyncio.Queue = asyncio.Queue()
        self.outbox: asyncio.Queue = asyncio.Queue()
        self.task = asyncio.ensure_future(application(scope, self.inbox.get, self.outbox.put))

    async def open(self) -> None:
        await self.inbox.put({"type": "websocket.connect"})
        accepted = await self.outbox.get()
        assert accepted["type"] == "websocket.accept", accepted
        await self.outbox.get()  # the greeting

    async def send(self, text: str) -> None:
        await self.inbox.put({"type": "websocket.receive", "text": text})

    async def receive(self) -> str:
        message = await self.outbox.get()
        assert message["type"] == "websocket.send", message
        return message["text"]

    async def close(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        await self.task


async def echo(application, count: int) -> None:
    socket = Socket(application)
    await socket.open()
    for _ in range(count):
        await socket.send('{"type": "echo", "text": "x"}')
        await socket.receive()
    await socket.close()


async def broadcast(application, count: int) -> None:
    sockets = [Socket(application) for _ in range(BROADCAST_SOCKETS)]
    for socket in sockets:
        await socket.open()
    for _ in range(count // BROADCAST_SOCKETS):
        await sockets[0].send('{"type": "broadcast", "text": "x"}')
        for socket in sockets:
            await socket.receive()
    for socket in sockets:
        await socket.close()


OPERATIONS = {"http": http, "echo": echo, "broadcast": broadcast}


def main() -> None:
    operation, count = OPERATIONS[sys.argv[1]], int(sys.argv[2])
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(dir="/dev/shm"))
    import django

    from metrics import tally

    # The tallies' flusher wakes once a second of wall time, which under callgrind holds
    # some fifty times fewer operations: it would be charged fifty times its share (a
    # flush costs a worker tens of microseconds a second). Left asleep here.
    tally.FLUSH_INTERVAL = 1e6
    django.setup()
    from channels.routing import get_default_application
    from django.conf import settings

    import channels_tutorial.settings

    # The stack's own channel layer (REDIS_URL from the environment), not the unit
    # tests' in-memory one, whose deep copy of every event is not what a worker does.
    settings.CHANNEL_LAYERS = channels_tutorial.settings.CHANNEL_LAYERS

    application = get_default_application()

    async def run():
        await operation(application, WARM_UP)
        await operation(application, count)

    asyncio.run(run())


if __name__ == "__main__":
    main()
