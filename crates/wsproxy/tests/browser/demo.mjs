// End-to-end: headless Chromium (Debian's package, driven by playwright-core)
// opens the demo page through wsproxy and its embedded echo upstream, sends a
// message, sees it echoed on the page; then the proxy's JSON log must show
// that permessage-deflate was agreed, the browser's masked compressed (RSV1)
// frame and the unmasked compressed echo, both inflated to the message. With a HAR file (the
// proxy's --har), the HAR must validate against the HAR 1.2 schema
// (har-validator) and its _webSocketMessages must be what Chromium itself
// reported through the DevTools protocol (Network.webSocketFrameSent and
// webSocketFrameReceived, which DevTools builds its own HAR export from);
// the page's own GET must be a plain entry with its headers.
//
//   node demo.mjs http://127.0.0.1:PORT/ /path/to/events.jsonl [/path/to/proxy.har]
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";
import validate from "har-validator";

const [pageUrl, logPath, harPath] = process.argv.slice(2);
if (!pageUrl || !logPath) {
  console.error("usage: node demo.mjs PAGE_URL EVENTS_JSONL [HAR]");
  process.exit(2);
}
const message = `hello from chromium ${Date.now()}`;
// What Chromium reports of the WebSocket: [type, opcode, data] per message.
const reported = [];
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const page = await browser.newPage();
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("Network.enable");
  for (const [event, type] of [["Network.webSocketFrameSent", "send"], ["Network.webSocketFrameReceived", "receive"]]) {
    cdp.on(event, (e) => {
      // Data messages only (1 text, 2 binary), as DevTools' HAR has them.
      if (e.response.opcode === 1 || e.response.opcode === 2) {
        reported.push([type, e.response.opcode, e.response.payloadData]);
      }
    });
  }
  await page.goto(pageUrl);
  await page.locator("#state.open").waitFor({ timeout: 10_000 });
  for (const m of [message, `${message} (again) ✓`]) {
    await page.fill("#message", m);
    await page.click("#send");
    await page.locator(".echo", { hasText: m }).waitFor({ timeout: 10_000 });
  }
  console.log(`browser: the page shows the echo of ${JSON.stringify(message)}`);
  await page.click("#close");
  await page.locator("#state.closed").waitFor({ timeout: 10_000 });
  console.log(`browser: closed: ${await page.textContent("#state")}`);
} catch (e) {
  console.error(`browser: ${e}`);
  failed = true;
} finally {
  await browser.close();
}

// The proxy writes its events within a few milliseconds; wait for them, bounded.
function events() {
  try {
    return readFileSync(logPath, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  } catch {
    return [];
  }
}
const deadline = Date.now() + 10_000;
let sent, echoed, closed, sentFrame, echoFrame, agreed;
while (Date.now() < deadline) {
  const all = events();
  // Chromium offers permessage-deflate and the embedded echo server (wsproto
  // engine) accepts it: the messages travel compressed, and the proxy logs
  // them inflated (RFC 7692).
  agreed = all.find((e) => e.event === "handshake_response" && (e.extensions || []).some((x) => x.startsWith("permessage-deflate")));
  const messages = all.filter((e) => e.event === "message" && e.preview === message);
  const inflated = (e) => e.compressed === true && e.decompressed_len === Buffer.byteLength(message);
  sent = messages.find((e) => e.from === "client" && inflated(e));
  echoed = messages.find((e) => e.from === "upstream" && inflated(e));
  const frames = all.filter((e) => e.event === "frame" && e.opcode === "text" && e.rsv1 === true);
  sentFrame = frames.find((e) => e.from === "client" && e.masked === true && /^[0-9a-f]{8}$/.test(e.mask));
  echoFrame = frames.find((e) => e.from === "upstream" && e.masked === false);
  closed = all.find((e) => e.event === "close" && e.from === "client" && e.code === 1000);
  if (agreed && sent && echoed && sentFrame && echoFrame && closed) break;
  await new Promise((r) => setTimeout(r, 50));
}
if (!agreed) { console.error("log: the echo server's 101 did not agree to permessage-deflate"); failed = true; }
if (!sentFrame) { console.error("log: no masked compressed (RSV1) text frame from the client"); failed = true; }
if (!echoFrame) { console.error("log: no unmasked compressed (RSV1) text frame from upstream"); failed = true; }
if (!sent) { console.error("log: no compressed client message inflated to the message"); failed = true; }
if (!echoed) { console.error("log: no compressed upstream message inflated to the echo"); failed = true; }
if (!closed) { console.error("log: no close 1000 from the browser"); failed = true; }
if (!failed) {
  console.log(`log: ${agreed.extensions.join(", ")} agreed; client frame masked with ${sentFrame.mask}, RSV1, ` +
    `${sent.len} B inflated to ${sent.decompressed_len} B; the echo RSV1, ${echoed.len} B inflated to ` +
    `${echoed.decompressed_len} B; close ${closed.code} from the browser`);
}

if (harPath) {
  // The entry is written when the connection ends: wait for it, bounded.
  let doc, entry;
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    try {
      doc = JSON.parse(readFileSync(harPath, "utf8"));
      entry = doc.log.entries.find((e) => e._resourceType === "websocket");
    } catch {
      doc = undefined;
    }
    if (entry) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  if (!entry) {
    console.error(`har: no websocket entry in ${harPath}`);
    failed = true;
  } else {
    try {
      await validate.har(doc);
      console.log(`har: valid HAR 1.2 (har-validator), ${doc.log.entries.length} entries`);
    } catch (e) {
      console.error(`har: not valid HAR 1.2: ${JSON.stringify(e.errors ?? String(e))}`);
      failed = true;
    }
    // The page itself came through the proxy as a plain exchange: its
    // entry has the request's and the response's headers.
    const pageEntry = doc.log.entries.find((e) => e.request.url === pageUrl);
    const hasHost = pageEntry && pageEntry.request.headers.some((h) => h.name.toLowerCase() === "host");
    const hasType = pageEntry && pageEntry.response.headers.some((h) => h.name.toLowerCase() === "content-type");
    if (!pageEntry || pageEntry.response.status !== 200 || !hasHost || !hasType) {
      console.error(`har: the page's GET ${pageUrl} is not an entry with status 200 and its headers: ${JSON.stringify(pageEntry)}`);
      failed = true;
    } else {
      console.log(`har: the page's GET has its ${pageEntry.request.headers.length} request and ${pageEntry.response.headers.length} response headers`);
    }
    const fromHar = entry._webSocketMessages.map((m) => [m.type, m.opcode, m.data]);
    if (JSON.stringify(fromHar) !== JSON.stringify(reported) || reported.length < 4) {
      console.error(`har: _webSocketMessages ${JSON.stringify(fromHar)} differ from Chromium's own report ${JSON.stringify(reported)}`);
      failed = true;
    } else {
      console.log(`har: ${fromHar.length} messages, the same as Chromium reported through the DevTools protocol`);
    }
  }
}
console.log(failed ? "browser e2e: 0 passed, 1 failed" : "browser e2e: 1 passed, 0 failed");
process.exit(failed ? 1 : 0);
