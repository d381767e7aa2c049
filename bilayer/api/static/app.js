// The web console: a single page whose routes live in the URL fragment (#/entry/ID, #/governance, ...).

import { ApiError, api, apiOrNull, openStream } from "./api.js";
import { DagView } from "./dag.js";
import { currentKey, forgetKey, onKeyChange, restoreKey, signAndSubmit, useSeed } from "./sign.js";
import { accountLink, amount, badge, entryLink, errorBox, h, kv, loading, panel, relative, short, table, when } from "./ui.js";

const main = document.getElementById("main");
const SVG_NS = "http://www.w3.org/2000/svg";
const GOV_ACTIONS = ["freeze", "unfreeze", "ban", "unban", "suspend", "resume", "ratify", "appoint-provider",
  "revoke-provider", "ban-identity", "unban-identity", "identity-rule", "council-member", "intercept",
  "remove-intercept", "content-rule", "remove-content-rule", "redact", "recover", "chain-params", "set-validator"];
const INT_OPTIONS = new Set(["emergency", "above", "weight", "review_ms", "max_size", "power"]);
const LIST_OPTIONS = new Set(["counterparties", "entries", "assets"]);

// --- live state shared by the pages ---------------------------------------------------------------

const dagSvg = document.createElementNS(SVG_NS, "svg");
dagSvg.setAttribute("class", "dag");
dagSvg.setAttribute("id", "dag");
dagSvg.setAttribute("role", "img");
dagSvg.setAttribute("aria-label", "the DAG of recent entries");
const dag = new DagView(dagSvg, (id) => { location.hash = `#/entry/${id}`; });
const live = { checkpointListeners: new Set(), lastHeight: null };

async function loadDag() {
  const status = await api("/v1/status");
  const after = Math.max(0, status.entries - 100);
  const page = await api(`/v1/entries?after=${after}&limit=100`);
  page.entries.forEach((e) => dag.add(e));
  if (status.finality && status.height) {
    for (let height = status.height; height > Math.max(0, status.height - 10); height--) {
      const checkpoint = await apiOrNull(`/v1/checkpoints/${height}?entries=1`);
      if (!checkpoint) break;
      checkpoint.entries.forEach((e) => dag.settle(e.id, e.outcome));
    }
  }
  const unsettled = page.entries.filter((e) => !dag.outcomes.has(e.id)).slice(-40);
  for (const e of unsettled) {
    const view = await apiOrNull(`/v1/entries/${e.id}`);
    if (view && view.status !== "PENDING") dag.settle(e.id, view.status);
  }
}

function startLive() {
  const indicator = document.getElementById("live");
  openStream({
    entry: (e) => dag.add(e),
    checkpoint: (c) => {
      const special = new Map([...c.rejected.map((id) => [id, "REJECTED"]), ...c.held.map((id) => [id, "HELD"])]);
      c.entries.forEach((id) => dag.settle(id, special.get(id) || "FINAL"));
      live.lastHeight = c.height;
      live.checkpointListeners.forEach((listener) => listener(c));
      window.dispatchEvent(new CustomEvent("bilayer:checkpoint", { detail: c })); // for application pages
    },
    hello: (hello) => { live.lastHeight = hello.height; },
    dropped: () => loadDag().catch(() => {}),
  }, (state) => {
    indicator.dataset.state = state;
    indicator.textContent = `live: ${state === "open" ? "connected" : state}`;
  });
}

// --- signing: a small result area under each action ------------------------------------------------

function outcomeView(view) {
  const bits = [badge(view.status), " ", entryLink(view.id)];
  if (view.height) bits.push(` at height ${view.height}`);
  if (view.reason) bits.push(" ", h("code", {}, view.reason));
  return h("div", { class: view.status === "REJECTED" ? "error" : "notice", "data-outcome": view.status,
    "data-entry": view.id }, bits);
}

// The outcome of the last signed action, kept across the page reload that shows its effect.
let flash = null;

async function submitInto(target, kind, op, payload = "", after = null) {
  target.replaceChildren(h("p", { class: "muted" }, "Drafting, checking, signing…"));
  try {
    const view = await signAndSubmit(kind, op, payload);
    target.replaceChildren(outcomeView(view));
    if (after) {
      flash = h("div", { id: "flash" }, `${kind}: `, outcomeView(view));
      after(view);
    }
  } catch (err) {
    target.replaceChildren(errorBox(err));
  }
}

// --- Explorer -------------------------------------------------------------------------------------

