// Saved configurations in the flash config partition: the running configuration, its rollback
// history and a pending commit-confirmed deadline, kept so that a power cut at any moment leaves
// either the previous save or the new one, never a mix and never nothing.
//
// The partition holds two record slots, A (first half) and B (second half). A save writes the
// whole record into the slot that does not hold the newest valid record, syncs, and is done: there
// is no separate "commit" write that could itself be torn. On load, each slot's header and payload
// digest are checked and the valid slot with the highest generation wins; a slot torn by a power
// cut fails its digest, and the other slot (the previous save) is used.
//
// Slot layout (little-endian):
//   0   8 bytes  magic "FSCONFIG"
//   8   u32      format version (1: payload is gzip-compressed JSON)
//   12  u32      payload length in bytes
//   16  u64      generation: one more than the newest record on flash at the time of the save
//   24  32 bytes SHA-256 of the payload
//   56  8 bytes  reserved, zero
//   64  payload
// The payload repeats the generation, so a header torn between an old and a new record (new
// generation, old digest and payload) is refused rather than taken for the newer save.
//
// Gzip because the history holds up to 50 whole configurations; JSON because it is what an
// operator can read from a flash dump (`tail -c +65 | gunzip`) and what the console exports.
import { createHash } from "node:crypto";
import { gzip, gunzip } from "node:zlib";
import { promisify } from "node:util";
import type { Flash, Partition } from "../../board/flash.js";
import type { ConfigInput } from "./schema.js";

const gzipAsync = promisify(gzip);
const gunzipAsync = promisify(gunzip);

export const STORE_MAGIC = "FSCONFIG";
export const STORE_FORMAT_VERSION = 1;
export const STORE_HEADER_SIZE = 64;
/** Commits kept: the running one and 49 rollbacks, as Junos keeps rollback 0-49. */
export const STORE_MAX_COMMITS = 50;
/** Commits a save never trims below to make room: the running one and 20 rollbacks. */
export const STORE_MIN_COMMITS = 21;
const SLOT_ALIGN = 4096;
const MAX_UNCOMPRESSED = 64 * 1024 * 1024; // a record that inflates past this is not ours

/** One commit: who, when, why, and the whole configuration as written (JSON). */
export interface CommitRecord {
  seq: number;
  /** Milliseconds since the epoch. */
  time: number;
  user: string;
  comment?: string;
  config: ConfigInput;
}

/** A `commit confirmed` waiting for its confirmation. */
export interface PendingConfirmRecord {
  /** Milliseconds since the epoch: unconfirmed by then, `restore` is put back. */
  deadline: number;
  /** The commit that waits for confirmation. */
  seq: number;
  minutes: number;
  /** The last confirmed commit, kept whole so that history trimming can never lose it. */
  restore: CommitRecord;
}

export interface StoreState {
  /** Newest first: commits[0] is the running configuration. */
  commits: CommitRecord[];
  pendingConfirm?: PendingConfirmRecord;
}

export type SlotName = "A" | "B";

export type SlotStatus =
  | { slot: SlotName; state: "valid"; generation: number; bytes: number }
  | { slot: SlotName; state: "empty" }
  | { slot: SlotName; state: "invalid"; reason: string };

export interface LoadedState extends StoreState {
  generation: number;
  slot: SlotName;
  /** What the other slot holds: the previous save, or why it is unusable (torn by a power cut). */
  other: SlotStatus;
}

/** Neither slot holds a valid record: the caller boots a default configuration. */
export class NoSavedConfigError extends Error {
  constructor(readonly slots: [SlotStatus, SlotStatus]) {
    super(`no saved configuration: ${slots.map(describeSlot).join("; ")}`);
    this.name = "NoSavedConfigError";
  }
}

export class ConfigStoreError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigStoreError";
  }
}

export function describeSlot(s: SlotStatus): string {
  switch (s.state) {
    case "valid": return `slot ${s.slot}: generation ${s.generation} (${s.bytes} bytes)`;
    case "empty": return `slot ${s.slot}: empty`;
    case "invalid": return `slot ${s.slot}: ${s.reason}`;
  }
}

interface Decoded {
  status: SlotStatus;
  state?: StoreState;
}

