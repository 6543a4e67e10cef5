"""Group events that every socket receives as the same frame.

    class EchoConsumer(JsonConsumer):
        @frame
        def echo_broadcast(event):
            return {"type": "broadcast", "text": event["text"]}

``echo_broadcast`` is then an ordinary handler that sends the function's result as JSON.
On the stack's channel layer (realtime.fanout) and its Uvicorn worker, the worker builds
that frame once per message, JSON and WebSocket framing, and writes the bytes to each of
its sockets that receive it, in order with the socket's other events. Anywhere else
(daphne, WebsocketCommunicator, another layer) the handler runs per socket: the same
frames, only slower. The function sees only the event, never the socket: whatever it
returns must be the same for every socket of a worker.
"""

import functools

from channels.generic.websocket import AsyncJsonWebsocketConsumer


def frame(build):
    """Make `build(event) -> content` a consumer's handler for its event type."""

    @functools.wraps(build)
    async def handler(self, event):
        await self.send_json(build(event))

    handler.build_frame = build
    return handler


@functools.cache
def builders(consumer_class) -> dict:
    """{handler name ("echo_broadcast"): build} of a consumer class's @frame handlers; none
    where the class encodes JSON its own way (its encode_json)."""
    own = consumer_class.encode_json.__func__ is not AsyncJsonWebsocketConsumer.encode_json.__func__
    return {} if own else marked(consumer_class, "build_frame")


def marked(consumer_class, mark: str) -> dict:
    """{handler name: the function its decorator kept as `mark`} of a consumer class."""
    return {
        name: getattr(handler, mark)
        for name in dir(consumer_class)
        if callable(handler := getattr(consumer_class, name, None)) and hasattr(handler, mark)
    }
