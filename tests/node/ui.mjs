// ui.mjs: the procy monitor in a real browser (Debian's chromium, driven
// by playwright-core). Usage: node ui.mjs BASE_URL SESSION SCREENS_DIR.
// Prints one JSON line per check ({ok, name, diag}); "WAIT what" asks the
// Lua test to do something and answer on stdin with a line.
import { chromium } from "playwright-core";
import http from "node:http";
import readline from "node:readline";

const [base, session, screens, job, exportFile, link] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin });
const answers = [];
let waiting = null;
lines.on("line", (l) => { if (waiting) { const w = waiting; waiting = null; w(l); } else answers.push(l); });
const ask = (what) => new Promise((res) => {
  if (answers.length) return res(answers.shift());
  waiting = res;
  console.log("WAIT " + what);
});
const check = (ok, name, diag) => console.log(JSON.stringify({ ok: !!ok, name, diag: diag === undefined ? undefined : String(diag) }));

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  const errors = [], outside = [];
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("request", (r) => { if (!r.url().startsWith(base) && !r.url().startsWith("data:")) outside.push(r.url()); });

  // the monitor is its person's: without the link's token, nothing
  const anon = await browser.newContext();
  const stranger = await anon.newPage();
  const refused = await stranger.goto(base + "/");
  check(refused.status() === 401 && !(await stranger.content()).includes("app.js"),
    "without the link's token the monitor's page is refused", refused.status());
  const api = await stranger.evaluate(async () => (await fetch("/api/csrf")).status);
  check(api === 401, "and so is its CSRF token", api);
  await anon.close();
  // the link procy printed: its token becomes an HttpOnly cookie, and the
  // address the person sees (and bookmarks, and shares) holds it no more
  await page.goto(link);
  const home = page.url();
  check(/^http:\/\/127\.0\.0\.1:\d+\/p\/[0-9a-f]{16}\/$/.test(home) && home.startsWith(base)
    && !(await page.evaluate(() => document.cookie)).includes(link.split("token=")[1]),
    "the link's token is traded for a cookie the page's scripts cannot read, for the server's secret mount", home);

  // the sessions list
  await page.goto(home);
  await page.waitForSelector(`tr[data-id="${session}"]`, { timeout: 10000 });
  const row = await page.textContent(`tr[data-id="${session}"]`);
  check(/claude/.test(row) && /running|exited|crashed/.test(row), "the sessions list shows the session", row);
  await page.screenshot({ path: `${screens}/sessions.png`, fullPage: true });
  // live: a session made now appears without a reload
  const before = await page.locator("tr.row").count();
  const fresh = await ask("new-session");
  const t0 = Date.now();
  await page.waitForSelector(`tr[data-id="${fresh}"]`, { timeout: 10000 }).catch(() => null);
  check(await page.locator(`tr[data-id="${fresh}"]`).count() === 1 && (await page.locator("tr.row").count()) === before + 1,
    "a new session appears without a reload", `${Date.now() - t0} ms`);
  // filters
  await page.fill('input[placeholder="agent"]', "no-such-agent");
  check(await page.locator("tr.row").count() === 0, "the agent filter hides what does not match");
  await page.fill('input[placeholder="agent"]', "");
  await page.check("text=has corrections >> input");
  check(await page.locator("tr.row").count() === 1, "has corrections keeps the corrected session only");
  await page.uncheck("text=has corrections >> input");

  // the session: interactions
  await page.click(`tr[data-id="${session}"]`);
  await page.waitForSelector("#tab-interactions .turn", { timeout: 10000 });
  const turns = await page.locator(".turn").count();
  const text = await page.textContent("#tab-interactions");
  check(turns === 2 && text.includes("fix the parser") && text.includes("I fixed it."), "Interactions: the turns, prompts and answers", `${turns} turns`);
  check(text.includes("They pass. ⟨U+202E⟩txt.exe") && !text.includes("\u202E"),
    "a bidirectional override in a recorded text is shown escaped, never applied", text.slice(0, 300));
  check(await page.locator(".tool .add").first().textContent() === "+ return parse(s, strict)", "an Edit tool call as a diff",
    await page.locator(".tool").first().textContent());
  check((await page.textContent(".tool >> nth=1")).includes("$ make test"), "a Bash call as its command");
  await page.screenshot({ path: `${screens}/interactions.png`, fullPage: true });
  // correct a prompt from the page
  await page.click("#turn-1 .prompt");
  await page.fill("#turn-1 textarea", "fix the parser, and add a test for nested quotes");
  await page.click("text=keep the correction");
  await page.waitForSelector("#flash >> text=kept", { timeout: 10000 });
  check(/correction \d+ kept/.test(await page.textContent("#flash")), "a correction made in the page is kept");

  // API calls
  await page.click('nav.tabs a[href$="/calls"]');
  await page.waitForSelector("#tab-calls tr[data-call]", { timeout: 10000 });
  const ncalls = await page.locator("tr[data-call]").count();
  check(ncalls === 3, "API calls: the session's calls", ncalls);
  await page.click("tr[data-call] >> nth=0");
  await page.waitForSelector("text=the answer, reassembled", { timeout: 10000 });
  check((await page.textContent("#tab-calls")).includes("FAKE: hello!"), "a call's detail: the answer reassembled");
  check((await page.textContent("#call-new summary")).includes("the first call of its conversation"), "the first call has nothing before it");
  const second = await page.getAttribute("tr[data-call] >> nth=1", "data-call");
  await page.click("tr[data-call] >> nth=2");
  await page.waitForFunction((id) => (document.querySelector("#call-new summary")?.textContent || "").includes(`since call ${id}`), second, { timeout: 10000 }).catch(() => null);
  const news = await page.textContent("#call-new");
  check(/new since call \d+: 2 messages \(1 kept\)/.test(news) && news.includes("user: now the tests") && !news.includes("hello 2"),
    "a call's diff against the one before it in its conversation: what was new", news);
  check(/event by event \(\d+\)/.test(await page.textContent("#call-events summary")) &&
    (await page.textContent("#call-events")).includes("message_start"), "the raw stream, event by event");
  // live: a call relayed now is a row of the open list
  const sent = Number(await ask("new-call"));
  await page.waitForSelector("tr[data-call] >> nth=3", { timeout: 10000 }).catch(() => null);
  check(await page.locator("tr[data-call]").count() === 4, "a call relayed now appears in the open list", `${Date.now() - sent} ms`);
  await page.screenshot({ path: `${screens}/calls.png`, fullPage: true });

  // the terminal: a call's ▶ opens it at that call, lit in the timeline
  const callId = await page.getAttribute("tr[data-call] >> nth=0", "data-call");
  await page.click(`tr[data-call="${callId}"] a[title="the terminal at this call"]`);
  await page.waitForSelector("#tab-terminal .player[data-ready]", { timeout: 10000 });
  check(await page.locator(`#tab-terminal .tl.call.inflight[data-call="${callId}"]`).count() === 1,
    "a call's ▶ opens the terminal at that call, the call lit on the timeline",
    JSON.stringify(await page.evaluate(() => ({ hash: location.hash, pos: window.procyPlayer.pos, d: window.procyPlayer.duration,
      rows: [...document.querySelectorAll(".tl")].map((r) => `${r.className} ${r.dataset.t} ${r.dataset.call || ""}`) }))));
  check((await page.evaluate(() => window.procyPlayer.screenText())).includes("working line"),
    "the terminal shows what was on screen then");
  // seek: to the first prompt, from the timeline
  const seeks = Number(await page.getAttribute("#tab-terminal .player", "data-seeks"));
  await page.click("#tab-terminal .tl.prompt >> nth=0");
  await page.waitForFunction((n) => Number(document.querySelector(".player").dataset.seeks) > n, seeks, { timeout: 10000 });
  let screen = await page.evaluate(() => window.procyPlayer.screenText());
  check(screen.includes("BEFORE-TURN-ONE") && !screen.includes("zebra"), "a click on a prompt seeks the terminal to it", screen);
  check(await page.locator("#tab-terminal .tl.prompt.inflight").count() === 1, "and lights it");
  const counts = JSON.parse(await page.getAttribute("#tab-terminal canvas.marks", "data-counts"));
  check(counts.mark === 1 && counts.prompt === 2 && counts.call === 4, "the scrubber marks the !mark, each prompt and each call", JSON.stringify(counts));
  // scrub to the end
  await page.evaluate(() => { const s = document.querySelector(".scrub"); s.value = s.max; s.dispatchEvent(new Event("input")); s.dispatchEvent(new Event("change")); });
  await page.waitForFunction(() => window.procyPlayer.screenText().includes("the end of the session"), null, { timeout: 10000 }).catch(() => null);
  screen = await page.evaluate(() => window.procyPlayer.screenText());
  check(screen.includes("the end of the session") && screen.includes("zebra-quartz-42"), "scrubbing to the end shows the end", screen);
  // play a little from the prompt
  await page.click("#tab-terminal .tl.prompt >> nth=0");
  await page.selectOption("#tab-terminal select", "16");
  await page.click("#tab-terminal button >> text=play");
  await page.waitForFunction(() => window.procyPlayer.screenText().includes("zebra"), null, { timeout: 30000 }).catch(() => null);
  check((await page.evaluate(() => window.procyPlayer.screenText())).includes("zebra-quartz-42"), "play goes on from there");
  await page.screenshot({ path: `${screens}/terminal.png`, fullPage: true });
  // live: output recorded now reaches the open terminal
  await page.click("#tab-terminal button >> text=live");
  await page.waitForFunction(() => window.procyPlayer.screenText().includes("the end of the session"), null, { timeout: 10000 }).catch(() => null);
  await ask("live-output");
  const l0 = Date.now();
  await page.waitForFunction(() => window.procyPlayer.screenText().includes("LIVE-LINE 7"), null, { timeout: 10000 }).catch(() => null);
  check((await page.evaluate(() => window.procyPlayer.screenText())).includes("LIVE-LINE 7"), "a running session's output arrives live",
    `${Date.now() - l0} ms`);

  // search: a string only the terminal holds; the hit opens the terminal there
  await page.fill("#search input", "zebra-quartz-42");
  await page.press("#search input", "Enter");
  await page.waitForSelector("li.hit", { timeout: 10000 }).catch(() => null);
  const hits = await page.locator("li.hit").count();
  check(hits === 1 && await page.getAttribute("li.hit", "data-kind") === "term" && (await page.textContent("li.hit mark")) === "zebra-quartz-42",
    "search finds a string only the terminal holds", `${hits} hits`);
  await page.screenshot({ path: `${screens}/search.png`, fullPage: true });
  await page.click("li.hit a");
  await page.waitForSelector("#tab-terminal .player[data-ready]", { timeout: 10000 }).catch(() => null);
  check((await page.evaluate(() => window.procyPlayer && window.procyPlayer.screenText())).includes("zebra-quartz-42"),
    "and opens the terminal at that moment");
  await page.fill("#search input", "parser");
  await page.press("#search input", "Enter");
  await page.waitForSelector("li.hit[data-kind=prompt] a", { timeout: 10000 }).catch(() => null);
  await page.click("li.hit[data-kind=prompt] a");
  await page.waitForSelector(".turn.target", { timeout: 10000 }).catch(() => null);
  check((await page.getAttribute(".turn.target", "id")) === "turn-1", "a prompt's hit opens its turn");
  await page.click('nav.tabs a[href$="/calls"]');
  await page.waitForSelector("#tab-calls tr[data-call]", { timeout: 10000 });

  // turns and corrections
  await page.click('nav.tabs a[href$="/turns"]');
  await page.waitForSelector("#tab-turns table", { timeout: 10000 });
  check(await page.locator("#tab-turns tbody tr").count() === 2, "Turns: one row a turn");
  await page.screenshot({ path: `${screens}/turns.png`, fullPage: true });
  await page.click('nav.tabs a[href$="/corrections"]');
  await page.waitForSelector("#tab-corrections tr[data-correction]", { timeout: 10000 });
  check((await page.textContent("#tab-corrections")).includes("add a test for nested quotes"), "Corrections: the one made in the page");
  check((await page.textContent("#tab-corrections p.counts")).includes("corrected 2"), "with the counts by kind");
  // edit one
  await page.click('#tab-corrections tr[data-correction] >> nth=0 >> text=edit');
  await page.fill("#tab-corrections .form textarea", "fix the parser, and test nested quotes twice");
  await page.click("#tab-corrections .form >> text=save");
  await page.waitForSelector("#flash >> text=changed", { timeout: 10000 }).catch(() => null);
  check((await page.textContent("#tab-corrections")).includes("test nested quotes twice"), "a correction edited in the page");
  // the training data, downloaded
  const [download] = await Promise.all([page.waitForEvent("download", { timeout: 15000 }),
    page.click('#tab-corrections a.button[href*="format=trl-sft"]')]);
  const file = await download.path();
  const rows = (await import("node:fs")).readFileSync(file, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  check(rows.length >= 1 && JSON.stringify(rows).includes("test nested quotes twice") && download.suggestedFilename() === "trl-sft.train.jsonl",
    "the export button downloads the training file, the edit in it", `${rows.length} rows`);
  await page.screenshot({ path: `${screens}/corrections.png`, fullPage: true });

  check(errors.length === 0, "no console errors", errors.join(" | "));

  // evolve: the scores, the best so far, the lineage, a try, the prompt diff
  await page.click('nav.tabs a[href$="/evolve"]');
  await page.waitForSelector("#tab-evolve section.run", { timeout: 10000 });
  check(await page.locator("#tab-evolve circle.dot").count() === 4, "Evolve: a point per try");
  check(await page.locator("#tab-evolve circle.dot.infeasible").count() === 1, "the infeasible try marked");
  check(await page.locator("#tab-evolve polyline.best").count() === 1, "and the best-so-far line");
  check(await page.locator("#tab-evolve ul.tree ul.tree a[data-try]").count() === 4, "the lineage: four tries under the start");
  await page.click('#tab-evolve a[data-try="4"]');
  await page.waitForSelector("#try-detail", { timeout: 10000 });
  check((await page.textContent("#try-detail")).includes("cache the results"), "a try's prompt, answer and metrics");
  const why = await page.textContent("#try-detail");
  check(why.includes("policy population · island 1") && why.includes("chosen by exploitation (draw 0.412): one of the 5 best")
    && why.includes("inspirations: try 2"), "its policy, island, and why the population chose its parent", why);
  check((await page.textContent("#tab-evolve ul.tree")).includes("person added"), "the lineage marks a try a person added to");
  check((await page.textContent("#tab-evolve section.run")).includes("policy population"), "the run's policy");
  check((await page.textContent("#tab-evolve pre.diff")).includes("+ use a trie"), "the prompt diff between two tries",
    await page.textContent("#tab-evolve pre.diff"));
  await page.screenshot({ path: `${screens}/evolve.png`, fullPage: true });

  // training: the jobs, a job's loss curve and log, the adapters
  await page.goto(home + "#/training/" + job);
  await page.waitForSelector("#job", { timeout: 10000 });
  check(await page.locator(`tr[data-job="${job}"]`).count() === 1, "Training: the jobs");
  check(await page.locator("#job polyline.line").count() === 1 && (await page.textContent("#job pre")).includes('"step":4'),
    "a job's loss curve and its log");
  check((await page.textContent("main")).includes("procy-" + job), "the adapters deployed");
  check(await page.locator("#train-start button").count() === 1, "a button to start training");
  check(await page.locator("#compare svg.chart").count() === 1 && (await page.textContent("#compare")).includes("(base model)"),
    "the evolve runs compared by adapter");
  await page.screenshot({ path: `${screens}/training.png`, fullPage: true });

  // the page writes only with its token; without it procy refuses
  const status = await page.evaluate(async () => (await fetch("api/corrections", { method: "POST",
    headers: { "content-type": "application/json" }, body: JSON.stringify({ session: "x", corrected: "y" }) })).status);
  check(status === 403, "a write without the page's CSRF token is refused", status);

  // another site's page posting to procy
  const evil = http.createServer((req, res) => {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(`<script>fetch(${JSON.stringify(base + "/api/corrections")}, { method: "POST", mode: "no-cors",
      headers: { "content-type": "text/plain" }, body: JSON.stringify({ session: ${JSON.stringify(session)}, corrected: "evil" }) })
      .then(() => document.title = "sent", () => document.title = "failed");</script>`);
  });
  await new Promise((r) => evil.listen(0, "127.0.0.1", r));
  const other = await browser.newPage();
  await other.goto(`http://127.0.0.1:${evil.address().port}/`);
  await other.waitForFunction(() => document.title !== "", null, { timeout: 10000 });
  check((await ask("count-evil")) === "0", "a page of another origin cannot post to procy");
  evil.close();

  check(outside.length === 0, "nothing loaded from outside procy", outside.join(" "));

  // the HTML export, opened from file:// with every request watched
  const offline = await browser.newContext({ offline: true });
  const ex = await offline.newPage({ viewport: { width: 1400, height: 900 } });
  const exErrors = [], requests = [];
  ex.on("console", (m) => { if (m.type() === "error") exErrors.push(m.text()); });
  ex.on("pageerror", (e) => exErrors.push(String(e)));
  ex.on("request", (r) => { if (r.url() !== "file://" + exportFile && !r.url().startsWith("data:")) requests.push(r.url()); });
  await ex.goto("file://" + exportFile);
  await ex.waitForSelector("#tab-interactions .turn", { timeout: 10000 }).catch(() => null);
  check((await ex.locator(".turn").count()) === 2 && (await ex.textContent("#tab-interactions")).includes("fix the parser"),
    "the export opens offline at the session's interactions");
  await ex.click('nav.tabs a[href$="/terminal"]');
  await ex.waitForSelector("#tab-terminal .player[data-ready]", { timeout: 10000 }).catch(() => null);
  await ex.evaluate(() => { const s = document.querySelector(".scrub"); s.value = s.max; s.dispatchEvent(new Event("input")); s.dispatchEvent(new Event("change")); });
  await ex.waitForFunction(() => window.procyPlayer && window.procyPlayer.screenText().includes("the end of the session"), null, { timeout: 10000 }).catch(() => null);
  check((await ex.evaluate(() => window.procyPlayer && window.procyPlayer.screenText())).includes("zebra-quartz-42"),
    "its terminal replays and seeks");
  const exSeeks = Number(await ex.getAttribute("#tab-terminal .player", "data-seeks"));
  await ex.click("#tab-terminal .tl.prompt >> nth=0");
  await ex.waitForFunction((n) => Number(document.querySelector(".player").dataset.seeks) > n, exSeeks, { timeout: 10000 }).catch(() => null);
  check((await ex.evaluate(() => window.procyPlayer.screenText())).includes("BEFORE-TURN-ONE"), "to any moment");
  await ex.click('nav.tabs a[href$="/calls"]');
  await ex.waitForSelector("#tab-calls tr[data-call]", { timeout: 10000 }).catch(() => null);
  await ex.click("tr[data-call] >> nth=2");
  await ex.waitForSelector("#call-new", { timeout: 10000 }).catch(() => null);
  check((await ex.locator("tr[data-call]").count()) === 3 && (await ex.textContent("#call-new")).includes("now the tests"),
    "its calls, with what each added");
  await ex.screenshot({ path: `${screens}/export.png`, fullPage: true });
  check(requests.length === 0, "the export made no request", requests.join(" "));
  check(exErrors.length === 0, "and no console error", exErrors.join(" | "));
  await offline.close();
} catch (e) {
  check(false, "the browser run", e && e.stack || e);
} finally {
  await browser.close();
  lines.close();
}
