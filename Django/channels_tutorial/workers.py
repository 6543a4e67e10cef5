"""The Gunicorn worker class: Uvicorn, from the uvicorn-worker package."""

from uvicorn.protocols.websockets.websockets_impl import WebSocketProtocol
from uvicorn_worker import UvicornWorker as BaseUvicornWorker

# Uvicorn pings idle WebSockets this often; nginx's proxy_read_timeout must be longer.
WS_PING_INTERVAL = 20.0
# Larger frames close the socket with 1009 (message too big) before the app sees them.
WS_MAX_SIZE = 64 * 1024
GOING_AWAY = 1001


class GoingAwayWebSocketProtocol(WebSocketProtocol):
    """On shutdown (SIGTERM), close open WebSockets with 1001 "going away", the code for
    a server going down, instead of Uvicorn's 1012; clients reconnect either way."""

    def shutdown(self) -> None:
        self.ws_server.closing = True
        if self.handshake_completed_event.is_set():
            self.fail_connection(GOING_AWAY)
        else:
            self.send_500_response()
        self.transport.close()


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
