// Who of the pair is active: the election as a pure state machine. No sockets, no timers: the
// caller feeds it verified heartbeats (with the link they came on), local events (ready, config,
// maintenance) and clock ticks, and acts on what it returns: state changes with a reason,
// heartbeats to send, "reannounce" (send the gratuitous ARPs again) and changes of the peer as
// seen from here. nextWakeAt() says when the next tick is due, so a caller needs no polling.
//
// The rules are docs/ha-protocol.md ("Election"). In short: a peer is dead when no fresh heartbeat
// came on ANY link for deadCount x its advertised interval; a standby takes over from a dead peer;
// with nobody active, the better-ranked node (eligible, ready, priority, lower node id) goes
// active; a higher-priority standby preempts only once ready, by saying `preempting` and waiting
// for the active to say `standby` (no instant with both active); if both are active, the higher
// priority (then the lower node id) stays and reannounces.
//
// Trade-off: a heartbeat counts only if its sequence number is above the last one seen on its
// link (its state only if above every one seen), so datagrams reordered between links never roll
// the peer's state back, at the price of not crediting a link whose datagrams arrive late.

import { UNKNOWN_DIGEST, type HaState, type HeartbeatMsg } from "./protocol.js";

/** After stepping down for a pre-empting peer, its dead time is this many times longer ... */
const HANDOVER_GRACE = 3;
/** ... for this long (ms): a node that pre-empted has just booted and is at its busiest. */
const HANDOVER_GRACE_MS = 3000;

export interface ElectionConfig {
  node: string;
  priority: number;
  preempt: boolean;
  preemptDelayMs: number;
  intervalMs: number;
  deadCount: number;
  /** Names of the links heartbeats are sent and received on. */
  links: readonly string[];
}

export interface LinkView {
  /** A fresh heartbeat came on this link within the dead interval. */
  up: boolean;
  lastHeardAt?: number;
  /** Fresh heartbeats received on it. */
  received: number;
  /** Heartbeats that arrived after a newer one on the same link (reordered or replayed within the window). */
  late: number;
  /** Times it went silent for a dead interval while it was up (the peer may still be heard on another). */
  losses: number;
}

/** The peer as this node sees it. Times are the election's clock. */
export interface PeerView {
  node: string;
  bootId: string;
  state: HaState;
  priority: number;
  ready: boolean;
  maintenance: boolean;
  configVersion: number;
  configDigest: string;
  intervalMs: number;
  /** Heard on some link within the dead interval. */
  alive: boolean;
  lastHeardAt: number;
  links: Record<string, LinkView>;
}

export type ElectionEvent =
  | { kind: "state"; from: HaState; to: HaState; reason: string; at: number }
  | { kind: "send"; why: string }
  | { kind: "reannounce"; reason: string; at: number }
  | { kind: "peer"; peer: PeerView; at: number };

/** The fields of this node's heartbeat that the election decides (the sender adds bootId, link, keyIds). */
export type OwnBeat = Pick<HeartbeatMsg, "node" | "state" | "priority" | "ready" | "maintenance" | "configVersion" | "configDigest" | "intervalMs">;

export interface ElectionCounters {
  /** Became active because the peer was dead. */
  takeovers: number;
  /** Became active with the peer alive and not active (a handover, or nobody active). */
  handovers: number;
  /** Gave up active to a preempting peer. */
  preempted: number;
  /** Found the peer active too. */
  splitBrains: number;
  /** Heartbeats of a second node while the peer was alive (ignored). */
  foreign: number;
}

interface PeerRecord extends Omit<PeerView, "alive" | "links"> {
  /** Highest sequence number whose fields were applied. */
  seq: number;
}

interface LinkRecord extends LinkView {
  lastSeq: number;
}

/** While both stay active (the peer does not hear this node), the winner reannounces this often. */
const SPLIT_REANNOUNCE_MS = 1000;

type Decision = { to: HaState; reason: string; count?: keyof ElectionCounters };

