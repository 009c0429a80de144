// The flags list: search by key or name, filter by tag and state, the state in every
// environment at a glance (a switch per environment), paging by cursor, create, and live
// updates from the admin event stream.

import { h, replace, field, dialog, notify, badge, loading, showFieldError, clearFieldErrors } from "./dom.js";
import { api, onAudit, ApiError } from "./api.js";

const PAGE = 50;

/** A flag's state in `env` as the list shows it: on, off, killed, rollout or release. */
export function stateIn(meta, env) {
  const s = meta.environments && meta.environments[env];
  if (!s) return null;
  if (s.killed) return "killed";
  if (s.release) return "release";
  if (!s.enabled) return "off";
  return s.rollout ? "rollout" : "on";
}

/** Switches `key` on or off in `env`: read, change `enabled`, write back with If-Match. */
export async function setEnabled(key, env, enabled) {
  const path = `/flags/${encodeURIComponent(key)}/environments/${encodeURIComponent(env)}`;
  const { data, etag } = await api("GET", path);
  data.enabled = enabled;
  const reason = enabled ? "switched on in the console" : "switched off in the console";
  return api("PUT", path, { body: data, ifMatch: etag, query: { reason } });
}

/** The switch of one flag in one environment (role switch, named "<key> in <env>"). */
export function flagSwitch(meta, env, onChange) {
  const state = stateIn(meta, env);
  const on = state !== "off" && state !== "killed";
  const sw = h("button", {
    type: "button",
    role: "switch",
    class: `switch ${state}`,
    "aria-checked": on ? "true" : "false",
    "aria-label": `${meta.key} in ${env}`,
    "data-flag": meta.key,
    "data-env": env,
  }, h("span", { class: "knob", "aria-hidden": "true" }));
  sw.addEventListener("click", async () => {
    const turnOn = sw.getAttribute("aria-checked") !== "true";
    sw.disabled = true;
    try {
      await setEnabled(meta.key, env, turnOn);
      sw.setAttribute("aria-checked", turnOn ? "true" : "false");
      notify(`${meta.key} is ${turnOn ? "on" : "off"} in ${env}.`);
      if (onChange) await onChange();
    } catch (err) {
      notify(`${meta.key} in ${env}: ${err.message}`, "error");
    } finally {
      sw.disabled = false;
    }
  });
  return sw;
}

function stateCell(meta, env, refresh) {
  const state = stateIn(meta, env);
  if (!state) return h("td", { class: "env-cell" }, h("span", { class: "muted" }, "—"));
  return h("td", { class: "env-cell" },
    h("div", { class: "env-state" }, flagSwitch(meta, env, refresh), badge(state)));
}

function tagList(tags) {
  return h("ul", { class: "tags", "aria-label": "Tags" }, (tags || []).map((t) => h("li", {}, t)));
}

/** Filters and pages locally when the server does not (an older server ignores them). */
function locally(all, filters, offset) {
  const q = filters.q.toLowerCase();
  const matching = all.filter((m) =>
    (!q || m.key.toLowerCase().includes(q) || (m.name || "").toLowerCase().includes(q))
    && filters.tag.every((t) => (m.tags || []).includes(t))
    && (!filters.state || Object.keys(m.environments || {}).some((env) =>
      (!filters.env || env === filters.env) && stateIn(m, env) === filters.state)));
  return { flags: matching.slice(offset, offset + PAGE), total: matching.length, more: offset + PAGE < matching.length };
}

