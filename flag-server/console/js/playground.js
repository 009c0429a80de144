// The playground: a context as JSON or as key and attribute fields → the value, variation
// and reason of every flag (or the flags named), from the server's own evaluator.

import { h, replace, field, uid, showFieldError, clearFieldErrors } from "./dom.js";
import { api } from "./api.js";

/** A reason as words: `RULE_MATCH · rule 1 “benelux” · in rollout`. */
export function reasonText(r) {
  if (!r) return "";
  const parts = [r.kind];
  if (r.rule_index !== undefined) parts.push(`rule ${r.rule_index + 1}${r.rule_id ? ` “${r.rule_id}”` : ""}`);
  if (r.prerequisite) parts.push(`prerequisite ${r.prerequisite}`);
  if (r.error) parts.push(r.error);
  if (r.in_rollout) parts.push("in rollout");
  return parts.join(" · ");
}

function attributeValue(text) {
  const t = text.trim();
  try {
    const v = JSON.parse(t);
    if (typeof v !== "object" || Array.isArray(v)) return v;
  } catch { /* a plain string */ }
  return t;
}

export async function render(main, ctx) {
  const env = h("select", { id: "pg-env" }, ctx.environments.map((e) => h("option", { value: e }, e)));
  env.value = ctx.env;
  const mode = uid("mode");
  const asFields = h("input", { type: "radio", name: mode, id: `${mode}-f`, checked: true });
  const asJson = h("input", { type: "radio", name: mode, id: `${mode}-j` });
  const json = h("textarea", { rows: 8, spellcheck: "false", class: "code" });
  json.value = JSON.stringify({ key: "user-42", country: "NL", plan: "pro" }, null, 2);
  const key = h("input", { type: "text", value: "user-42", autocomplete: "off" });
  const attrs = h("div", { class: "attrs" });
  const addAttr = (name = "", value = "") => {
    const n = h("input", { type: "text", value: name, autocomplete: "off" });
    const v = h("input", { type: "text", value, autocomplete: "off" });
    const i = attrs.children.length + 1;
    const row = h("div", { class: "inline" }, field(`Attribute ${i} name`, n), field(`Attribute ${i} value`, v),
      h("button", { type: "button", class: "icon danger", "aria-label": `Remove attribute ${i}`, onclick: () => row.remove() }, "×"));
    attrs.append(row);
    return n;
  };
  addAttr("country", "NL");
  addAttr("plan", "pro");
  const fieldsBox = h("div", { class: "stack" }, field("Context key", key), attrs,
    h("button", { type: "button", class: "ghost small", onclick: () => addAttr().focus() }, "Add attribute"));
  const jsonBox = h("div", { hidden: true }, field("Context (JSON)", json, "A JSON object with a string \"key\"."));
  const flags = h("input", { type: "text", placeholder: "every flag", autocomplete: "off" });
  const run = h("button", { type: "submit", class: "primary" }, "Evaluate");
  const results = h("div", { class: "results", "aria-live": "polite" });
  const formError = h("p", { class: "form-error", role: "alert", hidden: true });

  const sync = () => {
    fieldsBox.hidden = !asFields.checked;
    jsonBox.hidden = !asJson.checked;
  };
  asFields.addEventListener("change", sync);
  asJson.addEventListener("change", sync);

  function context() {
    if (asJson.checked) {
      try {
        return JSON.parse(json.value);
      } catch (err) {
        showFieldError(json, `Not JSON: ${err.message}`);
        return null;
      }
    }
    const c = { key: key.value.trim() };
    for (const row of attrs.children) {
      const [n, v] = row.querySelectorAll("input");
      if (n.value.trim()) c[n.value.trim()] = attributeValue(v.value);
    }
    return c;
  }

  const form = h("form", { class: "card stack playground" },
    field("Environment", env),
    h("fieldset", {}, h("legend", {}, "Context"),
      h("div", { class: "radios" },
        h("span", {}, asFields, h("label", { for: asFields.id }, "Key and attributes")),
        h("span", {}, asJson, h("label", { for: asJson.id }, "JSON"))),
      fieldsBox, jsonBox),
    field("Flags", flags, "Comma separated; empty evaluates every flag."),
    formError,
    h("div", { class: "actions" }, run));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clearFieldErrors(form);
    formError.hidden = true;
    const c = context();
    if (!c) return;
    const body = { context: c };
    const named = flags.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (named.length) body.flags = named;
    try {
      const { data } = await api("POST", `/environments/${encodeURIComponent(env.value)}/evaluate`, { body });
      const rows = Object.entries(data.results);
      replace(results, h("h2", {}, `Results in ${data.environment} at revision ${data.revision}`),
        rows.length ? h("table", { class: "results-table" },
          h("thead", {}, h("tr", {}, ["Flag", "Value", "Variation", "Reason"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, rows.map(([k, r]) => h("tr", {},
            h("th", { scope: "row" }, h("a", { href: `#/flags/${encodeURIComponent(k)}/${encodeURIComponent(data.environment)}` }, k)),
            h("td", {}, h("code", {}, r.value === undefined || r.value === null ? "—" : JSON.stringify(r.value))),
            h("td", {}, r.variation || "—"),
            h("td", {}, reasonText(r.reason)))))) : h("p", { class: "empty" }, "No flags."));
    } catch (err) {
      formError.hidden = false;
      formError.textContent = err.errors && err.errors.length ? err.errors.map((x) => `${x.field}: ${x.message}`).join("; ") : err.message;
      for (const x of err.errors || []) {
        if (String(x.field).startsWith("context")) showFieldError(asJson.checked ? json : key, x.message);
      }
    }
  });
  replace(main, h("div", { class: "page-head" }, h("h1", {}, "Playground")),
    h("p", { class: "muted" }, "What would this context get? The server's own evaluator answers; nothing is recorded."),
    h("div", { class: "two-col" }, form, results));
}