export class Election {
  private cfg: ElectionConfig;
  private st: HaState = "init";
  private since: number;
  private startedAt: number;
  private hostReady = false;
  private maintenance = false;
  private maintenanceReason = "";
  private configVersion = 0;
  private configDigest = UNKNOWN_DIGEST;
  private peerRec: PeerRecord | undefined;
  private peerShownAlive = false;
  private readonly links = new Map<string, LinkRecord>();
  private nextSendAt: number;
  private preemptSince: number | undefined;
  /** When this node last stepped down for a pre-empting peer (its dead time is longer for a while). */
  private handedOverAt: number | undefined;
  /** Both were active and this node stayed: when it last reannounced (again once the peer has left active). */
  private splitBrainAt: number | undefined;
  /** The peer was heard again after a silence: it may have been active and announced meanwhile. */
  private peerReturned = false;
  private out: ElectionEvent[] = [];
  readonly counters: ElectionCounters = { takeovers: 0, handovers: 0, preempted: 0, splitBrains: 0, foreign: 0 };

  constructor(cfg: ElectionConfig, now: number) {
    this.cfg = { ...cfg, links: [...cfg.links] };
    this.startedAt = this.since = now;
    this.nextSendAt = now; // the first heartbeat goes out at once
    for (const l of cfg.links) this.links.set(l, newLink());
  }

  get state(): HaState {
    return this.st;
  }

  /** When the state was entered. */
  get stateSince(): number {
    return this.since;
  }

  get config(): Readonly<ElectionConfig> {
    return this.cfg;
  }

  /** Ready as this node advertises it: the host's word, and always while active (it is the source of the flows). */
  get ready(): boolean {
    return this.st === "active" || this.hostReady;
  }

  /** What this node's heartbeats say now. */
  beat(): OwnBeat {
    return {
      node: this.cfg.node,
      state: this.st,
      priority: this.cfg.priority,
      ready: this.ready,
      maintenance: this.maintenance,
      configVersion: this.configVersion,
      configDigest: this.configDigest,
      intervalMs: this.cfg.intervalMs,
    };
  }

  peer(now: number): PeerView | undefined {
    const p = this.peerRec;
    if (!p) return undefined;
    const { seq: _seq, ...rest } = p;
    return { ...rest, alive: this.peerAlive(now), links: Object.fromEntries([...this.links].map(([n, l]) => [n, viewOf(l)])) };
  }

  /**
   * How long the peer may be silent on every link before it is dead: deadCount x its advertised
   * interval; HANDOVER_GRACE times that while a peer that has just pre-empted settles in (it
   * booted moments ago: its process is at its busiest, and a false takeover now would be a split
   * brain against a node that is in fact fine).
   */
  deadIntervalMs(now?: number): number {
    const base = this.cfg.deadCount * (this.peerRec?.intervalMs ?? this.cfg.intervalMs);
    return now !== undefined && this.handedOverAt !== undefined && now - this.handedOverAt < HANDOVER_GRACE_MS ? base * HANDOVER_GRACE : base;
  }

  // ---- inputs ------------------------------------------------------------------------------

  /** A heartbeat that passed the MAC, field and replay checks, with its sequence number and the link it came on. */
  receive(hb: HeartbeatMsg, seq: number, link: string, now: number): ElectionEvent[] {
    this.out = [];
    const l = this.links.get(link);
    if (hb.node === this.cfg.node || l === undefined) return this.flush(now);
    let p = this.peerRec;
    if (p && p.node !== hb.node) {
      if (this.peerAlive(now)) {
        this.counters.foreign++;
        return this.flush(now);
      }
      p = undefined; // a dead peer replaced by another node
    }
    if (p && p.bootId !== hb.bootId && seq <= p.seq) {
      // from an earlier boot, delivered late: a restarted sender's numbers start above its old ones
      l.late++;
      return this.flush(now);
    }
    let changed = false;
    const wasDead = this.peerRec !== undefined && !this.peerShownAlive;
    if (!p || p.bootId !== hb.bootId) {
      // first heartbeat, or the peer restarted: nothing it said before holds
      p = { node: hb.node, bootId: hb.bootId, state: hb.state, priority: hb.priority, ready: hb.ready, maintenance: hb.maintenance, configVersion: hb.configVersion, configDigest: hb.configDigest, intervalMs: hb.intervalMs, lastHeardAt: now, seq: -1 };
      this.peerRec = p;
      for (const r of this.links.values()) r.lastSeq = -1;
      changed = true;
    }
    if (seq <= l.lastSeq) {
      l.late++;
      return this.flush(now);
    }
    l.lastSeq = seq;
    l.lastHeardAt = now;
    l.received++;
    if (!l.up) l.up = changed = true;
    if (wasDead && this.st === "active") this.peerReturned = true;
    p.lastHeardAt = now;
    if (!this.peerShownAlive) changed = true;
    if (seq > p.seq) {
      p.seq = seq;
      for (const k of ["state", "priority", "ready", "maintenance", "configVersion", "configDigest", "intervalMs"] as const) {
        if (p[k] !== hb[k]) {
          (p as unknown as Record<string, unknown>)[k] = hb[k];
          changed = true;
        }
      }
    }
    if (changed) this.emitPeer(now);
    return this.flush(now);
  }

