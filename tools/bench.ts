// The data-plane benchmark: one engine in this process, fed in-memory batches of 60-byte
// Ethernet/IPv4/TCP frames, timed only inside engine.run(). Making frames (rxPush) and emptying
// the rings (drain*) happen between the timed calls, so the figure is the engine's alone.
//
// Figures only: nothing here asserts on speed. Next to every figure it reports what the engine
// dropped and how many flow inserts failed, so a fast number made of dropped packets is seen as such.
//
// What it leaves out, on purpose: worker threads and rings shared across threads (one engine, one
// core), page faults on a fresh flow table (pre-faulted, as on a box that has run a while), and
// ageing (the engine's clock stands still, so no flow expires mid-run).
//
// Usage: node build/tools/bench.js [--quick] [--json]   (through npm: `npm run -s bench -- --json`,
// since npm prints its own banner lines on stdout without -s)
import { cpus } from "node:os";
import { hrtime } from "node:process";
import { parseArgs } from "node:util";

import { FLOW4_ENTRY, FLOW_WAYS, MAX_BATCH } from "../assembly/layout.js";
import { Engine, flowBytesPerFlow, type CounterSnapshot, type RingEntry } from "../host/engine/index.js";
import { validateOrThrow } from "../host/config/validate.js";
import type { Config, ForwardingMode } from "../host/config/schema.js";
import { ACK, SYN, formatIPv4, parseIPv4, tcp4Frame } from "../host/net/frame.js";
import { measureWake, type WakeLatency } from "./bench-wake.js";

// ---------------------------------------------------------------------------------------------
// What is measured

type ScenarioName = "established-dsr" | "new-flow" | "nat" | "ipip";

interface Sizes {
  /** Flow counts of the established-dsr runs, smallest first. */
  established: number[];
  /** Timed packets per repeat (established, nat, ipip). */
  timedPackets: number;
  /** Untimed packets of the timed traffic before the first repeat (wasm tier-up, caches). */
  warmupPackets: number;
  /** new-flow: SYNs per repeat, each repeat on a fresh engine whose table is sized newFlowTable. */
  newFlowSyns: number;
  newFlowTable: number;
  natFlows: number;
  ipipFlows: number;
}

const FULL: Sizes = {
  established: [1_000, 100_000, 1_000_000, 4_000_000],
  timedPackets: 3_000_000,
  warmupPackets: 500_000,
  newFlowSyns: 2_000_000,
  newFlowTable: 4_000_000,
  natFlows: 1_000_000,
  ipipFlows: 1_000_000,
};

const QUICK: Sizes = {
  established: [1_000, 10_000],
  timedPackets: 100_000,
  warmupPackets: 20_000,
  newFlowSyns: 50_000,
  newFlowTable: 100_000,
  natFlows: 10_000,
  ipipFlows: 10_000,
};

const REPEATS = 3;
const STATISTIC = `median of ${REPEATS} repeats`;
const MIN_TABLE_FLOWS = 1024; // the smallest flow table configured, whatever the scenario's count
const FLOW_TABLE_SEED = 0x5eed1234; // fixed, so runs place flows alike and can be compared
const TRAFFIC_SEED = 0x2545f491; // the PRNG that picks which flow each timed packet belongs to

// ---------------------------------------------------------------------------------------------
// The box: a client port, a server port with 100 backends, one TCP service on a VIP

const CLIENT_PORT = 0;
const SERVER_PORT = 1;
const BACKENDS = 100;
const VIP = "192.0.2.10";
const SERVICE_PORT = 80;
const NAT_TARGET_PORT = 8080;
const CLIENT_PORT_MAC = "02:00:00:00:00:01";
const SERVER_PORT_MAC = "02:00:00:00:00:02";
const ROUTER_MAC = "02:00:00:00:0a:01"; // the clients' side next hop
const SERVER_GATEWAY_MAC = "02:00:00:00:0a:02";
const TUNNEL_SOURCE = "172.16.255.254";
/** Flow i comes from 10.0.0.0 + i: 10.(i>>16).(i>>8).(i&255), so up to 2^24 distinct clients. */
const CLIENT_NET = 0x0a000000;
const MAX_FLOWS = 1 << 24;

