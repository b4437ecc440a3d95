// The config store survives power cuts: whatever moment a save is interrupted, the flash boots
// either the last completed save or the one being written, whole, and never nothing once a save
// has completed. Two ways to cut the power: SIGKILL a writer process at random moments, and, in
// process, stop a save's write after k bytes for many k (and land a random subset of its sectors).
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { createInterface } from "node:readline";
import { FLASH_LAYOUT, FLASH_SIZE, openFlashFile, type Partition } from "../../board/flash.js";
import {
  ConfigStore, ConfigStoreError, NoSavedConfigError, STORE_HEADER_SIZE, STORE_MAX_COMMITS, STORE_MIN_COMMITS,
  type LoadedState, type StoreState,
} from "../../host/config/store.js";
import { commitFor, stateFor } from "./helpers/powercut-state.js";

const WRITER = fileURLToPath(new URL("./helpers/config-store-writer.js", import.meta.url));
const MIN_KILLS = 50;
const MAX_KILLS = 300;
const BUDGET_MS = 20_000; // more kills while time is left, never fewer than MIN_KILLS
const MAX_KILL_DELAY_MS = 30;

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "flowswitch-powercut-"));
  dirs.push(d);
  return d;
}

/** A partition in memory: the in-process tests copy and restore it between cuts. */
class MemoryPartition implements Partition {
  readonly name = "config";
  readonly bytes: Uint8Array;
  constructor(readonly size: number) {
    this.bytes = new Uint8Array(size);
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    return this.bytes.slice(offset, offset + length);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    this.bytes.set(data, offset);
  }
  async sync(): Promise<void> {}
}

class PowerCut extends Error {}

/** The power goes after `budget` more bytes have reached the partition. */
function cutAfter(p: Partition, budget: number): Partition {
  return {
    name: p.name,
    size: p.size,
    read: (o, l) => p.read(o, l),
    async write(offset, data) {
      const n = Math.min(budget, data.length);
      budget -= n;
      if (n) await p.write(offset, data.subarray(0, n));
      if (n < data.length) throw new PowerCut(`power cut after ${n} of ${data.length} bytes`);
    },
    async sync() {
      throw new PowerCut("power cut before sync");
    },
  };
}

const contents = (s: LoadedState): StoreState => (s.pendingConfirm ? { commits: s.commits, pendingConfirm: s.pendingConfirm } : { commits: s.commits });

async function boot(p: Partition): Promise<LoadedState> {
  return new ConfigStore(p).load();
}

