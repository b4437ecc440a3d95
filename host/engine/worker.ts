// A packet engine's thread: the data-plane wasm on the engine's shared memory, running batches
// while the rx ring has frames and sleeping on the rx doorbell (Atomics.wait) when it is empty.
// It wakes at least every IDLE_WAKE_MS to sweep expired flows and acknowledge config generations.
import { workerData } from "node:worker_threads";
import * as L from "../../assembly/layout.js";

interface EngineWorkerData {
  module: WebAssembly.Module;
  memory: WebAssembly.Memory;
  controlBlock: number;
}

const IDLE_WAKE_MS = 100;

const { module, memory, controlBlock } = workerData as EngineWorkerData;
const x = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as {
  _start(): void;
  init(base: number): number;
  run(max: number): number;
};
x._start();
if (x.init(controlBlock) !== 0) throw new Error("engine worker: the control block is not a Flowswitch layout");

const words = new Int32Array(memory.buffer, controlBlock, L.CB_SIZE / 4);
const RX_BELL = L.CB_RX_BELL / 4;
const TX_BELL = L.CB_TX_BELL / 4;
const IDLE = L.CB_IDLE / 4;
const STOP = L.CB_STOP / 4;
const BATCHES = L.CB_BATCHES_RUN / 4;

while (Atomics.load(words, STOP) === 0) {
  const bell = Atomics.load(words, RX_BELL);
  const n = x.run(L.MAX_BATCH);
  Atomics.add(words, BATCHES, 1);
  if (n > 0) {
    Atomics.add(words, TX_BELL, 1);
    Atomics.notify(words, TX_BELL);
    continue;
  }
  // Nothing came in: sleep until the host rings, or the sweep is due. While asleep the engine
  // holds no config copy, so the host may rewrite either one.
  Atomics.store(words, IDLE, 1);
  Atomics.wait(words, RX_BELL, bell, IDLE_WAKE_MS);
  Atomics.store(words, IDLE, 0);
}
