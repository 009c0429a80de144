// Tokens (create shows the secret once; revoke) and webhooks (create, delete, and each
// one's delivery log).

import { h, replace, field, dialog, notify, when, loading, clearFieldErrors } from "./dom.js";
import { api, get } from "./api.js";
import { placeErrors } from "./flags.js";

function confirmDialog(title, text, confirmLabel) {
  return dialog(title, (close) => h("div", { class: "stack" }, h("p", {}, text),
    h("div", { class: "actions" }, h("button", { type: "button", class: "ghost", onclick: () => close(false) }, "Cancel"),
      h("button", { type: "button", class: "danger solid", onclick: () => close(true) }, confirmLabel))));
}

function showSecret(created) {
  return dialog(`Token “${created.name}” created`, (close) => {
    const secret = h("input", { type: "text", readonly: true, value: created.token, class: "code", spellcheck: "false" });
    return h("div", { class: "stack" },
      h("p", {}, "Copy the secret now: it is shown this once and never again."),
      field("Secret", secret),
      h("div", { class: "actions" },
        h("button", { type: "button", class: "ghost", onclick: async () => {
          try { await navigator.clipboard.writeText(created.token); notify("Copied."); } catch { secret.select(); }
        } }, "Copy secret"),
        h("button", { type: "button", class: "primary", onclick: () => close() }, "Done")));
  });
}

export const tokens = {
  async render(main, ctx) {
    const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 5 }, loading("Loading tokens"))));
    const name = h("input", { type: "text", autocomplete: "off", required: true });
    const kind = h("select", {}, [["admin", "Admin (API, CLI, console)"], ["sdk", "SDK (server-side apps)"], ["client", "Client (browsers, OFREP)"]].map(([v, l]) => h("option", { value: v }, l)));
    const env = h("select", {}, ctx.environments.map((e) => h("option", { value: e }, e)));
    env.value = ctx.env;
    const origins = h("input", { type: "text", placeholder: "https://app.example.com" });
    const envField = field("Environment", env);
    const originsField = field("Origins", origins, "Client tokens only: the browser origins allowed, comma separated.");
    const sync = () => { envField.hidden = kind.value === "admin"; originsField.hidden = kind.value !== "client"; };
    kind.addEventListener("change", sync);
    sync();
    const form = h("form", { class: "card stack" }, h("h2", {}, "Create a token"), field("Name", name), field("Kind", kind), envField, originsField,
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Create token")));
    const draw = async () => {
      const list = await get("/tokens");
      replace(body, list.map((t) => h("tr", {},
        h("th", { scope: "row" }, t.name),
        h("td", {}, t.kind),
        h("td", {}, t.environment || "every"),
        h("td", {}, when(t.created_at)),
        h("td", {}, h("button", { type: "button", class: "ghost small danger", "aria-label": `Revoke ${t.name} (${t.id})`, onclick: async () => {
          if (!(await confirmDialog(`Revoke ${t.name}?`, "Everything using it stops at once, on every replica.", `Revoke ${t.name}`))) return;
          try { await api("DELETE", `/tokens/${t.id}`); notify(`Revoked ${t.name}.`); draw(); } catch (err) { notify(err.message, "error"); }
        } }, "Revoke")))));
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      const b = { name: name.value.trim(), kind: kind.value };
      if (kind.value !== "admin") b.environment = env.value;
      if (kind.value === "client") b.origins = origins.value.split(",").map((s) => s.trim()).filter(Boolean);
      try {
        const { data } = await api("POST", "/tokens", { body: b });
        await showSecret(data);
        name.value = "";
        draw();
      } catch (err) {
        placeErrors(err, { name, kind, environment: env, origins }, name);
      }
    });
    replace(main, h("div", { class: "page-head" }, h("h1", {}, "Tokens")),
      h("div", { class: "two-col" },
        h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["Name", "Kind", "Environment", "Created", ""].map((t) => h("th", { scope: "col" }, t)))), body)),
        form));
    await draw();
  },
};

async function deliveries(hook) {
  await dialog(`Deliveries to ${hook.url}`, () => {
    const box = h("div", {}, loading("Loading deliveries"));
    get(`/webhooks/${hook.id}/deliveries`, { limit: 50 }).then((list) => {
      replace(box, list.length ? h("table", {}, h("thead", {}, h("tr", {}, ["Event", "Status", "Attempts", "Answer", "When"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, list.map((d) => h("tr", {}, h("td", {}, d.event), h("td", {}, h("span", { class: `badge ${d.status === "delivered" ? "on" : d.status === "failed" ? "killed" : "off"}` }, d.status)),
          h("td", {}, String(d.attempts)), h("td", {}, d.response_status ? String(d.response_status) : (d.last_error || "—")), h("td", {}, when(d.created_at))))))
        : h("p", { class: "empty" }, "Nothing delivered yet."));
    }).catch((err) => replace(box, h("p", { class: "error" }, err.message)));
    return box;
  });
}

export const webhooks = {
  async render(main) {
    const body = h("tbody", {}, h("tr", {}, h("td", { colspan: 4 }, loading("Loading webhooks"))));
    const url = h("input", { type: "url", placeholder: "https://hooks.example.com/flags", required: true });
    const secret = h("input", { type: "password", autocomplete: "new-password", required: true });
    const events = h("input", { type: "text", value: "flag.changed, release.rolled_back" });
    const form = h("form", { class: "card stack" }, h("h2", {}, "Add a webhook"),
      field("URL", url), field("Signing secret", secret, "Each delivery is signed: X-Flag-Signature: sha256=<HMAC of the body>."),
      field("Events", events, "Comma separated."),
      h("div", { class: "actions" }, h("button", { type: "submit", class: "primary" }, "Add webhook")));
    const draw = async () => {
      const list = await get("/webhooks");
      replace(body, list.length ? list.map((w) => h("tr", {},
        h("th", { scope: "row" }, h("code", {}, w.url)),
        h("td", {}, w.events.join(", ")),
        h("td", {}, when(w.created_at)),
        h("td", { class: "row-actions" },
          h("button", { type: "button", class: "ghost small", "aria-label": `Deliveries of webhook ${w.id}`, onclick: () => deliveries(w) }, "Deliveries"),
          h("button", { type: "button", class: "ghost small danger", "aria-label": `Delete webhook ${w.id}`, onclick: async () => {
            if (!(await confirmDialog("Delete this webhook?", w.url, "Delete webhook"))) return;
            try { await api("DELETE", `/webhooks/${w.id}`); draw(); } catch (err) { notify(err.message, "error"); }
          } }, "Delete"))))
        : h("tr", {}, h("td", { colspan: 4, class: "empty" }, "No webhooks.")));
    };
    form.addEventListener("submit", async (e) => {
      e.preventDefault();
      clearFieldErrors(form);
      try {
        await api("POST", "/webhooks", { body: { url: url.value.trim(), secret: secret.value, events: events.value.split(",").map((s) => s.trim()).filter(Boolean) } });
        notify("Webhook added.");
        url.value = ""; secret.value = "";
        draw();
      } catch (err) {
        placeErrors(err, { url, secret, events }, url);
      }
    });
    replace(main, h("div", { class: "page-head" }, h("h1", {}, "Webhooks")),
      h("div", { class: "two-col" },
        h("div", { class: "table-wrap" }, h("table", {}, h("thead", {}, h("tr", {}, ["URL", "Events", "Created", ""].map((t) => h("th", { scope: "col" }, t)))), body)),
        form));
    await draw();
  },
};
