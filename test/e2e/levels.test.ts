// End to end: multi-level service routing (issue 10, docs/levels.md) in the levels lab (`up
// --levels`, tools/lab/levels.ts): a system appliance (fsl-lv-sys) picks a site for each new flow
// to 10.88.9.100 and tunnels it (IP-in-IP) to that site's appliance, which takes it out of the
// tunnel and sends it to a server by DSR; the server answers the client directly. Site A (sa1, with
// sa2 its ECMP twin and recovery peer; servers a1, a2) is near (distance 1), site B (sb; b1, b2) far
// (20); cost = load% + distance, tolerance 5, updates every 200 ms, a site silent after 3 missed
// ones. Real clients (curl, wrk, a small keep-alive client run with node in the client namespace),
// real servers (nginx), tshark on the router's ports. Needs root, or unprivileged user namespaces;
// fails with a message saying what is missing when neither is there.
//
// What it proves, as the issue says it:
// 1. flows reach the servers through both levels and the replies go direct: N connections to the
//    system VIP all answered by a1 or a2 (site A at rest); the captures show every connection's
//    packets entering sys-core as client -> VIP, then on sa1-up inside IP-in-IP from 10.88.2.2 to
//    10.88.2.31, then on sa1-down towards the server; the replies (VIP -> client) on the servers'
//    ports and on the client's, and on no appliance port (sys, sa1, sa2, sb, up or down).
// 2. site A's load raised by 30 slow downloads, opened at once, above site B's distance plus the
//    tolerance: the system's choice for `web` becomes site B (status.json levels.choices.web), new
//    connections are answered by b1/b2, while every download (still running then) completes with
//    every byte from its server on site A. Released, site A takes the new connections again.
// 3. sa1 (site A's updates and tunnel endpoint) SIGKILLed: within deadIntervals x interval (+ slack)
//    the system says site A is silent and new connections are answered by b1/b2; the time from the
//    kill to the first one is reported. sa1 restarted, site A takes new connections again.
// 4. site A's own VIP (10.88.9.200) behind the router's ECMP route to sa1 and sa2: long downloads,
//    wrk at a modest rate and keep-alive connections spread over both; sa2 taken out of the route
//    mid-traffic (its flows reach sa1, which asks sa2: flow recovery), then sa2 SIGKILLed and the
//    route to sa1 alone (nobody answers: the shared Maglev table picks the same server), then sa2
//    restarted and both in the route again (sa2 asks sa1): every download completes in full, wrk
//    sees no socket error and no non-2xx, every keep-alive connection keeps its server; the
//    recovery counters of each phase are reported.
//
// One levels lab for all of it, brought up and torn down here; the cases run in this order and each
// starts from the steady lab (four appliances running, site A chosen, ECMP over sa1 and sa2).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createInterface } from "node:readline";
import { writeFileSync } from "node:fs";
import { DEFAULT_TIMEOUTS, LEVELS_DEFAULTS } from "../../host/config/schema.js";
import type { LevelsView } from "../../host/levels/manager.js";
import type { Choice } from "../../host/levels/site-table.js";
import {
  CommandError, HTTP_PORT, LEVELS_CLIENT, LEVELS_CLIENT_NS, LEVELS_DISTANCE, LEVELS_LAB, LEVELS_NAMESPACES, LEVELS_NODES, LEVELS_SERVICES,
  LEVELS_VIPS, acquireLab, downLevels, ecmpNexthops, killLevelsNode, levelsDataAddress, levelsNodePid, levelsPaths, levelsStatus, levelsSummary, namespacePids,
  nsRun, parseWrk, privilege, readCapture, readEcmpNexthops, readLevelsStatus, releaseLab, sleep, startLevelsCapture, startLevelsNode, statePath, tail, upLevels,
  waitForFreshLevelsStatus, waitForLevelsNode, isAlive,
  type Capture, type LevelsNodeName, type LevelsNodeStatus, type LevelsServerName, type WrkResult,
} from "../../tools/lab/index.js";
import { holderPid } from "../../tools/lab/exec.js";
import { wrkArgs } from "../../tools/lab/wrk.js";

const CLIENT = LEVELS_CLIENT.ipv4;
const SYS_VIP = LEVELS_VIPS.system;
const SITE_VIP = LEVELS_VIPS.siteA;
const SITE_A_SERVERS: readonly LevelsServerName[] = ["a1", "a2"];
const SITE_B_SERVERS: readonly LevelsServerName[] = ["b1", "b2"];
const ALL_SERVERS: readonly LevelsServerName[] = [...SITE_A_SERVERS, ...SITE_B_SERVERS];
const WEB = LEVELS_SERVICES.web;
/** The lab's system keeps the default cost (docs/levels.md): load% x 1 + distance x 1, within 5 of the lowest. */
const TOLERANCE = LEVELS_DEFAULTS.cost.tolerance;
/** A site is silent after this long without an update. */
const DEAD_MS = LEVELS_LAB.deadIntervals * LEVELS_LAB.intervalMs;
/** On top of DEAD_MS: the system looks every interval, the engines need the new members, a connection attempt in between. */
const FAILOVER_SLACK_MS = 1000;
/**
 * How late a site's load figure may be: its flow counts are at most 5 s old (host/appliance.ts
 * activeFlowCounts), an update takes an interval, the status file a second.
 */
const LOAD_LAG_MS = 5000 + LEVELS_LAB.intervalMs + 1000;
/** A closed connection's entry counts as a flow for the closing timeout (the lab keeps the default, 10 s) after its FIN. */
const CLOSING_MS = DEFAULT_TIMEOUTS.tcpClosing * 1000;
/**
 * New connections a case makes to the system VIP at a time and still expects on one site: each
 * counts as a flow of its server until its entry expires (CLOSING_MS after its FIN), and with two
 * servers of capacity 20 five flows are 12.5%: site A's cost 13.5 keeps site B (20) more than the
 * tolerance away. Ten would make 26, and site B would share (or take) the new flows.
 */