const backendAddress = (i: number): string => `172.16.${(i + 1) >> 8}.${(i + 1) & 255}`;
const backendMac = (i: number): string => `02:00:00:01:${hex((i + 1) >> 8)}:${hex((i + 1) & 255)}`;
const hex = (b: number): string => b.toString(16).padStart(2, "0");
const u32 = (dotted: string): number => {
  const b = parseIPv4(dotted);
  return ((b[0] << 24) | (b[1] << 16) | (b[2] << 8) | b[3]) >>> 0;
};
const VIP_U32 = u32(VIP);
const clientAddr = (i: number): number => CLIENT_NET + i;
const clientPort = (i: number): number => 1024 + (i % 60_000);

function boxConfig(mode: ForwardingMode, flows: number): Config {
  return validateOrThrow({
    ports: [
      { name: "client", mac: CLIENT_PORT_MAC, ipv4: "198.51.100.1", gatewayMac: ROUTER_MAC },
      { name: "server", mac: SERVER_PORT_MAC, ipv4: TUNNEL_SOURCE, gatewayMac: SERVER_GATEWAY_MAC },
    ],
    dataplane: {
      // flows.ipv4 counts table entries: a NAT connection takes two (forward and return)
      flows: { ipv4: Math.max(MIN_TABLE_FLOWS, mode === "nat" ? 2 * flows : flows), ipv6: MIN_TABLE_FLOWS },
      buffers: { count: 4096 },
      limits: { services: 4, backends: 128 },
    },
    backends: Array.from({ length: BACKENDS }, (_, i) => ({
      name: `be${i}`, address: backendAddress(i), mac: backendMac(i), via: "server",
    })),
    services: [{
      name: "web", vip: VIP, protocol: "tcp", port: SERVICE_PORT, mode,
      ...(mode === "nat" ? { targetPort: NAT_TARGET_PORT } : {}),
      ...(mode === "tunnel" ? { tunnel: { encap: "ipip" as const, source4: TUNNEL_SOURCE } } : {}),
      backends: Array.from({ length: BACKENDS }, (_, i) => `be${i}`),
    }],
  });
}

async function newEngine(mode: ForwardingMode, flows: number): Promise<Engine> {
  const engine = await Engine.create(boxConfig(mode, flows), { seed: FLOW_TABLE_SEED });
  engine.clock = 1000; // fixed: nothing ages out while the benchmark runs
  // Fault the flow table's pages in now, as a box that has run a while has them: otherwise the
  // first timed inserts pay the kernel's page faults (tens of ns per flow on a fresh table).
  const p = engine.plan;
  engine.bytes.fill(0, p.flow4, p.flow4 + p.flow4Buckets * FLOW_WAYS * FLOW4_ENTRY);
  return engine;
}

// ---------------------------------------------------------------------------------------------
// Frames

const ETH = 14;
const IP_SRC = ETH + 12;
const IP_DST = ETH + 16;
const IP_CSUM = ETH + 10;
const TCP = ETH + 20;
const TCP_FLAGS = TCP + 13;
const FRAME_BYTES = 60;
/** The 40-byte IP packet behind a new outer header (the input's Ethernet padding is not IP). */
const IP_IN_IP_BYTES = ETH + 20 + 40;

/**
 * One 60-byte frame, built once by tcp4Frame and rewritten in place per packet: addresses, ports,
 * TCP flags and the IPv4 header checksum (the engine checks it; it does not check TCP's).
 */
class FrameTemplate {
  readonly bytes = new Uint8Array(FRAME_BYTES);
  private readonly fixedSum: number; // the IPv4 header words other than addresses and checksum

  constructor(readonly port: number, srcMac: string, dstMac: string) {
    this.bytes.set(tcp4Frame({ srcMac, dstMac, src: "10.0.0.1", dst: VIP, sport: 1024, dport: SERVICE_PORT, flags: ACK }));
    let s = 0;
    for (let o = ETH; o < IP_CSUM; o += 2) s += (this.bytes[o] << 8) | this.bytes[o + 1];
    this.fixedSum = s;
  }

