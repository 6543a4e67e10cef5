from django.urls import path

from . import consumers

websocket_urlpatterns = [
    # Any text reaches the consumer, which refuses bad room names with a clear error.
    path("ws/talk/<path:room>/", consumers.TalkConsumer.as_asgi()),
]
