// Flow recovery between appliances. A mid-flow TCP packet that reaches a box with no flow entry for
// it (a routing change moved the client's path, a site appliance was replaced) would be given a
// fresh Maglev choice and, with another server than the flow's, reset. Instead the engine punts it;
// the host holds it and asks its recovery peers WHOHAS; a peer holding the flow answers HAVE with
// the entry in names; the host installs it and re-injects the held packets, which then follow the
// flow's own server. Nobody has it (every peer said NONE) or nobody answers in time: the packets
// are re-injected for the local choice, as if recovery were off. Pure logic: sending, installing,
// re-injecting and timers are the caller's.
//
// Choices:
// - One query per key: later packets of a flow being asked about are held with the first, up to
//   maxHeldPerFlow; beyond that they are dropped (counted). Released for a local choice, a packet
//   could go to another server than the flow's and reset it; dropped, TCP retransmits it once the
//   answer is in.
// - Past maxPending queries, a new key is not asked about: its packet goes to the local choice at
//   once (overflow). Memory and the peers' work stay bounded under a flood of stray segments.
// - The installed entry takes the answer's service, backend, rule, flags and time left, but the
//   ingress port of the packet that missed here: board port numbers are each box's own.
// - The first HAVE wins; later ones for the same query are duplicates (two boxes had the flow).
//   An answer for a query already given up is late.

import * as L from "../../assembly/layout.js";
import type { SyncFlow } from "../ha/flow-sync.js";
import { LEVELS_LIMITS, type HaveMsg, type NoneMsg, type WhohasMsg, type WireFlow } from "./protocol.js";

/** A punted packet held while its flow is asked about; handed back as it came. */
export interface HeldFrame {
  frame: Uint8Array;
  /** Board port it came in on. */
  port: number;
  /** The engine that punted it, when the caller re-injects per engine. */
  engine?: number;
}

export type ReleaseHow = "installed" | "local";

/** What onMiss did with the packet. */
export type MissOutcome = "asked" | "held" | "dropped" | "overflow" | "no-peers";

export interface RecoveryClientOptions {
  /** Who is asked, as send() and the answers' `from` name them (node ids or "address:port"). */
  peers: readonly string[];
  /** How long an unanswered query holds its packets, ms. */
  timeoutMs: number;
  /** Queries in flight at most. */
  maxPending: number;
  /** Packets held per query at most; default 8. */
  maxHeldPerFlow?: number;
  send(peer: string, msg: WhohasMsg): void;
  /** Puts the recovered entry into the engines; the packets are released once it resolves. */
  install(flow: SyncFlow, from: string): Promise<void> | void;
  /** Re-injects packets: "installed" after an install, "local" for the box's own choice. */
  release(frames: HeldFrame[], how: ReleaseHow): void;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (timer: unknown) => void;
  /** First query id; default random. Ids then count up (mod 2^32). */
  firstId?: number;
}

export interface RecoveryCounters {
  /** WHOHAS queries started (one per key, sent to every peer). */
  queries: number;
  /** Queries answered by a HAVE. */
  answered: number;
  /** NONE answers received. */
  none: number;
  /** Queries given up unanswered. */
  timeouts: number;
  /** Packets not asked about: maxPending queries were in flight. */
  overflow: number;
  /** HAVE answers after the first for the same query. */
  duplicates: number;
  /** Packets held (the first of a query and those after it). */
  held: number;
  /** Packets dropped: their query already held maxHeldPerFlow. */
  dropped: number;
  releasedInstalled: number;
  releasedLocal: number;
  /** Answers for a query given up already, or for no query of ours. */
  lateAnswers: number;
  /** Installs that failed (threw or rejected): their packets went to the local choice. */
  installFailed: number;
  /** send() threw for a peer. */
  sendErrors: number;
}

interface Pending {
  id: number;
  family: 4 | 6;
  key: Uint8Array;
  keyText: string;
  frames: HeldFrame[];
  nones: Set<string>;
  timer: unknown;
  installing: boolean;
}

/** Outcomes of finished queries remembered, to tell a duplicate from a late answer. */
const REMEMBERED = 4096;

