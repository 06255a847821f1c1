// terminal.js: the Terminal tab. The session's terminal is replayed in
// xterm.js from procy's snapshots (procy.replay): a seek draws the snapshot
// nearest before the moment and the output after it, never everything from
// the start. Play, pause, speed, a scrubber with the markers (!mark, each
// prompt, each API call) and beside it the prompts and calls on the same
// clock: click one and the terminal goes there; as it plays, or as you
// scrub, the call in flight at that moment is lit. A running session's
// output comes as it is recorded.
import { Terminal } from "./vendor/xterm.mjs";
import { get, bin, allCalls, exported } from "./api.js";
import { el, virtualRows } from "./dom.js";

// records(buffer): the records of procy.replay (t µs float64, length
// uint32, kind byte, data; little-endian)
export function* records(buf) {
  const dv = new DataView(buf);
  for (let at = 0; at + 13 <= buf.byteLength;) {
    const t = dv.getFloat64(at, true), n = dv.getUint32(at + 8, true), kind = String.fromCharCode(dv.getUint8(at + 12));
    yield { t, kind, data: new Uint8Array(buf, at + 13, n) };
    at += 13 + n;
  }
}

const text = (bytes) => new TextDecoder().decode(bytes);
export const clock = (us) => {
  const s = Math.max(0, us) / 1e6, m = Math.floor(s / 60);
  return `${m}:${(s % 60).toFixed(1).padStart(4, "0")}`;
};

// the record over HTTP: meta, calls, seek(t) and events(after), the last
// two giving {recs, last, more}; the HTML export has a source of the same
// shape (exportSource)
export function httpSource(sid) {
  const base = `/api/sessions/${sid}/terminal`;
  const answer = async (path) => {
    const r = await bin(path);
    return { recs: [...records(r.data)], last: Number(r.headers.get("x-procy-last") || 0), more: r.headers.get("x-procy-more") === "1" };
  };
  return {
    meta: () => get(base),
    calls: () => allCalls(sid),
    seek: (t) => answer(`${base}/seek?t=${Math.round(t)}`),
    events: (after) => answer(`${base}/events?after=${after}`),
  };
}

// the record inlined in an HTML export (procy.share): frames with their
// snapshots, every event with its id, as base64 of records
export function exportSource(t) {
  const bytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)).buffer;
  const frames = t.frames.map((f) => ({ ...f, rec: [...records(bytes(f.data))] }));
  const events = [...records(bytes(t.events))].map((r, i) => ({ ...r, id: t.ids[i] }));
  const after = (id) => { let lo = 0, hi = events.length; while (lo < hi) { const m = (lo + hi) >> 1; if (events[m].id <= id) lo = m + 1; else hi = m; } return lo; };
  return {
    meta: async () => t.meta,
    calls: async () => t.calls,
    seek: async (at) => {
      let f = frames[0];
      for (const x of frames) { if (x.t > at) break; f = x; }
      const recs = [...f.rec];
      let last = f.after;
      for (let i = after(f.after); i < events.length && events[i].t <= at; i++) {
        if (events[i].kind === "o" || events[i].kind === "r") recs.push(events[i]);
        last = events[i].id;
      }
      return { recs, last, more: false };
    },
    events: async (id) => { const i = after(id); return { recs: events.slice(i), last: events.length ? events[events.length - 1].id : id, more: false }; },
  };
}

const IDLE = 2e6; // a pause longer than 2 s of recording plays as 2 s

