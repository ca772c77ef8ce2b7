// Open a Nightshift comparison page in Debian's headless Chromium and print what a reader would see, as JSON.
// Usage: node check_compare.mjs COMPARISON.html SCREENSHOT.png
// The assertions live in tests/test_compare.py; this script only observes (console, DOM, screenshot).
import { chromium } from "playwright-core";
import { pathToFileURL } from "node:url";

const [page_, screenshot] = process.argv.slice(2);
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
  await page.goto(pathToFileURL(page_).href, { waitUntil: "load" });
  await page.screenshot({ path: screenshot, fullPage: true });
  const seen = await page.evaluate(() => {
    const rows = (sel) => [...document.querySelectorAll(sel)].map((tr) => [...tr.cells].map((c) => c.innerText.trim()));
    const box = document.querySelector("#chart")?.getBoundingClientRect();
    return {
      title: document.title,
      statement: document.querySelector("#statement")?.innerText ?? null,
      arms: rows("#arms tbody tr"),
      headToHead: rows("#head-to-head tbody tr"),
      lines: document.querySelectorAll("#chart path.arm").length,
      wins: document.querySelectorAll("#chart circle.win").length,
      chartBox: box ? [box.width, box.height] : null,
      only: [...document.querySelectorAll("#only li")].map((li) => li.innerText.trim()),
      fairness: [...document.querySelectorAll("#fairness li")].map((li) => li.innerText.trim()),
      scripts: document.querySelectorAll("script").length,
    };
  });
  console.log(JSON.stringify({ ...seen, problems, requests }));
} finally {
  await browser.close();
}
