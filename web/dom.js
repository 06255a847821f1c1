// dom.js: how the monitor draws: elements from data with textContent only
// (what the record holds is never HTML), small SVG charts, and formats.

// visible(text): the bidirectional controls a recorded text may hold
// (U+202A-202E embeddings and overrides, U+2066-2069 isolates, the marks
// U+200E, U+200F, U+061C) written out as ⟨U+202E⟩: shown raw they reorder
// what is around them, so a prompt would read other than it is.
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
export function visible(text) {
  return String(text).replace(BIDI, (c) => `⟨U+${c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0")}⟩`);
}

// el("tag#id.class", {attrs}, ...children): an element; strings become
// text, made visible() — but in a textarea or an input, where the person
// edits the text itself
export function el(spec, attrs, ...kids) {
  const [name, ...classes] = spec.split(".");
  const [tag, id] = name.split("#");
  const n = document.createElement(tag || "div");
  const raw = tag === "textarea" || tag === "input";
  if (id) n.id = id;
  if (classes.length) n.className = classes.join(" ");
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) n.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) n.setAttribute(k, v === true ? "" : k === "title" ? visible(v) : v);
  }
  for (const k of kids.flat()) {
    if (k !== undefined && k !== null && k !== false) n.append(k instanceof Node ? k : raw ? String(k) : visible(k));
  }
  return n;
}

export const fmt = {
  time: (us) => us ? new Date(us / 1000).toLocaleString() : "",
  dur: (s) => s == null ? "" : s < 60 ? `${s.toFixed(1)} s` : s < 3600 ? `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`
    : `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`,
  num: (n) => n == null ? "" : Number(n).toLocaleString(),
  // one meaning per number (procy.usage.money): unknown is never $0
  cost: (c, unpriced) => c == null || (unpriced && !c) ? "$?"
    : unpriced ? `≥ $${Number(c).toFixed(4)} (${unpriced} unpriced)` : `$${Number(c).toFixed(4)}`,
  // procy.usage.tokens: in (not cached) · cache read · cache write · out (reasoning)
  tokens: (u) => u ? [`${fmt.num(u.input_tokens || 0)} in`,
    u.cache_read_tokens ? `${fmt.num(u.cache_read_tokens)} cache read` : null,
    u.cache_creation_tokens ? `${fmt.num(u.cache_creation_tokens)} cache write` : null,
    `${fmt.num(u.output_tokens || 0)} out` + (u.reasoning_tokens ? ` (${fmt.num(u.reasoning_tokens)} reasoning)` : "")]
    .filter(Boolean).join(" · ") : "",
  ms: (us) => us == null ? "" : `${(us / 1000).toFixed(1)} ms`,
};


const SVG = "http://www.w3.org/2000/svg";
export function svg(tag, attrs, ...kids) {
  const n = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) n.setAttribute(k, v);
  for (const k of kids.flat()) if (k !== undefined && k !== null && k !== false) n.append(k instanceof Node ? k : visible(k));
  return n;
}

// chart(series, {width, height, ylabel}): points and lines over x = 1..n;
// series: [{name, points: [{x, y, mark}], line: true|false, cls}]
export function chart(series, o = {}) {
  const w = o.width || 640, h = o.height || 220, pad = 36;
  const xs = series.flatMap((s) => s.points.map((p) => p.x)), ys = series.flatMap((s) => s.points.map((p) => p.y)).filter((y) => y != null);
  if (!ys.length) return el("p.muted", {}, "nothing scored yet");
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys), y1 = Math.max(...ys, y0 + 1e-9);
  const X = (x) => pad + (x - x0) / (x1 - x0) * (w - 2 * pad), Y = (y) => h - pad - (y - y0) / (y1 - y0 || 1) * (h - 2 * pad);
  const g = svg("svg", { viewBox: `0 0 ${w} ${h}`, width: w, height: h, class: "chart", role: "img" },
    svg("line", { x1: pad, y1: h - pad, x2: w - pad, y2: h - pad, class: "axis" }),
    svg("line", { x1: pad, y1: pad, x2: pad, y2: h - pad, class: "axis" }),
    svg("text", { x: 2, y: pad, class: "tick" }, Number(y1.toPrecision(4))), svg("text", { x: 2, y: h - pad, class: "tick" }, Number(y0.toPrecision(4))),
    svg("text", { x: pad, y: h - 8, class: "tick" }, x0), svg("text", { x: w - pad, y: h - 8, class: "tick" }, x1));
  for (const s of series) {
    const pts = s.points.filter((p) => p.y != null);
    if (s.line && pts.length) g.append(svg("polyline", { points: pts.map((p) => `${X(p.x)},${Y(p.y)}`).join(" "), class: "line " + (s.cls || "") }));
    for (const p of s.line ? [] : pts) {
      g.append(svg("circle", { cx: X(p.x), cy: Y(p.y), r: 4, class: "dot " + (p.mark || "") + " " + (s.cls || ""), "data-x": p.x },
        svg("title", {}, `${s.name} ${p.x}: ${p.y}${p.mark ? " (" + p.mark + ")" : ""}`)));
    }
  }
  return g;
}

