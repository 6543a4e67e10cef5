"""The stack's own channel layer: each message crosses Redis once per worker, not once per
socket.

Channels' layer API (new_channel, send, receive, group_add, group_discard, group_send,
flush) on Redis publish/subscribe, through redis-py:

- Group membership lives in each worker's memory. A worker subscribes once to a group
  its first local socket joins, and unsubscribes when the last one leaves.
- group_send is one PUBLISH. The worker decodes each message once and hands it to its
  local members; where a socket's consumer declared the event's frame (realtime.frames),
  the frame is built once and its bytes written to every such socket, with no task,
  queue or dispatch per socket (see ``Listener``).
- A channel name says which worker owns it ("specific.<worker>!<n>"); ``send`` to it is
  one PUBLISH to that worker's inbox.
- A plain channel name (no "!": a ``runworker`` channel, the Channels tutorial's shell
  check) is a queue in Redis, as on channels-redis's core layer: a message waits there
  until one receiver takes it (or ``expiry`` passes).
- A stale pooled connection (Redis restarted) is retried once on a fresh one.
- A worker that loses its subscriber connection subscribes again (``on_resubscribed``).

What Redis does not keep: a message published while a worker is not subscribed is not
delivered to it. Streams with offsets catch up from their store (realtime/streams.py);
routes without offsets miss those messages (docs/fanout.md).
"""

from __future__ import annotations

import asyncio
import binascii
import collections
import contextlib
import json
import logging
import time
import types
import uuid
from collections.abc import Callable

import msgpack
from channels.exceptions import ChannelFull
from channels.layers import BaseChannelLayer
from channels_redis.utils import create_pool, decode_hosts
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from websockets.frames import Frame, Opcode

from compat.redis import IdleClosingConnectionPool

from . import metrics
from .metrics import SENT_AT

logger = logging.getLogger(__name__)

# The event a socket gets in its queue for a frame built for it while its consumer was
# busy with an earlier event: written when its turn comes, so the order holds.
FRAME_EVENT = "realtime.frame"
# A subscriber connection that answered nothing for this long (no message, no pong) is
# taken as lost: a Redis host that vanished sends no reset.
HEALTH_INTERVAL = 5.0
# Waits after a failed subscriber connection: doubling up to the last.
RECONNECT_DELAYS = (0.1, 0.2, 0.5, 1.0, 2.0)
# A plain channel's queue: one message appended unless `capacity` wait already, kept for
# `expiry` seconds, and its receivers woken by a PUBLISH on the same name; one round trip.
PLAIN_SEND = """
if redis.call('LLEN', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', KEYS[1], '')
return 1
"""
# Seconds a plain channel's receiver waits for a wake-up before it looks at the queue
# again: one lost with a subscriber connection costs that much delay, not the message.
PLAIN_POLL = 1.0


class Listener:
    """A socket's fast path, attached to its channel by the consumer once accepted:
    `write` puts prepared frame bytes on the socket (False if it is closed; None where
    the server cannot: each frame then waits in the socket's queue for its consumer to
    send it), `close` closes it as too slow (4008: it resumes), `builders` maps event
    types to the function that makes their frame (the same for every socket of a
    consumer class), `sent` counts frames written (n sockets, size, stamp). `busy` is
    True while the consumer handles a message: Channels keeps the socket's receive
    waiting meanwhile, and a frame written then could overtake what the handler sends
    (a presence change before the history a connect sends); it waits in the queue."""

    __slots__ = ("write", "close", "builders", "sent", "busy")

    def __init__(
        self,
        write: Callable[[bytes], bool] | None,
        close: Callable[[str], None],
        builders: dict,
        sent: Callable,
    ):
        self.write, self.close, self.builders, self.sent = write, close, builders, sent
        self.busy = False


class Router:
    """A builder that takes a group's message once per worker and delivers to its own
    sockets (realtime.streams.WorkerStream), through deliver_frame and deliver_event."""

    def route(self, message: dict) -> None:
        raise NotImplementedError


ROUTED = object()  # fan_out's mark for a builder that is a Router


