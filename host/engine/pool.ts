// The box's packet engines: one worker thread each, fed from the board and drained back to it.
// Frames are spread by a client-side hash (dispatch.ts). All engines share slot numbers and the
// Maglev tables of a config, computed once per apply. A config applies engine by engine, each
// only once it no longer reads the copy being rewritten, so traffic never meets a half-written
// table; applies are serialised.
import * as L from "../../assembly/layout.js";
import type { Config } from "../config/schema.js";
import { Engine, dataplaneModule, type RingEntry } from "./engine.js";
import { assignSlots, decapsulates, maglevTables, newSlots, type Slots } from "./program.js";
import { sumCounters, type CounterSnapshot } from "./counters.js";
import { clientSideHash, dstIsIn } from "./dispatch.js";
import { importFlow, engineFor, type SyncFlow } from "../ha/flow-sync.js";

export interface PoolOutput {
  /** A frame an engine transmitted: send it out of board port `port`. The view dies after the call. */
  tx(port: number, frame: Uint8Array): void;
  /** A frame an engine handed to the host. The view dies after the call. */
  punt(port: number, reason: number, frame: Uint8Array): void;
  /** A transmitted frame tagged for a copy to chain device `device` (its index in chainDevices()). */
  mirror?(device: number, frame: Uint8Array): void;
  /** A flow event (EV_SIZE record) an engine reported: HA flow-state sync. The view dies after the call. */
  event?(engine: Engine, record: Uint8Array): void;
}

export interface PoolStats {
  /** Frames the host could not hand to an engine: its rx ring had no free buffer. */
  rxNoBuffer: number;
  /** Frames larger than a buffer. */
  rxTooBig: number;
}

const SETTLE_TIMEOUT_MS = 2000;
const CLOCK_TICK_MS = 5;

export class EnginePool {
  readonly slots: Slots;
  readonly stats: PoolStats = { rxNoBuffer: 0, rxTooBig: 0 };
  private serverFacing: boolean[] = [];
  /** Ports that see both directions (chain devices): the side is decided per frame by its destination. */
  private bothWays: boolean[] = [];
  private vips4 = new Set<number>();
  private vips6 = new Set<string>();
  /** The engines open IP-in-IP to us (CFGF_DECAP): spread by the inner packet's client, as they serve it. */
  private openTunnels = false;
  private applying: Promise<void> = Promise.resolve();
  private clockTimer?: NodeJS.Timeout;
  private stopped = false;
  private readonly started = performance.now();
  private readonly pendingInstalls: Uint8Array[][];
  private installTimer?: NodeJS.Timeout;

  private constructor(readonly engines: Engine[], slots: Slots, private config: Config, private readonly out: PoolOutput) {
    this.slots = slots;
    this.pendingInstalls = engines.map(() => []);
    this.noteSides(config);
    this.tickClock();
    this.clockTimer = setInterval(() => this.tickClock(), CLOCK_TICK_MS);
    for (const e of engines) void this.drainLoop(e);
  }

  /** Starts n engines on config. Their outputs go to out. */
  static async create(config: Config, n: number, out: PoolOutput): Promise<EnginePool> {
    await dataplaneModule();
    const slots = newSlots(config.sizes.maxServices, config.sizes.maxBackends);
    const engines: Engine[] = [];
    for (let i = 0; i < n; i++) engines.push(await Engine.create(config, { id: i, slots, threaded: true }));
    return new EnginePool(engines, slots, config, out);
  }

  get current(): Config {
    return this.config;
  }

  private noteSides(config: Config): void {
    this.serverFacing = config.ports.map((p) => config.backends.some((b) => b.via === p.index));
    const devicePorts = new Set(config.chains.flatMap((c) => c.hops.flatMap((h) => [...h.devices, ...h.alternates].map((d) => d.port))));
    this.bothWays = config.ports.map((p) => devicePorts.has(p.index) && !this.serverFacing[p.index]);
    this.vips4 = new Set(config.services.filter((s) => s.vip.family === 4).map((s) => new DataView(s.vip.bytes.buffer, s.vip.bytes.byteOffset, 4).getUint32(0)));
    this.vips6 = new Set(config.services.filter((s) => s.vip.family === 6).map((s) => Buffer.from(s.vip.bytes).toString("hex")));
    this.openTunnels = decapsulates(config);
  }

  private tickClock(): void {
    const ms = performance.now() - this.started;
    for (const e of this.engines) e.clock = ms;
  }

  /** Hands frames received on board port `port` to the engines. */
  dispatch(port: number, frames: readonly Uint8Array[]): void {
    this.push(port, frames, 0);
  }

  /**
   * Hands back frames the host held (a flow-recovery query): each to the engine dispatch() would
   * choose, with aux (RXA_* flags, e.g. RXA_NO_RECOVER) in its rx descriptor.
   */
  reinject(port: number, frames: readonly Uint8Array[], aux: number): void {
    this.push(port, frames, aux);
  }

