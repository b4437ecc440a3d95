// A child process for the Linux board test and benchmark: opens a PcapPort in the network
// namespace it was started in (`ip netns exec <ns> node pcap-echo.js <device> [snaplen]`) and obeys
// JSON commands on stdin, one per line, answering each with one JSON line on stdout:
//
//   {"op":"send","hex":["..."]}           -> {"sent":n,"at":us}
//   {"op":"burst","count":n,"size":bytes} -> {"sent":n,"ms":t}   frames: broadcast, ethertype 88b5, u32 sequence
//   {"op":"wait","count":n,"timeoutMs":t} -> {"received":n}    once n frames are waiting to be taken, or at timeout
//   {"op":"take","hex":bool}              -> {"count","batches":[sizes],"batchAt":[us],"seqs":[...],"hex"?:[...]}
//   {"op":"stats"}                        -> the port's counters
//   {"op":"exit"}                         -> {"closed":true} and exits
//
// `pcap-echo.js --board dev1,dev2` instead opens a Linux board on those devices, prints
// {"ports":n} or {"error":message}, and waits for stdin to close.
//
// The first line is {"ready":true,"mac":"..."} or {"error":message}. Times are microseconds of the
// monotonic clock, comparable between processes. The process exits when stdin closes, and after
// MAX_LIFE_MS whatever happens.

import { createInterface } from "node:readline";
import { openLinuxBoard } from "../../../board/linux/index.js";
import { PcapPort } from "../../../board/linux/pcap-port.js";
import type { Frame } from "../../../board/types.js";

const MAX_LIFE_MS = 120_000;
const TEST_ETHERTYPE = 0x88b5; // IEEE local experimental

interface Command {
  op: string;
  hex?: string[] | boolean;
  count?: number;
  size?: number;
  timeoutMs?: number;
}

const nowUs = (): number => Number(process.hrtime.bigint() / 1000n);
const say = (obj: unknown): void => {
  process.stdout.write(`${JSON.stringify(obj)}\n`);
};

async function runBoard(devices: string[]): Promise<void> {
  try {
    const board = await openLinuxBoard(devices.map((device, i) => ({ name: `p${i}`, device })));
    say({ ports: board.ports.length });
  } catch (err) {
    say({ error: (err as Error).message });
  }
  // Stay alive (the test inspects the interfaces meanwhile) until stdin closes.
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
}

function runPort(device: string, snaplen: number | undefined): void {
  let port: PcapPort;
  try {
    port = PcapPort.open(device, device, snaplen === undefined ? {} : { snaplen });
  } catch (err) {
    say({ error: (err as Error).message });
    process.exit(1);
  }
  let frames: Frame[] = [];
  let batches: number[] = [];
  let batchAt: number[] = [];
  let waiter: { count: number; done: () => void } | undefined;
  port.start((batch) => {
    frames.push(...batch);
    batches.push(batch.length);
    batchAt.push(nowUs());
    if (waiter !== undefined && frames.length >= waiter.count) waiter.done();
  });
  say({ ready: true, mac: Array.from(port.mac, (b) => b.toString(16).padStart(2, "0")).join(":") });

  const handle = async (cmd: Command): Promise<unknown> => {
    switch (cmd.op) {
      case "send": {
        const list = (cmd.hex as string[]).map((h) => Uint8Array.from(Buffer.from(h, "hex")));
        const at = nowUs();
        return { sent: port.send(list), at };
      }
      case "burst": {
        const count = cmd.count ?? 0;
        const list: Frame[] = [];
        for (let i = 0; i < count; i++) {
          const f = new Uint8Array(cmd.size ?? 64);
          f.fill(0xff, 0, 6);
          f.set(port.mac, 6);
          new DataView(f.buffer).setUint16(12, TEST_ETHERTYPE);
          new DataView(f.buffer).setUint32(14, i);
          list.push(f);
        }
        const t0 = performance.now();
        const sent = port.send(list);
        return { sent, ms: performance.now() - t0 };
      }
      case "wait": {
        const count = cmd.count ?? 1;
        if (frames.length < count) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, cmd.timeoutMs ?? 1000);
            waiter = { count, done: () => (clearTimeout(timer), resolve()) };
          });
          waiter = undefined;
        }
        return { received: frames.length };
      }
      case "take": {
        const seqs = frames
          .filter((f) => f.length >= 18 && ((f[12] << 8) | f[13]) === TEST_ETHERTYPE)
          .map((f) => new DataView(f.buffer, f.byteOffset).getUint32(14));
        const reply = {
          count: frames.length,
          batches,
          batchAt,
          seqs,
          ...(cmd.hex === true ? { hex: frames.map((f) => Buffer.from(f).toString("hex")) } : {}),
        };
        frames = [];
        batches = [];
        batchAt = [];
        return reply;
      }
      case "stats":
        return port.stats();
      case "exit":
        port.close();
        return { closed: true };
      default:
        return { error: `unknown op ${cmd.op}` };
    }
  };

  // Commands run one at a time, in order.
  let queue = Promise.resolve();
  const lines = createInterface({ input: process.stdin });
  lines.on("line", (line) => {
    queue = queue.then(async () => {
      const cmd = JSON.parse(line) as Command;
      say(await handle(cmd));
      if (cmd.op === "exit") lines.close();
    });
  });
  lines.on("close", () => {
    void queue.then(() => port.close());
  });
}

const args = process.argv.slice(2);
if (args.length > 0) {
  setTimeout(() => process.exit(3), MAX_LIFE_MS).unref();
  if (args[0] === "--board") await runBoard((args[1] ?? "").split(","));
  else runPort(args[0], args[1] === undefined ? undefined : Number(args[1]));
}
// Without arguments (the test runner loads every file under test/), there is nothing to do.
