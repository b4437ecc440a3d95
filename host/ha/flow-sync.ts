// Flow state between the two appliances of a pair, in names rather than slot numbers: each box
// numbers its services, backends and rules by its own history of commits, so an entry is carried
// as (key, service, backend, rule, flags, ingress port, time left) and rebuilt with the receiving
// engine's numbers and the backend's current cookie there.
//
//   active:  engine event ring --exportEvent--> SyncFlow --(CBOR batches, acknowledged)--> standby
//            engine tables    --scanFlows----->           (bulk resync when a standby joins)
//   standby: SyncFlow --importFlow--> EV record --Engine.pushInstalls--> the engine the flow's
//            packets will reach (engineFor: the board's client-side hash on the key)
//
// Trade-off: a rule is matched by name; a flow whose rule the standby lacks keeps its backend but
// loses the rule's actions there (the rule's name is the same on both boxes when config sync runs).
import * as L from "../../assembly/layout.js";
import type { Engine } from "../engine/engine.js";

/** One flow entry as it travels: names, not slots. */
export interface SyncFlow {
  family: 4 | 6;
  /** The table key (FLOW4_KEY or FLOW6_KEY bytes). */
  key: Uint8Array;
  service: string;
  backend: string;
  /** The flow rule that chose it, if any. */
  rule?: string;
  /** FF_* flags (FF_VALID always set). */
  flags: number;
  /** Board port of the flow's first packet (NAT returns use it). */
  port: number;
  /** ms until it expires if nothing more is seen. */
  leftMs: number;
  /** EVK_NEW or EVK_CLOSING for events; EVK_INSTALL for a resync. */
  kind: number;
}

interface Names {
  config: unknown;
  services: Map<number, string>;
  backends: Map<number, string>;
  rules: string[];
  serviceSlot: Map<string, number>;
  backendSlot: Map<string, number>;
  ruleIndex: Map<string, number>;
}

const namesCache = new WeakMap<Engine, Names>();

/** The engine's numbering, rebuilt when its config changes (the engine's config object is replaced on apply). */
function names(engine: Engine): Names {
  const had = namesCache.get(engine);
  if (had && had.config === engine.config) return had;
  const services = engine.slots.services.names();
  const backends = engine.slots.backends.names();
  const rules = engine.config.flowRules.slice(0, L.MAX_FLOW_RULES).map((r) => r.name);
  const n: Names = {
    config: engine.config, services, backends, rules,
    serviceSlot: new Map([...services].map(([s, name]) => [name, s])),
    backendSlot: new Map([...backends].map(([s, name]) => [name, s])),
    ruleIndex: new Map(rules.map((r, i) => [r, i + 1])),
  };
  namesCache.set(engine, n);
  return n;
}

const keyBytes = (family: 4 | 6): number => (family === 6 ? L.FLOW6_KEY : L.FLOW4_KEY);

/** An entry (key then value bytes, as the table or an EV record holds it) in names; undefined if its slots name nothing now. */
function fromEntry(engine: Engine, entry: Uint8Array, family: 4 | 6, leftMs: number, kind: number): SyncFlow | undefined {
  const n = names(engine);
  const ko = keyBytes(family);
  const dv = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
  const service = n.services.get(dv.getUint16(ko + L.FV_SERVICE, true));
  const backend = n.backends.get(dv.getUint16(ko + L.FV_BACKEND, true));
  if (service === undefined || backend === undefined) return undefined;
  const ri = entry[ko + L.FV_RULE];
  const flow: SyncFlow = {
    family, key: entry.slice(0, ko), service, backend, flags: entry[ko + L.FV_FLAGS], port: entry[ko + L.FV_PORT], leftMs: Math.max(0, leftMs), kind,
  };
  const rule = ri ? n.rules[ri - 1] : undefined;
  if (rule !== undefined) flow.rule = rule;
  return flow;
}

/**
 * A flow entry read from the engine's tables (key then value bytes, e.g. findFlow's copy) in
 * names, as a peer or the pool's install() takes it; undefined if its slots name nothing now.
 */
export function flowOf(engine: Engine, family: 4 | 6, entry: Uint8Array, leftMs: number, kind: number): SyncFlow | undefined {
  return fromEntry(engine, entry, family, leftMs, kind);
}

