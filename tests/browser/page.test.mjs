// Opens the bertstream page of a running worker in headless Chromium, types a
// Chinese review, presses the button and checks that a label and one bar per
// label's probability appear, and that the model panel shows the primary, the
// shadow and their confusion matrix. Saves screenshots (desktop and phone widths).
//
//   node tests/browser/page.test.mjs <worker url> [screenshot dir]
//
// Exits non-zero with a message on any failure, so the Rust test that runs it fails.
import { chromium } from "playwright-core";
import { mkdtempSync, mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const url = process.argv[2];
const outDir = process.argv[3] || "target/browser";
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
if (!url) {
  console.error("usage: node page.test.mjs <worker url> [screenshot dir]");
  process.exit(2);
}

const REVIEW = "手机很好，漂亮时尚，赠品一般";
const profile = mkdtempSync(join(tmpdir(), "bertstream-chromium-"));
mkdirSync(outDir, { recursive: true });

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// A fresh profile directory each run (playwright passes it as --user-data-dir).
const context = await chromium.launchPersistentContext(profile, {
  executablePath,
  headless: true,
  viewport: { width: 1000, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url, { waitUntil: "load" });
  check((await page.title()).includes("bertstream"), "page title");

  await page.fill("#text", REVIEW);
  await page.click("#classify");
  await page.waitForSelector("#result:not([hidden])", { timeout: 15000 });
  const label = (await page.textContent("#label")).trim();
  const bars = await page.$$eval("#bars .bar", (rows) => rows.map((r) => ({
    label: r.dataset.label, prob: parseFloat(r.querySelector(".prob").textContent), width: r.querySelector(".fill").style.width,
  })));
  check(["-1", "0", "1"].includes(label), `label shown: ${JSON.stringify(label)}`);
  check(bars.map((b) => b.label).join(" ") === "-1 0 1", `one bar per label in the model's order, got ${JSON.stringify(bars)}`);
  const sum = bars.reduce((s, b) => s + b.prob, 0);
  check(Math.abs(sum - 100) < 1, `probabilities add up to 100%, got ${sum}`);
  check(/took \d+ ms/.test(await page.textContent("#took")), "time taken shown");
  // The text stays in the box as typed: UTF-8 end to end.
  check((await page.inputValue("#text")) === REVIEW, "Chinese text intact");
  // The stream panel has rendered (a list, or its empty-state line) and the counts.
  await page.waitForSelector("#latest li", { timeout: 10000 });
  await page.waitForSelector("#counts span", { timeout: 10000 });
  // The model panel: the primary and the shadow, and their confusion matrix.
  await page.waitForSelector("#compare:not([hidden])", { timeout: 15000 });
  const roles = await page.$$eval("#models li", (items) => items.map((i) => i.dataset.role + " " + i.textContent));
  check(roles.some((r) => r.startsWith("primary primarytiny-bert@")), `primary listed: ${JSON.stringify(roles)}`);
  check(roles.some((r) => r.startsWith("shadow shadowreversed@")), `shadow listed: ${JSON.stringify(roles)}`);
  check(/agreement \d+\.\d% over \d+ reviews/.test(await page.textContent("#agreement")), "agreement shown");
  const cells = await page.$$eval("#confusion td", (tds) => tds.map((td) => parseInt(td.textContent, 10)));
  check(cells.length === 9 && cells.reduce((s, n) => s + n, 0) > 0, `a 3x3 confusion matrix: ${cells}`);
  check(errors.length === 0, `no script errors: ${errors.join("; ")}`);
  await page.screenshot({ path: join(outDir, "page.png"), fullPage: true });

  // A phone: no horizontal scrolling, the button reachable.
  await page.setViewportSize({ width: 375, height: 740 });
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 1, `no horizontal scroll on a phone (overflow ${overflow}px)`);
  check(await page.isVisible("#classify"), "button visible on a phone");
  await page.screenshot({ path: join(outDir, "page-phone.png"), fullPage: true });
  console.log(`ok: label ${label}, bars ${JSON.stringify(bars)}; screenshots in ${outDir}`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