  set(src: number, dst: number, sport: number, dport: number, flags: number): this {
    const b = this.bytes;
    put32(b, IP_SRC, src);
    put32(b, IP_DST, dst);
    let s = this.fixedSum + (src >>> 16) + (src & 0xffff) + (dst >>> 16) + (dst & 0xffff);
    s = (s & 0xffff) + (s >>> 16);
    s = (s & 0xffff) + (s >>> 16);
    const c = ~s & 0xffff;
    b[IP_CSUM] = c >>> 8;
    b[IP_CSUM + 1] = c & 0xff;
    b[TCP] = sport >>> 8;
    b[TCP + 1] = sport & 0xff;
    b[TCP + 2] = dport >>> 8;
    b[TCP + 3] = dport & 0xff;
    b[TCP_FLAGS] = flags;
    return this;
  }
}

function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

const get32 = (b: Uint8Array, off: number): number => ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
const get16 = (b: Uint8Array, off: number): number => (b[off] << 8) | b[off + 1];

/** xorshift32: fast, fixed-seeded, good enough to pick flows uniformly. */
function xorshift32(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x >>> 0;
  };
}

// ---------------------------------------------------------------------------------------------
// Driving an engine

/** Makes frame k (fills a template and returns it). */
type Maker = (k: number) => FrameTemplate;

interface Timing {
  ns: number;
  packets: number;
}

/**
 * Sends `count` frames in batches of MAX_BATCH: push a batch, run it (timed), drain every ring.
 * onTx sees each transmitted frame (setup checks only: the callback costs time, not timed).
 */
function drive(engine: Engine, count: number, make: Maker, onTx?: (e: RingEntry) => void): Timing {
  let ns = 0n;
  let packets = 0;
  for (let k = 0; k < count; ) {
    const n = Math.min(MAX_BATCH, count - k);
    for (let j = 0; j < n; j++, k++) {
      const t = make(k);
      if (!engine.rxPush(t.port, t.bytes)) throw new Error("the engine has no free buffer: the rings were not drained");
    }
    for (let left = n; left > 0; ) {
      const t0 = hrtime.bigint();
      const done = engine.run(MAX_BATCH);
      ns += hrtime.bigint() - t0;
      if (done === 0) throw new Error(`the engine took none of ${left} waiting frames`);
      packets += done;
      left -= done;
    }
    engine.drainTx(onTx);
    engine.drainPunt();
    engine.drainDropped();
  }
  return { ns: Number(ns), packets };
}

interface Delta {
  tx: number;
  drop: number;
  punt: number;
  insertFailed: number;
  /** Packets forwarded by Maglev alone because their flow could not be inserted. */
  stateless: number;
  drops: Record<string, number>;
}

function delta(a: CounterSnapshot, b: CounterSnapshot): Delta {
  const drops: Record<string, number> = {};
  for (const [k, v] of Object.entries(b.drops)) {
    const d = v - (a.drops[k] ?? 0);
    if (d) drops[k] = d;
  }
  return {
    tx: b.tx - a.tx, drop: b.drop - a.drop, punt: b.punt - a.punt, insertFailed: b.flows.insertFailed - a.flows.insertFailed,
    stateless: b.flows.stateless - a.flows.stateless, drops,
  };
}

function addDrops(into: Record<string, number>, more: Record<string, number>): void {
  for (const [k, v] of Object.entries(more)) into[k] = (into[k] ?? 0) + v;
}

// ---------------------------------------------------------------------------------------------
// Scenarios

interface Result {
  name: ScenarioName;
  flows: number;
  /** The reported figure: STATISTIC of the repeats. */
  mpps: number;
  bestMpps: number;
  nsPerPacket: number;
  repeatMpps: number[];
  timedPackets: number; // per repeat
  bytesPerFlow: number;
  /** Flow entries in the table / entries the table has, after the scenario. */
  tableLoad: number;
  setupPackets: number;
  setupDrops: number;
  timedDrops: number;
  timedPunts: number;
  timedStateless: number;
  /** Over the engine's whole life: setup, warm-up and timed packets. */
  insertFailed: number;
  drops: Record<string, number>;
  notes: string[];
}

