"""Workarounds that reach into libraries' private internals, each kept in this one module.

Each was written against the version in UPSTREAM, fixes a defect that a test shows on the
unpatched library, and goes once upstream fixes it:

- IdleClosingConnectionPool (redis-py): a pool that closes its idle connections, which
  redis-py keeps for ever (realtime.fanout's publishers).
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
import logging
import os
import time

from prometheus_client.mmap_dict import MmapedDict
from redis.asyncio import ConnectionPool
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from . import metrics
from .frames import FRAMES_EXTENSION

logger = logging.getLogger(__name__)

# The versions these workarounds were written against and tested with.
UPSTREAM = {"redis": "8.1.0", "uvicorn": "0.54.0", "prometheus-client": "0.26.0"}


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
