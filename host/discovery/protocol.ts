// The service advertisement wire format, shared by the appliance, the supervisor and the end-system
// agent. docs/advertisement-protocol.md is the written protocol; this file is its one
// implementation, and the two must agree field for field.
//
// The signed envelope [version, keyId, sender, seq, timeMs, message, mac] and its checks (the MAC
// over the exact bytes sent, verified before the CBOR decoder sees them) are host/wire/envelope.ts,
// shared with the redundant pair's heartbeats; this file gives it the advertisement messages.
//
// Decoding never throws: every way a datagram can be wrong is a DecodeResult with a reason, and a
// bad field names its path ("msg.services[2].port"). Unknown fields and message types are
// refused rather than ignored: a new field means a new protocol version.

import { isIP } from "node:net";
import { Envelope, KEY_ID_MAX, type AuthKey as EnvelopeKey, type EnvelopeFailure, type Opened } from "../wire/envelope.js";
import { FieldError, ID_LENGTH, type Fields, bool, id, int, list, need, oneOf, present, record, text, validate } from "../wire/fields.js";

/** Version of the envelope and message set; a receiver refuses any other. */
export const PROTOCOL_VERSION = 1;
/** Largest datagram sent or accepted: fits a jumbo-free path with IP fragmentation at worst, and bounds decode work. */
export const MAX_DATAGRAM_BYTES = 8192;
/** UDP port for advertisements, multicast and unicast alike. */
export const DEFAULT_PORT = 7777;
/** IPv4 group: organization-local scope (RFC 2365), never routed off the site. */
export const DEFAULT_GROUP_V4 = "239.255.77.77";
/** IPv6 group: link-local scope, the server-facing segment only. */
export const DEFAULT_GROUP_V6 = "ff02::77";

/** Bounds on every count and length, so a datagram's decoded size is bounded too. */
export const LIMITS = {
  idLength: ID_LENGTH,
  reasonLength: 200,
  addresses: 16,
  services: 64,
  servers: 64,
  keyId: KEY_ID_MAX,
  u32: 0xffffffff,
  intervalMs: { min: 100, max: 600_000 },
  idleTimeoutS: { min: 1, max: 86_400 },
  leaseS: { min: 1, max: 86_400 },
  numberCount: 65_536,
} as const;

/** IP protocol numbers that carry ports. */
export const PORT_PROTOCOLS = [6, 17, 132] as const; // tcp, udp, sctp

// ---------------------------------------------------------------------------------------------
// Messages

export type ServerState = "up" | "draining" | "leaving";

/** A service as the appliance knows it: VIP, IP protocol (6 tcp, 17 udp, 132 sctp), port (0 = every port). */
export interface ServiceKey {
  vip: string;
  protocol: number;
  port: number;
}

export interface ServiceOffer extends ServiceKey {
  /** Share of new flows relative to the other servers of the service; 0 = takes no new flows. */
  weight: number;
  /** Concurrent connections the server can hold; 0 = not stated. */
  capacity: number;
}

/** SERVICE: an end system says who it is, where it is, what it serves, and whether it takes new flows. */
export interface ServiceMsg {
  type: "service";
  endSystem: string;
  addresses: string[];
  state: ServerState;
  /** How often the sender repeats this message; three intervals without one and it is down. */
  intervalMs: number;
  services: ServiceOffer[];
}

/** LOAD: how congested an end system is. */
export interface LoadMsg {
  type: "load";
  endSystem: string;
  /** CPU busy, percent 0-100. */
  cpu: number;
  /** Open connections now. */
  connections: number;
  /** Recent mean response time, microseconds. */
  responseTimeUs: number;
}

export interface PortRange {
  first: number;
  last: number;
}

export interface FlowPattern {
  /** Client source prefix, "10.1.0.0/16"; absent = any source of the VIP's family. */
  source?: string;
  /** IP protocol number; absent = any. Ports need 6, 17 or 132. */
  protocol?: number;
  vip: string;
  srcPorts?: PortRange;
  dstPorts?: PortRange;
}

export interface VlanPush {
  /** VLAN id 1-4094. */
  vid: number;
  /** 802.1p priority of the pushed tag, 0-7; default 0. */
  pcp?: number;
}

