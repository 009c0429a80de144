// A flag in one environment: the on/off switch, Kill (with a reason) and Restore, targets,
// rules, prerequisites, the fallthrough and the off variation, saved with If-Match. The
// API's validation errors land on the field they name; a stale save (412) says who changed
// what meanwhile (from the audit log) and offers to reload.

import { h, replace, field, dialog, notify, badge, loading, showFieldError, clearFieldErrors, when } from "./dom.js";
import { api, get, onAudit, ApiError, current } from "./api.js";
import { flagSwitch, stateIn, placeErrors } from "./flags.js";
import { ruleEditor, serveEditor } from "./rules.js";
import { releasePanel } from "./releases.js";
import { entryView } from "./audit.js";

const enc = encodeURIComponent;

/** Whether the flag is killed in `env`: the list's state when the server says, else the audit log. */
async function isKilled(meta, key, env) {
  const s = meta.environments && meta.environments[env];
  if (s && s.killed !== undefined) return s.killed;
  const { entries } = await get("/audit", { flag: key, environment: env, limit: 50 });
  const last = entries.find((e) => ["flag.kill", "flag.restore", "flag.config.update", "flag.create"].includes(e.action));
  return !!last && last.action === "flag.kill";
}

function killDialog(key, env, kill) {
  return dialog(kill ? `Kill ${key} in ${env}` : `Restore ${key} in ${env}`, (close) => {
    const reason = h("textarea", { rows: 3, required: kill });
    const confirm = h("button", { type: "submit", class: kill ? "danger solid" : "primary" }, `${kill ? "Kill" : "Restore"} ${key}`);
    const form = h("form", { class: "stack" },
      h("p", {}, kill
        ? `Everyone gets the off variation in ${env} at once. Restore brings back exactly what is there now.`
        : `Puts back the configuration from before the kill in ${env}.`),
      field("Reason", reason, kill ? "Required; it goes to the audit log (an incident id helps)." : "Optional; it goes to the audit log."),
      h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), confirm));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      if (kill && !reason.value.trim()) {
        showFieldError(reason, "Say why: it is what the next responder reads.");
        reason.focus();
        return;
      }
      confirm.disabled = true;
      try {
        const body = reason.value.trim() ? { reason: reason.value.trim() } : {};
        await api("POST", `/flags/${enc(key)}/environments/${enc(env)}/${kill ? "kill" : "restore"}`, { body });
        notify(kill ? `${key} is killed in ${env}.` : `${key} is restored in ${env}.`);
        close(true);
      } catch (err) {
        placeErrors(err, { reason }, reason);
        confirm.disabled = false;
      }
    });
    return form;
  });
}

/** A 412: who changed the flag since the page read it (audit entries after `seen`), and a choice to reload. */
async function stale(key, env, version, seen, reload) {
  let changes = [];
  try {
    const { entries } = await get("/audit", { flag: key, environment: env, limit: 20 });
    changes = entries.filter((e) => e.id > seen);
  } catch { /* the dialog still offers the reload */ }
  const choice = await dialog("Someone changed this flag meanwhile", (close) => h("div", { class: "stack" },
    h("p", {}, `You edited version ${version}. Nothing was saved: your changes would have overwritten these.`),
    changes.length ? h("ol", { class: "audit compact" }, changes.slice(0, 5).map((e) => entryView(e, true))) : h("p", { class: "muted" }, "The audit log does not say more."),
    h("div", { class: "actions" },
      h("button", { type: "button", class: "ghost", onclick: () => close(false) }, "Keep my edits"),
      h("button", { type: "button", class: "primary", onclick: () => close(true) }, "Reload the flag"))));
  if (choice) reload();
}

function editDetails(meta, reload) {
  return dialog(`Edit ${meta.key}`, (close) => {
    const name = h("input", { type: "text", value: meta.name || "" });
    const description = h("textarea", { rows: 3 });
    description.value = meta.description || "";
    const tags = h("input", { type: "text", value: (meta.tags || []).join(", ") });
    const form = h("form", { class: "stack" }, field("Name", name), field("Description", description), field("Tags", tags, "Comma separated."),
      h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", onclick: () => close() }, "Cancel"), h("button", { type: "submit", class: "primary" }, "Save details")));
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      try {
        await api("PATCH", `/flags/${enc(meta.key)}`, { body: {
          name: name.value.trim(), description: description.value.trim(),
          tags: tags.value.split(",").map((t) => t.trim()).filter(Boolean) } });
        notify("Details saved.");
        close(true);
        reload();
      } catch (err) {
        placeErrors(err, { name, description, tags }, name);
      }
    });
    return form;
  });
}

