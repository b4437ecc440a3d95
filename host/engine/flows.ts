// Reads an engine's flow tables in place (show flows): live entries only, decoded with the layout.
// The engine keeps writing while we read; an entry read mid-update shows one packet's worth of
// staleness, which is all a display needs.
import * as L from "../../assembly/layout.js";
import { formatIPv4, formatIPv6 } from "../net/frame.js";
import type { Engine } from "./engine.js";

export interface FlowRow {
  family: 4 | 6;
  protocol: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  service: string;
  backend: string;
  /** A NAT return entry (server -> client). */
  reverse: boolean;
  closing: boolean;
  packets: number;
  /** Seconds until it expires if idle. */
  idleLeft: number;
}

export interface FlowFilter {
  service?: string;
  backend?: string;
  /** Matches the source or destination address. */
  address?: string;
  limit?: number;
}

export function readFlows(engine: Engine, filter: FlowFilter = {}): FlowRow[] {
  const out: FlowRow[] = [];
  const mem = engine.bytes;
  const dv = new DataView(mem.buffer);
  const now = engine.clock;
  const services = engine.slots.services.names();
  const backends = engine.slots.backends.names();
  const limit = filter.limit ?? Infinity;
  const tables = [
    { v6: false, base: engine.plan.flow4, buckets: engine.plan.flow4Buckets, es: L.FLOW4_ENTRY, ko: L.FLOW4_KEY },
    { v6: true, base: engine.plan.flow6, buckets: engine.plan.flow6Buckets, es: L.FLOW6_ENTRY, ko: L.FLOW6_KEY },
  ];
  for (const t of tables) {
    const entries = t.buckets * L.FLOW_WAYS;
    for (let i = 0; i < entries && out.length < limit; i++) {
      const e = t.base + i * t.es;
      const v = e + t.ko;
      const flags = mem[v + L.FV_FLAGS];
      if (!(flags & L.FF_VALID)) continue;
      const left = (dv.getUint32(v + L.FV_EXPIRES, true) - now) | 0;
      if (left <= 0) continue;
      const alen = t.v6 ? 16 : 4;
      const src = t.v6 ? formatIPv6(mem, e) : formatIPv4(mem, e);
      const dst = t.v6 ? formatIPv6(mem, e + alen) : formatIPv4(mem, e + alen);
      const row: FlowRow = {
        family: t.v6 ? 6 : 4,
        protocol: mem[e + 2 * alen + 4],
        src,
        sport: dv.getUint16(e + 2 * alen, false),
        dst,
        dport: dv.getUint16(e + 2 * alen + 2, false),
        service: services.get(dv.getUint16(v + L.FV_SERVICE, true)) ?? "?",
        backend: backends.get(dv.getUint16(v + L.FV_BACKEND, true)) ?? "?",
        reverse: (flags & L.FF_REVERSE) !== 0,
        closing: (flags & L.FF_CLOSING) !== 0,
        packets: dv.getUint32(v + L.FV_PACKETS, true) & L.FV_PACKETS_MASK, // the top byte is FV_RULE
        idleLeft: Math.ceil(left / 1000),
      };
      if (filter.service && row.service !== filter.service) continue;
      if (filter.backend && row.backend !== filter.backend) continue;
      if (filter.address && row.src !== filter.address && row.dst !== filter.address) continue;
      out.push(row);
    }
  }
  return out;
}

/**
 * Live forward flows per backend name, straight from the tables: no row is built, so a scan of a
 * million entries costs milliseconds. Reverse (NAT return) entries are not counted: each flow has
 * one forward entry.
 */
export function countFlowsByBackend(engine: Engine, into = new Map<string, number>()): Map<string, number> {
  const mem = engine.bytes;
  const dv = new DataView(mem.buffer);
  const now = engine.clock;
  const bySlot = new Map<number, number>();
  for (const t of [
    { base: engine.plan.flow4, buckets: engine.plan.flow4Buckets, es: L.FLOW4_ENTRY, ko: L.FLOW4_KEY },
    { base: engine.plan.flow6, buckets: engine.plan.flow6Buckets, es: L.FLOW6_ENTRY, ko: L.FLOW6_KEY },
  ]) {
    const entries = t.buckets * L.FLOW_WAYS;
    for (let i = 0, v = t.base + t.ko; i < entries; i++, v += t.es) {
      const flags = mem[v + L.FV_FLAGS];
      if (!(flags & L.FF_VALID) || flags & L.FF_REVERSE) continue;
      if (((dv.getUint32(v + L.FV_EXPIRES, true) - now) | 0) <= 0) continue;
      const slot = dv.getUint16(v + L.FV_BACKEND, true);
      bySlot.set(slot, (bySlot.get(slot) ?? 0) + 1);
    }
  }
  const names = engine.slots.backends.names();
  for (const [slot, n] of bySlot) {
    const name = names.get(slot);
    if (name !== undefined) into.set(name, (into.get(name) ?? 0) + n);
  }
  return into;
}
