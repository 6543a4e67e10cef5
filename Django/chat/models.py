from django.db import models


class Room(models.Model):
    slug = models.SlugField(max_length=80, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self):
        return self.slug


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    nickname = models.CharField(max_length=32)
    # utf8mb4 (MySQL/my.cnf) keeps Japanese and emoji as they were sent.
    text = models.TextField(max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "-id"], name="chat_message_room_recent")]

    def __str__(self):
        return f"{self.nickname}: {self.text[:40]}"
