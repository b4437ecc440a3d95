// The levels wire format: what site and system appliances say to each other for multi-level
// service routing (LOAD upward, PING/PONG for distance) and what any two appliances say for flow
// recovery (WHOHAS, answered by HAVE or NONE). docs/levels-protocol.md is the written protocol;
// this file is its one implementation.
//
// The messages travel in the signed envelope of host/wire/envelope.ts (CBOR, HMAC-SHA256 with key
// ids, seq + time for the replay window) under a version of their own, 2001, so that an
// advertisement (1), a heartbeat (1) or a pair's sync frame (1001) is never taken for one of these
// and the reverse: the receiver refuses the datagram as unsupported-version before it checks the MAC.
//
// Decoding never throws; every field is checked (bad-field naming its path) and normalized:
// prefixes come out in canonical text, so two spellings of one prefix are one key.

import { Encoder } from "cbor-x";
import * as L from "../../assembly/layout.js";
import { Envelope, KEY_ID_MAX, type AuthKey, type Opened } from "../wire/envelope.js";
import { FieldError, ID_LENGTH, int, list, need, oneOf, present, record, text, type Fields } from "../wire/fields.js";
import { parseWirePrefix } from "./prefix.js";

export const LEVELS_PROTOCOL_VERSION = 2001;
/** Under a 1500-byte MTU with IPv6 and UDP headers (48 bytes) and room for a tunnel's: never fragmented. */
export const LEVELS_MAX_DATAGRAM_BYTES = 1400;

/** Bounds of every field, so that a datagram's decoded size and meaning are bounded too. */
export const LEVELS_LIMITS = {
  intervalMs: { min: 10, max: 600_000 },
  /** Pages of one interval's update: 4096 pages of at least 13 entries is over 50 000 prefixes. */
  pages: 4096,
  /** Entries of one page; the datagram limit keeps a real page well under this. */
  entries: 64,
  /** Utilisation, 1 = 100%; a sum over many servers may go far past 1. */
  load: 1_000_000,
  u32: 0xffffffff,
  nameLength: ID_LENGTH,
  leftMs: 0x7fffffff,
} as const;

/** One prefix's load at a site: a VIP (/32, /128) or a virtual subnet. */
export interface LoadEntry {
  /** Canonical "address/length". */
  prefix: string;
  /** Aggregate utilisation of the servers that can take flows, >= 0 (1 = 100%). */
  load: number;
  /** Servers that can take new flows; 0 = the site takes no new flows for this prefix. */
  members: number;
  /** Flows the site carries for this prefix now. */
  flows: number;
}

/** LOAD (site -> system): one page of the site's update for this interval. */
export interface LoadMsg {
  type: "load";
  /** How often the site sends its update: the system's dead time is a number of these. */
  intervalMs: number;
  /** 0 .. pages-1. */
  page: number;
  pages: number;
  entries: LoadEntry[];
}

/** PING (system -> site): answer with a PONG of the same nonce; the round trip is the site's distance. */
export interface PingMsg {
  type: "ping";
  nonce: number;
}

export interface PongMsg {
  type: "pong";
  nonce: number;
}

/** WHOHAS (any -> its recovery peers): does anyone hold a flow entry under this key? */
export interface WhohasMsg {
  type: "whohas";
  /** Chosen by the asker; echoed in the answer. */
  id: number;
  family: 4 | 6;
  /** The flow-table key (FLOW4_KEY or FLOW6_KEY bytes) of the packet that missed. */
  key: Uint8Array;
}

/** A flow entry in names (a box numbers its services, backends and rules its own way). */
export interface WireFlow {
  service: string;
  backend: string;
  rule?: string;
  /** FF_* flags of the entry. */
  flags: number;
  /** Board port of the flow's first packet at the answering box. */
  port: number;
  /** ms until the entry expires there if nothing more is seen; at least 1. */
  leftMs: number;
}

export interface HaveMsg {
  type: "have";
  id: number;
  flow: WireFlow;
}

export interface NoneMsg {
  type: "none";
  id: number;
}

export type LevelsMessage = LoadMsg | PingMsg | PongMsg | WhohasMsg | HaveMsg | NoneMsg;
export type LevelsMessageType = LevelsMessage["type"];
export const LEVELS_MESSAGE_TYPES: readonly LevelsMessageType[] = ["load", "ping", "pong", "whohas", "have", "none"];

