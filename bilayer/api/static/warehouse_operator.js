// The warehouse operator's dashboard (#/warehouse/operator?warehouse=): stock by owner and by
// receipt (free, pledged, frozen, held), each bin's book against its last verified figure, the
// weighbridge log of inbound and outbound lots, receipts waiting for delivery, device health.

import { api } from "./api.js";
import { stackedBars } from "./charts.js";
import { accountLink, badge, entryLink, h, panel, relative, short, table, when } from "./ui.js";
import { STOCK_COLOURS, filterForm, liveView, receiptLink, tabs, tonnes, wh } from "./warehouse_dash.js";

const LOGGED_RECEIPTS = 12; // the newest receipts whose lots' tickets make the log
const DAY_MS = 24 * 3600 * 1000;
const PARTS = ["free", "pledged", "frozen", "held"];
const UNDER_PLEDGE = new Set(["pledge_requested", "pledged", "defaulted"]);
const LIVE = new Set(["proposed", "active", "transfer_offered", "pledge_requested", "pledged", "defaulted",
  "delivery_pending", "expired"]);

// The warehouses this chain knows of: those with devices or receipts.
async function warehouses() {
  const [devices, register] = await Promise.all([wh("devices"), wh("register")]);
  return [...new Set([...devices.devices.map((d) => d.warehouse), ...register.receipts.map((r) => r.warehouse)])].sort();
}

export async function operatorPage(params) {
  const known = await warehouses();
  const chosen = params.get("warehouse") || known[0] || "";
  const header = [h("h1", {}, "Warehouse operator"), tabs("operator")];
  if (!chosen) {
    return [...header, panel("Warehouse", h("p", { class: "empty", "data-empty": "warehouses" },
      "No warehouse has devices or receipts on this chain yet."))];
  }
  const options = [...new Set([chosen, ...known])].map((w) => [w, short(w)]);
  const view = await liveView(async () => [filterForm("operator", new URLSearchParams({ warehouse: chosen }),
    [["warehouse", "warehouse", options]]), ...await body(chosen)]);
  return [...header, view];
}

function stockPart(r, held) {
  if (r.frozen_case) return "frozen";
  if (held.has(r.id)) return "held";
  return UNDER_PLEDGE.has(r.status) ? "pledged" : "free";
}

async function body(warehouse) {
  const [stock, register, holds, devices, status] = await Promise.all([wh("stock", { warehouse }),
    wh("register", { warehouse }), wh("holds", { warehouse }), wh("devices", { warehouse }), api("/v1/status")]);
  const now = status.last_checkpoint_time_ms || Date.now();
  const held = new Map(holds.receipts.map((r) => [r.id, r.held]));
  const live = register.receipts.filter((r) => LIVE.has(r.status));
  const owners = stock.owners.map((o) => ({ label: short(o.holder),
    parts: [["free", o.free_kg], ["pledged", o.pledged_kg], ["frozen", o.frozen_kg], ["held", o.held_kg]] }));
  const receipts = live.map((r) => ({ label: `#${r.number} ${short(r.id)}`,
    parts: PARTS.map((p) => [p, p === stockPart(r, held) ? r.quantity_kg : 0]) }));
  return [
    h("div", { class: "grid" },
      panel("Stock by owner", owners.length ? stackedBars({ rows: owners, format: tonnes, colours: STOCK_COLOURS, width: 600,
        label: "stock by owner" }) : h("p", { class: "empty" }, "No live receipt.")),
      panel("Stock by receipt", receipts.length ? [stackedBars({ rows: receipts, format: tonnes, colours: STOCK_COLOURS, width: 600,
        label: "stock by receipt" }), table([["receipt", (r) => receiptLink(r.id)], ["holder", (r) => accountLink(r.holder)],
        ["quantity", (r) => tonnes(r.quantity_kg)],
        ["stock", (r) => h("span", { "data-receipt": r.id, "data-part": stockPart(r, held) },
          badge(stockPart(r, held), { free: "active", pledged: "ok", frozen: "frozen", held: "held" }[stockPart(r, held)]))]],
        live, "")] : h("p", { class: "empty" }, "No live receipt."))),
    panel("Bins: book and verified", binsTable(stock)),
    panel("Receipts to deliver", table([["receipt", (r) => receiptLink(r.id)], ["#", (r) => r.number],
      ["holder", (r) => accountLink(r.holder)], ["goods", (r) => `${r.commodity} ${r.grade} ${r.spec}`],
      ["quantity", (r) => `${tonnes(r.quantity_kg)} · ${r.pieces} pcs`],
      ["held", (r) => (held.has(r.id) ? badge("held", "held") : "—")]],
    register.receipts.filter((r) => r.status === "delivery_pending"), "No receipt surrendered for delivery.")),
    panel("Device health", devicesTable(devices.devices, now)),
    panel("Inbound and outbound (weighbridge tickets)", await ticketLog(register.receipts)),
  ];
}

