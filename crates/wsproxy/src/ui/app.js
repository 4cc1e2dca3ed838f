// wsproxy's live view: reads the proxy's events (the JSON Lines of
// `--format json`, documented in the README) from /events and shows them.
// Plain JavaScript, no dependencies: it is compiled into the binary.
"use strict";

const $ = (id) => document.getElementById(id);
const token = new URLSearchParams(location.search).get("token");
const conns = new Map();
let limits = { per_conn: 5000, total: 50000 };
let selected = null;
let userSelected = false;
let paused = false;
let pausedCount = 0;
let droppedForPage = 0;
let totalEvents = 0;
let renderQueued = false;
let listDirty = true;
let detailDirty = true;
const appendQueue = [];
// Rows kept in the page's list at once (the events stay in memory, bounded
// by --ui-per-conn; the download has them all).
const MAX_ROWS = 3000;
// A connection's first events of these kinds (at most PINNED) stay however
// many come after them, as the proxy keeps them (`is_pinned` and `PINNED`
// in ui/mod.rs): the handshake stays visible on a busy connection, and a
// download still has its upgrade and its addresses.
const PINNED_KINDS = new Set(["open", "handshake_request", "handshake_response", "interim_response", "http", "uninspected"]);
const PINNED = 8;

function connOf(id) {
  let c = conns.get(id);
  if (!c) {
    c = { id, client: "", target: "", state: "connecting", first: null, last: null,
          bytes: { client: 0, upstream: 0 }, frames: { client: 0, upstream: 0 },
          close: null, violations: 0, events: [], pinned: 0, req: null, res: null, evicted: 0, durationUs: null };
    conns.set(id, c);
  }
  return c;
}

function notice(text) {
  const n = $("notice");
  n.hidden = false;
  n.textContent = text;
}

// Drops a connection's oldest event that is not pinned (its oldest when
// all are).
function dropOldest(c) {
  if (c.events.length > c.pinned) c.events.splice(c.pinned, 1);
  else { c.events.shift(); c.pinned--; }
  c.evicted++;
  totalEvents--;
}

function ingest(ev) {
  if (ev.ui) {
    if (ev.ui === "hello") {
      limits = ev;
      if (ev.evicted > 0) notice(`${ev.evicted} older events were dropped by the proxy to stay within its bounds (--ui-per-conn ${ev.per_conn}, --ui-max-events ${ev.total})`);
      if (ev.skipped > 0) notice(`${ev.skipped} events never reached the view: it fell behind the traffic (the proxy never waits for it)`);
    } else if (ev.ui === "dropped") {
      droppedForPage += ev.events;
      notice(`${droppedForPage} events not shown: this page read too slowly and the proxy dropped them (it never waits for the view)`);
    } else if (ev.ui === "evicted") {
      connOf(ev.conn).evicted += ev.events;
    }
    return;
  }
  const c = connOf(ev.conn);
  // Pinned while only pinned events came before it.
  if (PINNED_KINDS.has(ev.event) && c.pinned === c.events.length && c.pinned < Math.min(PINNED, limits.per_conn)) c.pinned++;
  c.events.push(ev);
  totalEvents++;
  if (c.events.length > limits.per_conn) dropOldest(c);
  // The page keeps what the proxy keeps: at most `total` events, the
  // oldest connection's first, its pinned ones last (its row stays, with
  // its counters).
  while (totalEvents > limits.total) {
    let oldest = null;
    for (const o of conns.values()) if (o.events.length > 0) { oldest = o; break; }
    if (!oldest) break;
    dropOldest(oldest);
    if (oldest.id === selected) detailDirty = true;
  }
  c.first = c.first || ev.ts;
  c.last = ev.ts;
  switch (ev.event) {
    case "open": c.client = ev.client; c.state = "open"; break;
    case "handshake_request": c.req = ev; c.target = ev.target; c.state = "handshake"; break;
    case "handshake_response": c.res = ev; c.state = ev.upgraded ? "websocket" : `refused ${ev.status}`; break;
    case "http":
      // A kept-alive connection: its first exchange names it, the count says how many.
      c.exchanges = (c.exchanges || 0) + 1;
      if (!c.req) c.target = c.exchanges === 1 ? `${ev.method} ${ev.target}` : `${c.target.replace(/ \(\d+ requests\)$/, "")} (${c.exchanges} requests)`;
      c.state = `http ${ev.status ?? ""}`;
      break;
    case "frame": c.frames[ev.from]++; c.bytes[ev.from] += ev.len + ev.header_len; break;
    case "close": if (c.close === null && ev.code != null) c.close = ev.code; c.state = "closing"; break;
    case "violation": c.violations++; break;
    case "end": c.state = `ended: ${ev.reason}`; c.bytes = ev.bytes; c.frames = ev.frames; c.durationUs = ev.duration_us; break;
  }
  if (selected === null && !userSelected && ev.event === "handshake_response" && ev.upgraded) {
    selected = c.id;
    detailDirty = true;
  }
  if (ev.conn === selected) {
    if (paused) pausedCount++;
    else if (appendQueue.length < MAX_ROWS) appendQueue.push(ev);
    // A hidden tab draws no frames: past a screenful, redraw from the
    // kept events instead of queueing more.
    else { appendQueue.length = 0; detailDirty = true; }
  }
  listDirty = true;
  schedule();
}

