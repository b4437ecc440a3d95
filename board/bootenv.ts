// The boot environment: the few facts the boot step needs before any image runs (which slot boots,
// which one is on trial and how many tries it has left, whether the booted image confirmed itself
// healthy), kept in the flash's bootenv partition so that a power cut at any moment leaves either
// the previous state or the new one, never a mix and never nothing.
//
// Two copies of one 512-byte record, at offsets 0 and 32 KiB of the partition. A write goes to the
// copy that does NOT hold the newest valid record, with a sequence number one higher, and is
// synced; there is no second "commit" write that could be torn. On read, a copy counts only if
// its magic, format version and CRC32 are right; the valid copy with the highest sequence number
// wins. A torn write leaves that copy failing its CRC, and the other copy (the previous state)
// is read. Neither copy valid (a new or wiped flash): the empty environment, in which the boot
// step boots whichever slot holds a valid image.
//
// Fixed binary layout rather than JSON: a boot loader in C (or a recovery shell with `od`) reads
// it without a parser. Little-endian:
//
//   0    8 bytes   magic "FSBOOTEV"
//   8    u16       format version (1)
//   10   u16       record size (512)
//   12   u32       sequence number (1 for the first write)
//   16   u32       boot id: counts boots; a confirmation names the boot it is for
//   20   u8        active slot: 0 none, 1 A, 2 B (boots by default: last confirmed healthy)
//   21   u8        next slot: 0 none, 1 A, 2 B (to be tried on the next boot)
//   22   u8        tries left for the next slot
//   23   u8        booted slot: 0 none, 1 A, 2 B (started most recently by the boot step)
//   24   u8        flags: bit 0 confirmed (the booted slot confirmed itself in boot `boot id`)
//   25   7 bytes   reserved, zero
//   32   112 bytes slot A: version (32 bytes UTF-8, NUL-padded), u64 build time (ms since the
//                  epoch), u8 state (0 unknown, 1 empty, 2 writing, 3 installed, 4 failed),
//                  7 reserved, note (64 bytes UTF-8, NUL-padded)
//   144  112 bytes slot B: the same
//   256  192 bytes message: the last boot event (UTF-8, NUL-padded)
//   448  60 bytes  reserved, zero
//   508  u32       CRC32 (IEEE, as zlib) of bytes 0-507
import { crc32 } from "node:zlib";
import type { Partition } from "./flash.js";

export type SlotName = "A" | "B";
export const SLOT_NAMES: readonly SlotName[] = ["A", "B"];

export const BOOTENV_MAGIC = "FSBOOTEV";
export const BOOTENV_FORMAT_VERSION = 1;
export const BOOTENV_RECORD_SIZE = 512;
/** Where the two copies start in the partition: apart, so no single sector write touches both. */
export const BOOTENV_COPY_OFFSETS = [0, 32 * 1024] as const;

const VERSION_BYTES = 32;
const NOTE_BYTES = 64;
const MESSAGE_BYTES = 192;
const SLOT_RECORD_OFFSETS: Record<SlotName, number> = { A: 32, B: 144 };
const MESSAGE_OFFSET = 256;
const CRC_OFFSET = 508;

/** What the environment last knew of a slot's content. */
export type SlotState = "unknown" | "empty" | "writing" | "installed" | "failed";
const SLOT_STATES: readonly SlotState[] = ["unknown", "empty", "writing", "installed", "failed"];

export interface SlotRecord {
  /** The version last verified in the slot ("" when none). */
  version: string;
  /** Its build time, ms since the epoch (0 when none). */
  buildTime: number;
  state: SlotState;
  /** A short note for the operator: "installed", "did not confirm: reverted" ... */
  note: string;
}

export interface BootEnv {
  /** Sequence number of the record this was read from (0: none on flash). */
  seq: number;
  /** Counts boots; the boot step increments it each time it starts an image. */
  bootId: number;
  /** The slot that boots by default: the last one confirmed healthy. */
  active?: SlotName;
  /** A slot to try on the next boot (a fresh install, a rollback). */
  next?: SlotName;
  /** Boots of `next` left; the boot step counts one down before starting it. */
  triesLeft: number;
  /** The slot the boot step started most recently. */
  booted?: SlotName;
  /** `booted` confirmed itself healthy during boot `bootId`. */
  confirmed: boolean;
  slots: Record<SlotName, SlotRecord>;
  /** The last boot event, for the operator. */
  message: string;
}

