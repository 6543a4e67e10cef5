"""A bare ASGI app: the ceiling for what Gunicorn + Uvicorn can serve on this machine,
with no Django in the way. HTTP answers a small JSON body; WebSockets echo."""

BODY = b'{"pong": true}'


async def app(scope, receive, send):
    if scope["type"] == "http":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": BODY})
    elif scope["type"] == "websocket":
        while True:
            event = await receive()
            if event["type"] == "websocket.connect":
                await send({"type": "websocket.accept"})
            elif event["type"] == "websocket.receive":
                await send({"type": "websocket.send", "text": event.get("text")})
            else:
                return