function schedule() {
  if (!renderQueued) {
    renderQueued = true;
    requestAnimationFrame(render);
  }
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss://" : "ws://";
  const url = scheme + location.host + "/events" + (token ? "?token=" + encodeURIComponent(token) : "");
  const ws = new WebSocket(url);
  ws.onopen = () => {
    // The proxy sends everything it kept again: start afresh.
    conns.clear();
    totalEvents = 0;
    appendQueue.length = 0;
    detailDirty = listDirty = true;
    $("status").className = "open";
    $("status").textContent = "live";
    schedule();
  };
  ws.onmessage = (msg) => {
    for (const line of msg.data.split("\n")) {
      if (!line) continue;
      try { ingest(JSON.parse(line)); } catch (e) { console.error("bad event line", line, e); }
    }
  };
  ws.onclose = () => {
    $("status").className = "closed";
    $("status").textContent = "disconnected (retrying)";
    setTimeout(connect, 1000);
  };
}

// ---- rendering ----

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v;
    else if (k.startsWith("data-")) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / (1 << 20)).toFixed(1)} MiB`;
}

function durationOf(c) {
  if (c.durationUs !== null) return `${(c.durationUs / 1e6).toFixed(2)} s`;
  if (!c.first) return "";
  return `${((Date.parse(c.last) - Date.parse(c.first)) / 1000).toFixed(2)} s`;
}

function renderList() {
  const body = $("conns").tBodies[0];
  const rows = [];
  const ids = [...conns.keys()].sort((a, b) => b - a).slice(0, 500);
  for (const id of ids) {
    const c = conns.get(id);
    const tr = el("tr", { "data-conn": String(id), class: id === selected ? "selected" : "" },
      el("td", {}, String(id)), el("td", {}, c.client), el("td", { title: c.target }, c.target.slice(0, 40)),
      el("td", { class: c.state.startsWith("ended") ? "state-ended" : "state-open" }, c.state),
      el("td", {}, durationOf(c)),
      el("td", {}, `${fmtBytes(c.bytes.client)} / ${c.frames.client} fr`),
      el("td", {}, `${fmtBytes(c.bytes.upstream)} / ${c.frames.upstream} fr`),
      el("td", {}, c.close === null ? "" : String(c.close)),
      el("td", { class: c.violations ? "bad" : "" }, c.violations ? String(c.violations) : ""));
    tr.onclick = () => select(id);
    tr.tabIndex = 0;
    tr.onkeydown = (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); select(id); } };
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}

function select(id) {
  selected = id;
  userSelected = true;
  appendQueue.length = 0;
  pausedCount = 0;
  detailDirty = listDirty = true;
  schedule();
}

function headersText(first, headers) {
  return [first, ...headers.map((h) => `${h.name}: ${h.value}`)].join("\n");
}

function rfcLink(rfc) {
  const m = /RFC (\d+) §([\d.]+)/.exec(rfc || "");
  if (!m) return document.createTextNode(rfc || "");
  return el("a", { class: "rfc", href: `https://www.rfc-editor.org/rfc/rfc${m[1]}#section-${m[2]}`, target: "_blank", rel: "noopener" }, rfc);
}

