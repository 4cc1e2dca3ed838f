// A Node `ws` echo server for ci/bench.sh: every message back as it came.
// Usage: node echo.js [port]   (prints "listening on ws://ADDR" on stderr)
"use strict";
const { WebSocketServer } = require("ws");

const port = Number(process.argv[2] || 0);
const perMessageDeflate = process.env.WS_DEFLATE === "1";
const wss = new WebSocketServer({ host: "127.0.0.1", port, perMessageDeflate, maxPayload: 64 * 1024 * 1024 });
wss.on("listening", () => {
  const { address, port } = wss.address();
  process.stderr.write(`listening on ws://${address}:${port}\n`);
});
wss.on("connection", (ws) => {
  ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
});
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