/** A record of the engine's event ring, in names. */
export function exportEvent(engine: Engine, record: Uint8Array): SyncFlow | undefined {
  const family = record[L.EV_FAMILY] === 6 ? 6 : 4;
  const dv = new DataView(record.buffer, record.byteOffset, record.byteLength);
  const left = dv.getInt32(L.EV_LEFT, true); // wrap-safe difference written by the engine
  const size = family === 6 ? L.FLOW6_ENTRY : L.FLOW4_ENTRY;
  return fromEntry(engine, record.subarray(L.EV_ENTRY, L.EV_ENTRY + size), family, left, record[L.EV_KIND]);
}

/**
 * Every live entry of the engine's tables (forward and NAT return), for a bulk resync. Reads the
 * tables while the engine runs: an entry being moved by a cuckoo insert may be seen twice or
 * missed; the events of the same moment and the next resync make that good.
 */
export function scanFlows(engine: Engine, fn: (f: SyncFlow) => void): number {
  const mem = engine.bytes;
  const dv = new DataView(mem.buffer);
  const now = engine.clock;
  let n = 0;
  for (const t of [
    { family: 4 as const, base: engine.plan.flow4, buckets: engine.plan.flow4Buckets, es: L.FLOW4_ENTRY, ko: L.FLOW4_KEY },
    { family: 6 as const, base: engine.plan.flow6, buckets: engine.plan.flow6Buckets, es: L.FLOW6_ENTRY, ko: L.FLOW6_KEY },
  ]) {
    const entries = t.buckets * L.FLOW_WAYS;
    for (let i = 0, e = t.base; i < entries; i++, e += t.es) {
      if (!(mem[e + t.ko + L.FV_FLAGS] & L.FF_VALID)) continue;
      const left = (dv.getUint32(e + t.ko + L.FV_EXPIRES, true) - now) | 0;
      if (left <= 0) continue;
      const f = fromEntry(engine, mem.subarray(e, e + t.es), t.family, left, L.EVK_INSTALL);
      if (f) {
        fn(f);
        n++;
      }
    }
  }
  return n;
}

export type ImportResult = { ok: true; record: Uint8Array } | { ok: false; reason: "unknown-service" | "unknown-backend" | "bad-key" };

/** An EV_SIZE install record for `engine`: its slot numbers, the backend's cookie there, the rule's index. */
export function importFlow(engine: Engine, f: SyncFlow): ImportResult {
  const n = names(engine);
  const ko = keyBytes(f.family);
  if (f.key.length !== ko) return { ok: false, reason: "bad-key" };
  const svc = n.serviceSlot.get(f.service);
  if (svc === undefined) return { ok: false, reason: "unknown-service" };
  const be = n.backendSlot.get(f.backend);
  if (be === undefined) return { ok: false, reason: "unknown-backend" };
  const record = new Uint8Array(L.EV_SIZE);
  const dv = new DataView(record.buffer);
  record[L.EV_KIND] = L.EVK_INSTALL;
  record[L.EV_FAMILY] = f.family;
  dv.setUint32(L.EV_LEFT, Math.max(1, Math.min(f.leftMs, 0x7fffffff)), true);
  const v = L.EV_ENTRY + ko;
  record.set(f.key, L.EV_ENTRY);
  record[v + L.FV_FLAGS] = f.flags | L.FF_VALID;
  record[v + L.FV_PORT] = f.port;
  dv.setUint16(v + L.FV_SERVICE, svc, true);
  dv.setUint16(v + L.FV_BACKEND, be, true);
  dv.setUint16(v + L.FV_COOKIE, engine.slots.backends.cookie(be), true);
  record[v + L.FV_RULE] = f.rule !== undefined ? (n.ruleIndex.get(f.rule) ?? 0) : 0;
  return { ok: true, record };
}

/**
 * Which of n engines sees the packets of a flow with this key: the pool's client-side hash
 * (dispatch.ts) over the client's address and port. A forward key starts with the client
 * (src, dst, sport, dport); a NAT return key is (backend, client, backend port, client port).
 */
export function engineFor(f: SyncFlow, engines: number): number {
  if (engines <= 1) return 0;
  const alen = f.family === 6 ? 16 : 4;
  const reverse = (f.flags & L.FF_REVERSE) !== 0;
  const addrAt = reverse ? alen : 0;
  const portAt = 2 * alen + (reverse ? 2 : 0);
  const proto = f.key[2 * alen + 4];
  let h = 0x811c9dc5;
  for (let i = 0; i < alen; i++) h = Math.imul(h ^ f.key[addrAt + i], 0x01000193);
  if (proto === 6 || proto === 17) {
    h = Math.imul(h ^ f.key[portAt], 0x01000193);
    h = Math.imul(h ^ f.key[portAt + 1], 0x01000193);
  }
  return (h >>> 0) % engines;
}