const BURST = 5;
const NO_SOCKET_ERRORS = { connect: 0, read: 0, write: 0, timeout: 0 };
/** Every appliance's data port as fsl-lv-rtr's bridge port: where a reply to the client must never pass. */
const APPLIANCE_PORTS = Object.values(LEVELS_NODES).flatMap((n) => n.ports.map((p) => p.routerPort));

type Status = LevelsNodeStatus & { levels?: LevelsView };
const statusOf = (n: LevelsNodeName): Status | undefined => readLevelsStatus(n) as Status | undefined;
const webChoice = (s: Status | undefined): Choice | undefined => s?.levels?.choices?.[WEB];
const eligible = (s: Status | undefined): string => webChoice(s)?.eligible.join(",") ?? "(no levels.choices.web)";
const choiceText = (s: Status | undefined): string => {
  const c = webChoice(s);
  if (!c) return "(no levels.choices.web in sys's status)";
  return `eligible [${c.eligible.join(", ")}]${c.failOpen ? " (fail open)" : ""}; ${c.sites.map((x) => `${x.name} ${x.state}${x.cost !== undefined ? ` cost ${x.cost.toFixed(1)} (load ${((x.load ?? 0) * 100).toFixed(0)}%)` : ""}`).join(", ")}`;
};
const recoveryOf = (n: LevelsNodeName): LevelsView["recovery"] | undefined => statusOf(n)?.levels?.recovery;
const recoveryDelta = (a: LevelsView["recovery"] | undefined, b: LevelsView["recovery"] | undefined): Record<string, number> => {
  const keys = ["queries", "answered", "none", "timeouts", "held", "dropped", "releasedInstalled", "releasedLocal", "lateAnswers", "installFailed", "overflow"] as const;
  return Object.fromEntries(keys.map((k) => [k, (b?.[k] ?? Number.NaN) - (a?.[k] ?? 0)]));
};
const newFlows = (n: LevelsNodeName, service: string): number => readLevelsStatus(n)?.counters?.services?.[service]?.newFlows ?? 0;

// ---------------------------------------------------------------------------------------------
// Clients in fsl-lv-cli

/** The words that run a command in a lab namespace (as root: ip netns exec; else inside the lab's user namespace). */
async function inNamespace(ns: string, argv: readonly string[]): Promise<string[]> {
  if ((await privilege()).kind === "root") return ["ip", "netns", "exec", ns, ...argv];
  const holder = holderPid();
  if (!holder) throw new Error("the levels lab is not up (no user-namespace holder)");
  return ["nsenter", `--target=${holder}`, "--user", "--mount", "--net", "--preserve-credentials", "--", "ip", "netns", "exec", ns, ...argv];
}

interface RequestRun {
  /** Responses per server (X-Server). */
  counts: Record<LevelsServerName, number>;
  ok: number;
  failures: string[];
}

/** n requests to http://vip/, one after the other, each on a new connection (one curl reading n URLs). */
async function requests(vip: string, n: number, tag: string): Promise<RequestRun> {
  const cfg = statePath(`levels-curl-${tag}.cfg`);
  const lines = ['header = "Connection: close"', 'write-out = "%{http_code} %header{x-server}\\n"', "silent", "connect-timeout = 2", "max-time = 4"];
  for (let i = 0; i < n; i++) lines.push(`url = "http://${vip}/"`, 'output = "/dev/null"');
  writeFileSync(cfg, `${lines.join("\n")}\n`);
  let stdout: string;
  try {
    ({ stdout } = await nsRun(LEVELS_CLIENT_NS, ["curl", "-K", cfg], { timeoutMs: n * 5000 + 5000 }));
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    stdout = e.stdout;
  }
  const counts = Object.fromEntries(ALL_SERVERS.map((s) => [s, 0])) as Record<LevelsServerName, number>;
  const failures: string[] = [];
  const results = stdout.split("\n").filter((l) => l.trim());
  for (const line of results) {
    const [code, who] = line.trim().split(/\s+/);
    if (code === "200" && (ALL_SERVERS as readonly string[]).includes(who)) counts[who as LevelsServerName]++;
    else failures.push(code === "000" ? "000 (no response)" : `${code} from ${who ?? "(no X-Server)"}`);
  }
  for (let i = results.length; i < n; i++) failures.push("not attempted (curl stopped early)");
  return { counts, ok: n - failures.length, failures };
}

const answeredBy = (r: RequestRun, servers: readonly LevelsServerName[]): number => servers.reduce((a, s) => a + r.counts[s], 0);
const summarize = (failures: readonly string[]): string => {
  const by = new Map<string, number>();
  for (const f of failures) by.set(f, (by.get(f) ?? 0) + 1);
  return [...by].map(([f, k]) => `${k} x ${f}`).join(", ") || "none";
};

/** One new connection with a short connect timeout: "200 b1", or "000" when nothing answered. */
async function oneRequest(vip: string, connectS: number): Promise<string> {
  try {
    const { stdout } = await nsRun(LEVELS_CLIENT_NS, ["curl", "-s", "-H", "Connection: close", "--connect-timeout", String(connectS), "--max-time", String(connectS + 1),
      "-o", "/dev/null", "-w", "%{http_code} %header{x-server}", `http://${vip}/`], { timeoutMs: (connectS + 6) * 1000 });
    return stdout.trim();
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    return e.stdout.trim().split(/\s+/)[0] || "000";
  }
}

interface Transfer {
  code: number;
  bytes: number;
  server: string;
  /** How long it took, ms. */
  ms: number;
}

/**
 * n rate-limited downloads of the first `bytes` of /big, in parallel from one curl that opens every
 * connection at once (a burst of a few milliseconds: the site's load figure, refreshed every few
 * seconds, cannot change the system's choice in the middle of it). Each transfer's result as curl
 * reports it; fewer results than n when curl stopped early.
 */