export interface MplsPush {
  label: number;
  /** Traffic class 0-7; default 0. */
  tc?: number;
  /** 1-255; default 64. */
  ttl?: number;
}

export interface FlowAttributes {
  dscp?: number;
  pcp?: number;
  vlanPush?: VlanPush;
  vlanPop?: boolean;
  mplsPush?: MplsPush;
  mplsPop?: boolean;
  /** Seconds without a packet before a flow installed by this rule ends. */
  idleTimeoutS?: number;
}

/** FLOW: send traffic matching the pattern to that end system, with these actions. Wins over load-based selection. */
export interface FlowMsg {
  type: "flow";
  op: "add" | "withdraw";
  pattern: FlowPattern;
  /** The end system the matching traffic goes to. */
  endSystem: string;
  attributes: FlowAttributes;
}

/** REGISTER: an end system asks the supervisor to be admitted. */
export interface RegisterMsg {
  type: "register";
  requestId: number;
  endSystem: string;
  addresses: string[];
  services: ServiceOffer[];
}

export interface RegisterReplyMsg {
  type: "register-reply";
  requestId: number;
  endSystem: string;
  status: "accepted" | "refused";
  /** Required when refused, absent otherwise. */
  reason?: string;
  /** The advertisement interval the end system is to use. */
  intervalMs: number;
}

/** SERVER-LIST request: which servers serve this service? */
export interface ServerListRequestMsg {
  type: "server-list-request";
  requestId: number;
  service: ServiceKey;
  /** Index of the first server wanted, for lists longer than one reply. */
  offset: number;
}

export interface ServerEntry {
  endSystem: string;
  addresses: string[];
  state: ServerState;
  weight: number;
  capacity: number;
}

export interface ServerListReplyMsg {
  type: "server-list-reply";
  requestId: number;
  service: ServiceKey;
  /** Servers in the whole list; offset + servers.length <= total. */
  total: number;
  offset: number;
  servers: ServerEntry[];
}

/** NUMBER request: lease numbers from a pool shared by servers acting as one logical host. */
export interface NumberRequestMsg {
  type: "number-request";
  requestId: number;
  endSystem: string;
  pool: string;
  op: "lease" | "renew" | "release";
  /** lease: how many consecutive numbers. */
  count?: number;
  /** renew, release: the lease. */
  leaseId?: number;
  /** lease, renew: seconds wanted; the authority may grant less. */
  leaseS?: number;
}

export interface NumberGrantMsg {
  type: "number-grant";
  requestId: number;
  endSystem: string;
  pool: string;
  status: "granted" | "renewed" | "released" | "refused";
  /** granted, renewed, released. */
  leaseId?: number;
  /** granted, renewed: numbers first .. first + count - 1. */
  first?: number;
  count?: number;
  /** granted, renewed: seconds from now until the lease ends unless renewed. */
  leaseS?: number;
  /** refused: why. */
  reason?: string;
}

export type Message =
  | ServiceMsg
  | LoadMsg
  | FlowMsg
  | RegisterMsg
  | RegisterReplyMsg
  | ServerListRequestMsg
  | ServerListReplyMsg
  | NumberRequestMsg
  | NumberGrantMsg;

export type MessageType = Message["type"];

export const MESSAGE_TYPES: readonly MessageType[] = [
  "service",
  "load",
  "flow",
  "register",
  "register-reply",
  "server-list-request",
  "server-list-reply",
  "number-request",
  "number-grant",
];

export type AuthKey = EnvelopeKey;

export type DecodeFailure = EnvelopeFailure;

export type DecodeResult = Opened<Message>;

// ---------------------------------------------------------------------------------------------
// Encode / decode

const ENVELOPE = new Envelope<Message>({ version: PROTOCOL_VERSION, maxBytes: MAX_DATAGRAM_BYTES, message });

/**
 * Encodes and signs one message. The message is validated first: an invalid message, sender,
 * sequence number, time or key, or a datagram over MAX_DATAGRAM_BYTES, is the caller's bug and
 * throws a RangeError naming the field, so nothing leaves the box that a peer would refuse.
 */
export function encode(msg: Message, key: AuthKey, seq: number, now: number, sender: string): Uint8Array {
  return ENVELOPE.encode(msg, key, seq, now, sender);
}

