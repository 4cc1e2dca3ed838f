// End-to-end test of `wsproxy --ui`: headless Chromium (Debian's package,
// driven by playwright-core) opens the live view and the demo page of the
// embedded echo server, sends text and binary from the demo page; two raw
// TCP clients send what a browser cannot: a ping, and a frame with RSV2 set
// (a violation). The view must show the handshake with its
// Sec-WebSocket-Accept, the masked client messages and the echoes in order
// (compressed: RSV1 frames, messages shown inflated),
// the direction filter hiding client frames, the pong's round trip and the
// violation highlighted with its RFC section. Screenshots go to SHOT_DIR.
//
//   node ui.mjs DEMO_PAGE_URL VIEW_URL SHOT_DIR
import { randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import net from "node:net";
import { chromium } from "playwright-core";

const [demoUrl, viewUrl, shotDir] = process.argv.slice(2);
if (!demoUrl || !viewUrl || !shotDir) {
  console.error("usage: node ui.mjs DEMO_PAGE_URL VIEW_URL SHOT_DIR");
  process.exit(2);
}
const proxy = new URL(demoUrl);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const TIMEOUT = 10_000;
const failures = [];
let passed = 0;

// The view redraws on the next animation frame after a filter changes:
// wait for two, so the count is of what the filter shows.
async function rendered(page) {
  await page.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done))));
}