export type LevelsDecodeResult = Opened<LevelsMessage>;

// ---------------------------------------------------------------------------------------------
// Checks: each returns a fresh, normalized value or throws FieldError at its path.

/** A finite number in [min, max] (integral or not: CBOR floats of every width come out as numbers). */
function real(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isFinite(v)) throw new FieldError(path, `must be a number ${min}-${max}`);
  if (v < min || v > max) throw new FieldError(path, `${v} is outside ${min}-${max}`);
  return v;
}

function prefix(v: unknown, path: string): string {
  if (typeof v !== "string" || v.length > 49) throw new FieldError(path, "must be a prefix like 192.0.2.0/24 or 2001:db8::/32");
  const p = parseWirePrefix(v);
  if (typeof p === "string") throw new FieldError(path, p);
  return p.text;
}

function loadEntry(v: unknown, path: string): LoadEntry {
  const o = record(v, path, ["prefix", "load", "members", "flows"]);
  return {
    prefix: prefix(need(o, "prefix", path), `${path}.prefix`),
    load: real(need(o, "load", path), `${path}.load`, 0, LEVELS_LIMITS.load),
    members: int(need(o, "members", path), `${path}.members`, 0, LEVELS_LIMITS.u32),
    flows: int(need(o, "flows", path), `${path}.flows`, 0, Number.MAX_SAFE_INTEGER),
  };
}

function wireFlow(v: unknown, path: string): WireFlow {
  const o = record(v, path, ["service", "backend", "rule", "flags", "port", "leftMs"]);
  const f: WireFlow = {
    service: text(need(o, "service", path), `${path}.service`, LEVELS_LIMITS.nameLength),
    backend: text(need(o, "backend", path), `${path}.backend`, LEVELS_LIMITS.nameLength),
    flags: int(need(o, "flags", path), `${path}.flags`, 0, 0xff),
    port: int(need(o, "port", path), `${path}.port`, 0, 0xff),
    leftMs: int(need(o, "leftMs", path), `${path}.leftMs`, 1, LEVELS_LIMITS.leftMs),
  };
  if (present(o, "rule")) f.rule = text(o.rule, `${path}.rule`, LEVELS_LIMITS.nameLength);
  return f;
}

const keyBytes = (family: 4 | 6): number => (family === 6 ? L.FLOW6_KEY : L.FLOW4_KEY);

function message(v: unknown, p: string): LevelsMessage {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FieldError(p, "must be a map");
  const type = oneOf((v as Fields).type, `${p}.type`, LEVELS_MESSAGE_TYPES);
  const f = (k: string): string => `${p}.${k}`;
  switch (type) {
    case "load": {
      const o = record(v, p, ["type", "intervalMs", "page", "pages", "entries"]);
      const pages = int(need(o, "pages", p), f("pages"), 1, LEVELS_LIMITS.pages);
      const page = int(need(o, "page", p), f("page"), 0, LEVELS_LIMITS.pages - 1);
      if (page >= pages) throw new FieldError(f("page"), `${page} is not below pages ${pages}`);
      const entries = list(need(o, "entries", p), f("entries"), 0, LEVELS_LIMITS.entries, loadEntry);
      const seen = new Set<string>();
      entries.forEach((e, i) => {
        if (seen.has(e.prefix)) throw new FieldError(`${f("entries")}[${i}].prefix`, `${e.prefix} appears twice`);
        seen.add(e.prefix);
      });
      const intervalMs = int(need(o, "intervalMs", p), f("intervalMs"), LEVELS_LIMITS.intervalMs.min, LEVELS_LIMITS.intervalMs.max);
      return { type, intervalMs, page, pages, entries };
    }
    case "ping":
    case "pong": {
      const o = record(v, p, ["type", "nonce"]);
      return { type, nonce: int(need(o, "nonce", p), f("nonce"), 0, LEVELS_LIMITS.u32) };
    }
    case "whohas": {
      const o = record(v, p, ["type", "id", "family", "key"]);
      const family = int(need(o, "family", p), f("family"), 4, 6);
      if (family !== 4 && family !== 6) throw new FieldError(f("family"), "must be 4 or 6");
      const key = need(o, "key", p);
      const size = keyBytes(family);
      if (!(key instanceof Uint8Array) || key.length !== size) throw new FieldError(f("key"), `must be a byte string of ${size} bytes (an IPv${family} flow key)`);
      return { type, id: int(need(o, "id", p), f("id"), 0, LEVELS_LIMITS.u32), family, key: Uint8Array.from(key) };
    }
    case "have": {
      const o = record(v, p, ["type", "id", "flow"]);
      return { type, id: int(need(o, "id", p), f("id"), 0, LEVELS_LIMITS.u32), flow: wireFlow(need(o, "flow", p), f("flow")) };
    }
    case "none": {
      const o = record(v, p, ["type", "id"]);
      return { type, id: int(need(o, "id", p), f("id"), 0, LEVELS_LIMITS.u32) };
    }
  }
}

