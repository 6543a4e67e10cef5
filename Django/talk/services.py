"""Chat business logic: plain functions, synchronous like the ORM. The consumer uses
their async versions at the bottom, each wrapped once."""

from channels.db import database_sync_to_async
from django.db import transaction

from realtime.positions import Page, Position, offset_take

from .models import Message, Room
from .rooms import room_name_validate

HISTORY_LENGTH = 50


class GuestNicknameMissing(ValueError):
    pass


class RoomForbidden(PermissionError):
    """The user may not post in this private room (room_admits)."""


def message_as_dict(message: Message) -> dict:
    return {
        "id": message.id,
        "room": message.room.slug,
        "epoch": message.room.epoch,
        "offset": message.offset,
        "nickname": message.nickname,
        "guest": message.guest,
        "text": message.text,
        "created_at": message.created_at.isoformat(),
    }


def message_create(*, room: str, text: str, user=None, nickname: str | None = None) -> dict:
    """A message by `user`: a signed-in user is its author, under their user name
    whatever `nickname` says; a guest (None or AnonymousUser) posts under `nickname`,
    marked as a guest's. Only a member posts in a private room (RoomForbidden): asked
    with each message, so a member taken off stops posting."""
    if user is not None and user.is_authenticated:
        author, nickname, guest = user, user.get_username(), False
    elif nickname:
        author, guest = None, True
    else:
        raise GuestNicknameMissing("nickname: a guest's message needs one")
    room_obj, _ = Room.objects.get_or_create(slug=room_name_validate(room))
    if not _admits(room_obj, author):
        raise RoomForbidden("you may not post here")
    with transaction.atomic():
        position = offset_take(Room, room_obj.pk)
        room_obj.epoch = position.epoch
        message = Message.objects.create(
            room=room_obj,
            offset=position.offset,
            author=author,
            nickname=nickname,
            guest=guest,
            text=text,
        )
    return message_as_dict(message)


def room_admits(*, room: str, user) -> bool:
    """Whether `user` may join `room`, and post in it: anyone, unless the room is
    private; then its members only."""
    room_obj = Room.objects.filter(slug=room_name_validate(room)).first()
    return room_obj is None or _admits(room_obj, user)


def _admits(room: Room, user) -> bool:
    if not room.private:
        return True  # no query: the common case, once per message
    return user is not None and user.is_authenticated and room.members.filter(pk=user.pk).exists()


def room_page(*, room: str, after: int | None = None, limit: int = HISTORY_LENGTH) -> Page:
    """The room's messages after offset `after`, oldest first, at most `limit`; with
    `after` None, its last `limit` messages."""
    room_obj = Room.objects.filter(slug=room_name_validate(room)).first()
    if room_obj is None:
        return Page(epoch="")
    messages = room_obj.messages.select_related("room")
    if after is None:
        recent = list(reversed(messages.order_by("-offset")[:limit]))
    else:
        recent = list(messages.filter(offset__gt=after).order_by("offset")[:limit])
    return Page(room_obj.epoch, [message_as_dict(message) for message in recent])


def room_heads(*, rooms: list[str]) -> dict[str, Position]:
    """Each room's epoch and last offset, in one query: what a worker compares with what
    it has sent (realtime.streams.WorkerStreams)."""
    found = Room.objects.filter(slug__in=rooms).values_list("slug", "epoch", "last_offset")
    return {slug: Position(epoch, last) for slug, epoch, last in found}


def room_history(*, room: str, limit: int = HISTORY_LENGTH) -> list[dict]:
    """The room's last `limit` messages, oldest first."""
    return room_page(room=room, limit=limit).items


amessage_create = database_sync_to_async(message_create)
aroom_page = database_sync_to_async(room_page)
aroom_heads = database_sync_to_async(room_heads)
aroom_admits = database_sync_to_async(room_admits)
