// Image slots on the flash: reading and verifying what a slot holds, and installing an image into
// one. Shared by the running box (software.ts), the flash tool and the boot step, so that all
// three write a slot the same way:
//
//   1. the image is verified in memory (parseImage, against the slot's size) before anything is
//      written;
//   2. the boot environment marks the slot "writing" (and drops it as the slot to try next), so a
//      power cut during the write leaves nothing pointing at a half-written slot;
//   3. the image is written and synced, read back and compared byte for byte, and parsed again
//      from what the flash returned;
//   4. the boot environment marks it installed and to be tried once on the next boot.
//
// The slot a caller names as the target is never the boot environment's active slot (the last one
// confirmed healthy): the installer refuses that outright, whatever the caller thinks is running.
import type { Flash, Partition } from "../../board/flash.js";
import { otherSlot, type BootEnv, type BootEnvStore, type SlotName } from "../../board/bootenv.js";
import { IMAGE_HEADER_SIZE, parseImage, readHeader, type BoardKind, type ParsedImage, type RefusalCode } from "./format.js";
import type { TrustedKey } from "./keys.js";

export type SlotVerdict = { ok: true; slot: SlotName; image: ParsedImage } | { ok: false; slot: SlotName; code: RefusalCode | "flash-error"; reason: string };

export type InstallResult = { ok: true; slot: SlotName; version: string; bytes: number } | { ok: false; reason: string };

/** Written in pieces this size: a partial write then tears at a piece boundary or inside one. */
const WRITE_CHUNK = 1024 * 1024;

export function slotPartition(flash: Flash, slot: SlotName): Partition {
  return flash.partition(slot === "A" ? "slotA" : "slotB");
}

/** The image bytes a slot holds (as far as its header says), or why it holds none. */
export async function readSlotImage(part: Partition): Promise<{ ok: true; bytes: Uint8Array } | { ok: false; code: RefusalCode; reason: string }> {
  const head = await part.read(0, IMAGE_HEADER_SIZE);
  const h = readHeader(head);
  if (!h.ok) return h;
  if (h.header.totalSize > part.size) return { ok: false, code: "too-big", reason: `header claims ${h.header.totalSize} bytes, more than the slot's ${part.size}: damaged header` };
  return { ok: true, bytes: await part.read(0, h.header.totalSize) };
}

/** Verifies the image in a slot as the boot step would before starting it. */
export async function verifySlot(part: Partition, slot: SlotName, trusted: readonly TrustedKey[], board: BoardKind): Promise<SlotVerdict> {
  let r: Awaited<ReturnType<typeof readSlotImage>>;
  try {
    r = await readSlotImage(part);
  } catch (e) {
    return { ok: false, slot, code: "flash-error", reason: `flash error: ${(e as Error).message}` };
  }
  if (!r.ok) return { ok: false, slot, code: r.code, reason: r.reason };
  const p = parseImage(r.bytes, trusted, board, { maxSize: part.size });
  return p.ok ? { ok: true, slot, image: p.image } : { ok: false, slot, code: p.code, reason: p.reason };
}

/**
 * The slot an install writes from outside the box (the flash tool): the one that is not the active
 * slot, else not the last booted one, else A. While a slot booted on trial has neither confirmed
 * nor been reverted, both slots are taken (the box may be running the one, the other is its
 * fallback): refused until the box has booted again.
 */
export function offlineTarget(env: BootEnv): { ok: true; slot: SlotName } | { ok: false; reason: string } {
  if (env.active && env.booted && env.booted !== env.active) {
    return { ok: false, reason: `slot ${env.booted} was booted on trial and has not confirmed itself, and slot ${env.active} is its fallback: boot the box once (it confirms or reverts) before flashing` };
  }
  const keep = env.active ?? env.booted;
  return { ok: true, slot: keep ? otherSlot(keep) : "A" };
}

export interface InstallOptions {
  target: SlotName;
  trusted: readonly TrustedKey[];
  board: BoardKind;
  /** Told of each step (the flash tool prints them). */
  progress?: (step: string) => void;
}

/** Verifies `image`, writes it into `target`, reads it back and marks it to be tried once. See the top of the file. */
export async function installImage(flash: Flash, env: BootEnvStore, image: Uint8Array, o: InstallOptions): Promise<InstallResult> {
  const part = slotPartition(flash, o.target);
  const parsed = parseImage(image, o.trusted, o.board, { maxSize: part.size });
  if (!parsed.ok) return { ok: false, reason: `image refused: ${parsed.reason}` };
  const { version, buildTime } = parsed.image;
  const bytes = image.subarray(0, parsed.image.size); // without any transfer padding
  o.progress?.(`verified ${version}: ${bytes.length} bytes, signed by ${parsed.image.keyFingerprint}${parsed.image.devSigned ? " (development key)" : ""}`);

  const { env: before } = await env.read();
  if (before.active === o.target) return { ok: false, reason: `slot ${o.target} is the active slot (the last one confirmed healthy): it is never overwritten` };
  await env.update((e) => {
    if (e.next === o.target) {
      e.next = undefined;
      e.triesLeft = 0;
    }
    e.slots[o.target] = { version: "", buildTime: 0, state: "writing", note: `being written with ${version}` };
  });

  for (let at = 0; at < bytes.length; at += WRITE_CHUNK) {
    await part.write(at, bytes.subarray(at, Math.min(bytes.length, at + WRITE_CHUNK)));
  }
  await part.sync();
  o.progress?.(`wrote slot ${o.target}`);

  const back = await part.read(0, bytes.length);
  const diff = firstDifference(bytes, back);
  const again = diff < 0 ? parseImage(back, o.trusted, o.board, { maxSize: part.size }) : undefined;
  if (diff >= 0 || !again?.ok) {
    const why = diff >= 0 ? `read-back differs at byte ${diff}` : `read-back does not verify: ${again && !again.ok ? again.reason : "?"}`;
    await env.update((e) => {
      e.slots[o.target] = { version: "", buildTime: 0, state: "failed", note: why.slice(0, 60) };
    });
    return { ok: false, reason: `slot ${o.target}: ${why}; the slot is left unbootable and nothing else changed` };
  }
  o.progress?.(`read slot ${o.target} back: identical, verifies`);

  await env.update((e) => {
    e.slots[o.target] = { version, buildTime, state: "installed", note: `installed ${version}, to be tried` };
    e.next = o.target;
    e.triesLeft = 1;
    e.message = `slot ${o.target}: ${version} installed; boots next, once, and must confirm itself healthy`;
  });
  return { ok: true, slot: o.target, version, bytes: bytes.length };
}

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  if (Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))) return -1;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}
