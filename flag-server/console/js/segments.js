// Segments of the chosen environment: the list (with the flags that use each), and one
// segment's editor (included, excluded, rules), saved with If-Match.

import { h, replace, field, dialog, notify, loading, clearFieldErrors, showFieldError } from "./dom.js";
import { api, get, onAudit, ApiError } from "./api.js";
import { clauseEditor } from "./rules.js";

const enc = encodeURIComponent;
const MAX_SCANNED = 500;

/** Flag keys in `env` whose rules or prerequisite-free clauses name each segment. */
async function usage(env) {
  const flags = (await get("/flags")).filter((f) => !f.archived).slice(0, MAX_SCANNED);
  const used = new Map();
  let next = 0;
  const worker = async () => {
    while (next < flags.length) {
      const f = flags[next++];
      try {
        const config = await get(`/flags/${enc(f.key)}/environments/${enc(env)}`);
        for (const rule of config.rules || []) {
          for (const c of rule.clauses || []) {
            if (c.op !== "in_segment") continue;
            for (const s of c.values) {
              if (!used.has(s)) used.set(s, new Set());
              used.get(s).add(f.key);
            }
          }
        }
      } catch { /* a flag archived meanwhile */ }
    }
  };
  await Promise.all(Array.from({ length: 6 }, worker));
  return used;
}

function segmentList(main, ctx) {
  const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 4 }, loading("Loading segments"))));
  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, `Segments in ${ctx.env}`),
      h("button", { type: "button", class: "primary", onclick: () => create(ctx) }, "New segment")),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, ["Segment", "Included", "Rules", "Used by"].map((t) => h("th", { scope: "col" }, t)))), body)));
  const draw = async () => {
    const segments = await get(`/environments/${enc(ctx.env)}/segments`);
    const usedCell = new Map();
    replace(body, segments.length ? segments.map((s) => {
      const cell = h("td", { class: "muted" }, "…");
      usedCell.set(s.key, cell);
      return h("tr", {},
        h("th", { scope: "row" }, h("a", { href: `#/segments/${enc(s.key)}` }, s.key)),
        h("td", {}, String((s.included || []).length)),
        h("td", {}, String((s.rules || []).length)),
        cell);
    }) : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No segments yet.")));
    const used = await usage(ctx.env);
    for (const [key, cell] of usedCell) {
      const flags = [...(used.get(key) || [])];
      replace(cell, flags.length ? flags.map((f, i) => [i ? ", " : "", h("a", { href: `#/flags/${enc(f)}/${enc(ctx.env)}` }, f)]) : "no flag");
    }
  };
  onAudit((e) => { if (e.segment && e.environment === ctx.env) draw(); });
  return draw();
}

function create(ctx) {
  return dialog("New segment", (close) => {
    const key = h("input", { type: "text", autocomplete: "off", required: true });
    const form = h("form", { class: "stack" }, field("Key", key),
      h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, "Create segment")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      try {
        await api("POST", `/environments/${enc(ctx.env)}/segments`, { body: { key: key.value.trim(), included: [], excluded: [], rules: [] } });
        close(true);
        location.hash = `#/segments/${enc(key.value.trim())}`;
      } catch (err) {
        showFieldError(key, err.errors && err.errors.length ? err.errors.map((x) => x.message).join("; ") : err.message);
      }
    });
    return form;
  });
}

async function editor(main, ctx, key) {
  replace(main, loading(`Loading ${key}`));
  const { data: segment, etag } = await api("GET", `/environments/${enc(ctx.env)}/segments/${enc(key)}`);
  for (const list of ["included", "excluded", "rules"]) segment[list] = segment[list] || [];
  const controls = new Map();
  const reg = (p, el) => controls.set(p, el);
  const included = h("textarea", { rows: 3 });
  included.value = segment.included.join(", ");
  const excluded = h("textarea", { rows: 3 });
  excluded.value = segment.excluded.join(", ");
  reg("included", included);
  reg("excluded", excluded);
  const rules = h("div", { class: "stack" });
  const drawRules = () => {
    replace(rules, segment.rules.map((r, i) => h("section", { class: "rule", "aria-label": `Rule ${i + 1}` },
      h("div", { class: "rule-head" }, h("h3", {}, `Rule ${i + 1}`),
        h("button", { type: "button", class: "ghost small danger", "aria-label": `Remove rule ${i + 1}`, onclick: () => { segment.rules.splice(i, 1); drawRules(); } }, "Remove")),
      r.clauses.map((c, j) => clauseEditor(c, `rules[${i}].clauses[${j}]`, reg, () => { r.clauses.splice(j, 1); drawRules(); })),
      h("button", { type: "button", class: "ghost small", onclick: () => { r.clauses.push({ attribute: "", op: "in", values: [] }); drawRules(); } }, "Add clause"))));
  };
  drawRules();
  const reason = h("input", { type: "text" });
  const formError = h("p", { class: "form-error", role: "alert", hidden: true });
  const keys = (t) => t.value.split(/[,\n]/).map((s) => s.trim()).filter(Boolean);
  const form = h("form", { class: "stack", novalidate: true },
    h("section", { class: "card" }, h("h2", {}, "Members"),
      h("div", { class: "grid2" }, field("Included context keys", included, "Always members."), field("Excluded context keys", excluded, "Never members (unless included)."))),
    h("section", { class: "card" }, h("h2", {}, "Rules"), h("p", { class: "muted small" }, "A context matching any rule is a member."), rules,
      h("button", { type: "button", class: "ghost", onclick: () => { segment.rules.push({ clauses: [{ attribute: "", op: "in", values: [] }] }); drawRules(); } }, "Add rule")),
    h("div", { class: "savebar" }, formError, field("Reason for this change", reason), h("button", { type: "submit", class: "primary" }, "Save segment")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    formError.hidden = true;
    segment.included = keys(included);
    segment.excluded = keys(excluded);
    try {
      await api("PUT", `/environments/${enc(ctx.env)}/segments/${enc(key)}`, { body: segment, ifMatch: etag || segment.version, query: { reason: reason.value.trim() } });
      notify(`Saved ${key}.`);
      editor(main, ctx, key);
    } catch (err) {
      formError.hidden = false;
      formError.textContent = err instanceof ApiError && err.status === 412
        ? "Someone saved this segment meanwhile; nothing was saved. Reload to see their change."
        : err.message;
      for (const fe of (err.errors || [])) {
        const el = controls.get(fe.field) || controls.get(String(fe.field).replace(/\.[a-z_]+$/, ""));
        if (el) showFieldError(el, fe.message);
      }
    }
  });
  replace(main, h("div", { class: "crumbs" }, h("a", { href: "#/segments" }, "Segments"), " / ", key),
    h("div", { class: "page-head" }, h("h1", {}, key), h("span", { class: "env-chip" }, ctx.env)), form);
}

export function render(main, ctx) {
  return ctx.params.length ? editor(main, ctx, ctx.params[0]) : segmentList(main, ctx);
}
