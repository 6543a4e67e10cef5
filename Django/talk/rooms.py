"""Room names: they end up in URLs, in the database and in channel-layer group names,
which accept only ASCII letters, digits, '-', '_' and '.' and fewer than 100 characters."""

import re

ROOM_NAME = re.compile(r"[a-z0-9_-]{1,80}")
RULE = "room names are 1-80 lowercase ASCII letters, digits, '-' or '_'"


class InvalidRoomName(ValueError):
    pass


def room_name_validate(name: str) -> str:
    if not isinstance(name, str) or not ROOM_NAME.fullmatch(name):
        raise InvalidRoomName(f"invalid room name {name!r}: {RULE}")
    return name


def room_group_name(name: str) -> str:
    return f"talk_{room_name_validate(name)}"
