"""A consumer that sends a stream's items to its socket in order, each once, and lets a
client that was away resume where it left off (positions.py: offsets and epochs)."""

import asyncio
import collections
import functools
import logging

from django.conf import settings

from .consumers import JsonConsumer
from .fanout import Router, Written, frame_text, text_frame
from .frames import marked
from .layer import ChannelLayerLost, PerWorker
from .metrics import SENT_AT
from .positions import BadPosition, Page, Position, position_from_query

logger = logging.getLogger(__name__)

# Close code when this socket's position can no longer be brought up to date on it (more
# than the resume limit missed, or the stream's epoch changed): reconnect and resume.
CLOSE_RESYNC = 4010
# How many missed items a resume replays (settings.REALTIME_RESUME_LIMIT); past it the
# client gets the latest page and "recovered": false.
RESUME_LIMIT = 1000
# Items shown to a new client, or to one that could not be recovered.
HISTORY_LENGTH = 50


def stream_item(item_of):
    """Make `item_of(event) -> item` a StreamConsumer's handler for the group event that
    carries the stream's items (a chat room's messages). The worker's WorkerStream takes
    each item once: on the stack's own layer the fan-out hands it the message once for
    all the worker's sockets; on any other layer each socket's handler hands it that
    socket's copy, and the stream drops the copies it already has."""

    @functools.wraps(item_of)
    async def handler(self, event):
        # Before this socket's stream_start there is no stream: its history has the item.
        if self._stream is not None:
            self._stream.route(event)

    handler.stream_item = item_of
    return handler


@functools.cache
def stream_handlers(consumer_class) -> dict:
    """{handler name: item_of} of a class's @stream_item handlers."""
    return marked(consumer_class, "stream_item")


