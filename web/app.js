// app.js: the procy monitor. Hash routes: #/ (sessions), #/s/ID/TAB (a
// session: interactions, calls, turns, corrections). Everything is drawn
// with DOM nodes and textContent: what the record holds is never HTML.
import { get, send, live, allCalls, exported, here } from "./api.js";
import { el, fmt, virtualRows } from "./dom.js";
import { evolveTab } from "./evolve.js";
import { trainingView } from "./training.js";
import { terminalTab } from "./terminal.js";

const main = document.getElementById("main");
document.getElementById("version").textContent = document.querySelector('meta[name="procy-version"]')?.content || "";

function agentOf(s) { return (s.argv && s.argv[0] || "").split("/").pop(); }

// ---- the sessions list ---------------------------------------------------------------------

const filters = { agent: "", cwd: "", from: "", to: "", evolve: false, corrections: false };

async function sessionsView() {
  const box = el("div");
  const table = el("table", {},
    el("thead", {}, el("tr", {}, ["session", "started", "agent", "directory", "status", "duration"].map((h) => el("th", {}, h)),
      ["turns", "calls", "tokens", "cost"].map((h) => el("th.num", {}, h)))),
    el("tbody"));
  const input = (key, type, placeholder) => el("input", { type, placeholder, value: filters[key] || undefined,
    oninput: (e) => { filters[key] = type === "checkbox" ? e.target.checked : e.target.value; draw(); } });
  const evolveBox = input("evolve", "checkbox"); evolveBox.checked = filters.evolve;
  const corrBox = input("corrections", "checkbox"); corrBox.checked = filters.corrections;
  box.append(el("h2", {}, "Sessions"), el("div.filters", {},
    input("agent", "search", "agent"), input("cwd", "search", "project directory"),
    el("label", {}, "from ", input("from", "date")), el("label", {}, "to ", input("to", "date")),
    el("label", {}, evolveBox, " has evolve"), el("label", {}, corrBox, " has corrections")), table);
  let rows = [], seen = null;
  function draw() {
    const body = table.tBodies[0];
    body.replaceChildren();
    const from = filters.from ? Date.parse(filters.from) * 1000 : null, to = filters.to ? (Date.parse(filters.to) + 86400000) * 1000 : null;
    for (const s of rows) {
      const st = s.stats || {};
      if (filters.agent && !agentOf(s).includes(filters.agent)) continue;
      if (filters.cwd && !(s.cwd || "").includes(filters.cwd)) continue;
      if (from && s.started_at < from) continue;
      if (to && s.started_at >= to) continue;
      if (filters.evolve && !st.runs) continue;
      if (filters.corrections && !st.corrections) continue;
      const end = s.ended_at || (s.status === "running" ? Date.now() * 1000 : s.started_at);
      const tr = el("tr.row", { "data-id": s.id, onclick: () => { location.hash = `#/s/${s.id}/interactions`; } },
        el("td", {}, el("code", {}, s.id.slice(0, 8))), el("td", {}, fmt.time(s.started_at)), el("td", {}, agentOf(s)),
        el("td", {}, s.cwd || ""), el("td", {}, s.status), el("td", {}, fmt.dur((end - s.started_at) / 1e6)),
        el("td.num", {}, fmt.num(st.turns)), el("td.num", {}, fmt.num(st.calls)),
        el("td.num", {}, fmt.num((st.input_tokens || 0) + (st.output_tokens || 0) + (st.cache_read_tokens || 0))),
        el("td.num", {}, fmt.cost(st.cost, st.unpriced)));
      if (seen && !seen.has(s.id)) tr.classList.add("new");
      body.append(tr);
    }
    if (!body.children.length) body.append(el("tr", {}, el("td.muted", { colspan: 10 }, rows.length ? "no session matches" : "nothing recorded yet")));
  }
  async function load() {
    rows = (await get("/api/sessions?limit=500")).sessions;
    draw();
    seen = new Set(rows.map((s) => s.id));
  }
  await load();
  return { node: box, refresh: load };
}

// ---- a session -----------------------------------------------------------------------------

const tabs = ["interactions", "terminal", "calls", "turns", "evolve", "corrections"];

