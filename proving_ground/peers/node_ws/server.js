// A peer for `make bench-clients` (proving_ground/bench_clients.py): the websocket-shootout
// protocol on the npm `ws` package with no framework, one process, as the shootout's Node
// entry. "echo" comes back to the sender; "broadcast" goes to every client, then a
// "broadcastResult" to the sender.
"use strict";
const { WebSocketServer, WebSocket } = require("ws");

const port = Number(process.argv[2]);
// Compression off, as on the stack (WS_PER_MESSAGE_DEFLATE=0).
const server = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate: false });

server.on("connection", (socket) => {
  socket.on("message", (data) => {
    const message = JSON.parse(data);
    if (message.type === "echo") {
      socket.send(JSON.stringify({ type: "echo", payload: message.payload }));
    } else if (message.type === "broadcast") {
      const frame = JSON.stringify({ type: "broadcast", payload: message.payload });
      for (const client of server.clients) {
        if (client.readyState === WebSocket.OPEN) client.send(frame);
      }
      socket.send(
        JSON.stringify({
          type: "broadcastResult",
          payload: message.payload,
          listenerCount: server.clients.size,
        }),
      );
    }
  });
});
server.on("listening", () => console.log(`listening on ${port}`));
