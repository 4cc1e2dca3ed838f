// End-to-end test of `wsproxy --ui`, in headless Chromium (Debian's
// package, driven by playwright-core) or Firefox (Debian's firefox-esr,
// driven by puppeteer-core over WebDriver BiDi): the same checks in both,
// through a small driver of each (`drivers` below).
//
// The browser opens the live view and the demo page of the embedded echo
// server, sends text and binary from the demo page; two raw TCP clients
// send what a browser cannot: a ping, and a frame with RSV2 set (a
// violation). The view must show the handshake with its
// Sec-WebSocket-Accept, the masked client messages and the echoes in order
// (compressed: RSV1 frames, messages shown inflated),
// the direction filter hiding client frames, the pong's round trip and the
// violation highlighted with its RFC section. Its downloads of what it
// shows must hold it: the JSON Lines, the HAR (valid HAR 1.2 with the
// messages in _webSocketMessages) and the pcapng (read back by
// `wsproxy read` when WSPROXY names the binary, and by tshark when it is
// installed). Screenshots and downloads go to OUT_DIR.
//
//   node ui.mjs DEMO_PAGE_URL VIEW_URL OUT_DIR [chromium|firefox]
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import net from "node:net";
import validate from "har-validator";

const [demoUrl, viewUrl, outDir, browserName = "chromium"] = process.argv.slice(2);
if (!demoUrl || !viewUrl || !outDir || !["chromium", "firefox"].includes(browserName)) {
  console.error("usage: node ui.mjs DEMO_PAGE_URL VIEW_URL OUT_DIR [chromium|firefox]");
  process.exit(2);
}
const proxy = new URL(demoUrl);
const TIMEOUT = 10_000;
// Screenshots and downloads of Chromium keep their old names (the README's
// picture is Chromium's); Firefox's are suffixed.
const suffix = browserName === "chromium" ? "" : `-${browserName}`;
const failures = [];
let passed = 0;

function check(what, ok, detail = "") {
  if (ok) {
    passed++;
    console.log(`ok (${browserName}): ${what}`);
  } else {
    failures.push(what);
    console.error(`FAILED (${browserName}): ${what} ${detail}`);
  }
}

// ---- the two drivers: a browser with pages that evaluate, wait, shoot ----

const drivers = {
  async chromium() {
    const { chromium } = await import("playwright-core");
    const browser = await chromium.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    return {
      version: browser.version(),
      close: () => browser.close(),
      async newPage(width, height) {
        const page = await browser.newPage({ viewport: { width, height } });
        return {
          initScript: (fn) => page.addInitScript(fn),
          goto: (url) => page.goto(url),
          evaluate: (fn, arg) => page.evaluate(fn, arg),
          waitFor: (fn, arg) => page.waitForFunction(fn, arg, { timeout: TIMEOUT }),
          screenshot: (path) => page.screenshot({ path }),
          setViewport: (w, h) => page.setViewportSize({ width: w, height: h }),
          front: () => page.bringToFront(),
        };
      },
    };
  },
  async firefox() {
    const { default: puppeteer } = await import("puppeteer-core");
    const browser = await puppeteer.launch({
      browser: "firefox",
      executablePath: process.env.FIREFOX || "/usr/bin/firefox-esr",
      headless: true,
    });
    return {
      version: await browser.version(),
      close: () => browser.close(),
      async newPage(width, height) {
        const page = await browser.newPage();
        await page.setViewport({ width, height });
        return {
          initScript: (fn) => page.evaluateOnNewDocument(fn),
          goto: (url) => page.goto(url),
          evaluate: (fn, arg) => page.evaluate(fn, arg),
          waitFor: (fn, arg) => page.waitForFunction(fn, { timeout: TIMEOUT }, arg),
          screenshot: (path) => page.screenshot({ path }),
          setViewport: (w, h) => page.setViewport({ width: w, height: h }),
          front: () => page.bringToFront(),
        };
      },
    };
  },
};

// ---- what the checks do in a page (the same DOM calls in both browsers) ----

