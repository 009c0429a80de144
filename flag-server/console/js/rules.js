// The targeting editors of a flag's page: clauses (every operator, with inline help),
// rules, and a serve (one variation, or a rollout with weights shown as percentages).
// Each editor mutates the draft it is given and registers its controls under the JSON path
// the API names in `errors[].field` (`rules[0].clauses[1].values`), so an error lands on
// the field it is about.

import { h, field, uid } from "./dom.js";

/** Every operator with its inline help (contract section 2). */
export const OPERATORS = [
  ["in", "is one of", "Equal to one of the values (same JSON type: \"NL\" is not 31)."],
  ["starts_with", "starts with", "The attribute (a string) starts with one of the values."],
  ["ends_with", "ends with", "The attribute (a string) ends with one of the values."],
  ["contains", "contains", "The attribute (a string) contains one of the values."],
  ["matches", "matches regex", "Rust regex syntax, unanchored: ^ and $ to anchor. One value per line."],
  ["lt", "<", "A number less than the value."],
  ["lte", "≤", "A number less than or equal to the value."],
  ["gt", ">", "A number greater than the value."],
  ["gte", "≥", "A number greater than or equal to the value."],
  ["before", "before", "An instant before the value: RFC 3339 (2026-01-31T00:00:00Z) or Unix milliseconds."],
  ["after", "after", "An instant after the value: RFC 3339 (2026-01-31T00:00:00Z) or Unix milliseconds."],
  ["semver_eq", "semver =", "A version equal to the value by SemVer 2.0 precedence (1.2 reads as 1.2.0)."],
  ["semver_lt", "semver <", "A version lower than the value by SemVer 2.0 precedence."],
  ["semver_gt", "semver >", "A version higher than the value by SemVer 2.0 precedence."],
  ["in_segment", "in segment", "The context is a member of one of these segments (the attribute is ignored)."],
];

const helpOf = (op) => (OPERATORS.find(([o]) => o === op) || [, , "An operator this console does not know."])[2];
const NUMERIC = new Set(["lt", "lte", "gt", "gte"]);
const STRINGS = new Set(["starts_with", "ends_with", "contains", "matches", "semver_eq", "semver_lt", "semver_gt", "in_segment"]);

/** Clause values as the text field shows them. */
export function valuesText(op, values) {
  const shown = (values || []).map((v) => (typeof v === "string" ? v : JSON.stringify(v)));
  return op === "matches" ? shown.join("\n") : shown.join(", ");
}

/** The text field's values as JSON values for `op`. */
export function parseValues(op, text) {
  const parts = (op === "matches" ? text.split("\n") : text.split(",")).map((s) => s.trim()).filter((s) => s !== "");
  return parts.map((p) => {
    if (STRINGS.has(op)) return p;
    if (/^-?\d+(\.\d+)?([eE][-+]?\d+)?$/.test(p)) return NUMERIC.has(op) || op === "in" || /^\d+$/.test(p) ? Number(p) : p;
    if (op === "in" && (p === "true" || p === "false")) return p === "true";
    if (op === "in" && /^".*"$/.test(p)) return p.slice(1, -1);
    return p;
  });
}

/** The editor of one clause; `remove` drops it from its rule. */
export function clauseEditor(clause, path, reg, remove, segmentKeys) {
  const attribute = h("input", { type: "text", value: clause.attribute || "", autocomplete: "off", placeholder: "country" });
  const op = h("select", {}, OPERATORS.map(([o, label]) => h("option", { value: o }, `${label} (${o})`)));
  op.value = clause.op;
  const listId = uid("segments");
  const values = h(clause.op === "matches" ? "textarea" : "input", { type: "text", rows: 2, autocomplete: "off", list: listId });
  values.value = valuesText(clause.op, clause.values);
  const negate = h("input", { type: "checkbox", checked: !!clause.negate });
  const help = h("span");
  const opField = field("Operator", op, help);
  const setHelp = () => { help.textContent = helpOf(op.value); };
  setHelp();
  attribute.addEventListener("input", () => { clause.attribute = attribute.value.trim(); });
  op.addEventListener("change", () => {
    clause.op = op.value;
    clause.values = parseValues(clause.op, values.value);
    setHelp();
  });
  values.addEventListener("input", () => { clause.values = parseValues(clause.op, values.value); });
  negate.addEventListener("change", () => { clause.negate = negate.checked || undefined; });
  reg(`${path}.attribute`, attribute);
  reg(`${path}.op`, op);
  reg(`${path}.values`, values);
  reg(`${path}.negate`, negate);
  reg(path, values);
  const negateId = uid("neg");
  negate.id = negateId;
  return h("div", { class: "clause" },
    field("Attribute", attribute),
    opField,
    field("Values", values, "Separate values with commas."),
    h("datalist", { id: listId }, (segmentKeys || []).map((k) => h("option", { value: k }))),
    h("div", { class: "field check" }, negate, h("label", { for: negateId }, "Negate")),
    h("button", { type: "button", class: "icon danger", "aria-label": `Remove clause ${path}`, onclick: remove }, "×"));
}

