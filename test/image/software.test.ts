// SoftwareSlots (host/image/software.ts), the API behind `show system software` and
// `request system software add | rollback`: installs go to the slot that is not running and are
// tried once, bad images change nothing, rollback and confirm move the boot environment as
// docs/boot.md says.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BootEnvStore, emptyBootEnv, type BootEnv } from "../../board/bootenv.js";
import { SoftwareSlots, bootedFromEnv } from "../../host/image/software.js";
import { installImage, offlineTarget } from "../../host/image/slots.js";
import { MemoryFlash, makeKey, smallImage } from "./helpers.js";

const key = makeKey("release");
const devKey = makeKey("dev-signing");
const stranger = makeKey("stranger");
const trusted = [key.trusted, devKey.trusted];

/** A box running slot A (1.0.0, confirmed) in boot 7. */
async function runningBox(): Promise<{ flash: MemoryFlash; slots: SoftwareSlots; env: BootEnvStore }> {
  const flash = new MemoryFlash();
  flash.parts.slotA.bytes.set(smallImage(key, { version: "1.0.0" }));
  const env = new BootEnvStore(flash.partition("bootenv"));
  const e: BootEnv = { ...emptyBootEnv(), active: "A", booted: "A", bootId: 7, confirmed: true };
  e.slots.A = { version: "1.0.0", buildTime: 0, state: "installed", note: "" };
  await env.write(e);
  return { flash, env, slots: new SoftwareSlots(flash, { trusted, board: "sim", running: { slot: "A", bootId: 7 } }) };
}