function check(what, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok: ${what}`);
  } else {
    failures.push(what);
    console.error(`FAILED: ${what} ${detail}`);
  }
}

// A client frame: FIN, the given RSV bits and opcode, masked (RFC 6455 §5.3).
function clientFrame(opcode, payload, rsv = 0) {
  const key = randomBytes(4);
  const body = Buffer.from(payload);
  if (body.length > 125) throw new Error("short frames only");
  const masked = body.map((b, i) => b ^ key[i % 4]);
  return Buffer.concat([Buffer.from([0x80 | rsv | opcode, 0x80 | body.length]), key, masked]);
}

// A raw TCP client through the proxy: handshake to `path`, then `frames`;
// resolves with everything it read once `done(bytes)` says so (or the
// server closes), rejects after TIMEOUT.
function rawClient(path, frames, done) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(Number(proxy.port), proxy.hostname);
    let got = Buffer.alloc(0);
    let upgraded = false;
    const timer = setTimeout(() => { sock.destroy(); reject(new Error(`raw client ${path}: timed out; read ${JSON.stringify(got.toString("latin1"))}`)); }, TIMEOUT);
    const finish = () => { clearTimeout(timer); sock.destroy(); resolve(got); };
    sock.on("connect", () => {
      sock.write(`GET ${path} HTTP/1.1\r\nHost: ${proxy.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
    sock.on("data", (d) => {
      got = Buffer.concat([got, d]);
      if (!upgraded && got.includes("\r\n\r\n")) {
        upgraded = true;
        if (!got.toString("latin1").startsWith("HTTP/1.1 101")) { finish(); return; }
        for (const f of frames) sock.write(f);
      }
      if (upgraded && done(got.subarray(got.indexOf("\r\n\r\n") + 4))) finish();
    });
    sock.on("close", finish);
    sock.on("error", (e) => { clearTimeout(timer); reject(e); });
  });
}

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const view = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  await view.goto(viewUrl);
  await view.locator("#status.open").waitFor({ timeout: TIMEOUT });
  check("the view's event stream is open", true);

  // The demo page: a text message through its form, a binary one through
  // its socket (captured as it is made: the page has no binary button).
  const demo = await browser.newPage();
  await demo.addInitScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) { super(...args); window.__sockets.push(this); }
    };
  });
  await demo.goto(demoUrl);
  await demo.locator("#state.open").waitFor({ timeout: TIMEOUT });
  const text = `hello view ${Date.now()}`;
  await demo.fill("#message", text);
  await demo.click("#send");
  await demo.locator(".echo", { hasText: text }).waitFor({ timeout: TIMEOUT });
  await demo.evaluate(() => window.__sockets.at(-1).send(new Uint8Array([0x00, 0x01, 0x7f, 0x80, 0xff, 0x41, 0x42]).buffer));

  // The demo's connection in the view.
  await view.locator("#conns tbody tr", { hasText: "/echo" }).first().click();
  await view.locator('.ev[data-event=frame][data-from=upstream][data-opcode=binary]').waitFor({ timeout: TIMEOUT });
  const response = await view.textContent("#hs-response");
  check("the handshake response shows Sec-WebSocket-Accept", /101 Switching Protocols[\s\S]*Sec-WebSocket-Accept: [A-Za-z0-9+/]{27}=/i.test(response), response);
  const request = await view.textContent("#hs-request");
  check("the handshake request shows Sec-WebSocket-Key", /GET \/echo HTTP\/1\.1[\s\S]*Sec-WebSocket-Key: /i.test(request), request);
  await view.locator("#accept-check", { hasText: "matches the key" }).waitFor({ timeout: TIMEOUT });
  check("the view checks the accept value against the key", true);

  // The embedded echo server accepts Chromium's permessage-deflate offer:
  // frames carry compressed bytes (RSV1), message rows the inflated data.
  const rows = await view.$$eval(".ev[data-event=frame], .ev[data-event=message]", (rows) => rows.map((r) => ({
    event: r.dataset.event, from: r.dataset.from, opcode: r.dataset.opcode, text: r.textContent,
    rsv1: [...r.querySelectorAll(".tag.on")].some((t) => t.textContent === "RSV1") })));
  const at = (from, kind, pred) => rows.findIndex((f) => f.event === "message" && f.from === from &&
    f.text.includes(`${kind} message`) && pred(f.text));
  const sentText = at("client", "text", (t) => t.includes(text));
  const echoText = at("upstream", "text", (t) => t.includes(text));
  const hex = "00 01 7f 80 ff 41 42";
  const sentBin = at("client", "binary", (t) => t.includes(hex));
  const echoBin = at("upstream", "binary", (t) => t.includes(hex) && t.includes("....AB"));
  check("client text message, its echo, client binary message, its echo, in that order",
    sentText >= 0 && sentText < echoText && echoText < sentBin && sentBin < echoBin,
    JSON.stringify({ sentText, echoText, sentBin, echoBin, rows }));
  const data = rows.filter((f) => f.event === "frame" && (f.opcode === "text" || f.opcode === "binary"));
  check("client frames masked, the echoes unmasked, all compressed (RSV1)",
    data.length >= 4 && data.every((f) => f.rsv1 && (f.from === "client" ? /mask [0-9a-f]{8}/.test(f.text) : f.text.includes("unmasked"))),
    JSON.stringify(data));
  check("compressed messages shown inflated, with both sizes",
    [sentText, echoText, sentBin, echoBin].every((i) => i >= 0 && /compressed \d+ B → inflated \d+ B/.test(rows[i].text)),
    JSON.stringify(rows));

  // The direction filter hides the client's frames.
  await view.selectOption("#f-dir", "upstream");
  await rendered(view);
  const clientRows = await view.locator(".ev[data-from=client]").count();
  const upstreamRows = await view.locator(".ev[data-from=upstream]").count();
  check("the upstream filter hides every client row", clientRows === 0 && upstreamRows >= 2, `client ${clientRows}, upstream ${upstreamRows}`);
  await view.selectOption("#f-dir", "");
  await rendered(view);
  check("clearing the filter shows them again", (await view.locator(".ev[data-from=client]").count()) >= 2);
  await view.screenshot({ path: `${shotDir}/ui-view.png` });

  // A ping (browsers cannot send one): the echo server's pong, with its round trip.
  const isPong = (b) => b.includes(Buffer.from([0x8a]));
  await rawClient("/raw-ping", [clientFrame(0x9, "are you there?")], isPong);
  await view.locator("#conns tbody tr", { hasText: "/raw-ping" }).first().click();
  await view.locator(".ev[data-from=client][data-opcode=ping]", { hasText: "are you there?" }).waitFor({ timeout: TIMEOUT });
  await view.locator(".ev[data-from=upstream][data-opcode=pong]", { hasText: "round trip" }).waitFor({ timeout: TIMEOUT });
  check("a raw client's ping and the pong with its round trip", true);

  // A violation: RSV2 without an extension that defines it (RFC 6455 §5.2).
  await rawClient("/raw-violation", [clientFrame(0x1, "bad bits", 0x20)], () => false);
  await view.locator("#conns tbody tr", { hasText: "/raw-violation" }).first().click();
  const violation = view.locator(".ev.violation[data-from=client]");
  await violation.first().waitFor({ timeout: TIMEOUT });
  const vtext = await violation.first().textContent();
  const href = await violation.first().locator("a.rfc").getAttribute("href");
  check("the violation is highlighted with its rule and RFC section",
    vtext.includes("reserved_bit_set") && vtext.includes("RFC 6455 §5.2") && /rfc6455#section-5\.2$/.test(href || ""), `${vtext} ${href}`);
  const bg = await violation.first().evaluate((e) => getComputedStyle(e).backgroundColor);
  check("the violation row stands out", bg !== "rgba(0, 0, 0, 0)", bg);
  const listed = await view.locator("#conns tbody tr", { hasText: "/raw-violation" }).first().locator("td.bad").textContent();
  check("the connection list counts it", Number(listed) >= 1, listed);
  await view.check("#f-violations");
  await rendered(view);
  const others = await view.locator(".ev:not(.violation):not(.ui)").count();
  check("violations only shows nothing else", others === 0, `${others} other rows`);
  await view.screenshot({ path: `${shotDir}/ui-violation.png` });

  // The README's picture: the demo's connection from the top.
  await view.uncheck("#f-violations");
  await view.uncheck("#follow");
  await view.locator("#conns tbody tr", { hasText: "/echo" }).first().click();
  await view.setViewportSize({ width: 1280, height: 860 });
  await view.evaluate(() => { document.getElementById("detail").scrollTop = 0; });
  await view.screenshot({ path: `${shotDir}/ui-readme.png` });
} catch (e) {
  failures.push(String(e));
  console.error(`browser: ${e}`);
} finally {
  await browser.close();
}
console.log(`browser ui: ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
