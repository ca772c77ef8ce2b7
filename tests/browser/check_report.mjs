// Open a Nightshift report in Debian's headless Chromium and print what a reader would see, as JSON.
// Usage: node check_report.mjs REPORT.html SCREENSHOT.png
// The assertions live in tests/test_report.py; this script only observes (console, DOM, screenshot).
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [report, screenshot] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1200, height: 900 } });
  const problems = [];
  const requests = [];
  page.on("console", (m) => { if (m.type() === "error" || m.type() === "warning") problems.push(`${m.type()}: ${m.text()}`); });
  page.on("pageerror", (e) => problems.push(`pageerror: ${e.message}`));
  page.on("request", (r) => requests.push(r.url()));
  await page.goto(pathToFileURL(report).href, { waitUntil: "load" });
  await page.screenshot({ path: screenshot, fullPage: true });  // as a reader first sees it: details closed
  // Open every <details> so the checks below also cover the collapsed parts.
  await page.$$eval("details", (ds) => ds.forEach((d) => { d.open = true; }));
  const seen = await page.evaluate(() => ({
    title: document.title,
    headline: document.querySelector("#headline")?.innerText ?? null,
    label: document.querySelector("#llm-label")?.innerText ?? null,
    chartBox: (() => { const r = document.querySelector("#chart")?.getBoundingClientRect(); return r ? [r.width, r.height] : null; })(),
    points: document.querySelectorAll("#chart circle.point").length,
    misses: document.querySelectorAll("#chart path.miss").length,
    bestPath: document.querySelector("#chart path.best")?.getAttribute("d") ?? null,
    rows: [...document.querySelectorAll("#attempts tbody tr")].map((tr) => [...tr.cells].map((c) => c.innerText.trim())),
    attempts: document.querySelectorAll("div.attempt").length,
    details: document.querySelectorAll("details").length,
    scripts: document.querySelectorAll("script").length,
    pwned: window.__pwned ?? null,
    flamegraphs: [...document.querySelectorAll("a.flamegraph")].map((a) => a.href),
  }));
  console.log(JSON.stringify({ ...seen, problems, requests }));
} finally {
  await browser.close();
}
