from django.db import models

from realtime.positions import new_epoch


class Room(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    # A room's messages are numbered 1, 2, 3... (Message.offset) so that a client can say
    # what it last saw; a room made again under the same name starts a new epoch.
    epoch = models.CharField(max_length=32, default=new_epoch, editable=False)
    last_offset = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    offset = models.PositiveBigIntegerField(editable=False)
    nickname = models.CharField(max_length=32)
    # utf8mb4 (MySQL/my.cnf) keeps Japanese and emoji as they were sent.
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            # Also the index that history and resume queries read.
            models.UniqueConstraint(fields=["room", "offset"], name="talk_message_room_offset"),
        ]

    def __str__(self):
        return f"{self.nickname}: {self.text[:40]}"
