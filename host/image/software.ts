// The box's two firmware slots as the running image sees them: what each holds, which one runs,
// which boots next; installing an image into the slot that is not running, rolling back to the
// other slot, and confirming that the running image came up healthy. The console's
// `show system software` and `request system software add | rollback` are built on this; the
// flash tool (tools/flowswitch-flash.ts) and the boot step (tools/flowswitch-boot.ts) share its
// slot helpers (host/image/slots.ts) and the boot environment (board/bootenv.ts).
//
// Safety rules, kept here and nowhere else:
// - the running slot is never written, nor the confirmed slot that a running trial falls back to;
// - an image is verified (format, digest, trusted signature, board, size) before a byte of it is
//   written, read back after the write and verified again before it is marked to be tried;
// - a new image is tried once: unless it confirms itself healthy in that boot, the boot step
//   returns to the previous confirmed slot (docs/boot.md).
import type { Flash } from "../../board/flash.js";
import { BootEnvStore, otherSlot, type BootEnv, type SlotName } from "../../board/bootenv.js";
import type { BoardKind } from "./format.js";
import type { TrustedKey } from "./keys.js";
import { installImage, slotPartition, verifySlot, type SlotVerdict } from "./slots.js";

export type { SlotName } from "../../board/bootenv.js";

export interface SlotStatus {
  name: SlotName;
  /** The image's version, when the slot holds a valid image. */
  version?: string;
  /** Milliseconds since the epoch. */
  buildTime?: number;
  /** Signed with a development key (not for production boxes). */
  devSigned?: boolean;
  /** Fingerprint of the key that signed it ("sha256:" + 64 hex digits). */
  keyFingerprint?: string;
  /** Holds an image that this box would boot: complete, intact, signed by a trusted key, for this board. */
  valid: boolean;
  /** Why not valid (empty, digest mismatch, untrusted key ...). */
  reason?: string;
  /** The slot that boots by default: the last one confirmed healthy. */
  active: boolean;
  /** This slot's image confirmed itself healthy (it is the active slot, or it is running and confirmed in this boot). */
  confirmed: boolean;
  /** This slot is marked to be tried on the next boot. */
  next: boolean;
  /** Boots left for a slot marked `next` (0 otherwise). */
  triesLeft: number;
  /** What the boot environment last noted of this slot ("installed 0.2.0", "did not confirm: reverted"). */
  note?: string;
}

export interface SoftwareStatus {
  running: SlotName;
  /** False when the running code was not started from a slot by the boot step (a development run). */
  runningFromSlot: boolean;
  slots: SlotStatus[];
  /** The public keys images must be signed with, and where they were read from. */
  trustedKeys: { fingerprint: string; source: string; development: boolean }[];
  /** The boot environment's last event ("slot B (0.2.0) did not confirm within 60 s: back to slot A"). */
  lastEvent?: string;
  board: BoardKind;
}

export type SoftwareResult = { ok: true; slot: SlotName; version: string } | { ok: false; reason: string };

export interface SoftwareSlotsOptions {
  /** Public keys an image must be signed with. */
  trusted: TrustedKey[];
  /** The board this box is: images for another board are refused. */
  board: BoardKind;
  /**
   * The slot the running code was started from, and the boot it belongs to (the boot step passes
   * both in FLOWSWITCH_BOOT_SLOT / FLOWSWITCH_BOOT_ID; see bootedFromEnv()). Without them the
   * running code is a development run: the boot environment's booted (or active) slot counts as
   * running, so that it is never overwritten, and confirm() does nothing.
   */
  running?: { slot: SlotName; bootId: number };
}

/** The slot and boot the boot step started this process for, from its environment; undefined otherwise. */
export function bootedFromEnv(env: NodeJS.ProcessEnv = process.env): { slot: SlotName; bootId: number } | undefined {
  const slot = env.FLOWSWITCH_BOOT_SLOT;
  const bootId = Number(env.FLOWSWITCH_BOOT_ID);
  if ((slot !== "A" && slot !== "B") || !Number.isSafeInteger(bootId) || bootId < 0) return undefined;
  return { slot, bootId };
}

export class SoftwareSlots {
  private readonly env: BootEnvStore;
  private queue: Promise<unknown> = Promise.resolve();

  constructor(private readonly flash: Flash, private readonly opts: SoftwareSlotsOptions) {
    this.env = new BootEnvStore(flash.partition("bootenv"));
  }

