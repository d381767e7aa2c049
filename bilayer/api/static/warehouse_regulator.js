// The regulator's dashboard (#/warehouse/regulator?severity=&rule=&status=): alerts and holds
// across every warehouse, exposure by bank and by warehouse, open cases and frozen receipts.

import { PALETTE, stackedBars } from "./charts.js";
import { accountLink, badge, entryLink, h, panel, short, table, when } from "./ui.js";
import { RULES, SEVERITIES, cny, filterForm, liveView, receiptLink, severityBadge, tabs, tonnes, wh } from "./warehouse_dash.js";

export async function regulatorPage(params) {
  const filters = filterForm("regulator", params, [
    ["severity", "severity", [["", "any"], ...SEVERITIES.map((s) => [s, s])]],
    ["rule", "rule", [["", "any"], ...RULES.map((r) => [r, r])]],
    ["status", "status", [["", "any"], ["open", "open"], ["resolved", "resolved"]]],
  ]);
  const chosen = { severity: params.get("severity") || "", rule: params.get("rule") || "", status: params.get("status") || "" };
  const view = await liveView(() => body(chosen));
  return [h("h1", {}, "Regulator"), tabs("regulator"), filters, view];
}

async function body(chosen) {
  const [alerts, holds, exposure, frozen] = await Promise.all([wh("alerts", chosen), wh("holds"), wh("exposure"),
    wh("register", { frozen: "true" })]);
  return [
    panel(`Alerts (${alerts.count})`, alertsTable(alerts.alerts)),
    h("div", { class: "grid" },
      panel("Held receipts", table([["receipt", (r) => receiptLink(r.id)], ["warehouse", (r) => accountLink(r.warehouse)],
        ["holder", (r) => accountLink(r.holder)], ["quantity", (r) => tonnes(r.quantity_kg)],
        ["alerts", (r) => r.held.map((a) => h("div", { class: "id", title: a }, short(a)))]],
      holds.receipts, "No receipt is held.")),
      panel("Held bins", table([["warehouse", (b) => accountLink(b.warehouse)], ["bin", (b) => b.bin],
        ["alerts", (b) => b.alerts.map((a) => h("div", { class: "id", title: a }, short(a)))]], holds.bins, "No bin is held."))),
    panel(`Exposure${exposure.as_of ? ` as of ${exposure.as_of}` : ""}`, exposureView(exposure)),
    panel("Open cases and frozen receipts", casesView(frozen.receipts)),
  ];
}

const measure = (value, unit) => (unit === "kg" ? tonnes(Math.abs(value)) : `${value} ${unit}`);

function alertsTable(alerts) {
  return table([
    ["rule", (a) => h("strong", { "data-alert": a.id, "data-rule": a.rule }, a.rule)],
    ["severity", (a) => severityBadge(a.severity)],
    ["status", (a) => badge(a.status, a.status === "open" ? "warn" : "ok")],
    ["warehouse", (a) => accountLink(a.warehouse_address)],
    ["finding", (a) => [a.summary, a.unit && a.unit !== "ms" ? h("div", { class: "muted" },
      `expected ${measure(a.expected, a.unit)}, observed ${measure(a.observed, a.unit)}, tolerance ${measure(a.tolerance, a.unit)}`) : null]],
    ["bins", (a) => a.bins.join(", ") || "—"],
    ["held", (a) => [...a.held_receipts.map((r) => h("div", {}, receiptLink(r))), ...a.held_bins.map((b) => h("div", {}, `bin ${b}`))]],
    ["raised", (a) => [when(a.time_ms), h("div", { class: "muted" }, `height ${a.height}`)]],
    ["resolution", (a) => (a.resolution ? [badge(a.resolution.code, "ok"), " by ", accountLink(a.resolution.by), " ",
      entryLink(a.resolution.entry), h("div", { class: "muted" }, a.resolution.note)] : "—")],
  ], alerts, "No alert matches.");
}

function exposureView(exposure) {
  if (!exposure.banks.length) {
    return h("p", { class: "empty", "data-empty": "exposure" }, "No open facility: no bank has exposure on the chain.");
  }
  const banks = exposure.banks.map((b) => ({ label: short(b.bank), parts: [
    ["owed, covered", Math.min(b.outstanding, b.collateral)],
    ["excess cover", Math.max(0, b.collateral - b.outstanding)],
    ["owed, uncovered", Math.max(0, b.outstanding - b.collateral)]] }));
  const bankNames = [...new Set(exposure.warehouses.map((w) => w.bank))];
  const byWarehouse = new Map();
  for (const w of exposure.warehouses) {
    const row = byWarehouse.get(w.warehouse) || new Map();
    row.set(w.bank, (row.get(w.bank) || 0) + w.collateral);
    byWarehouse.set(w.warehouse, row);
  }
  const warehouses = [...byWarehouse].map(([w, row]) => ({ label: short(w), parts: bankNames.map((b) => [short(b), row.get(b) || 0]) }));
  const colours = Object.fromEntries(bankNames.map((b, i) => [short(b), PALETTE[i % PALETTE.length]]));
  return [
    h("h3", {}, "By bank"),
    h("div", { "data-chart": "exposure-banks" }, stackedBars({ rows: banks, format: cny, label: "exposure by bank",
      colours: { "owed, covered": "#2856c8", "excess cover": "#1d8a4e", "owed, uncovered": "#c53030" } })),
    table([["bank", (b) => accountLink(b.bank)], ["facilities", (b) => b.facilities], ["outstanding", (b) => cny(b.outstanding)],
      ["collateral", (b) => cny(b.collateral)],
      ["margin calls", (b) => (b.margin_calls ? badge(String(b.margin_calls), "held") : "0")],
      ["defaults", (b) => (b.defaults ? badge(String(b.defaults), "bad") : "0")]], exposure.banks, ""),
    h("h3", {}, "Collateral by warehouse"),
    warehouses.length ? h("div", { "data-chart": "exposure-warehouses" }, stackedBars({ rows: warehouses, format: cny, colours,
      label: "collateral by warehouse and bank" })) : h("p", { class: "empty" }, "No collateral valued yet."),
  ];
}

function casesView(frozen) {
  const cases = new Map();
  for (const r of frozen) cases.set(r.frozen_case, [...(cases.get(r.frozen_case) || []), r]);
  return table([["case", ([c]) => h("strong", {}, String(c))],
    ["receipts", ([, rs]) => rs.map((r) => h("div", {}, receiptLink(r.id), ` #${r.number} `, badge(r.status, "lapsed")))],
    ["warehouses", ([, rs]) => [...new Set(rs.map((r) => r.warehouse))].map((w) => h("div", {}, accountLink(w)))],
    ["quantity", ([, rs]) => tonnes(rs.reduce((sum, r) => sum + r.quantity_kg, 0))]],
  [...cases], "No open case: no receipt is frozen.");
}
