// What the warehouse dashboards share: the tabs, the units (tonnes, CNY, LTV), the filter
// controls that live in the URL, and a view that re-renders itself when a checkpoint arrives.

import { api } from "./api.js";
import { amount, badge, errorBox, h, short } from "./ui.js";

export const WH = "/v1/apps/warehouse";
export const INFINITE_LTV = 1_000_000_000; // finance.py: something owed against no collateral
const BP = 10000;

export const receiptLink = (id) => h("a", { href: `#/warehouse/receipt/${id}`, class: "id", title: id }, short(id));

// Integer arithmetic for the figures themselves; only the display divides.
const grouped = (whole, fraction, digits) =>
  `${whole < 0 || (whole === 0 && fraction < 0) ? "-" : ""}${amount(Math.abs(whole))}.${String(Math.abs(fraction)).padStart(digits, "0")}`;
export const tonnes = (kg) => (kg === null || kg === undefined || kg < 0 ? "—"
  : `${grouped(Math.trunc(kg / 1000), kg % 1000, 3)} t`);
export const cny = (minor) => (minor === null || minor === undefined ? "—"
  : `CNY ${grouped(Math.trunc(minor / 100), minor % 100, 2)}`);
export const ltv = (bp) => (bp >= INFINITE_LTV ? "∞" : `${(bp / 100).toFixed(1)} %`);
export const share = (bp) => `${(bp / 100).toFixed(1)} %`;

export const STATE_KIND = { performing: "ok", watch: "warn", margin_call: "held", cured: "active", default: "bad",
  enforcement: "bad", closed: "lapsed" };
export const stateBadge = (state) => h("span", { "data-state": state },
  badge(state.replace("_", " "), STATE_KIND[state] || "warn"));
export const SEVERITY_KIND = { LOW: "lapsed", MEDIUM: "warn", HIGH: "bad", CRITICAL: "bad" };
export const severityBadge = (s) => badge(s, SEVERITY_KIND[s] || "warn");
export const SEVERITIES = ["LOW", "MEDIUM", "HIGH", "CRITICAL"];
export const RULES = Array.from({ length: 12 }, (_, i) => `R${i + 1}`);
export const STOCK_COLOURS = { free: "#1d8a4e", pledged: "#2856c8", frozen: "#c53030", held: "#7b3fb5" };

export const wh = (query, params = {}) => {
  const search = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v !== null && v !== undefined));
  const text = search.toString();
  return api(`${WH}/${query}${text ? `?${text}` : ""}`);
};

const TABS = [["", "Register"], ["risk", "Bank risk"], ["operator", "Warehouse operator"], ["regulator", "Regulator"]];
export const tabs = (current) => h("p", { class: "tabs dash-tabs" }, TABS.map(([path, label]) =>
  [h("a", { href: `#/warehouse${path ? `/${path}` : ""}`, class: path === current ? "active" : null, "data-tab": path || "register" },
    label), " "]));

// A filter form whose every change rewrites the URL, so a re-render (or a reload) keeps it.
export function filterForm(path, params, fields) {
  const form = h("form", { class: "inline filters", "data-filters": path },
    fields.map(([name, label, options]) => h("label", {}, `${label} `,
      h("select", { name, "data-filter": name }, options.map(([value, text]) =>
        h("option", { value, selected: (params.get(name) || "") === value }, text))))));
  form.addEventListener("change", () => {
    const next = new URLSearchParams();
    for (const [name, value] of new FormData(form)) if (value) next.set(name, value);
    location.hash = `#/warehouse/${path}${next.toString() ? `?${next}` : ""}`;
  });
  return form;
}

// Renders `build()` now, then again after each new checkpoint: at most one reload in flight,
// one more if checkpoints came meanwhile, none once the page has moved on. A failed reload
// keeps what was shown under one error line. The box counts its renders in data-renders.
export async function liveView(build, delayMs = 1000) {
  const box = h("div", { class: "live-view", "data-renders": "1" });
  box.replaceChildren(...[await build()].flat());
  let seen = false;
  let busy = false;
  let again = false;
  const refresh = async () => {
    try {
      const fresh = [await build()].flat();
      if (box.isConnected) {
        box.replaceChildren(...fresh);
        box.dataset.renders = String(Number(box.dataset.renders) + 1);
      }
    } catch (err) {
      if (box.isConnected) {
        box.querySelector(":scope > .live-error")?.remove();
        box.prepend(h("div", { class: "live-error" }, errorBox(err)));
      }
    } finally {
      if (again && box.isConnected) { again = false; setTimeout(refresh, delayMs); } else busy = false;
    }
  };
  const listener = (event) => {
    if (!box.isConnected) {
      if (seen) window.removeEventListener("bilayer:checkpoint", listener);
      return;
    }
    seen = true;
    box.dataset.height = String(event.detail.height);
    if (busy) { again = true; return; }
    busy = true;
    setTimeout(refresh, delayMs);
  };
  window.addEventListener("bilayer:checkpoint", listener);
  return box;
}

// --- the stress test: value scales with price (finance.py's formulas, in BigInt) -----------------

// The facility state machine as finance.py's FACILITY_TRANSITIONS: a level the row omits
// leaves the state as it is.
const TRANSITIONS = {
  performing: { warning: "watch", call: "margin_call", liquidation: "default" },
  watch: { normal: "performing", call: "margin_call", liquidation: "default" },
  margin_call: { normal: "cured", warning: "cured", liquidation: "default" },
  cured: { normal: "performing", call: "margin_call", liquidation: "default" },
  default: {}, enforcement: {}, closed: {},
};

export function levelOf(facility, ltvBp, stale) {
  if (ltvBp >= facility.liquidation_bp) return "liquidation";
  if (ltvBp >= facility.call_bp) return "call";
  if (ltvBp >= facility.warning_bp || stale) return "warning";
  return "normal";
}

export const nextState = (state, level) => (TRANSITIONS[state] || {})[level] || state;

// The facility's latest valuation with every price shocked by `percent` (e.g. -20).
export function shocked(facility, valuation, percent) {
  const factor = BigInt(100 + percent);
  let collateral = BigInt(valuation.cash);
  for (const line of valuation.lines) {
    const price = (BigInt(line.price) * factor) / 100n;
    collateral += (BigInt(line.quantity_kg) * price * BigInt(BP - line.haircut_bp)) / BigInt(1000 * BP);
  }
  const owed = BigInt(valuation.outstanding);
  let ltvBp;
  if (owed === 0n) ltvBp = 0;
  else if (collateral <= 0n) ltvBp = INFINITE_LTV;
  else ltvBp = Number((owed * BigInt(BP) + collateral - 1n) / collateral);
  const level = levelOf(facility, ltvBp, valuation.stale);
  return { percent, collateral: Number(collateral), ltvBp, level, state: nextState(facility.state, level) };
}
