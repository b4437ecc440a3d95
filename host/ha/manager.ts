// The appliance's side of the redundant pair: the role the election gives (heartbeat.ts, in its own
// thread) put into force, and the sync channel that keeps the standby able to take over without
// losing a connection: the active's shared configuration, its flow entries and its neighbours.
//
//   active:  engine events -> batches (every FLUSH_MS or MAX_FLOWS_PER_MESSAGE) -> standby
//            on every new connection: hello, config if the peer's differs, resync (full scan)
//            every refresh period: a full scan again (the standby's copies see no packets, so
//            they would age out under a flow that is busy here)
//   standby: config -> applied (own node parts kept), flows -> installed in the engines,
//            resync end -> ready (heartbeats say so: only now may it pre-empt)
//
// After a split, whichever node holds the newer configuration sends it; the other applies it and
// keeps its own as the rollback (the host decides where that lives).
import { randomUUID } from "node:crypto";
import type { ConfigInput } from "../config/schema.js";
import type { EnginePool } from "../engine/pool.js";
import type { Engine } from "../engine/engine.js";
import { exportEvent, scanFlows, type SyncFlow } from "./flow-sync.js";
import { SyncChannel, type FrameCodec } from "./sync-channel.js";
import { MAX_FLOWS_PER_MESSAGE, fromWire, toWire, type SyncMsg, type WireFlow } from "./sync-messages.js";

export type HaRole = "init" | "standby" | "active";

/** What the manager needs of the appliance. */
export interface HaHost {
  pool(): EnginePool | undefined;
  /** Puts a role into force: engines (standby: forward nothing), ports, announcements. */
  setRole(role: HaRole, reason: string): Promise<void>;
  /** The active sends its gratuitous ARPs / neighbour advertisements again (split brain healed). */
  reannounce(): void;
  /** This node's shared configuration now. */
  sharedConfig(): { version: number; digest: string; input: ConfigInput };
  /** The peer's newer shared configuration: apply it (own parts kept), keep ours as the rollback. */
  adoptConfig(version: number, input: ConfigInput): Promise<{ ok: true } | { ok: false; message: string }>;
  neighbors(): [string, string, number][];
  learnNeighbor(ip: string, mac: string, port: number): void;
  log(line: string): void;
}

/** The election, as heartbeat.ts offers it. */
export interface Election {
  on(event: "state", fn: (e: { from: string; to: string; reason: string }) => void): unknown;
  on(event: "reannounce", fn: () => void): unknown;
  setReady(ready: boolean): void;
  setConfig(version: number, digest: string): void;
}

export interface HaSyncStats {
  role: HaRole;
  connected: boolean;
  ready: boolean;
  flowsSent: number;
  flowsReceived: number;
  installRefused: Record<string, number>;
  resyncsSent: number;
  resyncsReceived: number;
  lastResync?: { flows: number; ms: number; at: number };
  unacked: number;
  configsAdopted: number;
  configRefused: number;
  eventsDropped: number;
}

const FLUSH_MS = 5;
/** Unacknowledged batches the active keeps before it stops queueing events and falls back to a resync. */
const MAX_UNACKED = 256;
const NEIGHBORS_EVERY_MS = 1000;
const NEIGHBORS_REFRESH_MS = 10_000;

export interface HaManagerOptions {
  node: string;
  link: { local: string; peer: string; port: number };
  codec: FrameCodec<SyncMsg>;
  election: Election;
  /** How often the active copies its whole tables over again (ms). */
  refreshMs: number;
}

export class HaManager {
  private role: HaRole = "init";
  private readonly channel: SyncChannel<SyncMsg>;
  private readonly bootId = randomUUID();
  private seq = 0;
  private pending: WireFlow[] = [];
  private flushTimer?: NodeJS.Timeout;
  private refreshTimer?: NodeJS.Timeout;
  private neighborTimer?: NodeJS.Timeout;
  private lastNeighbors = "";
  private neighborsSentAt = 0;
  private peerHello?: { node: string; configVersion: number; configDigest: string; role: string };
  private resyncing = false;
  private ackedSeq = 0;
  private readyState = false;
  readonly stats: HaSyncStats;

