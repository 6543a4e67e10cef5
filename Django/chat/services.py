"""Chat business logic: plain functions, synchronous like the ORM. The consumer uses
their async versions at the bottom, each wrapped once."""

from channels.db import database_sync_to_async

from .models import Message, Room
from .rooms import room_name_validate

HISTORY_LENGTH = 50


def message_as_dict(message: Message) -> dict:
    return {
        "id": message.id,
        "room": message.room.slug,
        "nickname": message.nickname,
        "text": message.text,
        "created_at": message.created_at.isoformat(),
    }


def message_create(*, room: str, nickname: str, text: str) -> dict:
    room_obj, _ = Room.objects.get_or_create(slug=room_name_validate(room))
    message = Message.objects.create(room=room_obj, nickname=nickname, text=text)
    return message_as_dict(message)


def room_history(*, room: str, limit: int = HISTORY_LENGTH) -> list[dict]:
    """The room's last `limit` messages, oldest first."""
    recent = (
        Message.objects.filter(room__slug=room_name_validate(room))
        .select_related("room")
        .order_by("-id")[:limit]
    )
    return [message_as_dict(message) for message in reversed(recent)]


amessage_create = database_sync_to_async(message_create)
aroom_history = database_sync_to_async(room_history)