async function parallelDownloads(vip: string, n: number, bytes: number, rate: string, maxS: number, tag: string): Promise<Transfer[]> {
  const cfg = statePath(`levels-curl-${tag}.cfg`);
  const lines = ["parallel", "parallel-immediate", `parallel-max = ${n}`, "silent", `range = "0-${bytes - 1}"`, `limit-rate = ${rate}`, `max-time = ${maxS}`,
    'write-out = "%{http_code} %{size_download} %{time_total} %header{x-server}\\n"'];
  for (let i = 0; i < n; i++) lines.push(`url = "http://${vip}/big"`, 'output = "/dev/null"');
  writeFileSync(cfg, `${lines.join("\n")}\n`);
  let stdout: string;
  try {
    ({ stdout } = await nsRun(LEVELS_CLIENT_NS, ["curl", "-K", cfg], { timeoutMs: (maxS + 10) * 1000 }));
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    stdout = e.stdout;
  }
  return stdout.split("\n").filter((l) => l.trim()).map((l) => {
    const [code, got, total, server] = l.trim().split(/\s+/);
    return { code: Number(code), bytes: Number(got), ms: Number(total) * 1000, server: server ?? "(no X-Server)" };
  });
}

/** wrk in fsl-lv-cli at a modest rate: each connection waits delayMs between its requests (a Lua delay()). */
async function modestWrk(url: string, connections: number, durationS: number, delayMs: number, tag: string): Promise<WrkResult> {
  const script = statePath(`levels-wrk-${tag}.lua`);
  writeFileSync(script, `function delay() return ${delayMs} end\n`);
  const args = wrkArgs(url, { threads: 1, connections, durationS });
  args.splice(args.length - 1, 0, "-s", script);
  const { stdout } = await nsRun(LEVELS_CLIENT_NS, args, { timeoutMs: (durationS + 20) * 1000 });
  return parseWrk(url, stdout);
}

/**
 * The keep-alive client, run by node in fsl-lv-cli (its source is this function's): n connections
 * to host:80 opened at once, each asking GET / again every pauseMs (a new request once the last is
 * answered), each noting every X-Server it got and what went wrong. Lines on stdin: "report" prints
 * the connections' records as one JSON line, "close" ends them (FIN), prints the last record and
 * exits. It exits by itself after lifeS seconds, or when its stdin closes.
 */
function keepAliveMain(host: string, port: number, n: number, pauseMs: number, lifeS: number): void {
  const net = require("node:net") as typeof import("node:net");
  const readline = require("node:readline") as typeof import("node:readline");
  interface Conn { sock: import("node:net").Socket; buf: Buffer; localPort: number; requests: number; servers: Record<string, number>; errors: string[]; ended?: string; waiter?: () => void; stopped: boolean }
  const conns: Conn[] = [];
  const request = `GET / HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: fsl-levels-keepalive\r\n\r\n`;
  const parse = (c: Conn): string | undefined => {
    const end = c.buf.indexOf("\r\n\r\n");
    if (end < 0) return undefined;
    const head = c.buf.subarray(0, end).toString("latin1");
    const len = Number(/^content-length:\s*(\d+)/im.exec(head)?.[1] ?? "0");
    if (c.buf.length < end + 4 + len) return undefined;
    c.buf = c.buf.subarray(end + 4 + len);
    const status = /^HTTP\/1\.[01] (\d+)/.exec(head)?.[1] ?? "(no status)";
    const server = /^x-server:\s*(\S+)/im.exec(head)?.[1] ?? "(no X-Server)";
    return status === "200" ? server : `HTTP ${status} from ${server}`;
  };
  const ask = (c: Conn): Promise<void> => new Promise((resolve) => {
    if (c.ended) return resolve();
    const timer = setTimeout(() => finish("no answer within 5 s"), 5000);
    function finish(err?: string, server?: string): void {
      clearTimeout(timer);
      c.waiter = undefined;
      if (err) c.errors.push(err);
      if (server !== undefined) {
        c.requests++;
        if (server.startsWith("HTTP ")) c.errors.push(server);
        else c.servers[server] = (c.servers[server] ?? 0) + 1;
      }
      resolve();
    }
    c.waiter = (): void => {
      const r = parse(c);
      if (r !== undefined) finish(undefined, r);
      else if (c.ended) finish(c.ended);
    };
    c.sock.write(request);
  });
  const loop = async (c: Conn): Promise<void> => {
    while (!c.stopped && !c.ended) {
      await ask(c);
      await new Promise((r) => setTimeout(r, pauseMs));
    }
    // ended by the other side (or a reset) rather than by "close": also between two requests
    if (!c.stopped) c.errors.push(`connection ended: ${c.ended}`);
  };
  const record = (what: string): string => JSON.stringify({
    what, conns: conns.map((c) => ({ port: c.localPort, requests: c.requests, servers: c.servers, errors: c.errors.slice(0, 5), errorCount: c.errors.length })),
  });
  for (let i = 0; i < n; i++) {
    const c: Conn = { sock: net.connect({ host, port }), buf: Buffer.alloc(0), localPort: 0, requests: 0, servers: {}, errors: [], stopped: false };
    c.sock.setNoDelay(true);
    c.sock.on("connect", () => { c.localPort = c.sock.localPort ?? 0; });
    c.sock.on("data", (d: Buffer) => { c.buf = Buffer.concat([c.buf, d]); c.waiter?.(); });
    c.sock.on("error", (e: NodeJS.ErrnoException) => { c.ended ??= e.code ?? e.message; c.waiter?.(); });
    c.sock.on("close", () => { c.ended ??= "closed by the server"; c.waiter?.(); });
    conns.push(c);
  }
  const close = async (): Promise<void> => {
    for (const c of conns) c.stopped = true;
    for (const c of conns) c.sock.end();
    const deadline = Date.now() + 3000;
    while (conns.some((c) => !c.sock.closed) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    process.stdout.write(`${record("closed")}\n`);
    process.exit(0);
  };
  const first = conns.map((c) => ask(c));
  void Promise.all(first).then(() => {
    process.stdout.write(`${record("open")}\n`);
    for (const c of conns) void loop(c);
  });
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    if (line === "report") process.stdout.write(`${record("report")}\n`);
    else if (line === "close") void close();
  }).on("close", () => void close());
  setTimeout(() => void close(), lifeS * 1000).unref();
}

