"""The channel layer as a consumer sees it: its own failures told apart from a handler's."""

from __future__ import annotations

import asyncio
import functools
import inspect
import time

from redis.exceptions import RedisError

from . import metrics


class ChannelLayerLost(Exception):
    """The channel layer itself failed (Redis unreachable, restarted, timed out)."""

    def __init__(self, layer):
        super().__init__(f"channel layer {type(layer).__name__} failed")
        self.layer = layer


class GuardedLayer:
    """Wraps a channel layer: every coroutine method (send, receive, group_add, ...) raises
    ChannelLayerLost when the layer fails, so a consumer can tell that from a Redis error
    of its own handler's code (a cache, say). Everything else is the layer's own. Other
    calls on the layer's Redis (presence's) do the same inside ``with failing(name)``.

    One per socket, holding nothing but the layer (about 50 bytes): the methods a socket
    calls again and again are written out below and look the layer's method up at each
    call, and any other is wrapped when asked for, so nothing is kept per socket (a
    wrapper per method, kept, was 2.7 KiB a socket in `make bench-memory`)."""

    __slots__ = ("layer",)

    # redis-py wraps socket errors in RedisError; a bare OSError can still escape.
    errors = (RedisError, OSError)

    def __init__(self, layer):
        self.layer = layer

    def __getattr__(self, name):
        value = getattr(self.layer, name)
        if not inspect.iscoroutinefunction(value):
            return value
        failing = self.failing(name)

        @functools.wraps(value)
        async def guarded(*args, **kwargs):
            with failing:
                return await value(*args, **kwargs)

        return guarded

    def failing(self, operation: str) -> _Failing:
        """A context manager: the layer's failures inside raise ChannelLayerLost, counted
        as `operation`'s in realtime_channel_layer_failures_total."""
        return _failing(self.layer, operation)

    async def receive(self, channel: str) -> dict:
        with _failing(self.layer, "receive"):
            return await self.layer.receive(channel)

    async def send(self, channel: str, message: dict) -> None:
        with _failing(self.layer, "send"):
            await self.layer.send(channel, message)

    async def group_add(self, group: str, channel: str) -> None:
        with _failing(self.layer, "group_add"):
            await self.layer.group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        with _failing(self.layer, "group_discard"):
            await self.layer.group_discard(group, channel)

    async def group_send(self, group: str, message: dict) -> None:
        """The layer's group_send, timed, and the event stamped for the receivers' lag."""
        started = time.perf_counter()
        with _failing(self.layer, "group_send"):
            await self.layer.group_send(group, metrics.stamp(message))
        if metrics.enabled():
            metrics.group_send_seconds().observe(time.perf_counter() - started)


@functools.lru_cache(maxsize=128)  # a few layers a process, a dozen operations each
def _failing(layer, operation: str) -> _Failing:
    return _Failing(layer, operation)


class _Failing:
    """GuardedLayer.failing(operation); holds no state between uses, so one per layer
    and operation serves every socket's calls, nested or concurrent."""

    __slots__ = ("layer", "operation")

    def __init__(self, layer, operation: str):
        self.layer, self.operation = layer, operation

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, error, traceback) -> bool:
        if kind is not None and issubclass(kind, GuardedLayer.errors):
            metrics.LAYER_FAILURES.labels(self.operation).inc()
            raise ChannelLayerLost(self.layer) from error
        return False


class PerWorker:
    """One `make(layer, *args)` per channel layer and event loop: a worker's helper that
    its sockets share (presence, the streams). A layer or loop made anew (as
    tests do) gets a new one, even where Python reuses the old one's id."""

    def __init__(self, make):
        self.make = make
        self.made: dict[int, tuple] = {}  # id(layer) -> (loop, layer, helper)

    def get(self, layer, *args):
        loop = asyncio.get_running_loop()
        found = self.made.get(id(layer))
        if found is None or found[0] is not loop or found[1] is not layer:
            found = self.made[id(layer)] = (loop, layer, self.make(layer, *args))
        return found[2]
