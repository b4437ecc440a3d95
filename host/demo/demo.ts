// The demo (`npm start`): one packet engine on the simulated board's demo traffic, its counters
// printed every second: the quickest way to see the data plane work. Time is virtual: tick n carries the traffic
// of [n * 10 ms, (n + 1) * 10 ms) and the engine's clock says n * 10; ticks follow the wall clock, so
// the counters move in real time, and each report covers exactly one second of traffic.
import { readFile, access } from "node:fs/promises";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { CLIENT_NET4, CLIENT_NET6, DemoTraffic, type Destination, type TrafficOptions } from "./traffic.js";
import type { Config } from "../config/schema.js";
import { formatError, validate } from "../config/validate.js";
import { Engine, fateIdentityHolds, runFrames, PUNT_REASON_NAMES, type CounterSnapshot } from "../engine/index.js";
import { formatMac } from "../net/frame.js";

const TICK_MS = 10;
const REPORT_TICKS = 100; // one report per second of traffic
const MAX_CATCH_UP_TICKS = 50; // after a stall, catch up at most half a second at a time
const DEMO_SEED = 20240601;
const DEMO_DRAIN_AT_S = 20; // the built-in demo drains its last backend then
const SIM_ROUTER_MAC = "02:00:5e:00:00:01"; // the clients' router when the config names none
const DEFAULT_RATE = 150; // client sessions per second: ~1,000 frames per second, light on any laptop
const MAX_RATE = 100_000;
const SCAN_PORTS = [22, 23, 445, 3389, 8443, 9999]; // a port scanner's favourites

const USAGE = `usage: npm start -- [options]     (or: node build/host/main.js [options])

Runs one Flowswitch packet engine on generated demo traffic and prints its
counters every second. Until the serial console exists, this is the appliance.

  --config FILE        configuration to run (default: board/sim/demo-config.json)
  --duration SECONDS   stop after this many seconds (default: until Ctrl-C)
  --json               one JSON object per report, instead of the table
  --drain NAME@SECONDS set backend NAME to draining at that time ("none": never;
                       the demo config drains its last backend at ${DEMO_DRAIN_AT_S} s)
  --rate N             new client sessions per second (default ${DEFAULT_RATE})
  --help               this text

Exit status: 0 when stopped (Ctrl-C, SIGTERM or --duration), 2 for a bad
option or an invalid configuration.`;

// ---------------------------------------------------------------------------------------------
// Options and configuration

/** An operator's mistake: printed without a stack, exit status 2. */
class UsageError extends Error {}

interface Options {
  configPath: string;
  defaultConfig: boolean;
  durationMs: number;
  json: boolean;
  /** A backend to drain, and when; null: none (undefined: the demo's default). */
  drain?: { backend: string; atMs: number } | null;
  rate: number;
}

export async function packageRoot(): Promise<string> {
  // build/host/main.js when built, host/main.ts when run from source: look upward for package.json
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      await access(join(dir, "package.json"));
      return dir;
    } catch {
      const up = dirname(dir);
      if (up === dir) throw new Error("cannot find the package root (package.json) above " + fileURLToPath(import.meta.url));
      dir = up;
    }
  }
}

function parseOptions(argv: string[], root: string): Options | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: "string" },
        duration: { type: "string" },
        json: { type: "boolean", default: false },
        drain: { type: "string" },
        rate: { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  const number = (name: string, text: string | undefined, def: number, max: number): number => {
    if (text === undefined) return def;
    const n = Number(text);
    if (!(n > 0 && n <= max)) throw new UsageError(`--${name} ${text}: expected a number greater than 0, at most ${max}`);
    return n;
  };
  const defaultConfig = values.config === undefined;
  const opts: Options = {
    configPath: defaultConfig ? join(root, "board", "sim", "demo-config.json") : resolve(values.config!),
    defaultConfig,
    durationMs: Math.round(number("duration", values.duration, Infinity, 1e9) * 1000),
    json: values.json ?? false,
    rate: number("rate", values.rate, DEFAULT_RATE, MAX_RATE),
  };
  if (values.drain === "none") opts.drain = null;
  else if (values.drain !== undefined) {
    const m = /^([^@]+)@([0-9.]+)$/.exec(values.drain);
    if (!m || !Number.isFinite(Number(m[2]))) throw new UsageError(`--drain ${values.drain}: expected NAME@SECONDS, such as srv4@20, or none`);
    opts.drain = { backend: m[1], atMs: Math.round(Number(m[2]) * 1000) };
  }
  return opts;
}

