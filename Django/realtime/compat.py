"""Workarounds that reach into libraries' private internals, each kept in this one module.

Each was written against the version in UPSTREAM, fixes a defect that a test shows on the
unpatched library, and goes once upstream fixes it:

- RedisChannelLayer (channels-redis): memory and Redis connections that grew with every
  closed socket, and a message lost when a socket closed at the wrong moment. Minimal
  reproductions: docs/channels-redis.md. ../proving_ground/tests/test_channel_layers.py runs the
  unpatched class against a real Redis and fails once upstream fixes a defect.
- group_members (channels-redis): which channels Redis still lists in a group, read from
  channels-redis's own keys in one pipelined round trip (realtime.membership).
- WebSocketProtocol (uvicorn): the 1009 close frame for an oversized frame reaches the
  client; a client too slow to read (no pong in time, or a send held up) is closed with
  CLOSE_TOO_SLOW, and aborted if it never reads, instead of holding its consumer up and
  its buffers for ever; prepared frames (realtime.fanout) are written straight to the
  transport, offered to the app as the scope extension "realtime.frames".
- TallyHistogram (realtime/metrics.py, prometheus-client): adds a second's observations
  to a histogram's bucket and sum values (`_buckets`, `_sum`, `_upper_bounds`) at once,
  where observe() would write each one to the shared file.
- fold_dead_worker (prometheus-client): in multiprocess mode every worker that ever ran
  leaves its counter and histogram files, so the folder and the time /metrics takes grow
  with each worker restart (prometheus/client_python#275, open). Gunicorn's child_exit adds
  a dead worker's figures into one archive file per type, through prometheus-client's
  MmapedDict (its file format), and deletes the worker's files.

tests/realtime/test_compat.py fails when an installed version differs from UPSTREAM:
then re-run the tests named above, delete what upstream fixed, and update UPSTREAM.
"""

import asyncio
import collections
import logging
import os
import time

from channels_redis.core import RedisChannelLayer as BaseRedisChannelLayer
from prometheus_client.mmap_dict import MmapedDict
from redis.asyncio import ConnectionPool
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from . import metrics
from .frames import FRAMES_EXTENSION

logger = logging.getLogger(__name__)

# The versions these workarounds were written against and tested with.
UPSTREAM = {"channels-redis": "4.3.0", "uvicorn": "0.54.0", "prometheus-client": "0.26.0"}


class IdleClosingConnectionPool(ConnectionPool):
    """redis-py's pool, closing its idle connections once a minute.

    redis-py keeps every connection it ever opened. After a burst (hundreds of sockets
    joining at once) a worker would hold that many idle Redis connections, and their file
    descriptors, for ever. Its own disconnect(inuse_connections=False) cannot be used for
    this: it does not take the pool's lock, so a task can take an idle connection while
    it is being closed, and its command fails ("Connection closed by server"; `make soak`
    saw it once a minute or so). Idle connections are taken out of the pool under its
    lock (private: _lock, _available_connections), then closed; new ones open on demand.
    A task of the pool's closes them once a minute for as long as any are idle, so they
    close even when the worker's last socket has gone and nothing uses the pool again
    (`make soak PATTERN=sessions` saw them stay until the next socket came)."""

    idle_close_interval = 60.0
    _idle_closer: asyncio.Task | None = None

    async def release(self, connection) -> None:
        await super().release(connection)
        if self._idle_closer is None or self._idle_closer.done():
            self._idle_closer = asyncio.create_task(self._close_idle_while_any())

    async def _close_idle_while_any(self) -> None:
        while self._available_connections:
            await asyncio.sleep(self.idle_close_interval)
            await self.close_idle()

    async def disconnect(self, inuse_connections: bool = True) -> None:
        if self._idle_closer is not None:
            self._idle_closer.cancel()
        await super().disconnect(inuse_connections)

    async def close_idle(self) -> None:
        async with self._lock:
            idle, self._available_connections = self._available_connections, []
        await asyncio.gather(*(c.disconnect() for c in idle), return_exceptions=True)


class ReceiveBuffers(collections.defaultdict):
    """channels-redis's per-channel receive queues, minus queues nobody will read.

    The worker's receiver hands each message it pops from Redis to the queue of every
    local channel it names, and a defaultdict makes a queue for a channel that has none.
    A group message can still arrive for a socket that has just closed; its new queue,
    message included, would then stay for ever. So:

    - a channel whose receive was cancelled (its socket closed) is closed: late messages
      for it go to a throwaway queue, for as long as one can arrive (the layer's expiry;
      channel names are never reused);
    - a queue whose channel nobody has received on for longer than the expiry is closed
      too. That catches sockets whose last receive was cancelled before it started (so
      no code of receive() ran), and drops only messages the layer would expire anyway;
      a channel that receives again is reopened.
    """

    def __init__(self, default_factory, expiry: float) -> None:
        super().__init__(default_factory)
        self.expiry = expiry
        self.closed: collections.OrderedDict[str, float] = collections.OrderedDict()
        self.receiving: collections.Counter[str] = collections.Counter()
        self.unread_since: dict[str, float] = {}  # queues with nobody receiving
        self.next_sweep = time.monotonic() + expiry

    def enter(self, channel: str) -> None:
        self.receiving[channel] += 1
        self.unread_since.pop(channel, None)
        self.closed.pop(channel, None)

    def leave(self, channel: str) -> None:
        self.receiving[channel] -= 1
        if self.receiving[channel] <= 0:
            del self.receiving[channel]
            if channel in self:
                self.unread_since[channel] = time.monotonic()
        self.sweep()

    def close(self, channel: str) -> None:
        self.pop(channel, None)
        self.unread_since.pop(channel, None)
        now = time.monotonic()
        self.closed[channel] = now
        while self.closed and next(iter(self.closed.values())) < now - self.expiry:
            self.closed.popitem(last=False)

    def sweep(self) -> None:
        now = time.monotonic()
        if now < self.next_sweep:
            return
        self.next_sweep = now + self.expiry / 4
        for channel, since in list(self.unread_since.items()):
            if channel not in self or channel in self.receiving:
                del self.unread_since[channel]
            elif since < now - self.expiry:
                self.close(channel)

    def __missing__(self, channel):
        if channel in self.closed:
            return self.default_factory()
        if channel not in self.receiving:
            self.unread_since.setdefault(channel, time.monotonic())
        return super().__missing__(channel)


