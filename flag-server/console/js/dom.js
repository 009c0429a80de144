// Building the page: every element through `h`, every piece of data through text nodes
// (never innerHTML), so a flag description like `<img src=x onerror=alert(1)>` shows
// those characters. Also the shared widgets: dialogs, notices, field errors.

/** An element: h("button", {class: "primary", onclick: f}, "Save", child, ...). */
export function h(tag, attrs = {}, ...children) {
  const svg = tag.startsWith("svg:");
  const el = svg
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "value" && !svg) {
      el.value = value;
    } else if (name === "checked" && !svg) {
      el.checked = !!value;
    } else {
      el.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children: nodes as they are, everything else as text. */
export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** Replaces an element's content. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let ids = 0;
/** A fresh element id (labels point at their fields with it). */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled field: label, control, inline help, and a slot for the API's error. */
export function field(label, control, help) {
  const id = control.id || uid();
  control.id = id;
  const error = h("p", { class: "field-error", id: `${id}-error`, role: "alert", hidden: true });
  const helpText = help ? h("p", { class: "help", id: `${id}-help` }, help) : null;
  const described = [helpText && `${id}-help`, `${id}-error`].filter(Boolean).join(" ");
  control.setAttribute("aria-describedby", described);
  return h("div", { class: "field" }, h("label", { for: id }, label), control, helpText, error);
}

/** Shows `message` under the control (the field's `aria-describedby` names it). */
export function showFieldError(control, message) {
  const error = document.getElementById(`${control.id}-error`);
  control.setAttribute("aria-invalid", "true");
  if (error) {
    error.hidden = false;
    error.textContent = message;
  }
}

/** Clears every field error inside `root`. */
export function clearFieldErrors(root) {
  for (const el of root.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
  for (const el of root.querySelectorAll(".field-error")) {
    el.hidden = true;
    el.textContent = "";
  }
}

/** A page-level notice (status for success, alert for errors), removed after a while. */
export function notify(message, kind = "ok") {
  const area = document.getElementById("notices");
  const note = h("div", { class: `notice ${kind}`, role: kind === "error" ? "alert" : "status" }, message);
  area.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 10000 : 4000);
}

/**
 * A modal dialog: `build(close)` returns its content. Escape closes it, focus moves into it
 * and back to where it was when it closes. Resolves with what `close` was given.
 */
export function dialog(title, build) {
  return new Promise((resolve) => {
    const opener = document.activeElement;
    const titleId = uid("dlg");
    const dlg = h("dialog", { class: "dialog", "aria-labelledby": titleId });
    const close = (value) => {
      dlg.close();
      dlg.remove();
      if (opener && opener.focus) opener.focus();
      resolve(value);
    };
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      close(undefined);
    });
    append(dlg, [
      h("div", { class: "dialog-head" },
        h("h2", { id: titleId }, title),
        h("button", { class: "icon", type: "button", "aria-label": "Close", onclick: () => close(undefined) }, "×")),
      build(close),
    ]);
    document.body.append(dlg);
    dlg.showModal();
    const first = dlg.querySelector("input, textarea, select, button:not(.icon)");
    if (first) first.focus();
  });
}

/** A short relative time ("3 min ago") with the exact time as its title. */
export function when(iso) {
  const at = new Date(iso);
  const seconds = Math.round((at.getTime() - Date.now()) / 1000);
  const span = Math.abs(seconds);
  let amount;
  if (span < 45) amount = null;
  else if (span < 3600) amount = `${Math.round(span / 60)} min`;
  else if (span < 86400) amount = `${Math.round(span / 3600)} h`;
  const text = amount === undefined ? at.toLocaleDateString()
    : amount === null ? (seconds > 0 ? "in a moment" : "just now")
      : seconds > 0 ? `in ${amount}` : `${amount} ago`;
  return h("time", { datetime: iso, title: at.toLocaleString() }, text);
}

/** A state badge: colour and words (on, off, killed, rollout, release). */
export function badge(state) {
  const words = { on: "On", off: "Off", killed: "Killed", rollout: "Rollout", release: "Releasing" };
  return h("span", { class: `badge ${state}` }, words[state] || state);
}

/** A loading placeholder. */
export function loading(what = "Loading") {
  return h("p", { class: "loading", role: "status" }, `${what}…`);
}
