// Software upload over the serial console as an operator does it: the box's console on one end of
// a socat pty pair, a terminal on the other; `request system software add`, then the terminal
// hands its line to lrzsz's `sz` (as minicom or picocom do) until sz exits, then takes it back.
// The box runs on the simulated board with the real firmware slots (host/image) in a flash file,
// trusting a key made for this test; the images come from the real builder (npm run image).
// Timings are shortened only where a test would otherwise wait: requests every 0.5 s (so requests
// pile up unread while sz starts, as they do when an operator picks a file), fewer retries.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFile } from "node:child_process";
import { mkdtemp, writeFile, rm, readFile } from "node:fs/promises";
import { openSync, closeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { fileURLToPath } from "node:url";
import { randomBytes } from "node:crypto";
import { SerialPort } from "serialport";
import { bootBox, type Box } from "../../host/box.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import { openFlashFile } from "../../board/flash.js";
import { createKeyPair } from "../../host/image/keys.js";
import { openSerial, type SerialConsole } from "../../host/console/serial.js";
import { openPtyPair, PtyOperator, type PtyPair } from "../lib/pty.js";
import { requireTool } from "../lib/tshark.js";
import { parseMac } from "../../host/net/frame.js";
import { labConfig, svc } from "../lib/lab-config.js";
import { hashPassword } from "../../host/console/passwords.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PROMPT = /admin@fs-soft> $/;
const PASSWORD = "Upgr4de-me!";
/** Small enough that an oversized file is quick to make, big enough for a real image (about 1.5 MB). */
const MAX_IMAGE = 4 * 1024 * 1024;

let dir: string;
let pair: PtyPair;
let serial: SerialConsole;
let op: PtyOperator;
let box: Box;
const images: Record<"v2" | "v3" | "stranger", string> = { v2: "", v3: "", stranger: "" };

async function buildImage(name: string, version: string, key: string): Promise<string> {
  const out = join(dir, `${name}.img`);
  await promisify(execFile)(process.execPath, [join(ROOT, "build/tools/flowswitch-image.js"), "--key", key, "--version", version, "--out", out, "--json"], { timeout: 120_000 });
  return out;
}

before(async () => {
  requireTool("sz", "lrzsz");
  dir = await mkdtemp(join(tmpdir(), "fsw-upload-"));
  const release = await createKeyPair(join(dir, "trusted"), "release");
  const stranger = await createKeyPair(join(dir, "stranger"), "stranger");
  process.env.FLOWSWITCH_TRUST = join(dir, "trusted"); // the box trusts only the test's key
  images.v2 = await buildImage("fs-0.2.0", "0.2.0-test", release.privatePath);
  images.v3 = await buildImage("fs-0.3.0", "0.3.0-test", release.privatePath);
  images.stranger = await buildImage("fs-stranger", "6.6.6", stranger.privatePath);

  const factory = labConfig([svc("dsr", { backends: ["s1", "s2"] })], { system: { hostname: "fs-soft" } });
  await writeFile(join(dir, "factory.json"), JSON.stringify(factory));
  pair = await openPtyPair(dir);
  serial = await openSerial(pair.consolePath);
  op = await PtyOperator.open(pair.operatorPath);
  const board = new SimBoard(
    [new SimPort("client", parseMac("02:00:00:00:01:01")), new SimPort("server", parseMac("02:00:00:00:02:01"))],
    await openFlashFile(join(dir, "flash.img"), { create: true }),
  );
  box = await bootBox({
    board, defaultConfigPath: join(dir, "factory.json"), console: serial, log: () => undefined, backoffMs: () => 50,
    consoleSoftware: { maxImageBytes: MAX_IMAGE, transfer: { requestIntervalMs: 500, maxRetries: 4, charTimeoutMs: 300 } },
  });
  await op.expect("fs-soft login: ", 10_000);
  op.send("admin\r");
  await op.expect("Password: ");
  op.send("flowswitch\r");
  await op.expect("New password: ");
  op.send(`${PASSWORD}\r`);
  await op.expect("Retype new password: ");
  op.send(`${PASSWORD}\r`);
  await op.expect(PROMPT);
});

after(async () => {
  await box?.stop();
  await op?.close();
  await serial?.close();
  await pair?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface SzRun {
  code: number | null;
  stderr: string;
}

/**
 * What a terminal program does for an upload: stops reading its line, runs sz with the line as
 * its stdin and stdout until sz exits, then reads the line again. `line` damages what sz sends
 * on the way (a noisy line): sz then talks through pipes and a relay instead.
 */
async function sendWithSz(args: string[], line?: (chunk: Buffer) => Buffer): Promise<SzRun> {
  await op.close();
  let run: SzRun;
  if (!line) {
    const fd = openSync(pair.operatorPath, "r+");
    try {
      run = await runSz(spawn("sz", args, { stdio: [fd, fd, "pipe"] }));
    } finally {
      closeSync(fd);
    }
  } else {
    const port = new SerialPort({ path: pair.operatorPath, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) => port.open((e) => (e ? reject(e) : resolve())));
    const child = spawn("sz", args, { stdio: ["pipe", "pipe", "pipe"] });
    port.on("data", (d: Buffer) => child.stdin.write(d));
    child.stdin.on("error", () => undefined); // sz gone: what the box still says is dropped
    child.stdout.on("data", (d: Buffer) => port.write(line(d)));
    run = await runSz(child);
    await new Promise<void>((resolve) => port.drain(() => port.close(() => resolve())));
  }
  op = await PtyOperator.open(pair.operatorPath);
  return run;
}

function runSz(child: ReturnType<typeof spawn>): Promise<SzRun> {
  let stderr = "";
  child.stderr?.setEncoding("utf8");
  child.stderr?.on("data", (d: string) => (stderr += d));
  return new Promise((resolve) => {
    const t = setTimeout(() => child.kill("SIGKILL"), 60_000);
    child.on("close", (code) => {
      clearTimeout(t);
      resolve({ code, stderr });
    });
  });
}

/** Runs `request system software add` up to the hint to start the send. */
async function startAdd(): Promise<string> {
  op.send("request system software add\r");
  return op.expect("Start the YMODEM or XMODEM-1K send now (e.g. sz --ymodem --1k FILE); Ctrl-X twice cancels.");
}

async function show(): Promise<string> {
  op.send("show system software\r");
  return op.expect(PROMPT);
}

/** The state of both slots as the box sees it, for "unchanged" checks. */
async function slots(): Promise<unknown> {
  return (await box.software!.status()).slots.map(({ name, version, valid, next, triesLeft, active }) => ({ name, version, valid, next, triesLeft, active }));
}

/** The row of `show system software` that starts with `name`: both slots' cells. */
function row(out: string, name: string): string {
  const line = out.split(/\r?\n/).find((l) => l.startsWith(`${name} `));
  assert.ok(line, `no ${name} row in:\n${out}`);
  return line.slice(name.length).trim().replace(/ {2,}/g, " | ");
}

test("upload: show system software on a fresh box: A counts as running (a development run), neither slot holds an image", async () => {
  const out = await show();
  assert.match(out, /Running a build not started from a slot \(development\); slot A counts as running\./);
  assert.match(out, /^ +Slot A \(running\) +Slot B\r?$/m);
  assert.equal(row(out, "Version"), "- | -");
  assert.equal(row(out, "Image"), "not valid: no image (empty) | not valid: no image (empty)");
  assert.equal(row(out, "Next boot"), "no | no");
});

test("upload: sz --ymodem sends a real image; it is checked and installed in the inactive slot B", async () => {
  const hint = await startAdd();
  assert.match(hint, /Receiving an image for slot B \(slot A is running and is not touched\); at most 4,194,304 bytes\./);
  const sz = await sendWithSz(["--ymodem", images.v2]);
  assert.equal(sz.code, 0, `sz: ${sz.stderr}`);
  const out = await op.expect(PROMPT, 30_000);
  const size = (await readFile(images.v2)).length;
  const received = new RegExp(`Received fs-0\\.2\\.0\\.img: ${size.toLocaleString("en-US")} bytes in [\\d.]+ s, ([\\d,]+) bytes/s \\(YMODEM with CRC-16, ([\\d,]+) blocks, 0 retries`).exec(out);
  assert.ok(received, out);
  process.stdout.write(`# YMODEM over the pty: ${received[1]} bytes/s (${size} bytes, ${received[2]} blocks)\n`);
  assert.match(out, /Checking the image and writing it to slot B\.\.\./);
  assert.match(out, /Installed 0\.2\.0-test in slot B\. It boots once at the next `request system reboot`;/);
  const shown = await show();
  assert.equal(row(shown, "Version"), "- | 0.2.0-test", "slot B has it; the running slot A is untouched");
  assert.match(row(shown, "Built"), /^- \| \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$/);
  assert.equal(row(shown, "Signed"), "- | release key");
  assert.equal(row(shown, "Image"), "not valid: no image (empty) | valid");
  assert.equal(row(shown, "Active"), "no | no");
  assert.equal(row(shown, "Confirmed"), "no | no");
  assert.equal(row(shown, "Next boot"), "no | yes, 1 try left");
});

test("upload: sz --xmodem --1k works too: the padding XMODEM adds is tolerated by the image check", async () => {
  await startAdd();
  const sz = await sendWithSz(["--xmodem", "--1k", images.v3]);
  assert.equal(sz.code, 0, `sz: ${sz.stderr}`);
  const out = await op.expect(PROMPT, 30_000);
  const speed = /Received ([\d,]+) bytes in [\d.]+ s, ([\d,]+) bytes\/s \(XMODEM-1K with CRC-16/.exec(out);
  assert.ok(speed, out);
  process.stdout.write(`# XMODEM-1K over the pty: ${speed[2]} bytes/s\n`);
  assert.match(out, /Installed 0\.3\.0-test in slot B\./);
  assert.equal(row(await show(), "Version"), "- | 0.3.0-test");
});

test("upload: sz --ymodem --1k over a line that damages one block: the block is sent again and the image still installs", async () => {
  let at = 0;
  let damaged = false;
  const sz = await (async () => {
    await startAdd();
    return sendWithSz(["--ymodem", "--1k", images.v3], (chunk) => {
      const copy = Buffer.from(chunk);
      const i = 5000 - at; // somewhere in the fifth 1 KiB block, once
      if (!damaged && i >= 0 && i < copy.length) {
        copy[i] ^= 0x55;
        damaged = true;
      }
      at += copy.length;
      return copy;
    });
  })();
  assert.equal(sz.code, 0, `sz: ${sz.stderr}`);
  const out = await op.expect(PROMPT, 30_000);
  assert.ok(damaged);
  const received = /([\d,]+) bytes\/s \(YMODEM with CRC-16, ([\d,]+) blocks, 1 retry\)/.exec(out);
  assert.ok(received, out);
  process.stdout.write(`# YMODEM-1K over the pty (one block sent twice): ${received[1]} bytes/s, ${received[2]} blocks\n`);
  assert.match(out, /Installed 0\.3\.0-test in slot B\./);
});

test("upload: a line that damages a block every time: refused after the retries, nothing installed, the slots unchanged", async () => {
  const before = await slots();
  // Follows sz's frames (CRC blocks: STX 1029 bytes, SOH 133, EOT 1) to damage every copy of block 3.
  let left = 0;
  let pos = 0;
  let block = -1;
  await startAdd();
  const sz = await sendWithSz(["--ymodem", images.v2], (chunk) => {
    const copy = Buffer.from(chunk);
    for (let i = 0; i < copy.length; i++) {
      if (left === 0) {
        left = copy[i] === 0x02 ? 1029 : copy[i] === 0x01 ? 133 : 1;
        pos = 0;
      }
      if (pos === 1) block = copy[i];
      if (block === 3 && pos === 100) copy[i] ^= 0x55;
      pos++;
      left--;
    }
    return copy;
  });
  assert.notEqual(sz.code, 0, "sz gives up too");
  const out = await op.expect(PROMPT, 60_000);
  assert.match(out, /error: the transfer failed: block 3 failed 5 times \(last: a CRC error in block 3\)\. Nothing was installed\./);
  assert.deepEqual(await slots(), before);
});

test("upload: a file bigger than a slot is refused at YMODEM's block 0, before any data crosses", async () => {
  const big = join(dir, "big.img");
  await writeFile(big, randomBytes(MAX_IMAGE + 1));
  const before = await slots();
  await startAdd();
  const sz = await sendWithSz(["--ymodem", big]);
  assert.notEqual(sz.code, 0);
  const out = await op.expect(PROMPT, 30_000);
  assert.match(out, /error: the transfer failed: big\.img is 4,194,305 bytes: at most 4,194,304 fit\. Nothing was installed\./);
  assert.deepEqual(await slots(), before);
});

test("upload: what is not an image is refused with the image check's reason; the slots are unchanged", async () => {
  const junk = join(dir, "junk.img");
  await writeFile(junk, randomBytes(200_000));
  const before = await slots();
  await startAdd();
  assert.equal((await sendWithSz(["--ymodem", junk])).code, 0);
  const out = await op.expect(PROMPT, 30_000);
  assert.match(out, /Received junk\.img: 200,000 bytes/);
  assert.match(out, /error: the image is refused: .+\. Slot A keeps running; what boots next is unchanged\./);
  assert.deepEqual(await slots(), before);
});

test("upload: an image signed by a key this box does not trust is refused", async () => {
  const before = await slots();
  await startAdd();
  assert.equal((await sendWithSz(["--ymodem", images.stranger])).code, 0);
  const out = await op.expect(PROMPT, 30_000);
  assert.match(out, /error: the image is refused: .*(trust|key).*\. Slot A keeps running/i);
  assert.deepEqual(await slots(), before);
});

test("upload: plain `sz` (ZMODEM) is recognised and the operator told what to use instead", async () => {
  await startAdd();
  await sendWithSz(["--zmodem", images.v2]);
  const out = await op.expect(PROMPT, 30_000);
  assert.match(out, /error: the transfer failed: the sender speaks ZMODEM: send with YMODEM or XMODEM-1K \(sz --ymodem --1k FILE\)\. Nothing was installed\./);
});

test("upload: Ctrl-X Ctrl-X typed at the terminal cancels; the console takes its keys back", async () => {
  await startAdd();
  op.send("\x18\x18");
  const out = await op.expect(PROMPT, 10_000);
  assert.match(out, /No file was received\.\r?\nerror: the transfer failed: cancelled by the sender \(CAN CAN\)\. Nothing was installed\./);
  op.send("show system software | match Version\r");
  const shown = await op.expect(PROMPT);
  assert.equal(row(shown, "Version"), "- | 0.3.0-test", "line editing works again");
});

test("upload: request system software rollback asks first; no keeps everything as it is", async () => {
  op.send("request system software rollback\r");
  await op.expect("Boot slot B (0.3.0-test) once at the next reboot? [yes,no] (no) ");
  op.send("no\r");
  const out = await op.expect(PROMPT);
  assert.match(out, /Rollback cancelled\./);
  op.send("request system software rollback\r");
  await op.expect("[yes,no] (no) ");
  op.send("yes\r");
  assert.match(await op.expect(PROMPT), /Slot B \(0\.3\.0-test\) boots once at the next `request system reboot`\./);
  assert.equal(row(await show(), "Next boot"), "no | yes, 1 try left");
});

test("upload: an operator-class user may look but not install or roll back", async () => {
  const hash = await hashPassword("Look-but-d0nt");
  box.session.edit((c) => void c.system!.users!.push({ name: "viewer", class: "operator", passwordHash: hash }));
  assert.ok((await box.session.commit({ user: "test", comment: "a read-only user" })).ok);
  op.send("exit\r");
  await op.expect("fs-soft login: ");
  op.send("viewer\r");
  await op.expect("Password: ");
  op.send("Look-but-d0nt\r");
  await op.expect(/viewer@fs-soft> $/);
  op.send("request system software add\r");
  assert.match(await op.expect(/viewer@fs-soft> $/), /error: permission denied: installing software needs the admin class/);
  op.send("request system software rollback\r");
  assert.match(await op.expect(/viewer@fs-soft> $/), /error: permission denied: rolling back needs the admin class/);
  op.send("show system software\r");
  assert.match(await op.expect(/viewer@fs-soft> $/), /slot A counts as running/);
});
