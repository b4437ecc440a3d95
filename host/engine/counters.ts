// Names for the data plane's counters, and a snapshot read from an engine's memory in place (the
// engine keeps counting). Drop-reason names come from layout.ts, so a new reason needs no edit here.
import * as L from "../../assembly/layout.js";
import type { Config } from "../config/schema.js";
import type { RegionPlan } from "./memory-plan.js";
import { chainDevices, type Slots } from "./program.js";

/** Names for the layout's numbered constants with a prefix: DR_NO_VIP -> names[16] = "no_vip". */
function namesOf(prefix: string): readonly string[] {
  const names: string[] = [];
  for (const [k, v] of Object.entries(L)) {
    if (k.startsWith(prefix) && typeof v === "number") names[v] = k.slice(prefix.length).toLowerCase();
  }
  return names;
}

/** drop reason number -> name, e.g. 16 -> "no_vip". */
export const DROP_REASON_NAMES = namesOf("DR_");
/** punt reason number -> name, e.g. 1 -> "arp". */
export const PUNT_REASON_NAMES = namesOf("PUNT_");

export interface PortCounters {
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: number;
  punts: number;
}

export interface TrafficCounters {
  packets: number;
  bytes: number;
  newFlows: number;
}

export interface CounterSnapshot {
  rx: number;
  tx: number;
  punt: number;
  drop: number;
  drops: Record<string, number>;
  punts: Record<string, number>;
  flows: {
    ipv4: number;
    ipv6: number;
    inserts: number;
    insertFailed: number;
    expired: number;
    cuckooMoves: number;
    reselected: number;
    stateless: number;
    reused: number;
  };
  /** HA flow-state sync: events the engines reported (and lost), entries installed from the peer. */
  sync: { events: number; eventsLost: number; installed: number; installFailed: number };
  /** Multi-level routing: IP-in-IP to us opened (a site), mid-flow TCP punted to ask peers about. */
  levels: { decapsulated: number; recoverPunted: number };
  icmpSent: number;
  tcpResetsSent: number;
  ipv4Options: number;
  batches: number;
  ports: Record<string, PortCounters>;
  services: Record<string, TrafficCounters & { drops: number }>;
  backends: Record<string, TrafficCounters & { flowsLost: number }>;
  /** Per chain and hop: packets and bytes sent to the hop, and (inline hops) back from it. */
  chains: Record<string, Record<string, { toPackets: number; toBytes: number; fromPackets: number; fromBytes: number }>>;
  /** Per chain device: packets sent to it and (inline) returned by it. */
  devices: Record<string, { sent: number; returned: number }>;
  /** Per ACL table: new flows each rule decided, and those no rule matched (the default). */
  acls: Record<string, { rules: Record<string, number>; default: number }>;
}

