import asyncio
import os
import time

from django.conf import settings

from realtime.consumers import JsonConsumer
from realtime.frames import frame

from . import figures

ECHO_GROUP = "echo"


class EchoConsumer(JsonConsumer):
    """Proves the WebSocket path: greets with the worker's PID, echoes, and broadcasts
    to every socket on every worker through the channel layer (Redis). For developers
    only (settings.DEBUG_ENDPOINTS)."""

    groups = [ECHO_GROUP]
    # echo_broadcast only forwards to the socket: no per-event database clean-up.
    event_db_cleanup = False
    # The status page's probe: it works for whoever opens the page, signed in or not.
    allow_guests = True

    async def connect(self):
        if not settings.DEBUG_ENDPOINTS:
            # Any client may broadcast here: developers only (HTTP 403).
            await self.refuse("debug_endpoints_off")
            return
        await self.accept()
        await self.send_json({"type": "hello", "pid": os.getpid()})

    async def on_echo(self, content):
        await self.send_json({"type": "echo", "text": content.get("text"), "pid": os.getpid()})

    async def on_broadcast(self, content):
        await self.channel_layer.group_send(
            ECHO_GROUP,
            {"type": "echo.broadcast", "text": content.get("text"), "from_pid": os.getpid()},
        )

    # The same frame for every socket of this worker: on the stack's own layer it is
    # built once and written to each (realtime/frames.py).
    @frame
    def echo_broadcast(event):
        return {
            "type": "broadcast",
            "text": event["text"],
            "from_pid": event["from_pid"],
            "pid": os.getpid(),
        }


class FiguresConsumer(JsonConsumer):
    """Sends the status page a few live figures of this replica every `interval`
    seconds: open sockets, messages delivered a second, delivery lag p99. For developers
    only (settings.DEBUG_ENDPOINTS)."""

    allow_guests = True  # the status page's figures, for whoever opens it

    interval = 2.0

    async def connect(self):
        if not settings.DEBUG_ENDPOINTS or not settings.METRICS:
            await self.refuse("debug_endpoints_off")
            return
        await self.accept()
        self.ticker = asyncio.create_task(self.tick())

    async def tick(self):
        before, at = await asyncio.to_thread(figures.snapshot), time.monotonic()
        while True:
            await asyncio.sleep(self.interval)
            after, now = await asyncio.to_thread(figures.snapshot), time.monotonic()
            await self.send_json({"type": "figures", **figures.figures(before, after, now - at)})
            before, at = after, now

    async def websocket_disconnect(self, message):
        if hasattr(self, "ticker"):
            self.ticker.cancel()
        await super().websocket_disconnect(message)