class Written:
    """Sockets a frame was written to in one fan-out, by route: counted once at the end
    (n frames, n x size bytes, the lag with weight n)."""

    __slots__ = ("by_counter",)

    def __init__(self) -> None:
        self.by_counter: dict = {}  # (a route's counter, size) -> sockets

    def add(self, listener: Listener | None, size: int) -> None:
        if listener is not None:
            key = (listener.sent, size)
            self.by_counter[key] = self.by_counter.get(key, 0) + 1

    def count(self, sent_at) -> None:
        for (sent, size), sockets in self.by_counter.items():
            sent(sockets, size, sent_at)


class _Mailbox:
    """One local channel: its queue of events, the consumer's wait, its fast path."""

    __slots__ = ("queue", "waiter", "listener", "groups", "used")

    def __init__(self) -> None:
        self.used = time.monotonic()  # last created or received on
        self.queue: collections.deque = collections.deque()
        self.waiter: asyncio.Future | None = None  # set while the consumer waits for an event
        self.listener: Listener | None = None
        self.groups: set[str] = set()

    def put(self, message, capacity: int) -> bool:
        if len(self.queue) >= capacity:
            return False
        self.queue.append(message)
        if self.waiter is not None:
            if not self.waiter.done():
                self.waiter.set_result(None)
            self.waiter = None
        return True


def text_frame(content) -> tuple[bytes, int]:
    """A JSON text frame as a server sends it (unmasked, uncompressed), and its payload's
    length."""
    payload = json.dumps(content).encode()
    return Frame(Opcode.TEXT, payload).serialize(mask=False), len(payload)


def frame_text(frame: tuple[bytes, int]) -> str:
    """The JSON of a text_frame, for a socket that sends it with the server's own send."""
    data, size = frame
    return data[len(data) - size :].decode()