interface Measured {
  repeatMpps: number[];
  timedPackets: number;
  timed: Delta;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

/** Warm-up, then REPEATS timed runs of `sizes.timedPackets` frames from `make`. */
function measure(engine: Engine, sizes: Sizes, make: Maker, label: string): Measured {
  progress(`${label}: warm-up`);
  drive(engine, sizes.warmupPackets, make);
  const before = engine.counters();
  const repeatMpps: number[] = [];
  for (let r = 0; r < REPEATS; r++) {
    const t = drive(engine, sizes.timedPackets, make);
    repeatMpps.push((t.packets / t.ns) * 1000);
    progress(`${label}: repeat ${r + 1}/${REPEATS}: ${repeatMpps[r].toFixed(2)} Mpps`);
  }
  return { repeatMpps, timedPackets: sizes.timedPackets, timed: delta(before, engine.counters()) };
}

/** What an engine counted over its whole life (setup, warm-up and timed packets). */
interface Lifetime {
  insertFailed: number;
  drops: Record<string, number>;
}

const lifetime = (engine: Engine): Lifetime => {
  const c = engine.counters();
  return { insertFailed: c.flows.insertFailed, drops: c.drops };
};

function result(
  name: ScenarioName, flows: number, engine: Engine, m: Measured, setup: Delta & { packets: number }, notes: string[],
  life: Lifetime = lifetime(engine),
): Result {
  const c = engine.counters();
  const mpps = median(m.repeatMpps);
  return {
    name, flows, mpps, bestMpps: Math.max(...m.repeatMpps), nsPerPacket: 1000 / mpps, repeatMpps: m.repeatMpps,
    timedPackets: m.timedPackets,
    bytesPerFlow: flowBytesPerFlow(engine.plan, engine.config.sizes).ipv4,
    tableLoad: c.flows.ipv4 / (engine.plan.flow4Buckets * FLOW_WAYS),
    setupPackets: setup.packets, setupDrops: setup.drop, timedDrops: m.timed.drop, timedPunts: m.timed.punt,
    timedStateless: m.timed.stateless, insertFailed: life.insertFailed, drops: life.drops, notes,
  };
}

/** One SYN per flow 0..flows-1, untimed; onTx checks (or records) what came out. */
function openFlows(engine: Engine, client: FrameTemplate, flows: number, onTx?: (e: RingEntry) => void): Delta & { packets: number } {
  const before = engine.counters();
  drive(engine, flows, (i) => client.set(clientAddr(i), VIP_U32, clientPort(i), SERVICE_PORT, SYN), onTx);
  return { ...delta(before, engine.counters()), packets: flows };
}

const clientTemplate = (): FrameTemplate => new FrameTemplate(CLIENT_PORT, ROUTER_MAC, CLIENT_PORT_MAC);

/** Random established flows out of `flows`, one fresh uniform choice per packet. */
function randomAcks(client: FrameTemplate, flows: number): Maker {
  const rng = xorshift32(TRAFFIC_SEED);
  return () => {
    const i = rng() % flows;
    return client.set(clientAddr(i), VIP_U32, clientPort(i), SERVICE_PORT, ACK);
  };
}

/** Counts transmitted setup frames that do not look like the mode's output. */
class OutputCheck {
  bad = 0;
  first = "";
  constructor(private readonly what: string, private readonly ok: (f: Uint8Array, port: number) => string) {}
  readonly onTx = (e: RingEntry): void => {
    const why = this.ok(e.frame, e.port);
    if (why) {
      if (!this.bad) this.first = why;
      this.bad++;
    }
  };
  note(notes: string[]): void {
    if (this.bad) notes.push(`WARNING: ${this.bad} ${this.what} frames were not as expected (first: ${this.first})`);
  }
}

const backendMacs = new Set(Array.from({ length: BACKENDS }, (_, i) => backendMac(i)));
const backendU32 = Array.from({ length: BACKENDS }, (_, i) => u32(backendAddress(i)));
const backendIndexOf = new Map(backendU32.map((a, i) => [a, i]));
const macAt = (f: Uint8Array, off: number): string => Array.from(f.subarray(off, off + 6), hex).join(":");

async function establishedDsr(sizes: Sizes, flows: number): Promise<Result> {
  const label = `established-dsr ${fmtInt(flows)} flows`;
  progress(`${label}: opening flows`);
  const engine = await newEngine("dsr", flows);
  const client = clientTemplate();
  const check = new OutputCheck("DSR", (f, port) =>
    port !== SERVER_PORT ? `left by port ${port}` :
    !backendMacs.has(macAt(f, 0)) ? `destination MAC ${macAt(f, 0)} is no backend's` :
    get32(f, IP_DST) !== VIP_U32 ? `destination ${formatIPv4(f, IP_DST)} is not the VIP` : "");
  const setup = openFlows(engine, client, flows, check.onTx);
  const notes: string[] = [];
  check.note(notes);
  const m = measure(engine, sizes, randomAcks(client, flows), label);
  return result("established-dsr", flows, engine, m, setup, notes);
}

async function newFlow(sizes: Sizes): Promise<Result> {
  const syns = sizes.newFlowSyns;
  const label = `new-flow ${fmtInt(syns)} SYNs`;
  const repeatMpps: number[] = [];
  const timed: Delta = { tx: 0, drop: 0, punt: 0, insertFailed: 0, stateless: 0, drops: {} };
  let last: Engine | undefined;
  for (let r = 0; r < REPEATS; r++) {
    // a fresh engine per repeat: every SYN is a 5-tuple it has never seen, into an equally empty table
    last = undefined; // let the previous engine's memory go before the next is made
    progress(`${label}: repeat ${r + 1}/${REPEATS}: new engine, table for ${fmtInt(sizes.newFlowTable)} flows`);
    const engine = await newEngine("dsr", sizes.newFlowTable);
    const client = clientTemplate();
    const before = engine.counters();
    const t = drive(engine, syns, (i) => client.set(clientAddr(i), VIP_U32, clientPort(i), SERVICE_PORT, SYN));
    repeatMpps.push((t.packets / t.ns) * 1000);
    progress(`${label}: repeat ${r + 1}/${REPEATS}: ${repeatMpps[r].toFixed(2)} Mpps`);
    const d = delta(before, engine.counters());
    timed.tx += d.tx;
    timed.drop += d.drop;
    timed.punt += d.punt;
    timed.insertFailed += d.insertFailed;
    timed.stateless += d.stateless;
    addDrops(timed.drops, d.drops);
    last = engine;
  }
  const none = { tx: 0, drop: 0, punt: 0, insertFailed: 0, stateless: 0, drops: {}, packets: 0 };
  const notes = [`a fresh engine per repeat, table configured for ${fmtInt(sizes.newFlowTable)} flows`];
  return result("new-flow", syns, last!, { repeatMpps, timedPackets: syns, timed }, none, notes, timed);
}

async function nat(sizes: Sizes): Promise<Result> {
  const flows = sizes.natFlows;
  const label = `nat ${fmtInt(flows)} flows`;
  progress(`${label}: opening flows`);
  const engine = await newEngine("nat", flows);
  const client = clientTemplate();
  const server = new FrameTemplate(SERVER_PORT, SERVER_GATEWAY_MAC, SERVER_PORT_MAC);
  const NONE = 0xff;
  const backendOf = new Uint8Array(flows).fill(NONE);
  const notes: string[] = [];

  // setup: each flow's backend, read from the NATed SYN (its source still names the client)
  const check = new OutputCheck("NAT forward", (f, port) => {
    const i = get32(f, IP_SRC) - CLIENT_NET;
    const b = backendIndexOf.get(get32(f, IP_DST));
    if (port !== SERVER_PORT) return `left by port ${port}`;
    if (i < 0 || i >= flows || get16(f, TCP) !== clientPort(i)) return `source ${formatIPv4(f, IP_SRC)}:${get16(f, TCP)} is no client's`;
    if (b === undefined) return `destination ${formatIPv4(f, IP_DST)} is no backend's`;
    if (get16(f, TCP + 2) !== NAT_TARGET_PORT) return `destination port ${get16(f, TCP + 2)}, not ${NAT_TARGET_PORT}`;
    backendOf[i] = b;
    return "";
  });
  const setup = openFlows(engine, client, flows, check.onTx);
  check.note(notes);
  const open: number[] = [];
  for (let i = 0; i < flows; i++) if (backendOf[i] !== NONE) open.push(i);
  const established = Uint32Array.from(open);
  if (established.length < flows) {
    notes.push(`only ${fmtInt(established.length)} of ${fmtInt(flows)} flows reached a backend in setup: replies come from those, client packets from all`);
  }
  const reply = (i: number): FrameTemplate =>
    server.set(backendU32[backendOf[i]], clientAddr(i), NAT_TARGET_PORT, clientPort(i), ACK);

  // setup: replies must come back translated (source = VIP:80, out of the client port)
  const sample = Math.min(MAX_BATCH, established.length);
  if (sample === 0) {
    notes.push("WARNING: no flow was NATed in setup: replies cannot be checked or timed");
  } else {
    const step = Math.max(1, Math.floor(established.length / sample));
    let back = 0;
    const replyCheck = new OutputCheck("NAT reply", (f, port) => {
      back++;
      const i = get32(f, IP_DST) - CLIENT_NET;
      if (port !== CLIENT_PORT) return `left by port ${port}`;
      if (i < 0 || i >= flows || get16(f, TCP + 2) !== clientPort(i)) return `destination ${formatIPv4(f, IP_DST)}:${get16(f, TCP + 2)} is no client's`;
      if (get32(f, IP_SRC) !== VIP_U32 || get16(f, TCP) !== SERVICE_PORT) {
        return `source ${formatIPv4(f, IP_SRC)}:${get16(f, TCP)}, not the VIP ${VIP}:${SERVICE_PORT}`;
      }
      return "";
    });
    drive(engine, sample, (k) => reply(established[k * step]), replyCheck.onTx);
    replyCheck.note(notes);
    if (back < sample) notes.push(`WARNING: ${sample - back} of ${sample} replies sent in setup did not come back out`);
  }

  // timed: client packets and server replies alternate
  const rng = xorshift32(TRAFFIC_SEED);
  const mix: Maker = (k) => {
    if (k & 1 && established.length) return reply(established[rng() % established.length]);
    const i = rng() % flows;
    return client.set(clientAddr(i), VIP_U32, clientPort(i), SERVICE_PORT, ACK);
  };
  const m = measure(engine, sizes, mix, label);
  notes.push("client->VIP and backend->client packets alternate, each of a random flow");
  return result("nat", flows, engine, m, setup, notes);
}

async function ipip(sizes: Sizes): Promise<Result> {
  const flows = sizes.ipipFlows;
  const label = `ipip ${fmtInt(flows)} flows`;
  progress(`${label}: opening flows`);
  const engine = await newEngine("tunnel", flows);
  const client = clientTemplate();
  const tunnelSrc = u32(TUNNEL_SOURCE);
  const check = new OutputCheck("IP-in-IP", (f, port) =>
    port !== SERVER_PORT ? `left by port ${port}` :
    get16(f, 12) !== 0x0800 || f[ETH + 9] !== 4 ? `not IPv4 protocol 4 (ethertype ${get16(f, 12).toString(16)}, protocol ${f[ETH + 9]})` :
    get32(f, IP_SRC) !== tunnelSrc ? `outer source ${formatIPv4(f, IP_SRC)}` :
    !backendIndexOf.has(get32(f, IP_DST)) ? `outer destination ${formatIPv4(f, IP_DST)} is no backend's` :
    f.length !== IP_IN_IP_BYTES ? `${f.length} bytes, not ${IP_IN_IP_BYTES}` :
    get32(f, ETH + 20 + 16) !== VIP_U32 ? `inner destination ${formatIPv4(f, ETH + 20 + 16)} is not the VIP` : "");
  const setup = openFlows(engine, client, flows, check.onTx);
  const notes: string[] = [];
  check.note(notes);
  const m = measure(engine, sizes, randomAcks(client, flows), label);
  return result("ipip", flows, engine, m, setup, notes);
}

// ---------------------------------------------------------------------------------------------
// Output

const fmtInt = (n: number): string => n.toLocaleString("en-US");
const pct = (x: number): string => `${(x * 100).toFixed(x && x < 0.001 ? 4 : 1)}%`;

function progress(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

interface Report {
  cpu: string;
  cores: number;
  node: string;
  quick: boolean;
  statistic: string;
  /** Flow-table bytes per configured IPv4 flow, for the largest established-dsr table. */
  bytesPerFlow: number;
  seconds: number;
  scenarios: {
    name: ScenarioName; flows: number; mpps: number; nsPerPacket: number; bestMpps: number;
    timedPackets: number; bytesPerFlow: number; tableLoad: number; timedDrops: number; timedStateless: number; setupDrops: number;
    insertFailed: number;
  }[];
  warnings: string[];
  /** A threaded engine asleep, then one frame: how long until it is on the tx ring. */
  wake: WakeLatency;
}

function table(rows: string[][], rightAligned: boolean[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (rightAligned[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join("  ").trimEnd()).join("\n");
}

function text(report: Report, results: Result[]): string {
  const out: string[] = [];
  out.push(`Flowswitch data-plane benchmark${report.quick ? " (QUICK: small counts, figures not representative)" : ""}`);
  out.push(`CPU: ${report.cpu}, ${report.cores} cores, Node ${report.node}`);
  out.push(`Time inside engine.run() only; batches of ${MAX_BATCH} frames of ${FRAME_BYTES} bytes; figure = ${STATISTIC}.`);
  out.push("");
  const header = [
    "scenario", "flows", "Mpps", "ns/pkt", "best Mpps", "B/flow", "table load", "timed pkts", "timed drops", "timed stateless",
    "setup drops", "insert fails",
  ];
  const rows = [header, ...results.map((r) => [
    r.name + (report.quick ? " (quick)" : ""), fmtInt(r.flows), r.mpps.toFixed(2), r.nsPerPacket.toFixed(1), r.bestMpps.toFixed(2),
    r.bytesPerFlow.toFixed(1), pct(r.tableLoad), `${REPEATS} x ${fmtInt(r.timedPackets)}`,
    `${fmtInt(r.timedDrops)} (${pct(r.timedDrops / (REPEATS * r.timedPackets))})`,
    `${fmtInt(r.timedStateless)} (${pct(r.timedStateless / (REPEATS * r.timedPackets))})`,
    r.setupPackets ? `${fmtInt(r.setupDrops)} (${pct(r.setupDrops / r.setupPackets)})` : "-",
    fmtInt(r.insertFailed),
  ])];
  out.push(table(rows, header.map((_, i) => i > 0)));
  out.push("");
  const dsr = results.filter((r) => r.name === "established-dsr");
  if (dsr.length >= 2) {
    const small = dsr[0];
    const large = dsr[dsr.length - 1];
    out.push(`established-dsr at ${fmtInt(large.flows)} flows vs ${fmtInt(small.flows)} flows: ${(large.mpps / small.mpps).toFixed(2)}x ` +
      `(${large.mpps.toFixed(2)} / ${small.mpps.toFixed(2)} Mpps)`);
  }
  out.push(`bytes per flow (table memory / configured IPv4 flows, largest established-dsr table): ${report.bytesPerFlow.toFixed(1)}`);
  for (const r of results) {
    const reasons = Object.entries(r.drops).map(([k, v]) => `${k} ${fmtInt(v)}`).join(", ");
    const lines = [...(reasons ? [`drops by reason (whole run): ${reasons}`] : []), ...(r.timedPunts ? [`${fmtInt(r.timedPunts)} timed packets punted`] : []), ...r.notes];
    if (lines.length) out.push(`${r.name} ${fmtInt(r.flows)}: ${lines.join("; ")}`);
  }
  if (report.warnings.length) out.push("", ...report.warnings.map((w) => `WARNING: ${w}`));
  out.push("", `run took ${report.seconds.toFixed(1)} s; peak RSS ${Math.round(process.resourceUsage().maxRSS / 1024)} MiB`);
  return out.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Main

const USAGE = `usage: node build/tools/bench.js [--quick] [--json]
  --quick  small flow and packet counts: checks that the benchmark runs, in a few seconds
  --json   print only one JSON object on stdout (progress goes to stderr)`;

function options(): { quick: boolean; json: boolean } | undefined {
  try {
    const { values } = parseArgs({
      options: { quick: { type: "boolean" }, json: { type: "boolean" }, help: { type: "boolean", short: "h" } },
      allowPositionals: false,
      strict: true,
    });
    if (values.help) {
      process.stdout.write(`${USAGE}\n`);
      return undefined;
    }
    return { quick: values.quick ?? false, json: values.json ?? false };
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n${USAGE}\n`);
    process.exitCode = 2;
    return undefined;
  }
}

async function main(): Promise<void> {
  const opts = options();
  if (!opts) return;
  const sizes = opts.quick ? QUICK : FULL;
  const biggest = Math.max(...sizes.established, sizes.newFlowTable, sizes.natFlows, sizes.ipipFlows);
  if (biggest > MAX_FLOWS) throw new Error(`at most ${MAX_FLOWS} flows: client addresses come from 10.0.0.0/8`);
  const started = performance.now();
  const results: Result[] = [];
  for (const flows of sizes.established) results.push(await establishedDsr(sizes, flows));
  results.push(await newFlow(sizes));
  results.push(await nat(sizes));
  results.push(await ipip(sizes));
  const wake = await measureWake(opts.quick ? 50 : 500);

  const warnings: string[] = [];
  for (const r of results) {
    const where = `${r.name} ${fmtInt(r.flows)}`;
    if (r.timedDrops || r.setupDrops) {
      warnings.push(`${where}: ${fmtInt(r.setupDrops)} setup and ${fmtInt(r.timedDrops)} timed packets dropped: part of its figure is drops, not forwarding`);
    }
    if (r.insertFailed) {
      const stateless = r.timedStateless
        ? `; ${fmtInt(r.timedStateless)} timed packets were forwarded without a flow entry (by Maglev alone, each retrying the insert)`
        : "";
      warnings.push(`${where}: ${fmtInt(r.insertFailed)} flow inserts failed, table load ${pct(r.tableLoad)} after the run${stateless}`);
    }
    for (const n of r.notes) if (n.startsWith("WARNING: ")) warnings.push(`${r.name} ${fmtInt(r.flows)}: ${n.slice(9)}`);
  }
  const largest = results.filter((r) => r.name === "established-dsr").at(-1)!;
  const cpu = cpus();
  const report: Report = {
    cpu: cpu[0]?.model ?? "unknown",
    cores: cpu.length,
    node: process.version,
    quick: opts.quick,
    statistic: STATISTIC,
    bytesPerFlow: round(largest.bytesPerFlow, 2),
    seconds: round((performance.now() - started) / 1000, 1),
    scenarios: results.map((r) => ({
      name: r.name, flows: r.flows, mpps: round(r.mpps, 3), nsPerPacket: round(r.nsPerPacket, 1), bestMpps: round(r.bestMpps, 3),
      timedPackets: r.timedPackets * REPEATS, bytesPerFlow: round(r.bytesPerFlow, 2), tableLoad: round(r.tableLoad, 4),
      timedDrops: r.timedDrops, timedStateless: r.timedStateless, setupDrops: r.setupDrops, insertFailed: r.insertFailed,
    })),
    warnings,
    wake,
  };
  if (opts.json) {
    for (const w of warnings) process.stderr.write(`bench: WARNING: ${w}\n`);
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(text(report, results));
    process.stdout.write(`threaded engine wake-up, idle -> frame on its tx ring, ${wake.samples} samples: median ${wake.medianUs} us, p99 ${wake.p99Us} us, max ${wake.maxUs} us\n`);
  }
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

main().catch((e: Error) => {
  process.stderr.write(`bench: ${e.stack ?? e.message}\n`);
  process.exitCode = 1;
});
