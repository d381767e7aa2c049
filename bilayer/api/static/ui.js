// Building the page from data without ever parsing data as HTML.

import { ApiError } from "./api.js";

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const short = (id) => (id && id.length > 20 ? `${id.slice(0, 10)}…${id.slice(-6)}` : id || "");

export function when(ms) {
  if (ms === null || ms === undefined) return "—";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function relative(ms) {
  if (ms === null || ms === undefined) return "—";
  const seconds = Math.round((ms - Date.now()) / 1000);
  const span = Math.abs(seconds);
  const text = span < 90 ? `${span} s` : span < 5400 ? `${Math.round(span / 60)} min` : `${Math.round(span / 3600)} h`;
  return seconds >= 0 ? `in ${text}` : `${text} ago`;
}

// Amounts with thousands separators, so 12500000 reads as 12,500,000.
export const amount = (value) => (value === null || value === undefined ? "—" : Number(value).toLocaleString("en-US"));

export const badge = (text, kind = text) => h("span", { class: `badge ${kind}` }, text);
export const entryLink = (id) => (id ? h("a", { href: `#/entry/${id}`, class: "id", title: id }, short(id)) : "—");
export const accountLink = (address) =>
  address ? h("a", { href: `#/account/${address}`, class: "id", title: address }, short(address)) : "—";

export function errorBox(err) {
  const code = err instanceof ApiError ? err.code : "error";
  return h("div", { class: "error", role: "alert", "data-code": code }, h("code", {}, code), ": ", err.message || String(err));
}

export function table(columns, rows, emptyText) {
  if (!rows.length) return h("p", { class: "empty" }, emptyText);
  return h("table", {},
    h("thead", {}, h("tr", {}, columns.map(([title]) => h("th", {}, title)))),
    h("tbody", {}, rows.map((row, i) => h("tr", {}, columns.map(([, cell]) => h("td", {}, cell(row, i)))))));
}

export function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.filter(Boolean).map(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "—")]));
}

export const panel = (title, ...body) => h("section", { class: "panel" }, title ? h("h2", {}, title) : null, ...body);

// A panel whose body loads asynchronously; a failure shows the API's error in place.
export function loading(title, load) {
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const el = panel(title, body);
  Promise.resolve().then(load).then((content) => body.replaceChildren(content),
    (err) => body.replaceChildren(errorBox(err)));
  return el;
}