export class ConfigStore {
  /** Bytes of each slot, header included. */
  readonly slotSize: number;
  /** The slot holding the newest valid record, once known. */
  private newest?: { slot: SlotName; generation: number };
  private scanned = false;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly partition: Partition) {
    this.slotSize = Math.floor(partition.size / 2 / SLOT_ALIGN) * SLOT_ALIGN;
    if (this.slotSize <= STORE_HEADER_SIZE) throw new ConfigStoreError(`partition ${partition.name} (${partition.size} bytes) is too small for two configuration slots`);
  }

  /** Payload bytes a slot can hold. */
  get capacity(): number {
    return this.slotSize - STORE_HEADER_SIZE;
  }

  /** The newest valid record; NoSavedConfigError when neither slot holds one. */
  load(): Promise<LoadedState> {
    return this.serial(async () => {
      const [a, b] = await Promise.all([this.readSlot("A"), this.readSlot("B")]);
      this.remember(a.status, b.status);
      const best = pickNewest(a, b);
      if (!best?.state || best.status.state !== "valid") throw new NoSavedConfigError([a.status, b.status]);
      const other = best === a ? b : a;
      return { ...best.state, generation: best.status.generation, slot: best.status.slot, other: other.status };
    });
  }

  /** Both slots as they are on flash (for `show system storage` and tests). */
  inspect(): Promise<[SlotStatus, SlotStatus]> {
    return this.serial(async () => {
      const [a, b] = await Promise.all([this.readSlot("A"), this.readSlot("B")]);
      return [a.status, b.status];
    });
  }

  /**
   * Writes `state` into the slot not holding the newest record and syncs. History beyond
   * STORE_MAX_COMMITS, or beyond what fits the slot (never below STORE_MIN_COMMITS), is left out:
   * `kept` says how many commits were written.
   */
  save(state: StoreState): Promise<{ generation: number; slot: SlotName; kept: number }> {
    return this.serial(async () => {
      if (!state.commits.length) throw new ConfigStoreError("nothing to save: a saved state holds at least the running configuration");
      if (!this.scanned) {
        const [a, b] = await Promise.all([this.readSlot("A"), this.readSlot("B")]);
        this.remember(a.status, b.status);
      }
      const generation = (this.newest?.generation ?? 0) + 1;
      const slot: SlotName = this.newest?.slot === "A" ? "B" : "A";
      let commits = state.commits.slice(0, STORE_MAX_COMMITS);
      let payload = await encode(generation, { ...state, commits });
      while (payload.length > this.capacity) {
        if (commits.length <= STORE_MIN_COMMITS) {
          throw new ConfigStoreError(`the configuration does not fit the flash: ${payload.length} bytes compressed with ${commits.length} commits of history, a slot holds ${this.capacity}`);
        }
        // shrink in proportion to the overshoot (at least one commit), oldest first
        const fit = Math.floor(commits.length * (this.capacity / payload.length));
        commits = commits.slice(0, Math.max(STORE_MIN_COMMITS, Math.min(commits.length - 1, fit)));
        payload = await encode(generation, { ...state, commits });
      }
      const record = new Uint8Array(STORE_HEADER_SIZE + payload.length);
      record.set(header(generation, payload), 0);
      record.set(payload, STORE_HEADER_SIZE);
      await this.partition.write(slotOffset(slot, this.slotSize), record);
      await this.partition.sync();
      this.newest = { slot, generation };
      return { generation, slot, kept: commits.length };
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private remember(a: SlotStatus, b: SlotStatus): void {
    this.scanned = true;
    const valid = [a, b].filter((s): s is Extract<SlotStatus, { state: "valid" }> => s.state === "valid");
    valid.sort((x, y) => y.generation - x.generation);
    this.newest = valid[0] && { slot: valid[0].slot, generation: valid[0].generation };
  }

  private async readSlot(slot: SlotName): Promise<Decoded> {
    const base = slotOffset(slot, this.slotSize);
    const h = await this.partition.read(base, STORE_HEADER_SIZE);
    const magic = new TextDecoder().decode(h.subarray(0, 8));
    if (magic !== STORE_MAGIC) {
      return { status: h.every((x) => x === 0) || h.every((x) => x === 0xff) ? { slot, state: "empty" } : { slot, state: "invalid", reason: "no configuration record (bad magic)" } };
    }
    const dv = new DataView(h.buffer, h.byteOffset, h.byteLength);
    const invalid = (reason: string): Decoded => ({ status: { slot, state: "invalid", reason } });
    const version = dv.getUint32(8, true);
    if (version !== STORE_FORMAT_VERSION) return invalid(`record format version ${version}, this firmware reads version ${STORE_FORMAT_VERSION}`);
    const length = dv.getUint32(12, true);
    const gen = dv.getBigUint64(16, true);
    if (length > this.capacity) return invalid(`payload length ${length} exceeds the slot (${this.capacity} bytes): damaged header`);
    if (gen === 0n || gen > BigInt(Number.MAX_SAFE_INTEGER)) return invalid(`generation ${gen} out of range: damaged header`);
    const generation = Number(gen);
    const payload = await this.partition.read(base + STORE_HEADER_SIZE, length);
    const digest = createHash("sha256").update(payload).digest();
    if (!digest.equals(h.subarray(24, 56))) return invalid(`generation ${generation}: payload digest mismatch (torn or damaged write)`);
    let record: unknown;
    try {
      record = JSON.parse((await gunzipAsync(payload, { maxOutputLength: MAX_UNCOMPRESSED })).toString("utf8"));
    } catch (e) {
      return invalid(`generation ${generation}: payload does not decode: ${(e as Error).message}`);
    }
    const r = record as { generation?: unknown };
    if (typeof record !== "object" || record === null || r.generation !== generation) return invalid(`generation ${generation}: payload belongs to generation ${String(r?.generation)}: torn header`);
    const problem = shapeProblem(record);
    if (problem) return invalid(`generation ${generation}: ${problem}`);
    const { commits, pendingConfirm } = record as StoreState;
    return { status: { slot, state: "valid", generation, bytes: length }, state: pendingConfirm ? { commits, pendingConfirm } : { commits } };
  }
}

/** The store on a board's flash. */
export function openConfigStore(flash: Flash): ConfigStore {
  return new ConfigStore(flash.partition("config"));
}

function slotOffset(slot: SlotName, slotSize: number): number {
  return slot === "A" ? 0 : slotSize;
}

function pickNewest(a: Decoded, b: Decoded): Decoded | undefined {
  const ga = a.status.state === "valid" ? a.status.generation : -1;
  const gb = b.status.state === "valid" ? b.status.generation : -1;
  if (ga < 0 && gb < 0) return undefined;
  return ga >= gb ? a : b;
}

async function encode(generation: number, state: StoreState): Promise<Uint8Array> {
  const json = JSON.stringify({ generation, commits: state.commits, pendingConfirm: state.pendingConfirm });
  return new Uint8Array(await gzipAsync(Buffer.from(json, "utf8")));
}

function header(generation: number, payload: Uint8Array): Uint8Array {
  const h = new Uint8Array(STORE_HEADER_SIZE);
  const dv = new DataView(h.buffer);
  h.set(new TextEncoder().encode(STORE_MAGIC), 0);
  dv.setUint32(8, STORE_FORMAT_VERSION, true);
  dv.setUint32(12, payload.length, true);
  dv.setBigUint64(16, BigInt(generation), true);
  h.set(createHash("sha256").update(payload).digest(), 24);
  return h;
}

/** What is wrong with a decoded record's shape, if anything (a record written by a buggy firmware). */
function shapeProblem(x: unknown): string | undefined {
  const r = x as { commits?: unknown; pendingConfirm?: unknown };
  if (!Array.isArray(r.commits) || r.commits.length === 0) return "record holds no commits";
  for (const c of r.commits) {
    const p = commitProblem(c);
    if (p) return `commit record: ${p}`;
  }
  if (r.pendingConfirm !== undefined) {
    const p = r.pendingConfirm as Partial<PendingConfirmRecord> | null;
    if (typeof p !== "object" || p === null || typeof p.deadline !== "number" || !Number.isSafeInteger(p.seq) || typeof p.minutes !== "number") return "malformed pending confirmation";
    const q = commitProblem(p.restore);
    if (q) return `pending confirmation: ${q}`;
  }
  return undefined;
}

function commitProblem(x: unknown): string | undefined {
  const c = x as Partial<CommitRecord> | null;
  if (typeof c !== "object" || c === null) return "not an object";
  if (!Number.isSafeInteger(c.seq) || (c.seq as number) < 0) return `bad seq ${String(c.seq)}`;
  if (typeof c.time !== "number" || typeof c.user !== "string") return `commit ${c.seq}: bad time or user`;
  if (c.comment !== undefined && typeof c.comment !== "string") return `commit ${c.seq}: bad comment`;
  if (typeof c.config !== "object" || c.config === null || Array.isArray(c.config)) return `commit ${c.seq}: configuration is not an object`;
  return undefined;
}
