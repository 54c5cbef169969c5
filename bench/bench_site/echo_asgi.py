"""The ceiling under uvicorn: a bare ASGI WebSocket app that echoes every text frame."""


async def app(scope, receive, send):
    """Accept, then send each text frame back until the client disconnects."""
    if scope["type"] != "websocket":
        return
    while True:
        event = await receive()
        kind = event["type"]
        if kind == "websocket.receive":
            await send({"type": "websocket.send", "text": event.get("text")})
        elif kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        else:
            return