/** Verifies and decodes one datagram. Never throws. */
export function decode(bytes: Uint8Array, keys: ReadonlyMap<number, Uint8Array>): DecodeResult {
  return ENVELOPE.decode(bytes, keys);
}

/** Checks a message as decode() would, without an envelope; for callers holding one in memory. */
export function validateMessage(value: unknown): { ok: true; msg: Message } | { ok: false; path: string; detail: string } {
  const r = validate(() => message(value, "msg"));
  return r.ok ? { ok: true, msg: r.value } : r;
}

// ---------------------------------------------------------------------------------------------
// Validation. Each checker returns a fresh, normalized value (only known fields, no undefined)
// or throws FieldError (host/wire/fields.ts), which validate() turns into a result.

/** The 4 or 16 bytes of an IP address in the forms net.isIP accepts, without a zone; null if not one. */
export function ipBytes(s: string): Uint8Array | null {
  const family = isIP(s);
  if (family === 4) return Uint8Array.from(s.split(".").map(Number));
  if (family !== 6 || s.includes("%")) return null;
  let t = s;
  if (t.includes(".")) {
    const cut = t.lastIndexOf(":") + 1;
    const q = t.slice(cut).split(".").map(Number);
    t = `${t.slice(0, cut)}${((q[0]! << 8) | q[1]!).toString(16)}:${((q[2]! << 8) | q[3]!).toString(16)}`;
  }
  const [head, tail] = t.includes("::") ? t.split("::") : [t, undefined];
  const groups = (p: string | undefined): string[] => (p === undefined || p === "" ? [] : p.split(":"));
  const h = groups(head);
  const tl = groups(tail);
  const all = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - tl.length).fill("0"), ...tl];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    const n = parseInt(g, 16);
    out[2 * i] = n >> 8;
    out[2 * i + 1] = n & 0xff;
  });
  return out;
}

/** A unicast address: not unspecified, not multicast, not IPv4 broadcast. */
function address(v: unknown, path: string): string {
  if (typeof v !== "string" || v.length > 45) throw new FieldError(path, "must be an IPv4 or IPv6 address");
  const b = ipBytes(v);
  if (b === null) throw new FieldError(path, `${JSON.stringify(v)} is not an IPv4 or IPv6 address`);
  if (b.every((x) => x === 0)) throw new FieldError(path, "must not be the unspecified address");
  if (b.length === 4 ? b[0]! >= 224 : b[0] === 0xff) throw new FieldError(path, "must be a unicast address");
  return v;
}

function prefix(v: unknown, path: string): { text: string; family: 4 | 6 } {
  if (typeof v !== "string" || v.length > 49) throw new FieldError(path, "must be a prefix like 10.0.0.0/8");
  const slash = v.indexOf("/");
  const b = slash < 0 ? null : ipBytes(v.slice(0, slash));
  const lenText = slash < 0 ? "" : v.slice(slash + 1);
  if (b === null || !/^\d{1,3}$/.test(lenText)) throw new FieldError(path, `${JSON.stringify(v)} is not a prefix like 10.0.0.0/8`);
  const len = Number(lenText);
  if (len > b.length * 8) throw new FieldError(path, `prefix length ${len} is over ${b.length * 8}`);
  for (let bit = len; bit < b.length * 8; bit++) {
    if ((b[bit >> 3]! >> (7 - (bit & 7))) & 1) throw new FieldError(path, `host bits are set beyond /${len}`);
  }
  return { text: v, family: b.length === 4 ? 4 : 6 };
}

function family(addr: string): 4 | 6 {
  return isIP(addr) === 4 ? 4 : 6;
}

function serviceKey(v: unknown, path: string, extra: readonly string[] = []): ServiceKey {
  const o = record(v, path, ["vip", "protocol", "port", ...extra]);
  const protocol = int(need(o, "protocol", path), `${path}.protocol`, 0, 255);
  if (!(PORT_PROTOCOLS as readonly number[]).includes(protocol)) throw new FieldError(`${path}.protocol`, "must be 6 (tcp), 17 (udp) or 132 (sctp)");
  return {
    vip: address(need(o, "vip", path), `${path}.vip`),
    protocol,
    port: int(need(o, "port", path), `${path}.port`, 0, 0xffff),
  };
}

