// The Linux board's port benchmark: frames per second and delivery latency from one PcapPort to
// another over a veth pair, each port in its own process (as the appliance and a traffic source
// would be), inside a network namespace made for the run and deleted after it. Needs root.
//
// - Throughput: the sender sends `--frames` frames of `--size` bytes in send() calls of `--batch`,
//   yielding to its event loop between calls; the receiver counts what arrives. Reported: the
//   sender's rate (frames / time spent sending), the receiver's rate (frames / time from first to
//   last frame), and the frames lost between them.
// - Receive rate alone: the receiver blocks its event loop while the sender sends `--drain` frames
//   into its kernel ring (sized to hold them), then drains them as fast as it can.
// - Latency: one frame every millisecond carrying its send() time; the receiver subtracts it from
//   the time its listener gets the frame. Both read the same monotonic clock.
//
// Figures only, nothing asserted. Usage: node build/tools/bench-pcap.js [--frames N] [--size B]
// [--batch N] [--drain N] [--samples N] [--json]

import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { PcapPort } from "../board/linux/pcap-port.js";
import type { Frame } from "../board/types.js";

const ETHERTYPE = 0x88b5; // IEEE local experimental
const KIND_THROUGHPUT = 0;
const KIND_LATENCY = 1;
const REPLY_TIMEOUT_MS = 120_000;

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const say = (obj: unknown): void => {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
};

type Msg = Record<string, number | string | boolean>;

/** A frame of the benchmark: broadcast, ethertype 88b5, then kind (u8) and a u32 + f64 payload. */
function benchFrame(src: Uint8Array, size: number, kind: number, n: number, timeUs: number): Frame {
  const f = new Uint8Array(Math.max(size, 60));
  const v = new DataView(f.buffer);
  f.fill(0xff, 0, 6);
  f.set(src, 6);
  v.setUint16(12, ETHERTYPE);
  v.setUint8(14, kind);
  v.setUint32(15, n);
  v.setFloat64(19, timeUs);
  return f;
}

// ---------------------------------------------------------------------------------------------
// The two roles, each run by `ip netns exec` in the namespace

/** Room in the receiver's ring for the drain test's frames (~1.6 KB per slot at MTU 1500). */
const RX_BUFFER_BYTES = 128 << 20;

function runRole(role: string, device: string): void {
  const port = PcapPort.open(role, device, role === "rx" ? { bufferBytes: RX_BUFFER_BYTES } : {});
  let count = 0;
  let batches = 0;
  let firstUs = 0;
  let lastUs = 0;
  const latencies: number[] = [];
  port.start((frames) => {
    const at = nowUs();
    batches++;
    for (const f of frames) {
      if (f.length < 27 || ((f[12] << 8) | f[13]) !== ETHERTYPE) continue;
      const v = new DataView(f.buffer, f.byteOffset, f.byteLength);
      if (v.getUint8(14) === KIND_LATENCY) {
        latencies.push(at - v.getFloat64(19));
      } else {
        if (count === 0) firstUs = at;
        lastUs = at;
        count++;
      }
    }
  });

  const commands: Record<string, (m: Msg) => Promise<Msg>> = {
    // Sender
    throughput: async (m) => {
      const total = Number(m.frames);
      const batch = Number(m.batch);
      const frames = Array.from({ length: batch }, (_, i) => benchFrame(port.mac, Number(m.size), KIND_THROUGHPUT, i, 0));
      let sent = 0;
      let sendingUs = 0;
      const startUs = nowUs();
      for (let done = 0; done < total; done += batch) {
        const t0 = nowUs();
        sent += port.send(done + batch <= total ? frames : frames.slice(0, total - done));
        sendingUs += nowUs() - t0;
        await new Promise((resolve) => setImmediate(resolve));
      }
      return { sent, sendingUs, wallUs: nowUs() - startUs, txErrors: port.stats().txErrors };
    },
    latency: async (m) => {
      for (let i = 0; i < Number(m.samples); i++) {
        port.send([benchFrame(port.mac, 64, KIND_LATENCY, i, nowUs())]);
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      return { sent: Number(m.samples) };
    },
    // Receiver: blocks its event loop (so frames wait in the kernel ring) for ms
    hold: async (m) => {
      const until = Date.now() + Number(m.ms);
      while (Date.now() < until);
      return { held: true };
    },
    // Receiver: answers once nothing has arrived for quietMs
    settle: async (m) => {
      let seen = -1;
      while (seen !== count + latencies.length) {
        seen = count + latencies.length;
        await new Promise((resolve) => setTimeout(resolve, Number(m.quietMs)));
      }
      const reply = { count, batches, firstUs, lastUs, ...percentiles(latencies), ...port.stats() };
      count = batches = firstUs = lastUs = 0;
      latencies.length = 0;
      return reply;
    },
  };

  say({ ready: true });
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    queue = queue.then(async () => {
      const m = JSON.parse(line) as Msg;
      say(await commands[String(m.op)](m));
    });
  });
  lines.on("close", () => void queue.then(() => port.close()));
}

