// An Autobahn fuzzingserver driver for Node's `ws` client, shaped as ws's
// own test/autobahn.js: ask the case count, run each case echoing every
// message back, then ask the server to update its reports. The client
// offers permessage-deflate (ws's default for clients).
//
//   wsharness autobahn client --agent node-ws -- node ws_client.cjs
//   NODE_PATH=path/to/node_modules node ws_client.cjs ws://127.0.0.1:9001
//
// The base URL comes from the first argument, else from AUTOBAHN_URL.
'use strict';

const WebSocket = require('ws');

const base = (process.argv[2] || process.env.AUTOBAHN_URL || '').replace(/\/$/, '');
const agent = process.env.AUTOBAHN_AGENT || 'node-ws';
if (!base) {
  console.error('usage: node ws_client.cjs ws://HOST:PORT (or AUTOBAHN_URL)');
  process.exit(2);
}

function open(path) {
  return new WebSocket(`${base}${path}`, { maxPayload: 64 * 1024 * 1024 });
}

function caseCount() {
  return new Promise((resolve, reject) => {
    const ws = open('/getCaseCount');
    ws.on('message', (data) => resolve(Number(data.toString())));
    ws.on('error', reject);
  });
}

function runCase(n) {
  return new Promise((resolve) => {
    const ws = open(`/runCase?case=${n}&agent=${encodeURIComponent(agent)}`);
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('close', resolve);
    // The case's outcome is the fuzzingserver's to judge.
    ws.on('error', () => {});
  });
}

function updateReports() {
  return new Promise((resolve, reject) => {
    const ws = open(`/updateReports?agent=${encodeURIComponent(agent)}`);
    ws.on('close', resolve);
    ws.on('error', reject);
  });
}

(async () => {
  const count = await caseCount();
  for (let n = 1; n <= count; n++) await runCase(n);
  await updateReports();
  console.error(`${count} cases run as ${agent}`);
})().catch((e) => {
  console.error(`ws_client.cjs: ${e.message}`);
  process.exit(2);
});