/** The validated config, or the reasons it is not one (each line names the path at fault). */
async function loadConfig(path: string): Promise<{ config: Config } | { errors: string[] }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    return { errors: [`cannot read it: ${(e as Error).message}`] };
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (e) {
    return { errors: [`not JSON: ${(e as Error).message}`] };
  }
  const v = validate(input);
  return v.ok ? { config: v.config } : { errors: v.errors.map(formatError) };
}

// ---------------------------------------------------------------------------------------------
// From the config to the simulated world: who the clients reach, who the servers are

export interface World {
  clientPort: number;
  routerMac: string;
  traffic: TrafficOptions;
}

export function buildWorld(config: Config, rate: number): World {
  const serverPorts = new Set(config.backends.map((b) => b.via));
  const free = config.ports.filter((p) => !serverPorts.has(p.index));
  const client = free.find((p) => p.gatewayMac) ?? free[0] ?? config.ports[0];
  const routerMac = client.gatewayMac ? formatMac(client.gatewayMac) : SIM_ROUTER_MAC;
  const destinations: Destination[] = config.services.map((s) => ({
    address: s.vip.text,
    protocol: s.protocol,
    port: s.port || 80, // an every-port service: clients pick 80
    weight: s.vip.family === 6 ? 1 : 4, // a little IPv6
  }));
  const v4 = config.services.find((s) => s.vip.family === 4) ?? config.services[0];
  let closedPort: TrafficOptions["closedPort"];
  if (v4) {
    const taken = (port: number): boolean =>
      config.services.some((s) => s.vip.text === v4.vip.text && s.protocol === "tcp" && (s.port === port || s.port === 0));
    const port = SCAN_PORTS.find((p) => !taken(p));
    if (port !== undefined) closedPort = { address: v4.vip.text, port };
  }
  return {
    clientPort: client.index,
    routerMac,
    traffic: {
      seed: DEMO_SEED,
      tickMs: TICK_MS,
      sessionsPerSecond: rate,
      client: { port: client.index, routerMac, applianceMac: formatMac(client.mac), routerIPv4: routerAddress(client.ipv4?.bytes) },
      destinations,
      servers: config.backends.map((b) => ({
        port: b.via, address: b.address.text, mac: b.mac ? formatMac(b.mac) : "00:00:00:00:00:00", gatewayMac: formatMac(config.ports[b.via].mac),
      })),
      closedPort,
      guePorts: [...new Set(config.services.filter((s) => s.mode === "tunnel" && s.tunnel.encap === "gue").map((s) => s.tunnel.guePort))],
    },
  };
}

/** The router's address: the first host of the client port's /24 (cosmetic: ARP's sender). */
function routerAddress(portIPv4: Uint8Array | undefined): string | undefined {
  if (!portIPv4) return undefined;
  const last = portIPv4[3] === 1 ? 254 : 1;
  return `${portIPv4[0]}.${portIPv4[1]}.${portIPv4[2]}.${last}`;
}

// ---------------------------------------------------------------------------------------------
// Banner

function banner(opts: Options, config: Config, world: World, version: string): string {
  const shown = relative(process.cwd(), opts.configPath);
  const lines: string[] = [];
  lines.push(`Flowswitch ${version}: data-plane demo on the simulated board`);
  lines.push("One packet engine (build/dataplane.wasm) forwards generated client traffic");
  lines.push("by the configuration below. (The serial console is not written yet.)");
  lines.push("");
  lines.push(`config    ${shown.startsWith("..") ? opts.configPath : shown}  (hostname ${config.hostname})`);
  config.ports.forEach((p, i) => {
    const addrs = [p.ipv4?.text, p.ipv6?.text].filter(Boolean).join("  ");
    lines.push(`${i === 0 ? "ports" : ""}`.padEnd(10) + `${p.name.padEnd(7)} ${formatMac(p.mac)}  ${addrs}`);
  });
  config.services.forEach((s, i) => {
    const vip = s.vip.family === 6 ? `[${s.vip.text}]` : s.vip.text;
    let mode: string = s.mode;
    if (s.mode === "nat") mode = s.targetPort ? `nat->${s.targetPort}` : "nat";
    if (s.mode === "tunnel") mode = `tunnel ${s.tunnel.encap}`;
    const members = s.backends.map((m) => (m.weight === 1 ? m.name : `${m.name}*${m.weight}`)).join(" ");
    lines.push(`${i === 0 ? "services" : ""}`.padEnd(10) + `${s.name.padEnd(7)} ${`${vip}:${s.protocol}/${s.port || "*"}`.padEnd(23)} ${mode.padEnd(11)} ${members}`);
  });
  config.backends.forEach((b, i) => {
    const extra = [b.state === "active" ? "" : b.state, b.natPort ? `nat port ${b.natPort}` : ""].filter(Boolean).join(", ");
    lines.push(`${i === 0 ? "backends" : ""}`.padEnd(10) + `${b.name.padEnd(7)} ${b.address.text.padEnd(16)} ${b.mac ? formatMac(b.mac) : "(MAC by ARP)     "} on ${config.ports[b.via].name}${extra ? ` (${extra})` : ""}`);
  });
  const clientPort = config.ports[world.clientPort].name;
  lines.push(`traffic   on ${clientPort}: ~${opts.rate} sessions/s from ${CLIENT_NET4} and ${CLIENT_NET6}`);
  lines.push(`          via router ${world.routerMac}; servers answer the NAT flows`);
  lines.push("          noise: ARP/ND for the VIPs and pings (punted to the host), a port");
  lines.push("          scan and frames cut short (dropped)");
  if (opts.drain) lines.push(`scenario  at ${opts.drain.atMs / 1000} s ${opts.drain.backend} drains: no new flows, its open flows finish`);
  lines.push("");
  const until = Number.isFinite(opts.durationMs) ? `for ${opts.durationMs / 1000} s (Ctrl-C stops sooner)` : "until Ctrl-C";
  lines.push(`A report every second ${until}; rates are per second.`);
  lines.push("");
  return lines.join("\n");
}

