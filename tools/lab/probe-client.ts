// The probe: a client that sends a small UDP datagram to a target every interval on each of a few
// flows (one socket each, so each is its own 5-tuple and may land on its own server), and notes
// every silence: a run of probes on one flow that got no answer, from the send time of the last
// answered probe before it to that of the first answered after it. That is the gap a client sees
// in a failover, without TCP's retransmission timer in the way (a lost probe is never resent).
//
//   node build/tools/lab/probe-client.js --target 10.77.2.100 --port 7077 --flows 4 \
//       --interval-ms 1 --duration-s 60 --out result.json [--min-gap-ms 5]
//
// Runs until --duration-s has passed or it gets SIGTERM/SIGINT, waits 200 ms for late answers, then
// writes one JSON object (ProbeResult, probe.ts) to --out. Times are wall-clock ms with fractions,
// so that they can be set against the times of kills noted by another process on the same machine.
//
// A probe is 64 bytes: flow (u8), seq (u32), sent time (f64), zero padding. The echo sends it back.
import { createSocket, type Socket } from "node:dgram";
import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

const PROBE_BYTES = 64;
const DRAIN_MS = 200;

const { values } = parseArgs({
  options: {
    target: { type: "string" },
    port: { type: "string" },
    flows: { type: "string", default: "4" },
    "interval-ms": { type: "string", default: "1" },
    "duration-s": { type: "string", default: "3600" },
    "min-gap-ms": { type: "string", default: "5" },
    out: { type: "string" },
  },
  strict: true,
});
const target = values.target ?? "";
const port = Number(values.port);
const flows = Number(values.flows);
const intervalMs = Number(values["interval-ms"]);
const durationS = Number(values["duration-s"]);
const minGapMs = Number(values["min-gap-ms"]);
const out = values.out ?? "";
if (!target || !out || !(port > 0 && port < 65536) || !(flows >= 1 && flows <= 64) || !(intervalMs >= 1) || !(durationS > 0) || !(minGapMs >= 0)) {
  process.stderr.write("usage: probe-client --target ADDRESS --port N --out FILE [--flows N] [--interval-ms MS] [--duration-s S] [--min-gap-ms MS]\n");
  process.exit(2);
}

const now = (): number => performance.timeOrigin + performance.now();

interface Flow {
  socket: Socket;
  seq: number;
  answeredSeq: number;
  answeredSentAt: number;
  received: number;
  late: number;
}

interface Silence {
  flow: number;
  fromMs: number;
  toMs: number;
  ms: number;
  lost: number;
}

const startedAt = now();
const silences: Silence[] = [];
const state: Flow[] = [];
let maxRttMs = 0;

for (let i = 0; i < flows; i++) {
  const socket = createSocket(target.includes(":") ? "udp6" : "udp4");
  const f: Flow = { socket, seq: 0, answeredSeq: -1, answeredSentAt: startedAt, received: 0, late: 0 };
  socket.on("message", (msg) => {
    if (msg.length < 13 || msg[0] !== i) return;
    const seq = msg.readUInt32BE(1);
    const sentAt = msg.readDoubleBE(5);
    const rtt = now() - sentAt;
    if (rtt > maxRttMs) maxRttMs = rtt;
    f.received++;
    if (seq <= f.answeredSeq) {
      f.late++;
      return;
    }
    const lost = seq - f.answeredSeq - 1;
    if (lost > 0 && sentAt - f.answeredSentAt >= minGapMs) {
      silences.push({ flow: i, fromMs: f.answeredSentAt, toMs: sentAt, ms: sentAt - f.answeredSentAt, lost });
    }
    f.answeredSeq = seq;
    f.answeredSentAt = sentAt;
  });
  socket.on("error", () => {
    // an ICMP error for one probe (port unreachable while a server restarts): that probe is lost, no more
  });
  state.push(f);
}

const timer = setInterval(() => {
  for (let i = 0; i < state.length; i++) {
    const f = state[i]!;
    // a buffer per datagram: send() reads it later, after this loop has moved on
    const probe = Buffer.alloc(PROBE_BYTES);
    probe[0] = i;
    probe.writeUInt32BE(f.seq++, 1);
    probe.writeDoubleBE(now(), 5);
    f.socket.send(probe, port, target);
  }
}, intervalMs);

let finishing = false;
function finish(): void {
  if (finishing) return;
  finishing = true;
  clearInterval(timer);
  const stoppedAt = now();
  setTimeout(() => {
    const open = state
      .map((f, i) => ({ flow: i, fromMs: f.answeredSentAt, ms: stoppedAt - f.answeredSentAt, lost: f.seq - f.answeredSeq - 1 }))
      .filter((o) => o.ms >= minGapMs && o.lost > 0);
    const result = {
      target, port, flows, intervalMs, minGapMs,
      startedAt, stoppedAt,
      sent: state.reduce((a, f) => a + f.seq, 0),
      received: state.reduce((a, f) => a + f.received, 0),
      late: state.reduce((a, f) => a + f.late, 0),
      maxRttMs,
      silences,
      open,
    };
    writeFileSync(out, `${JSON.stringify(result)}\n`);
    for (const f of state) f.socket.close();
    process.exit(0);
  }, DRAIN_MS);
}

process.on("SIGTERM", finish);
process.on("SIGINT", finish);
setTimeout(finish, durationS * 1000);
