// training.js: the training jobs (state, progress, the loss curve, the
// log) and the adapters deployed.
import { get, send, exported } from "./api.js";
import { el, chart, fmt } from "./dom.js";

// start a job: what procy train start does, with the trainer in procy.lua
function startForm(reload) {
  const method = el("select", { "aria-label": "method" }, ["sft", "dpo", "kto"].map((m) => el("option", { value: m }, m)));
  const base = el("input", { placeholder: "base model (default: the trainer's)", "aria-label": "base model" });
  const msg = el("span");
  const go = el("button", { onclick: async () => {
    go.disabled = true;
    msg.replaceChildren("starting…");
    try { const r = await send("POST", "/api/training/jobs", { method: method.value, base_model: base.value || undefined }); location.hash = `#/training/${r.id}`; }
    catch (e) { msg.replaceChildren(el("span.error", {}, e.message)); }
    finally { go.disabled = false; }
  } }, "start training");
  return el("div#train-start.filters", {}, method, base, go, msg);
}

// did training help: the evolve runs on one task, a series per adapter
async function compareView() {
  const c = await get("/api/runs/compare?by=adapter");
  if (!c.series.length) return el("p.muted", {}, c.error || "no evolve run to compare yet");
  return el("div#compare", {},
    chart(c.series.map((sx, i) => ({ name: sx.name, line: true, cls: `s${i % 6}`,
      points: sx.curve.map((y, k) => ({ x: k + 1, y: y === false ? null : y })) }))),
    el("table", {}, el("thead", {}, el("tr", {}, ["adapter", "runs", "tries", "best", `tries to ${c.target}`].map((h) => el("th", {}, h)))),
      el("tbody", {}, c.series.map((sx, i) => el("tr", {}, el("td", {}, el("span.swatch.s" + (i % 6)), sx.name), el("td.num", {}, sx.runs.length),
        el("td.num", {}, sx.curve.length), el("td.num", {}, sx.best ?? "-"),
        el("td.num", {}, sx.tries != null ? `${sx.tries.toFixed(1)}${sx.reached < sx.runs.length ? ` (${sx.reached} of ${sx.runs.length} runs)` : ""}` : "never"))))));
}

export async function trainingView(id) {
  const [jobs, adapters] = await Promise.all([get("/api/training/jobs"), get("/api/training/adapters")]);
  const box = el("div", {}, el("h2", {}, "Training"));
  const table = el("table", {}, el("thead", {}, el("tr", {}, ["job", "state", "host", "method", "progress", "started", "ended"].map((h) => el("th", {}, h)))),
    el("tbody", {}, jobs.jobs.map((j) => el("tr.row", { "data-job": j.id, onclick: () => { location.hash = `#/training/${j.id}`; } },
      el("td", {}, el("code", {}, j.id)), el("td", {}, j.state), el("td", {}, j.host || "here"), el("td", {}, j.method || ""),
      el("td", {}, j.progress && j.progress.step != null ? `${j.progress.step}/${j.progress.total} loss ${j.progress.loss ?? ""}` : (j.progress?.event || "")),
      el("td", {}, fmt.time(j.started_at)), el("td", {}, fmt.time(j.ended_at))))));
  if (!exported) box.append(startForm());
  box.append(jobs.jobs.length ? table : el("p.muted", {}, "no training job yet (procy train start)"));
  if (id) {
    const job = await get(`/api/training/jobs/${id}`);
    const log = await get(`/api/training/jobs/${id}/log?after=0`);
    const stop = job.state === "running" || job.state === "starting" ? el("button", { onclick: async (e) => {
      e.target.disabled = true;
      try { await send("POST", `/api/training/jobs/${job.id}/stop`); } catch (err) { e.target.replaceWith(el("span.error", {}, err.message)); }
    } }, "stop") : null;
    box.append(el("section", { id: "job" }, el("h3", {}, `Job ${job.id} `, el("span.badge", {}, job.state),
        job.exit_code != null ? el("span.muted", {}, ` exit ${job.exit_code}`) : null, " ", stop),
      job.error ? el("p.error", {}, job.error) : null,
      el("p.muted", {}, (job.argv || []).join(" ")),
      chart([{ name: "loss", points: job.losses.map((y, i) => ({ x: i + 1, y })), line: true }], { height: 180 }),
      el("details", { open: true }, el("summary", {}, `log (${log.lines.length} lines)`), el("pre", {}, log.lines.map((l) => l.line).join("\n")))));
  }
  box.append(el("h3", {}, "Runs by adapter"), exported ? el("p.muted", {}, "not in an export") : await compareView());
  box.append(el("h3", {}, "Adapters deployed"), adapters.adapters.length
    ? el("table", {}, el("thead", {}, el("tr", {}, ["name", "server", "path", "sha256", "job", "deployed"].map((h) => el("th", {}, h)))),
      el("tbody", {}, adapters.adapters.map((a) => el("tr", {}, el("td", {}, a.name), el("td", {}, a.url), el("td", {}, a.path),
        el("td", {}, el("code", {}, (a.sha256 || "").slice(0, 12))), el("td", {}, a.job_id || ""), el("td", {}, fmt.time(a.deployed_at))))))
    : el("p.muted", {}, "none yet (procy train deploy)"));
  return box;
}