// ---------------------------------------------------------------------------------------------
// Reports

interface Rate {
  packets: number;
  newFlows: number;
}

/** One report: what `--json` prints, one per line, and what the table is drawn from. */
interface Report {
  /** Seconds of traffic since the start. */
  t: number;
  /** Milliseconds of traffic this report's rates are taken over. */
  intervalMs: number;
  final: boolean;
  fateIdentity: boolean;
  rates: {
    rx: number;
    tx: number;
    punt: number;
    drop: number;
    ports: Record<string, { rx: number; tx: number }>;
    services: Record<string, Rate>;
    backends: Record<string, Rate>;
    drops: Record<string, number>;
    punts: Record<string, number>;
  };
  /** Frames punted to the host so far, by reason (the host counts them as it drains the ring). */
  punts: Record<string, number>;
  /** Frames the engine could not take (no free buffer); 0 unless the host falls behind. */
  notTaken: number;
  backendStates: Record<string, string>;
  counters: CounterSnapshot;
}

function perSecond(now: number, before: number, ms: number): number {
  return ms > 0 ? Math.round(((now - before) * 1000) / ms) : 0;
}

function makeReport(
  t: number, ms: number, final: boolean, c: CounterSnapshot, prev: CounterSnapshot,
  punts: Record<string, number>, prevPunts: Record<string, number>, notTaken: number, config: Config,
): Report {
  const rate = (a: number, b: number | undefined): number => perSecond(a, b ?? 0, ms);
  const traffic = (now: Record<string, { packets: number; newFlows: number }>, before: Record<string, { packets: number; newFlows: number }>): Record<string, Rate> =>
    Object.fromEntries(Object.entries(now).map(([k, v]) => [k, { packets: rate(v.packets, before[k]?.packets), newFlows: rate(v.newFlows, before[k]?.newFlows) }]));
  return {
    t: Math.round(t * 100) / 100,
    intervalMs: ms,
    final,
    fateIdentity: fateIdentityHolds(c),
    rates: {
      rx: rate(c.rx, prev.rx),
      tx: rate(c.tx, prev.tx),
      punt: rate(c.punt, prev.punt),
      drop: rate(c.drop, prev.drop),
      ports: Object.fromEntries(Object.entries(c.ports).map(([k, v]) => [k, { rx: rate(v.rxPackets, prev.ports[k]?.rxPackets), tx: rate(v.txPackets, prev.ports[k]?.txPackets) }])),
      services: traffic(c.services, prev.services),
      backends: traffic(c.backends, prev.backends),
      drops: Object.fromEntries(Object.entries(c.drops).map(([k, v]) => [k, rate(v, prev.drops[k])])),
      punts: Object.fromEntries(Object.entries(punts).map(([k, v]) => [k, rate(v, prevPunts[k])])),
    },
    punts: { ...punts },
    notTaken,
    backendStates: Object.fromEntries(config.backends.map((b) => [b.name, b.state])),
    counters: c,
  };
}