// Waits until an element matching `sel` contains `text` (all of `text`'s
// parts when it is an array).
function waitText(page, sel, text) {
  return page.waitFor(({ sel, parts }) =>
    [...document.querySelectorAll(sel)].some((e) => parts.every((p) => e.textContent.includes(p))),
  { sel, parts: [].concat(text) });
}

// Clicks the connection whose row shows `text` (once it is listed).
async function selectConnection(page, text) {
  await waitText(page, "#conns tbody tr", text);
  await page.evaluate((text) => [...document.querySelectorAll("#conns tbody tr")].find((r) => r.textContent.includes(text)).click(), text);
}

// Sets a form control as a user would, and lets the view redraw: it
// redraws on the next animation frame after a filter changes, so wait for
// two before counting what it shows.
async function setControl(page, sel, value) {
  await page.evaluate(({ sel, value }) => new Promise((done) => {
    const e = document.querySelector(sel);
    if (typeof value === "boolean") e.checked = value;
    else e.value = value;
    e.dispatchEvent(new Event(e.type === "search" ? "input" : "change", { bubbles: true }));
    requestAnimationFrame(() => requestAnimationFrame(done));
  }), { sel, value });
}

const count = (page, sel) => page.evaluate((sel) => document.querySelectorAll(sel).length, sel);
const text = (page, sel) => page.evaluate((sel) => document.querySelector(sel)?.textContent ?? null, sel);

// The view's downloads are saved from a Blob (URL.createObjectURL and a
// link's click): keep each Blob and stop the link, so that what the page
// would save is read back here the same way in both browsers.
function keepDownloads() {
  window.__saved = [];
  const create = URL.createObjectURL.bind(URL);
  URL.createObjectURL = (blob) => { window.__saved.push(blob); return create(blob); };
  window.__names = [];
  document.addEventListener("click", (e) => {
    if (e.target instanceof HTMLAnchorElement && e.target.download) {
      window.__names.push(e.target.download);
      e.preventDefault();
    }
  }, true);
}

// Clicks a download button; resolves with the file's name and bytes.
async function download(page, button) {
  const before = await page.evaluate(() => window.__saved.length);
  await page.evaluate((button) => document.getElementById(button).click(), button);
  await page.waitFor((before) => window.__names.length > before, before);
  const { name, b64 } = await page.evaluate(async () => {
    const blob = window.__saved.at(-1);
    const bytes = new Uint8Array(await blob.arrayBuffer());
    let s = "";
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return { name: window.__names.at(-1), b64: btoa(s) };
  });
  return { name, bytes: Buffer.from(b64, "base64") };
}

// ---- raw clients: what a browser cannot send ----

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

// ---- the downloads, read back ----

const BINARY = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x41, 0x42];