class StreamConsumer(JsonConsumer):
    """One socket following one stream (a chat room).

    Override point: ``stream_page(after, limit)`` returns a Page: the stream's epoch and
    its items after offset `after`, oldest first, at most `limit`; with `after` None, its
    latest `limit` items. It depends on the stream only, never on the socket: any
    socket's may be the one that reads for the worker.

    Join the stream's group (``stream_group``: by default the last group joined), then
    call ``stream_start()`` once connected: it sends the ``history`` frame, replaying
    what a returning client missed when it passed ``?epoch=E&offset=N``. Mark the one
    group event that carries the items with ``@stream_item`` and send it with
    ``stream_send(event)`` once the item is stored. A client may also send
    ``{"type": "resume", "epoch": E, "offset": N}`` on an open socket.

    The worker follows each stream once for all its sockets (``WorkerStream``): items
    in offset order, each once; items that overtook others wait ``gap_wait`` seconds
    for them, then the missing ones are read from the store, once for every socket;
    every ``stream_check`` seconds (settings.REALTIME_STREAM_CHECK) it compares its
    streams with the store (``stream_heads``), so an item whose broadcast was lost comes
    within that. Each item's frame is built once (``json.dumps``) and written to every
    socket following the stream.
    """

    history_length = HISTORY_LENGTH
    gap_wait = 1.0

    async def stream_page(self, after: int | None, limit: int) -> Page:
        raise NotImplementedError

    @property
    def resume_limit(self) -> int:
        return getattr(settings, "REALTIME_RESUME_LIMIT", RESUME_LIMIT)

    @property
    def stream_group(self) -> str | None:
        return self.joined[-1] if self.joined else None

    @property
    def stream_name(self) -> str | None:
        """The stream's name for stream_heads (by default its group's)."""
        return self.stream_group

    async def stream_heads(self, names: list[str]) -> dict[str, Position] | None:
        """The last position of each named stream, in one read; None where there is no
        such read (then a lost broadcast's item comes with the next item's gap fill)."""
        return None

    async def websocket_connect(self, message):
        self.position: Position | None = None  # None until stream_start, and after a resync
        self._stream: WorkerStream | None = None
        self._outbox: Outbox | None = None
        self._stream_lock = asyncio.Lock()
        await super().websocket_connect(message)

    async def stream_start(self, **extra) -> None:
        try:
            asked = position_from_query(self.scope.get("query_string", b""))
        except BadPosition as error:
            await self.send_error(f"{error}; starting from the latest messages", kind="position")
            asked = Position("", -1)  # so that "recovered" says false
        async with self._stream_lock:
            await self._send_history(asked, extra)

    async def on_resume(self, content) -> None:
        epoch, offset = content.get("epoch"), content.get("offset")
        if not isinstance(epoch, str) or type(offset) is not int or offset < 0:
            await self.send_error("resume needs a string epoch and an offset >= 0", kind="position")
            return
        if self.position is None:
            await self.send_error("resume: this socket follows no stream")
            return
        async with self._stream_lock:
            await self._send_history(Position(epoch, offset), {})

    async def _send_history(self, asked: Position | None, extra: dict) -> None:
        stream = self._stream_of_worker()
        stream.hold(self.channel_name)  # its frames wait until its history is sent
        if self._outbox is not None:
            await self._outbox.drained()  # what it was sent before comes first
        recovered = None if asked is None else False
        if asked is not None and asked.offset >= 0:
            page = await self.stream_page(asked.offset, self.resume_limit + 1)
            # Offset 0 has seen nothing, so any epoch will do.
            same_epoch = asked.offset == 0 or page.epoch == asked.epoch
            recovered = same_epoch and len(page.items) <= self.resume_limit
        if not recovered:
            page = await self.stream_page(None, self.history_length)
        end = page.items[-1]["offset"] if page.items else (asked.offset if recovered else 0)
        self.position = Position(page.epoch, end)
        frame = {"type": "history", "epoch": page.epoch, "offset": end, "messages": page.items}
        if asked is not None:
            frame["recovered"] = recovered
            self.route_metrics.resumed(recovered)
        await self.send_json({**frame, **extra})
        for _ in range(CATCH_UP_READS):
            if stream.go_live(self.channel_name, self.position):
                return
            # The worker's stream is past this history, and not all that lies between
            # was kept for this socket: read it, keeping what comes meanwhile.
            stream.hold(self.channel_name)
            page = await self.stream_page(self.position.offset, self.resume_limit + 1)
            if page.epoch != self.position.epoch or len(page.items) > self.resume_limit:
                break
            for item in page.items:
                await self.send_json({"type": "message", **item})
                self.position = Position(page.epoch, item["offset"])
        await self._resync("could not catch up with the worker's stream")

    def _stream_of_worker(self) -> "WorkerStream":
        """This socket's WorkerStream, made on first use. On the stack's own layer the
        fan-out hands it each message once, and it writes to the socket's fast path;
        elsewhere it sends through the socket's Outbox."""
        if self._stream is not None:
            return self._stream
        handlers = stream_handlers(type(self))
        if len(handlers) != 1:
            raise TypeError(f"{type(self).__name__}: mark exactly one handler @stream_item")
        if self.stream_group is None:
            raise TypeError(f"{type(self).__name__}: join the stream's group before stream_start")
        ((name, item_of),) = handlers.items()
        streams = _worker_streams.get(self.channel_layer.layer)
        stream = streams.get(self, item_of)
        if self._listener is not None:
            self._listener.builders = {**self._listener.builders, name: stream}
        else:
            self._outbox = streams.sockets.outboxes[self.channel_name] = Outbox(self)
        stream.attached += 1
        self._stream = stream
        return stream

    async def stream_send(self, event: dict) -> None:
        """group_send of an item already in the store (`event` carries it to the
        ``@stream_item`` handler). A publish that Redis lost (restarting, failing over)
        is no loss: every worker's stream finds the item at its next check of the
        heads (or as it subscribes again, on the stack's own layer), so the sender's
        socket stays open."""
        try:
            await self.channel_layer.group_send(self.stream_group, event)
        except ChannelLayerLost as lost:
            logger.warning("%s (%s); the streams' check sends the item", lost, lost.__cause__)

    async def _resync(self, why: str) -> None:
        logger.info("closing %s for a resync: %s", self.channel_name, why)
        self.position = None
        if self._stream is not None:
            self._stream.leave(self.channel_name)
        await self.close(code=CLOSE_RESYNC)

    async def stream_resync(self, event) -> None:
        """Sent by the worker's WorkerStream: this socket cannot be brought up to date."""
        await self._resync(event["why"])

    async def websocket_disconnect(self, message):
        if self._stream is not None:
            self._stream.detach(self.channel_name)
            self._stream.streams.sockets.outboxes.pop(self.channel_name, None)
            self._stream = None
        if self._outbox is not None:
            self._outbox.cancel()
        await super().websocket_disconnect(message)


