"""A peer for `make bench-clients` (proving_ground/experiments/bench_clients.py): the
websocket-shootout protocol on the `websockets` package with no framework, one process
on asyncio, as the shootout's single-process entries. "echo" comes back to the sender;
"broadcast" goes to every client, then a "broadcastResult" to the sender.

    python -m proving_ground.peers.websockets_server PORT
"""

import asyncio
import json
import sys

from websockets.asyncio.server import broadcast, serve


async def handler(socket):
    async for data in socket:
        message = json.loads(data)
        if message["type"] == "echo":
            await socket.send(json.dumps({"type": "echo", "payload": message["payload"]}))
        elif message["type"] == "broadcast":
            frame = json.dumps({"type": "broadcast", "payload": message["payload"]})
            broadcast(socket.server.connections, frame)
            result = {
                "type": "broadcastResult",
                "payload": message["payload"],
                "listenerCount": len(socket.server.connections),
            }
            await socket.send(json.dumps(result))


async def main(port: int) -> None:
    # Compression off, as on the stack (WS_PER_MESSAGE_DEFLATE=0).
    async with serve(handler, "127.0.0.1", port, compression=None) as server:
        print(f"listening on {port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
