"""Channels: a consumer's dispatch without the database clean-up before each event.

Channels' AsyncConsumer.dispatch closes stale database connections (a hop to the sync
thread) before every handler it calls. A handler that never touches the database, such
as one forwarding a group event to its socket, pays that hop per event and per socket.
dispatch_without_db_cleanup is Channels' dispatch without it (tests/compat/test_channels.py
holds it to the original), and SkippableDbCleanup the consumer switch that uses it
(``event_db_cleanup = False``; realtime.consumers.JsonConsumer takes it).

Upstream: no issue filed yet for a per-consumer switch; remove this module once Channels
has one, and let realtime.consumers use it.
"""

from channels.consumer import get_handler_name

# The version this module was written against and tested with (tests/compat).
UPSTREAM = ("channels", "4.3.2")


class SkippableDbCleanup:
    """A consumer mixin: ``event_db_cleanup = False`` skips the clean-up before each
    channel-layer event (not before websocket.* messages, whose handlers may use the
    database)."""

    event_db_cleanup = True

    async def dispatch(self, message):
        if self.event_db_cleanup or message["type"].startswith("websocket."):
            await super().dispatch(message)
        else:
            await dispatch_without_db_cleanup(self, message)


async def dispatch_without_db_cleanup(consumer, message) -> None:
    """Call the consumer's handler for `message`, as Channels' dispatch does."""
    handler = getattr(consumer, get_handler_name(message), None)
    if handler is None:
        raise ValueError(f"No handler for message type {message['type']}")
    await handler(message)