function statusPanel() {
  return loading("Node", async () => {
    const s = await api("/v1/status");
    return kv([
      ["name", s.name], ["role", badge(s.role, "ok")], ["chain", s.chain_id],
      ["health", s.halted ? badge("halted", "bad") : badge(s.healthy ? "healthy" : "degraded", s.healthy ? "ok" : "warn")],
      s.finality ? ["height", h("a", { href: `#/checkpoint/${s.height}` }, String(s.height))] : ["finality", "none (ledger only)"],
      ["entries", s.entries], ["tips", s.tips], ["orphans", s.orphans], ["authors", s.authors], ["peers", s.peers],
      s.finality ? ["last checkpoint", when(s.last_checkpoint_time_ms)] : null,
      ["proof of work", `${s.params.pow_bits} bits`], ["version", s.version],
    ]);
  });
}

function validatorsPanel() {
  return loading("Validators", async () => {
    const v = await api("/v1/validators");
    return h("div", {},
      table([["name", (r) => r.name], ["address", (r) => accountLink(r.address)], ["power", (r) => r.power]],
        v.validators, "No validators: this chain runs the ledger layer alone."),
      v.validators.length ? h("p", { class: "muted" },
        `total power ${v.total_power}, quorum ${v.quorum_power}, tolerates ${v.max_faulty} faulty; in force since height ${v.since_height}`) : null,
      v.next ? h("p", { class: "notice" }, `A change takes effect at height ${v.next.height}.`) : null);
  });
}

function checkpointRows(rows) {
  return table([
    ["height", (c) => h("a", { href: `#/checkpoint/${c.height}` }, String(c.height))],
    ["id", (c) => h("span", { class: "id", title: c.id }, short(c.id))],
    ["entries", (c) => c.entry_count],
    ["time", (c) => when(c.time_ms)],
  ], rows, "No checkpoint yet.");
}

function checkpointsPanel() {
  const rows = [];
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  const redraw = () => body.replaceChildren(checkpointRows(rows));
  (async () => {
    const status = await api("/v1/status");
    if (!status.finality) { body.replaceChildren(h("p", { class: "empty" }, "No validators, so no checkpoints.")); return; }
    for (let height = status.height; height > Math.max(0, status.height - 10); height--) {
      const c = await apiOrNull(`/v1/checkpoints/${height}`);
      if (c) rows.push(c);
    }
    redraw();
  })().catch((err) => body.replaceChildren(errorBox(err)));
  const listener = (c) => {
    if (!body.isConnected) { live.checkpointListeners.delete(listener); return; }
    if (rows.some((r) => r.height === c.height)) return;
    rows.unshift({ height: c.height, id: c.id, entry_count: c.entry_count, time_ms: c.time_ms });
    rows.length = Math.min(rows.length, 10);
    redraw();
  };
  live.checkpointListeners.add(listener);
  return panel("Recent checkpoints", body);
}

function explorerPage() {
  const legend = h("p", { class: "legend" },
    h("span", {}, h("i", { class: "dot pending" }), "pending"), h("span", {}, h("i", { class: "dot covered" }), "covered by a checkpoint"),
    h("span", {}, h("i", { class: "dot rejected" }), "rejected"), h("span", {}, h("i", { class: "dot held" }), "held for review"));
  const refresh = h("div", {}, statusPanel());
  let due = false; // at most one status reload per 2 s, however fast checkpoints come
  const listener = () => {
    if (!refresh.isConnected) { live.checkpointListeners.delete(listener); return; }
    if (due) return;
    due = true;
    setTimeout(() => { due = false; if (refresh.isConnected) refresh.replaceChildren(statusPanel()); }, 2000);
  };
  live.checkpointListeners.add(listener);
  dag.schedule();
  return [h("h1", {}, "Explorer"),
    h("div", { class: "grid" }, refresh, validatorsPanel()),
    panel("The DAG, live", legend, dagSvg),
    checkpointsPanel()];
}

function causeLink(cause) {
  if (!cause) return "—";
  const match = /^proposal:(\d+)$/.exec(cause);
  return match ? h("a", { href: `#/governance/${match[1]}` }, cause) : cause;
}