function explainHandshake(c) {
  const box = $("hs-explain");
  box.replaceChildren();
  if (!c.req) return;
  const p = (...parts) => box.append(el("p", {}, ...parts));
  p("The client asks, in an ordinary HTTP/1.1 request, to switch this TCP connection to WebSocket: ",
    el("code", {}, "Upgrade: websocket"), " and ", el("code", {}, "Connection: Upgrade"),
    " (HTTP/1.1's upgrade mechanism; WebSocket needs HTTP/1.1 or later, ", rfcLink("RFC 6455 §4.1"), "). ",
    el("code", {}, "Sec-WebSocket-Key"), " is a random nonce, ", el("code", {}, "Sec-WebSocket-Version: 13"), " the protocol version.");
  if (!c.res) return;
  if (c.res.upgraded) {
    const accept = el("span", { id: "accept-check" });
    p("The server agrees with ", el("code", {}, "101 Switching Protocols"), ". Its ", el("code", {}, "Sec-WebSocket-Accept"),
      " is base64(SHA-1(key + \"258EAFA5-E914-47DA-95CA-C5AB0DC85B11\")): proof that it read this request as a WebSocket handshake (",
      rfcLink("RFC 6455 §4.2.2"), "). ", accept,
      " From the next byte on, both sides send frames (", rfcLink("RFC 6455 §5.2"), "): the client masks every frame with a fresh key (",
      rfcLink("RFC 6455 §5.3"), "), the server never does.",
      c.res.extensions.length ? ` Extensions agreed: ${c.res.extensions.join(", ")}` + (c.res.extensions.some((e) => e.startsWith("permessage-deflate")) ? " (compressed messages are shown inflated, with both sizes)." : ".") : "",
      c.res.protocol ? ` Subprotocol: ${c.res.protocol}.` : "");
    checkAccept(c, accept);
  } else {
    p(`The server answered ${c.res.status} ${c.res.reason}: no upgrade, the connection stays HTTP.`);
  }
}

