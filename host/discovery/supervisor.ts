// The supervisor role of the service advertisement protocol (docs/advertisement-protocol.md,
// docs/supervisor.md): it admits end systems (REGISTER), answers "which servers serve X?"
// (SERVER-LIST), hands out numbers (NUMBER, number-authority.ts) and relays advertisements to
// appliances on other segments. It takes verified datagrams and produces answers; the sockets are
// elsewhere (supervisor-socket.ts), so the appliance, the standalone tool and the tests share it.
//
// Every datagram is verified (protocol.decode) and checked against replay (ReplayGuard) before it
// changes anything, as in registry.ts; every refusal is counted by reason and by source address.
// Answers are signed with the key the request was signed with: the requester holds that key for
// sure, and a key rotation needs no "current key" on the supervisor.
//
// NUMBER answers are idempotent per (endSystem, requestId): a bounded cache of answers given, and
// for answers that changed a lease, the lease itself remembers its last request (so a retry after
// a restart gets the same grant). A request that changes the lease state is answered only once
// the state is saved (saves are coalesced: one write covers every change made before it began).
//
// Relay: SERVICE, LOAD and FLOW heard from end systems are forwarded byte for byte to the relay
// targets (the MAC covers the original bytes, so appliances there verify the end system's own
// signature). Never relayed: a datagram that failed verification or the replay check, and one
// that came from a relay target or another supervisor (a configured peer, or an address heard
// sending supervisor answers). The replay check alone already stops a datagram from circling (each
// supervisor takes each (sender, seq) once); the source rule stops relays of relays.

import { countBySource } from "../wire/refusals.js";
import { isIP } from "node:net";
import { canonical } from "../net/neighbors.js";
import { l2, ipOf } from "../net/packet-view.js";
import {
  decode, encode, LIMITS, MAX_DATAGRAM_BYTES,
  type AuthKey, type Message, type MessageType, type NumberGrantMsg, type NumberRequestMsg, type RegisterMsg,
  type ServerEntry, type ServerListReplyMsg, type ServerListRequestMsg, type ServiceMsg, type ServiceOffer, MESSAGE_TYPES,
} from "./protocol.js";
import { ReplayGuard } from "./replay.js";
import { REJECT_REASONS, type RejectReason } from "./registry.js";
import { NumberAuthority, type LeaseView, type NumberRefusal, type PoolConfig, type PoolUse } from "./number-authority.js";
import type { LeaseStore } from "./lease-store.js";

export type { PoolConfig } from "./number-authority.js";

/** A registration, or an advertiser, silent for this many of its intervals is gone (the protocol's 3). */
export const MISSED_INTERVALS = 3;
/** Answers remembered for retries; a retry comes within seconds, so the oldest can go. */
const ANSWER_CACHE_SIZE = 4096;
const ANSWER_CACHE_MS = 10 * 60_000;
/** End systems heard advertising (not registered) kept at most. */
const MAX_ADVERTISERS = 65_536;
/** Addresses learnt as other supervisors' (they sent answers), kept at most. */
const MAX_LEARNT_SUPERVISORS = 64;
const TICK_MS = 1000;

export interface RelayTarget {
  address: string;
  port: number;
}

export interface SupervisorConfig {
  /** Sender id of the supervisor's answers. */
  id: string;
  /** Keys requests may be signed with; answers use the request's key. */
  keys: AuthKey[];
  /** Interval the end systems are told to advertise at. */
  intervalMs: number;
  /** Live registrations at most; more are refused. */
  maxEndSystems: number;
  pools: PoolConfig[];
  relay: RelayTarget[];
  /** Addresses of other supervisors: what they send is never relayed. */
  peers: string[];
}

export interface Source {
  address: string;
  port: number;
}

export interface SupervisorOptions {
  send(bytes: Uint8Array, to: Source): void | Promise<void>;
  /** Where leases live. Without one, configured pools are refused (nothing may be granted unsaved). */
  store?: LeaseStore;
  now?: () => number;
  log?: (line: string) => void;
  /** Replay window, ms (default the protocol's 30 s). */
  windowMs?: number;
}

export interface Registration {
  endSystem: string;
  addresses: string[];
  services: ServiceOffer[];
  /** Interval the end system was told, or advertises in SERVICE once heard. */
  intervalMs: number;
  registeredAt: number;
  /** Local clock, ms, of the last REGISTER or SERVICE heard from it. */
  lastHeard: number;
  /** address:port of the last REGISTER. */
  from: string;
}