/** The editor of a serve: a variation, or a rollout with percentage weights. */
export function serveEditor(serve, path, variations, reg, label, onKind) {
  const isRollout = !!serve.rollout;
  const group = uid("serve");
  const asVariation = h("input", { type: "radio", name: group, id: `${group}-v`, checked: !isRollout });
  const asRollout = h("input", { type: "radio", name: group, id: `${group}-r`, checked: isRollout });
  const body = h("div", { class: "serve-body" });
  const renderBody = () => {
    body.replaceChildren();
    if (serve.rollout) {
      const r = serve.rollout;
      const bucket = h("input", { type: "text", value: r.bucket_by || "key", autocomplete: "off" });
      bucket.addEventListener("input", () => { r.bucket_by = bucket.value.trim(); });
      reg(`${path}.rollout.bucket_by`, bucket);
      const total = h("output", { class: "total" });
      const sum = () => {
        const t = r.weights.reduce((a, w) => a + w.weight, 0) / 1000;
        total.textContent = `Total ${t}%`;
        total.classList.toggle("bad", t !== 100);
      };
      const rows = variations.map((v) => {
        let w = r.weights.find((x) => x.variation === v.key);
        if (!w) { w = { variation: v.key, weight: 0 }; r.weights.push(w); }
        const pct = h("input", { type: "number", min: 0, max: 100, step: "0.001", value: w.weight / 1000, class: "pct" });
        pct.addEventListener("input", () => { w.weight = Math.round(Number(pct.value || 0) * 1000); sum(); });
        const i = r.weights.indexOf(w);
        reg(`${path}.rollout.weights[${i}]`, pct);
        reg(`${path}.rollout.weights[${i}].weight`, pct);
        return h("div", { class: "weight" }, field(`${v.key} %`, pct));
      });
      reg(`${path}.rollout.weights`, rows.length ? rows[0].querySelector("input") : bucket);
      reg(`${path}.rollout`, bucket);
      sum();
      body.append(h("div", { class: "weights" }, rows), total, field("Bucket by attribute", bucket, "Contexts with the same value get the same variation."));
    } else {
      const select = h("select", {}, variations.map((v) => h("option", { value: v.key }, v.key)));
      select.value = serve.variation;
      select.addEventListener("change", () => { serve.variation = select.value; });
      reg(`${path}.variation`, select);
      reg(path, select);
      body.append(field("Variation", select));
    }
  };
  asVariation.addEventListener("change", () => {
    const first = serve.rollout ? serve.rollout.weights.slice().sort((a, b) => b.weight - a.weight)[0] : null;
    delete serve.rollout;
    serve.variation = first ? first.variation : variations[0].key;
    renderBody();
    if (onKind) onKind();
  });
  asRollout.addEventListener("change", () => {
    const current = serve.variation;
    delete serve.variation;
    serve.rollout = {
      bucket_by: "key",
      weights: variations.map((v) => ({ variation: v.key, weight: v.key === current ? 100000 : 0 })),
    };
    renderBody();
    if (onKind) onKind();
  });
  renderBody();
  return h("fieldset", { class: "serve" },
    h("legend", {}, label),
    h("div", { class: "radios" },
      h("span", {}, asVariation, h("label", { for: asVariation.id }, "One variation")),
      h("span", {}, asRollout, h("label", { for: asRollout.id }, "Percentage rollout"))),
    body);
}

/** The editor of one rule: its id, clauses (AND-ed) and serve. */
export function ruleEditor(rule, index, variations, reg, rerender, remove, segmentKeys, move) {
  const path = `rules[${index}]`;
  const id = h("input", { type: "text", value: rule.id || "", autocomplete: "off", placeholder: "optional" });
  id.addEventListener("input", () => { rule.id = id.value.trim() || undefined; });
  reg(`${path}.id`, id);
  const clauses = rule.clauses.map((c, i) => clauseEditor(c, `${path}.clauses[${i}]`, reg, () => {
    rule.clauses.splice(i, 1);
    rerender();
  }, segmentKeys));
  const addClause = h("button", { type: "button", class: "ghost small" }, "Add clause");
  addClause.addEventListener("click", () => {
    rule.clauses.push({ attribute: "", op: "in", values: [] });
    rerender(`${path}.clauses[${rule.clauses.length - 1}].attribute`);
  });
  reg(`${path}.clauses`, addClause);
  reg(path, id);
  const heading = rule.id ? `Rule ${index + 1}: ${rule.id}` : `Rule ${index + 1}`;
  return h("section", { class: "rule", "aria-label": heading },
    h("div", { class: "rule-head" },
      h("h3", {}, heading),
      h("div", { class: "rule-tools" },
        h("button", { type: "button", class: "ghost small", "aria-label": `Move rule ${index + 1} up`, disabled: index === 0, onclick: () => move(-1) }, "↑"),
        h("button", { type: "button", class: "ghost small", "aria-label": `Move rule ${index + 1} down`, onclick: () => move(1) }, "↓"),
        h("button", { type: "button", class: "ghost small danger", "aria-label": `Remove rule ${index + 1}`, onclick: remove }, "Remove"))),
    field("Rule id", id),
    h("p", { class: "muted small" }, "All clauses must match (AND); any value within a clause (OR)."),
    h("div", { class: "clauses" }, clauses),
    addClause,
    serveEditor(rule.serve, `${path}.serve`, variations, reg, "Serve"));
}
