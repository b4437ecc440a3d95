// One packet engine: a data-plane wasm instance on its own memory, with the host's side of its
// rings. In-process (pcap runner, fixtures, benchmarks, the demo) the host calls run() itself;
// threaded (the appliance) a worker runs the engine and the host only feeds and drains rings,
// rings the rx doorbell, and rewrites config copies once the engine no longer reads them.
import { readFile } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import { randomInt } from "node:crypto";
import { endianness } from "node:os";
import * as L from "../../assembly/layout.js";
import type { Config } from "../config/schema.js";
import { planMemory, type RegionPlan } from "./memory-plan.js";
import { assignSlots, maglevTables, newSlots, writeConfigCopy, type Slots } from "./program.js";
import { readCounters, type CounterSnapshot } from "./counters.js";

interface EngineExports {
  init(base: number): number;
  run(max: number): number;
  prepareConfig(copy: number): void;
  useScratch(addr: number): void;
  hash(p: number, words: number, seed: number): number;
  _start(): void;
}

const WASM_URL = new URL("../../dataplane.wasm", import.meta.url);
let compiled: Promise<WebAssembly.Module> | undefined;

/** The data-plane module, compiled once per process. */
export function dataplaneModule(): Promise<WebAssembly.Module> {
  compiled ??= readFile(WASM_URL).then((b) => WebAssembly.compile(b), (e: Error) => {
    throw new Error(`cannot read the data plane ${WASM_URL.pathname} (run \`npm run build\`): ${e.message}`);
  });
  return compiled;
}

export interface EngineOptions {
  id?: number;
  /** Flow-table hash seed; random per boot unless a test needs it fixed. */
  seed?: number;
  /** Slot numbering shared with the box's other engines (one is made if absent). */
  slots?: Slots;
  /** Run the engine in a worker thread of its own (the appliance) instead of in run() calls. */
  threaded?: boolean;
}

export interface RingEntry {
  port: number;
  reason: number;
  buf: number;
  frame: Uint8Array; // a view into engine memory: copy it before the buffer is reused
}

export class Engine {
  readonly id: number;
  readonly plan: RegionPlan;
  readonly memory: WebAssembly.Memory;
  readonly slots: Slots;
  config: Config;
  private readonly x: EngineExports;
  private readonly u8: Uint8Array;
  private readonly dv: DataView;
  private gen = 0;
  private readonly words: Int32Array; // the control block, for Atomics
  private readonly all32: Int32Array; // the whole memory, for Atomics on ring heads and tails
  private worker?: Worker;
  private readonly freeBufs: Int32Array;
  private nFree: number;
  /** The buffer slot the last successful rxPush filled (callers map results back by it). */
  lastPushedBuffer = -1;

  private constructor(config: Config, module: WebAssembly.Module, opts: EngineOptions) {
    if (endianness() !== "LE") throw new Error("the data plane's tables are written little-endian: this host is not");
    this.id = opts.id ?? 0;
    this.config = config;
    this.plan = planMemory(config.sizes);
    this.memory = new WebAssembly.Memory({ initial: this.plan.pages, maximum: this.plan.pages, shared: true });
    this.u8 = new Uint8Array(this.memory.buffer);
    this.dv = new DataView(this.memory.buffer);
    this.words = new Int32Array(this.memory.buffer, this.plan.controlBlock, L.CB_SIZE / 4);
    this.all32 = new Int32Array(this.memory.buffer);
    this.x = new WebAssembly.Instance(module, { env: { memory: this.memory } }).exports as unknown as EngineExports;
    this.x._start();
    this.slots = opts.slots ?? newSlots(config.sizes.maxServices, config.sizes.maxBackends);
    this.writeControlBlock(opts.seed ?? randomInt(0, 2 ** 32));
    if (this.x.init(this.plan.controlBlock) !== 0) throw new Error("the data plane rejected its control block (layout version mismatch: rebuild)");
    if (opts.threaded) this.x.useScratch(this.plan.controlScratch); // this instance only builds indexes
    this.freeBufs = new Int32Array(this.plan.bufferCount);
    for (let i = 0; i < this.plan.bufferCount; i++) this.freeBufs[i] = this.plan.bufferCount - 1 - i;
    this.nFree = this.plan.bufferCount;
    this.apply(config);
    if (opts.threaded) {
      this.worker = new Worker(new URL("./worker.js", import.meta.url), {
        workerData: { module, memory: this.memory, controlBlock: this.plan.controlBlock },
      });
    }
  }

