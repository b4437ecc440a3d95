// HeartbeatService: the main thread's handle on the redundant pair's heartbeats and election,
// which run in a worker thread of their own (heartbeat-worker.ts) with their own UDP sockets, so
// that a busy main thread delays neither a heartbeat nor the noticing of a dead peer.
//
// The host tells it what only the host knows (ready: this node holds the pair's flow state; the
// running configuration's version and digest; maintenance) and acts on what it says: `state`
// (become active: take the VIPs and send gratuitous ARPs; become standby/init: forward nothing),
// `reannounce` (send the gratuitous ARPs again), `peer` (for display and config sync).
//
// If the worker dies unexpectedly, the service reports state `init` (forward nothing: the peer
// will take over when the heartbeats stop) and starts a new worker after restartDelayMs.

import { EventEmitter } from "node:events";
import { Worker } from "node:worker_threads";
import type { HaConfig } from "../config/schema.js";
import type { ElectionCounters, PeerView } from "./election.js";
import { REJECT_REASONS, type RejectReason } from "./inbox.js";
import { UNKNOWN_DIGEST, type HaState } from "./protocol.js";

export interface HaStateChange {
  from: HaState;
  to: HaState;
  reason: string;
  /** ms since 1970 (the worker's monotonic clock, anchored to the wall clock when it started). */
  at: number;
}

export interface HaReannounce {
  reason: string;
  at: number;
}

export interface HaLinkStats {
  local: string;
  peer: string;
  port: number;
  /** The socket is bound to local:port. */
  bound: boolean;
  /** Why it is not bound (retried every second). */
  error?: string;
  /** Heartbeats sent on it. */
  sent: number;
  sendErrors: number;
  /** Valid heartbeats received on it. */
  received: number;
  /** Of those, sent on a link of another name (crossed cables or addresses). */
  crossed: number;
  /** The peer's heartbeats arrive on it. */
  up: boolean;
  late: number;
  /** Times it went silent while the peer was still heard (or not). */
  losses: number;
  lastHeardAt?: number;
}

export interface HaStats extends ElectionCounters {
  node: string;
  bootId: string;
  state: HaState;
  stateSince: number;
  ready: boolean;
  links: Record<string, HaLinkStats>;
  accepted: number;
  rejected: Record<RejectReason, number>;
  /** By source "address:port". */
  rejectedBy: Record<string, Partial<Record<RejectReason, number>>>;
  /** Valid heartbeats carrying this node's own id (a loop, or a peer configured with the same id). */
  ownNode: number;
  peer?: PeerView;
}

export interface HeartbeatEvents {
  state: [HaStateChange];
  peer: [PeerView];
  reannounce: [HaReannounce];
}

export interface HeartbeatServiceOptions {
  /** Where lines for the log go (links that cannot bind, a worker that died). */
  log?: (line: string) => void;
  /** This node holds the full flow state of the pair (default false). */
  ready?: boolean;
  configVersion?: number;
  configDigest?: string;
  /** Held in standby by the operator (default false). */
  maintenance?: boolean;
  /** A worker that died unexpectedly is started again after this long, ms (default 1000; 0: never). */
  restartDelayMs?: number;
}

// ---- between the threads (internal) ----------------------------------------------------------------

export interface WorkerStart {
  config: HaConfig;
  ready: boolean;
  configVersion: number;
  configDigest: string;
  maintenance: boolean;
}

export type ToWorker =
  | { type: "configure"; config: HaConfig }
  | { type: "ready"; ready: boolean }
  | { type: "config-version"; version: number; digest: string }
  | { type: "maintenance"; on: boolean }
  | { type: "stats"; id: number }
  | { type: "stop" };

export type FromWorker =
  | { type: "started"; bootId: string }
  | ({ type: "state" } & HaStateChange)
  | ({ type: "reannounce" } & HaReannounce)
  | { type: "peer"; peer: PeerView }
  | { type: "stats"; id: number; stats: HaStats }
  | { type: "log"; text: string }
  | { type: "stopped" };

/** How long stop() waits for the worker's goodbye before ending it. */
const STOP_TIMEOUT_MS = 1000;

export class HeartbeatService extends EventEmitter<HeartbeatEvents> {
  private config: HaConfig | undefined;
  private readonly log: (line: string) => void;
  private readonly flags: Omit<WorkerStart, "config">;
  private readonly restartDelayMs: number;
  private worker: Worker | undefined;
  private ended = false;
  private restartTimer: NodeJS.Timeout | undefined;
  private lastState: HaState = "init";
  private lastPeer: PeerView | undefined;
  private statsId = 0;
  private readonly pending = new Map<number, (s: HaStats) => void>();

  constructor(opts: HeartbeatServiceOptions = {}) {
    super();
    this.log = opts.log ?? (() => {});
    this.flags = {
      ready: opts.ready ?? false,
      configVersion: opts.configVersion ?? 0,
      configDigest: opts.configDigest ?? UNKNOWN_DIGEST,
      maintenance: opts.maintenance ?? false,
    };
    this.restartDelayMs = opts.restartDelayMs ?? 1000;
  }

  /** The state last reported by the worker ("init" before start and after a crash). */
  get state(): HaState {
    return this.lastState;
  }

