// The REST API under /api/v1, as the console speaks it: the session cookie (never a token
// in the page's storage), the session's CSRF value on every change, problem+json errors
// turned into ApiError with the fields they name, and the admin event stream.

let session = null;

/** A problem+json answer: status, detail, and `errors[]` ({field, message}). */
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
    this.errors = Array.isArray(problem.errors) ? problem.errors : [];
  }
}

/** The signed-in session ({name, csrf, expires_at}), or null. */
export function current() {
  return session;
}

/** Asks the server who is signed in (the cookie is HttpOnly: the page cannot read it). */
export async function loadSession() {
  const res = await fetch("/console/session", { credentials: "same-origin" });
  session = res.status === 200 ? await res.json() : null;
  return session;
}

/** Signs in with an admin token; the server sets the session cookie. */
export async function signIn(token) {
  const res = await fetch("/console/session", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
  if (!res.ok) throw new ApiError(res.status, await problem(res));
  session = await res.json();
  return session;
}

/** Signs out: the server clears the cookie. */
export async function signOut() {
  await fetch("/console/session", { method: "DELETE", credentials: "same-origin" });
  session = null;
  closeEvents();
}

async function problem(res) {
  try {
    return await res.json();
  } catch {
    return { title: res.statusText, status: res.status };
  }
}

/**
 * One API call: `api("PUT", "/flags/x/environments/production", {body, ifMatch, query})`.
 * Resolves with {data, etag, headers}; rejects with ApiError.
 */
export async function api(method, path, options = {}) {
  const url = new URL(`/api/v1${path}`, location.origin);
  for (const [name, value] of Object.entries(options.query || {})) {
    for (const v of [].concat(value)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.append(name, v);
    }
  }
  const headers = { Accept: "application/json" };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.ifMatch !== undefined) headers["If-Match"] = `"${options.ifMatch}"`;
  if (method !== "GET" && session) headers["X-CSRF-Token"] = session.csrf;
  const res = await fetch(url, {
    method,
    headers,
    credentials: "same-origin",
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (res.status === 401) {
    session = null;
    window.dispatchEvent(new CustomEvent("console:signed-out"));
  }
  if (!res.ok) throw new ApiError(res.status, await problem(res));
  const text = await res.text();
  const etag = (res.headers.get("ETag") || "").replace(/^W\//, "").replace(/"/g, "");
  return { data: text ? JSON.parse(text) : null, etag, headers: res.headers };
}

/** Shorthands. */
export const get = (path, query) => api("GET", path, { query }).then((r) => r.data);

// The admin event stream: one EventSource for the page, handed to the current listeners.
let source = null;
const listeners = new Set();

/** Calls `fn(entry)` for every audit entry committed from now on; returns the unsubscribe. */
export function onAudit(fn) {
  listeners.add(fn);
  openEvents();
  return () => listeners.delete(fn);
}

/** Drops every listener (a page change). */
export function clearAuditListeners() {
  listeners.clear();
}

function openEvents() {
  if (source || !session) return;
  source = new EventSource("/api/v1/events", { withCredentials: true });
  source.addEventListener("audit", (e) => {
    let entry;
    try {
      entry = JSON.parse(e.data);
    } catch {
      return;
    }
    for (const fn of [...listeners]) fn(entry);
  });
  source.addEventListener("open", () => document.body.classList.remove("offline"));
  source.addEventListener("error", () => document.body.classList.add("offline"));
}

function closeEvents() {
  if (source) source.close();
  source = null;
}