  static async create(config: Config, opts: EngineOptions = {}): Promise<Engine> {
    return new Engine(config, await dataplaneModule(), opts);
  }

  get threaded(): boolean {
    return this.worker !== undefined;
  }

  /** The worker thread, for its error and exit events. */
  get thread(): Worker | undefined {
    return this.worker;
  }

  /**
   * Tells the engine frames are waiting. The bell always moves, so an engine about to sleep sees
   * the change and does not; only one that already sleeps costs a wake-up call.
   */
  kick(): void {
    Atomics.add(this.words, L.CB_RX_BELL / 4, 1);
    if (Atomics.load(this.words, L.CB_IDLE / 4) === 1) Atomics.notify(this.words, L.CB_RX_BELL / 4);
  }

  /** The tx doorbell's value: wait for it to change with Atomics.waitAsync to learn of output. */
  get txBell(): number {
    return Atomics.load(this.words, L.CB_TX_BELL / 4);
  }

  get controlWords(): Int32Array {
    return this.words;
  }

  /**
   * May the host rewrite the inactive config copy? Yes once the engine has started a batch on
   * the newest generation, or sleeps (it then reads the generation afresh when it wakes).
   */
  get settled(): boolean {
    if (!this.worker) return true;
    return Atomics.load(this.words, L.CB_ACK_GEN / 4) === (this.gen | 0) || Atomics.load(this.words, L.CB_IDLE / 4) === 1;
  }

