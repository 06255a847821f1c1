// evolve.js: a session's evolve runs: every try's score over the tries
// with the best-so-far line (infeasible and failed tries marked), the
// lineage as a tree, a try's prompt, answer, metrics, feedback and
// snapshot, and the prompt diff between two tries.
import { get } from "./api.js";
import { el, chart, diff, fmt } from "./dom.js";

function best(run) {
  const minimize = run.objective && run.objective.goal === "minimize";
  let b = null;
  return run.tries.filter((t) => t.seq > 0).map((t) => {
    if (t.score != null && t.feasible !== false && (b == null || (minimize ? t.score < b : t.score > b))) b = t.score;
    return { x: t.seq, y: b };
  });
}

function tree(run, pick) {
  const kids = new Map();
  for (const t of run.tries) {
    const p = t.seq === 0 ? null : (t.parent_seq ?? 0);
    if (!kids.has(p)) kids.set(p, []);
    kids.get(p).push(t);
  }
  const walk = (parent) => el("ul.tree", {}, (kids.get(parent) || []).map((t) => el("li", {},
    el("a", { href: "#", "data-try": t.seq, onclick: (e) => { e.preventDefault(); pick(t); } },
      t.seq === 0 ? "start" : `try ${t.seq}`), " ",
    el("span.badge" + (t.status === "ok" ? "" : ".error"), {}, t.status), " ",
    el("span.muted", {}, t.score != null ? `score ${t.score}` : ""), t.seq === run.best_seq ? el("strong", {}, " best") : null,
    t.island != null ? el("span.muted", { title: "the population's island" }, ` · island ${t.island}`) : null,
    t.seq > 0 && t.files_changed === 0 ? el("span.badge", {}, "no change") : null,
    t.intervened ? el("span.badge", { title: "a person added to the prompt while the agent worked" }, "person added") : null,
    kids.has(t.seq) && t.seq !== parent ? walk(t.seq) : null)));
  return walk(null);
}

// why the population chose this parent (tries.selection), when it did
function selection(t) {
  let sel = null;
  try { sel = t.selection ? JSON.parse(t.selection) : null; } catch { sel = null; }
  if (!sel || !sel.why) return null;
  const more = [];
  if (sel.inspirations && sel.inspirations.length) more.push(`inspirations: try ${sel.inspirations.join(", try ")}`);
  if (sel.migrations && sel.migrations.length) more.push(`migrated before it: ${sel.migrations.map((m) => `try ${m.seq} (island ${m.from} → ${m.to})`).join(", ")}`);
  return el("p.muted.selection", {}, `chosen by ${sel.why}`, more.length ? ` · ${more.join(" · ")}` : "");
}

function tryDetail(run, t) {
  return el("div.try", { id: "try-detail" }, el("h3", {}, t.seq === 0 ? "The starting point" : `Try ${t.seq}`, " ",
      el("span.badge", {}, t.status), t.seq === run.best_seq ? el("span.badge", {}, "best") : null),
    el("p.muted", {}, `parent ${t.parent_seq ? "try " + t.parent_seq : "start"} · snapshot ${t.commit_id ? t.commit_id.slice(0, 10) : "-"} · `
      + `${fmt.num(t.tokens)} tokens · turn ${t.turn_seq ?? "-"}${t.adapter ? " · adapter " + t.adapter : ""}`
      + `${t.policy ? " · policy " + t.policy : ""}${t.island != null ? " · island " + t.island : ""}`),
    selection(t),
    t.prompt ? el("div", {}, el("strong", {}, "prompt"), el("pre", {}, t.prompt)) : null,
    t.response ? el("div", {}, el("strong", {}, "the agent said"), el("pre", {}, t.response)) : null,
    t.metrics ? el("div", {}, el("strong", {}, "metrics"), el("pre", {}, JSON.stringify(t.metrics, null, 2))) : null,
    t.feedback ? el("div", {}, el("strong", {}, "evaluator feedback"), el("pre", {}, t.feedback)) : null);
}

function promptDiff(run) {
  const tries = run.tries.filter((t) => t.prompt);
  if (tries.length < 2) return null;
  const pickA = el("select", {}, tries.map((t) => el("option", { value: t.seq }, `try ${t.seq}`)));
  const pickB = el("select", {}, tries.map((t, i) => el("option", { value: t.seq, selected: i === 1 }, `try ${t.seq}`)));
  const out = el("pre.diff");
  const draw = () => {
    const a = tries.find((t) => t.seq == pickA.value), b = tries.find((t) => t.seq == pickB.value);
    out.replaceChildren(...diff(a.prompt, b.prompt).map((d) => el(d.op === "-" ? "div.del" : d.op === "+" ? "div.add" : "div", {}, `${d.op} ${d.text}`)));
  };
  pickA.addEventListener("change", draw);
  pickB.addEventListener("change", draw);
  draw();
  return el("div", {}, el("h4", {}, "Prompt diff ", pickA, " → ", pickB), out);
}

const picked = new Map(); // run id -> the try shown

export async function evolveTab(s) {
  const runs = (await get(`/api/runs?session=${s.id}`)).runs;
  if (!runs.length) return el("p.muted", {}, "no evolve run in this session (!evolve N)");
  const box = el("div");
  for (const r of runs) {
    const run = await get(`/api/runs/${r.id}`);
    const tries = run.tries.filter((t) => t.seq > 0);
    const points = tries.map((t) => ({ x: t.seq, y: t.score ?? null,
      mark: t.feasible === false ? "infeasible" : t.status !== "ok" ? "failed" : t.improved ? "improved" : "" }));
    const detail = el("div", {}, el("p.muted", {}, "pick a try"));
    const pick = (t) => { picked.set(run.id, t.seq); detail.replaceChildren(tryDetail(run, t)); };
    const was = run.tries.find((t) => t.seq === picked.get(run.id));
    if (was) pick(was); // drawn again (live): the try picked stays picked
    box.append(el("section.run", { "data-run": run.id },
      el("h3", {}, `Run ${run.id.slice(0, 8)} `, el("span.badge", {}, run.status), " ", el("span.muted", {}, run.task || "")),
      el("p.muted", {}, `${tries.length} tries · best try ${run.best_seq ?? "-"} · policy ${run.policy || (run.options && run.options.policy) || "model"} · started ${fmt.time(run.started_at)}`
        + (run.error ? ` · ${run.error}` : "")),
      chart([{ name: "try", points }, { name: "best so far", points: best(run), line: true, cls: "best" }]),
      el("div.split", {}, el("div", {}, el("h4", {}, "Lineage"), tree(run, pick)), detail),
      promptDiff(run)));
  }
  return box;
}
