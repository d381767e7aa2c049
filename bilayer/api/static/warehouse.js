// The warehouse application's pages: the receipt register, a receipt with its lifecycle as a
// timeline and its lineage as a tree, a lot with its device evidence, and the dashboards of the
// bank risk officer, the warehouse operator and the regulator (warehouse_*.js). Everything comes
// from GET /v1/apps/warehouse/<query> and the entries it names.

import { api } from "./api.js";
import { accountLink, badge, entryLink, h, kv, panel, short, table, when } from "./ui.js";
import { receiptLink, tabs } from "./warehouse_dash.js";
import { operatorPage } from "./warehouse_operator.js";
import { regulatorPage } from "./warehouse_regulator.js";
import { riskPage } from "./warehouse_risk.js";

export { receiptLink };

const STATUS_KIND = { active: "active", pledged: "held", defaulted: "bad", cancelled: "lapsed", void: "bad",
  superseded: "lapsed", expired: "expired" };
const FILTERS = [["", "all"], ["active", "free"], ["pledged", "pledged"], ["frozen", "frozen"]];

const statusBadge = (r) => [badge(r.status, STATUS_KIND[r.status] || "warn"),
  r.frozen_case ? [" ", badge(`frozen (case ${r.frozen_case})`, "frozen")] : null];
const tonnes = (kg) => `${(kg / 1000).toFixed(3)} t`;

export const title = "Warehouse";

// The console shows `#/warehouse/<path>` here: the register, a receipt, a lot, or a dashboard.
export async function page(path, params) {
  if (path[0] === "receipt") return receiptPage(path[1]);
  if (path[0] === "lot") return lotPage(path[1]);
  if (path[0] === "risk") return riskPage(params);
  if (path[0] === "operator") return operatorPage(params);
  if (path[0] === "regulator") return regulatorPage(params);
  return registerPage(params);
}

export async function registerPage(params) {
  const filter = params.get("filter") || "";
  const query = filter === "frozen" ? "frozen=true" : filter ? `status=${filter}` : "";
  const register = await api(`/v1/apps/warehouse/register?${query}`);
  const filters = h("p", { class: "tabs" }, FILTERS.map(([value, label]) =>
    [h("a", { href: `#/warehouse?filter=${value}`, class: value === filter ? "active" : null, "data-filter": value },
      label), " "]));
  return [h("h1", {}, "Warehouse receipts"), tabs(""), filters,
    panel(`Register (${register.count})`, table([
      ["#", (r) => r.number],
      ["receipt", (r) => receiptLink(r.id)],
      ["state", statusBadge],
      ["goods", (r) => `${r.commodity} ${r.grade} ${r.spec}`],
      ["quantity", (r) => `${tonnes(r.quantity_kg)} · ${r.pieces} pcs`],
      ["warehouse", (r) => accountLink(r.warehouse)],
      ["holder", (r) => accountLink(r.holder)],
    ], register.receipts, "No receipt matches."))];
}

// One row of the timeline per entry that wrote the receipt: what it was, who signed, when.
async function timeline(history) {
  const entries = await Promise.all(history.map((id) => api(`/v1/entries/${id}`)));
  return h("ol", { class: "timeline" }, entries.map((e) => h("li", { "data-kind": e.kind },
    h("strong", {}, e.kind.replace(/^warehouse\./, "").replaceAll("_", " ")), " ",
    badge(e.status), " by ", accountLink(e.author), " · height ", String(e.height ?? "—"), " · ",
    when(e.time_ms), " · ", entryLink(e.id))));
}

// The lineage as a tree: from its roots (receipts with no parent in the lineage) down through their children.
function lineageTree(lineage, current) {
  const byId = new Map(lineage.map((r) => [r.id, r]));
  const node = (r) => h("li", {},
    r.id === current ? h("strong", {}, `#${r.number} (this receipt)`) : [receiptLink(r.id), ` #${r.number}`],
    " ", statusBadge(r), ` ${tonnes(r.quantity_kg)}`,
    r.children.length ? h("ul", {}, r.children.filter((c) => byId.has(c)).map((c) => node(byId.get(c)))) : null);
  const roots = lineage.filter((r) => !r.parents.some((p) => byId.has(p)));
  return h("ul", { class: "tree" }, roots.map(node));
}

export async function receiptPage(id) {
  const [view, history] = await Promise.all([api(`/v1/apps/warehouse/receipt?id=${id}`),
    api(`/v1/apps/warehouse/history?id=${id}`)]);
  const r = view.receipt;
  const g = r.goods;
  return [h("h1", {}, `Receipt #${r.number}`), h("p", { class: "id" }, r.id),
    panel("Receipt", kv([
      ["state", statusBadge(r)],
      ["warehouse", accountLink(view.warehouse_address)],
      ["holder", accountLink(view.holder_address)],
      ["depositor", `${r.depositor_name} (${r.depositor_uscc})`],
      ["goods", `${g.commodity}, ${g.grade} ${g.spec}, ${g.producer}, ${g.packaging}`],
      ["quantity", `${tonnes(g.quantity_kg)} net in ${g.pieces} pieces, ${r.lots.length} lots, bins ${r.bins.join(", ")}`],
      ["storage until", when(r.terms.storage_until_ms)],
      ["pledge", view.pledge ? [accountLink(view.pledge.pledgee_address), ` facility ${view.pledge.facility}`,
        ` (${view.pledge.status})`] : "none"],
      ["issued", [`height ${r.issued_height} · `, entryLink(r.issue_entry)]],
    ])),
    panel("Lifecycle", await timeline(view.history)),
    panel("Lineage", lineageTree(history.lineage, r.id)),
    panel("Lots", table([["lot", (key) => h("a", { href: `#/warehouse/lot/${key}`, class: "id" }, short(key))]],
      r.lots, "No lots.")),
  ];
}

export async function lotPage(key) {
  const view = await api(`/v1/apps/warehouse/lot?key=${key}`);
  const lot = view.lot;
  return [h("h1", {}, `Lot ${lot.mill}:${lot.heat}:${lot.coil}`),
    panel("Lot", kv([
      ["state", badge(lot.status, lot.status === "in_stock" ? "active" : "lapsed")],
      ["receipt", lot.receipt ? receiptLink(lot.receipt) : "none"],
      ["goods", `${lot.form} ${lot.grade} ${lot.spec}, ${lot.pieces} pcs, ${tonnes(lot.net_kg)} weighed net`],
      ["bin", lot.bin], ["production date", lot.production_date],
    ])),
    panel("Device evidence", table([
      ["event", (e) => h("span", { class: "id", title: e.event_id }, short(e.event_id))],
      ["step", (e) => e.biz_step], ["device", (e) => e.device], ["net", (e) => (e.net_kg >= 0 ? tonnes(e.net_kg) : "—")],
      ["height", (e) => e.height], ["entry", (e) => entryLink(e.entry)],
    ], view.evidence, "No evidence.")),
  ];
}