class RedisChannelLayer(BaseRedisChannelLayer):
    """Loses no message when a receiving socket closes, keeps no queue for a channel
    whose receiver has gone, and closes idle Redis connections."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.receive_buffer = ReceiveBuffers(self.receive_buffer.default_factory, self.expiry)
        self._unfinished_pops: dict[str, asyncio.Future] = {}
        self._idle_pops: set[asyncio.Future] = set()

    def create_pool(self, index):
        host = dict(self.hosts[index])
        if "address" not in host:  # Sentinel and keyword hosts: channels-redis's own pool
            return super().create_pool(index)
        return IdleClosingConnectionPool.from_url(host.pop("address"), **host)

    async def receive_single(self, channel):
        if not channel.endswith("!"):  # a plain channel: nobody else waits on this pop
            return await super().receive_single(channel)
        # The receive-lock holder pops for every socket of this worker: BZPOPMIN, then a
        # copy into the backup queue. Cancelled in between (its own socket closed just as
        # a message for another socket arrived), the popped message was lost and that
        # socket never saw it. So the pop runs in a task of its own, which a cancelled
        # holder leaves running, and the next holder waits for that same pop.
        pop = self._unfinished_pops.pop(channel, None)
        if pop is None or (pop.done() and (pop.cancelled() or pop.exception())):
            pop = asyncio.ensure_future(super().receive_single(channel))
            pop.add_done_callback(_retrieve_exception)  # the next holder starts afresh
        self._idle_pops.discard(pop)
        try:
            return await asyncio.shield(pop)
        except asyncio.CancelledError:
            self._unfinished_pops[channel] = pop
            raise

    async def _brpop_with_clean(self, index, channel, timeout):
        if asyncio.current_task() in self._idle_pops:
            # No socket of this worker is receiving: stop rather than block again. What
            # this pop already took stays in it for the next receiver.
            self._idle_pops.discard(asyncio.current_task())
            raise asyncio.CancelledError
        return await super()._brpop_with_clean(index, channel, timeout)

    async def receive(self, channel):
        # Channels cancels a consumer's receive when its socket closes. receive() drops
        # that channel's queue itself only when the cancellation arrives while it waits;
        # cancelled while holding the receive lock, the queue stayed for ever (about
        # 3 KiB per closed socket, `make soak`). enter/leave tell the buffers who is
        # receiving, so that queues nobody reads can go too.
        self.receive_buffer.enter(channel)
        try:
            return await super().receive(channel)
        except asyncio.CancelledError:
            self.receive_buffer.close(channel)
            if self.receive_count == 0:
                self._idle_pops.update(self._unfinished_pops.values())
            raise
        finally:
            self.receive_buffer.leave(channel)


def _retrieve_exception(task: asyncio.Future) -> None:
    if not task.cancelled():
        task.exception()


async def group_members(layer: BaseRedisChannelLayer, pairs: list[tuple[str, str]]) -> set:
    """The (group, channel) pairs of `pairs` that Redis still lists, one pipelined round
    trip per shard. channels-redis has no public call for this: it reads the layer's
    group keys (_group_key) on the shard that holds each group (consistent_hash)."""
    by_shard: dict[int, list[tuple[str, str]]] = {}
    for group, channel in pairs:
        by_shard.setdefault(layer.consistent_hash(group), []).append((group, channel))
    present = set()
    for shard, shard_pairs in by_shard.items():
        async with layer.connection(shard).pipeline(transaction=False) as pipe:
            for group, channel in shard_pairs:
                pipe.zscore(layer._group_key(group), channel)
            scores = await pipe.execute()
        listed = zip(shard_pairs, scores, strict=True)
        present |= {pair for pair, score in listed if score is not None}
    return present


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
        metrics.SLOW_CLIENT_CLOSES.inc()
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


# Files of these types are summed over processes, so a dead worker's values can be added
# to an archive file that prometheus-client reads like any worker's ("<type>_<name>.db").
FOLDED_TYPES = ("counter", "histogram")
ARCHIVE = "archive"


def fold_dead_worker(directory: str, pid: int) -> None:
    """Add a dead worker's counters and histograms to the archive files and delete its
    own. Run by Gunicorn's master (child_exit), one worker at a time."""
    for kind in FOLDED_TYPES:
        dead = os.path.join(directory, f"{kind}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = MmapedDict(os.path.join(directory, f"{kind}_{ARCHIVE}.db"))
        try:
            for key, value, timestamp, _ in MmapedDict.read_all_values_from_file(dead):
                archived, _ = archive.read_value(key)
                archive.write_value(key, archived + value, timestamp)
        finally:
            archive.close()
        os.remove(dead)