  /** The peer as last reported, if ever heard. */
  get peer(): PeerView | undefined {
    return this.lastPeer;
  }

  /**
   * Starts the worker with the ha section of the running configuration; resolves once it runs
   * (links that cannot bind yet are retried every second and shown in stats).
   */
  start(config: HaConfig): Promise<void> {
    this.config = config;
    return this.spawn();
  }

  private spawn(): Promise<void> {
    const config = this.config;
    if (this.ended) return Promise.reject(new Error("the heartbeat service was stopped"));
    if (!config) return Promise.reject(new Error("the heartbeat service has no configuration"));
    if (this.worker) return Promise.resolve();
    const w = new Worker(new URL("./heartbeat-worker.js", import.meta.url), { workerData: { config, ...this.flags } satisfies WorkerStart });
    this.worker = w;
    return new Promise((resolve, reject) => {
      let started = false;
      w.on("message", (m: FromWorker) => {
        if (m.type === "started") {
          started = true;
          resolve();
        }
        this.fromWorker(m);
      });
      w.on("error", (e) => this.log(`ha: heartbeat worker failed: ${e.message}`));
      w.on("exit", (code) => {
        if (this.worker === w) this.worker = undefined;
        for (const done of this.pending.values()) done(this.emptyStats());
        this.pending.clear();
        if (!started) reject(new Error(`the heartbeat worker ended before it started (exit code ${code})`));
        if (this.ended) return;
        // died on its own: forward nothing until a new worker has decided again
        this.setState({ from: this.lastState, to: "init", reason: `heartbeat worker ended (exit code ${code})`, at: Date.now() });
        if (this.restartDelayMs > 0) {
          this.restartTimer = setTimeout(() => {
            this.restartTimer = undefined;
            this.spawn().catch((e: Error) => this.log(`ha: ${e.message}`));
          }, this.restartDelayMs);
        }
      });
    });
  }

  /** New settings (a committed configuration's ha section). A new node id starts the election over; links are rebound as needed. */
  configure(config: HaConfig): void {
    this.config = config;
    this.post({ type: "configure", config });
  }

  /** Whether this node holds the full flow state of the pair (it may then preempt, and ranks above one that does not). */
  setReady(ready: boolean): void {
    this.flags.ready = ready;
    this.post({ type: "ready", ready });
  }

  /** The running configuration's version and SHA-256 (64 lowercase hex digits), advertised to the peer. */
  setConfig(version: number, digest: string): void {
    this.flags.configVersion = version;
    this.flags.configDigest = digest;
    this.post({ type: "config-version", version, digest });
  }

  /** Holds this node in standby (an operator's `request ha standby`): it leaves active at once and never becomes active while on. */
  setMaintenance(on: boolean): void {
    this.flags.maintenance = on;
    this.post({ type: "maintenance", on });
  }

  /** Counters, per link, refusals by reason and source, the peer. */
  stats(): Promise<HaStats> {
    const w = this.worker;
    if (!w) return Promise.resolve(this.emptyStats());
    const id = ++this.statsId;
    return new Promise((resolve) => {
      this.pending.set(id, resolve);
      w.postMessage({ type: "stats", id } satisfies ToWorker);
    });
  }

  /**
   * Stops for good, politely: the last heartbeat says standby and maintenance, so the peer takes
   * over at once rather than after its dead time; a `state` event to standby comes first if active.
   */
  async stop(): Promise<void> {
    this.ended = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const w = this.worker;
    if (!w) return;
    const exited = new Promise<void>((r) => w.once("exit", () => r()));
    w.postMessage({ type: "stop" } satisfies ToWorker);
    const t = setTimeout(() => void w.terminate(), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(t);
  }

  /** Ends the worker at once without a word, as a crash would: the peer notices only by the silence. */
  async terminate(): Promise<void> {
    this.ended = true;
    if (this.restartTimer) clearTimeout(this.restartTimer);
    const w = this.worker;
    if (w) await w.terminate();
  }

  private post(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  private fromWorker(m: FromWorker): void {
    switch (m.type) {
      case "state": {
        const { type: _t, ...change } = m;
        this.setState(change);
        break;
      }
      case "reannounce": {
        const { type: _t, ...r } = m;
        this.emit("reannounce", r);
        break;
      }
      case "peer":
        this.lastPeer = m.peer;
        this.emit("peer", m.peer);
        break;
      case "stats":
        this.pending.get(m.id)?.(m.stats);
        this.pending.delete(m.id);
        break;
      case "log":
        this.log(m.text);
        break;
      case "started":
      case "stopped":
        break;
    }
  }

  private setState(change: HaStateChange): void {
    if (change.from === change.to) return;
    this.lastState = change.to;
    this.emit("state", change);
  }

  private emptyStats(): HaStats {
    const rejected = Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>;
    return {
      node: this.config?.node ?? "", bootId: "", state: this.lastState, stateSince: 0, ready: this.flags.ready, links: {}, accepted: 0, rejected, rejectedBy: {}, ownNode: 0,
      takeovers: 0, handovers: 0, preempted: 0, splitBrains: 0, foreign: 0,
    };
  }
}
