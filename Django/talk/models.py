from django.conf import settings
from django.db import models

from realtime.positions import new_epoch


class Room(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    # A room's messages are numbered 1, 2, 3... (Message.offset) so that a client can say
    # what it last saw; a room made again under the same name starts a new epoch.
    epoch = models.CharField(max_length=32, default=new_epoch, editable=False)
    last_offset = models.PositiveBigIntegerField(default=0, editable=False)
    # A private room admits its members only (consumers.TalkConsumer.may_join).
    private = models.BooleanField(default=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="talk_rooms"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    offset = models.PositiveBigIntegerField(editable=False)
    # The signed-in author, named as they were when they posted; or a guest's nickname.
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="talk_messages",
    )
    nickname = models.CharField(max_length=150)
    guest = models.BooleanField(default=False)
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