describe("config store: SIGKILL of a writer at random moments", () => {
  it(`boots the last completed save or the one in flight, whole, after each of at least ${MIN_KILLS} kills`, { timeout: 180_000 }, async (t) => {
    const path = join(await tempDir(), "flash.img");
    const stats = { kills: 0, killedMidSave: 0, bootedInFlight: 0, bootedPrevious: 0, bootedEmpty: 0, tornSlotAtBoot: { direct: 0, paged: 0 }, paged: 0 };
    let lastSaved = 0; // the newest state the flash must boot at least
    let booted = 0; // what the last boot found
    const t0 = Date.now();
    while (stats.kills < MIN_KILLS || (stats.kills < MAX_KILLS && Date.now() - t0 < BUDGET_MS)) {
      const page = stats.kills % 2 ? 4096 : 0; // odd runs: page-by-page writes (a slow flash)
      if (page) stats.paged++;
      const child = spawn(process.execPath, [WRITER, path, "--page", String(page)], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on("exit", (code, signal) => r({ code, signal })));
      const lines: string[] = [];
      let firstSaving!: () => void;
      const saving = new Promise<void>((r) => (firstSaving = r));
      createInterface({ input: child.stdout }).on("line", (l) => {
        lines.push(l);
        if (l.startsWith("saving ")) firstSaving();
      });
      const early = await Promise.race([saving.then(() => false), exited.then(() => true)]);
      assert.equal(early, false, `the writer ended before saving: ${stderr}`);
      await new Promise((r) => setTimeout(r, Math.random() * MAX_KILL_DELAY_MS));
      child.kill("SIGKILL");
      const { signal } = await exited;
      assert.equal(signal, "SIGKILL", `the writer died of something else: ${stderr}`);
      await new Promise((r) => setImmediate(r)); // the last lines of the pipe
      stats.kills++;

      // what the writer said: its start follows the last boot; saves are announced in order
      assert.equal(lines[0], `start ${booted + 1}`, "the writer booted what the test booted");
      let inFlight: number | undefined;
      for (const l of lines.slice(1)) {
        const [word, num] = l.split(" ");
        const n = Number(num);
        if (word === "saving") inFlight = n;
        else if (word === "saved") {
          assert.equal(n, inFlight);
          lastSaved = n;
          inFlight = undefined;
        }
      }
      if (inFlight !== undefined) stats.killedMidSave++;

      // boot the flash
      const flash = await openFlashFile(path);
      try {
        let loaded: LoadedState;
        try {
          loaded = await boot(flash.partition("config"));
        } catch (e) {
          assert.ok(e instanceof NoSavedConfigError, `boot failed: ${(e as Error).message}`);
          assert.equal(lastSaved, 0, `the flash lost every configuration after save ${lastSaved} had completed: ${e.message}`);
          stats.bootedEmpty++;
          booted = 0;
          continue;
        }
        const n = loaded.commits[0].seq;
        assert.ok(n === lastSaved || n === inFlight, `booted state ${n}: expected the last completed save ${lastSaved} or the one in flight ${inFlight ?? "(none)"}`);
        assert.deepStrictEqual(contents(loaded), stateFor(n), `state ${n} booted whole`);
        if (n === inFlight) stats.bootedInFlight++;
        else if (inFlight !== undefined) stats.bootedPrevious++;
        if (loaded.other.state === "invalid") stats.tornSlotAtBoot[page ? "paged" : "direct"]++;
        lastSaved = n;
        booted = n;
      } finally {
        await flash.close();
      }
    }
    const elapsed = Date.now() - t0;
    t.diagnostic(`${JSON.stringify(stats)} in ${elapsed} ms; last state ${booted}`);
    assert.ok(stats.kills >= MIN_KILLS);
    assert.ok(lastSaved > 0, "some save completed");
    assert.ok(stats.killedMidSave > 0, "some kills landed inside a save");
    // the flash file stays sparse: only what was written takes room
    const st = await stat(path);
    assert.equal(st.size, FLASH_SIZE);
    assert.ok(st.blocks * 512 < FLASH_SIZE / 4, `sparse flash file takes ${st.blocks * 512} bytes on disk`);
  });
});

