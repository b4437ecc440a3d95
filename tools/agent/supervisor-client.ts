// The agent's side of the supervisor (docs/advertisement-protocol.md, docs/supervisor.md):
//
//   REGISTER  at start, until accepted: resent every 1 s backing off to 30 s, the same requestId
//             each time (a new sequence number: the sender signs each datagram afresh). A
//             refusal is logged loudly and the request keeps being resent on the same schedule;
//             the agent advertises all along (an appliance does not need the supervisor). The
//             interval the supervisor answers is adopted.
//   NUMBER    each configured { pool, count, leaseS } is leased at start, renewed at half the
//             lease, and released on leave. A lease is counted from when its request was first
//             sent (the supervisor answers a retry with the same grant), and given up, with a
//             loud line, when it ends un-renewed; then a new one is asked for.
//
// Answers are verified with the agent's key and the replay check, and must name this end system
// and a request still outstanding.

import { randomInt } from "node:crypto";
import { decode, type Message, type NumberGrantMsg, type NumberRequestMsg, type RegisterReplyMsg } from "../../host/discovery/protocol.js";
import { ReplayGuard } from "../../host/discovery/replay.js";
import type { AgentConfig, NumberWant } from "./config.js";

/** First resend after 1 s, doubling up to 30 s (the protocol's schedule). */
export const RETRY_FIRST_MS = 1000;
export const RETRY_MAX_MS = 30_000;
/** After a lease is refused (pool exhausted, unknown), it is asked for again this much later. */
const LEASE_AGAIN_MS = 30_000;

export interface ClientIo {
  send(msg: Message, to: { address: string; port: number }): Promise<void>;
  log(line: string): void;
  now(): number;
  /** The supervisor accepted the registration and said to advertise every `ms`. */
  onInterval(ms: number): void;
}

export interface HeldLease {
  pool: string;
  leaseId: number;
  first: number;
  count: number;
  leaseS: number;
  /** Local clock, ms: the numbers are not used from then on unless renewed. */
  validUntil: number;
}

export interface ClientStatus {
  supervisor: string;
  registration: { state: "pending" | "accepted" | "refused"; reason?: string; intervalMs?: number };
  leases: (HeldLease & { remainingS: number })[];
  /** Pools asked for and not (yet) held. */
  waiting: string[];
}

interface Pending {
  msg: Message;
  firstSent: number;
  attempt: number;
  timer?: NodeJS.Timeout;
  /** Handles an answer; true when the request is settled (a refused REGISTER is not). */
  onAnswer(m: Message, firstSent: number): boolean;
  /** Resending stops at this local time, and onGiveUp runs. */
  giveUpAt?: number;
  onGiveUp?(): void;
}

interface Slot {
  want: NumberWant;
  lease?: HeldLease;
  requestId?: number;
  renewTimer?: NodeJS.Timeout;
  expiryTimer?: NodeJS.Timeout;
}

export class SupervisorClient {
  private readonly keys: Map<number, Uint8Array>;
  private readonly guard: ReplayGuard;
  private readonly pending = new Map<number, Pending>();
  private requestId = randomInt(0, 0xffffffff); // a restarted agent does not reuse the ids the supervisor remembers
  private readonly slots: Slot[];
  private registration: ClientStatus["registration"] = { state: "pending" };
  private stopped = false;
  private readonly target: { address: string; port: number };

  constructor(private readonly config: AgentConfig, private readonly io: ClientIo) {
    if (!config.supervisor) throw new Error("no supervisor configured");
    this.target = config.supervisor;
    this.keys = new Map([[config.key.id, config.key.secret]]);
    this.guard = new ReplayGuard({ now: () => io.now() });
    this.slots = config.numbers.map((want) => ({ want }));
  }

  start(): void {
    this.register();
    for (const s of this.slots) this.lease(s);
  }

