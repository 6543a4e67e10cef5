from django.contrib import admin

from .models import Message, Room


@admin.register(Room)
class RoomAdmin(admin.ModelAdmin):
    list_display = ["slug", "private", "created_at"]
    list_filter = ["private"]
    search_fields = ["slug"]
    filter_horizontal = ["members"]


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["id", "room", "nickname", "guest", "text", "created_at"]
    list_filter = ["room", "guest"]
    search_fields = ["nickname", "text"]
