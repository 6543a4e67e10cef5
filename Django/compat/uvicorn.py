"""Uvicorn: its WebSocket protocol, with the close frames and slow clients mended and
prepared frames written straight to the transport.

Upstream: no issue filed yet for either defect (the close frame lost to a reset after a
protocol error; a send to a client that stops reading waits without a bound). Remove each
part once Uvicorn does it itself: tests/compat/test_uvicorn.py shows the defect still in
the installed version. Prepared frames stay an extension of this stack's.
"""

import asyncio
import logging
import time

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from metrics.server import SLOW_CLIENT_CLOSES

logger = logging.getLogger(__name__)

# The version this module was written against and tested with (tests/compat).
UPSTREAM = ("uvicorn", "0.54.0")

# The ASGI scope extension through which an app writes prepared frames (realtime.fanout):
# {"write": callable(frame bytes) -> bool, "close": callable(why) closing the socket as
# too slow to read, CLOSE_TOO_SLOW}.
FRAMES_EXTENSION = "realtime.frames"

# After closing for a protocol error (e.g. 1009), how long the rest of what the client is
# still sending is read and dropped before the connection closes.
LINGER_S = 1.0


# Close code for a client that stopped reading: the answer to a ping, which waits behind
# everything sent before it, did not come within ws_ping_timeout, or a send waited
# send_timeout at a full buffer. It reconnects and resumes what it missed.
CLOSE_TOO_SLOW = 4008


class WebSocketProtocol(WebSocketsSansIOProtocol):
    """Uvicorn's WebSocket protocol with three changes.

    Lingering: Uvicorn closes the connection right after its close frame for a protocol
    error (1009 for a frame over ws_max_size). The client is still sending the rest of
    that frame, so the kernel answers with RST, which can destroy the close frame before
    it is read: the client saw 1006 about half the time. This one keeps reading and
    dropping for LINGER_S, then closes.

    Slow clients: a pong comes back only once the client has read everything sent before
    its ping, through every buffer on the way (nginx's included), so a missing pong is
    the measure of a client that fell behind. Uvicorn then closes with 1011 and
    transport.close(), which waits for ever to flush to a client that does not read; and
    its send() waits without a bound while the connection's write buffer is full (the
    private `writable` event), holding the consumer there while the channel layer queues,
    then drops, every message for it. Here both close with CLOSE_TOO_SLOW: the close frame
    goes after what is buffered (a client that reads again sees it last), the connection
    is aborted close_timeout later if the client does not answer, and the consumer gets
    its websocket.disconnect. Sends after that are dropped, as for any socket the client
    closed meanwhile.

    Prepared frames: write_frame() puts bytes a worker built once for many sockets
    (realtime.fanout) on the transport, bypassing the sans-I/O connection's framing;
    offered only on connections without extensions, and bounded like a send.
    """

    send_timeout: float = 10.0
    # Bytes a socket may have waiting to go out before it counts as too slow: prepared
    # frames (write_frame) do not wait for the buffer to drain, so this bounds them.
    send_buffer_limit: int = 1 << 20
    paused_at: float | None = None

    def handle_connect(self, event) -> None:
        super().handle_connect(event)
        # Prepared frames are plain text frames: offered only where no extension
        # (permessage-deflate) changes how frames are written.
        if getattr(self, "scope", None) is not None and not self.conn.extensions:
            self.scope["extensions"][FRAMES_EXTENSION] = {
                "write": self.write_frame,
                "close": self.close_too_slow,
            }

    def write_frame(self, frame: bytes) -> bool:
        """Put a prepared frame (realtime.fanout) on the wire, or False if the socket is
        closing. A client that leaves more than send_buffer_limit bytes unread, or keeps
        the buffer full for send_timeout, is closed with CLOSE_TOO_SLOW."""
        if self.close_sent or self.disconnected or getattr(self, "too_slow", False):
            return False
        if self.paused_at is not None:
            if self.transport.get_write_buffer_size() > self.send_buffer_limit:
                self.close_too_slow(f"over {self.send_buffer_limit} bytes unread")
                return False
            if time.monotonic() - self.paused_at > self.send_timeout:
                self.close_too_slow(f"the buffer full for {self.send_timeout:.0f} s")
                return False
        self.transport.write(frame)
        return True

    def pause_writing(self) -> None:
        super().pause_writing()
        self.paused_at = time.monotonic()

    def resume_writing(self) -> None:
        super().resume_writing()
        self.paused_at = None

    def handle_parser_exception(self) -> None:
        assert self.conn.close_sent is not None
        code, reason = self.conn.close_sent.code, self.conn.close_sent.reason
        self.queue.put_nowait({"type": "websocket.disconnect", "code": code, "reason": reason})
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.lingering = True
        self.loop.call_later(LINGER_S, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if getattr(self, "lingering", False):
            return  # what is left of the frame that failed
        super().data_received(data)

    async def send(self, message) -> None:
        if getattr(self, "too_slow", False):
            return
        if message["type"] == "websocket.send" and not self.writable.is_set():
            try:
                async with asyncio.timeout(self.send_timeout):
                    await self.writable.wait()
            except TimeoutError:
                self.close_too_slow(f"a send waited {self.send_timeout:.0f} s")
                return
        await super().send(message)

    def keepalive_timeout(self) -> None:
        self.pong_timer = None
        self.pending_ping_payload = None
        self.close_too_slow(f"no pong within {self.ping_timeout:.0f} s")

    def close_too_slow(self, why: str = "") -> None:
        self.too_slow = True
        if self.close_sent or self.transport.is_closing():
            return
        SLOW_CLIENT_CLOSES.inc()
        reason = "too slow to read"
        self.queue.put_nowait(
            {"type": "websocket.disconnect", "code": CLOSE_TOO_SLOW, "reason": reason}
        )
        self.conn.send_close(CLOSE_TOO_SLOW, reason)
        self.transport.write(b"".join(self.conn.data_to_send()))
        self.close_sent = True
        self.close_timer = self.loop.call_later(self.close_timeout, self.transport.abort)
        peer = "{}:{}".format(*self.client) if self.client else "?"
        logger.warning("%s: WebSocket too slow to read (%s); closing with %d", peer, why, 4008)