describe("config store: a save cut after k bytes", () => {
  const SIZE = 1024 * 1024; // two 512 KiB slots: room for stateFor(n)

  async function prepared(): Promise<{ p: MemoryPartition; before: Uint8Array; record: number }> {
    const p = new MemoryPartition(SIZE);
    const s = new ConfigStore(p);
    await s.save(stateFor(1)); // slot A
    await s.save(stateFor(2)); // slot B
    const before = p.bytes.slice();
    const probe = new MemoryPartition(SIZE);
    probe.bytes.set(before);
    await new ConfigStore(probe).save(stateFor(3));
    const [a] = await new ConfigStore(probe).inspect();
    assert.ok(a.state === "valid" && a.generation === 3, "the third save goes to slot A, the older one");
    return { p, before, record: STORE_HEADER_SIZE + a.bytes };
  }

  it("boots the previous save for every k short of the whole record, the new one once it is whole", async (t) => {
    const { p, before, record } = await prepared();
    const ks = new Set<number>();
    for (let k = 0; k <= 2 * STORE_HEADER_SIZE + 32; k++) ks.add(k); // every byte of the header and the first of the payload
    for (let b = 512; b < record; b += 512) for (const d of [-1, 0, 1]) ks.add(b + d); // every sector boundary
    for (let k = record - 40; k <= record; k++) ks.add(k); // the last bytes
    for (let i = 0; i < 300; i++) ks.add(Math.floor(Math.random() * record));
    const outcome = { previous: 0, new: 0 };
    for (const k of [...ks].sort((x, y) => x - y)) {
      p.bytes.set(before);
      const writer = new ConfigStore(cutAfter(p, k));
      await assert.rejects(writer.save(stateFor(3)), PowerCut);
      const loaded = await boot(p);
      const n = loaded.commits[0].seq;
      assert.ok(n === 2 || n === 3, `cut after ${k} of ${record} bytes: booted state ${n}`);
      assert.deepStrictEqual(contents(loaded), stateFor(n));
      if (k < record) {
        // the unwritten tail still holds the old record's bytes: only a coincidence could complete it
        const whole = n === 3;
        if (whole) assert.ok(k >= record - 64, `cut after ${k} of ${record} bytes booted the unfinished save`);
      } else {
        assert.equal(n, 3, "a record written whole boots even if the sync was cut");
      }
      outcome[n === 3 ? "new" : "previous"]++;
    }
    t.diagnostic(`${ks.size} cuts over a ${record}-byte record: ${JSON.stringify(outcome)}`);
  });

  it("boots the previous or the new save when only some of the record's sectors land (reordered writes)", async (t) => {
    const { p, before, record } = await prepared();
    const after3 = new MemoryPartition(SIZE);
    after3.bytes.set(before);
    await new ConfigStore(after3).save(stateFor(3));
    const outcome = { previous: 0, new: 0 };
    for (let trial = 0; trial < 300; trial++) {
      p.bytes.set(before);
      const keep = trial === 0 ? 1 : Math.random(); // trial 0: every sector lands
      for (let s = 0; s < record; s += 512) if (Math.random() < keep) p.bytes.set(after3.bytes.subarray(s, Math.min(s + 512, record)), s);
      const loaded = await boot(p);
      const n = loaded.commits[0].seq;
      assert.ok(n === 2 || n === 3, `trial ${trial}: booted state ${n}`);
      assert.deepStrictEqual(contents(loaded), stateFor(n));
      outcome[n === 3 ? "new" : "previous"]++;
    }
    t.diagnostic(`300 partial landings: ${JSON.stringify(outcome)}`);
    assert.ok(outcome.new >= 1 && outcome.previous >= 1);
  });

  it("a torn save is written again into the same slot, leaving the survivor alone", async () => {
    const { p } = await prepared();
    await assert.rejects(new ConfigStore(cutAfter(p, 5000)).save(stateFor(3)), PowerCut);
    const store = new ConfigStore(p);
    const loaded = await store.load();
    assert.equal(loaded.commits[0].seq, 2);
    assert.equal(loaded.slot, "B");
    assert.equal(loaded.other.state, "invalid");
    assert.match(loaded.other.state === "invalid" ? loaded.other.reason : "", /digest mismatch/);
    const saved = await store.save(stateFor(3));
    assert.equal(saved.slot, "A");
    assert.equal((await boot(p)).commits[0].seq, 3);
    // and the one after goes to B, cut again: 3 survives
    await assert.rejects(new ConfigStore(cutAfter(p, 70)).save(stateFor(4)), PowerCut);
    assert.equal((await boot(p)).commits[0].seq, 3);
  });

  it("a header torn between two records (new generation over an old payload) is refused", async () => {
    const { p, before } = await prepared();
    p.bytes.set(before);
    const dv = new DataView(p.bytes.buffer);
    dv.setBigUint64(16, 3n, true); // slot A: generation 3, still state 1's length, digest and payload
    const loaded = await boot(p);
    assert.equal(loaded.commits[0].seq, 2);
    assert.match(loaded.other.state === "invalid" ? loaded.other.reason : "", /torn header/);
  });
});