interface ConnRecord {
  port: number;
  requests: number;
  servers: Record<string, number>;
  errors: string[];
  errorCount: number;
}

/** The keep-alive client from the test's side. */
class KeepAlive {
  private lines: string[] = [];
  private waiters: (() => void)[] = [];
  private stderr = "";

  private constructor(private readonly child: ChildProcess, readonly what: string) {
    createInterface({ input: child.stdout! }).on("line", (l) => {
      this.lines.push(l);
      for (const w of this.waiters.splice(0)) w();
    });
    child.stderr!.on("data", (d: Buffer) => (this.stderr += d.toString()));
    child.on("exit", () => { for (const w of this.waiters.splice(0)) w(); });
  }

  /** Opens n connections to vip:80 and returns once each has had its first answer (or failed). */
  static async open(vip: string, n: number, pauseMs: number, lifeS: number): Promise<{ client: KeepAlive; first: ConnRecord[] }> {
    const source = `(${keepAliveMain.toString()})(${JSON.stringify(vip)}, ${HTTP_PORT}, ${n}, ${pauseMs}, ${lifeS})`;
    const argv = await inNamespace(LEVELS_CLIENT_NS, [process.execPath, "-e", source]);
    const child = spawn(argv[0], argv.slice(1), { stdio: ["pipe", "pipe", "pipe"] });
    const client = new KeepAlive(child, `${n} keep-alive connections to ${vip}`);
    return { client, first: await client.next("open", 10_000) };
  }

  report(): Promise<ConnRecord[]> {
    this.child.stdin!.write("report\n");
    return this.next("report", 5000);
  }

  async close(): Promise<ConnRecord[]> {
    if (this.child.exitCode !== null) return this.last("closed") ?? [];
    this.child.stdin!.write("close\n");
    return this.next("closed", 8000);
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill("SIGKILL");
  }

  private last(what: string): ConnRecord[] | undefined {
    for (let i = this.lines.length - 1; i >= 0; i--) {
      const m = JSON.parse(this.lines[i]) as { what: string; conns: ConnRecord[] };
      if (m.what === what) return m.conns;
    }
    return undefined;
  }

  private async next(what: string, timeoutMs: number): Promise<ConnRecord[]> {
    const from = this.lines.length;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.lines.length; i++) {
        const m = JSON.parse(this.lines[i]) as { what: string; conns: ConnRecord[] };
        if (m.what === what) return m.conns;
      }
      if (this.child.exitCode !== null) throw new Error(`${this.what}: the client exited (status ${this.child.exitCode}) before saying "${what}": ${this.stderr.trim().slice(0, 500)}`);
      if (Date.now() > deadline) throw new Error(`${this.what}: no "${what}" from the client within ${timeoutMs / 1000} s: ${this.stderr.trim().slice(0, 500)}`);
      await new Promise<void>((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, 100);
      });
    }
  }
}

/** Connections that changed server, saw an error, or are on a server not in `servers`; empty: all fine. */
function connFailures(conns: readonly ConnRecord[], servers: readonly LevelsServerName[]): string[] {
  const out: string[] = [];
  for (const c of conns) {
    const seen = Object.keys(c.servers);
    if (c.errorCount > 0) out.push(`port ${c.port}: ${c.errorCount} error(s): ${c.errors.join("; ")}`);
    if (seen.length !== 1) out.push(`port ${c.port}: answered by ${seen.join(" and ") || "nobody"} (${JSON.stringify(c.servers)})`);
    else if (!(servers as readonly string[]).includes(seen[0])) out.push(`port ${c.port}: answered by ${seen[0]}, not by ${servers.join("/")}`);
  }
  return out;
}

const serversOf = (conns: readonly ConnRecord[]): Record<string, number> => {
  const by: Record<string, number> = {};
  for (const c of conns) for (const s of Object.keys(c.servers)) by[s] = (by[s] ?? 0) + 1;
  return by;
};
const requestsOf = (conns: readonly ConnRecord[]): number => conns.reduce((a, c) => a + c.requests, 0);

// ---------------------------------------------------------------------------------------------
// The lab

/** When the node first logged a line matching re at or after `since` (its lines start with an ISO time), ms since the epoch. */
function loggedAt(node: LevelsNodeName, re: RegExp, since: number): number | undefined {
  for (const line of tail(levelsPaths(node).log(), 400).split("\n")) {
    const at = Date.parse(line.split(" ")[0]);
    if (!Number.isNaN(at) && at >= since && re.test(line)) return at;
  }
  return undefined;
}

/** Waits until sys's status says `want` about the choice for web. */
function waitForChoice(what: string, want: (c: Choice) => boolean, timeoutMs: number): Promise<LevelsNodeStatus> {
  return waitForLevelsNode("sys", `levels.choices.web: ${what}`, (s) => {
    const c = webChoice(s as Status);
    return c !== undefined && want(c);
  }, timeoutMs, 50);
}

const siteAOnly = (c: Choice): boolean => c.eligible.join(",") === "siteA" && !c.failOpen;

