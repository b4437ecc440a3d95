// The Linux board's ports on real interfaces: a veth pair inside a network namespace that the test
// creates and always deletes. The ports run in child processes started in that namespace
// (helpers/pcap-echo.ts), one per port, so sender and receiver really run side by side.
// Needs root (ip netns) and fails, rather than skips, without it.

import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { openLinuxBoard } from "../../board/linux/index.js";

const HELPER = fileURLToPath(new URL("./helpers/pcap-echo.js", import.meta.url));
const NS = `fswt-${randomBytes(3).toString("hex")}`;
const DEV_A = "fswa0";
const DEV_B = "fswb0";
const REPLY_TIMEOUT_MS = 20_000;
const TEST_TIMEOUT_MS = 60_000;

function ip(...args: string[]): string {
  return execFileSync("ip", args, { encoding: "utf8", timeout: 10_000, stdio: ["ignore", "pipe", "pipe"] });
}

/** Writes a sysctl of the test namespace (its /proc/sys/net is the namespace's own). */
function nsSysctl(path: string, value: string): void {
  ip("netns", "exec", NS, "sh", "-c", `echo ${value} > /proc/sys/net/${path}`);
}

type Reply = Record<string, unknown>;

/** One helper process: a port on one device in the namespace, driven by JSON lines. */
class PortProcess {
  readonly stderr: string[] = [];
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  private exited = false;

  private constructor(private readonly child: ChildProcess, readonly label: string) {
    createInterface({ input: child.stdout! }).on("line", (line) => {
      this.lines.push(line);
      this.wake?.();
    });
    child.stderr!.setEncoding("utf8").on("data", (s: string) => this.stderr.push(s));
    child.on("exit", () => {
      this.exited = true;
      this.wake?.();
    });
  }

  static spawn(args: string[]): PortProcess {
    const child = spawn("ip", ["netns", "exec", NS, process.execPath, HELPER, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    running.add(child);
    child.on("exit", () => running.delete(child));
    return new PortProcess(child, args.join(" "));
  }

  /** Starts a port on `device` and waits for its hello; `mac` is its address. */
  static async open(device: string, snaplen?: number): Promise<PortProcess & { mac: string }> {
    const p = PortProcess.spawn(snaplen === undefined ? [device] : [device, String(snaplen)]);
    const hello = await p.next();
    assert.equal(hello.ready, true, `port on ${device} did not open: ${JSON.stringify(hello)} ${p.stderr.join("")}`);
    return Object.assign(p, { mac: hello.mac as string });
  }

  /** The next line the child prints, bounded by REPLY_TIMEOUT_MS. */
  async next(): Promise<Reply> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    while (this.lines.length === 0) {
      if (this.exited) throw new Error(`${this.label}: exited without answering; stderr: ${this.stderr.join("")}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`${this.label}: no answer within ${REPLY_TIMEOUT_MS} ms; stderr: ${this.stderr.join("")}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => (clearTimeout(timer), resolve());
      });
      this.wake = undefined;
    }
    return JSON.parse(this.lines.shift()!) as Reply;
  }

  async request(cmd: Reply): Promise<Reply> {
    this.child.stdin!.write(`${JSON.stringify(cmd)}\n`);
    return this.next();
  }

  /** Closes stdin, which makes the child close its port and exit; kills it if it does not. */
  async stop(): Promise<void> {
    if (this.exited) return;
    const gone = new Promise<void>((resolve) => this.child.once("exit", () => resolve()));
    this.child.stdin!.end();
    const timer = setTimeout(() => this.child.kill("SIGKILL"), 5_000);
    await gone;
    clearTimeout(timer);
  }
}

const running = new Set<ChildProcess>();

function frameHex(dst: string, src: string, ethertype: number, length: number): string {
  const f = randomBytes(length);
  Buffer.from(dst.replaceAll(":", ""), "hex").copy(f, 0);
  Buffer.from(src.replaceAll(":", ""), "hex").copy(f, 6);
  f.writeUInt16BE(ethertype, 12);
  return f.toString("hex");
}

const BROADCAST = "ff:ff:ff:ff:ff:ff";
const TEST_ETHERTYPE = 0x88b5;

