import pytest

from chat import services
from chat.models import Message
from chat.rooms import InvalidRoomName

pytestmark = pytest.mark.django_db


def test_message_create_stores_and_returns_the_message():
    message = services.message_create(room="lobby", nickname="ann", text="こんにちは 🍣")
    stored = Message.objects.get(pk=message["id"])
    assert (stored.room.slug, stored.nickname, stored.text) == ("lobby", "ann", "こんにちは 🍣")
    assert message["created_at"] == stored.created_at.isoformat()


def test_room_history_is_the_last_fifty_oldest_first():
    for n in range(60):
        services.message_create(room="busy", nickname="bot", text=f"m{n}")
    services.message_create(room="other", nickname="bot", text="elsewhere")
    history = services.room_history(room="busy")
    assert [m["text"] for m in history] == [f"m{n}" for n in range(10, 60)]


@pytest.mark.parametrize("room", ["", "UPPER", "../etc", "a" * 81, "日本語", "a b", "a.b"])
def test_bad_room_names_are_refused(room):
    with pytest.raises(InvalidRoomName, match="room names are"):
        services.message_create(room=room, nickname="x", text="y")
    assert not Message.objects.exists()