  /** A datagram that arrived on the agent's sockets. */
  handle(bytes: Uint8Array): void {
    const r = decode(bytes, this.keys);
    if (!r.ok || this.guard.check(r.sender, r.seq, r.time) !== "ok") return;
    const m = r.msg;
    if ((m.type !== "register-reply" && m.type !== "number-grant") || m.endSystem !== this.config.id) return;
    const p = this.pending.get(m.requestId);
    if (!p || (m.type === "register-reply") !== (p.msg.type === "register")) return;
    if (p.onAnswer(m, p.firstSent)) this.settle(m.requestId);
  }

  status(): ClientStatus {
    const now = this.io.now();
    const at = this.target.address.includes(":") ? `[${this.target.address}]:${this.target.port}` : `${this.target.address}:${this.target.port}`;
    return {
      supervisor: at,
      registration: { ...this.registration },
      leases: this.slots.flatMap((s) => (s.lease ? [{ ...s.lease, remainingS: Math.max(0, Math.round((s.lease.validUntil - now) / 1000)) }] : [])),
      waiting: this.slots.filter((s) => !s.lease).map((s) => s.want.pool),
    };
  }

  /** Releases every lease held; resolves when each is answered or `timeoutMs` has passed. */
  async releaseAll(timeoutMs: number): Promise<void> {
    this.stopRequests();
    const held = this.slots.filter((s) => s.lease);
    await Promise.all(held.map((s) => new Promise<void>((done) => {
      const l = s.lease!;
      this.clearSlot(s);
      s.lease = undefined;
      const timer = setTimeout(done, timeoutMs);
      this.request(
        (requestId) => ({ type: "number-request", requestId, endSystem: this.config.id, pool: l.pool, op: "release", leaseId: l.leaseId }),
        (m) => {
          const g = m as NumberGrantMsg;
          this.io.log(g.status === "released" ? `lease ${l.leaseId} of pool ${l.pool} released (${range(l)})` : `release of lease ${l.leaseId} of pool ${l.pool} REFUSED: ${g.reason ?? g.status}`);
          clearTimeout(timer);
          done();
          return true;
        },
        { giveUpAt: this.io.now() + timeoutMs },
      );
    })));
    this.stop();
  }

  /** Stops every request and timer (leases are not released: see releaseAll). */
  stop(): void {
    this.stopped = true;
    this.stopRequests();
    for (const s of this.slots) this.clearSlot(s);
  }

  private stopRequests(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    this.pending.clear();
  }

  private clearSlot(s: Slot): void {
    clearTimeout(s.renewTimer);
    clearTimeout(s.expiryTimer);
    if (s.requestId !== undefined) this.settle(s.requestId);
    s.requestId = undefined;
  }

  private settle(requestId: number): void {
    const p = this.pending.get(requestId);
    if (!p) return;
    clearTimeout(p.timer);
    this.pending.delete(requestId);
  }

  /** Sends a request now and again on the retry schedule until settled or given up. */
  private request(build: (requestId: number) => Message, onAnswer: Pending["onAnswer"], o: { giveUpAt?: number; onGiveUp?: () => void } = {}): number {
    const requestId = this.requestId;
    this.requestId = (this.requestId + 1) % 0x1_0000_0000;
    const p: Pending = { msg: build(requestId), firstSent: this.io.now(), attempt: 0, onAnswer, giveUpAt: o.giveUpAt, onGiveUp: o.onGiveUp };
    this.pending.set(requestId, p);
    const fire = (): void => {
      if (this.pending.get(requestId) !== p) return;
      if (p.giveUpAt !== undefined && this.io.now() >= p.giveUpAt) {
        this.pending.delete(requestId);
        p.onGiveUp?.();
        return;
      }
      this.io.send(p.msg, this.target).catch((e: Error) => this.io.log(`request to the supervisor failed: ${e.message}`));
      const delay = Math.min(RETRY_MAX_MS, RETRY_FIRST_MS * 2 ** p.attempt++);
      p.timer = setTimeout(fire, p.giveUpAt === undefined ? delay : Math.max(1, Math.min(delay, p.giveUpAt - this.io.now())));
    };
    fire();
    return requestId;
  }

