"""The Gunicorn worker class: Uvicorn, from the uvicorn-worker package."""

from uvicorn_worker import UvicornWorker as BaseUvicornWorker

from .config import ServerSettings

# Uvicorn pings idle WebSockets this often; nginx's proxy_read_timeout must be longer.
WS_PING_INTERVAL = 20.0
# Larger frames close the socket with 1009 (message too big) before the app sees them.
WS_MAX_SIZE = 64 * 1024


class UvicornWorker(BaseUvicornWorker):
    CONFIG_KWARGS = {
        **BaseUvicornWorker.CONFIG_KWARGS,
        # Django's ASGI handler does not speak the lifespan protocol; "off" avoids the
        # "ASGI 'lifespan' protocol appears unsupported" line at every worker boot.
        "lifespan": "off",
        # Uvicorn's own protocol, but the 1009 close frame reaches the client.
        "ws": "realtime.compat:LingeringWebSocketProtocol",
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
