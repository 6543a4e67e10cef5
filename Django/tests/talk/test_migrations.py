import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from talk.models import Message, Room


@pytest.mark.django_db
def test_the_models_and_their_migrations_agree():
    call_command("makemigrations", "--check", "--dry-run", verbosity=0)  # SystemExit if not


@pytest.mark.django_db(transaction=True)
def test_messages_stored_before_offsets_are_numbered_in_the_order_they_were_stored():
    executor = MigrationExecutor(connection)
    executor.migrate([("talk", "0001_initial")])
    old = executor.loader.project_state([("talk", "0001_initial")]).apps
    rooms = [old.get_model("talk", "Room").objects.create(slug=slug) for slug in ("a", "b")]
    OldMessage = old.get_model("talk", "Message")
    for n in range(5):
        OldMessage.objects.create(room=rooms[n % 2], nickname="x", text=f"m{n}")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    numbered = {
        room.slug: [(m.text, m.offset) for m in Message.objects.filter(room=room).order_by("id")]
        for room in Room.objects.all()
    }
    assert numbered == {"a": [("m0", 1), ("m2", 2), ("m4", 3)], "b": [("m1", 1), ("m3", 2)]}
    assert {r.slug: r.last_offset for r in Room.objects.all()} == {"a": 3, "b": 2}
