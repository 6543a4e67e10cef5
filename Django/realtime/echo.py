"""The echo socket on the realtime base: core's echo, with bad frames answered, a rate
limit, and each broadcast's frame built once per worker on the stack's layer.

realtime/routing.py puts it before core's routes, so it answers /ws/echo/ while realtime
is installed; benchmarks and fault runs measure the stack through it.
"""

import os

from django.conf import settings

from .consumers import JsonConsumer
from .frames import frame

ECHO_GROUP = "echo"


class EchoConsumer(JsonConsumer):
    """core.consumers.EchoConsumer's frames, on the realtime base. For developers only
    (settings.DEBUG_ENDPOINTS)."""

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