function percentiles(values: number[]): Msg {
  if (values.length === 0) return {};
  const s = [...values].sort((x, y) => x - y);
  const at = (q: number): number => s[Math.min(s.length - 1, Math.floor(q * s.length))];
  return { latencySamples: s.length, latencyP50Us: at(0.5), latencyP99Us: at(0.99), latencyMaxUs: s[s.length - 1] };
}

// ---------------------------------------------------------------------------------------------
// The run, from the root namespace

class Role {
  private readonly lines: string[] = [];
  private wake: (() => void) | undefined;
  private readonly child;

  constructor(ns: string, role: string, device: string) {
    const self = fileURLToPath(import.meta.url);
    this.child = spawn("ip", ["netns", "exec", ns, process.execPath, self, "--role", role, "--device", device], {
      stdio: ["pipe", "pipe", "ignore"], // stderr: only libpcap's "no IPv4 address" warnings
    });
    createInterface({ input: this.child.stdout }).on("line", (l) => {
      this.lines.push(l);
      this.wake?.();
    });
    this.child.on("exit", () => this.wake?.());
  }

  async next(): Promise<Msg> {
    const deadline = Date.now() + REPLY_TIMEOUT_MS;
    while (this.lines.length === 0) {
      if (this.child.exitCode !== null || Date.now() > deadline) throw new Error("benchmark process exited or stopped answering");
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, 1000);
        this.wake = () => (clearTimeout(t), resolve());
      });
    }
    return JSON.parse(this.lines.shift()!) as Msg;
  }

  send(m: Msg): void {
    this.child.stdin.write(`${JSON.stringify(m)}\n`);
  }

  async ask(m: Msg): Promise<Msg> {
    this.send(m);
    return this.next();
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const gone = new Promise((resolve) => this.child.once("exit", resolve));
    this.child.stdin.end();
    const t = setTimeout(() => this.child.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(t);
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      frames: { type: "string", default: "200000" },
      size: { type: "string", default: "64" },
      batch: { type: "string", default: "256" },
      samples: { type: "string", default: "1000" },
      drain: { type: "string", default: "50000" },
      json: { type: "boolean", default: false },
      role: { type: "string" },
      device: { type: "string" },
    },
  });
  if (values.role !== undefined) return runRole(values.role, values.device ?? "");
  if (process.getuid?.() !== 0) throw new Error("bench-pcap needs root: it creates a network namespace with `ip netns`");

  const ns = `fswb-${randomBytes(3).toString("hex")}`;
  const ip = (...args: string[]): string => execFileSync("ip", args, { encoding: "utf8", timeout: 10_000 });
  const roles: Role[] = [];
  ip("netns", "add", ns);
  try {
    ip("-n", ns, "link", "add", "tx0", "type", "veth", "peer", "name", "rx0");
    ip("-n", ns, "link", "set", "tx0", "up");
    ip("-n", ns, "link", "set", "rx0", "up");
    const rx = new Role(ns, "rx", "rx0");
    roles.push(rx);
    await rx.next();
    const tx = new Role(ns, "tx", "tx0");
    roles.push(tx);
    await tx.next();

    const sent = await tx.ask({ op: "throughput", frames: values.frames, size: values.size, batch: values.batch });
    const got = await rx.ask({ op: "settle", quietMs: 300 });
    rx.send({ op: "hold", ms: 3000 });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const drainSent = await tx.ask({ op: "throughput", frames: values.drain, size: values.size, batch: values.batch });
    await rx.next(); // the hold's answer
    const drain = await rx.ask({ op: "settle", quietMs: 300 });
    await tx.ask({ op: "latency", samples: values.samples });
    const lat = await rx.ask({ op: "settle", quietMs: 300 });

    const rxSpanUs = Number(got.lastUs) - Number(got.firstUs);
    const drainSpanUs = Number(drain.lastUs) - Number(drain.firstUs);
    const report = {
      frameBytes: Number(values.size),
      frames: Number(values.frames),
      sendBatch: Number(values.batch),
      txSent: sent.sent,
      txErrors: sent.txErrors,
      txFramesPerSecond: Math.round(Number(sent.sent) / (Number(sent.sendingUs) / 1e6)),
      txWallFramesPerSecond: Math.round(Number(sent.sent) / (Number(sent.wallUs) / 1e6)),
      rxFrames: got.count,
      rxLost: Number(sent.sent) - Number(got.count),
      rxFramesPerSecond: rxSpanUs > 0 ? Math.round(Number(got.count) / (rxSpanUs / 1e6)) : 0,
      drainFrames: drain.count,
      drainLost: Number(drainSent.sent) - Number(drain.count),
      rxDrainFramesPerSecond: drainSpanUs > 0 ? Math.round(Number(drain.count) / (drainSpanUs / 1e6)) : 0,
      rxMeanBatch: Number(got.batches) > 0 ? Math.round((Number(got.count) / Number(got.batches)) * 10) / 10 : 0,
      latencySamples: lat.latencySamples,
      latencyP50Us: lat.latencyP50Us,
      latencyP99Us: lat.latencyP99Us,
      latencyMaxUs: lat.latencyMaxUs,
    };
    if (values.json) say(report);
    else for (const [k, v] of Object.entries(report)) console.log(`${k.padEnd(22)} ${String(v)}`);
  } finally {
    for (const r of roles) await r.stop();
    ip("netns", "del", ns);
  }
}

await main();
