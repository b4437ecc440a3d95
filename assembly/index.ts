// The packet engine's exports. The host creates the memory, writes the control block, calls init
// once, then hands batches over through the rx ring and calls run; it never calls per packet.
import { LAYOUT_MAGIC, LAYOUT_VERSION, CB_MAGIC, CB_VERSION } from "./layout";
import { loadLayout, setScratch } from "./state";
import { runBatch } from "./pipeline";
import { buildIndex } from "./services";
import { hashWords } from "./hash";

/** Reads the layout from the control block at base. Returns 0, or 1 if the block is not ours. */
export function init(base: usize): u32 {
  if (load<u32>(base + CB_MAGIC) != LAYOUT_MAGIC || load<u32>(base + CB_VERSION) != LAYOUT_VERSION) return 1;
  loadLayout(base);
  return 0;
}

/** Points this instance at its own scratch area: the host's instance must not share an engine's. */
export function useScratch(addr: usize): void {
  setScratch(addr);
}

/** Processes up to max frames waiting on the rx ring. Returns the number processed. */
export function run(max: u32): u32 {
  return runBatch(max);
}

/** Derives the service index of an inactive config copy from its records. */
export function prepareConfig(copy: usize): void {
  buildIndex(copy);
}

/** The hash used for words at p (tests and tools: which backend Maglev gives a flow). */
export function hash(p: usize, words: u32, seed: u32): u32 {
  return hashWords(p, words, seed);
}
