"""The Gunicorn worker class: Uvicorn, from the uvicorn-worker package."""

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn_worker import UvicornWorker as BaseUvicornWorker

from .config import ServerSettings

# Uvicorn pings idle WebSockets this often; nginx's proxy_read_timeout must be longer.
WS_PING_INTERVAL = 20.0
# Larger frames close the socket with 1009 (message too big) before the app sees them.
WS_MAX_SIZE = 64 * 1024
GOING_AWAY = 1001
# After closing for a protocol error (e.g. 1009), how long the rest of what the client is
# still sending is read and dropped before the connection closes.
LINGER_S = 1.0


class GoingAwayWebSocketProtocol(WebSocketsSansIOProtocol):
    """On shutdown (SIGTERM), close open WebSockets with 1001 "going away", the code for
    a server going down, instead of Uvicorn's 1012; clients reconnect either way."""

    def shutdown(self) -> None:
        if self.handshake_complete and not self.close_sent:
            self.stop_keepalive()
            self.queue.put_nowait({"type": "websocket.disconnect", "code": GOING_AWAY})
            self.conn.send_close(GOING_AWAY)
            self.transport.write(b"".join(self.conn.data_to_send()))
            self.transport.close()
            return
        super().shutdown()

    def handle_parser_exception(self) -> None:
        # Uvicorn closes the connection right after its close frame (1009 for a frame
        # over WS_MAX_SIZE). The client is still sending the rest of that frame, so the
        # kernel answers with RST, which can destroy the close frame before it is read:
        # the client sees 1006. Instead, keep reading and dropping for LINGER_S, then
        # close. Written against uvicorn 0.54 (websockets_sansio_impl).
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


class UvicornWorker(BaseUvicornWorker):
    CONFIG_KWARGS = {
        **BaseUvicornWorker.CONFIG_KWARGS,
        # Django's ASGI handler does not speak the lifespan protocol; "off" avoids the
        # "ASGI 'lifespan' protocol appears unsupported" line at every worker boot.
        "lifespan": "off",
        "ws": "channels_tutorial.workers:GoingAwayWebSocketProtocol",
        "ws_max_size": WS_MAX_SIZE,
        "ws_ping_interval": WS_PING_INTERVAL,
        "ws_ping_timeout": WS_PING_INTERVAL,
    }

    def __init__(self, *args, **kwargs):
        # Read from the environment when Gunicorn starts the worker, not at import.
        self.CONFIG_KWARGS = {
            **self.CONFIG_KWARGS,
            "ws_per_message_deflate": ServerSettings().ws_per_message_deflate,
        }
        super().__init__(*args, **kwargs)