async function entryPage(id) {
  const e = await api(`/v1/entries/${id}`);
  const blocks = [h("h1", {}, "Entry ", h("span", { class: "id" }, e.id))];
  blocks.push(panel("Outcome", kv([
    ["status", badge(e.status)],
    e.height ? ["checkpoint", h("a", { href: `#/checkpoint/${e.height}` }, `height ${e.height}, position ${e.index}`)] : null,
    ["reason", e.reason ? h("code", {}, e.reason) : "—"], ["cause", causeLink(e.cause)],
    ["received", when(e.received_ms)],
  ])));
  if (e.review) {
    blocks.push(panel("Review", kv([["status", badge(e.review.status)], ["rule", e.review.rule_id],
      ["amount", `${e.review.amount} ${e.review.asset}`], ["deadline", `${when(e.review.deadline_ms)} (${relative(e.review.deadline_ms)})`],
      ["decided by", entryLink(e.review.decided_by)], ["reason", e.review.reason]])));
  }
  blocks.push(panel("Header", kv([
    ["author", accountLink(e.author)], ["seq", e.seq], ["kind", h("code", {}, e.kind)], ["time", when(e.time_ms)],
    ["parents", h("div", {}, e.parents.map((p) => h("div", {}, entryLink(p))))],
    ["chain", e.chain], ["payload hash", h("span", { class: "id" }, e.payload_hash)], ["payload size", `${e.payload_size} bytes`],
    ["nonce", h("span", { class: "id" }, e.nonce)], ["signature", h("span", { class: "id" }, e.signature)],
  ])));
  blocks.push(panel("Operation", h("pre", {}, JSON.stringify(e.op, null, 2))));
  const payload = [];
  if (e.tombstone) {
    payload.push(h("div", { class: "error", "data-tombstone": e.tombstone.decision },
      "Payload deleted: ", h("code", {}, e.tombstone.reason_code), " by ", causeLink(e.tombstone.decision),
      ` at height ${e.tombstone.height} (${when(e.tombstone.time_ms)}). The id and the DAG stay verifiable: the header commits to the payload only by its hash.`));
  } else if (e.payload_refused) {
    payload.push(h("div", { class: "error" }, h("code", {}, "content_blocked"), ": ", e.payload_refused));
  } else if (e.payload_size > 0) {
    payload.push(h("a", { href: `/v1/entries/${e.id}/payload`, download: e.id }, `Download the payload (${e.payload_size} bytes)`));
  } else {
    payload.push(h("p", { class: "empty" }, "No payload."));
  }
  blocks.push(panel("Payload", payload));
  blocks.push(panel("Audit", h("p", {},
    h("a", { href: `/v1/audit/proof/${e.id}`, download: `proof-${e.id}.json` }, "Download the inclusion proof"), " · ",
    h("a", { href: `#/audit?start=${e.id}` }, "Trace funds from this entry"))));
  return blocks;
}

async function recentEntriesOf(address) {
  const author = await api(`/v1/authors/${address}`);
  const rows = [];
  let next = author.head;
  while (next && rows.length < 10) {
    const e = await apiOrNull(`/v1/entries/${next}`);
    if (!e) break;
    rows.push(e);
    next = e.seq > 0 ? e.parents[0] : null;
  }
  return table([["seq", (e) => e.seq], ["entry", (e) => entryLink(e.id)], ["kind", (e) => h("code", {}, e.kind)],
    ["status", (e) => badge(e.status)], ["reason", (e) => e.reason || "—"], ["time", (e) => when(e.time_ms)]],
  rows, "This address has written nothing.");
}

async function accountPage(address) {
  const [account, identity, compliance, council] = await Promise.all([
    apiOrNull(`/v1/accounts/${address}`), apiOrNull(`/v1/identities/${address}`), apiOrNull("/v1/compliance"),
    apiOrNull("/v1/gov/council")]);
  const has = (list) => Boolean(compliance && list.some((r) => r.address === address));
  const flags = [];
  if (compliance) {
    if (has(compliance.frozen_accounts)) flags.push(badge("frozen"));
    if (compliance.emergencies.some((e) => e.account === address && e.status === "active")) flags.push(badge("frozen (emergency)", "frozen"));
    if (has(compliance.banned_keys)) flags.push(badge("banned"));
    if (identity && identity.identity_banned) flags.push(badge("identity banned", "banned"));
  }
  const member = council ? council.members.find((m) => m.address === address) : null;
  const balances = account ? Object.entries(account.balances).map(([asset, value]) => ({ asset, value })) : [];
  return [
    h("h1", {}, "Account ", h("span", { class: "id" }, address)),
    h("div", { class: "grid" },
      panel("Status", kv([["compliance", flags.length ? flags : badge("in good standing", "ok")],
        member ? ["council", h("span", { "data-council": member.name || "" },
          `member${member.name ? ` ${member.name}` : ""}, weight ${amount(member.weight)}`)] : null,
        ["next sequence", account ? amount(account.next_seq) : "—"], ["as of height", account ? amount(account.height) : "—"]])),
      panel("Identity", identity && identity.identity ? kv([["identity", h("span", { class: "id" }, identity.identity)], ["level", identity.level],
        ["expires", `${when(identity.expires_ms)}${identity.expired ? " (expired)" : ""}`],
        ["provider", accountLink(identity.provider)], ["attested by", entryLink(identity.entry)]])
        : h("p", { class: "empty" }, "No identity attested."))),
    panel("Balances", table([["asset", (r) => r.asset], ["amount", (r) => h("span", { class: "amount" }, amount(r.value))]],
      balances, "No balances.")),
    h("div", { class: "grid" },
      loading("Transfers in", () => transfersOf(address, "counterparty")),
      loading("Transfers out", () => transfersOf(address, "author"))),
    loading("Recent entries", () => recentEntriesOf(address)),
    panel("Audit", h("p", {}, h("a", { href: `#/audit?start=${address}` }, "Trace funds from this account"), " · ",
      h("a", { href: `/v1/audit/export?account=${address}`, download: `evidence-${address}.json` }, "Export the evidence package"))),
  ];
}