describe("software slots", () => {
  it("status: both slots, the running one, and the trusted keys (the development key shown as such)", async () => {
    const { slots } = await runningBox();
    const s = await slots.status();
    assert.equal(s.running, "A");
    assert.equal(s.runningFromSlot, true);
    const [a, b] = s.slots;
    assert.deepEqual({ ...a, buildTime: undefined, keyFingerprint: undefined }, {
      name: "A", version: "1.0.0", buildTime: undefined, devSigned: false, keyFingerprint: undefined, valid: true, active: true, confirmed: true, next: false, triesLeft: 0,
    });
    assert.equal(b!.valid, false);
    assert.equal(b!.reason, "no image (empty)");
    assert.deepEqual(s.trustedKeys.map((k) => [k.source, k.development]), [["release.pub", false], ["dev-signing.pub", true]]);
  });

  it("install: written into the slot that is not running, read back, marked to be tried once; the running slot is untouched", async () => {
    const { flash, slots, env } = await runningBox();
    const runningBytes = flash.parts.slotA.bytes.slice();
    const r = await slots.install(smallImage(devKey, { version: "2.0.0", devSigned: true }));
    assert.deepEqual(r, { ok: true, slot: "B", version: "2.0.0" });
    assert.deepEqual(flash.parts.slotA.bytes, runningBytes);
    const e = (await env.read()).env;
    assert.equal(e.next, "B");
    assert.equal(e.triesLeft, 1);
    assert.equal(e.active, "A");
    const s = await slots.status();
    assert.deepEqual(s.slots.map((x) => [x.name, x.version, x.active, x.next, x.triesLeft, x.devSigned]), [["A", "1.0.0", true, false, 0, false], ["B", "2.0.0", false, true, 1, true]]);
  });

  it("install: XMODEM padding after the image is not written", async () => {
    const { flash, slots } = await runningBox();
    const image = smallImage(key, { version: "2.0.1" });
    const padded = new Uint8Array(image.length + 100).fill(0x1a);
    padded.set(image);
    assert.equal((await slots.install(padded)).ok, true);
    assert.equal(flash.parts.slotB.bytes[image.length], 0);
  });

  it("install refuses a flipped byte, a truncated image, a stranger's key, another board's image and one too big, and writes nothing", async () => {
    const { flash, slots, env } = await runningBox();
    const before = { A: flash.parts.slotA.bytes.slice(), B: flash.parts.slotB.bytes.slice(), env: flash.parts.bootenv.bytes.slice() };
    const good = smallImage(key, { version: "2.0.0" });
    const flipped = good.slice();
    flipped[150]! ^= 0x08; // in the payload
    const cases: [string, Uint8Array, RegExp][] = [
      ["flipped byte", flipped, /digest mismatch/],
      ["truncated", good.subarray(0, good.length - 10), /truncated/],
      ["wrong key", smallImage(stranger, { version: "2.0.0" }), /which this box does not trust/],
      ["other board", smallImage(key, { version: "2.0.0", boards: ["linux"] }), /is for the linux board, this is the sim board/],
      ["too big", smallImage(key, { extra: [{ name: "big", data: new Uint8Array(flash.parts.slotB.size) }] }), /does not fit a slot/],
      ["not an image", new TextEncoder().encode("hello".repeat(100)), /not a Flowswitch image/],
    ];
    for (const [what, bytes, reason] of cases) {
      const r = await slots.install(bytes);
      assert.equal(r.ok, false, what);
      assert.match(!r.ok ? r.reason : "", reason, what);
    }
    assert.deepEqual(flash.parts.slotA.bytes, before.A);
    assert.deepEqual(flash.parts.slotB.bytes, before.B);
    assert.deepEqual(flash.parts.bootenv.bytes, before.env);
    assert.equal((await env.read()).env.next, undefined);
  });

  it("install is refused while the running slot is on trial (its fallback must stay)", async () => {
    const { flash, env } = await runningBox();
    flash.parts.slotB.bytes.set(smallImage(key, { version: "2.0.0" }));
    await env.update((e) => {
      e.booted = "B";
      e.next = "B";
      e.triesLeft = 0;
      e.bootId = 8;
      e.confirmed = false;
    });
    const onTrial = new SoftwareSlots(flash, { trusted, board: "sim", running: { slot: "B", bootId: 8 } });
    const r = await onTrial.install(smallImage(key, { version: "3.0.0" }));
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.reason : "", /slot B is running on trial and slot A is what it falls back to/);
  });

  it("the installer never writes the active slot, whatever it is asked", async () => {
    const { flash, env } = await runningBox();
    const before = flash.parts.slotA.bytes.slice();
    const r = await installImage(flash, env, smallImage(key, { version: "9.9.9" }), { target: "A", trusted, board: "sim" });
    assert.equal(r.ok, false);
    assert.match(!r.ok ? r.reason : "", /active slot .* never overwritten/);
    assert.deepEqual(flash.parts.slotA.bytes, before);
  });

  it("the flash tool's target: not the active slot; refused while a trial has neither confirmed nor been reverted", () => {
    const e = (x: Partial<BootEnv>): BootEnv => ({ ...emptyBootEnv(), ...x });
    assert.deepEqual(offlineTarget(e({})), { ok: true, slot: "A" });
    assert.deepEqual(offlineTarget(e({ active: "A", booted: "A" })), { ok: true, slot: "B" });
    assert.deepEqual(offlineTarget(e({ active: "B", booted: "B", next: "A", triesLeft: 1 })), { ok: true, slot: "A" });
    assert.deepEqual(offlineTarget(e({ booted: "B" })), { ok: true, slot: "A" });
    const trial = offlineTarget(e({ active: "A", booted: "B", next: "B" }));
    assert.equal(trial.ok, false);
    assert.match(!trial.ok ? trial.reason : "", /slot B was booted on trial .* slot A is its fallback/);
  });

  it("confirm: a slot on trial becomes the active slot; a stale process (another boot) changes nothing", async () => {
    const { flash, env } = await runningBox();
    flash.parts.slotB.bytes.set(smallImage(key, { version: "2.0.0" }));
    await env.update((e) => {
      e.booted = "B";
      e.next = "B";
      e.triesLeft = 0;
      e.bootId = 8;
      e.confirmed = false;
      e.slots.B = { version: "2.0.0", buildTime: 0, state: "installed", note: "" };
    });
    await new SoftwareSlots(flash, { trusted, board: "sim", running: { slot: "B", bootId: 7 } }).confirm();
    assert.equal((await env.read()).env.confirmed, false, "boot 7 is over");
    await new SoftwareSlots(flash, { trusted, board: "sim" }).confirm();
    assert.equal((await env.read()).env.confirmed, false, "a development run confirms nothing");
    await new SoftwareSlots(flash, { trusted, board: "sim", running: { slot: "B", bootId: 8 } }).confirm();
    const e = (await env.read()).env;
    assert.equal(e.confirmed, true);
    assert.equal(e.active, "B");
    assert.equal(e.next, undefined);
    assert.match(e.message, /slot B \(2\.0\.0\) confirmed itself healthy/);
  });

  it("rollback: the other slot boots next, once, if it holds a valid image", async () => {
    const { flash, slots, env } = await runningBox();
    const none = await slots.rollback();
    assert.equal(none.ok, false);
    assert.match(!none.ok ? none.reason : "", /slot B holds no image this box can boot: no image \(empty\)/);
    flash.parts.slotB.bytes.set(smallImage(key, { version: "0.9.0" }));
    assert.deepEqual(await slots.rollback(), { ok: true, slot: "B", version: "0.9.0" });
    const e = (await env.read()).env;
    assert.equal(e.next, "B");
    assert.equal(e.triesLeft, 1);
    assert.equal(e.active, "A");
  });

  it("the boot step's environment variables name the slot and boot", () => {
    assert.deepEqual(bootedFromEnv({ FLOWSWITCH_BOOT_SLOT: "B", FLOWSWITCH_BOOT_ID: "12" }), { slot: "B", bootId: 12 });
    assert.equal(bootedFromEnv({ FLOWSWITCH_BOOT_SLOT: "C", FLOWSWITCH_BOOT_ID: "1" }), undefined);
    assert.equal(bootedFromEnv({}), undefined);
  });
});

describe("signing keys", () => {
  it("the development key is made once, private half readable by its owner only, public half marked development", async () => {
    const { mkdtemp, rm, stat } = await import("node:fs/promises");
    const { tmpdir } = await import("node:os");
    const { join } = await import("node:path");
    const { ensureDevKey, loadSigningKey, loadTrustedKeys } = await import("../../host/image/keys.js");
    const root = await mkdtemp(join(tmpdir(), "fsw-devkey-"));
    try {
      const first = await ensureDevKey(root);
      assert.equal(first.created, true);
      assert.equal((await stat(first.path)).mode & 0o777, 0o600);
      assert.equal((await ensureDevKey(root)).created, false);
      const signing = await loadSigningKey(first.path);
      const { keys, problems } = await loadTrustedKeys([join(root, ".keys"), join(root, "missing")]);
      assert.deepEqual(problems, []);
      assert.deepEqual(keys.map((k) => [k.fingerprint, k.development]), [[signing.fingerprint, true]]);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
