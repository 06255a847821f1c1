// training.js: the training jobs (state, progress, the loss curve, the
// log) and the adapters deployed.
import { get } from "./api.js";
import { el, chart, fmt } from "./dom.js";

export async function trainingView(id) {
  const [jobs, adapters] = await Promise.all([get("/api/training/jobs"), get("/api/training/adapters")]);
  const box = el("div", {}, el("h2", {}, "Training"));
  const table = el("table", {}, el("thead", {}, el("tr", {}, ["job", "state", "host", "method", "progress", "started", "ended"].map((h) => el("th", {}, h)))),
    el("tbody", {}, jobs.jobs.map((j) => el("tr.row", { "data-job": j.id, onclick: () => { location.hash = `#/training/${j.id}`; } },
      el("td", {}, el("code", {}, j.id)), el("td", {}, j.state), el("td", {}, j.host || "here"), el("td", {}, j.method || ""),
      el("td", {}, j.progress && j.progress.step != null ? `${j.progress.step}/${j.progress.total} loss ${j.progress.loss ?? ""}` : (j.progress?.event || "")),
      el("td", {}, fmt.time(j.started_at)), el("td", {}, fmt.time(j.ended_at))))));
  box.append(jobs.jobs.length ? table : el("p.muted", {}, "no training job yet (procy train start)"));
  if (id) {
    const job = await get(`/api/training/jobs/${id}`);
    const log = await get(`/api/training/jobs/${id}/log?after=0`);
    box.append(el("section", { id: "job" }, el("h3", {}, `Job ${job.id} `, el("span.badge", {}, job.state),
        job.exit_code != null ? el("span.muted", {}, ` exit ${job.exit_code}`) : null),
      job.error ? el("p.error", {}, job.error) : null,
      el("p.muted", {}, (job.argv || []).join(" ")),
      chart([{ name: "loss", points: job.losses.map((y, i) => ({ x: i + 1, y })), line: true }], { height: 180 }),
      el("details", { open: true }, el("summary", {}, `log (${log.lines.length} lines)`), el("pre", {}, log.lines.map((l) => l.line).join("\n")))));
  }
  box.append(el("h3", {}, "Adapters deployed"), adapters.adapters.length
    ? el("table", {}, el("thead", {}, el("tr", {}, ["name", "server", "path", "sha256", "job", "deployed"].map((h) => el("th", {}, h)))),
      el("tbody", {}, adapters.adapters.map((a) => el("tr", {}, el("td", {}, a.name), el("td", {}, a.url), el("td", {}, a.path),
        el("td", {}, el("code", {}, (a.sha256 || "").slice(0, 12))), el("td", {}, a.job_id || ""), el("td", {}, fmt.time(a.deployed_at))))))
    : el("p.muted", {}, "none yet (procy train deploy)"));
  return box;
}
