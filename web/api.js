// api.js: the JSON API and the live feed, as the monitor's views use them.
// Writes carry the server's CSRF token, which procy put in the page.

const csrf = document.querySelector('meta[name="procy-csrf"]')?.content || "";

// An HTML export (procy export --format html) carries the API's answers
// for its session: the views read them instead of asking a server, and
// nothing is written.
export const exported = (() => {
  const n = document.getElementById("procy-data");
  return n ? JSON.parse(n.textContent) : null;
})();

// here(path) -> "/api/x" as a path relative to the page: the page is served
// under the server's secret mount (/p/SECRET/), where alone the browser
// sends the cookie holding the person's token
export const here = (path) => path.replace(/^\//, "");

function fromExport(path) {
  const v = exported.api[path];
  if (v === undefined) throw new Error(`not in this export: ${path}`);
  return structuredClone(v);
}

export async function get(path) {
  if (exported) return fromExport(path);
  const r = await fetch(here(path), { headers: { accept: "application/json" } });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

export async function send(method, path, value) {
  if (exported) throw new Error("this is an export: it cannot change the record");
  const r = await fetch(here(path), {
    method,
    headers: { "content-type": "application/json", "x-procy-csrf": csrf },
    body: value === undefined ? undefined : JSON.stringify(value),
  });
  const body = await r.json().catch(() => ({ error: r.statusText }));
  if (!r.ok) throw new Error(body.error || `${r.status} ${r.statusText}`);
  return body;
}

// live(fn): fn(kind, data) for each event of /api/events, reconnecting by
// itself (EventSource sends Last-Event-ID); returns a function that stops it
export function live(fn, onstate) {
  if (exported) return () => {};
  const es = new EventSource(here("/api/events"));
  for (const kind of ["call", "change"]) {
    es.addEventListener(kind, (e) => { try { fn(kind, JSON.parse(e.data)); } catch (err) { console.warn(err); } });
  }
  es.onopen = () => onstate && onstate(true);
  es.onerror = () => onstate && onstate(false);
  return () => es.close();
}

// bin(path) -> {data: ArrayBuffer, headers}: a binary answer (the
// terminal's records, procy.replay)
export async function bin(path) {
  const r = await fetch(here(path));
  if (!r.ok) {
    const body = await r.json().catch(() => ({ error: r.statusText }));
    throw new Error(body.error || `${r.status} ${r.statusText}`);
  }
  return { data: await r.arrayBuffer(), headers: r.headers };
}

// allCalls(sid) -> every call of a session, oldest first (a page of 1000 at a time)
export async function allCalls(sid) {
  const out = [];
  for (let before = null; ;) {
    const r = await get(`/api/calls?session=${sid}&limit=1000${before ? `&before=${before}` : ""}`);
    out.push(...r.calls);
    if (!r.next) break;
    before = r.next;
  }
  return out.reverse();
}
