from core.routing import websocket_urlpatterns as core_patterns
from realtime.routing import websocket_urlpatterns as realtime_patterns
from talk.routing import websocket_urlpatterns as talk_patterns

websocket_urlpatterns = [
    # The first route that matches takes the path: realtime's echo before core's.
    *realtime_patterns,
    *talk_patterns,
    *core_patterns,
]
