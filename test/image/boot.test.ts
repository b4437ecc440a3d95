// Build, flash and boot on the simulated board, as an operator does it: a real image from the
// builder, written by flowswitch-flash, started by flowswitch-boot, confirmed healthy by the box
// itself. Bad images are refused and the old slot still boots; an image that fails at start, or
// never confirms, is reverted by the watchdog; a reboot request is booted again.
import { describe, it, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { buildImage } from "../../host/image/format.js";
import { loadSigningKey, loadTrustedKeys } from "../../host/image/keys.js";
import { ROOT, TOOL, runNode } from "./helpers.js";
import { bootOnce, buildWith, damageSlot, flashTool, readEnv, slotBytes, workshop, type Built, type Workshop } from "./fixture.js";

let w: Workshop;
let v1: Built;
let device: string;

before(async () => {
  w = await workshop("boot");
  device = join(w.dir, "flash.img");
});
after(async () => {
  await w?.cleanup();
});

/** A signed image around a hand-written main.js (for images that misbehave on purpose). */
async function stubImage(name: string, version: string, mainJs: string): Promise<string> {
  const key = await loadSigningKey(w.key);
  const enc = new TextEncoder();
  const bytes = buildImage({
    version, boards: ["sim"], devSigned: false,
    files: [{ name: "main.js", data: enc.encode(mainJs) }, { name: "package.json", data: enc.encode(JSON.stringify({ name: "flowswitch", version, type: "module" })) }],
  }, key);
  const path = join(w.dir, `${name}.img`);
  await writeFile(path, bytes);
  return path;
}

describe("images on the simulated board", { timeout: 600_000 }, () => {
  it("build, flash and boot: the image confirms itself healthy and its slot becomes the active one", async (t) => {
    v1 = await buildWith(w, "v1", ["--key", w.key, "--version", "1.0.0", "--default-config", w.config, "--board", "sim"]);
    assert.equal(v1.summary.devSigned, false);
    assert.deepEqual(v1.summary.files.map((f) => f.name).sort(), [
      "board/sim/demo-config.json", "build-info.json", "dataplane.wasm", "engine-worker.js", "ha-heartbeat-worker.js", "main.js", "mib/FLOWSWITCH-MIB.txt", "package.json",
    ]);
    t.diagnostic(`image ${v1.summary.bytes} bytes, built in ${v1.summary.buildMs} ms (builder process ${v1.ms} ms)`);

    const f = await flashTool(w, device, v1.path);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /slot A: 1\.0\.0 written and verified in (\d+) ms/);
    t.diagnostic(`flash + read-back + verify: ${/verified in (\d+) ms/.exec(f.stdout)?.[1]} ms (tool process ${f.ms} ms)`);
    assert.equal((await readEnv(device)).next, "A");

    const b = await bootOnce(w, device);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /booting slot A \(1\.0\.0\) on trial/);
    const confirmed = /slot A \(1\.0\.0\) confirmed itself healthy after (\d+) ms: slot A is now the active slot/.exec(b.stderr);
    assert.ok(confirmed, b.stderr);
    t.diagnostic(`boot to confirmation: ${confirmed[1]} ms`);
    assert.match(b.stdout, /Flowswitch on the simulated board/);
    assert.match(b.stdout, /flowswitch-demo login: /, "the console is up");
    const env = await readEnv(device);
    assert.equal(env.active, "A");
    assert.equal(env.booted, "A");
    assert.equal(env.confirmed, true);
    assert.equal(env.next, undefined);
    assert.equal(env.slots.A.version, "1.0.0");

    const s = await runNode(TOOL("flowswitch-flash"), ["--device", device, "--trust", w.trust, "--status", "--json"], { timeoutMs: 30_000 });
    const status = JSON.parse(s.stdout) as { slots: { name: string; valid: boolean; active: boolean; version?: string }[] };
    assert.deepEqual(status.slots.map((x) => [x.name, x.valid, x.active, x.version]), [["A", true, true, "1.0.0"], ["B", false, false, undefined]]);
  });

  it("without a key the image is signed with the development key, marked so; the simulated board trusts that key by default and says so", async () => {
    const dev = await buildWith(w, "dev", ["--version", "1.0.0-dev", "--default-config", w.config]);
    assert.equal(dev.summary.devSigned, true);
    const devKey = await loadTrustedKeys([join(ROOT, ".keys")]);
    assert.deepEqual(devKey.keys.map((k) => [k.fingerprint, k.development]), [[dev.summary.keyFingerprint, true]]);
    const devDevice = join(w.dir, "dev-flash.img");
    const refused = await flashTool(w, devDevice, dev.path); // trusting the release key only
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /which this box does not trust/);
    const f = await runNode(TOOL("flowswitch-flash"), ["--device", devDevice, "--create", dev.path], { timeoutMs: 60_000 });
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /signed by sha256:[0-9a-f]+ \(development key\)/);
    const s = await runNode(TOOL("flowswitch-flash"), ["--device", devDevice, "--status"], { timeoutMs: 30_000 });
    assert.match(s.stdout, /slot A: 1\.0\.0-dev built .* \(development key\)/);
    assert.match(s.stdout, /trusted keys: sha256:[0-9a-f]+\.\.\. \(.*\.keys\/dev-signing\.pub, development\)/);
  });

  it("a flipped byte, a truncated image, a stranger's key and another board's image are refused; the running slot is not written and still boots", async () => {
    const good = new Uint8Array(await readFile(v1.path));
    const slotA = await slotBytes(device, "A", good.length);
    const flipped = good.slice();
    flipped[Math.floor(good.length / 2)]! ^= 0x01;
    await writeFile(join(w.dir, "flipped.img"), flipped);
    await writeFile(join(w.dir, "truncated.img"), good.subarray(0, good.length - 1000));
    const stranger = await buildWith(w, "stranger", ["--key", w.strangerKey, "--version", "1.0.1", "--default-config", w.config]);
    const linux = await buildWith(w, "linux", ["--key", w.key, "--version", "1.0.2", "--default-config", w.config, "--board", "linux"]);
    const cases: [string, string, RegExp][] = [
      ["flipped byte", join(w.dir, "flipped.img"), /digest mismatch: the image is damaged/],
      ["truncated", join(w.dir, "truncated.img"), /truncated: \d+ of \d+ bytes/],
      ["wrong key", stranger.path, /signed by key sha256:[0-9a-f]{64}, which this box does not trust/],
      ["other board", linux.path, /image 1\.0\.2 is for the linux board, this is the sim board/],
    ];
    for (const [what, path, reason] of cases) {
      const r = await flashTool(w, device, path);
      assert.equal(r.code, 1, `${what}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, reason, what);
      assert.match(r.stderr, /nothing was written to the active slot \(A\); it still boots/, what);
    }
    assert.deepEqual(await slotBytes(device, "A", good.length), slotA, "slot A is as it was");
    const env = await readEnv(device);
    assert.equal(env.next, undefined, "nothing is marked to be tried");
    const b = await bootOnce(w, device);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /booting slot A \(1\.0\.0\)\n/);
    assert.match(b.stderr, /slot A \(1\.0\.0\) confirmed itself healthy/);
  });

  it("an image damaged in its slot after flashing is refused at boot; the active slot boots", async () => {
    const v2 = await buildWith(w, "v2", ["--key", w.key, "--version", "2.0.0", "--default-config", w.config, "--board", "sim"]);
    const f = await flashTool(w, device, v2.path);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /slot B: 2\.0\.0 written and verified/);
    await damageSlot(device, "B", 5000);
    const b = await bootOnce(w, device);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /slot B \(2\.0\.0\) refused: digest mismatch/);
    assert.match(b.stderr, /slot A \(1\.0\.0\) confirmed itself healthy/);
    const env = await readEnv(device);
    assert.equal(env.active, "A");
    assert.equal(env.slots.B.state, "failed");
  });

  it("an image that fails at start (an invalid factory configuration) is reverted by the watchdog to the previous slot", async () => {
    const bad = join(w.dir, "bad-config.json");
    await writeFile(bad, JSON.stringify({ ports: "none" }));
    const broken = await buildWith(w, "broken", ["--key", w.key, "--version", "2.1.0", "--default-config", bad, "--board", "sim"]);
    const f = await flashTool(w, device, broken.path);
    assert.equal(f.code, 0, f.stderr);
    const b = await bootOnce(w, device);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /booting slot B \(2\.1\.0\) on trial/);
    assert.match(b.stderr, /slot B \(2\.1\.0\) exited with status 1 before confirming/);
    assert.match(b.stderr, /slot B \(2\.1\.0\) exited with status 1 before confirming: reverting/);
    assert.match(b.stderr, /slot A \(1\.0\.0\) confirmed itself healthy/);
    const env = await readEnv(device);
    assert.equal(env.active, "A");
    assert.equal(env.booted, "A");
    assert.equal(env.next, undefined);
    assert.equal(env.slots.B.state, "failed");
  });

  it("an image that never confirms itself is killed after --confirm-timeout and reverted", async () => {
    const hang = await stubImage("hang", "2.2.0", "setInterval(() => {}, 1000);\n");
    const f = await flashTool(w, device, hang);
    assert.equal(f.code, 0, f.stderr);
    const b = await bootOnce(w, device, ["--confirm-timeout", "3"]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /slot B \(2\.2\.0\) did not confirm itself healthy within 3 s: stopping it/);
    assert.match(b.stderr, /slot A \(1\.0\.0\) confirmed itself healthy/);
    const env = await readEnv(device);
    assert.equal(env.active, "A");
    assert.equal(env.slots.B.note, "did not confirm within 3 s");
  });

  it("a confirmed image that exits with status 3 (request system reboot) is booted again; status 0 stops the boot step", async () => {
    const marker = join(w.dir, "rebooted-once");
    const u = (p: string) => JSON.stringify(pathToFileURL(join(ROOT, p)).href);
    const stub = await stubImage("reboots", "3.0.0", [
      `import { openFlashFile } from ${u("build/board/flash.js")};`,
      `import { SoftwareSlots, bootedFromEnv } from ${u("build/host/image/software.js")};`,
      `import { existsSync, writeFileSync } from "node:fs";`,
      `const flash = await openFlashFile(process.argv[process.argv.indexOf("--flash") + 1]);`,
      `await new SoftwareSlots(flash, { trusted: [], board: "sim", running: bootedFromEnv() }).confirm();`,
      `await flash.close();`,
      `if (!existsSync(${JSON.stringify(marker)})) { writeFileSync(${JSON.stringify(marker)}, "1"); process.exit(3); }`,
      `process.exit(0);`,
    ].join("\n"));
    const f = await flashTool(w, device, stub);
    assert.equal(f.code, 0, f.stderr);
    const before = (await readEnv(device)).bootId;
    const b = await runNode(TOOL("flowswitch-boot"), ["--flash", device, "--trust", w.trust, "--max-boots", "4"], { timeoutMs: 60_000 });
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr, /slot B \(3\.0\.0\) confirmed itself healthy after \d+ ms: slot B is now the active slot/);
    assert.match(b.stderr, /slot B \(3\.0\.0\) asked for a reboot\n.*booting slot B \(3\.0\.0\)\n/s);
    assert.match(b.stderr, /slot B \(3\.0\.0\) stopped/);
    const env = await readEnv(device);
    assert.equal(env.bootId, before + 2);
    assert.equal(env.active, "B");
  });
});
