"""Per-room offsets and epochs (realtime/positions.py); existing messages are numbered
in the order they were stored."""

from django.db import migrations, models

import realtime.positions


def number_messages(apps, schema_editor):
    Room = apps.get_model("talk", "Room")
    Message = apps.get_model("talk", "Message")
    for room in Room.objects.all():
        offset = 0
        for message in Message.objects.filter(room=room).order_by("id").only("id"):
            offset += 1
            Message.objects.filter(pk=message.pk).update(offset=offset)
        Room.objects.filter(pk=room.pk).update(last_offset=offset)


class Migration(migrations.Migration):
    dependencies = [("talk", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="room",
            name="epoch",
            field=models.CharField(
                default=realtime.positions.new_epoch, editable=False, max_length=32
            ),
        ),
        migrations.AddField(
            model_name="room",
            name="last_offset",
            field=models.PositiveBigIntegerField(default=0, editable=False),
        ),
        migrations.AddField(
            model_name="message",
            name="offset",
            field=models.PositiveBigIntegerField(default=0, editable=False),
            preserve_default=False,
        ),
        migrations.RunPython(number_messages, migrations.RunPython.noop),
        migrations.RemoveIndex(model_name="message", name="talk_message_room_recent"),
        migrations.AddConstraint(
            model_name="message",
            constraint=models.UniqueConstraint(
                fields=("room", "offset"), name="talk_message_room_offset"
            ),
        ),
    ]
