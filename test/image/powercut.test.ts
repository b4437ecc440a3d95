// A flash write interrupted at any moment never bricks the box: whatever was cut, the boot step
// still boots a valid image that confirms itself healthy (the old one, or the new one whole).
// Two ways to cut the power: in process, stop an install after k bytes for many k (every byte of
// the boot environment's writes, a spread through the image); and SIGKILL the flowswitch-flash
// process at random moments, then run the real boot step on the real image. Seeded: set
// FLOWSWITCH_POWERCUT_SEED (and FLOWSWITCH_POWERCUT_RUNS) to repeat a run.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { BootEnvStore, emptyBootEnv, type SlotName } from "../../board/bootenv.js";
import { decideBoot } from "../../host/image/boot-select.js";
import { installImage, slotPartition, verifySlot } from "../../host/image/slots.js";
import { MemoryFlash, PowerCut, TOOL, childEnv, makeKey, prng, smallImage } from "./helpers.js";
import { bootOnce, buildWith, flashTool, readEnv, workshop, type Built, type Workshop } from "./fixture.js";

const SEED = Number(process.env.FLOWSWITCH_POWERCUT_SEED ?? 20_241_122);
const RUNS = Number(process.env.FLOWSWITCH_POWERCUT_RUNS ?? 40);

describe("power cuts during an install (in process)", () => {
  const key = makeKey();
  const trusted = [key.trusted];
  const v1 = smallImage(key, { version: "1.0.0" });
  const v2 = smallImage(key, { version: "2.0.0", extra: [{ name: "blob", data: new Uint8Array(40_000).map((_, i) => (i * 31) & 0xff) }] });
  const verify = (f: MemoryFlash) => (s: SlotName) => verifySlot(slotPartition(f, s), s, trusted, "sim");

  async function base(): Promise<MemoryFlash> {
    const f = new MemoryFlash();
    f.parts.slotA.bytes.set(v1);
    const e = emptyBootEnv();
    e.active = "A";
    e.booted = "A";
    e.bootId = 1;
    e.confirmed = true;
    e.slots.A = { version: "1.0.0", buildTime: 0, state: "installed", note: "" };
    await new BootEnvStore(f.partition("bootenv")).write(e);
    return f;
  }

  it("cut after k bytes, for every k in the boot environment's writes and a spread through the image: the old or the new image boots", async () => {
    const ref = await base();
    ref.budget = Number.MAX_SAFE_INTEGER;
    const whole = await installImage(ref, new BootEnvStore(ref.partition("bootenv")), v2, { target: "B", trusted, board: "sim" });
    assert.ok(whole.ok);
    const total = Number.MAX_SAFE_INTEGER - ref.budget;
    const cuts = new Set<number>();
    for (let k = 0; k <= total; k++) if (k < 1100 || k > total - 1100 || k % 97 === 0) cuts.add(k);
    const outcomes = { old: 0, new: 0 };
    const start = await base();
    for (const k of cuts) {
      const f = start.clone();
      f.budget = k;
      let cut = false;
      try {
        await installImage(f, new BootEnvStore(f.partition("bootenv")), v2, { target: "B", trusted, board: "sim" });
      } catch (e) {
        if (!(e instanceof PowerCut)) throw e;
        cut = true;
      }
      f.budget = undefined;
      assert.ok(cut || k >= total, `k=${k}: the install finished within ${k} of ${total} bytes`);
      const env = new BootEnvStore(f.partition("bootenv"));
      const d = await decideBoot((await env.read()).env, verify(f));
      assert.ok(d.ok, `k=${k}: ${!d.ok ? d.reason : ""}`);
      assert.equal(d.image.version, d.slot === "A" ? "1.0.0" : "2.0.0", `k=${k}`);
      if (d.slot === "B") {
        outcomes.new++;
        // the new image, booted on trial and never confirmed: the next boot goes back to A
        await env.write(d.env);
        const again = await decideBoot((await env.read()).env, verify(f));
        assert.ok(again.ok && again.slot === "A", `k=${k}: no way back to A`);
      } else outcomes.old++;
    }
    assert.ok(outcomes.old > 0 && outcomes.new > 0, JSON.stringify(outcomes));
  });
});

