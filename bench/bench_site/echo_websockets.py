"""The other ceiling: the ``websockets`` library's own server on uvloop, echoing every frame.

Run as ``python -m bench_site.echo_websockets PORT``.
"""

import sys

import uvloop
from websockets.asyncio.server import serve


async def echo(ws):
    """Send each message back until the client closes."""
    async for message in ws:
        await ws.send(message)


async def main(port: int) -> None:
    """Serve on 127.0.0.1:``port`` until killed."""
    async with serve(echo, "127.0.0.1", port, compression=None, ping_interval=None) as server:
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1])))
