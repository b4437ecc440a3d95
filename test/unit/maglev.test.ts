import { describe, it } from "node:test";
import assert from "node:assert/strict";

import {
  buildMaglev,
  isPrime,
  maglevShares,
  MAGLEV_NONE,
  type MaglevBackend,
} from "../../host/engine/maglev.js";

const M = 65537;

function equalBackends(count: number): MaglevBackend[] {
  return Array.from({ length: count }, (_, i) => ({ id: `10.1.${i >> 8}.${i & 0xff}`, weight: 1 }));
}

/** The table as backend ids, so tables built from differently ordered lists can be compared. */
function ownerIds(table: Uint16Array, backends: readonly MaglevBackend[]): string[] {
  return Array.from(table, (index) => (index === MAGLEV_NONE ? "" : backends[index].id));
}

/** Deterministic shuffle (no Math.random: a failing order must be reproducible). */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = items.slice();
  let s = seed >>> 0;
  for (let i = out.length - 1; i > 0; i--) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const j = s % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

describe("maglev: balance", () => {
  it("gives each of 100 equal backends within 1% of M/100 slots", () => {
    const backends = equalBackends(100);
    const shares = maglevShares(buildMaglev(backends, M), backends.length);
    const ideal = M / 100;
    for (const [i, count] of shares.entries()) {
      assert.ok(Math.abs(count - ideal) <= 0.01 * ideal, `${backends[i].id} holds ${count}, ideal ${ideal}`);
    }
    assert.equal(shares.reduce((a, b) => a + b, 0), M);
  });

  it("fills every slot of a small prime table (13 slots, 3 backends)", () => {
    const table = buildMaglev([{ id: "a", weight: 1 }, { id: "b", weight: 1 }, { id: "c", weight: 1 }], 13);
    assert.equal(table.length, 13);
    assert.ok(table.every((slot) => slot < 3));
    assert.deepEqual(maglevShares(table, 3).sort(), [4, 4, 5]);
  });
});

describe("maglev: minimal disruption", () => {
  it("moves under 2% of the surviving backends' entries when 1 of 100 is removed", () => {
    const before = equalBackends(100);
    const removed = before[37].id;
    const after = before.filter((b) => b.id !== removed);
    const ownersBefore = ownerIds(buildMaglev(before, M), before);
    const ownersAfter = ownerIds(buildMaglev(after, M), after);

    let kept = 0;
    let moved = 0;
    for (let slot = 0; slot < M; slot++) {
      if (ownersBefore[slot] === removed) continue;
      kept++;
      if (ownersAfter[slot] !== ownersBefore[slot]) moved++;
    }
    assert.ok(moved / kept < 0.02, `${moved} of ${kept} entries moved (${((100 * moved) / kept).toFixed(2)}%)`);
  });
});

describe("maglev: determinism", () => {
  it("gives the same backend in every slot for two builds of the same backends in any order", () => {
    const backends = equalBackends(100).map((b, i) => ({ ...b, weight: 1 + (i % 4) }));
    const reordered = shuffled(backends, 42);
    assert.deepEqual(ownerIds(buildMaglev(backends, M), backends), ownerIds(buildMaglev(backends, M), backends));
    assert.deepEqual(ownerIds(buildMaglev(reordered, M), reordered), ownerIds(buildMaglev(backends, M), backends));
  });

  it("builds a known table, so every firmware version and machine agrees on it", () => {
    // Computed independently (Python hashlib): a change here means appliances of different
    // versions would send the same flow to different backends.
    const abc = [{ id: "a", weight: 1 }, { id: "b", weight: 1 }, { id: "c", weight: 1 }];
    assert.deepEqual(Array.from(buildMaglev(abc, 13)), [2, 2, 0, 1, 2, 1, 0, 1, 0, 1, 2, 0, 0]);
    const weighted = [
      { id: "10.0.0.1", weight: 1 },
      { id: "10.0.0.2", weight: 2 },
      { id: "10.0.0.3", weight: 0 },
    ];
    assert.deepEqual(Array.from(buildMaglev(weighted, 13)), [0, 0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1]);
  });
});

describe("maglev: weights", () => {
  it("gives weights 1, 2, 3, 4 shares within 1% of 10%, 20%, 30%, 40%", () => {
    const backends = [1, 2, 3, 4].map((weight) => ({ id: `backend-${weight}`, weight }));
    const shares = maglevShares(buildMaglev(backends, M), backends.length);
    for (const [i, count] of shares.entries()) {
      const ideal = (M * backends[i].weight) / 10;
      assert.ok(Math.abs(count - ideal) <= 0.01 * ideal, `${backends[i].id} holds ${count}, ideal ${ideal}`);
    }
  });

  it("gives a weight-0 backend no slots", () => {
    const backends = [{ id: "up-1", weight: 1 }, { id: "drained", weight: 0 }, { id: "up-2", weight: 1 }];
    const table = buildMaglev(backends, M);
    assert.deepEqual(maglevShares(table, 3)[1], 0);
    assert.ok(table.every((slot) => slot === 0 || slot === 2));
  });

  it("fills every slot with MAGLEV_NONE when all weights are 0", () => {
    const table = buildMaglev([{ id: "a", weight: 0 }, { id: "b", weight: 0 }], 13);
    assert.ok(table.every((slot) => slot === MAGLEV_NONE));
    assert.ok(buildMaglev([], 13).every((slot) => slot === MAGLEV_NONE));
  });
});

describe("maglev: validation", () => {
  it("rejects a non-prime size with a message naming it", () => {
    assert.throws(() => buildMaglev(equalBackends(3), 65536), /size 65536 must be a prime/);
    assert.throws(() => buildMaglev(equalBackends(3), 1), /must be a prime/);
    assert.throws(() => buildMaglev(equalBackends(3), 13.5), /must be a prime/);
  });

  it("rejects more than 65535 backends, duplicate ids and negative weights", () => {
    assert.throws(() => buildMaglev(equalBackends(65536), M), /at most 65535/);
    assert.throws(() => buildMaglev([{ id: "a", weight: 1 }, { id: "a", weight: 1 }], 13), /appears twice/);
    assert.throws(() => buildMaglev([{ id: "a", weight: -1 }], 13), /finite and >= 0/);
  });

  it("knows which numbers are prime", () => {
    assert.deepEqual([1, 2, 3, 4, 13, 25, 65536, 65537, 251 * 257].map(isPrime),
      [false, true, true, false, true, false, false, true, false]);
  });
});