class FanoutChannelLayer(BaseChannelLayer):
    """Channels' layer API; the work is done by one _LoopLayer per event loop (a worker's
    loop, or the short-lived loop of async_to_sync in a management command)."""

    extensions = ["groups", "flush"]

    def __init__(self, hosts=None, prefix="realtime", expiry=60, capacity=1000, **kwargs):
        super().__init__(expiry=expiry, capacity=capacity, **kwargs)
        self.hosts = decode_hosts(hosts)
        self.prefix = prefix
        self._loops: dict[asyncio.AbstractEventLoop, _LoopLayer] = {}

    def local(self) -> _LoopLayer:
        loop = asyncio.get_running_loop()
        found = self._loops.get(loop)
        if found is None:
            found = self._loops[loop] = _LoopLayer(self)
            _flush_before_close(self, loop)
        return found

    async def new_channel(self, prefix: str = "specific") -> str:
        return await self.local().new_channel(prefix)

    async def send(self, channel: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_channel_name(channel)
        await self.local().send(channel, message)

    async def receive(self, channel: str) -> dict:
        self.require_valid_channel_name(channel)
        return await self.local().receive(channel)

    async def group_add(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self.local().group_add(group, channel)

    async def group_discard(self, group: str, channel: str) -> None:
        self.require_valid_group_name(group)
        self.require_valid_channel_name(channel)
        await self.local().group_discard(group, channel)

    async def group_send(self, group: str, message: dict) -> None:
        assert isinstance(message, dict), "message is not a dict"
        self.require_valid_group_name(group)
        await self.local().group_send(group, message)

    async def flush(self) -> None:
        loop = asyncio.get_running_loop()
        if (found := self._loops.pop(loop, None)) is not None:
            await found.close()

    def attach(self, channel: str, listener: Listener) -> None:
        """Give a local channel its fast path (JsonConsumer does, once accepted)."""
        self.local().attach(channel, listener)

    async def close_channel(self, channel: str) -> None:
        """End a local channel: its queue, its fast path, its groups. JsonConsumer calls
        it as its socket ends. Channels has no such call: a channel ends when its
        receive is cancelled, and a consumer that ends with a message just received
        (a prepared frame it had no turn to write) would leave its queue behind."""
        await self.local().close_channel(channel)

    def deliver_frame(self, channel: str, frame: tuple[bytes, int], sent_at=None):
        return self.local().deliver_frame(channel, frame, sent_at)

    def deliver_event(self, channel: str, message: dict) -> None:
        self.local().deliver_event(channel, message)

    def on_resubscribed(self, callback: Callable[[], None]) -> None:
        """Call `callback` whenever this worker's subscriptions come back after a lost
        connection (messages published meanwhile did not reach it)."""
        self.local().resubscribed.append(callback)

    # What presence (realtime/presence.py) uses of a Redis layer.
    def consistent_hash(self, name: str) -> int:
        return binascii.crc32(name.encode()) % len(self.hosts)

    def connection(self, index: int) -> aioredis.Redis:
        return self.local().publisher(index)


def _flush_before_close(layer: FanoutChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
    """A loop that closes (async_to_sync's, after a management command's group_send)
    first closes its connections, which would otherwise outlive it."""
    close = loop.close

    def close_after_flush(self, *args, **kwargs):
        if (found := layer._loops.pop(loop, None)) is not None and not loop.is_running():
            loop.run_until_complete(found.close())
        self.close = close
        return close(*args, **kwargs)

    loop.close = types.MethodType(close_after_flush, loop)


class _LoopLayer:
    def __init__(self, layer: FanoutChannelLayer) -> None:
        self.layer = layer
        self.capacity = layer.capacity
        self.worker = uuid.uuid4().hex[:12]
        self.channels = 0
        self.mailboxes: dict[str, _Mailbox] = {}
        self.groups: dict[str, dict[str, None]] = {}  # group -> its local channels, in order
        self._publishers: dict[int, aioredis.Redis] = {}
        self._subscribers: dict[int, _Subscriber] = {}
        self._inbox_ready = False
        self._next_sweep = time.monotonic()
        self.resubscribed: list[Callable[[], None]] = []  # called after a lost connection

    # Names in Redis. Pub/sub channels are global to a Redis server (not per database):
    # the prefix keeps two stacks on one Redis apart.
    def _group_key(self, group: str) -> str:
        return f"{self.layer.prefix}:group:{group}"

    def _inbox_key(self, worker: str) -> str:
        return f"{self.layer.prefix}:inbox:{worker}"

    def _channel_key(self, channel: str) -> str:
        return f"{self.layer.prefix}:channel:{channel}"

    def publisher(self, index: int) -> aioredis.Redis:
        found = self._publishers.get(index)
        if found is None:
            # One retry, on a new connection: the pooled one may have died with a Redis
            # that restarted, and the message would be lost (channels-redis's pub/sub
            # layer loses it: docs/evidence/faults.md).
            host = {**self.layer.hosts[index], "retry": Retry(NoBackoff(), 1)}
            if "address" in host:
                pool = IdleClosingConnectionPool.from_url(host.pop("address"), **host)
            else:
                pool = create_pool(host)
            found = self._publishers[index] = aioredis.Redis(connection_pool=pool)
        return found

    def _subscriber(self, index: int) -> _Subscriber:
        found = self._subscribers.get(index)
        if found is None:
            # No retries inside redis-py: a lost connection comes back here, which then
            # subscribes again on a new one and says so (on_resubscribed).
            host = {**self.layer.hosts[index], "retry": Retry(NoBackoff(), 0)}
            found = self._subscribers[index] = _Subscriber(create_pool(host), self)
        return found

    async def new_channel(self, prefix: str) -> str:
        if not self._inbox_ready:
            await self._subscriber(self.layer.consistent_hash(self.worker)).subscribe(
                self._inbox_key(self.worker)
            )
            self._inbox_ready = True
        self.channels += 1
        channel = f"{prefix}.{self.worker}!{self.channels}"
        self.mailboxes[channel] = _Mailbox()
        self._sweep()
        return channel

    def _sweep(self) -> None:
        """Channels has no call that ends a channel: one whose receive was cancelled ends
        (receive), and one that nobody has received on for the layer's expiry, in no
        group and with nothing waiting, is dropped here (a probe's, say)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.layer.expiry / 4
        for channel, box in list(self.mailboxes.items()):
            idle = box.waiter is None and not box.groups and not box.queue
            if idle and box.used < now - self.layer.expiry:
                del self.mailboxes[channel]

    async def send(self, channel: str, message: dict) -> None:
        owner, local, _ = channel.partition("!")
        if not local:  # a plain channel: a queue in Redis, for whoever receives first
            key = self._channel_key(channel)
            data = msgpack.packb(message, use_bin_type=True)
            publisher = self.publisher(self.layer.consistent_hash(key))
            expiry = self.layer.expiry
            if not await publisher.eval(PLAIN_SEND, 1, key, data, self.capacity, expiry):
                raise ChannelFull(channel)
            return
        # Through Redis even when the channel is this worker's: the readiness probe
        # (core/checks.py) sends to its own channel to prove the layer works.
        worker = owner.rpartition(".")[2]
        data = msgpack.packb([channel, message], use_bin_type=True)
        await self._publish(self._inbox_key(worker), data, shard_of=worker)

    async def _publish(self, key: str, data: bytes, shard_of: str | None = None) -> None:
        shard = self.layer.consistent_hash(key if shard_of is None else shard_of)
        await self.publisher(shard).publish(key, data)

    async def receive(self, channel: str) -> dict:
        box = self.mailboxes.get(channel)
        if box is None:
            owner, local, _ = channel.partition("!")
            if local and owner.rpartition(".")[2] != self.worker:
                raise RuntimeError(f"{channel} is another worker's channel")
            box = self.mailboxes[channel] = _Mailbox()  # a plain one, or one swept
            if not local:
                key = self._channel_key(channel)
                await self._subscriber(self.layer.consistent_hash(key)).subscribe(key)
        box.used = time.monotonic()
        try:
            if "!" not in channel:
                return await self._pop(channel, box)
            while not box.queue:
                box.waiter = asyncio.get_running_loop().create_future()
                await box.waiter
        except asyncio.CancelledError:
            # Channels cancels a consumer's receive when the consumer ends: its channel
            # ends with it (as channels-redis's pub/sub layer does).
            await self.close_channel(channel)
            raise
        finally:
            box.used = time.monotonic()
        return box.queue.popleft()

    async def _pop(self, channel: str, box: _Mailbox) -> dict:
        """The next message of a plain channel's queue, waiting for one if it is empty."""
        key = self._channel_key(channel)
        publisher = self.publisher(self.layer.consistent_hash(key))
        while True:
            # Waiting before looking: a wake-up that comes after an empty look is kept.
            box.waiter = waiter = asyncio.get_running_loop().create_future()
            data = await publisher.lpop(key)
            if data is not None:
                box.waiter = None
                return msgpack.unpackb(data, raw=False)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(PLAIN_POLL):
                    await waiter

    async def close_channel(self, channel: str) -> None:
        box = self.mailboxes.pop(channel, None)
        if box is None:
            return
        box.listener = None
        for group in list(box.groups):
            with contextlib.suppress(RedisError, OSError):  # Redis may be why it ended
                await self.group_discard(group, channel)
        if "!" not in channel:
            key = self._channel_key(channel)
            await self._subscriber(self.layer.consistent_hash(key)).unsubscribe(key)

    def attach(self, channel: str, listener: Listener) -> None:
        if (box := self.mailboxes.get(channel)) is not None:
            box.listener = listener

    async def group_add(self, group: str, channel: str) -> None:
        box = self.mailboxes.get(channel)
        if box is None:
            raise RuntimeError(f"group_add: {channel} is not a channel of this worker")
        members = self.groups.setdefault(group, {})
        members[channel] = None
        box.groups.add(group)
        # Every member waits for the subscription: a message sent after group_add
        # returns reaches it.
        key = self._group_key(group)
        try:
            await self._subscriber(self.layer.consistent_hash(group)).subscribe(key)
        except BaseException:
            await self.group_discard(group, channel)
            raise

    async def group_discard(self, group: str, channel: str) -> None:
        if (box := self.mailboxes.get(channel)) is not None:
            box.groups.discard(group)
        members = self.groups.get(group)
        if members is None or channel not in members:
            return
        del members[channel]
        if not members:  # the worker's last member: it stops listening to the group
            del self.groups[group]
            key = self._group_key(group)
            await self._subscriber(self.layer.consistent_hash(group)).unsubscribe(key)

    async def group_send(self, group: str, message: dict) -> None:
        data = msgpack.packb(message, use_bin_type=True)
        await self._publish(self._group_key(group), data, shard_of=group)

    # The subscriber's reader calls these, once per message that reaches this worker.
    def received(self, key: bytes, data: bytes) -> None:
        kind, _, name = key.decode().removeprefix(self.layer.prefix + ":").partition(":")
        if kind == "group":
            if (members := self.groups.get(name)) is not None:
                self.fan_out(members, msgpack.unpackb(data, raw=False))
        elif kind == "inbox":
            channel, message = msgpack.unpackb(data, raw=False)
            self._deliver_to(channel, message)
        elif kind == "channel":  # a plain channel's queue has a message: wake its receiver
            box = self.mailboxes.get(name)
            if box is not None and box.waiter is not None and not box.waiter.done():
                box.waiter.set_result(None)

    def _deliver_to(self, channel: str, message: dict) -> None:
        box = self.mailboxes.get(channel)
        if box is not None and not box.put(message, self.capacity):
            self._full(channel)

    def fan_out(self, members, message: dict) -> None:
        """One message to this worker's members of a group: each socket whose consumer
        declared the event's frame gets the bytes built once for all; a Router declared
        for it gets the message once, for all its sockets; every other socket gets the
        event in its queue, a copy of its own (a handler may change it)."""
        kind = message["type"].replace(".", "_")  # its handler's name, as Channels has it
        sent_at = message.get(SENT_AT)
        frames: dict = {}  # builder -> (frame bytes, payload size), or ROUTED
        written = Written()
        for channel in list(members):
            box = self.mailboxes.get(channel)
            if box is None:
                continue
            listener = box.listener
            build = None if listener is None else listener.builders.get(kind)
            if build is None:
                if not box.put(dict(message), self.capacity):
                    self._full(channel)
                continue
            frame = frames.get(build)
            if frame is None:
                routed = isinstance(build, Router)
                frame = frames[build] = ROUTED if routed else text_frame(build(message))
            if frame is not ROUTED:
                written.add(self.deliver_frame(channel, frame, sent_at), frame[1])
        written.count(sent_at)
        for router, frame in frames.items():
            if frame is ROUTED:
                router.route(message)

    def deliver_frame(self, channel: str, frame: tuple[bytes, int], sent_at=None):
        """A prepared frame to a local socket: written now if its consumer is idle (the
        Listener it went through is returned, to be counted), else queued behind the
        events it has waiting (None: counted when written)."""
        box = self.mailboxes.get(channel)
        if box is None or box.listener is None:
            return None
        listener = box.listener
        idle = not listener.busy and box.waiter is not None and not box.queue
        if idle and listener.write is not None:
            return listener if listener.write(frame[0]) else None
        if not box.put({"type": FRAME_EVENT, "frame": frame, SENT_AT: sent_at}, self.capacity):
            # Dropping the frame would leave a hole in what the client got: it is closed
            # instead, reconnects and resumes.
            box.listener.close(f"{self.capacity} events waiting for its consumer")
        return None

    def deliver_event(self, channel: str, message: dict) -> None:
        """An event to a local socket's consumer, in order with its frames."""
        self._deliver_to(channel, message)

    def _full(self, channel: str) -> None:
        logger.warning("%s: queue full (%d events); event dropped", channel, self.capacity)

    def on_resubscribed(self) -> None:
        """A subscriber connection was lost and is back: what was published meanwhile did
        not reach this worker. Whoever can catch up (a WorkerStream) is told."""
        logger.warning("channel layer: subscriptions restored after a lost connection")
        for callback in list(self.resubscribed):
            callback()

    async def close(self) -> None:
        for subscriber in self._subscribers.values():
            await subscriber.close()
        for publisher in self._publishers.values():
            with contextlib.suppress(RedisError, OSError):
                await publisher.aclose(close_connection_pool=True)
        self._subscribers.clear()
        self._publishers.clear()
        self.mailboxes.clear()
        self.groups.clear()


class _Subscriber:
    """One shard's subscriber connection: a reader task hands each message to the layer,
    and subscribes everything again after a lost connection."""

    def __init__(self, pool, layer: _LoopLayer) -> None:
        self.pool, self.layer = pool, layer
        self.names: set[str] = set()  # what should be subscribed
        self.confirmed: set[str] = set()  # what Redis confirmed on this connection
        self.waiting: dict[str, asyncio.Future] = {}
        self.pubsub = None
        self.connected = asyncio.Event()
        self.task: asyncio.Task | None = None
        self.failure: BaseException | None = None  # why the last connection attempt failed
        self.changed: asyncio.Future | None = None  # resolved at each attempt's outcome
        # Bounds a subscribe's wait: the connection's own timeout, as for any command.
        self.timeout = float(pool.connection_kwargs.get("socket_timeout") or 15)

    async def subscribe(self, name: str) -> None:
        self.names.add(name)
        if name in self.confirmed:
            return
        if self.task is None or self.task.done():
            self.task = asyncio.create_task(self._run())
        async with asyncio.timeout(self.timeout):
            await self._wait_connected()
            waiting = self.waiting.get(name)
            if waiting is None:
                waiting = self.waiting[name] = asyncio.get_running_loop().create_future()
                await self.pubsub.subscribe(name)
            await asyncio.shield(waiting)

    async def _wait_connected(self) -> None:
        """Until the reader is connected; while Redis is away, fail at once (the socket
        is told to try again later) rather than wait for it."""
        while not self.connected.is_set():
            if (failure := self.failure) is not None:  # of its kind: a wrong password says so
                raise type(failure)(f"no subscriber connection: {failure}") from failure
            if self.changed is None:
                self.changed = asyncio.get_running_loop().create_future()
            await asyncio.shield(self.changed)

    def _attempted(self, failure: BaseException | None) -> None:
        self.failure = failure
        if self.changed is not None:
            self.changed.set_result(None)
            self.changed = None

    async def unsubscribe(self, name: str) -> None:
        self.names.discard(name)
        self.confirmed.discard(name)
        if self.pubsub is not None and self.connected.is_set():
            with contextlib.suppress(RedisError, OSError):  # gone with the connection anyway
                await self.pubsub.unsubscribe(name)

    async def _run(self) -> None:
        delays, lost = iter(RECONNECT_DELAYS), False
        loop = asyncio.get_running_loop()
        while True:
            self.pubsub = aioredis.Redis(connection_pool=self.pool).pubsub()
            try:
                names = list(self.names)
                for name in names:
                    self.waiting.setdefault(name, loop.create_future())
                await (self.pubsub.subscribe(*names) if names else self.pubsub.ping())
                self.connected.set()
                self._attempted(None)
                resubscribing, lost, delays = lost, False, iter(RECONNECT_DELAYS)
                await self._read(resubscribing)
            except (RedisError, OSError, TimeoutError) as error:
                self.connected.clear()
                self.confirmed.clear()
                for waiting in self.waiting.values():
                    if not waiting.done():
                        waiting.set_exception(error)
                        waiting.exception()  # retrieved: the subscribe() waiting raises it
                self.waiting.clear()
                self._attempted(error)
                if not lost:
                    logger.warning("channel layer: subscriber connection lost (%s)", error)
                    metrics.LAYER_FAILURES.labels("receive").inc()
                    lost = True
                with contextlib.suppress(RedisError, OSError):
                    await self.pubsub.aclose()
                await asyncio.sleep(next(delays, RECONNECT_DELAYS[-1]))

    async def _read(self, resubscribing: bool) -> None:
        """Hands messages to the layer until the connection fails. After a lost one,
        tells the layer once every subscription is back (on_resubscribed)."""
        lost_after = time.monotonic() + 2 * HEALTH_INTERVAL
        while True:
            if resubscribing and not self.waiting:
                resubscribing = False
                self.layer.on_resubscribed()
            message = await self.pubsub.get_message(timeout=HEALTH_INTERVAL)
            now = time.monotonic()
            if message is None:
                if now > lost_after:
                    raise TimeoutError(f"no answer from Redis in {2 * HEALTH_INTERVAL:.0f} s")
                await self.pubsub.ping()
                continue
            lost_after = now + 2 * HEALTH_INTERVAL
            kind = message["type"]
            if kind == "message":
                self.layer.received(message["channel"], message["data"])
            elif kind == "subscribe":
                name = message["channel"].decode()
                if name in self.names:
                    self.confirmed.add(name)
                if (waiting := self.waiting.pop(name, None)) is not None and not waiting.done():
                    waiting.set_result(None)

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                await self.task
        if self.pubsub is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.pubsub.aclose()
        with contextlib.suppress(RedisError, OSError):
            await self.pool.disconnect()