  /** The host's word on whether this node holds the full flow state of the pair. */
  setReady(ready: boolean, now: number): ElectionEvent[] {
    this.out = [];
    if (ready !== this.hostReady) {
      this.hostReady = ready;
      this.sendNow(now, ready ? "ready" : "not ready");
    }
    return this.flush(now);
  }

  /** The running configuration's version and SHA-256 (hex), for the peer's display and config sync. */
  setConfig(version: number, digest: string, now: number): ElectionEvent[] {
    this.out = [];
    if (version !== this.configVersion || digest !== this.configDigest) {
      this.configVersion = version;
      this.configDigest = digest;
      this.sendNow(now, "configuration changed");
    }
    return this.flush(now);
  }

  /** Held in standby by the operator (or by the service stopping): never active while on. */
  setMaintenance(on: boolean, now: number, reason = "held in standby by the operator (maintenance)"): ElectionEvent[] {
    this.out = [];
    this.maintenanceReason = reason;
    if (on !== this.maintenance) {
      this.maintenance = on;
      this.sendNow(now, on ? "maintenance on" : "maintenance off");
    }
    return this.flush(now);
  }

  /**
   * Listening (init) starts over from now: the host calls this once its links can hear, so that
   * a slow start (sockets bound late on a busy box) does not eat the window and let a node that
   * heard nothing yet go active beside a live peer.
   */
  listenFrom(now: number): ElectionEvent[] {
    this.out = [];
    if (this.st === "init" && this.peerRec === undefined) this.startedAt = now;
    return this.flush(now);
  }

  /** New settings. A new node id is a new member of the pair: the election starts over in init. */
  configure(cfg: ElectionConfig, now: number): ElectionEvent[] {
    this.out = [];
    const old = this.cfg;
    this.cfg = { ...cfg, links: [...cfg.links] };
    for (const n of [...this.links.keys()]) if (!cfg.links.includes(n)) this.links.delete(n);
    for (const n of cfg.links) if (!this.links.has(n)) this.links.set(n, newLink());
    if (cfg.node !== old.node) {
      this.peerRec = undefined;
      this.peerShownAlive = false;
      this.splitBrainAt = undefined;
      this.peerReturned = false;
      this.preemptSince = undefined;
      this.startedAt = now;
      for (const l of this.links.values()) Object.assign(l, newLink());
      if (this.st !== "init") this.go({ to: "init", reason: `node id changed from ${old.node} to ${cfg.node}` }, now);
    }
    this.sendNow(now, "settings changed");
    return this.flush(now);
  }

  /** Timers: heartbeats due, links and the peer going silent, the end of listening, the preempt delay. */
  tick(now: number): ElectionEvent[] {
    this.out = [];
    return this.flush(now);
  }

  /** When tick() next has something to do (a send, a deadline); never later than the next heartbeat. */
  nextWakeAt(now: number): number {
    let t = this.nextSendAt;
    const later = (x: number): void => {
      if (x > now && x < t) t = x;
    };
    const dead = this.deadIntervalMs(now);
    later(this.startedAt + this.listenMs());
    later((this.peerRec?.lastHeardAt ?? this.startedAt) + dead);
    for (const l of this.links.values()) if (l.up && l.lastHeardAt !== undefined) later(l.lastHeardAt + dead);
    if (this.preemptSince !== undefined) later(this.preemptSince + this.cfg.preemptDelayMs);
    return t;
  }

  // ---- the rules ---------------------------------------------------------------------------

  /** Checks timers and rules until nothing changes; returns what happened. */
  private flush(now: number): ElectionEvent[] {
    this.timers(now);
    for (let i = 0; i < 4; i++) {
      const d = this.decide(now);
      if (!d) break;
      this.go(d, now);
    }
    if (now >= this.nextSendAt) {
      this.out.push({ kind: "send", why: "interval" });
      this.nextSendAt += this.cfg.intervalMs;
      if (this.nextSendAt <= now) this.nextSendAt = now + this.cfg.intervalMs; // fell behind: keep the cadence from now
    }
    const out = this.out;
    this.out = [];
    return out;
  }

