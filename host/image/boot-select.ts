// Which slot the boot step starts, from the boot environment and what each slot holds. A pure
// decision (slots are verified through the callback) so that every rule is tested without a box:
//
//   1. A slot marked `next` with tries left is tried: one try is used up before it starts, so a
//      power cut or a hang during the try still counts it. If it does not verify, it is dropped.
//   2. A slot marked `next` with no tries left was tried and never confirmed itself healthy (a
//      confirmation clears `next`): it is dropped and noted as failed.
//   3. Otherwise the active slot (the last one confirmed healthy) boots, if it verifies.
//   4. If it does not (or there is none: a new flash), the other slot boots if it verifies, as a
//      trial: once it confirms itself it becomes the active slot.
//   5. Neither slot verifies: nothing boots, and the reason names both slots.
//
// The running slot is never written here: only the boot environment is.
import { otherSlot, SLOT_NAMES, type BootEnv, type SlotName } from "../../board/bootenv.js";
import type { ParsedImage } from "./format.js";
import type { SlotVerdict } from "./slots.js";

export type BootDecision =
  | {
      ok: true;
      slot: SlotName;
      image: ParsedImage;
      /** Not the active slot: it must confirm itself healthy to become it. */
      trial: boolean;
      /** The environment to write before starting it (bootId counted up, booted set, unconfirmed). */
      env: BootEnv;
      /** What happened on the way, for the console and the log. */
      events: string[];
    }
  | { ok: false; reason: string; env: BootEnv; events: string[] };

function label(slot: SlotName, env: BootEnv): string {
  const v = env.slots[slot].version;
  return v ? `slot ${slot} (${v})` : `slot ${slot}`;
}

export async function decideBoot(current: BootEnv, verify: (slot: SlotName) => Promise<SlotVerdict>): Promise<BootDecision> {
  const env: BootEnv = { ...current, slots: { A: { ...current.slots.A }, B: { ...current.slots.B } } };
  const events: string[] = [];
  const verdicts = new Map<SlotName, SlotVerdict>();
  const check = async (s: SlotName): Promise<SlotVerdict> => {
    let v = verdicts.get(s);
    if (!v) {
      v = await verify(s);
      verdicts.set(s, v);
    }
    return v;
  };
  const fail = (s: SlotName, note: string): void => {
    env.slots[s] = { ...env.slots[s], state: "failed", note: note.slice(0, 64) };
  };
  const start = (v: Extract<SlotVerdict, { ok: true }>, trial: boolean): BootDecision => {
    env.bootId = (env.bootId + 1) >>> 0;
    env.booted = v.slot;
    env.confirmed = false;
    env.slots[v.slot] = { ...env.slots[v.slot], version: v.image.version, buildTime: v.image.buildTime };
    const what = `slot ${v.slot} (${v.image.version})`;
    events.push(trial ? `booting ${what} on trial: it must confirm itself healthy` : `booting ${what}`);
    env.message = events.join("; ");
    return { ok: true, slot: v.slot, image: v.image, trial, env, events };
  };
  const failed = new Set<SlotName>();

  if (env.next) {
    const next = env.next;
    if (env.triesLeft > 0) {
      const v = await check(next);
      if (v.ok) {
        env.triesLeft--;
        return start(v, next !== env.active);
      }
      events.push(`${label(next, env)} refused: ${v.reason}`);
      fail(next, `refused at boot: ${v.reason}`);
    } else {
      // the watchdog's note says how the try ended ("did not confirm within 60 s", "exited with
      // status 1 before confirming"); after a power cut there is none
      const why = env.slots[next].note && env.slots[next].state === "failed" ? env.slots[next].note : "did not confirm itself healthy";
      events.push(`${label(next, env)} ${why}: reverting`);
      if (env.slots[next].state !== "failed") fail(next, "did not confirm itself healthy: reverted");
    }
    failed.add(next);
    env.next = undefined;
    env.triesLeft = 0;
  }

  if (env.active) {
    const active = env.active;
    const v = await check(active);
    if (v.ok) return start(v, false);
    events.push(`active ${label(active, env)} refused: ${v.reason}`);
    fail(active, `refused at boot: ${v.reason}`);
    env.active = undefined;
    failed.add(active);
  }

  // no active slot that verifies: any slot that does, one not just failed first
  const order = [...SLOT_NAMES].sort((a, b) => Number(failed.has(a)) - Number(failed.has(b)));
  if (current.active) order.sort((a, b) => Number(a === current.active) - Number(b === current.active)); // the other one first
  for (const s of order) {
    const v = await check(s);
    if (v.ok) {
      events.push(`no confirmed image to fall back on: trying ${label(s, env)}`);
      return start(v, true);
    }
  }
  const reasons = SLOT_NAMES.map((s) => {
    const v = verdicts.get(s);
    return `slot ${s}: ${v && !v.ok ? v.reason : "?"}`;
  });
  events.push(`no bootable image (${reasons.join("; ")})`);
  env.message = events.join("; ");
  return { ok: false, reason: `no bootable image: ${reasons.join("; ")}`, env, events };
}

/** The other slot of a booted one (re-exported for the boot step's messages). */
export { otherSlot };