  /** Stops the worker (it finishes its batch) and waits for the thread to end. */
  async stop(): Promise<void> {
    if (!this.worker) return;
    Atomics.store(this.words, L.CB_STOP / 4, 1);
    this.kick();
    const w = this.worker;
    this.worker = undefined;
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => void w.terminate().then(() => resolve()), 2000);
      w.once("exit", () => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  private writeControlBlock(seed: number): void {
    const p = this.plan;
    const cb = p.controlBlock;
    const w = (off: number, v: number): void => this.dv.setUint32(cb + off, v, true);
    w(L.CB_MAGIC, L.LAYOUT_MAGIC);
    w(L.CB_VERSION, L.LAYOUT_VERSION);
    w(L.CB_ENGINE_ID, this.id);
    w(L.CB_FLOW_SEED, seed >>> 0);
    w(L.CB_RX_RING, p.rxRing);
    w(L.CB_TX_RING, p.txRing);
    w(L.CB_PUNT_RING, p.puntRing);
    w(L.CB_FREE_RING, p.freeRing);
    w(L.CB_EVENT_RING, p.eventRing);
    w(L.CB_SYNC_RING, p.syncRing);
    for (const r of [p.rxRing, p.txRing, p.puntRing, p.freeRing]) this.dv.setUint32(r + L.RING_MASK, p.ringCapacity - 1, true);
    for (const r of [p.eventRing, p.syncRing]) this.dv.setUint32(r + L.RING_MASK, L.EVENT_RING_CAPACITY - 1, true);
    w(L.CB_BUF_BASE, p.buffers);
    w(L.CB_BUF_COUNT, p.bufferCount);
    w(L.CB_BUF_SIZE, p.bufferSize);
    w(L.CB_COUNTERS, p.counters);
    w(L.CB_COUNTER_WORDS, p.counterWords);
    w(L.CB_BACKEND_COUNTERS, p.backendCounterIndex);
    w(L.CB_EXTRA_COUNTERS, p.extraCounterIndex);
    w(L.CB_FLOW4_BASE, p.flow4);
    w(L.CB_FLOW4_BUCKETS, p.flow4Buckets);
    w(L.CB_FLOW6_BASE, p.flow6);
    w(L.CB_FLOW6_BUCKETS, p.flow6Buckets);
    w(L.CB_CONFIG0, p.config[0]);
    w(L.CB_CONFIG1, p.config[1]);
    w(L.CB_MAX_SERVICES, this.config.sizes.maxServices);
    w(L.CB_MAX_BACKENDS, this.config.sizes.maxBackends);
    w(L.CB_SCRATCH, p.scratch);
  }

  /**
   * Makes config live: written to the inactive copy, indexed, then switched to by one store. The
   * config's sizes must equal the boot sizes (changing them needs new engines).
   */
  apply(config: Config, tables?: Map<string, Uint16Array>): void {
    const a = JSON.stringify(config.sizes);
    const b = JSON.stringify(this.config.sizes);
    if (a !== b) throw new Error("data-plane sizes changed: they take effect at the next boot");
    if (!tables) {
      assignSlots(this.slots, config, this.clock);
      tables = maglevTables(config, this.slots);
    }
    if (!this.settled) throw new Error("engine still reads the previous configuration: wait until settled");
    const next = (this.gen + 1) >>> 0;
    const copy = writeConfigCopy(this.memory.buffer, this.plan, (next & 1) as 0 | 1, config, this.slots, tables);
    this.x.prepareConfig(copy);
    Atomics.store(this.words, L.CB_CONFIG_GEN / 4, next | 0);
    this.gen = next;
    this.config = config;
  }

  /** The engine's coarse clock, in ms (kept in 32 bits; the engine compares wrap-safe). */
  get clock(): number {
    return this.dv.getUint32(this.plan.controlBlock + L.CB_NOW_MS, true);
  }

  set clock(ms: number) {
    Atomics.store(this.words, L.CB_NOW_MS / 4, Math.floor(ms) | 0);
  }

  /** Largest frame a buffer takes, leaving room to encapsulate or reply in place. */
  get maxFrame(): number {
    return this.plan.bufferSize - L.HEADROOM - L.TAILROOM;
  }

  get freeBuffers(): number {
    return this.nFree;
  }

  /**
   * Copies a frame into a free buffer and posts it on the rx ring, with aux (RXA_* flags: e.g.
   * RXA_NO_RECOVER for a frame re-injected after a recovery query). False: no buffer, or too big.
   */
  rxPush(port: number, frame: Uint8Array, aux = 0): boolean {
    if (frame.length > this.maxFrame || this.nFree === 0) return false;
    const buf = this.freeBufs[--this.nFree];
    this.lastPushedBuffer = buf;
    const addr = this.plan.buffers + buf * this.plan.bufferSize + L.HEADROOM;
    this.u8.set(frame, addr);
    const ring = this.plan.rxRing;
    const head = this.dv.getUint32(ring + L.RING_HEAD, true);
    const d = ring + L.RING_ENTRIES + (head & (this.plan.ringCapacity - 1)) * L.DESC_SIZE;
    this.dv.setUint32(d + L.DESC_ADDR, addr, true);
    this.dv.setUint16(d + L.DESC_LEN, frame.length, true);
    this.dv.setUint8(d + L.DESC_PORT, port);
    this.dv.setUint32(d + L.DESC_BUF, buf, true);
    this.dv.setUint32(d + L.DESC_AUX, aux >>> 0, true); // always: ring slots are reused
    Atomics.store(this.all32, (ring + L.RING_HEAD) / 4, (head + 1) | 0); // publish
    return true;
  }

  /** Runs one batch (at most MAX_BATCH frames). In-process engines only. */
  run(max = L.MAX_BATCH): number {
    if (this.worker) throw new Error("a threaded engine runs in its worker");
    return this.x.run(max);
  }

  /** Runs until the rx ring is empty. */
  runAll(): number {
    let total = 0;
    for (let n = this.run(L.MAX_BATCH); n > 0; n = this.run(L.MAX_BATCH)) total += n;
    return total;
  }

  /** Takes every entry off a ring the engine produces, and gives each buffer back after fn. */
  private drain(ring: number, fn?: (e: RingEntry) => void): number {
    const head = Atomics.load(this.all32, (ring + L.RING_HEAD) / 4) >>> 0;
    let tail = this.dv.getUint32(ring + L.RING_TAIL, true);
    let n = 0;
    for (; tail !== head; tail = (tail + 1) >>> 0, n++) {
      const d = ring + L.RING_ENTRIES + (tail & (this.plan.ringCapacity - 1)) * L.DESC_SIZE;
      const buf = this.dv.getUint32(d + L.DESC_BUF, true);
      if (fn) {
        const addr = this.dv.getUint32(d + L.DESC_ADDR, true);
        const len = this.dv.getUint16(d + L.DESC_LEN, true);
        fn({ port: this.dv.getUint8(d + L.DESC_PORT), reason: this.dv.getUint8(d + L.DESC_REASON), buf, frame: this.u8.subarray(addr, addr + len) });
      }
      this.freeBufs[this.nFree++] = buf;
    }
    Atomics.store(this.all32, (ring + L.RING_TAIL) / 4, tail | 0); // buffers free again
    return n;
  }

  drainTx(fn?: (e: RingEntry) => void): number {
    return this.drain(this.plan.txRing, fn);
  }

  drainPunt(fn?: (e: RingEntry) => void): number {
    return this.drain(this.plan.puntRing, fn);
  }

  drainDropped(fn?: (e: RingEntry) => void): number {
    return this.drain(this.plan.freeRing, fn);
  }

  /**
   * Takes every flow event off the event ring: fn sees each EV_SIZE record (a view: copy what
   * it keeps). Returns how many there were.
   */
  drainEvents(fn: (record: Uint8Array) => void): number {
    const ring = this.plan.eventRing;
    const head = Atomics.load(this.all32, (ring + L.RING_HEAD) / 4) >>> 0;
    let tail = this.dv.getUint32(ring + L.RING_TAIL, true);
    let n = 0;
    for (; tail !== head; tail = (tail + 1) >>> 0, n++) {
      const at = ring + L.RING_ENTRIES + (tail & (L.EVENT_RING_CAPACITY - 1)) * L.EV_SIZE;
      fn(this.u8.subarray(at, at + L.EV_SIZE));
    }
    Atomics.store(this.all32, (ring + L.RING_TAIL) / 4, tail | 0);
    return n;
  }

  /**
   * Queues EV_SIZE records (EVK_INSTALL) for the engine to install before its next batch, as many
   * as the sync ring has room for; returns how many were taken. Kick the engine afterwards.
   */
  pushInstalls(records: readonly Uint8Array[]): number {
    const ring = this.plan.syncRing;
    const head = this.dv.getUint32(ring + L.RING_HEAD, true);
    const tail = Atomics.load(this.all32, (ring + L.RING_TAIL) / 4) >>> 0;
    const room = L.EVENT_RING_CAPACITY - ((head - tail) >>> 0);
    const n = Math.min(room, records.length);
    for (let i = 0; i < n; i++) {
      const at = ring + L.RING_ENTRIES + (((head + i) >>> 0) & (L.EVENT_RING_CAPACITY - 1)) * L.EV_SIZE;
      this.u8.set(records[i].subarray(0, L.EV_SIZE), at);
    }
    Atomics.store(this.all32, (ring + L.RING_HEAD) / 4, (head + n) | 0); // publish
    return n;
  }

  /** Install records published on the sync ring so far: a free-running u32 mark for installsTaken. */
  get installsPushed(): number {
    return this.dv.getUint32(this.plan.syncRing + L.RING_HEAD, true);
  }

  /** Has the engine installed (or counted as failed) every record pushed up to mark (wrap-safe)? */
  installsTaken(mark = this.installsPushed): boolean {
    const tail = Atomics.load(this.all32, (this.plan.syncRing + L.RING_TAIL) / 4) >>> 0;
    return ((tail - mark) | 0) >= 0;
  }

  counters(): CounterSnapshot {
    return readCounters(this.memory.buffer, this.plan, this.config, this.slots);
  }

  /** The data-plane hash of words at a scratch copy of key (tests: which backend Maglev gives). */
  hashOf(key: Uint8Array, seed: number): number {
    const at = this.plan.scratch + L.SCR_HOST;
    this.u8.set(key, at);
    return this.x.hash(at, key.length / 4, seed) >>> 0;
  }

  /** Raw engine memory, for readers of tables (show flows) and tests. */
  get bytes(): Uint8Array {
    return this.u8;
  }
}