// Transfers to (`counterparty`) or from (`author`) an account, newest first, from the audit index.
async function transfersOf(address, side) {
  const found = await api(`/v1/audit/entries?${side}=${address}&kind=transfer&limit=20`);
  const other = (e) => (side === "author" ? e.counterparties[0] : e.author);
  return table([
    ["entry", (e) => entryLink(e.id)],
    [side === "author" ? "to" : "from", (e) => accountLink(other(e))],
    ["amount", (e) => h("span", { class: "amount" }, `${amount(e.amount)} ${e.asset || ""}`)],
    ["outcome", (e) => badge(e.outcome)],
    ["height", (e) => amount(e.height)],
  ], found.entries, side === "author" ? "No transfers sent." : "No transfers received.");
}

async function checkpointPage(height) {
  const c = await api(`/v1/checkpoints/${height}?entries=1`);
  const set = await apiOrNull(`/v1/validators?height=${c.height}`);
  const names = new Map((set ? set.validators : []).map((v) => [v.public_key, v]));
  const validator = (key) => {
    const v = names.get(key);
    return v ? [h("a", { href: `#/account/${v.address}`, "data-validator": v.name }, v.name), ` (power ${amount(v.power)})`]
      : h("span", { class: "id" }, key);
  };
  return [
    h("h1", {}, `Checkpoint ${amount(c.height)}`),
    panel("Checkpoint", kv([["id", h("span", { class: "id" }, c.id)], ["time", when(c.time_ms)], ["round", c.round],
      ["proposer", h("span", { "data-proposer": "" }, validator(c.proposer))],
      ["previous", c.height > 1 ? h("a", { href: `#/checkpoint/${c.height - 1}` }, h("span", { class: "id" }, c.prev_id)) : c.prev_id],
      ["state root", h("span", { class: "id" }, c.state_root)], ["results root", h("span", { class: "id" }, c.results_root)],
      ["signed by", h("span", { "data-signers": c.certificate.signatures.length },
        c.certificate.signatures.map((sig, i) => [i ? ", " : "", validator(sig.validator)]))]])),
    panel(`Entries (${amount(c.entry_count)})`, table([["#", (_, i) => i], ["entry", (e) => entryLink(e.id)], ["outcome", (e) => badge(e.outcome)],
      ["reason", (e) => e.reason || "—"], ["cause", (e) => causeLink(e.cause)]], c.entries, "No entries.")),
  ];
}

// --- Governance -------------------------------------------------------------------------------------

function actionSummary(action) {
  const { type, ...rest } = action;
  const parts = Object.entries(rest).map(([k, v]) => `${k}=${Array.isArray(v) ? v.join(",") : v}`);
  return h("span", {}, h("code", {}, type || "action"), " ", h("span", { class: "id" }, parts.join(" ")));
}

function proposalRow(p, rules, result, reload) {
  const vote = (choice) => h("button", { type: "button", "data-vote": choice, class: choice === "yes" ? "" : "secondary",
    onclick: () => submitInto(result, "gov.vote", { proposal: p.number, choice }, "", reload) }, choice);
  const controls = [];
  if (p.status === "voting") controls.push(h("span", { class: "votes" }, vote("yes"), vote("no"), vote("abstain")));
  if (p.status === "passed") {
    controls.push(h("button", { type: "button", "data-execute": p.number,
      onclick: () => submitInto(result, "gov.execute", { proposal: p.number }, "", reload) }, "Execute"));
  }
  const total = p.tally.council_weight;
  const needed = Math.ceil((total * rules.threshold_bps) / 10000);
  return h("tr", { "data-proposal": p.number, id: `proposal-${p.number}` },
    h("td", {}, h("a", { href: `#/governance/${p.number}` }, `#${p.number}`)),
    h("td", {}, badge(p.status)),
    h("td", {}, actionSummary(p.action), h("div", { class: "muted" }, p.reason, p.legal_ref ? ` (${p.legal_ref})` : "")),
    h("td", {}, `yes ${p.tally.yes} · no ${p.tally.no} · abstain ${p.tally.abstain}`,
      h("div", { class: "muted" }, `needs ${needed} of ${total} yes, ${rules.min_approvals} approvals`)),
    h("td", { class: "votes-cast" }, (p.votes || []).map((v) => h("div", { "data-voter": v.voter }, badge(v.choice, v.choice === "yes" ? "ok" : v.choice === "no" ? "bad" : ""), " ", accountLink(v.voter)))),
    h("td", {}, `deadline ${relative(p.deadline_ms)}`,
      h("div", { class: "muted" }, p.executable_from_ms ? `timelock ends ${relative(p.executable_from_ms)}` : "timelock after passing")),
    h("td", {}, controls));
}

