// The bank risk officer's dashboard (#/warehouse/risk?bank=&facility=): every facility's state,
// LTV and headroom; its LTV by day against its warning, call and liquidation lines; margin calls
// and their deadlines; open alerts where its collateral lies; a price-shock stress test; and the
// concentration of its collateral by warehouse and spec.

import { lineChart, stackedBars } from "./charts.js";
import { accountLink, badge, h, kv, panel, short, table } from "./ui.js";
import {
  INFINITE_LTV, SEVERITIES, cny, filterForm, liveView, ltv, severityBadge, share, shocked, stateBadge, tabs, tonnes, wh,
} from "./warehouse_dash.js";

const MAX_DETAILED = 12; // facilities fetched in full (their LTV history and latest valuation)
const MAX_CHARTS = 6;
const SHOCKS = [0, -10, -20];
const SEVERITY_COLOURS = { LOW: "#6b7385", MEDIUM: "#b7791f", HIGH: "#d45d9a", CRITICAL: "#c53030" };

const facilityId = (f) => `${f.bank}/${f.name}`;

async function load(params) {
  const bank = params.get("bank") || "";
  const [all, chosen, prices, alerts] = await Promise.all([wh("facilities"), bank ? wh("facilities", { bank }) : null,
    wh("prices"), wh("alerts", { status: "open" })]);
  const listed = (chosen || all).facilities;
  const details = await Promise.all(listed.slice(0, MAX_DETAILED).map((f) => wh("facility", { bank: f.bank, name: f.name })));
  return { bank, banks: [...new Set(all.facilities.map((f) => f.bank))], listed, details, prices, alerts: alerts.alerts };
}

export async function riskPage(params) {
  const controls = (data) => filterForm("risk", params, [
    ["bank", "bank", [["", "all banks"], ...data.banks.map((b) => [b, short(b)])]],
    ["facility", "facility", [["", "every facility"], ...data.listed.map((f) => [f.name, f.name])]],
  ]);
  const view = await liveView(async () => {
    const data = await load(params);
    return [controls(data), ...body(data, params.get("facility") || "")];
  });
  return [h("h1", {}, "Bank risk"), tabs("risk"), view];
}

function body(data, only) {
  const { details, prices, listed } = data;
  if (!listed.length) {
    return [panel("Facilities", h("p", { class: "empty", "data-empty": "facilities" },
      data.bank ? "This bank has no facility on the chain." : "No facility yet: once a bank opens one and receipts are "
        + "pledged under it, its state, LTV and stress test show here."))];
  }
  const shown = details.filter((d) => !only || d.facility.name === only);
  const owed = listed.reduce((sum, f) => sum + f.outstanding, 0);
  const collateral = listed.reduce((sum, f) => sum + f.collateral, 0);
  const calls = listed.filter((f) => f.state === "margin_call");
  return [
    panel("Portfolio", kv([
      ["as of", prices.as_of ? `${prices.as_of} (trading day ${prices.trading_day})` : "no price yet"],
      ["facilities", `${listed.length}, ${calls.length} in margin call, ${listed.filter((f) => f.state === "watch").length} on watch`],
      ["outstanding", cny(owed)], ["collateral", cny(collateral)],
      ["portfolio LTV", collateral ? ltv(Math.ceil((owed * 10000) / collateral)) : owed ? ltv(INFINITE_LTV) : ltv(0)],
    ])),
    panel("Facilities", facilitiesTable(details, prices)),
    panel("LTV over time", ltvCharts(shown)),
    h("div", { class: "grid" }, panel("Margin calls", marginCalls(details, prices)),
      panel("Open alerts by warehouse", alertsByWarehouse(data.alerts, shown))),
    panel("Stress test: prices down 10 % and 20 %", stressTable(shown)),
    panel("Concentration", concentration(shown)),
    panel("State changes", stateChanges(shown)),
  ];
}

function deadline(f, prices) {
  if (f.state !== "margin_call") return "—";
  const left = f.deadline_ordinal - prices.trading_day;
  return h("span", { "data-deadline": f.deadline_ordinal }, `trading day ${f.deadline_ordinal} `,
    badge(left > 0 ? `${left} trading day${left === 1 ? "" : "s"} left` : left === 0 ? "last day" : "overdue",
      left > 0 ? "warn" : "bad"));
}

function facilitiesTable(details, prices) {
  const v = (d, key) => (d.valuation ? cny(d.valuation[key]) : "—");
  return table([
    ["facility", (d) => h("strong", { "data-facility": d.facility.name }, d.facility.name)],
    ["bank", (d) => accountLink(d.facility.bank)],
    ["borrower", (d) => accountLink(d.facility.borrower)],
    ["state", (d) => stateBadge(d.facility.state)],
    ["LTV", (d) => h("span", { class: "amount", "data-ltv": d.facility.last_ltv_bp }, ltv(d.facility.last_ltv_bp))],
    ["headroom to warning", (d) => v(d, "headroom_warning")],
    ["to call", (d) => v(d, "headroom_call")],
    ["to liquidation", (d) => v(d, "headroom_liquidation")],
    ["outstanding", (d) => cny(d.facility.outstanding)],
    ["collateral", (d) => [cny(d.facility.last_collateral), d.facility.cash ? h("div", { class: "muted" }, `cash ${cny(d.facility.cash)}`) : null]],
    ["margin-call deadline", (d) => deadline(d.facility, prices)],
  ], details, "No facility.");
}