function toolView(t) {
  const input = t.input || {};
  const body = [];
  if (t.name === "Edit" || t.name === "MultiEdit") {
    const edits = input.edits || [input];
    body.push(el("div.muted", {}, input.file_path || ""));
    for (const e of edits) {
      body.push(el("pre", {}, ...(e.old_string || "").split("\n").map((l) => el("div.del", {}, "- " + l)),
        ...(e.new_string || "").split("\n").map((l) => el("div.add", {}, "+ " + l))));
    }
  } else if (t.name === "Write" || t.name === "Read") {
    body.push(el("div.muted", {}, input.file_path || ""));
    const text = t.name === "Write" ? input.content : (typeof t.result === "string" ? t.result : "");
    if (text) body.push(el("pre", {}, text));
  } else if (t.name === "TodoWrite" && Array.isArray(input.todos)) {
    body.push(el("ul", {}, input.todos.map((x) => el("li", {}, `[${x.status || " "}] ${x.content || x.activeForm || ""}`))));
  } else if (t.name === "Bash") {
    body.push(el("pre", {}, "$ " + (input.command || "")));
  } else {
    body.push(el("pre", {}, JSON.stringify(input, null, 2)));
  }
  if (t.name !== "Read" && t.result != null && t.result !== "") {
    body.push(el("details", {}, el("summary", {}, "result"), el("pre", {}, typeof t.result === "string" ? t.result : JSON.stringify(t.result, null, 2))));
  }
  return el("div" + (t.is_error ? ".tool.error" : ".tool"), {}, el("strong", {}, t.name), ...body);
}

function interactions(s, ctx) {
  const box = el("div");
  if (!s.turns.length) box.append(el("p.muted", {}, "no turns yet"));
  // turns known from the terminal alone (procy.turns.terminal_note)
  if (!(s.stats || {}).calls && s.turns.some((t) => t.known_from === "terminal")) {
    box.append(el("p#api-unseen.notice", {}, "procy does not see this agent's API: its turns come from the terminal "
      + "(the line the person typed, until the agent was idle again), with no tokens, no tool calls and no cost"));
  }
  for (const t of s.turns) {
    const prompt = el("div.prompt", { title: "click to correct this prompt", onclick: () => correctForm(s, t, box, ctx) }, t.prompt || "");
    box.append(el("div.turn", { id: `turn-${t.seq}` },
      el("h3", {}, `Turn ${t.seq} `, el("span.badge." + t.source, {}, t.source), " ",
        el("span.badge" + (t.status === "error" ? ".error" : ""), {}, t.status), " ",
        t.known_from === "terminal" ? el("span.badge.terminal", { title: "known from the terminal alone" }, "terminal") : null, " ",
        el("span.muted", {}, t.known_from === "terminal" ? "" : `${fmt.tokens(t.usage)} · ${fmt.cost(t.cost)}`)),
      prompt,
      (t.tools || []).map(toolView),
      t.response && t.response !== null ? el("div.answer", {}, t.response) : null));
  }
  return box;
}

function correctForm(s, t, box, ctx) {
  const text = el("textarea", {}, t.prompt || "");
  const note = el("input", { placeholder: "note (optional)" });
  const msg = el("div");
  const form = el("div.form", {}, el("strong", {}, `Correct the prompt of turn ${t.seq}`), text, note,
    el("div", {}, el("button", { onclick: async () => {
      try {
        const r = await send("POST", "/api/corrections", { session: s.id, turn: t.seq, corrected: text.value, note: note.value || undefined });
        ctx.reload(`correction ${r.id} kept for turn ${t.seq}`);
      } catch (e) { msg.replaceChildren(el("span.error", {}, e.message)); }
    } }, "keep the correction"), " ", el("button", { onclick: () => form.remove() }, "cancel")), msg);
  document.getElementById(`turn-${t.seq}`)?.append(form);
  text.focus();
}