/** Every node running, site A (and only it) taking the system's new flows, ECMP over sa1 and sa2. */
async function steadyLab(): Promise<void> {
  for (const n of ["sys", "sa1", "sa2", "sb"] as const) if (levelsNodePid(n) === undefined) await startLevelsNode(n, "ready");
  if ((await readEcmpNexthops()).length !== 2) await ecmpNexthops(["sa1", "sa2"]);
  await waitForChoice("site A alone, both sites live", (c) => siteAOnly(c) && c.sites.every((s) => s.state === "ok" || s.state === "costlier"), CLOSING_MS + LOAD_LAG_MS + 3000);
}

/** Tshark fields read from the captures of case 1. */
const FIELDS = ["ip.src", "ip.dst", "ip.proto", "tcp.srcport", "tcp.dstport"] as const;

interface Pkt {
  /** Outer, then inner (IP-in-IP) addresses and protocols. */
  src: string[];
  dst: string[];
  proto: string[];
  sport: number;
  dport: number;
}

async function packets(file: string): Promise<Pkt[]> {
  return (await readCapture(file, FIELDS)).map((r) => ({
    src: (r[0] ?? "").split(","), dst: (r[1] ?? "").split(","), proto: (r[2] ?? "").split(","), sport: Number(r[3]), dport: Number(r[4]),
  }));
}

const plainToVip = (p: Pkt): boolean => p.proto.length === 1 && p.src[0] === CLIENT && p.dst[0] === SYS_VIP;
const tunnelled = (p: Pkt, outerDst: string): boolean =>
  p.proto[0] === "4" && p.src[0] === levelsDataAddress("sys") && p.dst[0] === outerDst && p.src[1] === CLIENT && p.dst[1] === SYS_VIP;
const reply = (p: Pkt): boolean => p.src.includes(SYS_VIP) && p.dst.includes(CLIENT);
const clientPorts = (list: readonly Pkt[]): Set<number> => new Set(list.map((p) => p.sport));