function ltvCharts(shown) {
  const charts = shown.slice(0, MAX_CHARTS).map((d) => {
    const f = d.facility;
    const points = d.ltv_history.filter((p) => p.ltv_bp < INFINITE_LTV).map((p) => [p.day, p.ltv_bp / 100]);
    return h("div", { class: "chart-box", "data-facility": f.name },
      h("h3", {}, `${f.name} `, stateBadge(f.state)),
      points.length ? lineChart({
        series: [{ name: f.name, points }],
        lines: [{ name: "warning", y: f.warning_bp / 100, kind: "warn" }, { name: "call", y: f.call_bp / 100, kind: "held" },
          { name: "liquidation", y: f.liquidation_bp / 100, kind: "bad" }],
        yFormat: (value) => `${value.toFixed(1)} %`, label: `LTV of ${f.name} by day`,
      }) : h("p", { class: "empty" }, "Not valued yet: no trading day since it was opened."));
  });
  if (shown.length > MAX_CHARTS) charts.push(h("p", { class: "muted" }, `${shown.length - MAX_CHARTS} more: choose one above.`));
  return charts;
}

function marginCalls(details, prices) {
  const calls = details.filter((d) => d.facility.state === "margin_call");
  return table([
    ["facility", (d) => d.facility.name],
    ["called on", (d) => [...d.events].reverse().find((e) => e.state === "margin_call")?.day || "—"],
    ["LTV", (d) => ltv(d.facility.last_ltv_bp)],
    ["cure to warning", (d) => (d.valuation ? cny(Math.max(0, -d.valuation.headroom_warning)) : "—")],
    ["deadline", (d) => deadline(d.facility, prices)],
  ], calls, "No margin call open.");
}

function alertsByWarehouse(alerts, shown) {
  const mine = new Set(shown.flatMap((d) => (d.valuation ? d.valuation.lines.map((l) => l.warehouse) : [])));
  const counts = new Map();
  for (const a of alerts) {
    const row = counts.get(a.warehouse_address) || Object.fromEntries(SEVERITIES.map((s) => [s, 0]));
    row[a.severity] += 1;
    counts.set(a.warehouse_address, row);
  }
  if (!counts.size) return h("p", { class: "empty" }, "No open alert.");
  const rows = [...counts].map(([w, row]) => ({ label: `${short(w)}${mine.has(w) ? " ★" : ""}`,
    parts: SEVERITIES.map((s) => [s, row[s]]) }));
  return [stackedBars({ rows, colours: SEVERITY_COLOURS, width: 600, label: "open alerts by warehouse and severity" }),
    table([["warehouse", ([w]) => [accountLink(w), mine.has(w) ? " holds collateral" : ""]],
      ...SEVERITIES.map((s) => [s, ([, row]) => (row[s] ? severityBadge(String(row[s])) : "0")])], [...counts], "")];
}

function stressTable(shown) {
  const rows = [];
  for (const d of shown) {
    if (!d.valuation) continue;
    for (const percent of SHOCKS) rows.push({ f: d.facility, v: d.valuation, s: shocked(d.facility, d.valuation, percent) });
  }
  return [h("p", { class: "muted" }, "From each facility's latest valuation: every line's price moved, its haircut kept, "
    + "cash unchanged; the state is where that LTV would take the facility from today's."),
  table([
    ["facility", (r) => r.f.name],
    ["shock", (r) => (r.s.percent ? `${r.s.percent} %` : "today")],
    ["collateral", (r) => cny(r.s.collateral)],
    ["LTV", (r) => h("span", { "data-ltv": r.s.ltvBp }, ltv(r.s.ltvBp))],
    ["level", (r) => r.s.level],
    ["state", (r) => h("span", { "data-facility": r.f.name, "data-shock": r.s.percent }, stateBadge(r.s.state))],
  ], rows, "Nothing valued yet to stress.")];
}

function concentration(shown) {
  const rows = [];
  for (const d of shown) {
    if (!d.valuation) continue;
    for (const [kind, list, limit] of [["warehouse", d.valuation.warehouses, d.facility.max_warehouse_bp],
      ["spec", d.valuation.specs, d.facility.max_spec_bp]]) {
      for (const s of list) rows.push({ facility: d.facility.name, kind, s, limit });
    }
  }
  const tonnage = new Map();
  for (const d of shown) for (const l of d.valuation ? d.valuation.lines : []) tonnage.set(l.spec, (tonnage.get(l.spec) || 0) + l.quantity_kg);
  return [
    rows.length ? h("div", { "data-chart": "concentration" }, stackedBars({ rows: rows.map((r) => ({ label: `${shown.length > 1 ? `${r.facility} · ` : ""}${r.kind === "warehouse" ? short(r.s.name) : r.s.name}`,
      parts: [["within limit", Math.min(r.s.share_bp, r.limit)], ["above limit", Math.max(0, r.s.share_bp - r.limit)]] })),
    format: share, colours: { "within limit": "#2856c8", "above limit": "#c53030" }, label: "collateral shares" })) : null,
    table([
      ["facility", (r) => r.facility], ["by", (r) => r.kind],
      ["name", (r) => (r.kind === "warehouse" ? accountLink(r.s.name) : [r.s.name, ` (${tonnes(tonnage.get(r.s.name))})`])],
      ["value", (r) => cny(r.s.value)], ["share", (r) => share(r.s.share_bp)], ["limit", (r) => share(r.limit)],
      ["", (r) => (r.s.breach ? badge("breach", "bad") : badge("ok"))],
    ], rows, "No collateral valued yet."),
  ];
}

function stateChanges(shown) {
  const rows = shown.flatMap((d) => d.events.map((e) => ({ f: d.facility.name, ...e }))).sort((a, b) => b.height - a.height);
  return table([["day", (e) => e.day], ["facility", (e) => e.f], ["state", (e) => stateBadge(e.state)],
    ["LTV", (e) => ltv(e.ltv_bp)], ["cause", (e) => e.cause], ["height", (e) => e.height]], rows, "No state change yet.");
}
