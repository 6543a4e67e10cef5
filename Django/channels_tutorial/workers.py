"""The Gunicorn worker class: Uvicorn, from the uvicorn-worker package."""

import os
import signal

from uvicorn_worker import UvicornWorker as BaseUvicornWorker

from compat.uvicorn import WebSocketProtocol

from .config import ServerSettings

# Uvicorn pings every WebSocket this often; nginx's proxy_read_timeout must be longer.
# The pong must come back within WS_SEND_TIMEOUT: it waits behind everything sent before
# the ping, so a client that stopped reading is closed (4008) at most this plus that
# many seconds after it stopped, before it misses more than a resume replays.
WS_PING_INTERVAL = 10.0
# Larger frames close the socket with 1009 (message too big) before the app sees them.
WS_MAX_SIZE = 64 * 1024


class UvicornWorker(BaseUvicornWorker):
    CONFIG_KWARGS = {
        **BaseUvicornWorker.CONFIG_KWARGS,
        # Django's ASGI handler does not speak the lifespan protocol; "off" avoids the
        # "ASGI 'lifespan' protocol appears unsupported" line at every worker boot.
        "lifespan": "off",
        "ws_max_size": WS_MAX_SIZE,
        "ws_ping_interval": WS_PING_INTERVAL,
    }

    def __init__(self, *args, **kwargs):
        # Read from the environment when Gunicorn starts the worker, not at import.
        server = ServerSettings()
        # Uvicorn's own protocol, but the 1009 close frame reaches the client, and a
        # client that stops reading is closed with 4008 (compat/uvicorn.py).
        protocol = type(
            "WebSocketProtocol", (WebSocketProtocol,), {"send_timeout": server.ws_send_timeout}
        )
        self.CONFIG_KWARGS = {
            **self.CONFIG_KWARGS,
            "ws": protocol,
            "ws_ping_timeout": server.ws_send_timeout,
            "ws_per_message_deflate": server.ws_per_message_deflate,
        }
        super().__init__(*args, **kwargs)
        if self.cfg.reload:
            # Uvicorn calls callback_notify this often (default: Gunicorn's 30 s timeout).
            self.config.timeout_notify = 1

    async def callback_notify(self):
        # When a file changes, Gunicorn's reloader (DEBUG only) marks the worker not alive
        # and waits for it to stop, which Uvicorn's server never checks, so the old code
        # went on serving (benoitc/gunicorn#2339, Kludex/uvicorn-worker#7). Stop the way
        # the master stops a worker, with SIGTERM: sockets close with 1012 and the master
        # starts a worker with the new code. Remove once uvicorn-worker stops by itself
        # (proving_ground/tests/test_readme_consumer.py fails while saves go unserved).
        if not self.alive:
            os.kill(os.getpid(), signal.SIGTERM)
        await super().callback_notify()
