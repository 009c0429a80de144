// Releases: start one (stages, hold, guard, on-regression), follow it live (stage, next
// stage's time, observed error rate per variation drawn as a chart), and move it (pause,
// resume, advance, abort). Also the page of recent releases in an environment.

import { h, replace, field, notify, when, loading, clearFieldErrors } from "./dom.js";
import { api, get, onAudit } from "./api.js";
import { placeErrors } from "./flags.js";

const enc = encodeURIComponent;
const path = (key, env) => `/flags/${enc(key)}/environments/${enc(env)}/release`;

/** The observed error rate per variation as a bar chart (inline SVG, built with the DOM). */
export function errorChart(observed, released) {
  const rows = Object.entries(observed || {});
  const width = 360, bar = 22, gap = 12, left = 70, top = 8;
  const height = top + rows.length * (bar + gap) + 20;
  const max = Math.max(0.01, ...rows.map(([, o]) => o.error_rate || 0)) * 1.15;
  const svg = h("svg:svg", { viewBox: `0 0 ${width} ${height}`, class: "chart", role: "img",
    "aria-label": `Error rate per variation: ${rows.map(([v, o]) => `${v} ${(100 * (o.error_rate || 0)).toFixed(2)}%`).join(", ") || "no data yet"}` });
  rows.forEach(([variation, o], i) => {
    const y = top + i * (bar + gap);
    const w = Math.max(1, ((o.error_rate || 0) / max) * (width - left - 120));
    svg.append(
      h("svg:text", { x: left - 8, y: y + bar * 0.7, "text-anchor": "end", class: "label" }, variation),
      h("svg:rect", { x: left, y, width: w, height: bar, rx: 4, class: variation === released ? "bar released" : "bar" }),
      h("svg:text", { x: left + w + 6, y: y + bar * 0.7, class: "value" }, `${(100 * (o.error_rate || 0)).toFixed(2)}% of ${o.evaluations}`));
  });
  if (!rows.length) svg.append(h("svg:text", { x: 8, y: 24, class: "label" }, "No evaluations reported yet."));
  return svg;
}

function progress(r) {
  const steps = r.stages.map((s, i) => h("li", { class: i < r.stage ? "done" : i === r.stage ? "now" : "" ,
    "aria-current": i === r.stage ? "step" : null }, `${s}%`));
  return h("ol", { class: "stages", "aria-label": "Stages" }, steps);
}

function startForm(key, env, draft, done) {
  const variation = h("select", {}, draft.variations.map((v) => h("option", { value: v.key }, v.key)));
  const stages = h("input", { type: "text", value: "1, 5, 25, 50, 100" });
  const hold = h("input", { type: "number", min: 1, value: 30 });
  const increase = h("input", { type: "number", min: 0, max: 100, step: "0.1", value: 2 });
  const minEvals = h("input", { type: "number", min: 1, value: 200 });
  const onReg = h("select", {}, [["rollback", "Roll back"], ["kill", "Kill the flag"], ["pause", "Pause"]].map(([v, l]) => h("option", { value: v }, l)));
  const controls = { variation, stages, hold_seconds: hold, guard: increase, on_regression: onReg };
  const form = h("form", { class: "stack" },
    field("Variation to release", variation),
    field("Stages (%)", stages, "Ascending percentages, e.g. 1, 5, 25, 50, 100."),
    field("Hold each stage (minutes)", hold),
    field("Max error rate increase (points)", increase, "Roll back when the released variation is worse by more than this."),
    field("Min evaluations", minEvals, "Per side, before the guard decides or a stage advances."),
    field("On regression", onReg),
    h("button", { type: "submit", class: "primary" }, "Start release"));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    const body = {
      variation: variation.value,
      stages: stages.value.split(",").map((s) => Number(s.trim())).filter((n) => !Number.isNaN(n)),
      hold_seconds: Math.round(Number(hold.value) * 60),
      guard: { max_error_rate_increase: Number(increase.value) / 100, min_evaluations: Number(minEvals.value) },
      on_regression: onReg.value,
    };
    try {
      await api("POST", path(key, env), { body });
      notify(`Release of ${key} started in ${env}.`);
      done();
    } catch (err) {
      placeErrors(err, controls, stages);
    }
  });
  return form;
}

