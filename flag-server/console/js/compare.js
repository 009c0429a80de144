// A flag's configuration across environments side by side, and a copy from one to another
// (a normal write with If-Match, audited).

import { h, replace, field, notify, loading } from "./dom.js";
import { api } from "./api.js";
import { diff } from "./audit.js";
import { normalized } from "./flag.js";

const enc = encodeURIComponent;

function summary(config) {
  const serve = (s) => (s.variation ? s.variation : s.rollout ? s.rollout.weights.map((w) => `${w.variation} ${w.weight / 1000}%`).join(" / ") : "?");
  return [
    ["State", config.enabled ? "On" : "Off"],
    ["Off variation", config.off_variation],
    ["Targets", config.targets.map((t) => `${t.variation}: ${t.keys.length}`).join(", ") || "—"],
    ["Rules", String(config.rules.length)],
    ["Fallthrough", serve(config.fallthrough)],
    ["Prerequisites", config.prerequisites.map((p) => `${p.flag}=${p.variation}`).join(", ") || "—"],
  ];
}

export async function render(main, ctx) {
  const [key] = ctx.params;
  replace(main, loading(`Loading ${key}`));
  const configs = await Promise.all(ctx.environments.map((env) =>
    api("GET", `/flags/${enc(key)}/environments/${enc(env)}`).then((r) => ({ env, config: normalized(r.data), etag: r.etag }))));
  const from = h("select", { id: "copy-from" }, ctx.environments.map((e) => h("option", { value: e }, e)));
  const to = h("select", { id: "copy-to" }, ctx.environments.map((e) => h("option", { value: e }, e)));
  if (ctx.environments.length > 1) to.value = ctx.environments.find((e) => e !== from.value);
  const preview = h("div", { class: "diff-preview" });
  const showPreview = () => {
    const a = configs.find((c) => c.env === from.value).config;
    const b = configs.find((c) => c.env === to.value).config;
    const changes = diff(b, a);
    replace(preview, changes.length
      ? h("table", { class: "diff" }, h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Field"), h("th", { scope: "col" }, `In ${to.value} now`), h("th", { scope: "col" }, `After the copy`))),
        h("tbody", {}, changes.map((c) => h("tr", {}, h("th", { scope: "row" }, h("code", {}, c.path)), h("td", { class: "del" }, c.before ?? "—"), h("td", { class: "ins" }, c.after ?? "—")))))
      : h("p", { class: "muted" }, "The two environments are configured alike."));
  };
  from.addEventListener("change", showPreview);
  to.addEventListener("change", showPreview);
  const copy = h("button", { type: "button", class: "primary" }, "Copy configuration");
  copy.addEventListener("click", async () => {
    if (from.value === to.value) return notify("Choose two different environments.", "error");
    const source = configs.find((c) => c.env === from.value).config;
    const target = configs.find((c) => c.env === to.value);
    const body = { ...source, version: target.config.version };
    try {
      await api("PUT", `/flags/${enc(key)}/environments/${enc(to.value)}`, { body, ifMatch: target.etag, query: { reason: `copied from ${from.value} in the console` } });
      notify(`Copied ${key} from ${from.value} to ${to.value}.`);
      render(main, ctx);
    } catch (err) {
      notify(err.status === 412 ? `${to.value} changed meanwhile; nothing was copied. Look again.` : err.message, "error");
    }
  });
  const rows = summary(configs[0].config).map(([label], i) => h("tr", {}, h("th", { scope: "row" }, label),
    configs.map((c) => h("td", {}, summary(c.config)[i][1]))));
  replace(main,
    h("div", { class: "crumbs" }, h("a", { href: "#/flags" }, "Flags"), " / ", h("a", { href: `#/flags/${enc(key)}/${enc(ctx.env)}` }, key), " / compare"),
    h("h1", {}, `${key} across environments`),
    h("div", { class: "table-wrap" }, h("table", { class: "compare" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""), configs.map((c) => h("th", { scope: "col" }, h("a", { href: `#/flags/${enc(key)}/${enc(c.env)}` }, c.env))))),
      h("tbody", {}, rows))),
    h("section", { class: "card" }, h("h2", {}, "Copy from one environment to another"),
      h("div", { class: "toolbar" }, field("From", from), field("To", to), copy), preview));
  showPreview();
}