  private push(port: number, frames: readonly Uint8Array[], aux: number): void {
    const n = this.engines.length;
    const side = this.serverFacing[port] ?? false;
    const both = this.bothWays[port] ?? false;
    const open = this.openTunnels;
    let kicked = 0;
    for (const f of frames) {
      const i = n === 1 ? 0 : clientSideHash(f, both ? !dstIsIn(f, this.vips4, this.vips6) : side, open) % n;
      const e = this.engines[i];
      if (!e.rxPush(port, f, aux)) {
        if (f.length > e.maxFrame) this.stats.rxTooBig++;
        else this.stats.rxNoBuffer++;
        continue;
      }
      kicked |= 1 << i;
    }
    for (let i = 0; i < n; i++) if (kicked & (1 << i)) this.engines[i].kick();
  }

  /** Drains an engine whenever its tx doorbell rings (and every 50 ms in any case). */
  private async drainLoop(e: Engine): Promise<void> {
    const words = e.controlWords;
    const bellIndex = L.CB_TX_BELL / 4;
    const tx = (x: RingEntry): void => {
      this.out.tx(x.port, x.frame);
      if (x.reason) this.out.mirror?.(x.reason - 1, x.frame); // the copy a mirror hop asked for
    };
    const punt = (x: RingEntry): void => this.out.punt(x.port, x.reason, x.frame);
    const event = this.out.event && ((r: Uint8Array): void => this.out.event!(e, r));
    while (!this.stopped) {
      const seen = Atomics.load(words, bellIndex);
      e.drainTx(tx);
      e.drainPunt(punt);
      e.drainDropped();
      if (event) e.drainEvents(event);
      const w = Atomics.waitAsync(words, bellIndex, seen, 50);
      if (w.async) await w.value;
    }
  }

  /** Makes config live on every engine; resolves once all of them run it. */
  apply(config: Config): Promise<void> {
    const next = this.applying.then(() => this.applyNow(config));
    this.applying = next.catch(() => undefined);
    return next;
  }

  private async applyNow(config: Config): Promise<void> {
    assignSlots(this.slots, config, performance.now() - this.started);
    const tables = maglevTables(config, this.slots);
    for (const e of this.engines) {
      await this.settled(e);
      e.apply(config, tables);
    }
    this.config = config;
    this.noteSides(config);
  }

  private async settled(e: Engine): Promise<void> {
    const deadline = performance.now() + SETTLE_TIMEOUT_MS;
    while (!e.settled) {
      if (performance.now() > deadline) throw new Error(`engine ${e.id} did not take up the previous configuration within ${SETTLE_TIMEOUT_MS} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /**
   * Flow entries from the HA peer, each to the engine its packets will reach, installed before
   * that engine's next batch. Records that do not fit a sync ring now wait (and are retried) in
   * order; returns how many are still waiting.
   */
  install(flows: readonly SyncFlow[]): { queued: number; refused: Record<string, number> } {
    const refused: Record<string, number> = {};
    const n = this.engines.length;
    for (const f of flows) {
      const i = engineFor(f, n);
      const r = importFlow(this.engines[i], f);
      if (!r.ok) {
        refused[r.reason] = (refused[r.reason] ?? 0) + 1;
        continue;
      }
      this.pendingInstalls[i].push(r.record);
    }
    this.pushInstalls();
    return { queued: this.pendingInstalls.reduce((a, q) => a + q.length, 0), refused };
  }

  private pushInstalls(): void {
    clearTimeout(this.installTimer);
    let waiting = false;
    this.engines.forEach((e, i) => {
      const q = this.pendingInstalls[i];
      if (!q.length) return;
      const took = e.pushInstalls(q);
      q.splice(0, took);
      e.kick();
      if (q.length) waiting = true;
    });
    if (waiting && !this.stopped) this.installTimer = setTimeout(() => this.pushInstalls(), 1);
  }

  /**
   * Resolves once every engine has installed every record handed to install() before this call
   * (those still queued here included): a frame re-injected afterwards meets its entry. Rejects
   * when that takes longer than timeoutMs, or the pool stops.
   */
  async installsTaken(timeoutMs = SETTLE_TIMEOUT_MS): Promise<void> {
    const marks = this.engines.map((e, i) => (e.installsPushed + this.pendingInstalls[i].length) >>> 0);
    const deadline = performance.now() + timeoutMs;
    while (!this.engines.every((e, i) => e.installsTaken(marks[i]))) {
      if (this.stopped) throw new Error("the engine pool stopped before its engines took their installs");
      if (performance.now() > deadline) throw new Error(`the engines did not take their flow installs within ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 1));
    }
  }

  /** Install records handed to install() that no engine has taken yet. */
  get installsWaiting(): number {
    return this.pendingInstalls.reduce((a, q) => a + q.length, 0);
  }

  /** Counters of all engines, summed, read while they run. */
  counters(): CounterSnapshot {
    return sumCounters(this.engines.map((e) => e.counters()));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearInterval(this.clockTimer);
    clearTimeout(this.installTimer);
    await Promise.all(this.engines.map((e) => e.stop()));
  }
}