  constructor(private readonly host: HaHost, private readonly opts: HaManagerOptions) {
    this.stats = { role: "init", connected: false, ready: false, flowsSent: 0, flowsReceived: 0, installRefused: {}, resyncsSent: 0, resyncsReceived: 0, unacked: 0, configsAdopted: 0, configRefused: 0, eventsDropped: 0 };
    this.channel = new SyncChannel<SyncMsg>({
      listen: { address: opts.link.local, port: opts.link.port },
      peer: { address: opts.link.peer, port: opts.link.port },
      dials: opts.link.local < opts.link.peer,
      codec: opts.codec,
      log: (l) => host.log(l),
    });
    this.channel.on("up", () => this.connected());
    this.channel.on("down", () => this.disconnected());
    this.channel.on("message", (m: SyncMsg) => void this.received(m));
    // preempting is still a standby in the data plane: it becomes active when the peer has stepped down
    opts.election.on("state", (e) => void this.roleChanged(e.to === "preempting" ? "standby" : (e.to as HaRole), e.reason));
    opts.election.on("reannounce", () => host.reannounce());
  }

  async start(): Promise<void> {
    await this.channel.start();
    this.configChanged();
    this.neighborTimer = setInterval(() => this.sendNeighbors(), NEIGHBORS_EVERY_MS);
    this.neighborTimer.unref();
  }

  get currentRole(): HaRole {
    return this.role;
  }

  /** This node's shared configuration changed (a commit, a reload, an adopted one): tell the election, and the standby. */
  configChanged(): void {
    const c = this.host.sharedConfig();
    this.opts.election.setConfig(c.version, c.digest);
    if (this.role === "active" && this.channel.connected && this.peerHello && this.peerHello.configDigest !== c.digest) this.sendConfig();
  }

  private setReady(ready: boolean): void {
    if (this.readyState === ready) return;
    this.readyState = ready;
    this.stats.ready = ready;
    this.opts.election.setReady(ready);
  }

  private async roleChanged(to: HaRole, reason: string): Promise<void> {
    const from = this.role;
    if (from === to) return;
    this.role = to;
    this.stats.role = to;
    this.host.log(`ha: ${from} -> ${to}: ${reason}`);
    await this.host.setRole(to, reason);
    clearInterval(this.refreshTimer);
    if (to === "active") {
      this.setReady(true); // the active's own tables are the flow state
      this.refreshTimer = setInterval(() => this.resync(), this.opts.refreshMs);
      this.refreshTimer.unref();
      if (this.channel.connected) this.hello();
    } else {
      this.pending = [];
      this.setReady(false); // complete again after the active's next resync
      if (this.channel.connected) this.hello();
    }
  }

  // ---- the active's side ------------------------------------------------------------------------

  /** An engine reported a flow event (the pool's event callback). */
  onEvent(engine: Engine, record: Uint8Array): void {
    if (this.role !== "active" || !this.channel.connected) return;
    if (this.seq - this.ackedSeq > MAX_UNACKED) {
      this.stats.eventsDropped++;
      return;
    }
    const f = exportEvent(engine, record);
    if (!f) return;
    this.pending.push(toWire(f));
    if (this.pending.length >= MAX_FLOWS_PER_MESSAGE) this.flush();
    else this.flushTimer ??= setTimeout(() => this.flush(), FLUSH_MS);
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (!this.pending.length) return;
    const flows = this.pending;
    this.pending = [];
    if (this.channel.send({ type: "flows", seq: ++this.seq, flows })) this.stats.flowsSent += flows.length;
    this.stats.unacked = this.seq - this.ackedSeq;
  }

  private sendConfig(): void {
    const c = this.host.sharedConfig();
    this.channel.send({ type: "config", version: c.version, digest: c.digest, input: JSON.stringify(c.input) });
  }

  /** Copies every live flow entry to the standby, between resync begin and end. */
  private resync(): void {
    const pool = this.host.pool();
    if (this.role !== "active" || !this.channel.connected || !pool || this.resyncing) return;
    this.resyncing = true;
    const started = performance.now();
    this.flush();
    const seq = ++this.seq;
    this.channel.send({ type: "resync", phase: "begin", seq, total: 0 });
    let batch: WireFlow[] = [];
    let total = 0;
    const send = (): void => {
      if (!batch.length) return;
      this.channel.send({ type: "flows", seq: ++this.seq, flows: batch });
      total += batch.length;
      batch = [];
    };
    for (const e of pool.engines) {
      scanFlows(e, (f: SyncFlow) => {
        batch.push(toWire(f));
        if (batch.length >= MAX_FLOWS_PER_MESSAGE) send();
      });
    }
    send();
    this.channel.send({ type: "resync", phase: "end", seq: ++this.seq, total });
    this.stats.flowsSent += total;
    this.stats.resyncsSent++;
    this.stats.lastResync = { flows: total, ms: Math.round(performance.now() - started), at: Date.now() };
    this.resyncing = false;
  }