function serviceOffer(v: unknown, path: string): ServiceOffer {
  const key = serviceKey(v, path, ["weight", "capacity"]);
  const o = v as Fields;
  return {
    ...key,
    weight: int(need(o, "weight", path), `${path}.weight`, 0, 0xffff),
    capacity: int(need(o, "capacity", path), `${path}.capacity`, 0, LIMITS.u32),
  };
}

function services(v: unknown, path: string): ServiceOffer[] {
  const out = list(v, path, 0, LIMITS.services, serviceOffer);
  const seen = new Set<string>();
  out.forEach((s, i) => {
    const k = `${s.vip}|${s.protocol}|${s.port}`;
    if (seen.has(k)) throw new FieldError(`${path}[${i}]`, "the same service appears twice");
    seen.add(k);
  });
  return out;
}

function addresses(v: unknown, path: string): string[] {
  return list(v, path, 1, LIMITS.addresses, address);
}

function portRange(v: unknown, path: string): PortRange {
  const o = record(v, path, ["first", "last"]);
  const first = int(need(o, "first", path), `${path}.first`, 0, 0xffff);
  const last = int(need(o, "last", path), `${path}.last`, 0, 0xffff);
  if (last < first) throw new FieldError(`${path}.last`, `${last} is below first ${first}`);
  return { first, last };
}

function flowPattern(v: unknown, path: string): FlowPattern {
  const o = record(v, path, ["source", "protocol", "vip", "srcPorts", "dstPorts"]);
  const out: FlowPattern = { vip: address(need(o, "vip", path), `${path}.vip`) };
  if (present(o, "source")) {
    const p = prefix(o.source, `${path}.source`);
    if (p.family !== family(out.vip)) throw new FieldError(`${path}.source`, "must be of the VIP's address family");
    out.source = p.text;
  }
  if (present(o, "protocol")) out.protocol = int(o.protocol, `${path}.protocol`, 0, 255);
  for (const k of ["srcPorts", "dstPorts"] as const) {
    if (!present(o, k)) continue;
    if (out.protocol === undefined || !(PORT_PROTOCOLS as readonly number[]).includes(out.protocol)) {
      throw new FieldError(`${path}.protocol`, `${k} needs protocol 6 (tcp), 17 (udp) or 132 (sctp)`);
    }
    out[k] = portRange(o[k], `${path}.${k}`);
  }
  return out;
}

function flowAttributes(v: unknown, path: string): FlowAttributes {
  const o = record(v, path, ["dscp", "pcp", "vlanPush", "vlanPop", "mplsPush", "mplsPop", "idleTimeoutS"]);
  const out: FlowAttributes = {};
  if (present(o, "dscp")) out.dscp = int(o.dscp, `${path}.dscp`, 0, 63);
  if (present(o, "pcp")) out.pcp = int(o.pcp, `${path}.pcp`, 0, 7);
  if (present(o, "vlanPush")) {
    const p = `${path}.vlanPush`;
    const t = record(o.vlanPush, p, ["vid", "pcp"]);
    out.vlanPush = { vid: int(need(t, "vid", p), `${p}.vid`, 1, 4094) };
    if (present(t, "pcp")) out.vlanPush.pcp = int(t.pcp, `${p}.pcp`, 0, 7);
  }
  if (present(o, "vlanPop")) out.vlanPop = bool(o.vlanPop, `${path}.vlanPop`);
  if (present(o, "mplsPush")) {
    const p = `${path}.mplsPush`;
    const t = record(o.mplsPush, p, ["label", "tc", "ttl"]);
    out.mplsPush = { label: int(need(t, "label", p), `${p}.label`, 0, 1_048_575) };
    if (present(t, "tc")) out.mplsPush.tc = int(t.tc, `${p}.tc`, 0, 7);
    if (present(t, "ttl")) out.mplsPush.ttl = int(t.ttl, `${p}.ttl`, 1, 255);
  }
  if (present(o, "mplsPop")) out.mplsPop = bool(o.mplsPop, `${path}.mplsPop`);
  if (present(o, "idleTimeoutS")) out.idleTimeoutS = int(o.idleTimeoutS, `${path}.idleTimeoutS`, LIMITS.idleTimeoutS.min, LIMITS.idleTimeoutS.max);
  return out;
}

