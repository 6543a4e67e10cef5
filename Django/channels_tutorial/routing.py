from core.routing import websocket_urlpatterns as core_patterns
from talk.routing import websocket_urlpatterns as talk_patterns

websocket_urlpatterns = [*core_patterns, *talk_patterns]
