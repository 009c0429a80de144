// The audit log: filter by flag, environment and actor; each entry says who, when, why,
// and what changed (a before/after diff by JSON path). New entries arrive live.

import { h, replace, field, when, loading } from "./dom.js";
import { get, onAudit } from "./api.js";

/** Every leaf of a JSON value by path (`rules[0].clauses[1].values`). */
function flatten(value, path = "", out = new Map()) {
  if (value !== null && typeof value === "object" && !(Array.isArray(value) && value.length === 0)) {
    const entries = Array.isArray(value) ? value.map((v, i) => [`${path}[${i}]`, v]) : Object.entries(value).map(([k, v]) => [path ? `${path}.${k}` : k, v]);
    if (entries.length === 0) out.set(path, "{}");
    for (const [p, v] of entries) flatten(v, p, out);
  } else {
    out.set(path, JSON.stringify(value));
  }
  return out;
}

/** The paths that differ between `before` and `after`, with both sides. */
export function diff(before, after) {
  const a = flatten(before ?? null);
  const b = flatten(after ?? null);
  const paths = [...new Set([...a.keys(), ...b.keys()])].filter((p) => a.get(p) !== b.get(p) && p !== "version");
  return paths.map((p) => ({ path: p || "(value)", before: a.get(p), after: b.get(p) }));
}

function diffView(before, after) {
  const changes = diff(before, after);
  if (!changes.length) return h("p", { class: "muted small" }, "No configuration change.");
  return h("table", { class: "diff" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, "Before"), h("th", { scope: "col" }, "After"))),
    h("tbody", {}, changes.slice(0, 40).map((c) => h("tr", {},
      h("th", { scope: "row" }, h("code", {}, c.path)),
      h("td", { class: "del" }, c.before === undefined ? "—" : c.before),
      h("td", { class: "ins" }, c.after === undefined ? "—" : c.after)))));
}

/** One entry: who, what, where, when, why; the diff behind a disclosure. */
export function entryView(e, open = false) {
  const subject = [e.flag, e.segment].filter(Boolean).join(" · ");
  return h("li", { class: "entry", "data-id": e.id },
    h("div", { class: "entry-line" },
      h("strong", { class: "actor" }, e.actor),
      h("span", { class: "action" }, e.action),
      subject ? h("span", { class: "subject" }, subject) : null,
      e.environment ? h("span", { class: "env-chip" }, e.environment) : null,
      when(e.at)),
    e.reason ? h("p", { class: "reason" }, "“", e.reason, "”") : null,
    (e.before || e.after) ? h("details", { open }, h("summary", {}, "What changed"), diffView(e.before, e.after)) : null);
}

export async function render(main, ctx) {
  const flag = h("input", { type: "text", id: "audit-flag", value: ctx.query.get("flag") || "", autocomplete: "off" });
  const env = h("select", { id: "audit-env" }, h("option", { value: "" }, "Every environment"), ctx.environments.map((e) => h("option", { value: e }, e)));
  env.value = ctx.query.get("environment") || "";
  const actor = h("input", { type: "text", id: "audit-actor", autocomplete: "off" });
  const list = h("ol", { class: "audit" });
  const more = h("button", { type: "button", class: "ghost", hidden: true }, "Older entries");
  let cursor = null;

  const matches = (e) => (!flag.value.trim() || e.flag === flag.value.trim())
    && (!env.value || e.environment === env.value)
    && (!actor.value.trim() || e.actor.toLowerCase().includes(actor.value.trim().toLowerCase()));

  async function load(append) {
    if (!append) { replace(list, loading("Loading the audit log")); cursor = null; }
    const page = await get("/audit", { flag: flag.value.trim(), environment: env.value, limit: 100, cursor });
    if (!append) replace(list);
    const shown = page.entries.filter(matches);
    list.append(...shown.map((e) => entryView(e)));
    if (!list.children.length) list.append(h("li", { class: "empty" }, "No entries match."));
    cursor = page.next_cursor;
    more.hidden = !cursor;
  }
  let timer;
  const again = () => { clearTimeout(timer); timer = setTimeout(() => load(false), 200); };
  flag.addEventListener("input", again);
  actor.addEventListener("input", again);
  env.addEventListener("change", again);
  more.addEventListener("click", () => load(true));

  replace(main,
    h("div", { class: "page-head" }, h("h1", {}, "Audit log")),
    h("div", { class: "toolbar", role: "search" },
      h("div", { class: "field" }, h("label", { for: flag.id }, "Flag"), flag),
      h("div", { class: "field" }, h("label", { for: env.id }, "Environment"), env),
      h("div", { class: "field" }, h("label", { for: actor.id }, "Actor"), actor)),
    list, more);
  onAudit((e) => {
    if (!matches(e)) return;
    const empty = list.querySelector(".empty");
    if (empty) empty.remove();
    list.prepend(entryView(e));
  });
  await load(false);
}