class Outbox:
    """A socket's frames from its WorkerStream where the layer has no fan-out
    (channels-redis's layers, the in-memory layer of unit tests): sent in order by the
    consumer's own send, in a task that runs while there are any. (On the stack's own
    layer a socket without the fast write gets them through its queue instead.)"""

    def __init__(self, consumer: JsonConsumer) -> None:
        self.consumer = consumer
        self.items: collections.deque = collections.deque()
        self.task: asyncio.Task | None = None

    def put(self, message: dict) -> None:
        self.items.append(message)
        if self.task is None:
            self.task = asyncio.create_task(self._send_all())
            self.task.add_done_callback(_log_failure)

    async def _send_all(self) -> None:
        try:
            while self.items:
                message = self.items.popleft()
                if message["type"] == "websocket.send":
                    await self.consumer.base_send(message)
                else:  # an event for the consumer (stream.resync)
                    await self.consumer.dispatch(message)
        except OSError:  # the client went (ClientDisconnected): its disconnect follows
            self.items.clear()
        finally:
            self.task = None

    async def drained(self) -> None:
        while self.task is not None and self.task is not asyncio.current_task():
            await asyncio.shield(self.task)

    def cancel(self) -> None:
        self.items.clear()
        if self.task is not None:
            self.task.cancel()


class Sockets:
    """How a worker's streams reach their sockets: the layer's fast path
    (realtime.fanout: deliver_frame, deliver_event), or a socket's Outbox where it has
    one."""

    def __init__(self, layer) -> None:
        self.layer = layer
        self.outboxes: dict[str, Outbox] = {}

    def deliver_frame(self, channel: str, frame: tuple[bytes, int], sent_at=None):
        outbox = self.outboxes.get(channel)
        if outbox is None:
            return self.layer.deliver_frame(channel, frame, sent_at)
        outbox.put({"type": "websocket.send", "text": frame_text(frame), SENT_AT: sent_at})
        return None  # counted as it is sent

    def deliver_event(self, channel: str, message: dict) -> None:
        outbox = self.outboxes.get(channel)
        if outbox is None:
            self.layer.deliver_event(channel, message)
        else:
            outbox.put(message)


# Seconds between a worker's checks of its streams' last positions in the store
# (settings.REALTIME_STREAM_CHECK): the bound on how long a stream whose last item's
# broadcast was lost goes without it.
STREAM_CHECK = 5.0
# Reads from the store a joining socket may need to reach its worker's stream (one,
# unless the stream moves on faster than a read).
CATCH_UP_READS = 3
# Items kept for a joining socket while it reads its history; past that it reads what it
# missed from the store itself.
JOIN_BUFFER = 1000