describe("config store: records", () => {
  it("an empty flash, or one holding garbage, has no saved configuration", async () => {
    const p = new MemoryPartition(1024 * 1024);
    await assert.rejects(boot(p), (e: Error) => e instanceof NoSavedConfigError && /^no saved configuration: slot A: empty; slot B: empty$/.test(e.message));
    for (let i = 0; i < p.size; i++) p.bytes[i] = Math.floor(Math.random() * 256);
    p.bytes.set(new TextEncoder().encode("FSCONFIG"), 0);
    p.bytes.fill(0, 8, 12); // slot A: our magic, format version 0
    await assert.rejects(boot(p), (e: Error) => e instanceof NoSavedConfigError && /slot A: record format version 0/.test(e.message) && /slot B: no configuration record \(bad magic\)/.test(e.message));
  });

  it("keeps at most STORE_MAX_COMMITS commits, and trims history to fit a slot but never below STORE_MIN_COMMITS", async () => {
    const many = Array.from({ length: 70 }, (_, i) => commitFor(70 - i));
    const big = new ConfigStore(new MemoryPartition(8 * 1024 * 1024));
    assert.equal((await big.save({ commits: many })).kept, STORE_MAX_COMMITS);
    assert.equal((await big.load()).commits.length, STORE_MAX_COMMITS);

    const small = new ConfigStore(new MemoryPartition(256 * 1024)); // 128 KiB slots: about 30 of these commits
    const r = await small.save({ commits: many });
    assert.ok(r.kept >= STORE_MIN_COMMITS && r.kept < STORE_MAX_COMMITS, `kept ${r.kept}`);
    const loaded = await small.load();
    assert.deepStrictEqual(loaded.commits, many.slice(0, r.kept), "the newest commits are kept");

    const tiny = new ConfigStore(new MemoryPartition(64 * 1024));
    await assert.rejects(tiny.save({ commits: many }), (e: Error) => e instanceof ConfigStoreError && /does not fit the flash/.test(e.message));
    await assert.rejects(boot(new MemoryPartition(64 * 1024)), NoSavedConfigError); // nothing was written
  });
});

describe("flash file", () => {
  it("declares partitions back to back on erase-block boundaries, bootenv 64 KiB, slots 64 MiB, config 8 MiB", () => {
    assert.deepStrictEqual(FLASH_LAYOUT, {
      bootenv: { offset: 0, size: 64 * 1024 },
      slotA: { offset: 64 * 1024, size: 64 * 1024 * 1024 },
      slotB: { offset: 64 * 1024 + 64 * 1024 * 1024, size: 64 * 1024 * 1024 },
      config: { offset: 64 * 1024 + 128 * 1024 * 1024, size: 8 * 1024 * 1024 },
    });
    assert.equal(FLASH_SIZE, 136 * 1024 * 1024 + 64 * 1024);
  });

  it("keeps every access inside its partition and refuses what is outside with a clear error", async () => {
    const path = join(await tempDir(), "flash.img");
    await assert.rejects(openFlashFile(path), /flash: cannot open .*ENOENT/);
    const flash = await openFlashFile(path, { create: true });
    const cfg = flash.partition("config");
    const env = flash.partition("bootenv");
    await cfg.write(0, new Uint8Array([1, 2, 3]));
    await env.write(env.size - 2, new Uint8Array([9, 9]));
    await cfg.sync();
    assert.deepStrictEqual([...(await cfg.read(0, 4))], [1, 2, 3, 0]);
    assert.deepStrictEqual([...(await flash.partition("slotA").read(0, 2))], [0, 0], "bootenv's last bytes are not slotA's first");
    await assert.rejects(cfg.write(cfg.size - 2, new Uint8Array(3)), /flash: write of 3 bytes at offset 8388606 is outside partition config \(8388608 bytes\)/);
    await assert.rejects(env.read(-1, 1), /outside partition bootenv/);
    await assert.rejects(env.read(0, env.size + 1), /outside partition bootenv/);
    await flash.close();
    await assert.rejects(cfg.read(0, 1), /is closed/);
    const again = await openFlashFile(path);
    assert.deepStrictEqual([...(await again.partition("config").read(0, 3))], [1, 2, 3]);
    await again.close();
  });
});