export function readCounters(mem: ArrayBufferLike, plan: RegionPlan, config: Config, slots: Slots): CounterSnapshot {
  const words = new BigUint64Array(mem, plan.counters, plan.counterWords);
  const c = (i: number): number => Number(words[i]);
  const drops: Record<string, number> = {};
  for (let r = 1; r < L.DROP_REASONS; r++) {
    const n = c(L.C_DROP_BASE + r);
    if (n) drops[DROP_REASON_NAMES[r] ?? `reason_${r}`] = n;
  }
  const punts: Record<string, number> = {};
  for (let r = 1; r < L.PUNT_REASONS; r++) {
    const n = c(L.C_PUNT_REASON_BASE + r);
    if (n) punts[PUNT_REASON_NAMES[r] ?? `reason_${r}`] = n;
  }
  const ports: Record<string, PortCounters> = {};
  for (const p of config.ports) {
    const b = L.C_PORT_BASE + p.index * L.PORT_COUNTER_WORDS;
    ports[p.name] = {
      rxPackets: c(b + L.PC_RX_PACKETS), rxBytes: c(b + L.PC_RX_BYTES),
      txPackets: c(b + L.PC_TX_PACKETS), txBytes: c(b + L.PC_TX_BYTES),
      drops: c(b + L.PC_DROPS), punts: c(b + L.PC_PUNTS),
    };
  }
  const services: CounterSnapshot["services"] = {};
  for (const s of config.services) {
    const slot = slots.services.slot(s.name);
    if (slot === undefined) continue;
    const b = L.C_SERVICE_BASE + slot * L.SERVICE_COUNTER_WORDS;
    services[s.name] = { packets: c(b + L.SC_PACKETS), bytes: c(b + L.SC_BYTES), newFlows: c(b + L.SC_NEW_FLOWS), drops: c(b + L.SC_DROPS) };
  }
  const backends: CounterSnapshot["backends"] = {};
  for (const be of config.backends) {
    const slot = slots.backends.slot(be.name);
    if (slot === undefined) continue;
    const b = plan.backendCounterIndex + slot * L.BACKEND_COUNTER_WORDS;
    backends[be.name] = { packets: c(b + L.BC_PACKETS), bytes: c(b + L.BC_BYTES), newFlows: c(b + L.BC_NEW_FLOWS), flowsLost: c(b + L.BC_FLOWS_LOST) };
  }
  const x = plan.extraCounterIndex;
  const chains: CounterSnapshot["chains"] = {};
  config.chains.slice(0, L.MAX_CHAINS).forEach((ch, ci) => {
    chains[ch.name] = Object.fromEntries(ch.hops.slice(0, L.MAX_HOPS).map((h, hi) => {
      const b = x + L.XC_HOP_BASE + (ci * L.MAX_HOPS + hi) * L.XC_HOP_WORDS;
      return [h.name, { toPackets: c(b + L.HC_TO_PACKETS), toBytes: c(b + L.HC_TO_BYTES), fromPackets: c(b + L.HC_FROM_PACKETS), fromBytes: c(b + L.HC_FROM_BYTES) }];
    }));
  });
  const devices: CounterSnapshot["devices"] = {};
  chainDevices(config).forEach((d, i) => {
    devices[d.name] = { sent: c(x + L.XC_DEV_BASE + i * 2 + L.DC_SENT), returned: c(x + L.XC_DEV_BASE + i * 2 + L.DC_RETURNED) };
  });
  const acls: CounterSnapshot["acls"] = {};
  let rule = 0;
  config.acls.slice(0, L.MAX_ACL_TABLES).forEach((t, ti) => {
    const rules: Record<string, number> = {};
    for (const r of t.rules.slice(0, L.MAX_ACL_RULES - rule)) rules[r.name] = c(x + L.XC_ACL_BASE + rule++);
    acls[t.name] = { rules, default: c(x + L.XC_ACL_DEFAULT_BASE + ti) };
  });
  return {
    chains, devices, acls,
    rx: c(L.C_RX), tx: c(L.C_TX), punt: c(L.C_PUNT), drop: c(L.C_DROP), drops, punts,
    flows: {
      ipv4: c(L.C_FLOWS4), ipv6: c(L.C_FLOWS6), inserts: c(L.C_FLOW_INSERTS),
      insertFailed: c(L.C_FLOW_INSERT_FAILED), expired: c(L.C_FLOW_EXPIRED),
      cuckooMoves: c(L.C_FLOW_CUCKOO_MOVES), reselected: c(L.C_RESELECTED), stateless: c(L.C_STATELESS),
      reused: c(L.C_FLOW_REUSED),
    },
    sync: { events: c(L.C_FLOW_EVENTS), eventsLost: c(L.C_FLOW_EVENTS_LOST), installed: c(L.C_SYNC_INSTALLED), installFailed: c(L.C_SYNC_FAILED) },
    levels: { decapsulated: c(L.C_DECAPSULATED), recoverPunted: c(L.C_RECOVER_PUNTED) },
    icmpSent: c(L.C_ICMP_SENT), tcpResetsSent: c(L.C_TCP_RST_SENT), ipv4Options: c(L.C_IPV4_OPTIONS),
    batches: c(L.C_BATCHES), ports, services, backends,
  };
}

/** The identity every engine keeps: each frame taken in ended exactly once, for one reason. */
export function fateIdentityHolds(c: CounterSnapshot): boolean {
  const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);
  return c.rx === c.tx + c.punt + c.drop && c.drop === sum(c.drops) && c.punt === sum(c.punts);
}

/** Adds snapshots field by field (the engines of one box). */
export function sumCounters(list: readonly CounterSnapshot[]): CounterSnapshot {
  const add = (a: unknown, b: unknown): unknown => {
    if (typeof a === "number" || typeof b === "number") return ((a as number) ?? 0) + ((b as number) ?? 0);
    const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
    for (const [k, v] of Object.entries((b as Record<string, unknown>) ?? {})) out[k] = add(out[k], v);
    return out;
  };
  return list.slice(1).reduce((acc, c) => add(acc, c) as CounterSnapshot, list[0]);
}

/** Gauges: values that are levels, not totals, and are never subtracted. */
const GAUGES = new Set(["ipv4", "ipv6"]);

/** a - b field by field (counters since b), gauges taken from a. */
export function subtractCounters(a: CounterSnapshot, b: CounterSnapshot): CounterSnapshot {
  const sub = (x: unknown, y: unknown, key: string): unknown => {
    if (typeof x === "number") return GAUGES.has(key) ? x : Math.max(0, x - ((y as number) ?? 0));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x as Record<string, unknown>)) out[k] = sub(v, (y as Record<string, unknown> | undefined)?.[k], k);
    return out;
  };
  return sub(a, b, "") as CounterSnapshot;
}