  private timers(now: number): void {
    const dead = this.deadIntervalMs(now);
    let changed = false;
    for (const l of this.links.values()) {
      if (l.up && l.lastHeardAt !== undefined && now - l.lastHeardAt >= dead) {
        l.up = false;
        l.losses++;
        changed = true;
      }
    }
    if (this.peerShownAlive && !this.peerAlive(now)) changed = true;
    if (changed && this.peerRec) this.emitPeer(now);
  }

  private listenMs(): number {
    return this.cfg.deadCount * this.cfg.intervalMs;
  }

  /** Since when no fresh heartbeat came on any link (since the start if none ever did). */
  private silentFor(now: number): number {
    return now - (this.peerRec?.lastHeardAt ?? this.startedAt);
  }

  private peerAlive(now: number): boolean {
    return this.peerRec !== undefined && this.silentFor(now) < this.deadIntervalMs(now);
  }

  private peerDead(now: number): boolean {
    return this.silentFor(now) >= this.deadIntervalMs(now);
  }

  private decide(now: number): Decision | undefined {
    const p = this.peerAlive(now) ? this.peerRec : undefined;
    const me = this.cfg;
    const silent = Math.round(this.silentFor(now));
    const silence = (): string => (this.peerRec ? `peer ${this.peerRec.node} silent on every link for ${silent} ms` : `no peer heard for ${silent} ms`);
    switch (this.st) {
      case "init": {
        if (this.maintenance) return { to: "standby", reason: this.maintenanceReason };
        if (p?.state === "active") return { to: "standby", reason: `peer ${p.node} is active` };
        if (p) {
          return this.ranksFirst(p)
            ? { to: "active", reason: `peer ${p.node} is ${p.state}, nobody is active, and this node ranks first (${this.rankText(p)})` }
            : { to: "standby", reason: `peer ${p.node} is ${p.state} and ranks first (${this.rankText(p)})` };
        }
        if (now - this.startedAt >= this.listenMs()) return { to: "active", reason: `${silence()} since start` };
        return undefined;
      }
      case "standby": {
        if (this.maintenance) {
          this.preemptSince = undefined;
          return undefined;
        }
        if (this.peerDead(now)) return { to: "active", reason: silence(), count: this.peerRec ? "takeovers" : undefined };
        if (!p) return undefined;
        if (p.state === "active") {
          if (!this.mayPreempt(p)) {
            this.preemptSince = undefined;
            return undefined;
          }
          this.preemptSince ??= now;
          if (now - this.preemptSince < me.preemptDelayMs) return undefined;
          const held = me.preemptDelayMs ? `, held ${me.preemptDelayMs} ms` : "";
          return { to: "preempting", reason: `peer ${p.node} is active with priority ${p.priority}, below ${me.priority}, and this node is ready${held}` };
        }
        this.preemptSince = undefined;
        if (p.state === "preempting") return undefined; // it goes active on hearing this node standby
        if (this.ranksFirst(p)) return { to: "active", reason: `peer ${p.node} is ${p.state}, nobody is active, and this node ranks first (${this.rankText(p)})`, count: "handovers" };
        return undefined;
      }
      case "preempting": {
        if (this.maintenance) return { to: "standby", reason: this.maintenanceReason };
        if (this.peerDead(now)) return { to: "active", reason: silence(), count: "takeovers" };
        if (!p) return undefined;
        if (p.state === "active") return this.mayPreempt(p) ? undefined : { to: "standby", reason: `preempting given up: ${this.whyNotPreempt(p)}` };
        if (p.state === "preempting") {
          // both think the other active (stale heartbeats): the lower-ranked steps back, the other goes on
          return this.ranksFirst(p) ? undefined : { to: "standby", reason: `peer ${p.node} is preempting too and ranks first (${this.rankText(p)})` };
        }
        return { to: "active", reason: `peer ${p.node} is ${p.state}: handed over`, count: "handovers" };
      }
      case "active": {
        if (this.maintenance) return { to: "standby", reason: this.maintenanceReason };
        if (!p) {
          this.splitBrainAt = undefined;
          return undefined;
        }
        if (p.state === "active") {
          this.peerReturned = false;
          if (!this.winsSplit(p)) {
            this.counters.splitBrains++;
            return { to: "standby", reason: `split brain: peer ${p.node} is active too and ranks first (${this.splitText(p)})` };
          }
          if (this.splitBrainAt === undefined) {
            this.counters.splitBrains++;
            this.splitBrainAt = now;
            this.reannounce(`split brain: peer ${p.node} is active too; this node stays active (${this.splitText(p)})`, now);
            this.sendNow(now, "split brain");
          } else if (now - this.splitBrainAt >= SPLIT_REANNOUNCE_MS) {
            // the peer does not hear us (a one-way path): keep the addresses here
            this.splitBrainAt = now;
            this.reannounce(`split brain with peer ${p.node} persists: it does not hear this node`, now);
          }
          return undefined;
        }
        if (this.splitBrainAt !== undefined) {
          this.splitBrainAt = undefined;
          this.peerReturned = false;
          this.reannounce(`peer ${p.node} left active (now ${p.state}) after a split brain`, now);
        }
        if (this.peerReturned) {
          this.peerReturned = false;
          this.reannounce(`peer ${p.node} heard again after a silence (now ${p.state}): it may have announced the addresses meanwhile`, now);
        }
        if (p.state === "preempting" && p.priority > me.priority && p.ready && !p.maintenance) {
          return { to: "standby", reason: `preempted by peer ${p.node} (priority ${p.priority} above ${me.priority}, ready)`, count: "preempted" };
        }
        return undefined;
      }
    }
  }

