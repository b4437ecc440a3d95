// The number authority's lease semantics (docs/advertisement-protocol.md, "The number authority:
// lease semantics"), in memory and without I/O: the supervisor saves state() to its LeaseStore
// before it sends any answer that apply() says changed it.
//
//   active    granted and neither expired nor released: its numbers belong to its holder.
//   held      expired or released: its numbers are held back for holdS more seconds (the longest
//             lease time ever granted for it), so a holder whose clock or network lagged has
//             stopped using them before anyone else gets them.
//   free      past the hold-back: the record is dropped and its numbers can be granted again.
//
// A renewal never shortens a lease (endsAt only moves later), so a holder that missed the
// answer to a renewal never believes in a longer lease than the authority keeps. Lease ids only
// grow, and the next one is part of the saved state.
//
// Trade-offs: blocks are placed lowest-first, which reuses numbers as soon as their hold-back
// ends (predictable, and the hold-back is what makes reuse safe); the authority keeps at most
// MAX_LEASES records (held ones included), which bounds the store and the time of a save.

import type { NumberGrantMsg, NumberRequestMsg } from "./protocol.js";
import type { LeaseRecord, LeaseState } from "./lease-store.js";

/** Lease records kept at most, active and held back: bounds the store file (about 200 bytes each) and every save. */
export const MAX_LEASES = 16_384;

export interface PoolConfig {
  name: string;
  first: number;
  last: number;
  /** Longest lease granted; a longer request gets this much. */
  maxLeaseS: number;
}

export type NumberRefusal = "unknown-pool" | "exhausted" | "not-your-lease";

export interface Decision {
  answer: NumberGrantMsg;
  /** The state changed: save it before sending the answer. */
  changed: boolean;
  refusal?: NumberRefusal;
  /** One line for the log when something happened to a lease. */
  event?: string;
}

export interface LeaseView extends LeaseRecord {
  state: "active" | "held";
  /** Local clock, ms: when the numbers are free again (held), or at the earliest (active). */
  freeAt: number;
}

export interface PoolUse {
  name: string;
  first: number;
  last: number;
  maxLeaseS: number;
  size: number;
  /** Numbers in active leases. */
  used: number;
  /** Numbers of ended leases, not yet grantable. */
  heldBack: number;
  free: number;
  leases: number;
}

const key = (endSystem: string, requestId: number): string => `${endSystem}\u0000${requestId}`;

export class NumberAuthority {
  private pools = new Map<string, PoolConfig>();
  private readonly table = new Map<number, LeaseRecord>();
  /** (endSystem, requestId) of each lease's last request -> lease id, to answer a retry after a restart. */
  private readonly byRequest = new Map<string, number>();
  /** Leases whose expiry has been reported. */
  private readonly expiredNoted = new Set<number>();
  private nextLeaseId: number;

  constructor(pools: readonly PoolConfig[], saved: LeaseState | undefined) {
    this.setPools(pools);
    this.nextLeaseId = saved?.nextLeaseId ?? 1;
    for (const l of saved?.leases ?? []) this.put({ ...l, lastRequest: { ...l.lastRequest } });
  }

  setPools(pools: readonly PoolConfig[]): void {
    this.pools = new Map(pools.map((p) => [p.name, { ...p }]));
  }

  /** What the store must hold. */
  state(): LeaseState {
    return { nextLeaseId: this.nextLeaseId, leases: [...this.table.values()].map((l) => ({ ...l, lastRequest: { ...l.lastRequest } })) };
  }

  /**
   * The answer last given to this request, if it changed a lease the authority still keeps and
   * matches op and pool: a retry of a request whose answer was lost, even across a restart.
   */
  repeat(m: NumberRequestMsg): NumberGrantMsg | undefined {
    const id = this.byRequest.get(key(m.endSystem, m.requestId));
    const l = id === undefined ? undefined : this.table.get(id);
    if (!l || l.lastRequest.op !== m.op || l.pool !== m.pool || l.endSystem !== m.endSystem) return undefined;
    return answerFor(l, m.requestId);
  }