describe("Linux board ports (libpcap on a veth pair in a network namespace)", () => {
  before(() => {
    if (process.getuid?.() !== 0) {
      throw new Error("the Linux board test needs root: it creates a network namespace and a veth pair with `ip netns`");
    }
    ip("netns", "add", NS);
    // No IPv6 chatter from the kernel unless a test asks for it.
    nsSysctl("ipv6/conf/all/disable_ipv6", "1");
    nsSysctl("ipv6/conf/default/disable_ipv6", "1");
    ip("-n", NS, "link", "add", DEV_A, "type", "veth", "peer", "name", DEV_B);
    ip("-n", NS, "link", "set", DEV_A, "up");
    ip("-n", NS, "link", "set", DEV_B, "up");
  });

  after(async () => {
    for (const child of running) child.kill("SIGKILL");
    try {
      ip("netns", "del", NS);
    } catch {
      // `before` failed before creating it
    }
  });

  describe("at MTU 1500", () => {
    let a: PortProcess & { mac: string };
    let b: PortProcess & { mac: string };
    before(async () => {
      a = await PortProcess.open(DEV_A);
      b = await PortProcess.open(DEV_B);
    });
    after(async () => {
      await a?.stop();
      await b?.stop();
    });

    it("delivers frames sent on one end byte-identical on the other, and never to the sender", { timeout: TEST_TIMEOUT_MS }, async (t) => {
      const frames = [
        frameHex(b.mac, a.mac, TEST_ETHERTYPE, 60),
        frameHex(BROADCAST, a.mac, TEST_ETHERTYPE, 1514),
        frameHex("02:00:00:00:00:99", "02:00:00:00:00:98", 0x0800, 100), // for neither side: promiscuous mode
      ];
      const sent = await a.request({ op: "send", hex: frames });
      assert.equal(sent.sent, 3);
      assert.equal((await b.request({ op: "wait", count: 3, timeoutMs: 5_000 })).received, 3);
      const got = await b.request({ op: "take", hex: true });
      assert.deepEqual(got.hex, frames);
      t.diagnostic(`first frame delivered ${(got.batchAt as number[])[0] - (sent.at as number)} us after send() (other process)`);

      // Anything a's socket would see of its own frames has arrived by now; give it 200 ms more.
      assert.equal((await a.request({ op: "wait", count: 1, timeoutMs: 200 })).received, 0, "the sender saw its own frames");
      assert.equal((await a.request({ op: "stats" })).rxOwnMac, 0);
    });

    it("does not deliver what its own kernel sends out of the interface", { timeout: TEST_TIMEOUT_MS }, async () => {
      await a.request({ op: "take" });
      await b.request({ op: "take" });
      // Turning IPv6 on makes the kernel send MLD reports and neighbour solicitations out of a.
      nsSysctl(`ipv6/conf/${DEV_A}/disable_ipv6`, "0");
      try {
        const deadline = Date.now() + 10_000;
        let fromKernel: string[] = [];
        while (fromKernel.length === 0 && Date.now() < deadline) {
          await b.request({ op: "wait", count: 1, timeoutMs: 1_000 });
          const got = (await b.request({ op: "take", hex: true })).hex as string[];
          fromKernel = got.filter((h) => h.slice(12, 24) === a.mac.replaceAll(":", "") && h.slice(24, 28) === "86dd");
        }
        assert.ok(fromKernel.length > 0, "the kernel sent no IPv6 frame out of a within 10 s");
      } finally {
        nsSysctl(`ipv6/conf/${DEV_A}/disable_ipv6`, "1");
      }
      const seen = await a.request({ op: "take", hex: true });
      assert.deepEqual(seen.hex, [], "a delivered frames its own kernel sent");
    });

    it("delivers a burst of 10,000 frames complete, more than one frame per callback", { timeout: TEST_TIMEOUT_MS }, async (t) => {
      await b.request({ op: "take" });
      const count = 10_000;
      const sent = await a.request({ op: "burst", count, size: 64 });
      assert.equal(sent.sent, count, `a sent ${String(sent.sent)} of ${count}: ${JSON.stringify(await a.request({ op: "stats" }))}`);
      await b.request({ op: "wait", count, timeoutMs: 15_000 });
      const got = await b.request({ op: "take" });
      const seqs = new Set(got.seqs as number[]);
      const batches = got.batches as number[];
      const missing = count - seqs.size;
      t.diagnostic(`${count} frames sent in ${(sent.ms as number).toFixed(1)} ms; received in ${batches.length} batches (largest ${Math.max(...batches)})`);
      assert.equal(
        missing,
        0,
        `${missing} of ${count} frames did not arrive: the kernel ring overflowed (libpcap counts those drops, cap cannot read them); ` +
          `receiver stats ${JSON.stringify(await b.request({ op: "stats" }))}`,
      );
      assert.equal((got.seqs as number[]).length, count, "no frame was delivered twice");
      assert.ok(batches.length < count / 2, `${batches.length} batches for ${count} frames: not batched`);
    });

    it("counts a frame the kernel refuses instead of throwing, and keeps sending", { timeout: TEST_TIMEOUT_MS }, async () => {
      const before = await a.request({ op: "stats" });
      const tooLong = frameHex(b.mac, a.mac, TEST_ETHERTYPE, 20_000);
      const tooShort = "ffffffffff";
      assert.equal((await a.request({ op: "send", hex: [tooLong, tooShort] })).sent, 0);
      const after = await a.request({ op: "stats" });
      assert.equal((after.txErrors as number) - (before.txErrors as number), 2);
      assert.equal((await a.request({ op: "send", hex: [frameHex(b.mac, a.mac, TEST_ETHERTYPE, 60)] })).sent, 1);
    });
  });

  describe("at MTU 9000", () => {
    let a: PortProcess & { mac: string };
    let b: PortProcess & { mac: string };
    let small: PortProcess & { mac: string };
    before(async () => {
      // Before opening: libpcap sizes the kernel ring's slots for the MTU at open time.
      ip("-n", NS, "link", "set", DEV_A, "mtu", "9000");
      ip("-n", NS, "link", "set", DEV_B, "mtu", "9000");
      a = await PortProcess.open(DEV_A);
      b = await PortProcess.open(DEV_B);
      small = await PortProcess.open(DEV_B, 1518); // a second capture on b, with a small snaplen
    });
    after(async () => {
      await a?.stop();
      await b?.stop();
      await small?.stop();
    });

    it("delivers 9000- and 9014-byte frames whole, and counts rather than cuts a frame longer than the snaplen", { timeout: TEST_TIMEOUT_MS }, async () => {
      const frames = [frameHex(b.mac, a.mac, TEST_ETHERTYPE, 9000), frameHex(b.mac, a.mac, TEST_ETHERTYPE, 9014)];
      assert.equal((await a.request({ op: "send", hex: frames })).sent, 2);
      assert.equal((await b.request({ op: "wait", count: 2, timeoutMs: 5_000 })).received, 2);
      assert.deepEqual((await b.request({ op: "take", hex: true })).hex, frames);

      const deadline = Date.now() + 5_000;
      let stats = await small.request({ op: "stats" });
      while ((stats.rxTruncated as number) < 2 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
        stats = await small.request({ op: "stats" });
      }
      assert.equal(stats.rxTruncated, 2, JSON.stringify(stats));
      assert.equal(stats.rxDropped, 2, JSON.stringify(stats));
      assert.equal(stats.rxFrames, 0, JSON.stringify(stats));
      assert.deepEqual((await small.request({ op: "take", hex: true })).hex, []);
    });
  });

  describe("errors", () => {
    it("refuses an interface that does not exist, naming it", { timeout: TEST_TIMEOUT_MS }, async () => {
      await assert.rejects(openLinuxBoard([{ name: "p0", device: "fswt-nope0" }]), /^Error: no network interface fswt-nope0: /);
    });

    it("opens all ports or none: a missing interface closes the ports already open", { timeout: TEST_TIMEOUT_MS }, async () => {
      const p = PortProcess.spawn(["--board", `${DEV_A},fswnope1`]);
      try {
        const reply = await p.next();
        assert.match(String(reply.error), /^no network interface fswnope1: /);
        // The child is still running: had it kept a's capture open, a would still be promiscuous.
        assert.match(ip("-n", NS, "-d", "link", "show", DEV_A), /promiscuity 0 /);
      } finally {
        await p.stop();
      }
    });

    it("refuses two ports on one interface", { timeout: TEST_TIMEOUT_MS }, async () => {
      await assert.rejects(
        openLinuxBoard([
          { name: "p0", device: "fswt-nope0" },
          { name: "p1", device: "fswt-nope0" },
        ]),
        /ports p0 and p1 both use network interface fswt-nope0/,
      );
    });
  });
});