async function checkAccept(c, span) {
  const key = c.req.headers.find((h) => h.name.toLowerCase() === "sec-websocket-key");
  const accept = c.res.headers.find((h) => h.name.toLowerCase() === "sec-websocket-accept");
  // crypto.subtle exists in secure contexts only (http://127.0.0.1 is one).
  if (!key || !accept || !crypto.subtle) return;
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(key.value + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"));
  const expected = btoa(String.fromCharCode(...new Uint8Array(digest)));
  span.textContent = expected === accept.value ? "Here it matches the key. " : `Here it does NOT match the key (expected ${expected}). `;
}

function renderHandshake(c) {
  $("hs-request").textContent = c.req
    ? headersText(`${c.req.method} ${c.req.target} ${c.req.version}`, c.req.headers) +
      (c.req.forwarded_target ? `\n\n(forwarded as ${c.req.forwarded_target})` : "") +
      (c.req.removed_headers ? `\n(not forwarded: ${c.req.removed_headers.join(", ")})` : "")
    : "(none: this connection has no WebSocket handshake)";
  $("hs-response").textContent = c.res ? headersText(`${c.res.version} ${c.res.status} ${c.res.reason}`, c.res.headers) : "(no response yet)";
  explainHandshake(c);
}

function hexDump(hex) {
  const lines = [];
  for (let i = 0; i < hex.length; i += 32) {
    const chunk = hex.slice(i, i + 32);
    const bytes = chunk.match(/../g) || [];
    const ascii = bytes.map((b) => { const n = parseInt(b, 16); return n >= 0x20 && n < 0x7f ? String.fromCharCode(n) : "."; }).join("");
    lines.push(`${(i / 2).toString(16).padStart(6, "0")}  ${bytes.join(" ").padEnd(47)}  ${ascii}`);
  }
  return lines.join("\n");
}

function payloadOf(ev) {
  if (ev.preview === undefined || (ev.preview === "" && !ev.len)) return null;
  let text;
  if (ev.preview_encoding === "hex") {
    text = hexDump(ev.preview);
  } else {
    text = ev.preview;
    const t = text.trim();
    if (!ev.preview_truncated && (t.startsWith("{") || t.startsWith("["))) {
      try { text = JSON.stringify(JSON.parse(t), null, 2); } catch { /* not JSON: as text */ }
    }
  }
  if (ev.preview_truncated) text += `\n… (preview cut; wsproxy --max-preview all shows everything)`;
  return el("pre", { class: "payload" }, text);
}

// A bit or property: `on` highlights what is unusual (a reserved bit set,
// a fragment), `set` shows it is present without alarm.
function tag(text, on, set = false) {
  return el("span", { class: on ? "tag on" : set ? "tag set" : "tag" }, text);
}

function fieldsOf(ev) {
  const f = [];
  switch (ev.event) {
    case "frame":
      f.push(el("b", {}, String(ev.opcode)), " ", tag(ev.fin ? "FIN" : "no FIN", !ev.fin, true),
        tag("RSV1", ev.rsv1), tag("RSV2", ev.rsv2), tag("RSV3", ev.rsv3),
        ev.masked ? tag(`mask ${ev.mask}`, false, true) : tag("unmasked", false, true),
        ` len ${ev.len} (+${ev.header_len} header) at byte ${ev.offset}`);
      if (ev.rtt_us !== undefined) f.push(el("span", { class: "rtt" }, ` round trip ${(ev.rtt_us / 1000).toFixed(3)} ms`));
      break;
    case "message":
      f.push(el("b", {}, `${ev.kind} message`), ` ${ev.len} B in ${ev.fragments} frame${ev.fragments === 1 ? "" : "s"}`);
      if (ev.compressed) f.push(` compressed ${ev.len} B → inflated ${ev.decompressed_len ?? "?"} B`);
      break;
    case "close":
      f.push(el("b", {}, "close"), ` ${ev.code ?? "(no code)"} ${ev.code_name ?? ""}`,
        ev.reason ? ` reason "${ev.reason}"` : "", ev.initiated ? " (closes first)" : " (answers the close)",
        ev.handshake_complete ? "; closing handshake complete" : "");
      break;
    case "violation":
      f.push(el("b", {}, `violation: ${ev.rule}`), " ", ev.message.replace(/ \(RFC [^)]*\)$/, ""), " (", rfcLink(ev.rfc), `) at byte ${ev.offset}`,
        ev.enforced ? " (enforced: connection ended)" : "", ev.injected ? " (injected by --fault)" : "");
      break;
    case "handshake_request":
      f.push(el("b", {}, "handshake request"), ` ${ev.method} ${ev.target} ${ev.version}`);
      break;
    case "handshake_response":
      f.push(el("b", {}, "handshake response"), ` ${ev.status} ${ev.reason}${ev.upgraded ? " (switched to WebSocket)" : ""}`);
      break;
    default: {
      const { ts, conn, event, from, ...rest } = ev;
      f.push(el("b", {}, event), " ", JSON.stringify(rest));
    }
  }
  return f;
}

function rowOf(ev) {
  const kind = ev.event === "frame" && ["ping", "pong", "close"].includes(ev.opcode) ? "control" : "";
  const li = el("li", { class: `ev ${ev.event} ${kind}`, "data-event": ev.event, "data-from": ev.from || "" },
    el("span", { class: "time" }, (ev.ts || "").slice(11, 26)),
    el("span", { class: "dir" }, ev.from === "client" ? "→ client" : ev.from === "upstream" ? "← upstream" : ""),
    el("span", { class: "fields" }, ...fieldsOf(ev)));
  if (ev.event === "frame" && ev.opcode) li.setAttribute("data-opcode", String(ev.opcode));
  const payload = payloadOf(ev);
  if (payload && (ev.event === "frame" || ev.event === "message")) li.append(payload);
  return li;
}

function filters() {
  return { dir: $("f-dir").value, kind: $("f-kind").value, text: $("f-text").value.toLowerCase(), violations: $("f-violations").checked };
}

function shows(ev, f) {
  if (f.violations && ev.event !== "violation") return false;
  if (f.dir && ev.from !== f.dir) return false;
  switch (f.kind) {
    case "frame": case "message": case "close": case "violation":
      if (ev.event !== f.kind) return false;
      break;
    case "control":
      if (!(ev.event === "frame" && ["ping", "pong", "close"].includes(ev.opcode))) return false;
      break;
  }
  if (f.text && !JSON.stringify(ev).toLowerCase().includes(f.text)) return false;
  return true;
}

