// The console's shell: sign-in, the navigation, the environment picker and the router
// (`#/flags`, `#/flags/KEY/ENV`, ...). Each page is a module with `render(main, ctx)`.

import { h, replace, field, notify, showFieldError } from "./dom.js";
import { loadSession, signIn, signOut, current, get, clearAuditListeners, ApiError } from "./api.js";
import * as flags from "./flags.js";
import * as flag from "./flag.js";
import * as compare from "./compare.js";
import * as segments from "./segments.js";
import * as playground from "./playground.js";
import * as audit from "./audit.js";
import * as releases from "./releases.js";
import * as admin from "./admin.js";

const routes = [
  { path: /^flags$/, page: flags, nav: "flags", title: "Flags" },
  { path: /^flags\/([^/]+)\/([^/]+)$/, page: flag, nav: "flags", title: "Flag" },
  { path: /^compare\/([^/]+)$/, page: compare, nav: "flags", title: "Compare environments" },
  { path: /^segments$/, page: segments, nav: "segments", title: "Segments" },
  { path: /^segments\/([^/]+)$/, page: segments, nav: "segments", title: "Segment" },
  { path: /^playground$/, page: playground, nav: "playground", title: "Playground" },
  { path: /^audit$/, page: audit, nav: "audit", title: "Audit log" },
  { path: /^releases$/, page: releases, nav: "releases", title: "Releases" },
  { path: /^tokens$/, page: admin.tokens, nav: "tokens", title: "Tokens" },
  { path: /^webhooks$/, page: admin.webhooks, nav: "webhooks", title: "Webhooks" },
];

const nav = [
  ["flags", "Flags"],
  ["segments", "Segments"],
  ["playground", "Playground"],
  ["releases", "Releases"],
  ["audit", "Audit log"],
  ["tokens", "Tokens"],
  ["webhooks", "Webhooks"],
];

const root = document.getElementById("app");
let environments = [];
let cleanup = null;

/** The environment the pages show (kept for this tab). */
function environment() {
  const chosen = sessionStorage.getItem("env");
  if (chosen && environments.includes(chosen)) return chosen;
  return environments.includes("production") ? "production" : environments[0];
}

function setEnvironment(env) {
  sessionStorage.setItem("env", env);
  route();
}

function signInPage() {
  const token = h("input", { type: "password", autocomplete: "current-password", required: true, spellcheck: "false" });
  const submit = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "signin-form", novalidate: true }, field("Admin token", token,
    h("span", {}, "The server prints one at its first start; ", h("code", {}, "flag token create --kind admin"), " makes more.")), submit);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    submit.disabled = true;
    try {
      await signIn(token.value);
      await start();
    } catch (err) {
      const message = err instanceof ApiError && err.status === 401
        ? "That is not an active admin token."
        : err.message;
      showFieldError(token, message);
      token.focus();
    } finally {
      submit.disabled = false;
    }
  });
  document.title = "Sign in · flags";
  replace(root, h("main", { class: "signin", id: "main" },
    h("div", { class: "signin-card" },
      h("div", { class: "brand large" }, h("span", { class: "logo", "aria-hidden": "true" }), "flags"),
      h("h1", {}, "Sign in to the console"),
      h("p", { class: "muted" }, "Your session is kept in a secure cookie; the token is never stored in the browser."),
      form)));
  token.focus();
  performance.mark("console:ready:signin");
}

function shell() {
  const picker = h("select", { id: "env-picker", "aria-label": "Environment", onchange: (e) => setEnvironment(e.target.value) },
    environments.map((env) => h("option", { value: env }, env)));
  const links = nav.map(([id, label]) => h("a", { href: `#/${id}`, "data-nav": id }, label));
  replace(root,
    h("a", { class: "skip", href: "#main" }, "Skip to content"),
    h("header", { class: "top" },
      h("div", { class: "brand" }, h("span", { class: "logo", "aria-hidden": "true" }), "flags"),
      h("nav", { "aria-label": "Main" }, links),
      h("div", { class: "top-right" },
        picker,
        h("span", { class: "who", title: "Signed in as" }, current().name),
        h("button", { class: "ghost", type: "button", onclick: async () => { await signOut(); signInPage(); } }, "Sign out"))),
    h("main", { id: "main", tabindex: "-1" }),
    h("div", { id: "live-status", class: "sr-only", role: "status", "aria-live": "polite" }));
}

async function route() {
  if (!current()) return signInPage();
  const [hash, search] = (location.hash.replace(/^#\/?/, "") || "flags").split("?");
  const match = routes.map((r) => [r, hash.match(r.path)]).find(([, m]) => m);
  if (!match) {
    location.hash = "#/flags";
    return;
  }
  const [r, m] = match;
  if (typeof cleanup === "function") cleanup();
  clearAuditListeners();
  const main = document.getElementById("main");
  if (!main) return;
  const picker = document.getElementById("env-picker");
  picker.value = environment();
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === r.nav) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.title = `${r.title} · flags`;
  replace(main);
  const ctx = {
    env: environment(),
    environments,
    params: m.slice(1).map(decodeURIComponent),
    query: new URLSearchParams(search || ""),
    refreshEnvironments: async () => {
      environments = (await get("/environments")).map((e) => e.key);
    },
  };
  try {
    cleanup = await r.page.render(main, ctx);
    // When the page shows its data (the benchmark reads it from the Performance timeline).
    performance.mark(`console:ready:${r.nav}`);
  } catch (err) {
    console.error(err);
    replace(main, h("div", { class: "empty error", role: "alert" }, h("h1", {}, "Something went wrong"), h("p", {}, err.message)));
  }
}

async function start() {
  if (!(await loadSession())) return signInPage();
  environments = (await get("/environments")).map((e) => e.key);
  shell();
  await route();
}

window.addEventListener("hashchange", route);
window.addEventListener("console:signed-out", () => {
  notify("Your session ended; sign in again.", "error");
  signInPage();
});
start().catch((err) => {
  replace(root, h("p", { class: "empty error", role: "alert" }, `The console cannot start: ${err.message}`));
});
