import json

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from .ratelimit import TokenBucket


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """A JSON consumer that answers bad frames with an error frame instead of closing.

    Handlers are methods named after the frame's "type" ("echo" -> ``on_echo``). Each
    connection may send `rate_limit` frames a second (bursts of `rate_burst`); frames
    beyond that are dropped with an error frame, so one flooding socket cannot starve
    the worker's other sockets. (Frames over 64 KiB never get here: Uvicorn closes the
    socket with 1009, see channels_tutorial/workers.py.)
    """

    rate_limit = 10.0
    rate_burst = 20

    async def websocket_connect(self, message):
        self.bucket = TokenBucket(self.rate_limit, self.rate_burst)
        await super().websocket_connect(message)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if not self.bucket.allow():
            await self.send_error("rate limit exceeded; frame dropped")
            return
        if text_data is None:
            await self.send_error("binary frames are not accepted; send JSON text")
            return
        try:
            content = await self.decode_json(text_data)
        except ValueError:
            await self.send_error("frame is not valid JSON")
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content, **kwargs):
        kind = content.get("type") if isinstance(content, dict) else None
        handler = getattr(self, f"on_{kind}", None) if isinstance(kind, str) else None
        if handler is None:
            await self.send_error(f"unknown frame type: {json.dumps(kind)}")
            return
        await handler(content)

    async def send_error(self, detail: str) -> None:
        await self.send_json({"type": "error", "detail": detail})
