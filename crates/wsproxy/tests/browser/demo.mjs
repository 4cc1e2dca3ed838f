// End-to-end: headless Chromium (Debian's package, driven by playwright-core)
// opens the demo page through wsproxy and its embedded echo upstream, sends a
// message, sees it echoed on the page; then the proxy's JSON log must show
// the browser's masked frame and the unmasked echo.
//
//   node demo.mjs http://127.0.0.1:PORT/ /path/to/events.jsonl
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const [pageUrl, logPath] = process.argv.slice(2);
if (!pageUrl || !logPath) {
  console.error("usage: node demo.mjs PAGE_URL EVENTS_JSONL");
  process.exit(2);
}
const message = `hello from chromium ${Date.now()}`;
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";

const browser = await chromium.launch({
  executablePath,
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
let failed = false;
try {
  const page = await browser.newPage();
  await page.goto(pageUrl);
  await page.locator("#state.open").waitFor({ timeout: 10_000 });
  await page.fill("#message", message);
  await page.click("#send");
  await page.locator(".echo", { hasText: message }).waitFor({ timeout: 10_000 });
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
let sent, echoed, closed;
while (Date.now() < deadline) {
  const all = events();
  const frames = all.filter((e) => e.event === "frame" && e.preview === message);
  sent = frames.find((e) => e.from === "client" && e.masked === true && /^[0-9a-f]{8}$/.test(e.mask));
  echoed = frames.find((e) => e.from === "upstream" && e.masked === false);
  closed = all.find((e) => e.event === "close" && e.from === "client" && e.code === 1000);
  if (sent && echoed && closed) break;
  await new Promise((r) => setTimeout(r, 50));
}
if (!sent) { console.error("log: no masked client frame with the message"); failed = true; }
if (!echoed) { console.error("log: no unmasked upstream frame with the echo"); failed = true; }
if (!closed) { console.error("log: no close 1000 from the browser"); failed = true; }
if (!failed) {
  console.log(`log: client frame masked with ${sent.mask}, echo from upstream, close ${closed.code} from the browser`);
}
console.log(failed ? "browser e2e: 0 passed, 1 failed" : "browser e2e: 1 passed, 0 failed");
process.exit(failed ? 1 : 0);