  private go(d: Decision, now: number): void {
    const from = this.st;
    if (d.count === "preempted") this.handedOverAt = now;
    this.st = d.to;
    this.since = now;
    if (d.to !== "standby") this.preemptSince = undefined;
    if (d.to !== "active") {
      this.splitBrainAt = undefined;
      this.peerReturned = false;
    }
    if (d.count) this.counters[d.count]++;
    this.out.push({ kind: "state", from, to: d.to, reason: d.reason, at: now });
    this.sendNow(now, `now ${d.to}`);
  }

  private sendNow(now: number, why: string): void {
    if (this.out.some((e) => e.kind === "send")) return;
    this.out.push({ kind: "send", why });
    this.nextSendAt = now + this.cfg.intervalMs;
  }

  private reannounce(reason: string, now: number): void {
    this.out.push({ kind: "reannounce", reason, at: now });
  }

  private emitPeer(now: number): void {
    const view = this.peer(now);
    if (!view) return;
    this.peerShownAlive = view.alive;
    this.out.push({ kind: "peer", peer: view, at: now });
  }

  private mayPreempt(p: PeerRecord): boolean {
    return this.whyNotPreempt(p) === undefined;
  }

  private whyNotPreempt(p: PeerRecord): string | undefined {
    if (!this.cfg.preempt) return "preempt is off";
    if (this.maintenance) return "maintenance";
    if (!this.hostReady) return "this node does not hold the flow state yet (not ready)";
    if (this.cfg.priority <= p.priority) return `priority ${this.cfg.priority} is not above the peer's ${p.priority}`;
    return undefined;
  }

  /** With nobody active: eligible (not in maintenance) first, then ready, then priority, then the lower node id. */
  private ranksFirst(p: PeerRecord): boolean {
    const mine = [!this.maintenance, this.ready, this.cfg.priority] as const;
    const theirs = [!p.maintenance, p.ready, p.priority] as const;
    for (let i = 0; i < mine.length; i++) if (mine[i] !== theirs[i]) return mine[i]! > theirs[i]!;
    return this.cfg.node < p.node;
  }

  private rankText(p: PeerRecord): string {
    const one = (maint: boolean, ready: boolean, prio: number, node: string): string => `${node}: ${maint ? "maintenance, " : ""}${ready ? "ready" : "not ready"}, priority ${prio}`;
    return `${one(this.maintenance, this.ready, this.cfg.priority, this.cfg.node)}; ${one(p.maintenance, p.ready, p.priority, p.node)}`;
  }

  /** Both active: the higher priority stays, then the lower node id. */
  private winsSplit(p: PeerRecord): boolean {
    return this.cfg.priority !== p.priority ? this.cfg.priority > p.priority : this.cfg.node < p.node;
  }

  private splitText(p: PeerRecord): string {
    return this.cfg.priority !== p.priority ? `priority ${this.cfg.priority} vs ${p.priority}` : `equal priority ${p.priority}, node ids ${this.cfg.node} vs ${p.node}`;
  }
}

function newLink(): LinkRecord {
  return { up: false, received: 0, late: 0, losses: 0, lastSeq: -1 };
}

function viewOf(l: LinkRecord): LinkView {
  const { lastSeq: _s, ...v } = l;
  return { ...v };
}