export type AnswerRefusal = "address-conflict" | "full" | NumberRefusal | "unavailable";
export const ANSWER_REFUSALS: readonly AnswerRefusal[] = ["address-conflict", "full", "unknown-pool", "exhausted", "not-your-lease", "unavailable"];

export interface SupervisorStats {
  /** Verified, fresh datagrams by message type. */
  accepted: Record<MessageType, number>;
  /** Verified datagrams not acted on (answers from elsewhere, requests heard only in passing). */
  ignored: number;
  answers: number;
  /** NUMBER retries answered from memory. */
  repeated: number;
  sendErrors: number;
  /** Datagrams refused, by reason and by source address. */
  rejected: Record<RejectReason, number>;
  rejectedBy: Record<string, Partial<Record<RejectReason, number>>>;
  /** Requests answered with a refusal, by reason and by source address. */
  refused: Record<AnswerRefusal, number>;
  refusedBy: Record<string, Partial<Record<AnswerRefusal, number>>>;
  /** Datagrams sent on to relay targets (one per target). */
  relayed: number;
  /** Advertisements not relayed because they came from a relay target or another supervisor. */
  notRelayed: number;
  registrations: number;
  advertisers: number;
  /** "running", "off" (no pools) or why the number authority did not start. */
  authority: string;
  storeErrors: number;
  pools: PoolUse[];
}

interface Advertiser {
  msg: ServiceMsg;
  lastHeard: number;
}

interface CachedAnswer {
  answer: NumberGrantMsg;
  op: NumberRequestMsg["op"];
  pool: string;
  at: number;
}

export class Supervisor {
  private config!: SupervisorConfig;
  private keys = new Map<number, Uint8Array>();
  private readonly guard: ReplayGuard;
  private readonly regs = new Map<string, Registration>();
  private readonly advertisers = new Map<string, Advertiser>();
  private authority?: NumberAuthority;
  private authorityError?: string;
  private opening?: Promise<void>;
  private readonly answers = new Map<string, CachedAnswer>();
  private readonly inflight = new Map<string, Promise<NumberGrantMsg>>();
  private noRelay = new Set<string>();
  private readonly learntSupervisors = new Set<string>();
  private seq: number;
  private timer?: NodeJS.Timeout;
  private saving = false;
  private saveWaiters: { ok: () => void; fail: (e: Error) => void }[] = [];
  private saveDone: Promise<void> = Promise.resolve();
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly counts = {
    accepted: Object.fromEntries(MESSAGE_TYPES.map((t) => [t, 0])) as Record<MessageType, number>,
    ignored: 0, answers: 0, repeated: 0, sendErrors: 0, relayed: 0, notRelayed: 0, storeErrors: 0,
    rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>,
    rejectedBy: new Map<string, Partial<Record<RejectReason, number>>>(),
    refused: Object.fromEntries(ANSWER_REFUSALS.map((r) => [r, 0])) as Record<AnswerRefusal, number>,
    refusedBy: new Map<string, Partial<Record<AnswerRefusal, number>>>(),
  };

  constructor(config: SupervisorConfig, private readonly opts: SupervisorOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.guard = new ReplayGuard({ now: this.now, windowMs: opts.windowMs });
    this.seq = this.now(); // senders start high (docs/advertisement-protocol.md)
    this.apply(config);
  }

