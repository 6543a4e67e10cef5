from django.urls import path, re_path

from metrics.figures import FiguresConsumer

from . import consumers

websocket_urlpatterns = [
    path("ws/echo/", consumers.EchoConsumer.as_asgi()),
    path("ws/figures/", FiguresConsumer.as_asgi()),
]


async def websocket_not_found(scope, receive, send):
    """A handshake on a path no route matches: HTTP 404, as a page would get. Channels'
    URLRouter raises ValueError instead: Uvicorn answers 500 and logs a traceback, once
    per scanner's request. A server without the ASGI denial response (daphne) turns the
    close below into a 403."""
    await receive()  # websocket.connect
    if "websocket.http.response" not in scope.get("extensions", {}):
        await send({"type": "websocket.close"})
        return
    headers = [(b"content-type", b"text/plain; charset=utf-8")]
    await send({"type": "websocket.http.response.start", "status": 404, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": b"No WebSocket here.\n"})


# After every route (asgi.py puts it last): it matches any path.
not_found = re_path(r"", websocket_not_found)
