import json
import os

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

ECHO_GROUP = "echo"


class EchoConsumer(AsyncJsonWebsocketConsumer):
    """Proves the WebSocket path: greets with the worker's PID, echoes, and broadcasts
    to every socket on every worker through the channel layer (Redis). For developers
    only (settings.DEBUG_ENDPOINTS): any client may broadcast here."""

    groups = [ECHO_GROUP]

    async def connect(self):
        if not settings.DEBUG_ENDPOINTS:
            await self.close()  # before accept(): the handshake gets 403
            return
        await self.accept()
        await self.send_json({"type": "hello", "pid": os.getpid()})

    async def receive(self, text_data=None, bytes_data=None):
        # Channels' JSON consumer would close the socket on a frame that is not JSON.
        try:
            content = json.loads(text_data or "")
        except ValueError:
            await self.send_json({"type": "error", "detail": "not valid JSON"})
            return
        await self.receive_json(content)

    async def receive_json(self, content):
        kind = content.get("type") if isinstance(content, dict) else None
        pid = os.getpid()
        if kind == "echo":
            await self.send_json({"type": "echo", "text": content.get("text"), "pid": pid})
        elif kind == "broadcast":
            event = {"type": "echo.broadcast", "text": content.get("text"), "from_pid": pid}
            await self.channel_layer.group_send(ECHO_GROUP, event)
        else:
            await self.send_json({"type": "error", "detail": "unknown frame type"})

    async def echo_broadcast(self, event):
        text, sender = event["text"], event["from_pid"]
        await self.send_json(
            {"type": "broadcast", "text": text, "from_pid": sender, "pid": os.getpid()}
        )
