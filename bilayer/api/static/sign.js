// Signing in the browser. The seed never leaves this page: the node drafts the canonical header bytes,
// this module checks them (the id is SHA-256 of the bytes; the decoded header says what we asked for),
// signs "bilayer/entry/v1" || id with Ed25519 (WebCrypto) and submits the signed entry.

import { ApiError, api, postJson } from "./api.js";

const ENTRY_DOMAIN = new TextEncoder().encode("bilayer/entry/v1");
const PKCS8_ED25519_PREFIX = hexToBytes("302e020100300506032b657004220420");
const STORAGE_KEY = "bilayer.seed";

export function hexToBytes(hex) {
  if (typeof hex !== "string" || hex.length % 2 !== 0 || /[^0-9a-fA-F]/.test(hex)) {
    throw new ApiError("bad_hex", "not a hex string", 0);
  }
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
  return out;
}

export function bytesToHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function bytesToBase64(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) { out.set(p, offset); offset += p.length; }
  return out;
}

function equalBytes(a, b) {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

function base32(bytes) {
  let bits = 0, value = 0, out = "";
  for (const b of bytes) {
    value = (value << 8) | b; bits += 8;
    while (bits >= 5) { out += BASE32[(value >>> (bits - 5)) & 31]; bits -= 5; }
  }
  if (bits > 0) out += BASE32[(value << (5 - bits)) & 31];
  return out;
}

export function publicKeyOfAddress(address) {
  if (typeof address !== "string" || !address.startsWith("bl1")) throw new ApiError("invalid_address", "not an address", 0);
  let bits = 0, value = 0;
  const out = [];
  for (const c of address.slice(3)) {
    const v = BASE32.indexOf(c);
    if (v < 0) throw new ApiError("invalid_address", "not an address", 0);
    value = ((value << 5) | v) & 0xffff; bits += 5;
    if (bits >= 8) { out.push((value >>> (bits - 8)) & 0xff); bits -= 8; }
  }
  if (out.length !== 36) throw new ApiError("invalid_address", "not an address", 0);
  return Uint8Array.from(out.slice(0, 32));
}

// bl1 + base32(public key || first 4 bytes of SHA-256("bilayer-address" || public key)), as the node computes it.
export async function addressOf(publicKey) {
  const check = await sha256(concat(new TextEncoder().encode("bilayer-address"), publicKey));
  return "bl1" + base32(concat(publicKey, check.slice(0, 4)));
}

// --- a strict msgpack reader, enough for entry headers (maps, arrays, strings, bytes, integers) ---

export function unpack(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 0;
  const need = (n) => { if (pos + n > bytes.length) throw new ApiError("bad_draft", "truncated msgpack", 0); };
  const take = (n) => { need(n); const out = bytes.slice(pos, pos + n); pos += n; return out; };
  const u8 = () => { need(1); return bytes[pos++]; };
  const u16 = () => { need(2); const v = view.getUint16(pos); pos += 2; return v; };
  const u32 = () => { need(4); const v = view.getUint32(pos); pos += 4; return v; };
  const u64 = () => { need(8); const v = view.getBigUint64(pos); pos += 8; return v; };
  const text = (n) => new TextDecoder("utf-8", { fatal: true }).decode(take(n));
  const map = (n) => { const out = {}; for (let i = 0; i < n; i++) { const k = read(); out[k] = read(); } return out; };
  const array = (n) => { const out = []; for (let i = 0; i < n; i++) out.push(read()); return out; };
  const big = (v) => (v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= -BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v);
  function read() {
    const t = u8();
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if ((t & 0xf0) === 0x80) return map(t & 0x0f);
    if ((t & 0xf0) === 0x90) return array(t & 0x0f);
    if ((t & 0xe0) === 0xa0) return text(t & 0x1f);
    switch (t) {
      case 0xc0: return null;
      case 0xc2: return false;
      case 0xc3: return true;
      case 0xc4: return take(u8());
      case 0xc5: return take(u16());
      case 0xc6: return take(u32());
      case 0xcc: return u8();
      case 0xcd: return u16();
      case 0xce: return u32();
      case 0xcf: return big(u64());
      case 0xd0: { need(1); const v = view.getInt8(pos); pos += 1; return v; }
      case 0xd1: { need(2); const v = view.getInt16(pos); pos += 2; return v; }
      case 0xd2: { need(4); const v = view.getInt32(pos); pos += 4; return v; }
      case 0xd3: { need(8); const v = view.getBigInt64(pos); pos += 8; return big(v); }
      case 0xd9: return text(u8());
      case 0xda: return text(u16());
      case 0xdb: return text(u32());
      case 0xdc: return array(u16());
      case 0xdd: return array(u32());
      case 0xde: return map(u16());
      case 0xdf: return map(u32());
      default: throw new ApiError("bad_draft", `unexpected msgpack byte 0x${t.toString(16)}`, 0);
    }
  }
  const value = read();
  if (pos !== bytes.length) throw new ApiError("bad_draft", "trailing bytes after the header", 0);
  return value;
}

// --- the key --------------------------------------------------------------------------------

let current = null; // {privateKey, publicKey: Uint8Array, address}
const listeners = [];

export function onKeyChange(listener) { listeners.push(listener); }
export function currentKey() { return current; }

export async function useSeed(seedHex, remember) {
  const seed = hexToBytes(seedHex.trim());
  if (seed.length !== 32) throw new ApiError("bad_seed", "an Ed25519 seed is 32 bytes (64 hex characters)", 0);
  let privateKey, jwk;
  try {
    privateKey = await crypto.subtle.importKey("pkcs8", concat(PKCS8_ED25519_PREFIX, seed), { name: "Ed25519" },
      true, ["sign"]);
    jwk = await crypto.subtle.exportKey("jwk", privateKey);
  } catch (err) {
    throw new ApiError("no_ed25519", `this browser cannot use Ed25519 keys (${err.message})`, 0);
  }
  const publicKey = Uint8Array.from(atob(jwk.x.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
  current = { privateKey, publicKey, address: await addressOf(publicKey) };
  if (remember) sessionStorage.setItem(STORAGE_KEY, bytesToHex(seed)); else sessionStorage.removeItem(STORAGE_KEY);
  listeners.forEach((l) => l(current));
  return current;
}

export function forgetKey() {
  current = null;
  sessionStorage.removeItem(STORAGE_KEY);
  listeners.forEach((l) => l(null));
}

export async function restoreKey() {
  const saved = sessionStorage.getItem(STORAGE_KEY);
  if (saved) await useSeed(saved, true);
}

// --- drafts, checked before signing ------------------------------------------------------------

const textBytes = (s) => new TextEncoder().encode(s);

// What the decoded operation body must say, for the fields the user typed.
function expectedFields(kind, op) {
  switch (kind) {
    case "gov.vote": return { proposal: op.proposal, choice: op.choice };
    case "gov.execute": case "gov.cancel": return { proposal: op.proposal };
    case "reg.review": return { entry: hexToBytes(op.entry), decision: op.decision, reason: op.reason };
    case "transfer": return { asset: op.asset || "BLY", amount: op.amount, to: publicKeyOfAddress(op.to) };
    case "gov.propose": return { reason: op.reason, legal_ref: op.legal_ref || "" };
    case "reg.freeze": return { account: publicKeyOfAddress(op.account), reason: op.reason, legal_ref: op.legal_ref || "" };
    default: return {};
  }
}

function sameValue(a, b) {
  if (a instanceof Uint8Array && b instanceof Uint8Array) return equalBytes(a, b);
  return a === b;
}

export async function verifyDraft(draft, { kind, op, payload, chainId, publicKey }) {
  const header = hexToBytes(draft.header);
  const id = await sha256(header);
  const lie = (what) => { throw new ApiError("draft_mismatch", `the node's draft does not match: ${what}; nothing was signed`, 0); };
  if (bytesToHex(id) !== draft.id) lie("its id is not the SHA-256 of its header bytes");
  const decoded = unpack(header);
  if (decoded.version !== 1) lie("unknown header version");
  if (decoded.chain !== chainId) lie(`chain ${decoded.chain}`);
  if (!(decoded.author instanceof Uint8Array) || !equalBytes(decoded.author, publicKey)) lie("another author");
  if (decoded.kind !== kind) lie(`kind ${decoded.kind}`);
  const payloadBytes = textBytes(payload);
  if (!equalBytes(decoded.payload_hash, await sha256(payloadBytes)) || decoded.payload_size !== payloadBytes.length) {
    lie("another payload");
  }
  const body = unpack(decoded.body);
  for (const [name, value] of Object.entries(expectedFields(kind, op))) {
    if (!sameValue(body[name], value)) lie(`field ${name}`);
  }
  return { id, header, body, decoded };
}

// Draft, check, sign, submit; then wait (bounded) for the outcome. Returns the entry as the node shows it.
export async function signAndSubmit(kind, op, payload = "", { waitSeconds = 30 } = {}) {
  if (!current) throw new ApiError("no_key", "load a signing key first (Key button, top right)", 0);
  const status = await api("/v1/status");
  const draft = await postJson("/v1/entries/draft", { author: current.address, kind, op, payload });
  const { id, header } = await verifyDraft(draft, { kind, op, payload, chainId: status.chain_id, publicKey: current.publicKey });
  const signature = new Uint8Array(await crypto.subtle.sign({ name: "Ed25519" }, current.privateKey, concat(ENTRY_DOMAIN, id)));
  await postJson("/v1/entries", { header: bytesToBase64(header), signature: bytesToBase64(signature),
    payload: bytesToBase64(textBytes(payload)) });
  const idHex = bytesToHex(id);
  const deadline = Date.now() + waitSeconds * 1000;
  let view = { id: idHex, status: "PENDING" };
  while (Date.now() < deadline) {
    const left = Math.max(1, Math.min(10, Math.round((deadline - Date.now()) / 1000)));
    view = await api(`/v1/entries/${idHex}?wait=${left}`);
    if (["FINAL", "REJECTED", "HELD"].includes(view.status) || !status.finality) break;
  }
  return view;
}
