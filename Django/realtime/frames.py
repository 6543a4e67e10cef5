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

import asyncio
import functools
import logging

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from compat.uvicorn import CLOSE_TOO_SLOW, FRAMES_EXTENSION

from .fanout import FRAME_EVENT, Listener, frame_text
from .metrics import SENT_AT

logger = logging.getLogger(__name__)


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


class PreparedFrames:
    """A JsonConsumer's part that takes its @frame events built once per worker, on the
    stack's own layer (realtime.fanout): written straight to the socket where the server
    can (the stack's Uvicorn worker, compat.uvicorn), else sent in their turn. A frame
    that comes while the consumer handles an earlier message waits in the socket's
    queue (the listener is busy), so the order holds."""

    _listener = None  # the socket's fast path, where the layer and server have one
    _closing = None  # a close the layer asked for (_too_slow)

    async def dispatch(self, message):
        if message["type"] == FRAME_EVENT:  # a prepared frame's turn
            prepared, size = message["frame"]
            if self._listener.write is None:  # a server without the fast write
                text = frame_text(message["frame"])
                stamp = message.get(SENT_AT)
                await self.base_send({"type": "websocket.send", "text": text, SENT_AT: stamp})
            elif self._listener.write(prepared):
                self.route_metrics.sent_frames(1, size, message.get(SENT_AT))
            return
        if self._listener is not None:  # frames wait in the queue until this handler ends
            self._listener.busy = True
        try:
            await super().dispatch(message)
        finally:
            if self._listener is not None:  # made by accept() in this very handler, too
                self._listener.busy = False

    async def accept(self, subprotocol=None, headers=None):
        await super().accept(subprotocol, headers)
        if self.accepted:  # not a refusal's accept
            self._attach_frames()

    def _attach_frames(self) -> None:
        layer = getattr(self.channel_layer, "layer", None)
        found = builders(type(self))
        if not hasattr(layer, "attach") or not found:
            return
        server = self.scope.get("extensions", {}).get(FRAMES_EXTENSION)
        write, close = (server["write"], server["close"]) if server else (None, self._too_slow)
        self._listener = Listener(write, close, found, self.route_metrics.sent_frames)
        self._listener.busy = True  # made inside websocket.connect's handler (dispatch)
        layer.attach(self.channel_name, self._listener)

    def _too_slow(self, why: str) -> None:
        """The layer's close for a socket whose queue is full, on a server without the
        fast write: 4008, as the stack's server closes one (it resumes)."""
        logger.warning("%s: %s; closing with %d", self.channel_name, why, CLOSE_TOO_SLOW)
        if self._closing is None:
            self._closing = asyncio.ensure_future(self.close(code=CLOSE_TOO_SLOW))