describe("e2e: multi-level service routing (issue 10): a system appliance tunnelling to sites, costs, a dead site, flow recovery behind ECMP", () => {
  let holding = false;
  let labError: Error | undefined;
  const captures: Capture[] = [];
  const clients: KeepAlive[] = [];

  const ready = (): void => {
    if (labError) throw new Error(`the levels lab did not come up: ${labError.message}`);
  };

  before(async () => {
    try {
      await privilege();
      await acquireLab();
      holding = true;
      await upLevels();
      await steadyLab();
    } catch (e) {
      labError = e as Error;
    }
  }, { timeout: 1_000_000 }); // the lab lock waits up to 15 min for the other suites

  after(async () => {
    for (const c of clients) c.kill();
    for (const c of captures) await c.stop().catch(() => {});
    if (!holding) return;
    const labPids = (await Promise.all(LEVELS_NAMESPACES.map(namespacePids))).flat();
    try {
      await downLevels();
    } finally {
      releaseLab();
    }
    const st = await levelsStatus();
    const leftNs = Object.entries(st.namespaces).filter(([, present]) => present).map(([ns]) => ns);
    assert.deepEqual({ namespaces: leftNs, processes: labPids.filter(isAlive) }, { namespaces: [], processes: [] }, "downLevels leaves no fsl-lv-* namespace and no process behind");
  }, { timeout: 60_000 });

  it("the levels lab comes up: four appliances, site A alone takes the system's new flows (cost 1 against site B's 20)", () => {
    ready();
    const s = statusOf("sys");
    assert.equal(eligible(s), "siteA", choiceText(s));
    assert.deepEqual(LEVELS_DISTANCE, { siteA: 1, siteB: 20 }, "the lab's distances this file's arithmetic assumes");
  });

  it("1. flows reach the servers through both levels (client -> sys, IP-in-IP 10.88.2.2 -> 10.88.2.31, sa1 -> a1/a2) and the replies go direct, past no appliance", { timeout: 60_000 }, async (t) => {
    ready();
    await steadyLab();
    const N = BURST;
    const ports = ["cli", "sys-core", "sa1-up", "sa1-down", "sa2-up", "sa2-down", "sb-up", "sb-down", "a1", "a2"];
    const caps = await Promise.all(ports.map((p) => startLevelsCapture(p, `host ${CLIENT} or ip proto 4`, `1-${p}`, 40)));
    captures.push(...caps);
    let r: RequestRun;
    try {
      r = await requests(SYS_VIP, N, "1");
      await sleep(300);
    } finally {
      await Promise.all(caps.map((c) => c.stop()));
    }
    const at = Object.fromEntries(await Promise.all(ports.map(async (p, i) => [p, await packets(caps[i].file)] as const))) as Record<string, Pkt[]>;
    const file = (p: string): string => caps[ports.indexOf(p)].file;
    t.diagnostic(`responses: ${JSON.stringify(r.counts)}; packets per router port: ${ports.map((p) => `${p} ${at[p].length}`).join(", ")}`);
    assert.equal(r.ok, N, `${N - r.ok} of ${N} connections to ${SYS_VIP} failed: ${summarize(r.failures)}`);
    assert.equal(answeredBy(r, SITE_A_SERVERS), N, `at rest site A (a1, a2) serves every new flow: ${JSON.stringify(r.counts)}`);

    const conns = clientPorts(at.cli.filter(plainToVip));
    assert.equal(conns.size, N, `connections (client ports) seen on the client's port (${file("cli")})`);
    // level 1: the system receives the client's packets as they are and sends them on in IP-in-IP to sa1
    const toSys = at["sys-core"].filter(plainToVip);
    const fromSys = at["sys-core"].filter((p) => tunnelled(p, levelsDataAddress("sa1")));
    assert.deepEqual(clientPorts(toSys), conns, `every connection's client -> VIP packets on sys-core (${file("sys-core")})`);
    assert.deepEqual(new Set(fromSys.map((p) => p.sport)), conns, `every connection tunnelled (IP-in-IP 10.88.2.2 -> 10.88.2.31) out of sys-core (${file("sys-core")})`);
    assert.ok(fromSys.length >= toSys.length, `sys tunnelled ${fromSys.length} packets for the ${toSys.length} it received (${file("sys-core")})`);
    // level 2: sa1 receives them in the tunnel, and only in the tunnel, and sends them to a server
    const intoSa1 = at["sa1-up"].filter((p) => tunnelled(p, levelsDataAddress("sa1")));
    assert.deepEqual(new Set(intoSa1.map((p) => p.sport)), conns, `every connection arriving at sa1-up inside the tunnel (${file("sa1-up")})`);
    assert.equal(at["sa1-up"].filter(plainToVip).length, 0, `client -> VIP packets outside the tunnel on sa1-up (${file("sa1-up")})`);
    assert.deepEqual(clientPorts(at["sa1-down"].filter(plainToVip)), conns, `every connection leaving sa1-down, out of the tunnel, to a server (${file("sa1-down")})`);
    assert.deepEqual(new Set([...at.a1, ...at.a2].filter(plainToVip).map((p) => p.sport)), conns, "every connection arriving at a1 or a2");
    // the replies: from the servers to the client through the router, never past an appliance
    const replies = (p: string): number => at[p].filter(reply).length;
    assert.deepEqual(new Set([...at.a1, ...at.a2].filter(reply).map((p) => p.dport)), conns, "replies (VIP -> client) of every connection leave a1 or a2");
    assert.ok(replies("cli") >= 3 * N, `only ${replies("cli")} replies reach the client's port for ${N} connections (${file("cli")})`);
    assert.equal(replies("cli"), replies("a1") + replies("a2"), `the replies reaching the client (${file("cli")}) are the ones the servers sent, no more, no fewer`);
    const past = ports.filter((p) => APPLIANCE_PORTS.includes(p)).map((p) => [p, replies(p)] as const).filter(([, k]) => k > 0);
    assert.deepEqual(past, [], "replies (from 10.88.9.100 to the client, in a tunnel or not) on an appliance's port");
    // and the other appliances are not on the way at all
    for (const p of ["sa2-up", "sa2-down", "sb-up", "sb-down"]) {
      assert.equal(at[p].filter((x) => x.src.includes(CLIENT) || x.dst.includes(CLIENT)).length, 0, `packets of the client's connections on ${p} (${file(p)})`);
    }
  });

  it(`2. site A's load raised above site B's distance + ${TOLERANCE} by 30 long downloads: new connections go to site B, the downloads stay on site A and complete; released, site A takes new ones again`, { timeout: 90_000 }, async (t) => {
    ready();
    await steadyLab();
    const LONG = 30;
    const BYTES = 1536 * 1024;
    const RATE = "96K"; // about 16 s each: well past the change of choice (at most LOAD_LAG_MS) and the new connections after it
    const started = Date.now();
    const downloads = parallelDownloads(SYS_VIP, LONG, BYTES, RATE, 40, "2-long");
    downloads.catch(() => {});
    let released: number | undefined;
    try {
      // 30 flows over a1, a2 (capacity 20 each): load 75%, cost 76 against site B's 20
      const moved = await waitForChoice("site B alone", (c) => c.eligible.join(",") === "siteB", LOAD_LAG_MS + 3000).catch((e: Error) => e);
      t.diagnostic(`sys chose site B ${Date.now() - started} ms after the long downloads began: ${choiceText(statusOf("sys"))}`);
      assert.ok(!(moved instanceof Error), `the system's choice did not move to site B: ${(moved as Error).message}\n  ${choiceText(statusOf("sys"))}`);
      const a = webChoice(statusOf("sys"))!.sites.find((s) => s.name === "siteA");
      assert.ok(a?.cost !== undefined && a.cost > LEVELS_DISTANCE.siteB + TOLERANCE, `site A's cost ${a?.cost} is above site B's distance + tolerance`);

      const r = await requests(SYS_VIP, 10, "2-loaded");
      const loadedUntil = Date.now() - started;
      t.diagnostic(`new connections while site A is loaded: ${JSON.stringify(r.counts)}`);
      assert.equal(answeredBy(r, SITE_B_SERVERS), 10, `new connections while site A is loaded go to site B: ${JSON.stringify(r.counts)}, failures ${summarize(r.failures)}`);

      const done = await downloads;
      released = Date.now();
      const by: Record<string, number> = {};
      for (const d of done) by[d.server] = (by[d.server] ?? 0) + 1;
      const ms = done.map((d) => d.ms);
      t.diagnostic(`long downloads: ${done.length} ended, by server ${JSON.stringify(by)}, ${Math.min(...ms).toFixed(0)}-${Math.max(...ms).toFixed(0)} ms each`);
      const bad = done.filter((d) => d.code !== 206 || d.bytes !== BYTES || !(SITE_A_SERVERS as readonly string[]).includes(d.server));
      assert.equal(done.length, LONG, `curl reported ${done.length} of ${LONG} downloads`);
      assert.deepEqual(bad, [], `every long download (begun at rest) completes in full (HTTP 206, ${BYTES} bytes) from its server on site A`);
      assert.ok(Math.min(...ms) > loadedUntil, `every long download was still running when site B took the new connections (${loadedUntil} ms after they began)`);
    } finally {
      await downloads.catch(() => {});
    }
    // released: the ended flows' entries count for the closing timeout, then the load figure follows
    const back = await waitForChoice("site A alone again, unloaded", (c) => siteAOnly(c) && c.sites.find((x) => x.name === "siteA")?.load === 0, CLOSING_MS + LOAD_LAG_MS + 3000).catch((e: Error) => e);
    t.diagnostic(`site A takes new flows again ${Date.now() - (released ?? Date.now())} ms after the long downloads ended: ${choiceText(statusOf("sys"))}`);
    assert.ok(!(back instanceof Error), `site A did not come back: ${(back as Error).message}`);
    const r = await requests(SYS_VIP, BURST, "2-released");
    t.diagnostic(`new connections after the release: ${JSON.stringify(r.counts)}`);
    assert.equal(answeredBy(r, SITE_A_SERVERS), BURST, `new connections after the release go to site A: ${JSON.stringify(r.counts)}, failures ${summarize(r.failures)}`);
  });

  it(`3. sa1 SIGKILLed: within ${DEAD_MS} ms (+ slack) the system says site A is silent and new connections go to site B; sa1 restarted, site A is back`, { timeout: 60_000 }, async (t) => {
    ready();
    await steadyLab();
    const killedAt = (await killLevelsNode("sa1"))!;
    let firstB = -1;
    const attempts: Record<string, number> = {};
    try {
      while (Date.now() - killedAt < DEAD_MS + FAILOVER_SLACK_MS + 5000) {
        const at = Date.now();
        const r = await oneRequest(SYS_VIP, 0.2);
        if (/^200 b[12]$/.test(r)) {
          firstB = at - killedAt;
          break;
        }
        attempts[r] = (attempts[r] ?? 0) + 1;
      }
      const silent = await waitForLevelsNode("sys", "site A silent", (s) => (s as Status).levels?.sites?.find((x) => x.name === "siteA")?.state === "silent", 3000).catch((e: Error) => e);
      const loggedSilent = loggedAt("sys", /levels: site siteA silent/, killedAt);
      t.diagnostic(`sys logged site A silent ${loggedSilent === undefined ? "(no line)" : `${loggedSilent - killedAt} ms`} after the kill; the first new connection served by site B was started ${firstB} ms after it (attempts before it: ${JSON.stringify(attempts)}); sys: ${choiceText(statusOf("sys"))}`);
      assert.ok(firstB >= 0, `no new connection was served by b1/b2 within ${DEAD_MS + FAILOVER_SLACK_MS + 5000} ms of the kill (attempts: ${JSON.stringify(attempts)}); ${choiceText(statusOf("sys"))}`);
      assert.ok(firstB <= DEAD_MS + FAILOVER_SLACK_MS, `site B took the new connections ${firstB} ms after the kill, more than ${DEAD_MS} + ${FAILOVER_SLACK_MS} ms`);
      assert.ok(!(silent instanceof Error), `sys's status does not say site A is silent: ${(silent as Error).message}`);
      assert.equal(eligible(statusOf("sys")), "siteB", `with site A silent, site B alone (no fail-open: it is heard): ${choiceText(statusOf("sys"))}`);
      const r = await requests(SYS_VIP, 10, "3-dead");
      assert.equal(answeredBy(r, SITE_B_SERVERS), 10, `new connections while sa1 is dead: ${JSON.stringify(r.counts)}, failures ${summarize(r.failures)}`);
      // silent counts from the last update, which came up to an interval before the kill
      assert.ok(loggedSilent !== undefined && loggedSilent - killedAt > DEAD_MS - LEVELS_LAB.intervalMs && loggedSilent - killedAt <= DEAD_MS + FAILOVER_SLACK_MS,
        `sys logs that site A went silent ${DEAD_MS} ms after its last update, at most ${FAILOVER_SLACK_MS} ms more after the kill: ${loggedSilent === undefined ? "no such line" : `${loggedSilent - killedAt} ms`}\n${tail(levelsPaths("sys").log(), 20)}`);
    } finally {
      const restartedAt = Date.now();
      await startLevelsNode("sa1", "ready");
      await waitForChoice("site A again after sa1's restart", siteAOnly, 10_000);
      t.diagnostic(`sa1 restarted and site A chosen again ${Date.now() - restartedAt} ms later`);
    }
    const r = await requests(SYS_VIP, BURST, "3-back");
    assert.equal(answeredBy(r, SITE_A_SERVERS), BURST, `new connections once sa1 is back: ${JSON.stringify(r.counts)}, failures ${summarize(r.failures)}`);
  });

  it("4. site A's VIP behind ECMP over sa1 and sa2: sa2 out of the route, then killed, then back, mid-traffic: every download completes, wrk sees no error, every connection keeps its server (flow recovery)", { timeout: 120_000 }, async (t) => {
    ready();
    await steadyLab();
    const BYTES = 2 * 1024 * 1024;
    const WRK_S = 20;
    const notes: string[] = [];
    interface LoadSet { name: string; client: KeepAlive; downloads: Promise<Transfer[]>; count: number }
    /** Connections opened now with sa1 and sa2 both in the route: each set's flows are spread over both. */
    const openSet = async (name: string, downloads: number, rate: string): Promise<LoadSet> => {
      const base = { sa1: newFlows("sa1", LEVELS_SERVICES.site), sa2: newFlows("sa2", LEVELS_SERVICES.site) };
      const d = parallelDownloads(SITE_VIP, downloads, BYTES, rate, 60, `4-set${name}`);
      d.catch(() => {});
      const { client, first } = await KeepAlive.open(SITE_VIP, 16, 100, 90);
      clients.push(client);
      assert.deepEqual(connFailures(first, SITE_A_SERVERS), [], `set ${name}: keep-alive connections to site A's VIP open`);
      await Promise.all([waitForFreshLevelsStatus("sa1", Date.now()), waitForFreshLevelsStatus("sa2", Date.now())]);
      const spread = { sa1: newFlows("sa1", LEVELS_SERVICES.site) - base.sa1, sa2: newFlows("sa2", LEVELS_SERVICES.site) - base.sa2 };
      notes.push(`set ${name}: 16 keep-alive connections and ${downloads} downloads, new flows of service site: ${JSON.stringify(spread)}`);
      assert.ok(spread.sa1 > 0 && spread.sa2 > 0, `set ${name}: the ECMP route spreads the connections over sa1 and sa2: ${JSON.stringify(spread)}`);
      return { name, client, downloads: d, count: downloads };
    };
    /** After a change: every keep-alive connection of every set still on its one server; the node's recovery counters since base. */
    const check = async (change: string, sets: readonly { name: string; client: KeepAlive }[], node: LevelsNodeName, base: LevelsView["recovery"] | undefined,
      peer?: { node: LevelsNodeName; base: LevelsView["answered"] | undefined }): Promise<Record<string, number>> => {
      for (const s of sets) assert.deepEqual(connFailures(await s.client.report(), SITE_A_SERVERS), [], `set ${s.name}'s keep-alive connections after: ${change}`);
      const st = (await waitForFreshLevelsStatus(node, Date.now())) as Status;
      const d = recoveryDelta(base, st.levels?.recovery);
      const answered = peer && statusOf(peer.node)?.levels?.answered;
      const said = peer && answered ? `; ${peer.node} answered ${answered.asked - (peer.base?.asked ?? 0)} queries, had ${answered.had - (peer.base?.had ?? 0)}` : "";
      notes.push(`${change}: ${node}'s levels.recovery rose by ${JSON.stringify(d)}${said}`);
      return d;
    };
    const answeredOf = (n: LevelsNodeName): LevelsView["answered"] | undefined => statusOf(n)?.levels?.answered;
    const sets: LoadSet[] = [];
    const wrkRun = modestWrk(`http://${SITE_VIP}/`, 8, WRK_S, 20, "4");
    wrkRun.catch(() => {});
    try {
      sets.push(await openSet("1", 4, "112K")); // about 19 s: across all three changes

      // a: sa2 out of the route, alive: its flows reach sa1, which asks sa2 (HAVE)
      const sa1Base = recoveryOf("sa1");
      const sa2Answered = answeredOf("sa2");
      await ecmpNexthops(["sa1"]);
      await sleep(2000);
      const a = await check("sa2 out of the route", sets, "sa1", sa1Base, { node: "sa2", base: sa2Answered });
      assert.ok(a.queries > 0 && a.answered > 0 && a.releasedInstalled > 0, `sa1 recovered sa2's flows by asking sa2: ${JSON.stringify(a)}`);

      // b: both again, a second set of connections (about half of them known to sa2 alone), then sa2 killed and the
      // route to sa1 alone: sa1 asks a dead peer, gives up, and the shared Maglev table picks the same server
      await ecmpNexthops(["sa1", "sa2"]);
      sets.push(await openSet("2", 4, "160K")); // about 13 s: across the kill and the return
      const sa1Mid = recoveryOf("sa1");
      await killLevelsNode("sa2");
      await ecmpNexthops(["sa1"]);
      await sleep(2500);
      const b = await check("sa2 killed, route to sa1 alone", sets, "sa1", sa1Mid);
      assert.ok(b.queries > 0 && b.timeouts > 0 && b.releasedLocal > 0, `sa1 asked the dead sa2 about set 2's flows, gave up and chose locally: ${JSON.stringify(b)}`);

      // c: sa2 back with empty tables, both in the route: the flows that hash to sa2 are recovered from sa1
      const restartAt = Date.now();
      await startLevelsNode("sa2", "ready");
      notes.push(`sa2 restarted, ready in ${Date.now() - restartAt} ms`);
      const sa2Base = recoveryOf("sa2");
      const sa1Answered = answeredOf("sa1");
      await ecmpNexthops(["sa1", "sa2"]);
      await sleep(2000);
      const c = await check("sa2 restarted, back in the route", sets, "sa2", sa2Base, { node: "sa1", base: sa1Answered });
      assert.ok(c.queries > 0 && c.answered > 0 && c.releasedInstalled > 0, `sa2 recovered sa1's flows by asking sa1: ${JSON.stringify(c)}`);

      const w = await wrkRun;
      const failed: string[] = [];
      for (const s of sets) {
        const done = await s.downloads.catch((e: Error) => e);
        if (done instanceof Error) failed.push(`set ${s.name}: ${done.message.split("\n")[0]}`);
        else if (done.length !== s.count) failed.push(`set ${s.name}: curl reported ${done.length} of ${s.count} downloads`);
        else for (const d of done) if (d.code !== 206 || d.bytes !== BYTES || !(SITE_A_SERVERS as readonly string[]).includes(d.server)) failed.push(`set ${s.name}: HTTP ${d.code}, ${d.bytes} of ${BYTES} bytes from ${d.server}`);
      }
      const closed = await Promise.all(sets.map((s) => s.client.close()));
      notes.push(`wrk (8 connections, 20 ms between requests): ${w.requests} requests, ${w.rps} requests/s, socket errors ${JSON.stringify(w.socketErrors)}, non-2xx ${w.non2xx}`);
      notes.push(`keep-alive: ${closed.map((k, i) => `set ${sets[i].name} ${requestsOf(k)} requests, servers ${JSON.stringify(serversOf(k))}`).join("; ")}`);
      assert.deepEqual(failed, [], "every download across the changes completes in full");
      assert.deepEqual({ socketErrors: w.socketErrors, non2xx: w.non2xx }, { socketErrors: NO_SOCKET_ERRORS, non2xx: 0 }, `wrk across the changes:\n${w.output}`);
      assert.ok(w.requests > 0, "wrk made requests");
      closed.forEach((k, i) => assert.deepEqual(connFailures(k, SITE_A_SERVERS), [], `set ${sets[i].name}: every keep-alive connection answered from its one server to the end`));
    } finally {
      for (const n of notes) t.diagnostic(n);
      for (const s of sets) s.client.kill();
      await Promise.allSettled([wrkRun, ...sets.map((s) => s.downloads)]);
      if (levelsNodePid("sa2") === undefined) await startLevelsNode("sa2", "ready");
      await ecmpNexthops(["sa1", "sa2"]);
    }
  });

  it("every appliance is still running after all of it", () => {
    ready();
    assert.deepEqual((["sys", "sa1", "sa2", "sb"] as const).filter((n) => levelsNodePid(n) === undefined), [], `appliances gone: ${levelsSummary()}`);
  });
});
