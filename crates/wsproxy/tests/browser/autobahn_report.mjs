// The native Autobahn engine's index.html in headless Chromium (Debian's
// package, driven by this folder's playwright-core): the page must show
// the table of cases, one row per case of the run's index.json with the
// same behavior and close behavior and the verdict's color, every case's
// section, the wire log that opens on a click, and for the compression
// cases their ratios. A screenshot goes to SHOT.
//
//   node autobahn_report.mjs REPORT_DIR SHOT
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { chromium } from "playwright-core";

const [reportDir, shot] = process.argv.slice(2);
if (!reportDir || !shot) {
  console.error("usage: node autobahn_report.mjs REPORT_DIR SHOT");
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const failures = [];
let passed = 0;

function check(what, ok, detail = "") {
  if (ok) {
    passed++;
  } else {
    failures.push(what);
    console.error(`FAILED: ${what} ${detail}`);
  }
}

const index = JSON.parse(readFileSync(resolve(reportDir, "index.json"), "utf8"));
const [agent, cases] = Object.entries(index)[0];
const ids = Object.keys(cases);
const verdictClass = { OK: "ok", "NON-STRICT": "nonstrict", INFORMATIONAL: "info", UNIMPLEMENTED: "unimpl" };

const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  await page.goto(pathToFileURL(resolve(reportDir, "index.html")).href);
  check("title names the agent", (await page.title()) === `Autobahn results for ${agent}`, await page.title());
  const rows = await page.$$eval("#cases tr", (trs) =>
    trs.slice(1).map((tr) => {
      const td = [...tr.querySelectorAll("td")];
      return {
        id: td[0]?.textContent,
        behavior: td[1]?.textContent,
        behaviorClass: td[1]?.className,
        close: td[2]?.textContent,
        closeClass: td[2]?.className,
        compression: td[5]?.textContent ?? "",
      };
    }),
  );
  check(`one row per case (${ids.length})`, rows.length === ids.length, `got ${rows.length}`);
  for (const row of rows) {
    const want = cases[row.id];
    if (!want) {
      check(`row ${row.id} is a case of the run`, false);
      continue;
    }
    check(`${row.id}: behavior ${want.behavior}`, row.behavior === want.behavior, row.behavior);
    check(`${row.id}: close ${want.behaviorClose}`, row.close === want.behaviorClose, row.close);
    check(`${row.id}: color`, row.behaviorClass === (verdictClass[want.behavior] ?? "failed"), row.behaviorClass);
    check(`${row.id}: close color`, row.closeClass === (verdictClass[want.behaviorClose] ?? "failed"), row.closeClass);
    const report = JSON.parse(readFileSync(resolve(reportDir, want.reportfile), "utf8"));
    if (report.reportCompressionRatio && report.trafficStats) {
      check(`${row.id}: compression ratios shown`, /^in \d\.\d{3} \/ out \d\.\d{3}$/.test(row.compression), row.compression);
    }
  }
  const sections = await page.$$eval("section[id^='case-']", (s) => s.length);
  check("a section per case", sections === ids.length, `got ${sections}`);
  // A click on the last case's id goes to its section; its wire log opens.
  const last = ids[ids.length - 1];
  await page.click(`#cases a[href="#case-${last}"]`);
  check("the link goes to the case", (await page.evaluate(() => location.hash)) === `#case-${last}`);
  const section = page.locator(`section[id="case-${last}"]`);
  await section.locator("summary").click();
  const wirelog = await section.locator("details pre").innerText();
  check("the wire log opens", (await section.locator("details").getAttribute("open")) !== null && wirelog.length > 0);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: shot });
} finally {
  await browser.close();
}
if (failures.length > 0) {
  console.error(`${failures.length} failed, ${passed} passed`);
  process.exit(1);
}
console.log(`index.html of ${agent}: ${ids.length} cases checked in Chromium; screenshot ${shot}`);
console.log(`${passed} passed, 0 failed`);
