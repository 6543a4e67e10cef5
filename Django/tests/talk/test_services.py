import pytest
from django.contrib.auth.models import AnonymousUser, User

from talk import services
from talk.models import Message, Room
from talk.rooms import InvalidRoomName

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


def test_each_room_numbers_its_messages_from_one_without_holes():
    offsets = {"a": [], "b": []}
    for n in range(6):
        room = "ab"[n % 2]
        offsets[room].append(services.message_create(room=room, nickname="x", text="y")["offset"])
    assert offsets == {"a": [1, 2, 3], "b": [1, 2, 3]}


def test_room_page_after_an_offset_and_the_latest_page():
    sent = [services.message_create(room="p", nickname="x", text=f"m{n}") for n in range(10)]
    page = services.room_page(room="p", after=7, limit=50)
    assert page.epoch == sent[0]["epoch"]
    assert [m["offset"] for m in page.items] == [8, 9, 10]
    assert [m["offset"] for m in services.room_page(room="p", after=2, limit=3).items] == [3, 4, 5]
    assert [m["offset"] for m in services.room_page(room="p", limit=3).items] == [8, 9, 10]
    assert services.room_page(room="never-used").items == []


def test_a_room_made_again_starts_a_new_epoch():
    first = services.message_create(room="again", nickname="x", text="y")
    Room.objects.filter(slug="again").delete()
    second = services.message_create(room="again", nickname="x", text="y")
    assert second["offset"] == 1
    assert second["epoch"] != first["epoch"]


def test_a_signed_in_users_message_is_theirs_under_their_user_name():
    ann = User.objects.create_user("ann")
    message = services.message_create(room="lobby", user=ann, nickname="bob", text="hi")
    assert (message["nickname"], message["guest"]) == ("ann", False)
    assert Message.objects.get().author == ann


def test_a_guests_message_is_marked_and_needs_a_nickname():
    message = services.message_create(room="lobby", user=AnonymousUser(), nickname="g", text="x")
    assert (message["nickname"], message["guest"]) == ("g", True)
    with pytest.raises(services.GuestNicknameMissing):
        services.message_create(room="lobby", user=AnonymousUser(), text="x")
    assert Message.objects.count() == 1


def test_a_private_room_admits_its_members_only():
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    assert services.room_admits(room="staff", user=AnonymousUser())  # no such room yet
    Room.objects.create(slug="staff", private=True).members.add(ann)
    assert services.room_admits(room="staff", user=ann)
    assert not services.room_admits(room="staff", user=bob)
    assert not services.room_admits(room="staff", user=AnonymousUser())


def test_only_a_member_posts_in_a_private_room():
    ann, bob = User.objects.create_user("ann"), User.objects.create_user("bob")
    Room.objects.create(slug="staff", private=True).members.add(ann)
    assert services.message_create(room="staff", user=ann, text="in")["nickname"] == "ann"
    for user, nickname in ((bob, None), (AnonymousUser(), "guest")):
        with pytest.raises(services.RoomForbidden):
            services.message_create(room="staff", user=user, nickname=nickname, text="out")
    assert Message.objects.count() == 1