export type CopyStatus = { copy: 0 | 1; state: "valid"; seq: number } | { copy: 0 | 1; state: "empty" } | { copy: 0 | 1; state: "invalid"; reason: string };

export function otherSlot(s: SlotName): SlotName {
  return s === "A" ? "B" : "A";
}

export function emptyBootEnv(): BootEnv {
  const slot = (): SlotRecord => ({ version: "", buildTime: 0, state: "unknown", note: "" });
  return { seq: 0, bootId: 0, triesLeft: 0, confirmed: false, slots: { A: slot(), B: slot() }, message: "" };
}

function slotCode(s: SlotName | undefined): number {
  return s === "A" ? 1 : s === "B" ? 2 : 0;
}

function slotFromCode(c: number): SlotName | undefined | null {
  return c === 0 ? undefined : c === 1 ? "A" : c === 2 ? "B" : null;
}

/** Writes `text` NUL-padded into `len` bytes, cut on a character boundary. */
function putString(buf: Uint8Array, at: number, len: number, text: string): void {
  let bytes = new TextEncoder().encode(text);
  if (bytes.length > len) {
    let cut = len;
    while (cut > 0 && (bytes[cut]! & 0xc0) === 0x80) cut--; // don't split a UTF-8 sequence
    bytes = bytes.subarray(0, cut);
  }
  buf.fill(0, at, at + len);
  buf.set(bytes, at);
}

function getString(buf: Uint8Array, at: number, len: number): string {
  const field = buf.subarray(at, at + len);
  const end = field.indexOf(0);
  return new TextDecoder().decode(end < 0 ? field : field.subarray(0, end));
}

export function encodeBootEnv(env: BootEnv, seq: number): Uint8Array {
  const buf = new Uint8Array(BOOTENV_RECORD_SIZE);
  const dv = new DataView(buf.buffer);
  buf.set(new TextEncoder().encode(BOOTENV_MAGIC), 0);
  dv.setUint16(8, BOOTENV_FORMAT_VERSION, true);
  dv.setUint16(10, BOOTENV_RECORD_SIZE, true);
  dv.setUint32(12, seq >>> 0, true);
  dv.setUint32(16, env.bootId >>> 0, true);
  buf[20] = slotCode(env.active);
  buf[21] = slotCode(env.next);
  buf[22] = Math.max(0, Math.min(255, env.triesLeft | 0));
  buf[23] = slotCode(env.booted);
  buf[24] = env.confirmed ? 1 : 0;
  for (const s of SLOT_NAMES) {
    const at = SLOT_RECORD_OFFSETS[s];
    const r = env.slots[s];
    putString(buf, at, VERSION_BYTES, r.version);
    dv.setBigUint64(at + 32, BigInt(Math.max(0, Math.floor(r.buildTime))), true);
    buf[at + 40] = Math.max(0, SLOT_STATES.indexOf(r.state));
    putString(buf, at + 48, NOTE_BYTES, r.note);
  }
  putString(buf, MESSAGE_OFFSET, MESSAGE_BYTES, env.message);
  dv.setUint32(CRC_OFFSET, crc32(buf.subarray(0, CRC_OFFSET)), true);
  return buf;
}