// the calls, oldest first: thousands of them scroll smoothly, only the
// rows in view being drawn (dom.js virtualRows)
async function calls(s) {
  const list = await allCalls(s.id);
  const detail = el("div#call-detail", {}, el("p.muted", {}, "pick a call"));
  if (!list.length) return el("p.muted", {}, "no API calls in this session");
  const head = el("thead", {}, el("tr", {}, ["#", "path", "status", "model", "role"].map((h) => el("th", {}, h)),
    ["ttfb", "time", "in", "out", "cache read", "cost"].map((h) => el("th.num", {}, h)), el("th", {}, "terminal")));
  const row = (c) => el("tr.row", { "data-call": c.id, onclick: () => showCall(c.id, detail) },
    el("td", {}, c.id), el("td", {}, `${c.method} ${c.path}`), el("td", {}, c.status ?? (c.error ? "error" : "")),
    el("td", {}, c.model || "", c.routed_model ? ` → ${c.routed_model}` : "",
      c.provider ? el("span.badge.routed", { title: `route ${c.route}` }, ` routed: ${c.provider}`) : null),
    el("td", {}, c.role || ""),
    el("td.num", {}, fmt.ms(c.ttfb_us)), el("td.num", {}, fmt.ms(c.duration_us)),
    el("td.num", {}, fmt.num(c.input_tokens)), el("td.num", {}, fmt.num(c.output_tokens)),
    el("td.num", {}, fmt.num(c.cache_read_tokens)), el("td.num", {}, fmt.cost(c.cost)),
    el("td", {}, el("a", { href: `#/s/${s.id}/terminal?t=${c.started_at - s.started_at}`, title: "the terminal at this call",
      onclick: (e) => e.stopPropagation() }, "▶")));
  if (query.call) showCall(query.call, detail);
  const rows = virtualRows(head, list, row);
  // live: a call recorded now is a row at once (the server's `call`
  // event); a change the event did not tell of, fetched from the last id
  const ids = new Set(list.map((c) => c.id));
  const add = (c) => { if (!ids.has(c.id)) { ids.add(c.id); rows.add({ ...c, session_id: c.session_id || c.session }); } };
  liveCalls = {
    sid: s.id,
    add,
    more: async () => {
      const last = list.length ? list[list.length - 1].id : 0;
      for (const c of (await get(`/api/calls?session=${s.id}&after=${last}&limit=1000`)).calls.reverse()) add(c);
    },
  };
  return el("div.split", {}, rows, detail);
}
let liveCalls = null;

// an SSE stream as its events: [{event, data}]
function sseEvents(text) {
  const out = [];
  for (const block of (text || "").split(/\r?\n\r?\n/)) {
    let event = "message";
    const data = [];
    for (const line of block.split(/\r?\n/)) {
      if (line.startsWith("event:")) event = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
    }
    if (data.length) out.push({ event, data: data.join("\n") });
  }
  return out;
}

function messageText(m) {
  const parts = typeof m.content === "string" ? [m.content] : (m.content || []).map((b) =>
    b.type === "text" ? b.text : b.type === "tool_use" ? `[tool_use ${b.name}] ${JSON.stringify(b.input)}`
      : b.type === "tool_result" ? `[tool_result ${b.tool_use_id}] ${typeof b.content === "string" ? b.content : JSON.stringify(b.content)}`
      : `[${b.type}]`);
  return `${m.role}: ${parts.join("\n")}`;
}