const n = (x: number): string => x.toLocaleString("en-US");
const fit = (s: string, w: number): string => (s.length > w ? s.slice(0, w - 1) + "~" : s.padEnd(w));

/** "name 12/s  other 3/s" of the largest, as many as fit in width. */
function topList(rates: Record<string, number>, totals: Record<string, number>, width: number): string {
  const items = Object.keys(totals)
    .sort((a, b) => (rates[b] ?? 0) - (rates[a] ?? 0) || totals[b] - totals[a])
    .map((k) => `${k} ${n(rates[k] ?? 0)}/s`);
  let out = "";
  for (const it of items) {
    const next = out ? `${out}  ${it}` : it;
    if (next.length > width) return out ? `${out}  ...` : fit(it, width);
    out = next;
  }
  return out || "none";
}

/** The report as a table that fits 80 columns: totals, then ports | services | backends. */
function formatTable(r: Report, config: Config): string {
  const c = r.counters;
  const R = r.rates;
  const col = (x: number | string, w: number): string => (typeof x === "number" ? n(x) : x).padStart(w);
  const out: string[] = [];
  out.push(`--- ${r.t} s${r.final ? ", final" : ""} `.padEnd(79, "-"));
  const flowsNow = c.flows.ipv4 + c.flows.ipv6;
  const newFlows = Object.values(R.services).reduce((a, v) => a + v.newFlows, 0);
  const side = (label: string, v: number): string => `  | ${label.padEnd(16)}${col(v, 8)}`;
  const row = (label: string, a: number | string, b: number | string, p: number | string, d: number | string): string =>
    `${label.padEnd(6)}${col(a, 11)}${col(b, 11)}${col(p, 11)}${col(d, 11)}`;
  out.push(row("", "rx", "tx", "punt", "drop") + side("flows in table", flowsNow));
  out.push(row("per s", R.rx, R.tx, R.punt, R.drop) + side("  of them IPv6", c.flows.ipv6));
  out.push(row("total", c.rx, c.tx, c.punt, c.drop) + side("new flows per s", newFlows));
  out.push("");
  const left = [`${fit("port", 8)}${col("rx/s", 7)}${col("tx/s", 7)}`];
  for (const p of config.ports) left.push(`${fit(p.name, 8)}${col(R.ports[p.name]?.rx ?? 0, 7)}${col(R.ports[p.name]?.tx ?? 0, 7)}`);
  const mid = [`${fit("service", 8)}${fit("mode", 7)}${col("pkts/s", 7)}${col("new/s", 6)}`];
  for (const s of config.services) {
    const v = R.services[s.name] ?? { packets: 0, newFlows: 0 };
    mid.push(`${fit(s.name, 8)}${fit(s.mode, 7)}${col(v.packets, 7)}${col(v.newFlows, 6)}`);
  }
  const right = [`${fit("backend", 8)}${col("pkts/s", 7)}${col("new/s", 6)}`];
  for (const b of config.backends) {
    const v = R.backends[b.name] ?? { packets: 0, newFlows: 0 };
    const state = r.backendStates[b.name] ?? "active";
    // a backend that is not active takes no new flows: say why instead of "0"
    const news = state === "active" ? v.newFlows : state === "draining" ? "drain" : state;
    right.push(`${fit(b.name, 8)}${col(v.packets, 7)}${col(news, 6)}`);
  }
  const rows = Math.max(left.length, mid.length, right.length);
  for (let i = 0; i < rows; i++) {
    out.push(`${(left[i] ?? "").padEnd(22)} | ${(mid[i] ?? "").padEnd(28)} | ${right[i] ?? ""}`.trimEnd());
  }
  out.push("");
  out.push(`drops   ${topList(R.drops, c.drops, 71)}`);
  out.push(`punts   ${topList(R.punts, r.punts, 71)}`);
  if (r.notTaken) out.push(`host    ${n(r.notTaken)} frames not taken: no free engine buffer (the host fell behind)`);
  return out.join("\n");
}

