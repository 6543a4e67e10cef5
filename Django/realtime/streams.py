"""A consumer that sends a stream's items to its socket in order, each once, and lets a
client that was away resume where it left off (positions.py: offsets and epochs)."""

import asyncio
import logging

from django.conf import settings

from .consumers import JsonConsumer
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


class StreamConsumer(JsonConsumer):
    """One socket following one stream (a chat room).

    Override point: ``stream_page(after, limit)`` returns a Page: the stream's epoch and
    its items after offset `after`, oldest first, at most `limit`; with `after` None, its
    latest `limit` items.

    Call ``stream_start()`` once connected: it sends the ``history`` frame, replaying what
    a returning client missed when it passed ``?epoch=E&offset=N``. Send each live item
    through ``stream_deliver(item)``: duplicates are dropped, items that overtook others
    wait for them (``gap_wait`` seconds at most; then the missing ones are read from the
    store), so the client gets every item once, in offset order. A client may also send
    ``{"type": "resume", "epoch": E, "offset": N}`` on an open socket.
    """

    history_length = HISTORY_LENGTH
    gap_wait = 1.0

    async def stream_page(self, after: int | None, limit: int) -> Page:
        raise NotImplementedError

    @property
    def resume_limit(self) -> int:
        return getattr(settings, "REALTIME_RESUME_LIMIT", RESUME_LIMIT)

    async def websocket_connect(self, message):
        self.position: Position | None = None  # None until stream_start, and after a resync
        self._pending: dict[int, dict] = {}
        self._gap_timer: asyncio.TimerHandle | None = None
        self._gap_task: asyncio.Task | None = None
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
        self._pending = {k: v for k, v in self._pending.items() if k > end}
        frame = {"type": "history", "epoch": page.epoch, "offset": end, "messages": page.items}
        if asked is not None:
            frame["recovered"] = recovered
            self.route_metrics.resumed(recovered)
        await self.send_json({**frame, **extra})
        await self._flush()

    async def stream_deliver(self, item: dict) -> None:
        async with self._stream_lock:
            if self.position is None:
                return  # closed for a resync
            if item["epoch"] != self.position.epoch:
                if self.position.offset:  # the stream was made again: history changed
                    await self._resync("the stream's epoch changed")
                    return
                self.position = Position(item["epoch"], 0)  # the stream's first item
            if item["offset"] > self.position.offset:
                self._pending[item["offset"]] = item
                await self._flush()

    async def _flush(self) -> None:
        """Send the pending items that follow on; wait for the missing ones if any."""
        while (item := self._pending.pop(self.position.offset + 1, None)) is not None:
            await self.send_json({"type": "message", **item})
            self.position = Position(self.position.epoch, item["offset"])
        if self._pending and self._gap_timer is None:
            loop = asyncio.get_running_loop()
            self._gap_timer = loop.call_later(self.gap_wait, self._gap_due)

    def _gap_due(self) -> None:
        self._gap_timer = None
        self._gap_task = asyncio.create_task(self._fill_gap())
        self._gap_task.add_done_callback(_log_failure)

    async def _fill_gap(self) -> None:
        async with self._stream_lock:
            if self.position is None or not self._pending:
                return
            page = await self.stream_page(self.position.offset, self.resume_limit + 1)
            if page.epoch != self.position.epoch or len(page.items) > self.resume_limit:
                await self._resync("too many items missing")
                return
            missing = min(self._pending) - self.position.offset - 1
            for item in page.items:
                self._pending.setdefault(item["offset"], item)
            logger.info("%s: %d missing items read from the store", self.channel_name, missing)
            await self._flush()
            while self._pending:  # what the store does not have was deleted: skip it
                self.position = Position(self.position.epoch, min(self._pending) - 1)
                await self._flush()

    async def _resync(self, why: str) -> None:
        logger.info("closing %s for a resync: %s", self.channel_name, why)
        self.position = None
        self._pending.clear()
        await self.close(code=CLOSE_RESYNC)

    async def websocket_disconnect(self, message):
        if self._gap_timer is not None:
            self._gap_timer.cancel()
        if self._gap_task is not None:
            self._gap_task.cancel()
        await super().websocket_disconnect(message)


def _log_failure(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        logger.error("filling a gap failed", exc_info=task.exception())