async function showCall(id, box) {
  const [c, d] = await Promise.all([get(`/api/calls/${id}`), get(`/api/calls/${id}/diff`).catch(() => null)]);
  const req = typeof c.request === "object" && c.request ? c.request : {};
  const sys = Array.isArray(req.system) ? req.system.map((b) => b.text || "").join("\n\n") : req.system || "";
  const events = c.stream ? sseEvents(c.response) : [];
  const limits = c.ratelimit && typeof c.ratelimit === "object" ? Object.entries(c.ratelimit) : [];
  box.replaceChildren(...[el("h3", {}, `Call ${c.id}: ${c.method} ${c.path} → ${c.status ?? c.error ?? ""}`),
    el("p", {}, `model ${c.model || "?"}${c.routed_model ? " → " + c.routed_model : ""} · ttfb ${fmt.ms(c.ttfb_us)} · ${fmt.ms(c.duration_us)} · `
      + `${fmt.tokens(c)} · ${fmt.cost(c.cost)}`),
    c.error ? el("p.error", {}, c.error) : null,
    c.provider ? el("p#call-route", {}, `routed by ${c.route} to ${c.provider} (${c.routed_model || c.model}), which answered ${c.up_status ?? "nothing"}`) : null,
    c.provider_request ? el("details", {}, el("summary", {}, "what the provider got"), el("pre", {}, c.provider_request)) : null,
    c.provider_response ? el("details", {}, el("summary", {}, "what the provider answered"), el("pre", {}, c.provider_response)) : null,
    d ? el("details#call-new", { open: true }, el("summary", {}, d.previous
      ? `new since call ${d.previous}: ${d.added.length} message${d.added.length === 1 ? "" : "s"} (${d.kept} kept${d.dropped ? `, ${d.dropped} dropped` : ""})`
        + `${d.system_changed ? ", the system prompt changed" : ""}${d.model_changed ? ", another model" : ""}`
        + `${d.tools_added.length ? `, tools added: ${d.tools_added.join(", ")}` : ""}${d.tools_removed.length ? `, tools removed: ${d.tools_removed.join(", ")}` : ""}`
      : "the first call of its conversation"),
      el("pre", {}, d.added.map(messageText).join("\n\n"))) : null,
    limits.length ? el("details", {}, el("summary", {}, "rate limits"),
      el("table.kv", {}, limits.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", {}, String(v)))))) : null,
    el("details", {}, el("summary", {}, "headers (redacted)"), el("pre", {}, JSON.stringify({ request: c.req_headers, response: c.resp_headers }, null, 2))),
    sys ? el("details", {}, el("summary", {}, "system"), el("pre", {}, sys)) : null,
    Array.isArray(req.tools) ? el("details", {}, el("summary", {}, `tools (${req.tools.length})`), el("pre", {}, req.tools.map((t) => t.name).join("\n"))) : null,
    Array.isArray(req.messages) ? el("details", {}, el("summary", {}, `messages (${req.messages.length})`), el("pre", {}, JSON.stringify(req.messages, null, 2))) : null,
    el("details", { open: true }, el("summary", {}, "the answer, reassembled"), el("pre", {}, (c.content || []).map((b) =>
      b.type === "text" ? b.text : b.type === "tool_use" ? `[tool_use ${b.name}] ${JSON.stringify(b.input)}` : `[${b.type}]`).join("\n"))),
    events.length ? el("details#call-events", {}, el("summary", {}, `the stream, event by event (${events.length})`),
      el("ol.events", {}, events.map((e) => el("li", {}, el("strong", {}, e.event), " ", el("code", {}, e.data))))) : null,
    el("details", {}, el("summary", {}, "the raw response"), el("pre", {}, c.response || ""))].filter(Boolean));
}

function turnsTable(s) {
  return el("table", {}, el("thead", {}, el("tr", {}, ["turn", "source", "status", "prompt"].map((h) => el("th", {}, h)),
    ["main calls", "side calls", "tools", "in", "out", "cache hit", "cost", "time"].map((h) => el("th.num", {}, h)))),
    el("tbody", {}, s.turns.map((t) => {
      const u = t.usage || {};
      const total = (u.input_tokens || 0) + (u.cache_read_tokens || 0) + (u.cache_creation_tokens || 0);
      return el("tr", {}, el("td", {}, t.seq), el("td", {}, t.source), el("td", {}, t.status),
        el("td", {}, (t.prompt || "").slice(0, 80)), el("td.num", {}, fmt.num(t.main_calls)), el("td.num", {}, fmt.num(t.side_calls)),
        el("td.num", {}, fmt.num((t.tools || []).length)), el("td.num", {}, fmt.num(u.input_tokens)), el("td.num", {}, fmt.num(u.output_tokens)),
        el("td.num", {}, total ? `${Math.round(100 * (u.cache_read_tokens || 0) / total)} %` : ""), el("td.num", {}, fmt.cost(t.cost)),
        el("td.num", {}, t.duration != null ? fmt.dur(t.duration) : ""));
    })));
}

const exportFormats = ["trl-sft", "trl-dpo", "trl-kto", "openai-sft", "openai-dpo", "alpaca"];

async function correctionsTab(s, ctx) {
  const list = (await get(`/api/corrections?session=${s.id}&limit=1000`)).corrections;
  const counts = {};
  for (const c of list) counts[c.kind] = (counts[c.kind] || 0) + 1;
  const exports = el("p.exports", {}, "training data from this session: ", exportFormats.map((f) =>
    el("a.button", { href: here(`/api/training/export?format=${f}&session=${s.id}`), download: `${f}.train.jsonl` }, f)));
  if (!list.length) return el("div", {}, el("p.muted", {}, "no corrections yet: click a prompt in Interactions to correct it"), exported ? null : exports);
  const edit = (c, cell) => {
    const text = el("textarea", {}, c.corrected);
    const note = el("input", { placeholder: "note", value: c.note || undefined });
    const msg = el("div");
    cell.replaceChildren(el("div.form", {}, text, note, el("div", {},
      el("button", { onclick: async () => {
        try { await send("PATCH", `/api/corrections/${c.id}`, { corrected: text.value, note: note.value || undefined }); ctx.reload(`correction ${c.id} changed`); }
        catch (e) { msg.replaceChildren(el("span.error", {}, e.message)); }
      } }, "save"), " ", el("button", { onclick: () => ctx.reload() }, "cancel")), msg));
    text.focus();
  };
  return el("div", {},
    el("p.counts", {}, Object.entries(counts).map(([k, n]) => el("span.badge", { "data-kind": k }, `${k} ${n}`)), " ", exported ? null : exports),
    el("table", {}, el("thead", {}, el("tr", {}, ["id", "turn", "kind", "source", "original", "corrected", "note", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, list.map((c) => {
        const corrected = el("td", {}, el("pre", {}, c.corrected));
        return el("tr", { "data-correction": c.id }, el("td", {}, c.id), el("td", {}, c.turn_seq ?? ""), el("td", {}, c.kind),
          el("td", {}, c.source || ""), el("td", {}, el("pre", {}, c.original)), corrected, el("td", {}, c.note || ""),
          el("td", {}, el("button", { onclick: () => edit(c, corrected) }, "edit"), " ",
            el("button", { onclick: async () => { await send("DELETE", `/api/corrections/${c.id}`); ctx.reload(`correction ${c.id} removed`); } }, "delete")));
      }))));
}

async function sessionView(id, tab) {
  const s = await get(`/api/sessions/${id}`);
  const st = s.stats || {};
  const box = el("div", {}, el("h2", {}, `Session ${s.id.slice(0, 8)} `, el("span.muted", {}, `${agentOf(s)} · ${s.cwd || ""} · ${s.status}`)),
    el("p.muted", {}, `${fmt.time(s.started_at)} · ${fmt.num(st.turns)} turns · ${fmt.num(st.calls)} calls · ${fmt.tokens(st)} · ${fmt.cost(st.cost, st.unpriced)}`
      + (s.agent_session_id ? ` · the agent's session ${s.agent_session_id}` : "")),
    s.parent_id || (s.forks && s.forks.length) ? el("p#family.muted", {},
      s.parent_id ? ["forked from ", el("a", { href: `#/s/${s.parent_id}` }, s.parent_id.slice(0, 8)), ` at turn ${s.fork_turn}`] : null,
      (s.forks || []).map((f) => [" · fork ", el("a", { href: `#/s/${f.id}` }, f.id.slice(0, 8)), ` at turn ${f.fork_turn}`])) : null,
    el("nav.tabs", {}, tabs.map((t) => el("a" + (t === tab ? ".on" : ""), { href: `#/s/${s.id}/${t}` }, t[0].toUpperCase() + t.slice(1)))));
  const ctx = { reload: (message) => { flash = message || ""; render(); } };
  if (tab === "terminal") {
    const player = await terminalTab(s, { t: query.t });
    box.append(el("section", { id: "tab-terminal" }, player.node));
    return { ...player, node: box };
  }
  const body = tab === "calls" ? await calls(s) : tab === "turns" ? turnsTable(s) : tab === "evolve" ? await evolveTab(s)
    : tab === "corrections" ? await correctionsTab(s, ctx) : interactions(s, ctx);
  box.append(el("div", { id: "flash" }, flash), el("section", { id: `tab-${tab}` }, body));
  flash = "";
  // a link to a turn (a search hit): marked, and shown when the view opens
  const mark = (scroll) => {
    const n = query.turn && box.querySelector(`#turn-${query.turn}`);
    if (n) { n.classList.add("target"); if (scroll) n.scrollIntoView({ block: "center" }); }
  };
  const mounted = () => mark(true);
  // live: the tab drawn again when the record changes (evolve's progress, a
  // new turn or call), where it was scrolled to; not while a form is open
  const refresh = async () => {
    if (box.querySelector(".form")) return;
    if (tab === "calls" && liveCalls && liveCalls.sid === s.id) return liveCalls.more();
    const section = box.querySelector(`#tab-${tab}`);
    const fresh = await get(`/api/sessions/${id}`);
    const y = window.scrollY, inner = section.querySelector(".vscroll")?.scrollTop;
    const body = tab === "calls" ? await calls(fresh) : tab === "turns" ? turnsTable(fresh) : tab === "evolve" ? await evolveTab(fresh)
      : tab === "corrections" ? await correctionsTab(fresh, ctx) : interactions(fresh, ctx);
    section.replaceChildren(body);
    if (inner) section.querySelector(".vscroll").scrollTop = inner;
    window.scrollTo(0, y);
    mark(false);
  };
  const onCall = (c) => { if (tab === "calls" && liveCalls && liveCalls.sid === s.id && c.session === s.id) liveCalls.add(c); };
  return { node: box, refresh, mounted, onCall };
}

// ---- search --------------------------------------------------------------------------------

// where a hit opens: the terminal at that moment, the turn, the call
function hitLink(h) {
  const s = `#/s/${h.session_id}`;
  if (h.kind === "term") return `${s}/terminal?t=${Math.max(0, Math.round(h.rel_t || 0))}`;
  if (h.kind === "call") return `${s}/calls?call=${h.ref}`;
  if (h.kind === "tool") return `${s}/interactions?turn=${h.turn ?? ""}`;
  return `${s}/interactions?turn=${h.ref}`;
}

async function searchView(q) {
  const box = el("div", {}, el("h2", {}, "Search ", el("span.muted", {}, q)));
  if (!q) return box;
  const r = await get(`/api/search?q=${encodeURIComponent(q)}&limit=100`);
  if (!r.hits.length) box.append(el("p.muted", {}, "no hit"));
  box.append(el("ol.hits", {}, r.hits.map((h) => el("li.hit", { "data-kind": h.kind },
    el("a", { href: hitLink(h) }, el("code", {}, (h.session_id || "").slice(0, 8)), " ", el("span.badge", {}, h.kind), " ",
      h.kind === "term" ? `at ${(h.rel_t / 1e6).toFixed(1)} s` : h.kind === "call" ? `call ${h.ref}` : h.kind === "tool" ? `tool call ${h.ref}` : `turn ${h.ref}`),
    el("div.snippet", {}, h.parts.map((p, i) => (i % 2 ? el("mark", {}, p) : p)))))));
  return box;
}

if (exported) document.getElementById("search").hidden = true; // an export holds no index
document.getElementById("search").addEventListener("submit", (e) => {
  e.preventDefault();
  location.hash = `#/search?q=${encodeURIComponent(e.target.q.value)}`;
});

// ---- routing and the live feed ---------------------------------------------------------------

let current = null;
let flash = ""; // a message for the next view drawn (what a change did)
let query = {}; // the hash's ?a=b part: #/s/ID/terminal?t=US
async function render() {
  query = Object.fromEntries(new URLSearchParams(location.hash.split("?")[1] || ""));
  const m = location.hash.match(/^#\/s\/([0-9a-f]+)(?:\/(\w+))?/);
  const tr = location.hash.match(/^#\/training(?:\/([0-9a-f]+))?/);
  const sr = location.hash.startsWith("#/search");
  try {
    if (current && current.dispose) current.dispose();
    current = m ? await sessionView(m[1], tabs.includes(m[2]) ? m[2] : "interactions")
      : tr ? { node: await trainingView(tr[1]), refresh: async () => main.replaceChildren(await trainingView(tr[1])) }
      : sr ? { node: await searchView(query.q || "") }
      : await sessionsView();
    main.replaceChildren(current.node);
    if (current.mounted) await current.mounted();
  } catch (e) {
    main.replaceChildren(el("p.error", {}, e.message));
  }
}
window.addEventListener("hashchange", render);
render();

let pending = null;
live((kind, data) => {
  if (kind === "call" && current && current.onCall) current.onCall(data); // on screen at once
  // many events in a burst: one refresh
  if (pending || !current || !current.refresh) return;
  pending = setTimeout(async () => { pending = null; try { await current.refresh(); } catch (e) { console.warn(e); } }, 100);
}, (on) => document.getElementById("live").classList.toggle("on", on));