class WorkerStream(Router):
    """One stream (a chat room) as one worker follows it, for all of the worker's
    sockets on it: the stream's position, items that overtook others, the gap timer and
    the one read that fills a gap. Each item's frame is built once and written to every
    live socket (Sockets). A joining socket is
    held (its frames kept aside) while it reads its history, then goes live from the
    end of that history: nothing lost or doubled between the two."""

    def __init__(self, streams, key, read_page, item_of, resume_limit: int, gap_wait: float):
        self.streams, self.key = streams, key
        self.sockets = streams.sockets
        self.read_page, self.item_of = read_page, item_of
        self.resume_limit, self.gap_wait = resume_limit, gap_wait
        self.position: Position | None = None  # the last item sent to the live sockets
        self.live: dict[str, int] = {}  # channel -> the offset its own history ended at
        self.joining: dict[str, list] = {}  # channel -> [(offset, frame)] kept for it
        self.pending: dict[int, tuple[dict, float | None]] = {}  # offset -> (item, stamp)
        self.gap_timer: asyncio.TimerHandle | None = None
        self.gap_task: asyncio.Task | None = None
        self.attached = 0  # sockets following this stream
        self.name: str | None = None  # and read_heads: the consumer's stream_heads
        self.read_heads = None

    # -- sockets --
    def hold(self, channel: str) -> None:
        self.live.pop(channel, None)
        self.joining[channel] = []

    def go_live(self, channel: str, end: Position) -> bool:
        """A held socket whose history ended at `end` follows the stream from there: the
        frames kept for it after `end` first. False if what lies between its history and
        the stream's position was not all kept for it: it stays held, reads that from
        the store itself, and asks again."""
        kept = self.joining.pop(channel, None)
        if kept is None:  # never held (or resynced meanwhile)
            self.sockets.deliver_event(channel, resync_event("not held while joining"))
            return True
        position = self.position
        if position is None or (
            end.epoch != position.epoch and end.offset and position.offset
        ):  # the first socket here, or the stream made again since this worker saw it
            if position is not None:
                self._resync_all("the stream's epoch changed", but=channel)
            self.position = end
            self.pending = {
                k: v
                for k, v in self.pending.items()
                if k > end.offset and v[0]["epoch"] == end.epoch
            }
            self.live[channel] = end.offset
            self._flush()
            return True
        if end.offset and not position.offset:  # the stream had seen no item: its epoch
            self.position = position = Position(end.epoch, 0)
        after = [(offset, frame) for offset, frame in kept if offset > end.offset]
        missing = position.offset - end.offset
        if missing > 0 and [o for o, _ in after[:missing]] != list(
            range(end.offset + 1, position.offset + 1)
        ):
            self.joining[channel] = kept
            return False
        written = Written()
        for _, frame in after:
            written.add(self.sockets.deliver_frame(channel, frame), frame[1])
        written.count(None)
        self.live[channel] = end.offset
        return True

    def leave(self, channel: str) -> None:
        self.live.pop(channel, None)
        self.joining.pop(channel, None)

    def detach(self, channel: str) -> None:
        self.leave(channel)
        self.attached -= 1
        if self.attached <= 0:
            self.close()

    def close(self) -> None:
        if self.gap_timer is not None:
            self.gap_timer.cancel()
        if self.gap_task is not None:
            self.gap_task.cancel()
        self.streams.drop(self.key, self)

    # -- items --
    def route(self, message: dict) -> None:
        self.take(self.item_of(message), message.get(SENT_AT))

    def take(self, item: dict, sent_at: float | None = None) -> None:
        position = self.position
        if position is not None and item["epoch"] != position.epoch:
            if position.offset:  # the stream was made again: its history changed
                self._resync_all("the stream's epoch changed")
                self.position, self.pending = None, {}
                return
            self.position = position = Position(item["epoch"], 0)  # its first item
        if position is None or item["offset"] > position.offset:
            self.pending[item["offset"]] = (item, sent_at)
            if len(self.pending) > self.resume_limit:  # no socket live for a long while
                self.pending.pop(min(self.pending))
        self._flush()

    def _flush(self) -> None:
        """Send the pending items that follow on; wait for the missing ones if any."""
        if self.position is None:
            return
        while (found := self.pending.pop(self.position.offset + 1, None)) is not None:
            item, sent_at = found
            offset = item["offset"]
            frame = text_frame({"type": "message", **item})
            self.position = Position(self.position.epoch, offset)
            written = Written()
            for channel, after in self.live.items():
                if offset > after:  # not already in that socket's history
                    written.add(self.sockets.deliver_frame(channel, frame, sent_at), frame[1])
            written.count(sent_at)
            for kept in self.joining.values():
                if len(kept) < JOIN_BUFFER:  # past it, go_live has the socket read
                    kept.append((offset, frame))
        if self.pending and self.gap_timer is None and self.gap_task is None:
            loop = asyncio.get_running_loop()
            self.gap_timer = loop.call_later(self.gap_wait, self._gap_due)

    def _gap_due(self) -> None:
        self.gap_timer = None
        self.gap_task = asyncio.create_task(self._fill_gap())
        self.gap_task.add_done_callback(self._gap_filled)

    def _gap_filled(self, task: asyncio.Task) -> None:
        self.gap_task = None
        _log_failure(task)
        if self.pending and self.gap_timer is None:  # a gap that opened meanwhile
            self.gap_timer = asyncio.get_running_loop().call_later(self.gap_wait, self._gap_due)

    def behind(self, head: Position) -> bool:
        """Whether the store has items this worker has not sent (or a new epoch)."""
        position = self.position
        if position is None or self.gap_task is not None:
            return False
        return head.epoch != position.epoch and head.offset > 0 or head.offset > position.offset

    def catch_up(self) -> None:
        """Read what may have been missed (the worker's subscriber connection was lost and
        is back), as a gap fill does: once, for every socket of the worker here."""
        if self.gap_timer is not None:
            self.gap_timer.cancel()
            self.gap_timer = None
        if self.gap_task is None and self.position is not None:
            self.gap_task = asyncio.create_task(self._fill_gap(caught_up=True))
            self.gap_task.add_done_callback(self._gap_filled)

    async def _fill_gap(self, caught_up: bool = False) -> None:
        """One read from the store for the worker's every socket on this stream."""
        if self.position is None or not (self.pending or caught_up):
            return
        position = self.position
        page = await self.read_page(position.offset, self.resume_limit + 1)
        if self.position != position:  # items came meanwhile; the next timer reads again
            return
        if not position.offset:  # the stream had no item when this worker began: its epoch
            self.position = position = Position(page.epoch, 0)
        if page.epoch != position.epoch or len(page.items) > self.resume_limit:
            self._resync_all("too many items missing")
            self.position, self.pending = None, {}
            return
        for item in page.items:
            self.pending.setdefault(item["offset"], (item, None))
        logger.info(
            "%s: %d missing items read from the store, once for %d sockets",
            self.key[0],
            len(page.items),
            len(self.live),
        )
        self._flush()
        while self.pending:  # what the store does not have was deleted: skip it
            self.position = Position(self.position.epoch, min(self.pending) - 1)
            self._flush()

    def _resync_all(self, why: str, but: str | None = None) -> None:
        for channel in [*self.live, *self.joining]:
            if channel != but:
                self.sockets.deliver_event(channel, resync_event(why))
        self.live = {c: a for c, a in self.live.items() if c == but}
        self.joining = {c: k for c, k in self.joining.items() if c == but}