  private sendNeighbors(): void {
    if (this.role !== "active" || !this.channel.connected) return;
    const entries = this.host.neighbors();
    const text = JSON.stringify(entries);
    // unchanged ones too, now and then: the standby's entries age like any learnt neighbour
    if (text === this.lastNeighbors && Date.now() - this.neighborsSentAt < NEIGHBORS_REFRESH_MS) return;
    if (this.channel.send({ type: "neighbors", entries })) {
      this.lastNeighbors = text;
      this.neighborsSentAt = Date.now();
    }
  }

  // ---- both sides -------------------------------------------------------------------------------

  private hello(): void {
    const c = this.host.sharedConfig();
    this.channel.send({ type: "hello", node: this.opts.node, bootId: this.bootId, role: this.role, configVersion: c.version, configDigest: c.digest });
  }

  private connected(): void {
    this.stats.connected = true;
    this.peerHello = undefined;
    this.lastNeighbors = "";
    this.hello();
  }

  private disconnected(): void {
    this.stats.connected = false;
    this.peerHello = undefined;
    this.pending = [];
    if (this.role !== "active") this.setReady(false);
  }

  private async received(m: SyncMsg): Promise<void> {
    switch (m.type) {
      case "hello": {
        this.peerHello = m;
        const mine = this.host.sharedConfig();
        // the newer configuration goes to the other node, whatever the roles (a healed split)
        if (m.configDigest !== mine.digest && mine.version >= m.configVersion) this.sendConfig();
        if (this.role === "active" && m.role !== "active") {
          this.sendNeighbors();
          this.resync();
        }
        return;
      }
      case "config": {
        const mine = this.host.sharedConfig();
        if (m.digest === mine.digest || m.version < mine.version) return;
        let input: ConfigInput;
        try {
          input = JSON.parse(m.input) as ConfigInput;
        } catch {
          this.stats.configRefused++;
          return this.host.log("ha: the peer's configuration is not JSON: kept ours");
        }
        const r = await this.host.adoptConfig(m.version, input);
        if (r.ok) {
          this.stats.configsAdopted++;
          this.host.log(`ha: adopted the peer's configuration (version ${m.version}, ${m.digest.slice(0, 12)})`);
          this.configChanged();
        } else {
          this.stats.configRefused++;
          this.host.log(`ha: the peer's configuration cannot run here: ${r.message}`);
        }
        return;
      }
      case "flows": {
        if (this.role === "active") return; // a stale stream from before a role change
        const pool = this.host.pool();
        if (!pool) return;
        const r = pool.install(m.flows.map(fromWire));
        for (const [k, v] of Object.entries(r.refused)) this.stats.installRefused[k] = (this.stats.installRefused[k] ?? 0) + v;
        this.stats.flowsReceived += m.flows.length;
        this.channel.send({ type: "ack", seq: m.seq });
        return;
      }
      case "ack":
        this.ackedSeq = Math.max(this.ackedSeq, m.seq);
        this.stats.unacked = this.seq - this.ackedSeq;
        return;
      case "resync":
        if (this.role === "active") return;
        this.channel.send({ type: "ack", seq: m.seq });
        if (m.phase === "begin") return; // not ready since the connection came up; a refresh keeps it ready
        this.stats.resyncsReceived++;
        await this.installed();
        return this.setReady(true);
      case "neighbors":
        if (this.role === "active") return;
        for (const [ip, mac, port] of m.entries) this.host.learnNeighbor(ip, mac, port);
        return;
    }
  }

  /** Resolves once the engines have taken every install handed to them. */
  private async installed(): Promise<void> {
    const pool = this.host.pool();
    while (pool && pool.installsWaiting > 0) await new Promise((r) => setTimeout(r, 2));
  }

  status(): HaSyncStats & { channel: SyncChannel<SyncMsg>["stats"] } {
    return { ...this.stats, channel: this.channel.stats };
  }

  async stop(): Promise<void> {
    clearTimeout(this.flushTimer);
    clearInterval(this.refreshTimer);
    clearInterval(this.neighborTimer);
    await this.channel.stop();
  }
}
