import os

from django.conf import settings

from realtime.consumers import JsonConsumer

ECHO_GROUP = "echo"


class EchoConsumer(JsonConsumer):
    """Proves the WebSocket path: greets with the worker's PID, echoes, and broadcasts
    to every socket on every worker through the channel layer (Redis). For developers
    only (settings.DEBUG_ENDPOINTS)."""

    groups = [ECHO_GROUP]
    # echo_broadcast only forwards to the socket: no per-event database clean-up.
    event_db_cleanup = False

    async def connect(self):
        if not settings.DEBUG_ENDPOINTS:
            # Any client may broadcast here: developers only. Closing before accept()
            # refuses the handshake (HTTP 403).
            await self.close()
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

    async def echo_broadcast(self, event):
        await self.send_json(
            {
                "type": "broadcast",
                "text": event["text"],
                "from_pid": event["from_pid"],
                "pid": os.getpid(),
            }
        )
