// The boot environment (board/bootenv.ts) survives torn writes, and the boot step's rules
// (host/image/boot-select.ts) pick the right slot in every state the environment can be in.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { BootEnvStore, BOOTENV_COPY_OFFSETS, BOOTENV_RECORD_SIZE, decodeBootEnv, emptyBootEnv, encodeBootEnv, type BootEnv, type SlotName } from "../../board/bootenv.js";
import { decideBoot } from "../../host/image/boot-select.js";
import { slotPartition, verifySlot } from "../../host/image/slots.js";
import { MemoryFlash, makeKey, prng, smallImage } from "./helpers.js";

function sample(n: number): BootEnv {
  const e = emptyBootEnv();
  e.bootId = n;
  e.active = n % 2 ? "A" : "B";
  e.next = n % 3 ? undefined : "B";
  e.triesLeft = n % 3;
  e.booted = "A";
  e.confirmed = n % 2 === 0;
  e.slots.A = { version: `1.0.${n}`, buildTime: 1_700_000_000_000 + n, state: "installed", note: `note ${n}` };
  e.slots.B = { version: "", buildTime: 0, state: "failed", note: "did not confirm within 60 s" };
  e.message = `event ${n}: ${"x".repeat(n % 50)}`;
  return e;
}

function same(a: BootEnv, b: BootEnv): void {
  const strip = (e: BootEnv) => ({ ...e, seq: 0 });
  assert.deepEqual(strip(a), strip(b));
}

describe("boot environment", () => {
  it("round trip through the 512-byte record; long strings are cut on a character boundary", () => {
    const e = sample(7);
    e.message = "ü".repeat(200);
    const d = decodeBootEnv(encodeBootEnv(e, 9));
    assert.ok(d.ok);
    assert.equal(d.env.seq, 9);
    assert.equal(d.env.message, "ü".repeat(96)); // 192 bytes hold 96 two-byte characters
    same({ ...d.env, message: e.message }, e);
  });

  it("a new flash reads as the empty environment; writes alternate between the two copies", async () => {
    const flash = new MemoryFlash();
    const store = new BootEnvStore(flash.partition("bootenv"));
    const first = await store.read();
    assert.equal(first.env.seq, 0);
    assert.deepEqual(first.copies.map((c) => c.state), ["empty", "empty"]);
    for (let n = 1; n <= 6; n++) {
      await store.write(sample(n));
      const r = await store.read();
      assert.equal(r.env.seq, n);
      assert.equal(r.from, (n - 1) % 2, `write ${n} lands in copy ${(n - 1) % 2}`);
      same(r.env, sample(n));
    }
  });

  it("a torn write of one copy, cut at every byte, leaves the previous state (or the new one, whole)", async () => {
    const flash = new MemoryFlash();
    const part = flash.parts.bootenv;
    const store = new BootEnvStore(flash.partition("bootenv"));
    await store.write(sample(1));
    await store.write(sample(2));
    const before = part.bytes.slice();
    const next = encodeBootEnv(sample(3), 3);
    const target = BOOTENV_COPY_OFFSETS[0]; // copy 0 holds seq 1: the next write goes there
    const rand = prng(7);
    for (let cut = 0; cut <= BOOTENV_RECORD_SIZE; cut++) {
      part.bytes.set(before);
      part.bytes.set(next.subarray(0, cut), target);
      // what sat beyond the cut on a real medium is old or garbage: try both
      if (cut < BOOTENV_RECORD_SIZE && cut % 2) for (let i = target + cut; i < target + BOOTENV_RECORD_SIZE; i++) part.bytes[i] = Math.floor(rand() * 256);
      const { env } = await store.read();
      if (cut === BOOTENV_RECORD_SIZE) same(env, sample(3));
      else same(env, sample(2));
    }
  });

  it("both copies damaged: the empty environment (the boot step then boots any valid slot)", async () => {
    const flash = new MemoryFlash();
    const store = new BootEnvStore(flash.partition("bootenv"));
    await store.write(sample(1));
    await store.write(sample(2));
    flash.parts.bootenv.bytes[BOOTENV_COPY_OFFSETS[0] + 30] ^= 1;
    flash.parts.bootenv.bytes[BOOTENV_COPY_OFFSETS[1] + 100] ^= 1;
    const r = await store.read();
    assert.equal(r.env.seq, 0);
    assert.deepEqual(r.copies.map((c) => c.state), ["invalid", "invalid"]);
    assert.match((r.copies[0] as { reason: string }).reason, /CRC mismatch/);
    // and the next write starts afresh
    await store.write(sample(5));
    same((await store.read()).env, sample(5));
  });
});