export async function render(main, ctx) {
  const search = h("input", { type: "search", id: "flag-search", placeholder: "Key or name", autocomplete: "off" });
  const tag = h("input", { type: "text", id: "flag-tag", placeholder: "e.g. checkout", autocomplete: "off" });
  const state = h("select", { id: "flag-state" },
    [["", "Any state"], ["on", "On"], ["off", "Off"], ["killed", "Killed"], ["rollout", "In rollout"], ["release", "Release running"]]
      .map(([v, l]) => h("option", { value: v }, l)));
  const archived = h("input", { type: "checkbox", id: "flag-archived" });
  const count = h("p", { class: "muted count", role: "status" });
  const body = h("tbody");
  const prev = h("button", { type: "button", class: "ghost" }, "Previous page");
  const next = h("button", { type: "button", class: "ghost" }, "Next page");
  const envs = ctx.environments;
  const table = h("table", { class: "flags" },
    h("caption", { class: "sr-only" }, "Flags and their state in every environment"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Flag"), envs.map((e) => h("th", { scope: "col", class: "env-col" }, e)))),
    body);

  replace(main,
    h("div", { class: "page-head" },
      h("h1", {}, "Flags"),
      h("button", { class: "primary", type: "button", onclick: () => createFlag(ctx) }, "New flag")),
    h("div", { class: "toolbar", role: "search" },
      h("div", { class: "field grow" }, h("label", { for: search.id }, "Search flags"), search),
      h("div", { class: "field" }, h("label", { for: tag.id }, "Tag"), tag),
      h("div", { class: "field" }, h("label", { for: state.id }, `State in ${ctx.env}`), state),
      h("div", { class: "field check" }, archived, h("label", { for: archived.id }, "Archived"))),
    count,
    h("div", { class: "table-wrap" }, table),
    h("div", { class: "pager" }, prev, next));

  let cursors = [null];
  let page = 0;
  let all = null;
  let shown = [];

  const filters = () => ({
    q: search.value.trim(),
    tag: tag.value.split(",").map((t) => t.trim()).filter(Boolean),
    state: state.value,
    env: state.value ? ctx.env : "",
    archived: archived.checked,
  });

  function row(meta) {
    const refresh = () => refreshRow(meta.key);
    const link = h("a", { href: `#/flags/${encodeURIComponent(meta.key)}/${encodeURIComponent(ctx.env)}`, class: "flag-key" }, meta.key);
    return h("tr", { "data-key": meta.key },
      h("th", { scope: "row", class: "flag-cell" },
        h("div", { class: "flag-title" }, link, meta.archived ? badge("archived") : null),
        meta.name ? h("div", { class: "flag-name" }, meta.name) : null,
        meta.description ? h("div", { class: "flag-desc" }, meta.description) : null,
        tagList(meta.tags)),
      meta.archived ? h("td", { colspan: envs.length, class: "muted" }, "Archived") : envs.map((env) => stateCell(meta, env, refresh)));
  }

  async function refreshRow(key) {
    const old = body.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
    if (!old) return;
    try {
      const { data } = await api("GET", `/flags/${encodeURIComponent(key)}`);
      const focused = document.activeElement;
      const focusEnv = focused && focused.dataset && focused.dataset.flag === key ? focused.dataset.env : null;
      const fresh = row(data);
      old.replaceWith(fresh);
      if (focusEnv) {
        const sw = fresh.querySelector(`[data-env="${CSS.escape(focusEnv)}"]`);
        if (sw) sw.focus();
      }
    } catch (err) {
      if (err instanceof ApiError && err.status === 404) old.remove();
    }
  }

  async function load() {
    replace(body, h("tr", {}, h("td", { colspan: envs.length + 1 }, loading("Loading flags"))));
    const f = filters();
    const query = { q: f.q, tag: f.tag, state: f.state, environment: f.env, limit: PAGE, cursor: cursors[page] };
    if (f.archived) query.archived = "true";
    let flags, total, more;
    try {
      const res = all ? null : await api("GET", "/flags", { query });
      if (res && res.headers.has("X-Total-Count")) {
        flags = res.data;
        total = Number(res.headers.get("X-Total-Count"));
        const nextCursor = res.headers.get("X-Next-Cursor");
        more = !!nextCursor;
        cursors[page + 1] = nextCursor;
      } else {
        if (!all) all = res.data;
        ({ flags, total, more } = locally(all, f, page * PAGE));
      }
    } catch (err) {
      replace(body, h("tr", {}, h("td", { colspan: envs.length + 1, class: "error" }, err.message)));
      return;
    }
    shown = flags;
    const first = page * PAGE + 1;
    count.textContent = total === 0 ? "No flags match." : `${first}–${first + flags.length - 1} of ${total} flag${total === 1 ? "" : "s"}`;
    replace(body, flags.length ? flags.map(row) : h("tr", {}, h("td", { colspan: envs.length + 1, class: "empty" },
      f.q || f.tag.length || f.state ? "No flag matches these filters." : "No flags yet. Create one with “New flag”.")));
    prev.disabled = page === 0;
    next.disabled = !more;
  }

  let timer = null;
  const restart = () => {
    clearTimeout(timer);
    timer = setTimeout(() => {
      cursors = [null];
      page = 0;
      if (archived.checked) all = null;
      load();
    }, 150);
  };
  search.addEventListener("input", restart);
  tag.addEventListener("input", restart);
  state.addEventListener("change", restart);
  archived.addEventListener("change", () => { all = null; restart(); });
  prev.addEventListener("click", () => { page = Math.max(0, page - 1); load(); });
  next.addEventListener("click", () => { page += 1; load(); });

  onAudit((entry) => {
    if (!entry.flag) return;
    if (all) {
      all = null; // the local copy is stale: read again
      load();
    } else if (shown.some((m) => m.key === entry.flag)) {
      refreshRow(entry.flag);
    } else if (entry.action === "flag.create") {
      load();
    }
  });
  await load();
  search.focus();
}

async function createFlag(ctx) {
  await dialog("New flag", (close) => {
    const key = h("input", { type: "text", required: true, pattern: "[a-z0-9][a-z0-9._-]{0,99}", autocomplete: "off" });
    const kind = h("select", {}, ["boolean", "string", "number", "json"].map((k) => h("option", { value: k }, k)));
    const name = h("input", { type: "text" });
    const description = h("textarea", { rows: 2 });
    const tags = h("input", { type: "text", placeholder: "comma, separated" });
    const controls = { key, kind, name, description, tags };
    const form = h("form", { class: "stack" },
      field("Key", key, "Lower case letters, digits, . _ -; what the code asks for."),
      field("Kind", kind),
      field("Name", name),
      field("Description", description),
      field("Tags", tags),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"),
        h("button", { type: "submit", class: "primary" }, "Create flag")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      const body = { key: key.value.trim(), kind: kind.value };
      if (name.value.trim()) body.name = name.value.trim();
      if (description.value.trim()) body.description = description.value.trim();
      const t = tags.value.split(",").map((s) => s.trim()).filter(Boolean);
      if (t.length) body.tags = t;
      if (kind.value !== "boolean") {
        body.variations = kind.value === "string"
          ? [{ key: "a", value: "a" }, { key: "b", value: "b" }]
          : kind.value === "number" ? [{ key: "one", value: 1 }, { key: "zero", value: 0 }]
            : [{ key: "a", value: { enabled: true } }, { key: "b", value: {} }];
      }
      try {
        await api("POST", "/flags", { body });
        notify(`Created ${body.key}.`);
        close(body.key);
        location.hash = `#/flags/${encodeURIComponent(body.key)}/${encodeURIComponent(ctx.env)}`;
      } catch (err) {
        placeErrors(err, controls, key);
      }
    });
    return form;
  });
}

/** Puts a problem's errors on the fields they name (by the first segment of the path). */
export function placeErrors(err, controls, fallback) {
  const errors = err instanceof ApiError && err.errors.length ? err.errors : [{ field: "", message: err.message }];
  for (const e of errors) {
    const name = String(e.field || "").split(/[.[]/)[0];
    showFieldError(controls[name] || fallback, e.field && !controls[name] ? `${e.field}: ${e.message}` : e.message);
  }
}
