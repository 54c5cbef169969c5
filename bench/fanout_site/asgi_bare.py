"""A bare ASGI fan-out app: no Django, no Channels, no validation; the floor under uvicorn.

Subscribers connect to ``/ws/``; the publisher (``/ws/?pub=1``) sends a text frame and the same
``websocket.send`` event, carrying that text unchanged, is handed to every subscriber's ``send``.
It measures what uvicorn, the ``websockets`` framing and the kernel cost per delivery, so the
channelbus numbers can be read against it.
"""

subscribers: set = set()


async def application(scope, receive, send):
    """One WebSocket: a subscriber waits for the disconnect; the publisher's frames go to everyone."""
    if scope["type"] != "websocket":
        return
    if (await receive())["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    publisher = b"pub=1" in scope.get("query_string", b"")
    if not publisher:
        subscribers.add(send)
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            if publisher and event.get("text") is not None:
                out = {"type": "websocket.send", "text": event["text"]}
                for subscriber in tuple(subscribers):
                    await subscriber(out)
    finally:
        subscribers.discard(send)
