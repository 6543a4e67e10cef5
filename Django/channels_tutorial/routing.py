from chat.routing import websocket_urlpatterns as chat_patterns
from core.routing import websocket_urlpatterns as core_patterns

websocket_urlpatterns = [*core_patterns, *chat_patterns]