  apply(m: NumberRequestMsg, now: number): Decision {
    this.sweep(now);
    const refuse = (refusal: NumberRefusal, reason: string): Decision => ({
      answer: { type: "number-grant", requestId: m.requestId, endSystem: m.endSystem, pool: m.pool, status: "refused", reason: reason.slice(0, 200) },
      changed: false,
      refusal,
    });
    const pool = this.pools.get(m.pool);
    if (!pool) return refuse("unknown-pool", `unknown pool ${m.pool}`);

    if (m.op === "lease") {
      const count = m.count!;
      const leaseS = Math.min(m.leaseS!, pool.maxLeaseS);
      if (this.table.size >= MAX_LEASES) return refuse("exhausted", `the authority keeps its most leases (${MAX_LEASES}); try later`);
      const first = this.place(pool, count);
      if (first === undefined) {
        const u = this.use(pool, now);
        return refuse("exhausted", `pool ${pool.name} has no ${count} consecutive free numbers (free ${u.free}, held back ${u.heldBack})`);
      }
      const l: LeaseRecord = {
        leaseId: this.nextLeaseId++, pool: pool.name, endSystem: m.endSystem, first, count, leaseS, holdS: leaseS,
        endsAt: now + leaseS * 1000, released: false, lastRequest: { requestId: m.requestId, op: "lease" },
      };
      this.put(l);
      return { answer: answerFor(l, m.requestId), changed: true, event: `lease ${l.leaseId} of pool ${pool.name}: ${range(l)} to ${l.endSystem} for ${leaseS} s` };
    }

    const l = this.table.get(m.leaseId!);
    const why = !l ? "unknown" : l.endSystem !== m.endSystem ? "someone else's" : l.pool !== m.pool ? `of pool ${l.pool}` : l.released ? "released" : now >= l.endsAt ? "expired" : undefined;
    if (!l || why) return refuse("not-your-lease", `lease ${m.leaseId} is not held by ${m.endSystem} in pool ${m.pool} (${why})`);
    this.byRequest.delete(key(l.endSystem, l.lastRequest.requestId));
    if (m.op === "renew") {
      const leaseS = Math.min(m.leaseS!, pool.maxLeaseS);
      l.endsAt = Math.max(l.endsAt, now + leaseS * 1000);
      l.leaseS = leaseS;
      l.holdS = Math.max(l.holdS, leaseS);
      l.lastRequest = { requestId: m.requestId, op: "renew" };
      this.byRequest.set(key(l.endSystem, m.requestId), l.leaseId);
      return { answer: answerFor(l, m.requestId), changed: true, event: `lease ${l.leaseId} of pool ${pool.name} (${range(l)}) renewed by ${l.endSystem} for ${leaseS} s` };
    }
    l.released = true;
    l.endsAt = now;
    l.lastRequest = { requestId: m.requestId, op: "release" };
    this.byRequest.set(key(l.endSystem, m.requestId), l.leaseId);
    return { answer: answerFor(l, m.requestId), changed: true, event: `lease ${l.leaseId} of pool ${pool.name} (${range(l)}) released by ${l.endSystem}, held back ${l.holdS} s` };
  }

  /** Drops leases past their hold-back; returns a line per lease that expired or became free. */
  sweep(now: number): string[] {
    const events: string[] = [];
    for (const l of this.table.values()) {
      if (now >= l.endsAt + l.holdS * 1000) {
        this.table.delete(l.leaseId);
        this.byRequest.delete(key(l.endSystem, l.lastRequest.requestId));
        this.expiredNoted.delete(l.leaseId);
        events.push(`lease ${l.leaseId} of pool ${l.pool} (${range(l)}): hold-back over, numbers free`);
      } else if (!l.released && now >= l.endsAt && !this.expiredNoted.has(l.leaseId)) {
        this.expiredNoted.add(l.leaseId);
        events.push(`lease ${l.leaseId} of pool ${l.pool} (${range(l)}) of ${l.endSystem} expired, held back ${l.holdS} s`);
      }
    }
    return events;
  }

  leases(now: number): LeaseView[] {
    return [...this.table.values()]
      .sort((a, b) => (a.pool < b.pool ? -1 : a.pool > b.pool ? 1 : a.first - b.first))
      .map((l) => {
        const active = !l.released && now < l.endsAt;
        return { ...l, lastRequest: { ...l.lastRequest }, state: active ? "active" : "held", freeAt: l.endsAt + l.holdS * 1000 };
      });
  }

  usage(now: number): PoolUse[] {
    return [...this.pools.values()].map((p) => this.use(p, now));
  }

  private use(p: PoolConfig, now: number): PoolUse {
    const size = p.last - p.first + 1;
    let used = 0;
    let heldBack = 0;
    let leases = 0;
    for (const l of this.table.values()) {
      if (l.pool !== p.name) continue;
      const n = Math.max(0, Math.min(p.last, l.first + l.count - 1) - Math.max(p.first, l.first) + 1);
      if (!l.released && now < l.endsAt) used += n;
      else heldBack += n;
      leases++;
    }
    return { name: p.name, first: p.first, last: p.last, maxLeaseS: p.maxLeaseS, size, used, heldBack, free: size - used - heldBack, leases };
  }

  /** The lowest start of `count` numbers of the pool that no kept lease of the pool touches. */
  private place(p: PoolConfig, count: number): number | undefined {
    const taken = [...this.table.values()].filter((l) => l.pool === p.name).sort((a, b) => a.first - b.first);
    let at = p.first;
    for (const l of taken) {
      if (l.first + l.count - 1 < at) continue;
      if (l.first - at >= count) break;
      at = l.first + l.count;
    }
    return at + count - 1 <= p.last ? at : undefined;
  }

  private put(l: LeaseRecord): void {
    this.table.set(l.leaseId, l);
    this.byRequest.set(key(l.endSystem, l.lastRequest.requestId), l.leaseId);
    if (l.leaseId >= this.nextLeaseId) this.nextLeaseId = l.leaseId + 1;
  }
}

/** The answer a lease's last request got. */
function answerFor(l: LeaseRecord, requestId: number): NumberGrantMsg {
  const base = { type: "number-grant", requestId, endSystem: l.endSystem, pool: l.pool } as const;
  if (l.lastRequest.op === "release") return { ...base, status: "released", leaseId: l.leaseId };
  return { ...base, status: l.lastRequest.op === "lease" ? "granted" : "renewed", leaseId: l.leaseId, first: l.first, count: l.count, leaseS: l.leaseS };
}

function range(l: LeaseRecord): string {
  return l.count === 1 ? `${l.first}` : `${l.first}-${l.first + l.count - 1}`;
}