function binsTable(stock) {
  const verified = (b) => (b.verified_kg < 0 ? badge("never verified", "warn")
    : [tonnes(b.verified_kg), h("div", { class: "muted" }, `${b.verified_source} at height ${b.verified_height}`)]);
  const gap = (b) => {
    if (b.verified_kg < 0) return "—";
    const delta = b.verified_kg - b.book_kg;
    return badge(`${delta >= 0 ? "+" : "−"}${tonnes(Math.abs(delta))}`, delta === 0 ? "ok" : "warn");
  };
  return table([["bin", (b) => h("strong", { "data-bin": b.bin }, b.bin)], ["book", (b) => `${tonnes(b.book_kg)} · ${b.book_pieces} pcs`],
    ["lots", (b) => b.lots], ["pledged", (b) => tonnes(b.pledged_kg)], ["verified", verified], ["verified − book", gap],
    ["holds", (b) => (b.held_by.length ? badge(`held by ${b.held_by.length} alert${b.held_by.length > 1 ? "s" : ""}`, "held") : "—")]],
  stock.bins, "The warehouse has no bins.");
}

function devicesTable(devices, now) {
  const heartbeat = (d) => {
    if (!d.heartbeat_ms) return h("span", { class: "muted" }, "no heartbeat required");
    if (d.heartbeat_due_ms && d.heartbeat_due_ms < now) return badge(`overdue since ${when(d.heartbeat_due_ms)}`, "bad");
    return [badge("on time", "ok"), " ", d.heartbeat_due_ms ? `due ${when(d.heartbeat_due_ms)}` : ""];
  };
  const calibration = (d) => {
    const kind = d.calibration_expires_ms < now ? "bad" : d.calibration_expires_ms < now + 30 * DAY_MS ? "warn" : "ok";
    return [badge(kind === "bad" ? "expired" : kind === "warn" ? "expiring" : "valid", kind), " ", when(d.calibration_expires_ms)];
  };
  return table([
    ["device", (d) => h("code", { "data-device": d.device_id }, d.device_id)], ["kind", (d) => d.kind],
    ["bins", (d) => d.bins.join(", ")],
    ["status", (d) => badge(d.status, d.status === "active" ? "ok" : d.status === "pending" ? "warn" : "bad")],
    ["last seen", (d) => (d.last_seen_ms ? [when(d.last_seen_ms), h("div", { class: "muted" }, relative(d.last_seen_ms))] : "never")],
    ["heartbeat", heartbeat], ["calibration", calibration],
    ["open R7", (d) => (d.open_alerts ? badge(String(d.open_alerts), "bad") : badge("0", "ok"))],
  ], devices, "No device registered.");
}

// The tickets of the newest receipts' lots, newest first: inbound (receiving) and outbound.
async function ticketLog(receipts) {
  const newest = [...receipts].sort((a, b) => b.number - a.number).slice(0, LOGGED_RECEIPTS);
  const found = await Promise.all(newest.map((r) => wh("evidence", { id: r.id }).then((e) => e.events.map((ev) => ({ ...ev, receipt: r })))));
  const seen = new Set();
  const events = found.flat().filter((e) => !seen.has(e.event_id) && seen.add(e.event_id))
    .sort((a, b) => b.time_ms - a.time_ms || b.height - a.height);
  const direction = (e) => (e.biz_step === "receiving" ? badge("in", "active") : e.biz_step === "shipping" || e.biz_step === "departing"
    ? badge("out", "warn") : badge(e.biz_step, "lapsed"));
  return table([
    ["time", (e) => when(e.time_ms)], ["", direction], ["step", (e) => e.biz_step],
    ["lot", (e) => (e.lot ? h("a", { href: `#/warehouse/lot/${e.lot}`, class: "id" }, short(e.lot)) : "—")],
    ["receipt", (e) => receiptLink(e.receipt.id)],
    ["gross", (e) => tonnes(e.gross_kg)], ["tare", (e) => tonnes(e.tare_kg)], ["net", (e) => tonnes(e.net_kg)],
    ["device", (e) => h("code", {}, e.device.replace(/^urn:epc:id:giai:/, ""))], ["entry", (e) => entryLink(e.entry)],
  ], events, "No weighing recorded for this warehouse's receipts.");
}