async function checkDownloads(view, sent) {
  const jsonl = await download(view, "download");
  const events = jsonl.bytes.toString("utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l));
  // Compressed (the embedded echo accepts the browser's offer): the frames
  // hold deflated bytes, the messages the text as sent.
  check("the JSON Lines download holds the shown frames and messages",
    jsonl.name.endsWith(".jsonl") && events.some((e) => e.event === "frame" && e.from === "client" && e.rsv1) &&
      events.some((e) => e.event === "message" && e.from === "client" && e.preview === sent),
    `${jsonl.name}: ${events.length} events`);

  const har = await download(view, "download-har");
  writeFileSync(`${outDir}/ui-view${suffix}.har`, har.bytes);
  let doc;
  try { doc = JSON.parse(har.bytes.toString("utf8")); } catch (e) { doc = null; }
  const entry = doc?.log?.entries?.find((e) => Array.isArray(e._webSocketMessages));
  const messages = (entry?._webSocketMessages ?? []).map((m) => [m.type, m.opcode, m.data]);
  const bin = Buffer.from(BINARY).toString("base64");
  const want = [["send", 1, sent], ["receive", 1, sent], ["send", 2, bin], ["receive", 2, bin]];
  check("the HAR download parses and its _webSocketMessages are the demo's messages and echoes",
    har.name.endsWith(".har") && JSON.stringify(messages) === JSON.stringify(want) && /^ws:\/\/.*\/echo$/.test(entry?.request?.url ?? ""),
    JSON.stringify({ name: har.name, url: entry?.request?.url, messages }));
  let valid = true;
  try { await validate.har(doc); } catch (e) { valid = JSON.stringify(e.errors ?? String(e)); }
  check("the HAR download is valid HAR 1.2 (har-validator)", valid === true, valid);

  const pcap = await download(view, "download-pcapng");
  const pcapPath = `${outDir}/ui-view${suffix}.pcapng`;
  writeFileSync(pcapPath, pcap.bytes);
  check("the pcapng download is a pcapng file", pcap.name.endsWith(".pcapng") && pcap.bytes.readUInt32LE(0) === 0x0a0d0d0a,
    `${pcap.name}: ${pcap.bytes.subarray(0, 4).toString("hex")}`);
  if (process.env.WSPROXY) {
    const read = spawnSync(process.env.WSPROXY, ["read", pcapPath, "--format", "json"], { encoding: "utf8" });
    const decoded = read.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
    const frames = decoded.filter((e) => e.event === "frame").map((f) => [f.from, f.opcode, f.masked, f.rsv1]);
    const messages = decoded.filter((e) => e.event === "message").map((m) => [m.from, m.kind, m.compressed, m.preview]);
    const hex = Buffer.from(BINARY).toString("hex");
    const wantFrames = [["client", "text", true, true], ["upstream", "text", false, true],
                        ["client", "binary", true, true], ["upstream", "binary", false, true]];
    const wantMessages = [["client", "text", true, sent], ["upstream", "text", true, sent],
                          ["client", "binary", true, hex], ["upstream", "binary", true, hex]];
    check("`wsproxy read` reads the pcapng back into the shown frames, masked and compressed as they were, and inflates them",
      read.status === 0 && JSON.stringify(frames) === JSON.stringify(wantFrames) && JSON.stringify(messages) === JSON.stringify(wantMessages),
      `${read.stderr} ${JSON.stringify({ frames, messages })}`);
  } else {
    console.log("skipped: `wsproxy read` of the pcapng (WSPROXY is not set)");
  }
  if (spawnSync("tshark", ["--version"]).status === 0) {
    const server = events.find((e) => e.event === "open")?.upstream?.split(":").at(-1);
    const t = spawnSync("tshark", ["-r", pcapPath, "-d", `tcp.port==${server},http`, "-Y", "websocket",
      "-T", "fields", "-e", "websocket.opcode", "-e", "websocket.mask"], { encoding: "utf8" });
    const rows = t.stdout.split("\n").filter(Boolean).map((l) => l.split("\t"));
    check("tshark dissects the pcapng's WebSocket frames (text and binary, client masked)",
      t.status === 0 && JSON.stringify(rows.map((r) => r[0])) === JSON.stringify(["1", "1", "2", "2"]) &&
      rows[0][1] === "1" && rows[1][1] === "0", `${t.stderr} ${JSON.stringify(rows)}`);
  } else {
    console.log("skipped: tshark's reading of the pcapng (tshark is not installed)");
  }
}

// ---- the checks ----

const browser = await drivers[browserName]();
console.log(`${browserName} ${browser.version}`);
try {
  const view = await browser.newPage(1500, 950);
  await view.initScript(keepDownloads);
  await view.goto(viewUrl);
  await view.waitFor(() => document.querySelector("#status.open") !== null);
  check("the view's event stream is open", true);

  // The demo page: a text message through its form, a binary one through
  // its socket (captured as it is made: the page has no binary button).
  const demo = await browser.newPage(1000, 700);
  await demo.initScript(() => {
    const Native = window.WebSocket;
    window.__sockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) { super(...args); window.__sockets.push(this); }
    };
  });
  await demo.goto(demoUrl);
  await demo.waitFor(() => document.querySelector("#state.open") !== null);
  const sent = `hello view ${browserName} ${Date.now()}`;
  await demo.evaluate((sent) => {
    document.getElementById("message").value = sent;
    document.getElementById("send").click();
  }, sent);
  await waitText(demo, ".echo", sent);
  await demo.evaluate((bytes) => window.__sockets.at(-1).send(new Uint8Array(bytes).buffer), BINARY);

  // The demo's connection in the view, in the front tab: Firefox draws no
  // animation frames in a background tab, and the view draws on them.
  await view.front();
  await selectConnection(view, "/echo");
  await view.waitFor(() => document.querySelector(".ev[data-event=frame][data-from=upstream][data-opcode=binary]") !== null);
  const response = await text(view, "#hs-response");
  check("the handshake response shows Sec-WebSocket-Accept", /101 Switching Protocols[\s\S]*Sec-WebSocket-Accept: [A-Za-z0-9+/]{27}=/i.test(response), response);
  const request = await text(view, "#hs-request");
  check("the handshake request shows Sec-WebSocket-Key", /GET \/echo HTTP\/1\.1[\s\S]*Sec-WebSocket-Key: /i.test(request), request);
  await waitText(view, "#accept-check", "matches the key");
  check("the view checks the accept value against the key", true);

  // The embedded echo server accepts the browser's permessage-deflate
  // offer: frames carry compressed bytes (RSV1), message rows the inflated data.
  const rows = await view.evaluate(() => [...document.querySelectorAll(".ev[data-event=frame], .ev[data-event=message]")].map((r) => ({
    event: r.dataset.event, from: r.dataset.from, opcode: r.dataset.opcode, text: r.textContent,
    rsv1: [...r.querySelectorAll(".tag.on")].some((t) => t.textContent === "RSV1") })));
  const at = (from, kind, pred) => rows.findIndex((f) => f.event === "message" && f.from === from &&
    f.text.includes(`${kind} message`) && pred(f.text));
  const sentText = at("client", "text", (t) => t.includes(sent));
  const echoText = at("upstream", "text", (t) => t.includes(sent));
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
  await setControl(view, "#f-dir", "upstream");
  const clientRows = await count(view, ".ev[data-from=client]");
  const upstreamRows = await count(view, ".ev[data-from=upstream]");
  check("the upstream filter hides every client row", clientRows === 0 && upstreamRows >= 2, `client ${clientRows}, upstream ${upstreamRows}`);
  await setControl(view, "#f-dir", "");
  check("clearing the filter shows them again", (await count(view, ".ev[data-from=client]")) >= 2);
  await view.screenshot(`${outDir}/ui-view${suffix}.png`);

  // What is shown, downloaded: everything of the demo's connection…
  await checkDownloads(view, sent).catch((e) => check("the downloads", false, String(e)));
  // …or what a filter leaves: the upstream's messages only.
  await setControl(view, "#f-dir", "upstream");
  try {
    const har = JSON.parse((await download(view, "download-har")).bytes.toString("utf8"));
    const types = har.log.entries.flatMap((e) => e._webSocketMessages ?? []).map((m) => m.type);
    check("a filtered HAR download holds only what the filter shows", types.length === 2 && types.every((t) => t === "receive"), JSON.stringify(types));
  } catch (e) {
    check("a filtered HAR download holds only what the filter shows", false, String(e));
  }
  await setControl(view, "#f-dir", "");

  // A busy connection, its oldest events dropped by the page (with
  // --ui-per-conn lowered to 6 for it): its opening events stay, as the
  // proxy keeps them, so the HAR still has its upgrade.
  try {
    const kinds = await view.evaluate(() => {
      const saved = limits;
      limits = { ...limits, per_conn: 6 };
      const conn = 1e9, ts = "2026-01-01T00:00:00Z";
      ingest({ ts, conn, event: "open", client: "127.0.0.1:5000", upstream: "localhost:9001" });
      ingest({ ts, conn, event: "handshake_request", method: "GET", target: "/busy", version: "HTTP/1.1",
        headers: [{ name: "Host", value: "localhost:9001" }, { name: "Upgrade", value: "websocket" }] });
      ingest({ ts, conn, event: "handshake_response", status: 101, reason: "Switching Protocols", version: "HTTP/1.1",
        headers: [{ name: "Upgrade", value: "websocket" }], protocol: null, extensions: [], upgraded: true });
      for (let i = 0; i < 20; i++) {
        ingest({ ts, conn, event: "message", from: "client", kind: "text", len: 2, fragments: 1, compressed: false,
          preview: `m${i}`, preview_encoding: "text", preview_truncated: false });
      }
      limits = saved;
      selected = conn;
      return conns.get(conn).events.map((e) => e.event);
    });
    check("a busy connection keeps its opening events in the page", JSON.stringify(kinds) ===
      JSON.stringify(["open", "handshake_request", "handshake_response", "message", "message", "message"]), JSON.stringify(kinds));
    const har = JSON.parse((await download(view, "download-har")).bytes.toString("utf8"));
    const entry = har.log.entries[0];
    const data = (entry?._webSocketMessages ?? []).map((m) => m.data);
    check("its HAR download has its upgrade and its newest messages",
      har.log.entries.length === 1 && entry.request.url === "ws://localhost:9001/busy" && JSON.stringify(data) === '["m17","m18","m19"]',
      JSON.stringify(har.log.entries));
  } catch (e) {
    check("a busy connection keeps its opening events", false, String(e));
  } finally {
    await view.evaluate(() => {
      totalEvents -= conns.get(1e9)?.events.length ?? 0;
      conns.delete(1e9);
      selected = null;
    });
  }

  // A ping (browsers cannot send one): the echo server's pong, with its round trip.
  const isPong = (b) => b.includes(Buffer.from([0x8a]));
  await rawClient("/raw-ping", [clientFrame(0x9, "are you there?")], isPong);
  await selectConnection(view, "/raw-ping");
  await waitText(view, ".ev[data-from=client][data-opcode=ping]", "are you there?");
  await waitText(view, ".ev[data-from=upstream][data-opcode=pong]", "round trip");
  check("a raw client's ping and the pong with its round trip", true);

  // A violation: RSV2 without an extension that defines it (RFC 6455 §5.2).
  await rawClient("/raw-violation", [clientFrame(0x1, "bad bits", 0x20)], () => false);
  await selectConnection(view, "/raw-violation");
  await view.waitFor(() => document.querySelector(".ev.violation[data-from=client]") !== null);
  const violation = await view.evaluate(() => {
    const v = document.querySelector(".ev.violation[data-from=client]");
    return { text: v.textContent, href: v.querySelector("a.rfc")?.getAttribute("href") ?? "", bg: getComputedStyle(v).backgroundColor };
  });
  check("the violation is highlighted with its rule and RFC section",
    violation.text.includes("reserved_bit_set") && violation.text.includes("RFC 6455 §5.2") && /rfc6455#section-5\.2$/.test(violation.href),
    JSON.stringify(violation));
  check("the violation row stands out", !["rgba(0, 0, 0, 0)", "transparent"].includes(violation.bg), violation.bg);
  const listed = await view.evaluate(() => [...document.querySelectorAll("#conns tbody tr")]
    .find((r) => r.textContent.includes("/raw-violation"))?.querySelector("td.bad")?.textContent);
  check("the connection list counts it", Number(listed) >= 1, listed);
  await setControl(view, "#f-violations", true);
  const others = await count(view, ".ev:not(.violation):not(.ui)");
  check("violations only shows nothing else", others === 0, `${others} other rows`);
  await view.screenshot(`${outDir}/ui-violation${suffix}.png`);

  // The README's picture: the demo's connection from the top.
  await setControl(view, "#f-violations", false);
  await setControl(view, "#follow", false);
  await selectConnection(view, "/echo");
  await view.setViewport(1280, 860);
  await view.evaluate(() => new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(() => {
    document.getElementById("detail").scrollTop = 0;
    done();
  }))));
  await view.screenshot(`${outDir}/ui-readme${suffix}.png`);
} catch (e) {
  failures.push(String(e));
  console.error(`${browserName}: ${e}`);
} finally {
  await browser.close();
}
console.log(`browser ui (${browserName}): ${passed} passed, ${failures.length} failed`);
process.exit(failures.length ? 1 : 0);
