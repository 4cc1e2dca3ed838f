// Node `ws` client for wsproxy's --fault tests (tests/faults.rs).
//
//   node fault_peer.mjs echo URL N
//       Sends N text messages ("message 1", ...) one at a time, each
//       answered before the next, until done or closed (at most 10 s).
//
// Prints one JSON object on stdout: the messages received and the close
// code and reason ws reports (1006 when no close frame came), and the
// error ws raised, if any. WSTOOLKIT_NODE_MODULES names the node_modules
// that holds ws (default: the one next to this file).
import { createRequire } from 'node:module';
import path from 'node:path';

const modules = process.env.WSTOOLKIT_NODE_MODULES;
const require = createRequire(modules ? path.join(path.dirname(modules), 'x.js') : import.meta.url);
const WebSocket = require('ws');

const [, , mode, url, count] = process.argv;
if (mode !== 'echo') {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
const n = Number(count);
const received = [];
let error = null;
const ws = new WebSocket(url);
const timer = setTimeout(() => {
  console.log(JSON.stringify({ received, closed: null, error: 'timed out' }));
  process.exit(1);
}, 10000);
let sent = 0;
const next = () => {
  sent += 1;
  if (sent > n) {
    ws.close(1000);
    return;
  }
  ws.send(`message ${sent}`);
};
ws.on('open', next);
ws.on('message', (data, isBinary) => {
  received.push(isBinary ? data.toString('hex') : data.toString('utf8'));
  next();
});
ws.on('error', (e) => {
  error = String(e.message);
});
ws.on('close', (code, reason) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ received, closed: { close_code: code, rcvd_reason: reason.toString('utf8') }, error }));
});