/** One copy's bytes: the environment, or why they hold none. */
export function decodeBootEnv(buf: Uint8Array): { ok: true; env: BootEnv } | { ok: false; empty: boolean; reason: string } {
  if (buf.length < BOOTENV_RECORD_SIZE) return { ok: false, empty: false, reason: `record is ${buf.length} bytes, expected ${BOOTENV_RECORD_SIZE}` };
  const dv = new DataView(buf.buffer, buf.byteOffset, BOOTENV_RECORD_SIZE);
  if (getString(buf, 0, 8) !== BOOTENV_MAGIC) {
    const head = buf.subarray(0, BOOTENV_RECORD_SIZE);
    const empty = head.every((x) => x === 0) || head.every((x) => x === 0xff);
    return { ok: false, empty, reason: empty ? "empty" : "bad magic" };
  }
  const version = dv.getUint16(8, true);
  if (version !== BOOTENV_FORMAT_VERSION) return { ok: false, empty: false, reason: `format version ${version}, this firmware reads ${BOOTENV_FORMAT_VERSION}` };
  if (dv.getUint16(10, true) !== BOOTENV_RECORD_SIZE) return { ok: false, empty: false, reason: "bad record size" };
  if (dv.getUint32(CRC_OFFSET, true) !== crc32(buf.subarray(0, CRC_OFFSET))) return { ok: false, empty: false, reason: "CRC mismatch (torn or damaged write)" };
  const active = slotFromCode(buf[20]!);
  const next = slotFromCode(buf[21]!);
  const booted = slotFromCode(buf[23]!);
  if (active === null || next === null || booted === null) return { ok: false, empty: false, reason: "bad slot code" };
  const env = emptyBootEnv();
  env.seq = dv.getUint32(12, true);
  env.bootId = dv.getUint32(16, true);
  env.active = active;
  env.next = next;
  env.triesLeft = buf[22]!;
  env.booted = booted;
  env.confirmed = (buf[24]! & 1) === 1;
  for (const s of SLOT_NAMES) {
    const at = SLOT_RECORD_OFFSETS[s];
    const buildTime = dv.getBigUint64(at + 32, true);
    env.slots[s] = {
      version: getString(buf, at, VERSION_BYTES),
      buildTime: buildTime > BigInt(Number.MAX_SAFE_INTEGER) ? 0 : Number(buildTime),
      state: SLOT_STATES[buf[at + 40]!] ?? "unknown",
      note: getString(buf, at + 48, NOTE_BYTES),
    };
  }
  env.message = getString(buf, MESSAGE_OFFSET, MESSAGE_BYTES);
  return { ok: true, env };
}

function cloneEnv(e: BootEnv): BootEnv {
  return { ...e, slots: { A: { ...e.slots.A }, B: { ...e.slots.B } } };
}

/** The boot environment on a partition. One writer at a time (the boot step, or the image it started). */
export class BootEnvStore {
  constructor(private readonly partition: Partition) {
    const end = BOOTENV_COPY_OFFSETS[1] + BOOTENV_RECORD_SIZE;
    if (partition.size < end) throw new Error(`bootenv: partition ${partition.name} (${partition.size} bytes) is too small for two copies (${end} bytes)`);
  }

  /** The newest valid copy (or the empty environment), and what each copy holds. */
  async read(): Promise<{ env: BootEnv; copies: [CopyStatus, CopyStatus]; from?: 0 | 1 }> {
    const copies: CopyStatus[] = [];
    let best: { env: BootEnv; copy: 0 | 1 } | undefined;
    for (const copy of [0, 1] as const) {
      const d = decodeBootEnv(await this.partition.read(BOOTENV_COPY_OFFSETS[copy], BOOTENV_RECORD_SIZE));
      if (d.ok) {
        copies.push({ copy, state: "valid", seq: d.env.seq });
        if (!best || d.env.seq > best.env.seq) best = { env: d.env, copy };
      } else {
        copies.push(d.empty ? { copy, state: "empty" } : { copy, state: "invalid", reason: d.reason });
      }
    }
    return { env: best ? best.env : emptyBootEnv(), copies: copies as [CopyStatus, CopyStatus], ...(best ? { from: best.copy } : {}) };
  }

  /** Writes `env` as the newest record: into the other copy than the newest valid one, then syncs. */
  async write(env: BootEnv): Promise<BootEnv> {
    const { from, env: current } = await this.read();
    const copy = from === 0 ? 1 : 0;
    const seq = current.seq + 1;
    await this.partition.write(BOOTENV_COPY_OFFSETS[copy], encodeBootEnv(env, seq));
    await this.partition.sync();
    return { ...cloneEnv(env), seq };
  }

  /**
   * Reads the newest environment, lets `change` edit a copy of it, and writes it back (unless
   * `change` returns false). Returns the environment now on flash.
   */
  async update(change: (env: BootEnv) => boolean | void): Promise<BootEnv> {
    const { env } = await this.read();
    const next = cloneEnv(env);
    if (change(next) === false) return env;
    return this.write(next);
  }
}