  private register(): void {
    const c = this.config;
    this.request(
      (requestId) => ({ type: "register", requestId, endSystem: c.id, addresses: c.addresses, services: c.services }),
      (m) => {
        const r = m as RegisterReplyMsg;
        if (r.status === "accepted") {
          if (this.registration.state !== "accepted") this.io.log(`registered with the supervisor ${this.status().supervisor}: advertising every ${r.intervalMs} ms`);
          this.registration = { state: "accepted", intervalMs: r.intervalMs };
          this.io.onInterval(r.intervalMs);
          return true;
        }
        this.registration = { state: "refused", reason: r.reason, intervalMs: r.intervalMs };
        this.io.log(`REGISTRATION REFUSED by the supervisor ${this.status().supervisor}: ${r.reason ?? "no reason given"} (asking again; advertising anyway)`);
        return false; // keep asking on the retry schedule: the conflict may clear
      },
    );
  }

  private lease(s: Slot): void {
    if (this.stopped) return;
    const w = s.want;
    s.requestId = this.request(
      (requestId) => ({ type: "number-request", requestId, endSystem: this.config.id, pool: w.pool, op: "lease", count: w.count, leaseS: w.leaseS }),
      (m, firstSent) => {
        const g = m as NumberGrantMsg;
        s.requestId = undefined;
        if (g.status === "granted") {
          s.lease = { pool: w.pool, leaseId: g.leaseId!, first: g.first!, count: g.count!, leaseS: g.leaseS!, validUntil: firstSent + g.leaseS! * 1000 };
          this.io.log(`lease ${g.leaseId} of pool ${w.pool}: numbers ${range(s.lease)} for ${g.leaseS} s`);
          this.schedule(s, firstSent);
        } else {
          this.io.log(`NUMBER LEASE REFUSED for pool ${w.pool}: ${g.reason ?? g.status} (asking again in ${LEASE_AGAIN_MS / 1000} s)`);
          s.renewTimer = setTimeout(() => this.lease(s), LEASE_AGAIN_MS);
        }
        return true;
      },
    );
  }

  /** Renewal at half the lease, counted from when the request that set it was first sent; the end at its end. */
  private schedule(s: Slot, from: number): void {
    const l = s.lease!;
    clearTimeout(s.renewTimer);
    clearTimeout(s.expiryTimer);
    s.renewTimer = setTimeout(() => this.renew(s), Math.max(0, from + l.leaseS * 500 - this.io.now()));
    s.expiryTimer = setTimeout(() => this.ended(s), Math.max(0, l.validUntil - this.io.now()));
  }

  private renew(s: Slot): void {
    const l = s.lease;
    if (!l || this.stopped) return;
    s.requestId = this.request(
      (requestId) => ({ type: "number-request", requestId, endSystem: this.config.id, pool: l.pool, op: "renew", leaseId: l.leaseId, leaseS: s.want.leaseS } satisfies NumberRequestMsg),
      (m, firstSent) => {
        const g = m as NumberGrantMsg;
        s.requestId = undefined;
        if (s.lease !== l) return true;
        if (g.status === "renewed") {
          l.leaseS = g.leaseS!;
          l.validUntil = Math.max(l.validUntil, firstSent + g.leaseS! * 1000); // the supervisor never shortens a lease
          this.schedule(s, firstSent);
        } else {
          this.io.log(`RENEWAL REFUSED for lease ${l.leaseId} of pool ${l.pool}: ${g.reason ?? g.status}; numbers ${range(l)} no longer used, asking for a new lease`);
          this.clearSlot(s);
          s.lease = undefined;
          s.renewTimer = setTimeout(() => this.lease(s), RETRY_FIRST_MS);
        }
        return true;
      },
      { giveUpAt: l.validUntil }, // past it the lease has ended anyway (ended() takes over)
    );
  }

  private ended(s: Slot): void {
    const l = s.lease;
    if (!l || this.io.now() < l.validUntil) return;
    this.io.log(`LEASE ENDED un-renewed: lease ${l.leaseId} of pool ${l.pool}, numbers ${range(l)} no longer used; asking for a new lease`);
    this.clearSlot(s);
    s.lease = undefined;
    this.lease(s);
  }
}

function range(l: { first: number; count: number }): string {
  return l.count === 1 ? `${l.first}` : `${l.first}-${l.first + l.count - 1}`;
}
