import asyncio
import contextlib
import json
import logging
import time

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from redis.exceptions import RedisError

from .membership import monitor_for
from .ratelimit import TokenBucket

logger = logging.getLogger(__name__)

# Close code when the channel layer is lost (e.g. Redis restarting): the client's socket
# is closed cleanly and it reconnects, joining its groups again.
CLOSE_LAYER_LOST = 1011
# Close code when Redis no longer lists this socket in a group it joined (Redis restarted
# and lost its data): the client reconnects, rejoins and gets the history it missed.
CLOSE_MEMBERSHIP_LOST = 1012
# After Redis restarts, every pooled connection of a worker is dead; the first consumer
# to notice drops them all (at most once per this many seconds), so the other sockets
# fail fast and reconnect on fresh connections instead of failing one by one later.
# The reset is bounded: closing pools waits for connections blocked in BZPOPMIN, and a
# consumer must never hang there (Gunicorn's graceful shutdown would wait for it).
POOL_RESET_INTERVAL = 2.0
POOL_RESET_TIMEOUT = 2.0
_last_pool_reset = -POOL_RESET_INTERVAL


async def reset_layer_pools(layer) -> None:
    global _last_pool_reset
    now = time.monotonic()
    if now - _last_pool_reset < POOL_RESET_INTERVAL or not hasattr(layer, "close_pools"):
        return
    _last_pool_reset = now
    with contextlib.suppress(RedisError, OSError, TimeoutError):
        async with asyncio.timeout(POOL_RESET_TIMEOUT):
            await layer.close_pools()


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """A JSON consumer that answers bad frames with an error frame instead of closing.

    Handlers are methods named after the frame's "type" ("echo" -> ``on_echo``). Each
    connection may send settings.WS_RATE_LIMIT frames a second (bursts of WS_RATE_BURST);
    frames beyond that are dropped with an error frame, so one flooding socket cannot starve
    the worker's other sockets. (Frames over 64 KiB never get here: Uvicorn closes the
    socket with 1009, see channels_tutorial/workers.py.)
    """

    membership_check_interval = 2.0

    async def __call__(self, scope, receive, send):
        self.joined: list[str] = []
        self.monitor = None
        try:
            await super().__call__(scope, receive, send)
        # Only Redis's own errors (redis-py wraps socket errors in them): Uvicorn's
        # ClientDisconnected is an OSError too, and one vanished client must not reset
        # the pools every other socket of this worker is using.
        except RedisError as error:
            logger.warning("channel layer lost (%s); closing the socket for a reconnect", error)
            with contextlib.suppress(OSError):  # the client may be gone already
                await send({"type": "websocket.close", "code": CLOSE_LAYER_LOST})
            await reset_layer_pools(self.channel_layer)
        finally:
            if self.monitor is not None:
                self.monitor.unwatch(self.channel_name)

    async def dispatch(self, message):
        # Channels (since 4.2) closes stale database connections before every handler,
        # a hop to the sync thread and back. For channel-layer events (group messages)
        # that hop is one per delivered message, and broadcasts spend most of their time
        # in it. Event handlers here only forward to the socket; database work goes
        # through database_sync_to_async (chat.services), which closes stale connections
        # in its own thread. WS_EVENT_DB_CLEANUP=1 restores Channels' default, for event
        # handlers that use the async ORM directly. Client frames (websocket.*) keep it.
        if message["type"].startswith("websocket.") or settings.WS_EVENT_DB_CLEANUP:
            await super().dispatch(message)
            return
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def websocket_connect(self, message):
        self.bucket = TokenBucket(settings.WS_RATE_LIMIT, settings.WS_RATE_BURST)
        await super().websocket_connect(message)
        if self.channel_layer is not None and self.watched_groups():
            self.monitor = monitor_for(self.channel_layer, self.membership_check_interval)
            if self.monitor is not None:
                self.monitor.watch(self.channel_name, self.watched_groups(), self.membership_lost)

    async def websocket_disconnect(self, message):
        # Unwatched first: leaving the groups below is not Redis losing them.
        if self.monitor is not None:
            self.monitor.unwatch(self.channel_name)
        for group in self.joined:
            with contextlib.suppress(RedisError):  # Redis may be the reason we left
                await self.channel_layer.group_discard(group, self.channel_name)
        await super().websocket_disconnect(message)

    async def join(self, group: str) -> None:
        """Join a group; left again on disconnect, and watched while connected."""
        await self.channel_layer.group_add(group, self.channel_name)
        self.joined.append(group)

    def watched_groups(self) -> list[str]:
        return [*self.groups, *self.joined]

    async def membership_lost(self) -> None:
        logger.warning("no longer in groups %s (Redis lost them?); closing", self.watched_groups())
        with contextlib.suppress(OSError):  # the client may be gone already (ClientDisconnected)
            await self.close(code=CLOSE_MEMBERSHIP_LOST)

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