  /** Both slots, verified now, and the boot environment. */
  status(): Promise<SoftwareStatus> {
    return this.serial(async () => {
      const { env } = await this.env.read();
      const running = this.runningSlot(env);
      const verdicts = await Promise.all((["A", "B"] as const).map((s) => this.verify(s)));
      const slots = verdicts.map((v): SlotStatus => {
        const name = v.slot;
        const rec = env.slots[name];
        const runningConfirmed = name === running && env.booted === running && env.confirmed && (!this.opts.running || this.opts.running.bootId === env.bootId);
        return {
          name,
          ...(v.ok ? { version: v.image.version, buildTime: v.image.buildTime, devSigned: v.image.devSigned, keyFingerprint: v.image.keyFingerprint } : {}),
          valid: v.ok,
          ...(v.ok ? {} : { reason: v.reason }),
          active: env.active === name,
          confirmed: env.active === name || runningConfirmed,
          next: env.next === name,
          triesLeft: env.next === name ? env.triesLeft : 0,
          ...(rec.note ? { note: rec.note } : {}),
        };
      });
      return {
        running,
        runningFromSlot: this.opts.running !== undefined,
        slots,
        trustedKeys: this.opts.trusted.map((k) => ({ fingerprint: k.fingerprint, source: k.source, development: k.development })),
        ...(env.message ? { lastEvent: env.message } : {}),
        board: this.opts.board,
      };
    });
  }

  /**
   * Verifies `image`, writes it into the slot that is not running, reads it back, verifies it
   * again and marks it to be tried once on the next boot. Never throws on a bad image: the reason
   * comes back for the operator.
   */
  install(image: Uint8Array): Promise<SoftwareResult> {
    return this.serial(async () => {
      const { env } = await this.env.read();
      const running = this.runningSlot(env);
      if (env.active && env.active !== running) {
        return { ok: false, reason: `slot ${running} is running on trial and slot ${env.active} is what it falls back to: wait until it confirms itself healthy (or reboot) before installing` };
      }
      try {
        const r = await installImage(this.flash, this.env, image, { target: otherSlot(running), trusted: this.opts.trusted, board: this.opts.board });
        return r.ok ? { ok: true, slot: r.slot, version: r.version } : r;
      } catch (e) {
        return { ok: false, reason: `flash error: ${(e as Error).message}` };
      }
    });
  }

  /** Marks the other slot (not the running one) to boot next, once, if it holds a valid image. */
  rollback(): Promise<SoftwareResult> {
    return this.serial(async () => {
      const { env } = await this.env.read();
      const target = otherSlot(this.runningSlot(env));
      const v = await this.verify(target);
      if (!v.ok) return { ok: false, reason: `slot ${target} holds no image this box can boot: ${v.reason}` };
      await this.env.update((e) => {
        e.next = target;
        e.triesLeft = 1;
        e.slots[target] = { ...e.slots[target], version: v.image.version, buildTime: v.image.buildTime, state: "installed", note: `rollback to ${v.image.version} requested` };
        e.message = `rollback requested: slot ${target} (${v.image.version}) boots next, once`;
      });
      return { ok: true, slot: target, version: v.image.version };
    });
  }

  /**
   * The running image is healthy (engines running, console up): the boot step's watchdog stops
   * waiting, and a slot on trial becomes the active slot. Does nothing in a development run, or
   * when the boot environment has moved on to another boot.
   */
  confirm(): Promise<void> {
    return this.serial(async () => {
      const me = this.opts.running;
      if (!me) return;
      const { env } = await this.env.read();
      if (env.booted !== me.slot || env.bootId !== me.bootId) return; // a stale process: not the boot being watched
      if (env.confirmed && env.active === me.slot && env.next !== me.slot) return;
      await this.env.update((e) => {
        if (e.booted !== me.slot || e.bootId !== me.bootId) return false;
        const wasTrial = e.active !== me.slot;
        e.confirmed = true;
        e.active = me.slot;
        if (e.next === me.slot) {
          e.next = undefined;
          e.triesLeft = 0;
        }
        const version = e.slots[me.slot].version;
        e.slots[me.slot] = { ...e.slots[me.slot], state: "installed", note: `confirmed healthy${version ? ` (${version})` : ""}` };
        if (wasTrial) e.message = `slot ${me.slot}${version ? ` (${version})` : ""} confirmed itself healthy: it is now the active slot`;
        return true;
      });
    });
  }

  private runningSlot(env: BootEnv): SlotName {
    return this.opts.running?.slot ?? env.booted ?? env.active ?? "A";
  }

  private verify(slot: SlotName): Promise<SlotVerdict> {
    return verifySlot(slotPartition(this.flash, slot), slot, this.opts.trusted, this.opts.board);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }
}
