from django.shortcuts import redirect, render

from .models import Room
from .rooms import RULE, InvalidRoomName, room_name_validate


def index(request):
    """Room list; the form's ?room=NAME goes to that room."""
    error = ""
    if "room" in request.GET:
        name = request.GET["room"].strip().lower()
        try:
            return redirect("talk:room", room=room_name_validate(name))
        except InvalidRoomName as invalid:
            error = str(invalid)
    rooms = Room.objects.order_by("-created_at")[:20]
    context = {"rooms": rooms, "rule": RULE, "error": error}
    return render(request, "talk/index.html", context, status=400 if error else 200)


def room(request, room):
    try:
        room_name_validate(room)
    except InvalidRoomName as error:
        return render(request, "talk/invalid_room.html", {"error": str(error)}, status=400)
    return render(request, "talk/room.html", {"room": room})
