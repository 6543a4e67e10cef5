import os
import socket

from pydantic import ValidationError

from realtime.consumers import CLOSE_FORBIDDEN, Refused
from realtime.presence import PresenceMixin
from realtime.streams import StreamConsumer, stream_item

from . import services
from .rooms import InvalidRoomName, room_group_name
from .schemas import TalkMessageIn

# Close code for a refused room name (4000-4999 are the application's own).
CLOSE_INVALID_ROOM = 4400


class TalkConsumer(PresenceMixin, StreamConsumer):
    """One socket in one room: history on connect (or what it missed, when the page
    passes the last position it saw), then messages both ways, each once and in order."""

    history_length = services.HISTORY_LENGTH
    # talk_message only forwards to the socket; the database work runs in services,
    # whose database_sync_to_async closes stale connections itself. Without Channels'
    # per-event hop to the sync thread, broadcasts ran about 1.3x faster (make bench-tune).
    event_db_cleanup = False

    async def connect(self):
        self.room = self.scope["url_route"]["kwargs"]["room"]
        try:
            self.group = room_group_name(self.room)
        except InvalidRoomName as error:
            await self.refuse("invalid_room", code=CLOSE_INVALID_ROOM, detail=str(error))
            return
        await self.join(self.group)
        await self.accept()
        # Which server (the container's host name when replicated) and which of its
        # Uvicorn processes hold this socket.
        await self.stream_start(server=socket.gethostname(), worker_pid=os.getpid())

    async def stream_page(self, after, limit):
        return await services.aroom_page(room=self.room, after=after, limit=limit)

    @property
    def stream_name(self):
        return self.room

    async def stream_heads(self, names):
        return await services.aroom_heads(rooms=names)

    async def may_join(self, group):
        return await services.aroom_admits(room=self.room, user=self.user)

    async def on_message(self, content):
        try:
            incoming = TalkMessageIn.model_validate(content)
            # The author is the socket's user (self.user), never a name in the frame.
            message = await services.amessage_create(
                room=self.room, user=self.user, nickname=incoming.nickname, text=incoming.text
            )
        except ValidationError as error:
            await self.send_error(_describe(error))
            return
        except services.GuestNicknameMissing as error:
            await self.send_error(str(error))
            return
        except services.RoomForbidden as error:
            # Checked as the message is stored (services): no query of its own per message.
            raise Refused("forbidden", CLOSE_FORBIDDEN, str(error)) from None
        await self.stream_send({"type": "talk.message", "message": message})

    # Each message is an item of the room's stream: in order, once, gaps filled; on the
    # stack's own layer, once per worker for all its sockets in the room.
    @stream_item
    def talk_message(event):
        return event["message"]


def _describe(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, item['loc'])) or 'message'}: {item['msg']}" for item in error.errors()
    )
