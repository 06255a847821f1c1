// ui_claude.mjs: a running Claude Code session's own monitor in a real
// browser. Usage: node ui_claude.mjs MONITOR_LINK SESSION SCREENS_DIR (the
// link procy printed, with its token).
// Prints one JSON line per check; "WAIT type-prompt" asks the Lua test to
// type a prompt into Claude Code and answer with a line.
import { chromium } from "playwright-core";
import readline from "node:readline";

const [link, session, screens] = process.argv.slice(2);
const base = link.split("/?")[0];
const lines = readline.createInterface({ input: process.stdin });
const ask = (what) => new Promise((res) => { lines.once("line", res); console.log("WAIT " + what); });
const check = (ok, name, diag) => console.log(JSON.stringify({ ok: !!ok, name, diag: diag === undefined ? undefined : String(diag) }));
const screenText = (page) => page.evaluate(() => window.procyPlayer ? window.procyPlayer.screenText() : "");

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"] });
try {
  check(/^http:\/\/127\.0\.0\.1:\d+$/.test(base), "the session's monitor URL", base);
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  const errors = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));

  await page.goto(link); // its token becomes the page's cookie, for the server's secret mount
  const home = page.url().split("#")[0];
  await page.goto(`${home}#/s/${session}/interactions`);
  await page.waitForSelector("#tab-interactions .turn", { timeout: 15000 });
  const tool = await page.textContent("#tab-interactions .tool").catch(() => "");
  check(tool.includes("Bash") && tool.includes("$ echo web-monitor-check"), "Interactions: the real turn's Bash call", tool);

  await page.click('nav.tabs a[href$="/terminal"]');
  await page.waitForSelector("#tab-terminal .player[data-ready]", { timeout: 15000 });
  await page.waitForFunction(() => window.procyPlayer.screenText().includes("web-monitor-check"), null, { timeout: 15000 }).catch(() => null);
  let screen = await screenText(page);
  check(screen.includes("web-monitor-check") && screen.includes("❯"), "Terminal: Claude Code's screen as it is now", screen);
  await page.screenshot({ path: `${screens}/terminal-claude.png`, fullPage: true });

  // live: a prompt typed now, its answer drawn as it is recorded
  await ask("type-prompt");
  const t0 = Date.now();
  await page.waitForFunction(() => window.procyPlayer.screenText().includes("you said: say live"), null, { timeout: 20000 }).catch(() => null);
  check((await screenText(page)).includes("you said: say live"), "a new prompt's answer arrives live", `${Date.now() - t0} ms`);

  // back to the first call: the screen before the second prompt
  await page.goto(`${home}#/s/${session}/terminal`);
  await page.waitForSelector("#tab-terminal .player[data-ready]", { timeout: 15000 });
  const seeks = Number(await page.getAttribute("#tab-terminal .player", "data-seeks"));
  await page.click("#tab-terminal .tl.call >> nth=0");
  await page.waitForFunction((n) => Number(document.querySelector(".player").dataset.seeks) > n, seeks, { timeout: 10000 }).catch(() => null);
  screen = await screenText(page);
  check(!screen.includes("say live") && screen.includes("echo web-monitor-check"), "a seek to the first call shows the screen of then", screen);
  check(await page.locator("#tab-terminal .tl.call.inflight").count() >= 1, "with that call lit on the timeline");

  await page.fill("#search input", "web-monitor-check");
  await page.press("#search input", "Enter");
  await page.waitForSelector("li.hit", { timeout: 10000 }).catch(() => null);
  const kinds = await page.$$eval("li.hit", (l) => l.map((x) => x.dataset.kind));
  check(kinds.includes("term") && kinds.includes("tool") && kinds.includes("prompt"), "search finds it in the prompt, the tool call and the terminal", kinds.join(" "));

  check(errors.length === 0, "no console errors", errors.join(" | "));
} catch (e) {
  check(false, "the browser run", e && e.stack || e);
} finally {
  await browser.close();
  lines.close();
}