export class RecoveryClient {
  private readonly peers: readonly string[];
  private readonly maxHeld: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (timer: unknown) => void;
  private nextId: number;
  private readonly byKey = new Map<string, Pending>();
  private readonly byId = new Map<number, Pending>();
  /** id -> how it ended; insertion order = oldest first. */
  private readonly done = new Map<number, ReleaseHow>();
  private readonly counts: RecoveryCounters = {
    queries: 0, answered: 0, none: 0, timeouts: 0, overflow: 0, duplicates: 0, held: 0, dropped: 0,
    releasedInstalled: 0, releasedLocal: 0, lateAnswers: 0, installFailed: 0, sendErrors: 0,
  };

  constructor(private readonly o: RecoveryClientOptions) {
    this.peers = [...new Set(o.peers)];
    this.maxHeld = o.maxHeldPerFlow ?? 8;
    this.setTimer = o.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = o.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
    this.nextId = (o.firstId ?? Math.floor(Math.random() * 0x1_0000_0000)) >>> 0;
  }

  /** A punted packet without a flow entry. `frame` must be the caller's own copy: it is held as is. */
  onMiss(family: 4 | 6, key: Uint8Array, frame: Uint8Array, port: number, engine?: number): MissOutcome {
    const held: HeldFrame = engine === undefined ? { frame, port } : { frame, port, engine };
    const keyText = `${family}:${Buffer.from(key).toString("hex")}`;
    const p = this.byKey.get(keyText);
    if (p) {
      if (p.frames.length >= this.maxHeld) {
        this.counts.dropped++;
        return "dropped";
      }
      p.frames.push(held);
      this.counts.held++;
      return "held";
    }
    if (this.peers.length === 0) {
      this.releaseLocal([held]);
      return "no-peers";
    }
    if (this.byKey.size >= this.o.maxPending) {
      this.counts.overflow++;
      this.releaseLocal([held]);
      return "overflow";
    }
    const q: Pending = { id: this.freshId(), family, key: Uint8Array.from(key), keyText, frames: [held], nones: new Set(), timer: undefined, installing: false };
    this.byKey.set(keyText, q);
    this.byId.set(q.id, q);
    this.counts.held++;
    this.counts.queries++;
    q.timer = this.setTimer(() => this.onTimeout(q), this.o.timeoutMs);
    const msg: WhohasMsg = { type: "whohas", id: q.id, family, key: q.key };
    for (const peer of this.peers) {
      try {
        this.o.send(peer, msg);
      } catch {
        this.counts.sendErrors++;
      }
    }
    return "asked";
  }

  /** A HAVE from `from`: the first for a query in flight installs the flow and releases its packets. */
  onHave(from: string, msg: HaveMsg): void {
    const q = this.byId.get(msg.id);
    if (!q) {
      if (this.done.get(msg.id) === "installed") this.counts.duplicates++;
      else this.counts.lateAnswers++;
      return;
    }
    if (q.installing) {
      this.counts.duplicates++;
      return;
    }
    this.counts.answered++;
    q.installing = true;
    this.clearTimer(q.timer);
    const flow = this.syncFlow(q, msg.flow);
    let pending: Promise<void> | void;
    try {
      pending = this.o.install(flow, from);
    } catch {
      this.counts.installFailed++;
      this.finish(q, "local");
      return;
    }
    if (pending instanceof Promise) {
      pending.then(
        () => this.finish(q, "installed"),
        () => {
          this.counts.installFailed++;
          this.finish(q, "local");
        },
      );
    } else this.finish(q, "installed");
  }

  /** A NONE from `from`: once every peer has said none, the packets go to the local choice at once. */
  onNone(from: string, msg: NoneMsg): void {
    this.counts.none++;
    const q = this.byId.get(msg.id);
    if (!q) {
      if (this.done.get(msg.id) !== "installed") this.counts.lateAnswers++; // after an install: just another peer's answer
      return;
    }
    if (q.installing || !this.peers.includes(from)) return;
    q.nones.add(from);
    if (q.nones.size < this.peers.length) return;
    this.clearTimer(q.timer);
    this.finish(q, "local");
  }