export async function terminalTab(s, opts = {}) {
  const source = opts.source || (exported ? exportSource(exported.terminal) : httpSource(s.id));
  const [meta, calls] = await Promise.all([source.meta(), source.calls()]);
  const start = meta.start;
  let duration = meta.duration, pos = 0, last = 0, fetched = 0, queue = [], more = true, filling = false;
  // follow: showing a running session's output as it comes (set once the
  // first seek has drawn its end); seeking: a seek is being drawn
  let playing = false, speed = 1, prev = 0, follow = false, seeks = 0, seeking = 0, dragging = false;

  const screen = el("div.screen");
  const term = new Terminal({ cols: meta.cols, rows: meta.rows, scrollback: 5000, disableStdin: true,
    cursorBlink: false, fontSize: 13, allowProposedApi: false });
  const scrub = el("input.scrub", { type: "range", min: 0, max: Math.max(1, duration), step: "any", value: 0,
    "aria-label": "position" });
  const time = el("span.clock", {}, "");
  const play = el("button", { onclick: () => (playing ? pause() : resume()) }, "▶ play");
  const speeds = el("select", { "aria-label": "speed", onchange: (e) => { speed = Number(e.target.value); } },
    [0.5, 1, 2, 4, 8, 16].map((x) => el("option", { value: x, selected: x === 1 }, `${x}×`)));
  const live = el("button", { onclick: () => goLive() }, "● live");
  if (meta.status !== "running") live.hidden = true;

  // the markers on the scrubber and the list beside the terminal
  const items = [
    ...meta.marks.map((m) => ({ t: m.t, kind: m.kind, label: m.kind === "gap" ? `output lost: ${m.label}` : m.label })),
    // a turn's times are in seconds
    ...s.turns.map((t) => ({ t: t.started_at * 1e6 - start, kind: "prompt", label: `turn ${t.seq}: ${(t.prompt || "").slice(0, 80)}`, seq: t.seq })),
    ...calls.map((c) => ({ t: c.started_at - start, end: c.started_at - start + (c.duration_us || 0), kind: "call",
      label: `#${c.id} ${c.method} ${c.path} ${c.model || ""} ${c.status ?? c.error ?? ""}`, id: c.id })),
  ].sort((a, b) => a.t - b.t);
  items.forEach((it, i) => { it.i = i; });
  let lit = new Set(); // the prompt and the calls in flight at pos

  // the list: thousands of calls, only the rows in view drawn
  const row = (it) => el("tr.tl." + it.kind + (lit.has(it) ? ".inflight" : ""),
    { "data-t": Math.round(it.t), "data-call": it.id, onclick: () => seek(it.t) },
    el("td.clock", {}, clock(it.t)), el("td", {}, el("span.badge", {}, it.kind)), el("td", {}, it.label));
  const rows = virtualRows(el("thead", {}, el("tr", {}, el("th", {}, "at"), el("th", {}, ""), el("th", {}, "what"))), items, row, 25);
  const list = el("div.timeline", {}, rows);

  // the markers on the scrubber, on one canvas (thousands of calls are
  // thousands of lines, not thousands of elements); a click goes to the
  // nearest within 4 px, else to where it fell
  const counts = {};
  for (const it of items) counts[it.kind] = (counts[it.kind] || 0) + 1;
  const marks = el("canvas.marks", { height: 10, title: "markers: prompts, !mark, API calls", "data-counts": JSON.stringify(counts) });
  const colors = { call: "rgba(106, 115, 125, .45)", gap: "#cb2431", mark: "#22863a", prompt: "#0366d6" };
  function placeTicks() {
    const w = marks.clientWidth || 800;
    marks.width = w;
    const g = marks.getContext("2d");
    g.clearRect(0, 0, w, 10);
    for (const kind of Object.keys(colors)) {
      g.fillStyle = colors[kind];
      for (const it of items) if (it.kind === kind) g.fillRect(Math.round(it.t / Math.max(1, duration) * (w - 3)), 0, kind === "call" ? 1 : 3, 10);
    }
  }
  marks.addEventListener("click", (e) => {
    const w = marks.clientWidth || 1, t = e.offsetX / w * duration, slack = 4 / w * duration;
    let best = null;
    for (const it of items) if (Math.abs(it.t - t) <= slack && (!best || Math.abs(it.t - t) < Math.abs(best.t - t))) best = it;
    seek(best ? best.t : t);
  });

  function highlight() {
    const now = new Set();
    let prompt = null;
    for (const it of items) {
      if (it.t > pos) break;
      if (it.kind === "call" && pos <= Math.max(it.end, it.t)) now.add(it);
      if (it.kind === "prompt") prompt = it;
    }
    if (prompt) now.add(prompt);
    let first = null;
    for (const it of lit) if (!now.has(it)) rows.row(it.i)?.classList.remove("inflight");
    for (const it of now) if (!lit.has(it)) { rows.row(it.i)?.classList.add("inflight"); if (!first || it.i < first.i) first = it; }
    lit = now;
    if (first && !dragging) rows.show(first.i);
  }

  function show() {
    if (!dragging) scrub.value = pos;
    scrub.max = Math.max(1, duration);
    time.textContent = `${clock(pos)} / ${clock(duration)}`;
    box.dataset.pos = Math.round(pos);
    highlight();
  }

  function apply(r, written) {
    if (r.kind === "r") {
      const [c, rows] = text(r.data).split("x").map(Number);
      if (c > 0 && rows > 0) term.resize(c, rows);
    } else if (r.kind === "o" || r.kind === "s") {
      term.write(r.data, written);
    }
    if (r.t > duration) duration = r.t;
  }

  // seek(t): the screen at t, drawn from the nearest snapshot; the promise
  // ends when xterm.js has drawn it (box.dataset.seeks counts them)
  async function seek(t) {
    const mine = ++seeks;
    follow = false;
    seeking++;
    try { await draw(mine, t); } finally { seeking--; }
  }
  async function draw(mine, t) {
    const r = await source.seek(Math.max(0, Math.min(t, duration)));
    if (mine !== seeks) return; // a later seek won
    term.reset();
    // drawn: xterm.js calls the last write back once it has parsed it
    const recs = r.recs;
    const final = recs.findLast((x) => x.kind === "o" || x.kind === "s");
    await new Promise((done) => {
      for (const x of recs) apply(x, x === final ? done : undefined);
      if (!final) done();
    });
    last = fetched = r.last;
    queue = [];
    more = true;
    pos = Math.max(0, Math.min(t, duration));
    box.dataset.seeks = mine;
    show();
  }

  async function fill() {
    if (filling || !more || queue.length > 500) return;
    filling = true;
    try {
      const r = await source.events(fetched);
      for (const x of r.recs) queue.push(x);
      fetched = r.last || fetched;
      more = r.more;
    } finally { filling = false; }
  }

  function tick(now) {
    if (!playing) return;
    let target = pos + (now - prev) * 1000 * speed;
    prev = now;
    if (queue.length && queue[0].t - pos > IDLE) target = Math.max(target, queue[0].t - IDLE); // a long pause, shortened
    while (queue.length && queue[0].t <= target) apply(queue.shift());
    pos = Math.min(target, Math.max(duration, pos));
    if (queue.length < 100) fill();
    if (!queue.length && !more && !filling && pos >= duration) {
      pos = duration;
      if (meta.status === "running") { pause(); follow = true; } else pause();
    }
    show();
    requestAnimationFrame(tick);
  }

  function resume() {
    if (pos >= duration && !more) seek(0).then(resume);
    playing = true;
    play.textContent = "❚❚ pause";
    prev = performance.now();
    fill();
    requestAnimationFrame(tick);
  }
  function pause() { playing = false; play.textContent = "▶ play"; }

  // live: the end of the recording, then each event as it is recorded
  async function goLive() {
    pause();
    await seek(Number.MAX_SAFE_INTEGER);
    follow = true;
    await refresh();
  }
  // refresh(): the record changed. Following, what came since is written;
  // else only the duration grows. One at a time (a change meanwhile runs
  // it again), and never while a seek is drawn, nor past a seek begun
  // meanwhile (the seek owns the screen then).
  let refreshing = false, again = false;
  async function refresh() {
    if (refreshing) { again = true; return; }
    refreshing = true;
    try {
      do {
        again = false;
        await catchUp();
      } while (again);
    } finally { refreshing = false; }
  }
  async function catchUp() {
    if (!follow || seeking) {
      duration = Math.max(duration, (await source.meta()).duration);
      placeTicks();
      return show();
    }
    const mine = seeks;
    for (;;) {
      const r = await source.events(fetched);
      if (mine !== seeks || !follow) return;
      for (const x of r.recs) { apply(x); pos = Math.max(pos, x.t); }
      last = fetched = r.last || fetched;
      if (!r.more) break;
    }
    pos = duration;
    show();
  }

  scrub.addEventListener("input", () => { dragging = true; pos = Number(scrub.value); show(); });
  scrub.addEventListener("change", async () => { dragging = false; const was = playing; pause(); await seek(Number(scrub.value)); if (was) resume(); });

  const box = el("div.player", {},
    el("div.controls", {}, play, " ", speeds, " ", live, " ", time),
    el("div.scrubber", {}, marks, scrub),
    el("div.split", {}, el("div.term", {}, screen), list));
  const player = { seek, term, get pos() { return pos; }, get duration() { return duration; },
    screenText: () => { const b = term.buffer.active, out = []; for (let y = 0; y < term.rows; y++) out.push(b.getLine(b.baseY + y)?.translateToString(true) ?? ""); return out.join("\n"); } };
  window.procyPlayer = player; // for the tests and the benchmarks
  return {
    node: box,
    mounted: async () => {
      term.open(screen);
      placeTicks();
      const at = opts.t != null ? Number(opts.t) : meta.status === "running" ? Number.MAX_SAFE_INTEGER : 0;
      await seek(at);
      if (opts.t == null && meta.status === "running") {
        follow = true;
        await refresh(); // what was recorded while the seek was drawn
      }
      box.dataset.ready = "1";
    },
    refresh,
    dispose: () => { pause(); term.dispose(); if (window.procyPlayer === player) delete window.procyPlayer; },
  };
}
