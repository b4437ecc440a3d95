// The number authority's persistent state: every lease that still holds numbers (active or held
// back) and the next lease id, in one JSON file. The supervisor saves it before it sends a grant,
// renewal or release, so a restart never grants a number twice and never reuses a lease id.
//
// A save is atomic and durable: write <file>.tmp, fsync it, rename it over <file>, fsync the
// folder. After a power cut the file is the old state or the new one, never a mix.
//
// Trade-off: loading is strict. A file that exists but cannot be read or does not check out
// (truncated, hand-edited, overlapping leases) is an error, never "start empty": starting empty
// would hand out numbers that holders are still using. Only a missing file means a first start.

import { mkdir, open, readFile, rename } from "node:fs/promises";
import { dirname } from "node:path";

export const LEASE_STORE_VERSION = 1;

/** One lease as kept: its block of numbers, its holder, and when it ends. */
export interface LeaseRecord {
  leaseId: number;
  pool: string;
  endSystem: string;
  first: number;
  count: number;
  /** Seconds granted by the last grant or renewal (what that answer said). */
  leaseS: number;
  /** Longest leaseS ever granted for this lease: how long the numbers are held back once it ends. */
  holdS: number;
  /** The supervisor's clock (ms since 1970): when the lease expires, or when it was released. */
  endsAt: number;
  released: boolean;
  /** The request that last changed the lease, so that its answer can be given again after a restart. */
  lastRequest: { requestId: number; op: "lease" | "renew" | "release" };
}

export interface LeaseState {
  /** Never reused: the next lease granted gets this id. */
  nextLeaseId: number;
  leases: LeaseRecord[];
}

/** Where the authority keeps its state. */
export interface LeaseStore {
  /** Where, for messages ("/var/lib/flowswitch/supervisor-leases.json"). */
  readonly where: string;
  /** The saved state; undefined when none was ever saved. Throws LeaseStoreError when it cannot be trusted. */
  load(): Promise<LeaseState | undefined>;
  /** Resolves once the state is durable. */
  save(state: LeaseState): Promise<void>;
}

export class LeaseStoreError extends Error {}

const ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/;
const U32 = 0xffffffff;
const MAX_LEASE_S = 86_400;

/** Checks a stored text from top to bottom; throws LeaseStoreError naming the first problem. */
export function parseLeaseState(text: string, where = "lease store"): LeaseState {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new LeaseStoreError(`${where} is not JSON (${(e as Error).message})`);
  }
  const bad = (path: string, why: string): never => {
    throw new LeaseStoreError(`${where}: ${path} ${why}`);
  };
  if (!isObject(raw)) return bad("(top)", "is not an object");
  if (raw.version !== LEASE_STORE_VERSION) bad("version", `is ${JSON.stringify(raw.version)}, expected ${LEASE_STORE_VERSION}`);
  const nextLeaseId = raw.nextLeaseId;
  if (!isInt(nextLeaseId, 1, Number.MAX_SAFE_INTEGER)) return bad("nextLeaseId", "is not a whole number of 1 or more");
  if (!Array.isArray(raw.leases)) return bad("leases", "is not a list");
  const seen = new Set<number>();
  const leases = raw.leases.map((l: unknown, i: number): LeaseRecord => {
    const p = `leases[${i}]`;
    if (!isObject(l)) return bad(p, "is not an object");
    const r = l as Record<string, unknown>;
    if (!isInt(r.leaseId, 1, Number.MAX_SAFE_INTEGER)) bad(`${p}.leaseId`, "is not a lease id");
    if ((r.leaseId as number) >= nextLeaseId) bad(`${p}.leaseId`, `is not below nextLeaseId ${nextLeaseId}`);
    if (seen.has(r.leaseId as number)) bad(`${p}.leaseId`, "appears twice");
    seen.add(r.leaseId as number);
    for (const k of ["pool", "endSystem"] as const) if (typeof r[k] !== "string" || !ID.test(r[k] as string)) bad(`${p}.${k}`, "is not an id");
    if (!isInt(r.first, 0, U32)) bad(`${p}.first`, "is not a number 0-4294967295");
    if (!isInt(r.count, 1, 65_536) || (r.first as number) + (r.count as number) - 1 > U32) bad(`${p}.count`, "is not a count 1-65536 within 0-4294967295");
    if (!isInt(r.leaseS, 1, MAX_LEASE_S)) bad(`${p}.leaseS`, "is not 1-86400 seconds");
    if (!isInt(r.holdS, 1, MAX_LEASE_S) || (r.holdS as number) < (r.leaseS as number)) bad(`${p}.holdS`, "is not 1-86400 seconds, at least leaseS");
    if (!isInt(r.endsAt, 0, Number.MAX_SAFE_INTEGER)) bad(`${p}.endsAt`, "is not a time in ms");
    if (typeof r.released !== "boolean") bad(`${p}.released`, "is not true or false");
    const q = r.lastRequest;
    if (!isObject(q) || !isInt(q.requestId, 0, U32) || !["lease", "renew", "release"].includes(q.op as string)) bad(`${p}.lastRequest`, "is not { requestId, op }");
    const lq = q as { requestId: number; op: LeaseRecord["lastRequest"]["op"] };
    return {
      leaseId: r.leaseId as number, pool: r.pool as string, endSystem: r.endSystem as string, first: r.first as number, count: r.count as number,
      leaseS: r.leaseS as number, holdS: r.holdS as number, endsAt: r.endsAt as number, released: r.released as boolean,
      lastRequest: { requestId: lq.requestId, op: lq.op },
    };
  });
  // Two leases of a pool sharing a number is exactly what the store exists to prevent.
  const byPool = new Map<string, LeaseRecord[]>();
  for (const l of leases) byPool.set(l.pool, [...(byPool.get(l.pool) ?? []), l]);
  for (const [pool, list] of byPool) {
    list.sort((a, b) => a.first - b.first);
    for (let i = 1; i < list.length; i++) {
      const a = list[i - 1]!;
      const b = list[i]!;
      if (b.first <= a.first + a.count - 1) bad("leases", `of pool ${pool} overlap: lease ${a.leaseId} and lease ${b.leaseId}`);
    }
  }
  return { nextLeaseId, leases };
}

export function serializeLeaseState(s: LeaseState): string {
  return `${JSON.stringify({ version: LEASE_STORE_VERSION, nextLeaseId: s.nextLeaseId, leases: s.leases })}\n`;
}

/** The state in a file, written atomically (temp file, fsync, rename, fsync of the folder). */
export class FileLeaseStore implements LeaseStore {
  constructor(readonly where: string) {}

  async load(): Promise<LeaseState | undefined> {
    let text: string;
    try {
      text = await readFile(this.where, "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw new LeaseStoreError(`cannot read ${this.where}: ${(e as Error).message}`);
    }
    return parseLeaseState(text, this.where);
  }

  async save(state: LeaseState): Promise<void> {
    const dir = dirname(this.where);
    await mkdir(dir, { recursive: true });
    const tmp = `${this.where}.tmp`;
    const f = await open(tmp, "w", 0o600);
    try {
      await f.writeFile(serializeLeaseState(state));
      await f.sync();
    } finally {
      await f.close();
    }
    await rename(tmp, this.where);
    const d = await open(dir, "r");
    try {
      await d.sync();
    } finally {
      await d.close();
    }
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function isInt(v: unknown, min: number, max: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}
