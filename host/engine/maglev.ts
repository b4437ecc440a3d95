// Maglev lookup table (Eisenbud et al., NSDI 2016), weighted, built on the control plane and
// copied into every packet engine; the data plane picks `table[flowHash % table.length]`.
//
// Trade-off: weights are honoured by credit (a backend places one entry per round only when its
// accumulated weight reaches the largest weight), so shares are exact to within one entry, but a
// light backend claims its preferred slots late and loses more of them to heavy ones; changing
// one weight moves about twice the minimal set of slots. Like all Maglev tables it favours even
// load over minimal disruption: removing 1 of 100 backends also moves ~0.6% of the others' slots.

import { createHash } from "node:crypto";
import { BACKEND_NONE, DEFAULT_MAGLEV_SIZE } from "../../assembly/layout.js";

/** Slot value meaning "no backend": the table is empty because no backend has weight > 0. */
export const MAGLEV_NONE = BACKEND_NONE;

/** Default table size: prime, and large enough that 100s of backends get even shares. */
export const MAGLEV_DEFAULT_SIZE = DEFAULT_MAGLEV_SIZE;

/** Backend indices must fit in a slot and stay clear of MAGLEV_NONE. */
export const MAGLEV_MAX_BACKENDS = MAGLEV_NONE;

/** Keeps `position + skip` inside a uint32 and the table a sane size. */
export const MAGLEV_MAX_SIZE = 0x7fffffff;

export interface MaglevBackend {
  /** Stable identity (name or address): the backend's permutation depends on this alone. */
  id: string;
  /** Relative share of the table; 0 means the backend gets no slots (drained or disabled). */
  weight: number;
}

/** Deterministic primality test by trial division (sizes are at most MAGLEV_MAX_SIZE). */
export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n < 4) return true;
  if (n % 2 === 0 || n % 3 === 0) return false;
  for (let d = 5; d * d <= n; d += 6) {
    if (n % d === 0 || n % (d + 2) === 0) return false;
  }
  return true;
}

/** offset and skip of a backend's permutation, from the two halves of SHA-256(id). */
function permutation(id: string, size: number): { offset: number; skip: number } {
  const digest = createHash("sha256").update(id, "utf8").digest();
  const h1 = digest.readBigUInt64BE(0);
  const h2 = digest.readBigUInt64BE(8);
  return {
    offset: Number(h1 % BigInt(size)),
    skip: Number(h2 % BigInt(size - 1)) + 1,
  };
}

/** Code-unit order: the same on every machine, unlike localeCompare. */
function compareIds(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * Builds a weighted Maglev table of `size` slots (a prime), each holding an index into
 * `backends` or MAGLEV_NONE.
 *
 * Which backend owns each slot depends only on the set of (id, weight) pairs, not on their order;
 * but the slots hold indices into the array given, so callers that want byte-identical tables
 * across engines and appliances must pass backends in a canonical order (e.g. sorted by id).
 */
export function buildMaglev(
  backends: readonly MaglevBackend[],
  size: number = MAGLEV_DEFAULT_SIZE,
): Uint16Array {
  if (!Number.isSafeInteger(size) || size > MAGLEV_MAX_SIZE || !isPrime(size)) {
    throw new Error(`Maglev table size ${size} must be a prime number between 2 and ${MAGLEV_MAX_SIZE}`);
  }
  if (backends.length > MAGLEV_MAX_BACKENDS) {
    throw new Error(`Maglev table has ${backends.length} backends; at most ${MAGLEV_MAX_BACKENDS} are allowed`);
  }
  const seen = new Set<string>();
  for (const b of backends) {
    if (!Number.isFinite(b.weight) || b.weight < 0) {
      throw new Error(`Maglev backend "${b.id}" has weight ${b.weight}; weights must be finite and >= 0`);
    }
    if (seen.has(b.id)) {
      throw new Error(`Maglev backend id "${b.id}" appears twice; ids must be unique`);
    }
    seen.add(b.id);
  }

  const table = new Uint16Array(size).fill(MAGLEV_NONE);

  // Active backends in id order, so the round-robin below is independent of the caller's order.
  const active = backends
    .map((b, index) => ({ id: b.id, weight: b.weight, index }))
    .filter((b) => b.weight > 0)
    .sort((a, b) => compareIds(a.id, b.id));
  const n = active.length;
  if (n === 0) return table;

  const owner = new Uint16Array(n); // caller's index of each active backend
  const weight = new Float64Array(n);
  const skip = new Uint32Array(n);
  const position = new Uint32Array(n); // next slot of the backend's permutation to try
  const credit = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const b = active[i];
    const p = permutation(b.id, size);
    owner[i] = b.index;
    weight[i] = b.weight;
    skip[i] = p.skip;
    position[i] = p.offset;
    if (b.weight > maxWeight) maxWeight = b.weight;
  }

  // Each round every backend earns its weight; one whose credit reaches maxWeight places one
  // entry in its next preferred free slot. Since weight <= maxWeight, at most one per round.
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      credit[i] += weight[i];
      if (credit[i] < maxWeight) continue;
      credit[i] -= maxWeight;
      let c = position[i];
      const s = skip[i];
      while (table[c] !== MAGLEV_NONE) {
        c += s;
        if (c >= size) c -= size;
      }
      table[c] = owner[i];
      c += s;
      if (c >= size) c -= size;
      position[i] = c;
      if (++filled === size) return table;
    }
  }
}

/** Number of slots held by each backend index 0..n-1 (MAGLEV_NONE and indices >= n are not counted). */
export function maglevShares(table: Uint16Array, n: number): number[] {
  const counts = new Array<number>(n).fill(0);
  for (let i = 0; i < table.length; i++) {
    const b = table[i];
    if (b < n) counts[b]++;
  }
  return counts;
}
