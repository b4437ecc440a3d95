// When each probe of a backend is due.
//
// Probes sit on a fixed grid from the check's start (probe k at start + k * interval), each moved
// by a small jitter that is a hash of (backend, k). So 100 backends configured at once do not probe
// in lockstep, the average interval is exact (no drift from timer lateness or probe duration), and
// a run is reproducible: the same names give the same schedule.

/** Each probe moves by up to this fraction of the interval either way (HAProxy's spread-checks). */
export const JITTER_FRACTION = 0.1;

/** FNV-1a, 32 bits: a stable seed from a backend name. */
function fnv1a(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** A uniform number in [-1, 1) from (seed, k): the murmur3 finaliser over the pair. */
function unit(seed: number, k: number): number {
  let h = (seed ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  h = (h ^ (h >>> 16)) >>> 0;
  return h / 0x80000000 - 1;
}

/** Milliseconds after the check's start at which probe k is due; probe 0 runs at once. */
export function probeDue(backend: string, k: number, intervalMs: number): number {
  if (k === 0) return 0;
  return k * intervalMs + unit(fnv1a(backend), k) * JITTER_FRACTION * intervalMs;
}

/**
 * The next probe to run once probe `k` has finished `elapsedMs` after the start: the next grid
 * slot still ahead. Slots that passed while a slow probe was in flight are skipped, not run in a
 * burst, so there is never more than one probe in flight and never a catch-up storm.
 */
export function nextProbe(backend: string, k: number, intervalMs: number, elapsedMs: number): { k: number; delayMs: number } {
  // Every slot before floor(elapsed / interval) - 1 is due at least 1.9 intervals ago: skip them.
  let next = Math.max(k + 1, Math.floor(elapsedMs / intervalMs) - 1);
  while (probeDue(backend, next, intervalMs) < elapsedMs) next++;
  return { k: next, delayMs: Math.max(0, probeDue(backend, next, intervalMs) - elapsedMs) };
}
