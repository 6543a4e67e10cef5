"""Positions in a stream of stored items (a chat room's messages), for clients to resume.

Every item of a stream gets an offset one higher than the one before, with no holes: a
client that knows the last offset it saw knows exactly what it missed. Every stream has
an epoch, changed when its history can no longer be trusted (the stream deleted and made
again): an offset means something only together with its epoch.

With your own models: give the stream model an ``epoch`` (default ``new_epoch``) and a
``last_offset`` (default 0), the item model an ``offset``, and store each item inside
``transaction.atomic()`` with the offset ``offset_take`` returns. See talk/models.py.
"""

import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs


def new_epoch() -> str:
    return secrets.token_hex(8)


@dataclass(frozen=True)
class Position:
    epoch: str
    offset: int


@dataclass(frozen=True)
class Page:
    """Part of a stream: its epoch, and items (dicts with an "offset"), oldest first."""

    epoch: str
    items: list[dict] = field(default_factory=list)


def offset_take(stream_model, pk) -> Position:
    """The next offset of stream `pk`, inside the caller's transaction. The stream's row
    stays locked until that transaction ends, so items of one stream are stored one at
    a time, in offset order, and a failed store gives its offset back."""
    stream = stream_model.objects.select_for_update().only("epoch", "last_offset").get(pk=pk)
    stream.last_offset += 1
    stream.save(update_fields=["last_offset"])
    return Position(stream.epoch, stream.last_offset)


class BadPosition(ValueError):
    pass


def position_from_query(query_string: bytes) -> Position | None:
    """The position a client passed on connect (``?epoch=...&offset=...``), or None for
    a client that has seen nothing yet."""
    query = parse_qs(query_string.decode("latin-1"), keep_blank_values=True)
    if "offset" not in query:
        return None
    epoch, offset = query.get("epoch", [""])[-1], query["offset"][-1]
    if not offset.isdigit() or len(offset) > 18 or len(epoch) > 64:
        raise BadPosition(f"bad resume position epoch={epoch!r} offset={offset!r}")
    return Position(epoch, int(offset))