describe("boot selection", () => {
  const key = makeKey();
  const trusted = [key.trusted];

  async function flashWith(a?: string, b?: string): Promise<MemoryFlash> {
    const f = new MemoryFlash();
    if (a) f.parts.slotA.bytes.set(smallImage(key, { version: a }));
    if (b) f.parts.slotB.bytes.set(smallImage(key, { version: b }));
    return f;
  }
  const verifier = (f: MemoryFlash) => (s: SlotName) => verifySlot(slotPartition(f, s), s, trusted, "sim");
  const env = (e: Partial<BootEnv>): BootEnv => ({ ...emptyBootEnv(), ...e });

  it("a pending try boots, and the try is used up before it starts", async () => {
    const f = await flashWith("1.0.0", "2.0.0");
    const d = await decideBoot(env({ active: "A", next: "B", triesLeft: 1, bootId: 4 }), verifier(f));
    assert.ok(d.ok);
    assert.equal(d.slot, "B");
    assert.equal(d.trial, true);
    assert.equal(d.env.triesLeft, 0);
    assert.equal(d.env.next, "B");
    assert.equal(d.env.booted, "B");
    assert.equal(d.env.bootId, 5);
    assert.equal(d.env.confirmed, false);
    assert.equal(d.env.active, "A", "the confirmed slot stays the fallback");
  });

  it("a try used up without a confirmation reverts to the active slot and notes the failure", async () => {
    const f = await flashWith("1.0.0", "2.0.0");
    const start = env({ active: "A", next: "B", triesLeft: 0, booted: "B", confirmed: false });
    start.slots.B = { version: "2.0.0", buildTime: 0, state: "installed", note: "" };
    const d = await decideBoot(start, verifier(f));
    assert.ok(d.ok);
    assert.equal(d.slot, "A");
    assert.equal(d.trial, false);
    assert.equal(d.env.next, undefined);
    assert.equal(d.env.slots.B.state, "failed");
    assert.match(d.events.join("\n"), /slot B \(2\.0\.0\) did not confirm itself healthy: reverting/);
  });

  it("a pending try that does not verify is dropped; the active slot boots", async () => {
    const f = await flashWith("1.0.0", "2.0.0");
    f.parts.slotB.bytes[200] ^= 0x40;
    const d = await decideBoot(env({ active: "A", next: "B", triesLeft: 1 }), verifier(f));
    assert.ok(d.ok);
    assert.equal(d.slot, "A");
    assert.match(d.events[0]!, /slot B refused: digest mismatch/);
  });

  it("a damaged active slot: the other slot boots on trial", async () => {
    const f = await flashWith("1.0.0", "2.0.0");
    f.parts.slotA.bytes.fill(0, 0, 64);
    const d = await decideBoot(env({ active: "A" }), verifier(f));
    assert.ok(d.ok);
    assert.equal(d.slot, "B");
    assert.equal(d.trial, true);
    assert.equal(d.env.active, undefined);
  });

  it("a new flash (empty environment) boots the slot that holds an image", async () => {
    const d = await decideBoot(emptyBootEnv(), verifier(await flashWith(undefined, "3.0.0")));
    assert.ok(d.ok);
    assert.equal(d.slot, "B");
  });

  it("nothing bootable: a refusal that names both slots", async () => {
    const f = await flashWith(undefined, "3.0.0");
    const d = await decideBoot(emptyBootEnv(), (s) => verifySlot(slotPartition(f, s), s, [makeKey().trusted], "sim"));
    assert.equal(d.ok, false);
    assert.match(!d.ok ? d.reason : "", /no bootable image: slot A: no image \(empty\); slot B: signed by key sha256:[0-9a-f]+, which this box does not trust/);
  });
});