const ENVELOPE = new Envelope<LevelsMessage>({ version: LEVELS_PROTOCOL_VERSION, maxBytes: LEVELS_MAX_DATAGRAM_BYTES, message });

/**
 * Encodes and signs one message. An invalid message, sender, key, or a datagram over 1400 bytes is
 * the caller's bug and throws a RangeError naming the field (loadPages() makes pages that fit).
 */
export function encodeLevels(msg: LevelsMessage, key: AuthKey, seq: number, now: number, sender: string): Uint8Array {
  return ENVELOPE.encode(msg, key, seq, now, sender);
}

/** Verifies and decodes one datagram. Never throws. */
export function decodeLevels(bytes: Uint8Array, keys: ReadonlyMap<number, Uint8Array>): LevelsDecodeResult {
  return ENVELOPE.decode(bytes, keys);
}

// ---------------------------------------------------------------------------------------------
// Paging. A page's size is its envelope at its largest (64-character sender, 9-byte seq and time,
// 3-byte key id, page numbers at their widest) plus its entries' own encodings, measured with the
// envelope's CBOR options; so every page fits whatever sender, key and sequence number send it.

// The same options as the envelope's encoder: an entry encodes to the same bytes inside it.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });

let emptyPageBytes: number | undefined;

/** Bytes of a datagram carrying a load page with no entries, at its largest. */
function emptyPage(): number {
  emptyPageBytes ??= encodeLevels(
    { type: "load", intervalMs: LEVELS_LIMITS.intervalMs.max, page: LEVELS_LIMITS.pages - 1, pages: LEVELS_LIMITS.pages, entries: [] },
    { id: KEY_ID_MAX, secret: new Uint8Array(16) },
    Number.MAX_SAFE_INTEGER,
    Number.MAX_SAFE_INTEGER,
    "x".repeat(ID_LENGTH),
  ).length;
  return emptyPageBytes;
}

/** An empty list's head is 1 byte; one of 24-255 items takes 2. */
const LIST_HEAD_GROWTH = 1;

/**
 * One interval's update as LOAD messages that each fit a datagram, in the order given; at least
 * one page (a site with nothing to report still says it is alive). Entries are checked as decode
 * would; a bad one is the caller's bug (RangeError), as is an update over the page limit.
 */
export function loadPages(entries: readonly LoadEntry[], intervalMs: number): LoadMsg[] {
  const budget = LEVELS_MAX_DATAGRAM_BYTES - emptyPage() - LIST_HEAD_GROWTH;
  const groups: LoadEntry[][] = [[]];
  let used = 0;
  entries.forEach((e, i) => {
    let checked: LoadEntry;
    try {
      checked = loadEntry(e, `entries[${i}]`);
    } catch (err) {
      if (err instanceof FieldError) throw new RangeError(err.message);
      throw err;
    }
    const size = cbor.encode(checked).length;
    const current = groups[groups.length - 1]!;
    if (current.length > 0 && (used + size > budget || current.length >= LEVELS_LIMITS.entries)) {
      groups.push([checked]);
      used = size;
    } else {
      current.push(checked);
      used += size;
    }
  });
  if (groups.length > LEVELS_LIMITS.pages) throw new RangeError(`entries: ${entries.length} entries need ${groups.length} pages, over ${LEVELS_LIMITS.pages}`);
  return groups.map((g, page) => ({ type: "load", intervalMs, page, pages: groups.length, entries: g }));
}