function fateWarning(c: CounterSnapshot): string {
  const reasons = Object.values(c.drops).reduce((a, b) => a + b, 0);
  return [
    "",
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    "!!! FATE IDENTITY BROKEN: a frame was lost or counted twice by the data plane",
    `!!! rx ${c.rx} != tx ${c.tx} + punt ${c.punt} + drop ${c.drop} = ${c.tx + c.punt + c.drop}` +
      (c.drop === reasons ? "" : `, or drop ${c.drop} != sum of drop reasons ${reasons}`),
    "!!! This is a bug in assembly/: please report it with this output.",
    "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    "",
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------
// The run

/** The demo on the simulated board: returns the exit status. */
export async function runDemo(argv: string[]): Promise<number> {
  const root = await packageRoot();
  let opts: Options | "help";
  try {
    opts = parseOptions(argv, root);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`flowswitch: ${e.message}\n\n${USAGE}\n`);
    return 2;
  }
  if (opts === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const loaded = await loadConfig(opts.configPath);
  if ("errors" in loaded) {
    process.stderr.write(`flowswitch: ${opts.configPath} is not a valid configuration:\n`);
    for (const e of loaded.errors) process.stderr.write(`  ${e}\n`);
    return 2;
  }
  let config = loaded.config;
  if (opts.drain === undefined && opts.defaultConfig && config.backends.length > 1) {
    opts.drain = { backend: config.backends[config.backends.length - 1].name, atMs: DEMO_DRAIN_AT_S * 1000 };
  }
  if (opts.drain && !config.backends.some((b) => b.name === opts.drain!.backend)) {
    process.stderr.write(`flowswitch: --drain ${opts.drain.backend}: no such backend (${config.backends.map((b) => b.name).join(", ") || "none configured"})\n`);
    return 2;
  }
  const version = (JSON.parse(await readFile(join(root, "package.json"), "utf8")) as { version: string }).version;
  const world = buildWorld(config, opts.rate);
  const engine = await Engine.create(config);
  const traffic = new DemoTraffic(world.traffic);

  const info = opts.json ? process.stderr : process.stdout; // keep stdout to JSON lines with --json
  info.write(banner(opts, config, world, version) + "\n");

  const punts: Record<string, number> = {};
  let notTaken = 0;
  let tick = 0;
  let last = { tick: 0, counters: engine.counters(), punts: {} as Record<string, number> };
  let fateEverBroken = false;
  let drained = false;

  const report = (final: boolean): void => {
    const c = engine.counters();
    const r = makeReport((tick * TICK_MS) / 1000, (tick - last.tick) * TICK_MS, final, c, last.counters, punts, last.punts, notTaken, config);
    last = { tick, counters: c, punts: { ...punts } };
    if (!r.fateIdentity) {
      fateEverBroken = true;
      process.stderr.write(fateWarning(c));
    }
    process.stdout.write(opts.json ? JSON.stringify(r) + "\n" : formatTable(r, config) + "\n");
  };

  /** One tick: its frames through the engine, what came out handed back to the world. */
  const step = (): void => {
    engine.clock = tick * TICK_MS;
    // before the tick's traffic, so that the report just printed covers the time before
    if (opts.drain && !drained && tick * TICK_MS >= opts.drain.atMs) {
      drained = true;
      const name = opts.drain.backend;
      config = { ...config, backends: config.backends.map((b) => (b.name === name ? { ...b, state: "draining" } : b)) };
      engine.apply(config);
      if (!opts.json) process.stdout.write(`*** ${(tick * TICK_MS) / 1000} s: ${name} drains now: no new flows for it; its open flows finish\n`);
    }
    const frames = traffic.next();
    const out = runFrames(engine, frames);
    for (const f of out.tx) traffic.observe(f);
    for (const f of out.punted) {
      const name = PUNT_REASON_NAMES[f.reason] ?? `reason_${f.reason}`;
      punts[name] = (punts[name] ?? 0) + 1;
    }
    notTaken += out.rejected.length;
    tick++;
  };

  return new Promise<number>((done) => {
    const started = performance.now();
    let stopping = false;
    const stop = (why: "duration" | "signal"): void => {
      if (stopping) return;
      stopping = true;
      clearInterval(timer);
      if (why === "signal" || tick !== last.tick) report(true);
      if (!opts.json) {
        const held = fateEverBroken ? "WAS BROKEN (see above)" : "held";
        process.stdout.write(`\nStopped after ${(tick * TICK_MS) / 1000} s of traffic; fate identity (rx = tx + punt + drop) ${held}.\n`);
      }
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
      done(0);
    };
    const onSignal = (): void => stop("signal");
    const pump = (): void => {
      const due = Math.min(Math.floor((performance.now() - started) / TICK_MS), tick + MAX_CATCH_UP_TICKS);
      while (tick < due && !stopping) {
        step();
        const end = tick * TICK_MS >= opts.durationMs;
        if (tick % REPORT_TICKS === 0) report(end);
        if (end) return stop("duration");
      }
    };
    const timer = setInterval(pump, TICK_MS);
    process.on("SIGINT", onSignal);
    process.on("SIGTERM", onSignal);
  });
}