/** The release box of a flag's page: the start form, or the live release. */
export function releasePanel(key, env, draft) {
  const box = h("div", { class: "release" }, loading("Loading the release"));
  let timer = null;
  async function show() {
    clearTimeout(timer);
    if (!box.isConnected && timer !== null) return;
    let r = null;
    try {
      r = (await api("GET", path(key, env))).data;
    } catch (err) {
      if (err.status !== 404) { replace(box, h("p", { class: "error" }, err.message)); return; }
    }
    if (!r || ["completed", "rolled_back", "aborted"].includes(r.state)) {
      replace(box, r ? h("p", { class: "muted" }, `Last release: ${r.state.replace("_", " ")}${r.reason ? ` (${r.reason})` : ""}.`) : null,
        startForm(key, env, draft, show));
      return;
    }
    replace(box, releaseView(key, env, r, show));
    if (r.state === "running" || r.state === "paused") timer = setTimeout(show, 3000);
  }
  show();
  onAudit((e) => { if (e.flag === key && e.action.startsWith("release")) show(); });
  return box;
}

/** A release as it stands, with its moves. */
export function releaseView(key, env, r, refresh) {
  const act = (action) => async () => {
    try {
      await api("POST", `${path(key, env)}/${action}`, { body: { reason: `${action} from the console` } });
      notify(`Release ${action}: ${key} in ${env}.`);
      refresh();
    } catch (err) {
      notify(err.message, "error");
    }
  };
  return h("div", { class: "release-live" },
    h("p", { class: "release-state" }, h("span", { class: `badge ${r.state === "running" ? "release" : r.state}` }, r.state.replace("_", " ")),
      ` ${r.variation} at ${r.percent}% (stage ${r.stage + 1} of ${r.stages.length})`),
    progress(r),
    r.next_at ? h("p", { class: "muted small" }, "Next stage ", when(r.next_at)) : null,
    r.reason ? h("p", { class: "reason" }, r.reason) : null,
    errorChart(r.observed, r.variation),
    h("div", { class: "actions wrap" },
      r.state === "running" ? h("button", { type: "button", class: "ghost", onclick: act("pause") }, "Pause") : null,
      r.state === "paused" ? h("button", { type: "button", class: "ghost", onclick: act("resume") }, "Resume") : null,
      ["running", "paused"].includes(r.state) ? h("button", { type: "button", class: "ghost", onclick: act("advance") }, "Advance") : null,
      ["running", "paused"].includes(r.state) ? h("button", { type: "button", class: "danger", onclick: act("abort") }, "Abort") : null));
}

/** Recent releases in the chosen environment (from the audit log), each live. */
export async function render(main, ctx) {
  const list = h("div", { class: "release-list" }, loading("Loading releases"));
  replace(main, h("div", { class: "page-head" }, h("h1", {}, `Releases in ${ctx.env}`)), list);
  const { entries } = await get("/audit", { environment: ctx.env, limit: 500 });
  const keys = [...new Set(entries.filter((e) => e.action.startsWith("release") && e.flag).map((e) => e.flag))];
  if (!keys.length) {
    replace(list, h("p", { class: "empty" }, "No releases yet. Start one from a flag's page."));
    return;
  }
  replace(list);
  for (const key of keys) {
    const card = h("section", { class: "card" }, h("h2", {}, h("a", { href: `#/flags/${enc(key)}/${enc(ctx.env)}` }, key)));
    list.append(card);
    const draw = async () => {
      try {
        const r = (await api("GET", path(key, ctx.env))).data;
        replace(card, h("h2", {}, h("a", { href: `#/flags/${enc(key)}/${enc(ctx.env)}` }, key)), releaseView(key, ctx.env, r, draw));
      } catch (err) {
        card.append(h("p", { class: "muted" }, err.message));
      }
    };
    await draw();
  }
  onAudit((e) => { if (e.action.startsWith("release") && e.environment === ctx.env) render(main, ctx); });
}