  /** Loads the lease store (when pools are configured) and starts the expiry timer. Never throws. */
  async start(): Promise<void> {
    await this.openAuthority();
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), TICK_MS);
    this.timer.unref();
  }

  /** A new configuration: keys, interval, limits, pools and relay targets apply to the next datagram. */
  async update(config: SupervisorConfig): Promise<void> {
    this.apply(config);
    await this.openAuthority();
  }

  /** Waits for pending saves, stops the timer. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    while (this.saving) await this.saveDone.catch(() => {});
  }

  /** Why the number authority is not running while pools are configured; undefined when it runs (or there are no pools). */
  get authorityProblem(): string | undefined {
    return this.config.pools.length ? this.authorityError : undefined;
  }

  private apply(config: SupervisorConfig): void {
    this.config = { ...config, pools: config.pools.map((p) => ({ ...p })), relay: config.relay.map((r) => ({ ...r })), peers: [...config.peers] };
    this.keys = new Map(config.keys.map((k) => [k.id, k.secret]));
    this.noRelay = new Set([...config.relay.map((r) => plain(r.address)), ...config.peers.map(plain)]);
    this.authority?.setPools(config.pools);
  }

  private async openAuthority(): Promise<void> {
    if (this.authority || this.config.pools.length === 0) return;
    if (this.opening) return this.opening;
    this.opening = (async () => {
      const store = this.opts.store;
      if (!store) {
        this.authorityError = "no lease store: pools need somewhere to save leases before granting them";
        this.log(`supervisor: number authority not started: ${this.authorityError}`);
        return;
      }
      try {
        const saved = await store.load();
        this.authority = new NumberAuthority(this.config.pools, saved);
        this.authorityError = undefined;
        this.log(`supervisor: number authority started from ${store.where}: ${saved ? `${saved.leases.length} lease(s), next lease id ${saved.nextLeaseId}` : "no saved state (first start)"}`);
      } catch (e) {
        this.counts.storeErrors++;
        this.authorityError = `lease store unusable, refusing to grant numbers: ${(e as Error).message}`;
        this.log(`supervisor: number authority not started: ${this.authorityError}`);
      }
    })();
    try {
      await this.opening;
    } finally {
      this.opening = undefined;
    }
  }

  /** A punted frame (Ethernet, IP, UDP): heard in passing, so requests in it are not answered. */
  hearFrame(frame: Uint8Array, discoveryPort: number): Promise<void> {
    const v = l2(frame);
    const ip = v && ipOf(frame, v);
    if (!ip || ip.protocol !== 17 || ip.l4len < 8) return Promise.resolve();
    const udpLen = (frame[ip.l4 + 4]! << 8) | frame[ip.l4 + 5]!;
    const sport = (frame[ip.l4]! << 8) | frame[ip.l4 + 1]!;
    const dport = (frame[ip.l4 + 2]! << 8) | frame[ip.l4 + 3]!;
    if (udpLen < 8 || udpLen > ip.l4len || dport !== discoveryPort) return Promise.resolve();
    return this.handle(frame.subarray(ip.l4 + 8, ip.l4 + udpLen), { address: ip.src, port: sport }, { answer: false });
  }

  /** One datagram from `from`. Resolves once its answer (if any) is sent. Never throws. */
  async handle(bytes: Uint8Array, from: Source, how: { answer: boolean } = { answer: true }): Promise<void> {
    const src = { address: plain(from.address), port: from.port };
    const r = decode(bytes, this.keys);
    if (!r.ok) return this.reject(r.reason, src.address);
    const verdict = this.guard.check(r.sender, r.seq, r.time);
    if (verdict !== "ok") return this.reject(verdict, src.address);
    const m = r.msg;
    this.counts.accepted[m.type]++;
    const key: AuthKey = { id: r.keyId, secret: this.keys.get(r.keyId)! };
    switch (m.type) {
      case "service":
        this.heardService(m);
        return this.relay(bytes, src);
      case "load":
      case "flow":
        return this.relay(bytes, src);
      case "register":
        if (!how.answer) return void this.counts.ignored++;
        return this.send(this.register(m, src), key, src);
      case "server-list-request":
        if (!how.answer) return void this.counts.ignored++;
        return this.serverList(m, key, src);
      case "number-request":
        if (!how.answer) return void this.counts.ignored++;
        return this.number(m, key, src);
      default:
        // an answer: only another supervisor sends those, and what it sends is never relayed
        if (this.learntSupervisors.size < MAX_LEARNT_SUPERVISORS) this.learntSupervisors.add(src.address);
        this.counts.ignored++;
    }
  }

  // ---- REGISTER ------------------------------------------------------------------------------

  private register(m: RegisterMsg, from: Source): Message {
    const now = this.now();
    this.expire(now);
    const reply = (status: "accepted" | "refused", reason?: string): Message => ({
      type: "register-reply", requestId: m.requestId, endSystem: m.endSystem, status, intervalMs: this.config.intervalMs,
      ...(reason === undefined ? {} : { reason: reason.slice(0, LIMITS.reasonLength) }),
    });
    const refuse = (kind: AnswerRefusal, reason: string): Message => {
      this.refused(kind, from.address);
      this.log(`supervisor: registration of ${m.endSystem} from ${at(from)} refused: ${reason}`);
      return reply("refused", reason);
    };
    const claimed = new Set(m.addresses.map(canonical));
    for (const r of this.regs.values()) {
      if (r.endSystem === m.endSystem) continue;
      const shared = r.addresses.find((a) => claimed.has(canonical(a)));
      if (shared) return refuse("address-conflict", `address ${shared} is registered by end system ${r.endSystem}`);
    }
    const before = this.regs.get(m.endSystem);
    if (!before && this.regs.size >= this.config.maxEndSystems) return refuse("full", `the supervisor holds its most registrations (${this.config.maxEndSystems})`);
    this.regs.set(m.endSystem, {
      endSystem: m.endSystem, addresses: [...m.addresses], services: m.services.map((s) => ({ ...s })),
      intervalMs: this.advertisers.get(m.endSystem)?.msg.intervalMs ?? this.config.intervalMs,
      registeredAt: before?.registeredAt ?? now, lastHeard: now, from: at(from),
    });
    if (!before || JSON.stringify([before.addresses, before.services]) !== JSON.stringify([m.addresses, m.services])) {
      this.log(`supervisor: ${before ? "registration of" : "registered"} ${m.endSystem} (${m.addresses.join(" ")}, ${m.services.length} service(s)) from ${at(from)}${before ? " updated" : ""}`);
    }
    return reply("accepted");
  }

  private heardService(m: ServiceMsg): void {
    const now = this.now();
    if (!this.advertisers.has(m.endSystem) && this.advertisers.size >= MAX_ADVERTISERS) this.expire(now);
    if (this.advertisers.has(m.endSystem) || this.advertisers.size < MAX_ADVERTISERS) this.advertisers.set(m.endSystem, { msg: m, lastHeard: now });
    const r = this.regs.get(m.endSystem);
    if (r) {
      r.lastHeard = now;
      r.intervalMs = m.intervalMs;
    }
  }

  /** Registrations and advertisers silent for MISSED_INTERVALS of their interval go. */
  private expire(now: number): void {
    for (const [id, r] of this.regs) {
      if (now - r.lastHeard < MISSED_INTERVALS * r.intervalMs) continue;
      this.regs.delete(id);
      this.log(`supervisor: registration of ${id} expired: nothing heard for ${now - r.lastHeard} ms (${MISSED_INTERVALS} intervals of ${r.intervalMs} ms)`);
    }
    for (const [id, a] of this.advertisers) if (now - a.lastHeard >= MISSED_INTERVALS * a.msg.intervalMs) this.advertisers.delete(id);
  }

  // ---- SERVER-LIST ---------------------------------------------------------------------------

  /** Servers of a service: live advertisers as advertised, registered end systems not (yet) heard as "up"; by id. */
  serverEntries(key: { vip: string; protocol: number; port: number }): ServerEntry[] {
    this.expire(this.now());
    const vip = canonical(key.vip);
    const offer = (list: ServiceOffer[]): ServiceOffer | undefined => {
      const same = list.filter((o) => o.protocol === key.protocol && canonical(o.vip) === vip);
      return same.find((o) => o.port === key.port) ?? same.find((o) => o.port === 0);
    };
    const out: ServerEntry[] = [];
    for (const a of this.advertisers.values()) {
      const o = offer(a.msg.services);
      if (o) out.push({ endSystem: a.msg.endSystem, addresses: [...a.msg.addresses], state: a.msg.state, weight: o.weight, capacity: o.capacity });
    }
    for (const r of this.regs.values()) {
      if (this.advertisers.has(r.endSystem)) continue; // what it advertises now wins over what it meant to
      const o = offer(r.services);
      if (o) out.push({ endSystem: r.endSystem, addresses: [...r.addresses], state: "up", weight: o.weight, capacity: o.capacity });
    }
    return out.sort((a, b) => (a.endSystem < b.endSystem ? -1 : a.endSystem > b.endSystem ? 1 : 0));
  }

  /** One page from `offset`: as many servers as fit one datagram (the encoded size decides). */
  private async serverList(m: ServerListRequestMsg, key: AuthKey, to: Source): Promise<void> {
    const all = this.serverEntries(m.service);
    const offset = Math.min(m.offset, all.length);
    const page = (n: number): ServerListReplyMsg => ({ type: "server-list-reply", requestId: m.requestId, service: m.service, total: all.length, offset, servers: all.slice(offset, offset + n) });
    const seq = this.seq++;
    const now = this.now();
    const fits = (n: number): Uint8Array | undefined => {
      try {
        return encode(page(n), key, seq, now, this.config.id);
      } catch (e) {
        if (e instanceof RangeError && e.message.includes(`${MAX_DATAGRAM_BYTES}-byte limit`)) return undefined;
        throw e;
      }
    };
    let n = Math.min(LIMITS.servers, all.length - offset);
    let bytes = fits(n);
    if (!bytes) {
      let lo = 0; // fits: an empty page always does
      let hi = n; // does not
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (fits(mid)) lo = mid;
        else hi = mid;
      }
      n = lo;
      bytes = fits(n)!;
    }
    await this.transmit(bytes, to);
  }

  // ---- NUMBER --------------------------------------------------------------------------------

  private async number(m: NumberRequestMsg, key: AuthKey, from: Source): Promise<void> {
    const ck = `${m.endSystem}\u0000${m.requestId}`;
    const cached = this.answers.get(ck);
    let answer: NumberGrantMsg;
    if (cached && cached.op === m.op && cached.pool === m.pool) {
      this.answers.delete(ck); // most recently used last
      this.answers.set(ck, cached);
      this.counts.repeated++;
      answer = cached.answer;
    } else {
      let p = this.inflight.get(ck);
      if (!p) {
        p = this.decideNumber(m, from).finally(() => this.inflight.delete(ck));
        this.inflight.set(ck, p);
      } else this.counts.repeated++;
      answer = await p;
    }
    await this.send(answer, key, from);
  }

  private async decideNumber(m: NumberRequestMsg, from: Source): Promise<NumberGrantMsg> {
    const refuse = (kind: AnswerRefusal, reason: string): NumberGrantMsg => {
      this.refused(kind, from.address);
      this.log(`supervisor: NUMBER ${m.op} of ${m.endSystem} in pool ${m.pool} refused: ${reason}`);
      return { type: "number-grant", requestId: m.requestId, endSystem: m.endSystem, pool: m.pool, status: "refused", reason: reason.slice(0, LIMITS.reasonLength) };
    };
    if (this.opening) await this.opening;
    const auth = this.authority;
    if (!auth) {
      if (!this.config.pools.some((p) => p.name === m.pool)) return this.remember(m, refuse("unknown-pool", `unknown pool ${m.pool}`));
      return refuse("unavailable", `number authority unavailable: ${this.authorityError ?? "not started"}`);
    }
    const again = auth.repeat(m);
    if (again) {
      this.counts.repeated++;
      return this.remember(m, again);
    }
    const d = auth.apply(m, this.now());
    if (d.refusal) return this.remember(m, refuse(d.refusal, d.answer.reason ?? d.refusal));
    if (d.changed) {
      try {
        await this.persist();
      } catch (e) {
        // The change stays in memory (numbers nobody was told about stay taken: safe) and is saved
        // with the next change that saves; this answer says nothing was granted.
        this.counts.storeErrors++;
        return refuse("unavailable", `the lease store cannot be written: ${(e as Error).message}`);
      }
    }
    if (d.event) this.log(`supervisor: ${d.event}`);
    return this.remember(m, d.answer);
  }

  private remember(m: NumberRequestMsg, answer: NumberGrantMsg): NumberGrantMsg {
    const ck = `${m.endSystem}\u0000${m.requestId}`;
    this.answers.delete(ck);
    this.answers.set(ck, { answer, op: m.op, pool: m.pool, at: this.now() });
    while (this.answers.size > ANSWER_CACHE_SIZE) this.answers.delete(this.answers.keys().next().value!);
    return answer;
  }

  /** Resolves once a save that began after this call has finished (one save serves every change before it). */
  private persist(): Promise<void> {
    return new Promise((ok, fail) => {
      this.saveWaiters.push({ ok, fail });
      this.kickSave();
    });
  }

  private kickSave(): void {
    if (this.saving || this.saveWaiters.length === 0 || !this.authority || !this.opts.store) return;
    const batch = this.saveWaiters.splice(0);
    this.saving = true;
    const state = this.authority.state();
    this.saveDone = this.opts.store.save(state).then(
      () => batch.forEach((w) => w.ok()),
      (e: Error) => {
        this.log(`supervisor: saving ${this.opts.store!.where} failed: ${e.message}`);
        batch.forEach((w) => w.fail(e));
      },
    ).finally(() => {
      this.saving = false;
      this.kickSave();
    });
  }

  // ---- relay ---------------------------------------------------------------------------------

  private async relay(bytes: Uint8Array, from: Source): Promise<void> {
    if (this.config.relay.length === 0) return;
    if (this.noRelay.has(from.address) || this.learntSupervisors.has(from.address)) {
      this.counts.notRelayed++;
      return;
    }
    await Promise.all(this.config.relay.map(async (t) => {
      try {
        await this.opts.send(bytes, t);
        this.counts.relayed++;
      } catch (e) {
        this.counts.sendErrors++;
        this.log(`supervisor: relay to ${at(t)} failed: ${(e as Error).message}`);
      }
    }));
  }

  // ---- sending, counting ---------------------------------------------------------------------

  private async send(msg: Message, key: AuthKey, to: Source): Promise<void> {
    await this.transmit(encode(msg, key, this.seq++, this.now(), this.config.id), to);
  }

  private async transmit(bytes: Uint8Array, to: Source): Promise<void> {
    try {
      await this.opts.send(bytes, to);
      this.counts.answers++;
    } catch (e) {
      this.counts.sendErrors++;
      this.log(`supervisor: answer to ${at(to)} failed: ${(e as Error).message}`);
    }
  }

  private reject(reason: RejectReason, from: string): void {
    this.counts.rejected[reason]++;
    countBySource(this.counts.rejectedBy, from, reason);
  }

  private refused(kind: AnswerRefusal, from: string): void {
    this.counts.refused[kind]++;
    countBySource(this.counts.refusedBy, from, kind);
  }

  /** Once a second: registrations and leases that ended, answers too old to be asked again. */
  tick(): void {
    const now = this.now();
    this.expire(now);
    for (const e of this.authority?.sweep(now) ?? []) this.log(`supervisor: ${e}`);
    for (const [k, a] of this.answers) {
      if (now - a.at < ANSWER_CACHE_MS) break; // oldest first
      this.answers.delete(k);
    }
  }

  // ---- views ---------------------------------------------------------------------------------

  registrations(): Registration[] {
    this.expire(this.now());
    return [...this.regs.values()].sort((a, b) => (a.endSystem < b.endSystem ? -1 : 1)).map((r) => ({ ...r, addresses: [...r.addresses], services: r.services.map((s) => ({ ...s })) }));
  }

  leases(): LeaseView[] {
    const now = this.now();
    this.authority?.sweep(now);
    return this.authority?.leases(now) ?? [];
  }

  stats(): SupervisorStats {
    const now = this.now();
    this.expire(now);
    this.authority?.sweep(now);
    const pools = this.authority?.usage(now) ?? this.config.pools.map((p) => ({ ...p, size: p.last - p.first + 1, used: 0, heldBack: 0, free: 0, leases: 0 }));
    return {
      accepted: { ...this.counts.accepted },
      ignored: this.counts.ignored,
      answers: this.counts.answers,
      repeated: this.counts.repeated,
      sendErrors: this.counts.sendErrors,
      rejected: { ...this.counts.rejected },
      rejectedBy: Object.fromEntries([...this.counts.rejectedBy].map(([k, v]) => [k, { ...v }])),
      refused: { ...this.counts.refused },
      refusedBy: Object.fromEntries([...this.counts.refusedBy].map(([k, v]) => [k, { ...v }])),
      relayed: this.counts.relayed,
      notRelayed: this.counts.notRelayed,
      registrations: this.regs.size,
      advertisers: this.advertisers.size,
      authority: this.config.pools.length === 0 ? "off" : this.authority ? "running" : (this.authorityError ?? "starting"),
      storeErrors: this.counts.storeErrors,
      pools,
    };
  }
}


/** An address as the protocol writes it: an IPv4-mapped IPv6 source (dual-stack socket) as IPv4, IPv6 canonical. */
export function plain(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (m) return m[1]!;
  return isIP(address) ? canonical(address) : address;
}

function at(s: Source): string {
  return s.address.includes(":") ? `[${s.address}]:${s.port}` : `${s.address}:${s.port}`;
}