function renderDetail() {
  const c = conns.get(selected);
  $("empty").hidden = !!c;
  $("conn-view").hidden = !c;
  if (!c) return;
  $("conn-title").textContent = `Connection #${c.id}: ${c.client} ${c.target}`;
  renderHandshake(c);
  const f = filters();
  const shown = c.events.filter((ev) => shows(ev, f));
  const list = $("events");
  const rows = shown.slice(-MAX_ROWS).map(rowOf);
  if (c.evicted > 0) rows.unshift(el("li", { class: "ev ui" }, `${c.evicted} earlier events of this connection were dropped to stay within the view's bounds`));
  if (shown.length > MAX_ROWS) rows.unshift(el("li", { class: "ev ui" }, `${shown.length - MAX_ROWS} earlier matching events not drawn (Download has them)`));
  list.replaceChildren(...rows);
  $("shown").textContent = `${shown.length} of ${c.events.length} events shown`;
  followScroll();
}

function appendRows() {
  const c = conns.get(selected);
  if (!c) return;
  const f = filters();
  const list = $("events");
  for (const ev of appendQueue) {
    if (ev.event === "handshake_request" || ev.event === "handshake_response") renderHandshake(c);
    if (shows(ev, f)) list.append(rowOf(ev));
  }
  while (list.childElementCount > MAX_ROWS) list.firstElementChild.remove();
  appendQueue.length = 0;
  $("shown").textContent = `${c.events.filter((ev) => shows(ev, f)).length} of ${c.events.length} events shown`;
  followScroll();
}

function followScroll() {
  if ($("follow").checked) {
    const pane = $("detail");
    pane.scrollTop = pane.scrollHeight;
  }
}

function render() {
  renderQueued = false;
  if (listDirty) renderList();
  listDirty = false;
  if (detailDirty) {
    appendQueue.length = 0;
    renderDetail();
    detailDirty = false;
  } else if (appendQueue.length) {
    appendRows();
  }
  $("pause").textContent = paused ? (pausedCount ? `Resume (${pausedCount} new)` : "Resume") : "Pause";
}

for (const id of ["f-dir", "f-kind", "f-violations"]) $(id).addEventListener("change", () => { detailDirty = true; schedule(); });
$("f-text").addEventListener("input", () => { detailDirty = true; schedule(); });
$("pause").addEventListener("click", () => {
  paused = !paused;
  if (!paused) { pausedCount = 0; detailDirty = true; }
  schedule();
});
$("follow").addEventListener("change", followScroll);
// What a download holds: the shown events of the selected connection (or
// of all, when none is), in order. HAR and pcapng also need each
// connection's opening and end (the upgrade, the addresses), shown or not.
const CONTEXT = new Set(["open", "handshake_request", "handshake_response", "end"]);
function downloadEvents(withContext) {
  const f = filters();
  const scope = selected !== null && conns.has(selected) ? [conns.get(selected)] : [...conns.values()];
  const out = [];
  for (const c of scope) {
    const shown = c.events.filter((ev) => shows(ev, f));
    if (!withContext) out.push(...shown);
    else if (shown.length) out.push(...c.events.filter((ev) => shows(ev, f) || CONTEXT.has(ev.event)));
  }
  return out.map((ev) => JSON.stringify(ev) + "\n").join("");
}

function save(blob, ext) {
  const a = el("a", { href: URL.createObjectURL(blob),
    download: selected !== null ? `wsproxy-conn-${selected}.${ext}` : `wsproxy-events.${ext}` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
}

$("download").addEventListener("click", () => {
  save(new Blob([downloadEvents(false)], { type: "application/jsonl" }), "jsonl");
});

// HAR and pcapng are written by wsproxy itself, with the writers of --har
// and --pcap: the page posts the events and saves the answer.
async function downloadAs(format, type) {
  const button = $(`download-${format}`);
  button.disabled = true;
  try {
    const url = `/download.${format}` + (token ? "?token=" + encodeURIComponent(token) : "");
    const res = await fetch(url, { method: "POST", body: downloadEvents(true), headers: { "Content-Type": "application/jsonl" } });
    if (!res.ok) throw new Error(`${res.status} ${await res.text()}`);
    save(new Blob([await res.arrayBuffer()], { type }), format);
  } catch (e) {
    notice(`The ${format} download failed: ${e.message}`);
  } finally {
    button.disabled = false;
  }
}
$("download-har").addEventListener("click", () => downloadAs("har", "application/json"));
$("download-pcapng").addEventListener("click", () => downloadAs("pcapng", "application/x-pcapng"));

connect();
