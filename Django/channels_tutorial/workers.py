"""The Gunicorn worker class: Uvicorn, from the uvicorn-worker package."""

from uvicorn_worker import UvicornWorker as BaseUvicornWorker

# Uvicorn pings idle WebSockets this often; nginx's proxy_read_timeout must be longer.
WS_PING_INTERVAL = 20.0


class UvicornWorker(BaseUvicornWorker):
    CONFIG_KWARGS = {
        **BaseUvicornWorker.CONFIG_KWARGS,
        # Django's ASGI handler does not speak the lifespan protocol; "off" avoids the
        # "ASGI 'lifespan' protocol appears unsupported" line at every worker boot.
        "lifespan": "off",
        "ws_ping_interval": WS_PING_INTERVAL,
        "ws_ping_timeout": WS_PING_INTERVAL,
    }