// diff(a, b) -> lines of a line diff (longest common subsequence): {op: " "|"-"|"+", text}
export function diff(a, b) {
  const x = a.split("\n"), y = b.split("\n"), n = x.length, m = y.length;
  if (n * m > 4e6) return [...x.map((t) => ({ op: "-", text: t })), ...y.map((t) => ({ op: "+", text: t }))];
  const L = Array.from({ length: n + 1 }, () => new Int32Array(m + 1));
  for (let i = n - 1; i >= 0; i--) for (let j = m - 1; j >= 0; j--) L[i][j] = x[i] === y[j] ? L[i + 1][j + 1] + 1 : Math.max(L[i + 1][j], L[i][j + 1]);
  const out = [];
  let i = 0, j = 0;
  while (i < n && j < m) {
    if (x[i] === y[j]) { out.push({ op: " ", text: x[i] }); i++; j++; }
    else if (L[i + 1][j] >= L[i][j + 1]) out.push({ op: "-", text: x[i++] });
    else out.push({ op: "+", text: y[j++] });
  }
  while (i < n) out.push({ op: "-", text: x[i++] });
  while (j < m) out.push({ op: "+", text: y[j++] });
  return out;
}

// virtualRows(head, items, draw, [rowHeight]): a scrolling table that holds
// only the rows in view and half a screen either side, so thousands of
// rows scroll as smoothly as twenty: a row is drawn (draw(item)) when it
// comes into the window and kept while it stays there; the table's layout
// is fixed, so a row coming in does not lay the others out again
export function virtualRows(head, items, draw, rowHeight = 29) {
  const body = el("tbody");
  const box = el("div.vscroll", {}, el("table.fixed", {}, head, body));
  const top = el("tr.spacer"), bottom = el("tr.spacer");
  let shown = -1, drawn = new Map();
  function paint() {
    const view = Math.ceil((box.clientHeight || 800) / rowHeight);
    const first = Math.max(0, Math.floor(box.scrollTop / rowHeight) - (view >> 1));
    if (first === shown) return;
    shown = first;
    const last = Math.min(items.length, first + 2 * view);
    const next = new Map(), rows = [];
    for (let i = first; i < last; i++) {
      const tr = drawn.get(i) || draw(items[i]);
      next.set(i, tr);
      rows.push(tr);
    }
    drawn = next;
    top.style.height = `${first * rowHeight}px`;
    bottom.style.height = `${(items.length - last) * rowHeight}px`;
    body.replaceChildren(top, ...rows, bottom);
  }
  let queued = false;
  box.addEventListener("scroll", () => { if (!queued) { queued = true; requestAnimationFrame(() => { queued = false; paint(); }); } });
  paint();
  // add(item): one more row at the end (a call just recorded), drawn now
  box.add = (item) => { items.push(item); shown = -1; paint(); box.dataset.rows = items.length; };
  box.dataset.rows = items.length;
  // show(i): scrolls row i into view
  box.show = (i) => { const y = i * rowHeight; if (y < box.scrollTop || y > box.scrollTop + box.clientHeight - rowHeight) box.scrollTop = Math.max(0, y - box.clientHeight / 2); };
  box.row = (i) => drawn.get(i);
  return box;
}
