// A site's load figures for its system appliances: one entry per VIP it serves and one per
// configured virtual subnet, each the aggregate (levels.aggregate) of its servers' utilisations.
//
// Only members that can take new flows (usable: up, healthy, not draining) make the load: the
// system asks "how busy would a new flow's server be here?", and a draining or failed server takes
// none. A VIP with no usable member reports members 0 and load 0: the system sends it no new flows
// (no-servers), whatever the load figure says. Flows count every member's flows, usable or not:
// the site still carries a draining server's connections.
//
// A server in two services of one VIP (port 80 and 443) is two members: the figures are per
// service membership, as the site's own selection sees them.

import type { Address, LevelsAggregate, Prefix } from "../config/schema.js";
import { LEVELS_LIMITS, type LoadEntry } from "./protocol.js";
import { canonical, contains, hostPrefix, prefixKey } from "./prefix.js";

/** One figure out of many; no values at all is 0. Median of an even count: the mean of the middle two. */
export function aggregate(fn: LevelsAggregate, values: readonly number[]): number {
  if (values.length === 0) return 0;
  switch (fn) {
    case "sum":
      return values.reduce((a, b) => a + b, 0);
    case "mean":
      return values.reduce((a, b) => a + b, 0) / values.length;
    case "max":
      return values.reduce((a, b) => Math.max(a, b)); // not Math.max(...): no argument-count limit
    case "min":
      return values.reduce((a, b) => Math.min(a, b));
    case "median": {
      const s = [...values].sort((a, b) => a - b);
      const mid = s.length >> 1;
      return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
    }
  }
}

export interface MemberLoad {
  /** Utilisation, 1 = 100%. Not a finite number >= 0: counted as 0. */
  load: number;
  /** Takes new flows now. */
  usable: boolean;
  /** Flows it carries now. */
  flows: number;
}

export interface ServiceLoad {
  vip: Address;
  members: readonly MemberLoad[];
}

interface Sum {
  prefix: string;
  loads: number[];
  flows: number;
}

/**
 * The entries of one update: every distinct VIP (as /32 or /128, in order of first appearance),
 * then every configured subnet not already reported (a /32 subnet equal to a VIP is that VIP).
 */
export function siteLoadEntries(services: readonly ServiceLoad[], subnets: readonly Prefix[], fn: LevelsAggregate): LoadEntry[] {
  const byVip = new Map<string, Sum>();
  for (const s of services) {
    const p = hostPrefix(s.vip);
    const k = prefixKey(p.family, p.bytes, p.length);
    let sum = byVip.get(k);
    if (!sum) byVip.set(k, (sum = { prefix: p.text, loads: [], flows: 0 }));
    add(sum, s.members);
  }
  const out = [...byVip.values()].map((s) => entry(s, fn));
  const seen = new Set(byVip.keys());
  for (const sub of subnets) {
    const p = canonical(sub);
    const k = prefixKey(p.family, p.bytes, p.length);
    if (seen.has(k)) continue;
    seen.add(k);
    const sum: Sum = { prefix: p.text, loads: [], flows: 0 };
    for (const s of services) if (contains(p, s.vip)) add(sum, s.members);
    out.push(entry(sum, fn));
  }
  return out;
}

function add(sum: Sum, members: readonly MemberLoad[]): void {
  for (const m of members) {
    sum.flows += Number.isSafeInteger(m.flows) && m.flows > 0 ? m.flows : 0;
    if (m.usable) sum.loads.push(Number.isFinite(m.load) && m.load > 0 ? m.load : 0);
  }
}

function entry(s: Sum, fn: LevelsAggregate): LoadEntry {
  return {
    prefix: s.prefix,
    load: Math.min(aggregate(fn, s.loads), LEVELS_LIMITS.load),
    members: Math.min(s.loads.length, LEVELS_LIMITS.u32),
    flows: Math.min(s.flows, Number.MAX_SAFE_INTEGER),
  };
}