function serverEntry(v: unknown, path: string): ServerEntry {
  const o = record(v, path, ["endSystem", "addresses", "state", "weight", "capacity"]);
  return {
    endSystem: id(need(o, "endSystem", path), `${path}.endSystem`),
    addresses: addresses(need(o, "addresses", path), `${path}.addresses`),
    state: oneOf(need(o, "state", path), `${path}.state`, ["up", "draining", "leaving"] as const),
    weight: int(need(o, "weight", path), `${path}.weight`, 0, 0xffff),
    capacity: int(need(o, "capacity", path), `${path}.capacity`, 0, LIMITS.u32),
  };
}

/** Requires the fields named in `required`, forbids the other optional ones. */
function onlyWhen(o: Fields, path: string, why: string, required: readonly string[], forbidden: readonly string[]): void {
  for (const k of required) need(o, k, path);
  for (const k of forbidden) if (present(o, k)) throw new FieldError(`${path}.${k}`, `not allowed when ${why}`);
}

function message(v: unknown, p: string): Message {
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw new FieldError(p, "must be a map");
  const type = oneOf((v as Fields).type, `${p}.type`, MESSAGE_TYPES);
  const f = (k: string): string => `${p}.${k}`;
  switch (type) {
    case "service": {
      const o = record(v, p, ["type", "endSystem", "addresses", "state", "intervalMs", "services"]);
      return {
        type,
        endSystem: id(need(o, "endSystem", p), f("endSystem")),
        addresses: addresses(need(o, "addresses", p), f("addresses")),
        state: oneOf(need(o, "state", p), f("state"), ["up", "draining", "leaving"] as const),
        intervalMs: int(need(o, "intervalMs", p), f("intervalMs"), LIMITS.intervalMs.min, LIMITS.intervalMs.max),
        services: services(need(o, "services", p), f("services")),
      };
    }
    case "load": {
      const o = record(v, p, ["type", "endSystem", "cpu", "connections", "responseTimeUs"]);
      return {
        type,
        endSystem: id(need(o, "endSystem", p), f("endSystem")),
        cpu: int(need(o, "cpu", p), f("cpu"), 0, 100),
        connections: int(need(o, "connections", p), f("connections"), 0, LIMITS.u32),
        responseTimeUs: int(need(o, "responseTimeUs", p), f("responseTimeUs"), 0, LIMITS.u32),
      };
    }
    case "flow": {
      const o = record(v, p, ["type", "op", "pattern", "endSystem", "attributes"]);
      return {
        type,
        op: oneOf(need(o, "op", p), f("op"), ["add", "withdraw"] as const),
        pattern: flowPattern(need(o, "pattern", p), f("pattern")),
        endSystem: id(need(o, "endSystem", p), f("endSystem")),
        attributes: flowAttributes(need(o, "attributes", p), f("attributes")),
      };
    }
    case "register": {
      const o = record(v, p, ["type", "requestId", "endSystem", "addresses", "services"]);
      return {
        type,
        requestId: int(need(o, "requestId", p), f("requestId"), 0, LIMITS.u32),
        endSystem: id(need(o, "endSystem", p), f("endSystem")),
        addresses: addresses(need(o, "addresses", p), f("addresses")),
        services: services(need(o, "services", p), f("services")),
      };
    }
    case "register-reply": {
      const o = record(v, p, ["type", "requestId", "endSystem", "status", "reason", "intervalMs"]);
      const status = oneOf(need(o, "status", p), f("status"), ["accepted", "refused"] as const);
      onlyWhen(o, p, `status is ${status}`, status === "refused" ? ["reason"] : [], status === "refused" ? [] : ["reason"]);
      const out: RegisterReplyMsg = {
        type,
        requestId: int(need(o, "requestId", p), f("requestId"), 0, LIMITS.u32),
        endSystem: id(need(o, "endSystem", p), f("endSystem")),
        status,
        intervalMs: int(need(o, "intervalMs", p), f("intervalMs"), LIMITS.intervalMs.min, LIMITS.intervalMs.max),
      };
      if (status === "refused") out.reason = text(o.reason, f("reason"), LIMITS.reasonLength);
      return out;
    }
    case "server-list-request": {
      const o = record(v, p, ["type", "requestId", "service", "offset"]);
      return {
        type,
        requestId: int(need(o, "requestId", p), f("requestId"), 0, LIMITS.u32),
        service: serviceKey(need(o, "service", p), f("service")),
        offset: int(need(o, "offset", p), f("offset"), 0, LIMITS.u32),
      };
    }
    case "server-list-reply": {
      const o = record(v, p, ["type", "requestId", "service", "total", "offset", "servers"]);
      const out: ServerListReplyMsg = {
        type,
        requestId: int(need(o, "requestId", p), f("requestId"), 0, LIMITS.u32),
        service: serviceKey(need(o, "service", p), f("service")),
        total: int(need(o, "total", p), f("total"), 0, LIMITS.u32),
        offset: int(need(o, "offset", p), f("offset"), 0, LIMITS.u32),
        servers: list(need(o, "servers", p), f("servers"), 0, LIMITS.servers, serverEntry),
      };
      if (out.offset + out.servers.length > out.total) throw new FieldError(f("total"), `${out.total} is less than offset + servers (${out.offset + out.servers.length})`);
      return out;
    }
    case "number-request": {
      const o = record(v, p, ["type", "requestId", "endSystem", "pool", "op", "count", "leaseId", "leaseS"]);
      const op = oneOf(need(o, "op", p), f("op"), ["lease", "renew", "release"] as const);
      const why = `op is ${op}`;
      if (op === "lease") onlyWhen(o, p, why, ["count", "leaseS"], ["leaseId"]);
      else if (op === "renew") onlyWhen(o, p, why, ["leaseId", "leaseS"], ["count"]);
      else onlyWhen(o, p, why, ["leaseId"], ["count", "leaseS"]);
      const out: NumberRequestMsg = {
        type,
        requestId: int(need(o, "requestId", p), f("requestId"), 0, LIMITS.u32),
        endSystem: id(need(o, "endSystem", p), f("endSystem")),
        pool: id(need(o, "pool", p), f("pool")),
        op,
      };
      if (present(o, "count")) out.count = int(o.count, f("count"), 1, LIMITS.numberCount);
      if (present(o, "leaseId")) out.leaseId = int(o.leaseId, f("leaseId"), 1, Number.MAX_SAFE_INTEGER);
      if (present(o, "leaseS")) out.leaseS = int(o.leaseS, f("leaseS"), LIMITS.leaseS.min, LIMITS.leaseS.max);
      return out;
    }
    case "number-grant": {
      const o = record(v, p, ["type", "requestId", "endSystem", "pool", "status", "leaseId", "first", "count", "leaseS", "reason"]);
      const status = oneOf(need(o, "status", p), f("status"), ["granted", "renewed", "released", "refused"] as const);
      const why = `status is ${status}`;
      if (status === "granted" || status === "renewed") onlyWhen(o, p, why, ["leaseId", "first", "count", "leaseS"], ["reason"]);
      else if (status === "released") onlyWhen(o, p, why, ["leaseId"], ["first", "count", "leaseS", "reason"]);
      else onlyWhen(o, p, why, ["reason"], ["leaseId", "first", "count", "leaseS"]);
      const out: NumberGrantMsg = {
        type,
        requestId: int(need(o, "requestId", p), f("requestId"), 0, LIMITS.u32),
        endSystem: id(need(o, "endSystem", p), f("endSystem")),
        pool: id(need(o, "pool", p), f("pool")),
        status,
      };
      if (present(o, "leaseId")) out.leaseId = int(o.leaseId, f("leaseId"), 1, Number.MAX_SAFE_INTEGER);
      if (present(o, "first")) out.first = int(o.first, f("first"), 0, LIMITS.u32);
      if (present(o, "count")) {
        out.count = int(o.count, f("count"), 1, LIMITS.numberCount);
        if (out.first! + out.count - 1 > LIMITS.u32) throw new FieldError(f("count"), `first + count - 1 is over ${LIMITS.u32}`);
      }
      if (present(o, "leaseS")) out.leaseS = int(o.leaseS, f("leaseS"), LIMITS.leaseS.min, LIMITS.leaseS.max);
      if (present(o, "reason")) out.reason = text(o.reason, f("reason"), LIMITS.reasonLength);
      return out;
    }
  }
}