function proposeForm() {
  const result = h("div", {});
  const options = h("textarea", { name: "options", rows: "3", placeholder: "target=bl1…\nrule_id=large\nabove=500" });
  const form = h("form", { class: "stack", id: "propose-form" },
    h("label", {}, "action", h("select", { name: "action" }, GOV_ACTIONS.map((a) => h("option", { value: a }, a)))),
    h("label", {}, "options (one NAME=VALUE a line, as the CLI's --options: target, service, rule_id, above, asset, outcome, …)", options),
    h("label", {}, "reason (on chain)", h("input", { name: "reason", required: true })),
    h("label", {}, "legal reference", h("input", { name: "legal_ref" })),
    h("div", {}, h("button", { type: "submit" }, "Sign and propose")), result);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const op = { action: data.get("action"), reason: data.get("reason"), legal_ref: data.get("legal_ref") };
    for (const line of String(data.get("options")).split("\n")) {
      const [name, ...rest] = line.split("=");
      const key = name.trim().replace(/-/g, "_");
      if (!key) continue;
      const value = rest.join("=").trim();
      if (LIST_OPTIONS.has(key)) (op[key] = op[key] || []).push(value);
      else if (key === "param") { const [pn, pv] = value.split("="); (op.params = op.params || {})[pn] = Number(pv); }
      else op[key] = INT_OPTIONS.has(key) ? Number(value) : value;
    }
    submitInto(result, "gov.propose", op, "", () => route());
  });
  return panel("Propose (council members)", form);
}

