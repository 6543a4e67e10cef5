from django.urls import path

from . import echo

websocket_urlpatterns = [
    # Before core's routes (channels_tutorial/routing.py): this echo takes /ws/echo/.
    path("ws/echo/", echo.EchoConsumer.as_asgi()),
]