describe("power cuts during flowswitch-flash (processes killed at random moments)", { timeout: 900_000 }, () => {
  let w: Workshop;
  let images: Built[];
  let device: string;
  before(async () => {
    w = await workshop("powercut");
    device = join(w.dir, "flash.img");
    images = [
      await buildWith(w, "v1", ["--key", w.key, "--version", "1.0.0", "--default-config", w.config, "--board", "sim"]),
      await buildWith(w, "v2", ["--key", w.key, "--version", "2.0.0", "--default-config", w.config, "--board", "sim"]),
    ];
  });
  after(async () => {
    await w?.cleanup();
  });

  /** Runs the flash tool; kills it `killAt` ms after start (or after its first line with `afterFirstLine`). */
  function flashKilled(image: string, killAt: number, afterFirstLine: boolean): Promise<{ killed: boolean; code: number | null; ms: number; firstLineMs?: number }> {
    const started = Date.now();
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [TOOL("flowswitch-flash"), "--device", device, "--trust", w.trust, image], { env: childEnv(), stdio: ["ignore", "pipe", "pipe"] });
      let timer: NodeJS.Timeout | undefined;
      let firstLineMs: number | undefined;
      const arm = () => (timer = setTimeout(() => child.kill("SIGKILL"), killAt));
      child.stdout.once("data", () => {
        firstLineMs = Date.now() - started;
        if (afterFirstLine) arm();
      });
      child.stdout.resume();
      child.stderr.resume();
      if (!afterFirstLine) arm();
      const bound = setTimeout(() => child.kill("SIGKILL"), 30_000);
      child.on("error", reject);
      child.on("exit", (code, signal) => {
        clearTimeout(timer);
        clearTimeout(bound);
        resolve({ killed: signal === "SIGKILL", code, ms: Date.now() - started, firstLineMs });
      });
    });
  }

  it(`${RUNS} flash writes SIGKILLed at random points: after each the boot step boots a valid image that confirms itself`, async (t) => {
    // a box running v1 from slot A
    assert.equal((await flashTool(w, device, images[0]!.path)).code, 0);
    assert.equal((await bootOnce(w, device)).code, 0);
    // one whole write, to learn how long one takes and when the writing starts
    const full = await flashKilled(images[1]!.path, 60_000, false);
    assert.equal(full.code, 0);
    const writeWindow = Math.max(5, full.ms - (full.firstLineMs ?? 0));
    assert.equal((await bootOnce(w, device)).code, 0);
    t.diagnostic(`seed ${SEED}; a whole flash takes ${full.ms} ms, ${writeWindow} ms of it after the image verified`);

    const rand = prng(SEED);
    const tally = { killed: 0, finished: 0, duringSlotWrite: 0, oldBooted: 0, newBooted: 0 };
    for (let run = 0; run < RUNS; run++) {
      const before = await readEnv(device);
      const activeVersion = before.slots[before.active!].version;
      const image = images.find((i) => !i.path.endsWith(`v${activeVersion[0]}.img`))!;
      const newVersion = activeVersion === "1.0.0" ? "2.0.0" : "1.0.0";
      // half the cuts anywhere in the tool's life, half in the writing itself
      const afterFirstLine = rand() < 0.5;
      const killAt = Math.floor(rand() * (afterFirstLine ? writeWindow * 1.2 : full.ms * 1.1));
      const k = await flashKilled(image.path, killAt, afterFirstLine);
      if (k.killed) tally.killed++;
      else tally.finished++;
      const cutEnv = await readEnv(device);
      if (Object.values(cutEnv.slots).some((x) => x.state === "writing")) tally.duringSlotWrite++;

      const b = await bootOnce(w, device, [], 120_000);
      const where = `run ${run} (kill at ${killAt} ms${afterFirstLine ? " after the image verified" : ""}, ${k.killed ? "killed" : `exited ${k.code}`})`;
      assert.equal(b.code, 0, `${where}: the boot step failed:\n${b.stderr}`);
      const env = await readEnv(device);
      assert.ok(env.booted && env.confirmed && env.active === env.booted, `${where}: ${JSON.stringify(env)}`);
      const booted = env.slots[env.booted].version;
      assert.match(b.stderr, new RegExp(`slot ${env.booted} \\(${booted.replace(/\./g, "\\.")}\\) confirmed itself healthy`), where);
      assert.ok(booted === activeVersion || booted === newVersion, `${where}: booted ${booted}`);
      if (booted === newVersion) tally.newBooted++;
      else tally.oldBooted++;
    }
    t.diagnostic(`killed ${tally.killed} (${tally.duringSlotWrite} while the slot was being written), finished before the kill ${tally.finished}; booted the old image ${tally.oldBooted} times, the new one ${tally.newBooted}`);
    assert.ok(tally.killed > 0, "no write was interrupted");
  });
});
