// bench_web.mjs: tests/bench/web's browser side. Usage: node bench_web.mjs
// URL SESSION. Prints {line} JSON per figure; "RSS" asks the Lua side for
// procy's memory (answered on stdin).
import { chromium } from "playwright-core";
import http from "node:http";
import zlib from "node:zlib";
import readline from "node:readline";

const [base, session] = process.argv.slice(2);
const lines = readline.createInterface({ input: process.stdin });
const ask = (what) => new Promise((res) => { lines.once("line", res); console.log(what); });
const out = (line) => console.log(JSON.stringify({ line }));
const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const pct = (xs, p) => { const s = [...xs].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(s.length * p))]; };

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu"] });
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  // page weight: what the page loads, raw and as gzip would send it
  const loaded = [];
  page.on("response", async (r) => {
    const u = r.url();
    if (/\/(web\/.*|)$/.test(new URL(u).pathname) || u.endsWith("/")) {
      try { const b = await r.body(); loaded.push({ u, raw: b.length, gz: zlib.gzipSync(b, { level: 6 }).length }); } catch {}
    }
  });

  // first paint of the session view (its turns drawn)
  let t = Date.now();
  await page.goto(`${base}/#/s/${session}/interactions`);
  await page.waitForSelector("#tab-interactions .turn", { timeout: 60000 });
  const firstPaint = Date.now() - t;
  const raw = loaded.reduce((n, x) => n + x.raw, 0), gz = loaded.reduce((n, x) => n + x.gz, 0);
  out(`page weight: ${(raw / 1024).toFixed(0)} KB in ${loaded.length} files, ${(gz / 1024).toFixed(0)} KB as gzip (xterm.js is ${(loaded.find((x) => x.u.includes("xterm.mjs"))?.gz / 1024 || 0).toFixed(0)} KB of it)`);
  out(`first paint of the session view (500 turns): ${firstPaint} ms`);

  // the terminal: cold (procy makes the snapshots on the first request), then warm
  t = Date.now();
  await page.click('nav.tabs a[href$="/terminal"]');
  await page.waitForSelector("#tab-terminal .player[data-ready]", { timeout: 120000 });
  const cold = Date.now() - t;
  await page.goto(`${base}/#/s/${session}/calls`);
  await page.waitForSelector("#tab-calls tr[data-call]", { timeout: 60000 });
  t = Date.now();
  await page.click('nav.tabs a[href$="/terminal"]');
  await page.waitForSelector("#tab-terminal .player[data-ready]", { timeout: 60000 });
  const warm = Date.now() - t;
  out(`first paint of the terminal at its end: ${cold} ms the first time (procy makes its snapshots), ${warm} ms after`);

  // seeks: procy's snapshots, and the seed's way (every event from t=0 into a fresh terminal)
  const seeks = await page.evaluate(async () => {
    const p = window.procyPlayer, d = p.duration, times = [];
    for (const f of [1, 0.5, 0.1, 0.9, 1, 0.3, 1]) { const t0 = performance.now(); await p.seek(d * f); times.push(performance.now() - t0); }
    return times;
  });
  const refeed = await page.evaluate(async (sid) => {
    const { Terminal } = await import("/web/vendor/xterm.mjs");
    const { records } = await import("/web/terminal.js");
    const box = document.createElement("div");
    document.body.append(box);
    const times = [];
    for (let run = 0; run < 3; run++) {
      const term = new Terminal({ cols: 120, rows: 40, scrollback: 5000 });
      term.open(box);
      const t0 = performance.now();
      let after = 0, parse = 0;
      for (;;) {
        const r = await fetch(`/api/sessions/${sid}/terminal/events?after=${after}&max=4194304`);
        const buf = await r.arrayBuffer();
        const p0 = performance.now();
        let last = null;
        for (const x of records(buf)) if (x.kind === "o") { term.write(x.data); last = x; }
        parse += performance.now() - p0;
        after = Number(r.headers.get("x-procy-last"));
        if (r.headers.get("x-procy-more") !== "1") break;
      }
      await new Promise((done) => term.write("", done));
      await new Promise((done) => setTimeout(done, 0));
      await new Promise((done) => term.write("\r", done));
      times.push(performance.now() - t0);
      term.dispose();
    }
    box.remove();
    return times;
  }, session);
  const ms = (x) => `${x.toFixed(0)} ms`;
  out(`seek (procy's snapshots): median ${ms(median(seeks))}, slowest ${ms(Math.max(...seeks))} of ${seeks.length} (to the end, the middle, 10 %, ...)`);
  out(`seek to the end, the seed's way (every event from t=0 into xterm.js): median ${ms(median(refeed))} of ${refeed.length}: `
    + `${(median(refeed) / median(seeks)).toFixed(0)}x the snapshots' time`);

  // the calls list, scrolled: frame times
  await page.goto(`${base}/#/s/${session}/calls`);
  await page.waitForSelector("#tab-calls tr[data-call]", { timeout: 60000 });
  const frames = await page.evaluate(async () => {
    const box = document.querySelector(".vscroll"), deltas = [];
    let prev = performance.now();
    const end = prev + 3000;
    await new Promise((done) => {
      const step = (now) => {
        deltas.push(now - prev);
        prev = now;
        box.scrollTop += 600;
        if (box.scrollTop + box.clientHeight >= box.scrollHeight) box.scrollTop = 0;
        if (now < end) requestAnimationFrame(step); else done();
      };
      requestAnimationFrame(step);
    });
    return { deltas, rows: document.querySelectorAll("tr[data-call]").length, total: box.scrollHeight };
  });
  out(`scrolling 5,000 calls (600 px a frame for 3 s): frame time median ${frames.deltas.length ? median(frames.deltas).toFixed(1) : "?"} ms, `
    + `95th percentile ${pct(frames.deltas, 0.95).toFixed(1)} ms, slowest ${Math.max(...frames.deltas).toFixed(1)} ms; ${frames.rows} rows in the page at a time`);

  // from a call recorded to it on screen: calls relayed through procy serve for the session
  await page.evaluate(() => { const b = document.querySelector(".vscroll"); b.scrollTop = b.scrollHeight; });
  const delays = [];
  for (let i = 0; i < 10; i++) {
    const before = Number(await page.getAttribute(".vscroll", "data-rows"));
    const body = JSON.stringify({ model: "claude-haiku-4-5", max_tokens: 20, messages: [{ role: "user", content: "hello " + i }] });
    const done = await new Promise((res, rej) => {
      const req = http.request(`${base}/s/${session}/v1/messages`, { method: "POST",
        headers: { "content-type": "application/json", "x-api-key": "sk-bench", "anthropic-version": "2023-06-01" } }, (r) => {
        r.resume();
        r.on("end", () => res(Date.now()));
      });
      req.on("error", rej);
      req.end(body);
    });
    // the list draws a row the moment it adds it (dom.js virtualRows), and counts them
    const shown = await page.evaluate(async (n) => {
      const end = Date.now() + 10000;
      while (Date.now() < end) {
        if (Number(document.querySelector(".vscroll").dataset.rows) > n) return Date.now();
        await new Promise((r) => setTimeout(r, 1));
      }
      return null;
    }, before);
    if (shown === null) throw new Error(`call ${i} never appeared`);
    delays.push(shown - done);
  }
  out(`from a call's last byte to its row on screen: median ${median(delays)} ms, slowest ${Math.max(...delays)} ms of ${delays.length}`);
  const [rss, hwm] = (await ask("RSS")).split(" ").map(Number);
  out(`procy serve with the page open: ${(rss / 1024).toFixed(1)} MB resident (peak ${(hwm / 1024).toFixed(1)} MB)`);
} catch (e) {
  out(`the bench failed: ${e && e.stack || e}`);
  process.exitCode = 1;
} finally {
  await browser.close();
  lines.close();
}