  /** Gives every query up and releases its packets for the local choice (on stop or reconfiguration). */
  flush(): void {
    for (const q of [...this.byKey.values()]) {
      if (q.installing) continue; // its install finishes it
      this.clearTimer(q.timer);
      this.finish(q, "local");
    }
  }

  /** Queries in flight. */
  get pending(): number {
    return this.byKey.size;
  }

  counters(): RecoveryCounters {
    return { ...this.counts };
  }

  private onTimeout(q: Pending): void {
    if (this.byId.get(q.id) !== q || q.installing) return;
    this.counts.timeouts++;
    this.finish(q, "local");
  }

  private finish(q: Pending, how: ReleaseHow): void {
    this.byKey.delete(q.keyText);
    this.byId.delete(q.id);
    this.done.delete(q.id);
    this.done.set(q.id, how);
    if (this.done.size > REMEMBERED) this.done.delete(this.done.keys().next().value!);
    if (how === "installed") {
      this.counts.releasedInstalled += q.frames.length;
      this.o.release(q.frames, "installed");
    } else this.releaseLocal(q.frames);
  }

  private releaseLocal(frames: HeldFrame[]): void {
    this.counts.releasedLocal += frames.length;
    this.o.release(frames, "local");
  }

  private syncFlow(q: Pending, w: WireFlow): SyncFlow {
    const f: SyncFlow = {
      family: q.family, key: q.key, service: w.service, backend: w.backend, flags: w.flags | L.FF_VALID,
      port: q.frames[0]!.port, leftMs: w.leftMs, kind: L.EVK_INSTALL,
    };
    if (w.rule !== undefined) f.rule = w.rule;
    return f;
  }

  private freshId(): number {
    while (this.byId.has(this.nextId)) this.nextId = (this.nextId + 1) >>> 0;
    const id = this.nextId;
    this.nextId = (this.nextId + 1) >>> 0;
    return id;
  }
}

/** A flow entry as the answering box finds it (SyncFlow has these fields). */
export interface FoundFlow {
  service: string;
  backend: string;
  rule?: string;
  flags: number;
  port: number;
  leftMs: number;
}

export interface RecoveryResponderOptions {
  /** The live entry under this key in this box's engines, if any. */
  find(family: 4 | 6, key: Uint8Array): FoundFlow | undefined;
}

export interface ResponderCounters {
  asked: number;
  had: number;
  none: number;
}

/** The answering side: a WHOHAS gets HAVE with the entry in names, or NONE. */
export class RecoveryResponder {
  private readonly counts: ResponderCounters = { asked: 0, had: 0, none: 0 };

  constructor(private readonly o: RecoveryResponderOptions) {}

  answer(msg: WhohasMsg): HaveMsg | NoneMsg {
    this.counts.asked++;
    const f = this.o.find(msg.family, msg.key);
    const flow = f && sayable(f);
    if (!flow) {
      this.counts.none++;
      return { type: "none", id: msg.id };
    }
    this.counts.had++;
    return { type: "have", id: msg.id, flow };
  }

  counters(): ResponderCounters {
    return { ...this.counts };
  }
}

const NAME = (s: string | undefined): boolean => typeof s === "string" && s.length > 0 && s.length <= LEVELS_LIMITS.nameLength && !/[\u0000-\u001f\u007f]/.test(s);

/** The entry as a HAVE carries it; undefined for one that is expired or that the wire cannot say (then the answer is NONE). */
function sayable(f: FoundFlow): WireFlow | undefined {
  if (!(f.leftMs >= 1) || !NAME(f.service) || !NAME(f.backend) || (f.rule !== undefined && !NAME(f.rule))) return undefined;
  const w: WireFlow = {
    service: f.service, backend: f.backend, flags: f.flags & 0xff, port: f.port & 0xff,
    leftMs: Math.min(Math.floor(f.leftMs), LEVELS_LIMITS.leftMs),
  };
  if (f.rule !== undefined) w.rule = f.rule;
  return w;
}
