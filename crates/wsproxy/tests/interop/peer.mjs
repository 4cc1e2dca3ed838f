// Node `ws` peers for the wsproxy interop tests (tests/interop.rs), with
// perMessageDeflate on (threshold 0: every message compressed).
//
//   node peer.mjs server [--deflate MODE]
//       An echo server on 127.0.0.1 (port 0); prints "listening on ws://ADDR"
//       on stderr.
//   node peer.mjs client URL DIR [--deflate MODE]
//       Sends the messages of DIR/messages.json (fragmented where it says
//       so), checks every echo byte for byte, prints the negotiated
//       Sec-WebSocket-Extensions on stdout; exit 0, or 1 on a mismatch.
//
// MODE: "default" (context takeover, 15-bit windows) or "no-context" (both
// no_context_takeover parameters and 10-bit windows).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

// `ws` from WSTOOLKIT_NODE_MODULES when set (as the tests pass it), else
// from the node_modules next to this script.
const modules = process.env.WSTOOLKIT_NODE_MODULES;
const require = createRequire(modules ? join(dirname(modules), "x.js") : import.meta.url);
const { WebSocket, WebSocketServer } = require("ws");

const args = process.argv.slice(2);
const role = args[0];
const mode = args.includes("--deflate") ? args[args.indexOf("--deflate") + 1] : "default";
const deflate =
  mode === "no-context"
    ? { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true, serverMaxWindowBits: 10, clientMaxWindowBits: 10 }
    : { threshold: 0 };

if (role === "server") {
  const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, perMessageDeflate: deflate, maxPayload: 64 << 20 });
  wss.on("listening", () => {
    const { address, port } = wss.address();
    process.stderr.write(`listening on ws://${address}:${port}\n`);
  });
  wss.on("connection", (ws) => {
    ws.on("message", (data, isBinary) => ws.send(data, { binary: isBinary }));
    // A client's protocol error: ws closes that connection (1002, 1007,
    // 1009) and emits "error", which without a listener would end the
    // whole server (Autobahn's cases 2.5 and on send such frames on purpose).
    ws.on("error", () => {});
  });
  process.on("SIGTERM", () => wss.close(() => process.exit(0)));
} else {
  const [url, dir] = [args[1], args[2]];
  const listing = JSON.parse(readFileSync(join(dir, "messages.json"), "utf8"));
  const messages = listing.map((m) => ({ ...m, data: readFileSync(join(dir, m.file)) }));
  const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 64 << 20 });
  const echoes = [];
  let waiting = null;
  ws.on("message", (data, isBinary) => {
    echoes.push({ data: Buffer.from(data), isBinary });
    if (waiting) waiting();
  });
  const nextEcho = () =>
    new Promise((resolve) => {
      if (echoes.length) return resolve(echoes.shift());
      waiting = () => {
        waiting = null;
        resolve(echoes.shift());
      };
    });
  ws.on("error", (e) => {
    console.error(`error: ${e.message}`);
    process.exit(1);
  });
  ws.on("upgrade", (res) => console.log(res.headers["sec-websocket-extensions"] || ""));
  ws.on("open", async () => {
    for (const [i, m] of messages.entries()) {
      const binary = m.kind === "binary";
      const size = Math.max(1, Math.ceil(m.data.length / m.fragments));
      const parts = [];
      for (let at = 0; at < m.data.length; at += size) parts.push(m.data.subarray(at, at + size));
      if (parts.length === 0) parts.push(m.data);
      parts.forEach((part, k) => ws.send(part, { binary, fin: k === parts.length - 1, compress: true }));
      const echo = await nextEcho();
      if (echo.isBinary !== binary || !echo.data.equals(m.data)) {
        console.error(`message ${i}: echo differs (${echo.data.length} vs ${m.data.length} bytes)`);
        process.exit(1);
      }
    }
    ws.close(1000, "done");
  });
  ws.on("close", () => process.exit(0));
}