async function governancePage(focus) {
  const [council, list] = await Promise.all([api("/v1/gov/council"), api("/v1/gov/proposals")]);
  const details = await Promise.all(list.proposals.slice(0, 20).map((p) => api(`/v1/gov/proposals/${p.number}`)));
  const result = h("div", { id: "gov-result" });
  const reload = () => route();
  const rows = details.map((p) => proposalRow(p, council.rules, result, reload));
  const proposals = rows.length
    ? h("table", {}, h("thead", {}, h("tr", {}, ["#", "status", "action", "tally", "votes", "deadlines", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows))
    : h("p", { class: "empty" }, "No proposals yet.");
  const page = [h("h1", {}, "Governance"),
    h("div", { class: "grid" },
      panel("Council", table([["member", (m) => accountLink(m.address)], ["weight", (m) => m.weight]], council.members, "No council."),
        h("p", { class: "muted" }, `threshold ${council.rules.threshold_bps / 100}% of the council, quorum ${council.rules.quorum_bps / 100}%,`
          + ` at least ${council.rules.min_approvals} approvals; voting ${Math.round(council.rules.voting_period_ms / 60000)} min,`
          + ` timelock ${Math.round(council.rules.timelock_ms / 1000)} s`)),
      proposeForm()),
    panel("Proposals", result, proposals)];
  if (focus) {
    const p = await api(`/v1/gov/proposals/${focus}`);
    page.splice(1, 0, panel(`Proposal ${focus}`, kv([["status", badge(p.status)], ["action", actionSummary(p.action)],
      ["reason", p.reason], ["legal ref", p.legal_ref], ["proposer", accountLink(p.proposer)], ["entry", entryLink(p.entry)],
      ["created", when(p.created_ms)], ["deadline", `${when(p.deadline_ms)} (${relative(p.deadline_ms)})`],
      ["executable from", p.executable_from_ms ? `${when(p.executable_from_ms)} (${relative(p.executable_from_ms)})` : "—"],
      ["executed", p.executed_entry ? entryLink(p.executed_entry) : "—"]]),
      h("h2", {}, "Entries this decision affected"),
      table([["entry", (r) => entryLink(r.id)], ["height", (r) => r.height], ["kind", (r) => r.kind], ["outcome", (r) => badge(r.outcome)],
        ["reason", (r) => r.reason || "—"]], p.affected, "None yet.")));
  }
  return page;
}

// --- Compliance -------------------------------------------------------------------------------------

function reviewTable(queue) {
  const reload = () => route();
  return table([
    ["entry", (r) => entryLink(r.entry)], ["from", (r) => accountLink(r.from)], ["to", (r) => accountLink(r.to)],
    ["amount", (r) => `${r.amount} ${r.asset}`], ["rule", (r) => r.rule_id], ["deadline", (r) => relative(r.deadline_ms)],
    ["decide", (r) => {
      const result = h("div", {});
      const reason = h("input", { name: "reason", placeholder: "reason (on chain)", "data-reason": r.entry });
      const decide = (decision) => () => {
        if (!reason.value.trim()) { result.replaceChildren(errorBox(new ApiError("bad_request", "give a reason", 0))); return; }
        submitInto(result, "reg.review", { entry: r.entry, decision, reason: reason.value.trim() }, "", reload);
      };
      return h("div", { class: "inline", "data-held": r.entry }, reason,
        h("button", { type: "button", "data-review": "release", onclick: decide("release") }, "Release"),
        h("button", { type: "button", "data-review": "reject", class: "danger", onclick: decide("reject") }, "Reject"), result);
    }],
  ], queue, "Nothing is held for review.");
}

async function compliancePage() {
  const c = await api("/v1/compliance");
  const byDecision = (r) => (r.decision ? causeLink(`proposal:${r.decision}`) : "—");
  return [h("h1", {}, "Compliance"),
    panel("Review queue", reviewTable(c.review_queue)),
    h("div", { class: "grid" },
      panel("Frozen accounts", table([["account", (r) => accountLink(r.address)], ["decision", byDecision]], c.frozen_accounts, "No account is frozen.")),
      panel("Banned keys", table([["key", (r) => accountLink(r.address)], ["decision", byDecision]], c.banned_keys, "No key is banned.")),
      panel("Banned identities", table([["identity", (r) => h("span", { class: "id" }, r.identity)], ["decision", byDecision]], c.banned_identities, "No identity is banned.")),
      panel("Suspended services", table([["kind", (r) => h("code", {}, r.kind)], ["decision", byDecision]], c.suspended_services, "Every service runs.")),
      panel("Identity providers", table([["provider", (r) => accountLink(r.address)], ["decision", byDecision]], c.identity_providers, "No provider appointed.")),
      panel("Identity rules", table([["kind", (r) => h("code", {}, r.kind)], ["min level", (r) => r.min_level], ["above", (r) => r.above_amount], ["decision", byDecision]], c.identity_rules, "No identity rule.")),
      panel("Application operators", table([["operator", (r) => accountLink(r.address)], ["application", (r) => h("code", {}, r.kind)], ["decision", byDecision]], c.operators, "No operator appointed.")),
      panel("Paused by operators", table([["application", (r) => h("code", {}, r.kind)], ["operator", (r) => accountLink(r.operator)], ["reason", (r) => r.reason], ["pause", (r) => entryLink(r.entry)]], c.paused_services, "No application is paused."))),
    panel("Interception rules", table([["rule", (r) => r.rule_id], ["from amount", (r) => `${r.min_amount} ${r.asset || "(any asset)"}`],
      ["counterparties", (r) => r.counterparties.map((a) => h("div", {}, accountLink(a)))], ["outcome", (r) => badge(r.outcome, r.outcome === "hold" ? "held" : "bad")],
      ["in force", (r) => (r.in_force ? badge("yes", "ok") : badge("lapsed"))], ["by", (r) => (r.emergency ? `emergency:${r.emergency}` : byDecision(r))]],
    c.interception_rules, "No interception rule.")),
    panel("Content rules", table([["rule", (r) => r.rule_id], ["payload hash", (r) => (r.payload_hash ? h("span", { class: "id" }, short(r.payload_hash)) : "—")],
      ["keyword", (r) => r.keyword || "—"], ["media type", (r) => r.media_type || "—"], ["max size", (r) => r.max_size ?? "—"], ["decision", byDecision]],
    c.content_rules, "No content rule.")),
    panel("Emergencies", table([["#", (r) => r.number], ["status", (r) => badge(r.status)], ["action", (r) => r.action],
      ["target", (r) => (r.account ? accountLink(r.account) : r.rule_id)], ["reason", (r) => r.reason], ["expires", (r) => relative(r.expires_ms)],
      ["entry", (r) => entryLink(r.entry)]], c.emergencies, "No emergency act.")),
    panel("Redactions (tombstones)", table([["entry", (r) => entryLink(r.entry)], ["reason code", (r) => h("code", {}, r.reason_code)],
      ["decision", (r) => causeLink(r.decision)], ["height", (r) => r.height], ["time", (r) => when(r.time_ms)]], c.redactions, "Nothing redacted.")),
  ];
}

// --- Audit ------------------------------------------------------------------------------------------

function traceGraph(trace) {
  const svg = document.createElementNS(SVG_NS, "svg");
  svg.setAttribute("class", "trace");
  svg.setAttribute("id", "trace-graph");
  const columns = new Map();
  for (const n of trace.nodes) {
    if (!columns.has(n.depth)) columns.set(n.depth, []);
    columns.get(n.depth).push(n);
  }
  const spots = new Map();
  let rows = 1;
  for (const [depth, nodes] of columns) {
    rows = Math.max(rows, nodes.length);
    nodes.forEach((n, i) => spots.set(n.id, [60 + depth * 190, 40 + i * 60]));
  }
  const width = 120 + Math.max(...[0, ...columns.keys()]) * 190;
  const [w, ht] = [Math.max(width, 400), 40 + rows * 60];
  svg.setAttribute("viewBox", `0 0 ${w} ${ht}`);
  svg.setAttribute("width", w);
  svg.setAttribute("height", ht);
  const el = (tag, attrs, text) => {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    svg.appendChild(node);
    return node;
  };
  for (const e of trace.edges) {
    const a = spots.get(e.from), b = spots.get(e.to);
    if (!a || !b) continue;
    el("line", { x1: a[0], y1: a[1], x2: b[0], y2: b[1], class: e.traced ? "traced" : "", "data-entry": e.entry });
    el("text", { x: (a[0] + b[0]) / 2, y: (a[1] + b[1]) / 2 - 4, "text-anchor": "middle" }, `${e.amount} ${e.asset}`);
  }
  for (const n of trace.nodes) {
    const [x, y] = spots.get(n.id);
    const dot = el("circle", { cx: x, cy: y, r: 9, class: n.depth === 0 ? "start" : "", "data-node": n.id });
    dot.addEventListener("click", () => { location.hash = n.id.startsWith("bl1") ? `#/account/${n.id}` : `#/entry/${n.id}`; });
    el("text", { x, y: y + 24, "text-anchor": "middle" }, short(n.id));
  }
  return svg;
}

function traceForm(params) {
  const out = h("div", { id: "trace-result" });
  const form = h("form", { class: "inline", id: "trace-form" },
    h("input", { name: "start", placeholder: "address or entry id", value: params.get("start") || "", size: "50", required: true }),
    h("select", { name: "direction" }, h("option", { value: "forward" }, "forward"), h("option", { value: "backward" }, "backward")),
    h("label", {}, "hops ", h("input", { name: "hops", type: "number", min: "1", max: "10", value: "3" })),
    h("input", { name: "asset", placeholder: "asset (optional)", size: "8" }),
    h("button", { type: "submit" }, "Trace"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const query = new URLSearchParams({ start: data.get("start").trim(), direction: data.get("direction"), hops: data.get("hops") });
    if (data.get("asset").trim()) query.set("asset", data.get("asset").trim());
    out.replaceChildren(h("p", { class: "muted" }, "Tracing…"));
    try {
      const trace = await api(`/v1/audit/trace?${query}&format=json`);
      out.replaceChildren(
        h("p", { class: "muted" }, `${trace.nodes.length} accounts, ${trace.edges.length} transfers, method ${trace.method}, as of height ${trace.height}`
          + (trace.truncated ? " (truncated)" : "")),
        traceGraph(trace),
        h("p", {}, h("a", { href: `/v1/audit/trace?${query}&format=svg`, target: "_blank" }, "Open as SVG")),
        table([["hop", (e) => e.hop], ["entry", (e) => entryLink(e.entry)], ["from", (e) => accountLink(e.from)], ["to", (e) => accountLink(e.to)],
          ["amount", (e) => `${e.amount} ${e.asset}`], ["traced", (e) => e.traced], ["height", (e) => e.height]], trace.edges, "No transfers found."));
    } catch (err) {
      out.replaceChildren(errorBox(err));
    }
  });
  if (params.get("start")) setTimeout(() => form.requestSubmit(), 0);
  return panel("Trace funds", form, out);
}

function exportForm() {
  const link = h("a", { id: "export-link", download: "evidence.json", href: "/v1/audit/export" }, "Download the evidence package");
  const form = h("form", { class: "inline" },
    h("input", { name: "account", placeholder: "account address", size: "50" }),
    h("label", {}, "from height ", h("input", { name: "from", type: "number", min: "1", size: "6" })),
    h("label", {}, "to height ", h("input", { name: "to", type: "number", min: "1", size: "6" })), link);
  form.addEventListener("input", () => {
    const data = new FormData(form);
    const query = new URLSearchParams();
    for (const name of ["account", "from", "to"]) if (String(data.get(name)).trim()) query.set(name, String(data.get(name)).trim());
    link.setAttribute("href", `/v1/audit/export?${query}`);
    link.setAttribute("download", `evidence-${query.get("account") || "all"}.json`);
  });
  return panel("Evidence export", form);
}

async function auditPage(params) {
  const log = await api("/v1/audit/actions");
  return [h("h1", {}, "Audit"), traceForm(params), exportForm(),
    panel("Management log", table([
      ["height", (a) => a.height], ["entry", (a) => entryLink(a.id)], ["kind", (a) => h("code", {}, a.kind)],
      ["author", (a) => accountLink(a.author)], ["what", (a) => h("span", { class: "id" }, JSON.stringify(a.op))],
      ["outcome", (a) => badge(a.outcome)], ["reason", (a) => a.reason || "—"], ["cause", (a) => causeLink(a.cause)],
    ], log.actions, "No management act yet."),
    log.lapses.length ? h("p", { class: "muted" }, `${log.lapses.length} emergency act(s) lapsed without ratification.`) : null)];
}

// --- routing ----------------------------------------------------------------------------------------

function search(text) {
  const q = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(q)) return `#/entry/${q.toLowerCase()}`;
  if (/^bl1[a-z2-7]+$/.test(q)) return `#/account/${q}`;
  if (/^\d+$/.test(q)) return `#/checkpoint/${q}`;
  return null;
}

async function route() {
  const [path, query] = (location.hash.slice(1) || "/").split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/").filter(Boolean);
  const section = parts[0] || "explorer";
  const nav = { entry: "explorer", account: "explorer", checkpoint: "explorer" }[section] || section;
  document.querySelectorAll("[data-nav]").forEach((a) => a.classList.toggle("active", a.dataset.nav === nav));
  main.dataset.page = section;
  delete main.dataset.ready;
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  let content;
  try {
    switch (section) {
      case "explorer": content = explorerPage(); break;
      case "entry": content = await entryPage(parts[1]); break;
      case "account": content = await accountPage(parts[1]); break;
      case "checkpoint": content = await checkpointPage(parts[1]); break;
      case "governance": content = await governancePage(parts[1]); break;
      case "compliance": content = await compliancePage(); break;
      case "audit": content = await auditPage(params); break;
      default: {
        const app = (await applications()).find((a) => a.name === section && a.console);
        if (!app) throw new ApiError("not_found", `no page ${section}`, 404);
        content = await (await import(app.console)).page(parts.slice(1), params);
      }
    }
  } catch (err) {
    content = [h("h1", {}, "Error"), errorBox(err)];
  }
  main.replaceChildren(...[content].flat());
  if (flash) { main.prepend(flash); flash = null; }
  main.dataset.ready = section;
}

function setUpKey() {
  const button = document.getElementById("key-button");
  const keyPanel = document.getElementById("key-panel");
  const statusLine = document.getElementById("key-status");
  const show = (key) => {
    button.textContent = key ? `Key: ${short(key.address)}` : "Key: none";
    statusLine.replaceChildren(key ? h("span", {}, "Signing as ", accountLink(key.address)) : "No key loaded.");
    document.body.dataset.key = key ? key.address : "";
  };
  onKeyChange(show);
  button.addEventListener("click", () => { keyPanel.hidden = !keyPanel.hidden; });
  document.getElementById("key-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const seed = document.getElementById("key-seed");
    try {
      await useSeed(seed.value, document.getElementById("key-remember").checked);
      seed.value = "";
    } catch (err) {
      statusLine.replaceChildren(errorBox(err));
    }
  });
  document.getElementById("key-forget").addEventListener("click", forgetKey);
  show(currentKey());
  restoreKey().catch((err) => statusLine.replaceChildren(errorBox(err)));
}

document.getElementById("search").addEventListener("submit", (event) => {
  event.preventDefault();
  const input = document.getElementById("search-input");
  const target = search(input.value);
  if (target) { location.hash = target; input.value = ""; }
  else main.replaceChildren(h("h1", {}, "Search"), errorBox(new ApiError("bad_request", "search for a 64-hex entry id, a bl1 address or a checkpoint height", 400)));
});

// Installed applications declare their console pages (GET /v1/apps); each gets a link.
let installed = null;
function applications() {
  installed ??= api("/v1/apps").then((d) => d.applications).catch(() => []);
  return installed;
}

async function addApplicationLinks() {
  const nav = document.querySelector("header nav");
  for (const app of await applications()) {
    if (!app.console || nav.querySelector(`[data-nav="${app.name}"]`)) continue;
    const { title } = await import(app.console);
    nav.append(h("a", { href: `#/${app.name}`, "data-nav": app.name, title: app.summary }, title || app.name));
  }
}

window.addEventListener("hashchange", route);
setUpKey();
addApplicationLinks().catch(() => {}).then(route);
startLive();
loadDag().catch(() => {});