def resync_event(why: str) -> dict:
    return {"type": "stream.resync", "why": why}


class WorkerStreams:
    """A worker's WorkerStreams on one layer, by (group, consumer class). Every
    ``stream_check`` seconds it compares each stream's position with the store's, in
    one read per consumer class (stream_heads), and has those behind catch up."""

    def __init__(self, layer, check_interval: float = STREAM_CHECK):
        self.check_interval = check_interval
        self.sockets = Sockets(layer)
        self.streams: dict[tuple, WorkerStream] = {}
        self.checker: asyncio.Task | None = None
        if hasattr(layer, "on_resubscribed"):  # the stack's own layer says when
            layer.on_resubscribed(self.catch_up)

    def catch_up(self) -> None:
        for stream in list(self.streams.values()):
            stream.catch_up()

    def get(self, consumer, item_of) -> WorkerStream:
        key = (consumer.stream_group, type(consumer))
        found = self.streams.get(key)
        if found is None:
            gap_wait = type(consumer).gap_wait
            read_page, limit = consumer.stream_page, consumer.resume_limit
            found = WorkerStream(self, key, read_page, item_of, limit, gap_wait)
            found.name, found.read_heads = consumer.stream_name, consumer.stream_heads
            self.streams[key] = found
        if self.checker is None or self.checker.done():
            self.checker = asyncio.create_task(self._check_forever())
            self.checker.add_done_callback(_log_failure)
        return found

    def drop(self, key, stream: WorkerStream) -> None:
        if self.streams.get(key) is stream:
            del self.streams[key]

    async def _check_forever(self) -> None:
        interval = getattr(settings, "REALTIME_STREAM_CHECK", self.check_interval)
        while self.streams:
            await asyncio.sleep(interval)
            try:
                await self.check()
            except Exception:  # the store away a while: the next check tries again
                logger.warning("checking the streams' positions failed", exc_info=True)

    async def check(self) -> None:
        by_class: dict[type, list[WorkerStream]] = {}
        for (_, consumer_class), stream in list(self.streams.items()):
            if stream.position is not None:
                by_class.setdefault(consumer_class, []).append(stream)
        for streams in by_class.values():
            heads = await streams[0].read_heads([s.name for s in streams])
            for stream in streams if heads is not None else ():
                head = heads.get(stream.name)
                if head is not None and stream.behind(head):
                    stream.catch_up()


_worker_streams = PerWorker(WorkerStreams)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("a stream's task failed", exc_info=task.exception())