async function archive(meta, reload) {
  try {
    if (meta.archived) await api("POST", `/flags/${enc(meta.key)}/unarchive`, { body: {} });
    else await api("DELETE", `/flags/${enc(meta.key)}`);
    notify(meta.archived ? `${meta.key} is back.` : `${meta.key} is archived.`);
    reload();
  } catch (err) {
    notify(err.message, "error");
  }
}

export async function render(main, ctx) {
  const [key, env] = ctx.params;
  replace(main, loading(`Loading ${key}`));
  let draft, version, meta, segmentKeys = [];
  let seen = 0; // the newest audit entry of this flag here when the page read it
  let dirty = false;
  const controls = new Map();
  const reg = (path, el) => controls.set(path, el);
  const editor = h("div", { class: "editor" });
  const reason = h("input", { type: "text", placeholder: "why (goes to the audit log)" });
  const save = h("button", { type: "submit", class: "primary" }, "Save changes");
  const formError = h("p", { class: "form-error", role: "alert", hidden: true });
  const head = h("div", { class: "flag-head" });
  const side = h("aside", { class: "side" });

  async function reload() {
    const [m, config, segs, last] = await Promise.all([
      api("GET", `/flags/${enc(key)}`).then((r) => r.data),
      api("GET", `/flags/${enc(key)}/environments/${enc(env)}`),
      get(`/environments/${enc(env)}/segments`).catch(() => []),
      get("/audit", { flag: key, environment: env, limit: 1 }),
    ]);
    seen = last.entries.length ? last.entries[0].id : 0;
    meta = m;
    draft = normalized(config.data);
    version = Number(config.etag || draft.version);
    segmentKeys = (Array.isArray(segs) ? segs : segs.segments || []).map((s) => s.key);
    const killed = await isKilled(meta, key, env);
    dirty = false;
    renderHead(killed);
    renderEditor();
    renderSide();
  }

  function renderHead(killed) {
    const state = killed ? "killed" : (stateIn(meta, env) || (draft.enabled ? "on" : "off"));
    const envLinks = ctx.environments.map((e) => h("a", { href: `#/flags/${enc(key)}/${enc(e)}`, class: "env-tab", "aria-current": e === env ? "page" : null }, e));
    replace(head,
      h("div", { class: "crumbs" }, h("a", { href: "#/flags" }, "Flags"), " / ", key),
      h("div", { class: "title-row" },
        h("div", {},
          h("h1", {}, key, " ", badge(state)),
          meta.name ? h("p", { class: "flag-name" }, meta.name) : null,
          meta.description ? h("p", { class: "flag-desc" }, meta.description) : null,
          h("ul", { class: "tags", "aria-label": "Tags" }, (meta.tags || []).map((t) => h("li", {}, t)))),
        h("div", { class: "head-actions" },
          h("button", { type: "button", class: "ghost", onclick: () => editDetails(meta, reload) }, "Edit details"),
          h("a", { class: "button ghost", href: `#/compare/${enc(key)}` }, "Compare environments"),
          h("button", { type: "button", class: "ghost", onclick: () => archive(meta, reload) }, meta.archived ? "Unarchive" : "Archive"))),
      h("nav", { class: "env-tabs", "aria-label": "Environments" }, envLinks),
      h("div", { class: "control-bar" },
        h("div", { class: "switch-row" }, flagSwitch({ ...meta, environments: { [env]: { enabled: draft.enabled, killed } } }, env, reload),
          h("span", {}, draft.enabled ? `Serving in ${env}` : `Off in ${env}: everyone gets “${draft.off_variation}”`)),
        h("div", { class: "kill-row" },
          killed
            ? h("button", { type: "button", class: "primary", onclick: async () => { if (await killDialog(key, env, false)) reload(); } }, "Restore")
            : h("button", { type: "button", class: "danger solid", onclick: async () => { if (await killDialog(key, env, true)) reload(); } }, "Kill"))));
  }

  function rerender(focusPath) {
    renderEditor();
    const el = focusPath && controls.get(focusPath);
    if (el) el.focus();
  }

  function renderEditor() {
    controls.clear();
    const variations = draft.variations;
    const offVar = h("select", {}, variations.map((v) => h("option", { value: v.key }, `${v.key} = ${JSON.stringify(v.value)}`)));
    offVar.value = draft.off_variation;
    offVar.addEventListener("change", () => { draft.off_variation = offVar.value; });
    reg("off_variation", offVar);

    const targets = variations.map((v) => {
      let t = draft.targets.find((x) => x.variation === v.key);
      const keys = h("textarea", { rows: 2, placeholder: "user-1, user-2" });
      keys.value = t ? t.keys.join(", ") : "";
      keys.addEventListener("input", () => {
        const list = keys.value.split(/[,\n]/).map((k) => k.trim()).filter(Boolean);
        draft.targets = draft.targets.filter((x) => x.variation !== v.key);
        if (list.length) draft.targets.push({ variation: v.key, keys: list });
      });
      const i = draft.targets.findIndex((x) => x.variation === v.key);
      if (i >= 0) { reg(`targets[${i}]`, keys); reg(`targets[${i}].keys`, keys); }
      return field(`Context keys served ${v.key}`, keys);
    });
    reg("targets", targets[0] && targets[0].querySelector("textarea"));

    const prereqs = draft.prerequisites.map((p, i) => {
      const flagKey = h("input", { type: "text", value: p.flag, autocomplete: "off" });
      const variation = h("input", { type: "text", value: p.variation, autocomplete: "off" });
      flagKey.addEventListener("input", () => { p.flag = flagKey.value.trim(); });
      variation.addEventListener("input", () => { p.variation = variation.value.trim(); });
      reg(`prerequisites[${i}]`, flagKey); reg(`prerequisites[${i}].flag`, flagKey); reg(`prerequisites[${i}].variation`, variation);
      return h("div", { class: "inline" }, field(`Prerequisite ${i + 1} flag`, flagKey), field(`Prerequisite ${i + 1} variation`, variation),
        h("button", { type: "button", class: "icon danger", "aria-label": `Remove prerequisite ${i + 1}`, onclick: () => { draft.prerequisites.splice(i, 1); rerender(); } }, "×"));
    });
    const addPrereq = h("button", { type: "button", class: "ghost small", onclick: () => {
      draft.prerequisites.push({ flag: "", variation: "on" });
      rerender(`prerequisites[${draft.prerequisites.length - 1}].flag`);
    } }, "Add prerequisite");
    reg("prerequisites", addPrereq);

    const rules = draft.rules.map((r, i) => ruleEditor(r, i, variations, reg, rerender, () => { draft.rules.splice(i, 1); rerender(); }, segmentKeys, (by) => {
      const j = i + by;
      if (j < 0 || j >= draft.rules.length) return;
      [draft.rules[i], draft.rules[j]] = [draft.rules[j], draft.rules[i]];
      rerender();
    }));
    const addRule = h("button", { type: "button", class: "ghost", onclick: () => {
      draft.rules.push({ clauses: [{ attribute: "", op: "in", values: [] }], serve: { variation: variations[0].key } });
      rerender(`rules[${draft.rules.length - 1}].clauses[0].attribute`);
    } }, "Add rule");
    reg("rules", addRule);

    replace(editor,
      h("section", { class: "card", "aria-labelledby": "sec-targets" }, h("h2", { id: "sec-targets" }, "Individual targets"),
        h("p", { class: "muted small" }, "Checked before the rules."), h("div", { class: "grid2" }, targets)),
      h("section", { class: "card", "aria-labelledby": "sec-rules" }, h("h2", { id: "sec-rules" }, "Rules"),
        h("p", { class: "muted small" }, "The first rule whose clauses all match decides."),
        rules.length ? rules : h("p", { class: "empty small" }, "No rules."), addRule),
      h("section", { class: "card", "aria-labelledby": "sec-fall" }, h("h2", { id: "sec-fall" }, "Everyone else"),
        serveEditor(draft.fallthrough, "fallthrough", variations, reg, "Fallthrough")),
      h("section", { class: "card", "aria-labelledby": "sec-off" }, h("h2", { id: "sec-off" }, "When off"),
        field("Off variation", offVar, "Served when the flag is off or killed, or a prerequisite fails.")),
      h("section", { class: "card", "aria-labelledby": "sec-pre" }, h("h2", { id: "sec-pre" }, "Prerequisites"),
        h("p", { class: "muted small" }, "Flags that must serve a variation first."), prereqs, addPrereq));
  }

  async function renderSide() {
    const history = h("ol", { class: "audit compact" });
    replace(side, h("section", { class: "card" }, h("h2", {}, "Release"), releasePanel(key, env, draft)),
      h("section", { class: "card" }, h("h2", {}, "Recent changes"), history,
        h("a", { href: `#/audit?flag=${enc(key)}` }, "Full audit log")));
    try {
      const { entries } = await get("/audit", { flag: key, environment: env, limit: 8 });
      replace(history, entries.length ? entries.map((e) => entryView(e)) : h("li", { class: "muted" }, "Nothing yet."));
    } catch (err) {
      replace(history, h("li", { class: "error" }, err.message));
    }
  }

  const form = h("form", { class: "flag-form", novalidate: true },
    editor,
    h("div", { class: "savebar" }, formError, field("Reason for this change", reason), save));
  form.addEventListener("input", () => { dirty = true; });
  form.addEventListener("change", () => { dirty = true; });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    formError.hidden = true;
    save.disabled = true;
    try {
      await api("PUT", `/flags/${enc(key)}/environments/${enc(env)}`, { body: draft, ifMatch: version, query: { reason: reason.value.trim() } });
      reason.value = "";
      notify(`Saved ${key} in ${env}.`);
      await reload();
    } catch (err) {
      if (err instanceof ApiError && err.status === 412) {
        await stale(key, env, version, seen, reload);
      } else if (err instanceof ApiError && err.errors.length) {
        for (const fe of err.errors) {
          const target = lookup(controls, fe.field);
          if (target) showFieldError(target, fe.message);
          else { formError.hidden = false; formError.textContent = `${fe.field}: ${fe.message}`; }
        }
        const first = form.querySelector("[aria-invalid=true]");
        if (first) {
          first.scrollIntoView({ block: "center" });
          first.focus({ preventScroll: true });
        }
        formError.hidden = false;
        if (!formError.textContent) formError.textContent = "Nothing was saved: fix the fields marked below.";
      } else {
        formError.hidden = false;
        formError.textContent = err.message;
      }
    } finally {
      save.disabled = false;
    }
  });

  await reload();
  replace(main, head, h("div", { class: "flag-layout" }, form, side));
  const live = document.getElementById("live-status");
  onAudit((entry) => {
    if (entry.flag !== key || (entry.environment && entry.environment !== env)) return;
    const me = current() && entry.actor === current().name;
    if (live) live.textContent = `${entry.actor} changed ${key}: ${entry.action}`;
    if (!me) notify(`${entry.actor}: ${entry.action}${entry.reason ? ` (${entry.reason})` : ""}`);
    refreshHeadOnly();
  });

  async function refreshHeadOnly() {
    if (!dirty) return reload();
    // An open edit keeps its version: saving it gets the 412 and says what changed.
    const m = await api("GET", `/flags/${enc(key)}`).then((r) => r.data);
    meta = m;
    renderHead(await isKilled(meta, key, env));
    renderSide();
  }
}

/** A configuration with every list present (the API leaves empty ones out). */
export function normalized(config) {
  for (const list of ["targets", "rules", "prerequisites"]) config[list] = config[list] || [];
  for (const rule of config.rules) rule.clauses = rule.clauses || [];
  return config;
}

/** The control registered for `path`, or for its longest registered prefix. */
function lookup(controls, path) {
  let p = String(path || "");
  while (p) {
    if (controls.has(p) && controls.get(p)) return controls.get(p);
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    if (cut <= 0) break;
    p = p.slice(0, cut);
  }
  return controls.get(p) || null;
}
