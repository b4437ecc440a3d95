// The failover probe, the lab's side: UDP echo servers (probe-echo.ts) in the servers' namespaces
// (or any lab namespace), a probe client (probe-client.ts) in fsl-cli sending to a VIP every
// millisecond or two on a few flows, and the silences it saw set against the times of kills.
//
// A server's echo binds the DSR VIPs (it answers from the VIP, straight to the router) and its own
// addresses (NAT: it answers from its own address, which the lab routes back through the
// appliance), so the same echo serves both services.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { repoRoot } from "./appliance.js";
import { isAlive, pidFromFile, signal, sleep, spawnInNs, statePath, stopPids, tail, ensureStateDir } from "./exec.js";
import { CLIENT_NS, PROBE_PORT, SERVERS, VIPS } from "./topology.js";

export interface ProbeSilence {
  flow: number;
  /** Send time of the last answered probe before the silence (wall clock, ms). */
  fromMs: number;
  /** Send time of the first answered probe after it. */
  toMs: number;
  ms: number;
  /** Probes sent in between that got no answer. */
  lost: number;
}

/** What probe-client.ts writes. */
export interface ProbeResult {
  target: string;
  port: number;
  flows: number;
  intervalMs: number;
  minGapMs: number;
  startedAt: number;
  stoppedAt: number;
  sent: number;
  received: number;
  late: number;
  maxRttMs: number;
  silences: ProbeSilence[];
  /** Flows unanswered since fromMs when the probe stopped (a gap that never closed). */
  open: { flow: number; fromMs: number; ms: number; lost: number }[];
}

const program = (name: string): string => join(repoRoot(), "build", "tools", "lab", `${name}.js`);
const echoPid = (tag: string): string => statePath(`probe-echo-${tag}.pid`);
const echoLog = (tag: string): string => statePath(`probe-echo-${tag}.log`);
/** Every echo the lab may have started: the servers', and the keepalived reference's in the appliances. */
const ECHO_TAGS = [...SERVERS.map((s) => s.name), "app-a", "app-b"];

/** Starts a UDP echo in `ns` on PROBE_PORT for these addresses (tag names its pid and log files); waits until it listens. */
export async function startEcho(ns: string, tag: string, binds: readonly string[]): Promise<number> {
  ensureStateDir();
  await stopEcho(tag);
  rmSync(echoLog(tag), { force: true });
  const pid = await spawnInNs(ns, [process.execPath, program("probe-echo"), "--port", String(PROBE_PORT), ...binds.flatMap((b) => ["--bind", b])], echoLog(tag));
  writeFileSync(echoPid(tag), `${pid}\n`);
  const deadline = Date.now() + 5000;
  for (;;) {
    const text = existsSync(echoLog(tag)) ? readFileSync(echoLog(tag), "utf8") : "";
    if ((text.match(/listening on/g) ?? []).length >= binds.length) return pid;
    if (!isAlive(pid)) throw new Error(`the probe's echo in ${ns} exited:\n${tail(echoLog(tag), 10)}`);
    if (Date.now() > deadline) throw new Error(`the probe's echo in ${ns} does not listen after 5 s:\n${tail(echoLog(tag), 10)}`);
    await sleep(20);
  }
}

export async function stopEcho(tag: string): Promise<void> {
  const pid = pidFromFile(echoPid(tag));
  if (pid) await stopPids([pid], 1000);
  rmSync(echoPid(tag), { force: true });
}

/** The echo on every server: DSR VIPs and the server's own addresses. */
export async function startProbeServers(): Promise<void> {
  for (const s of SERVERS) await startEcho(s.ns, s.name, [VIPS.dsr4, VIPS.dsr6, s.ipv4, s.ipv6]);
}

/** Stops every echo the lab started (servers and appliances). */
export async function stopProbeServers(): Promise<void> {
  for (const tag of ECHO_TAGS) await stopEcho(tag);
}

export interface ProbeOptions {
  /** Flows (sockets), each its own 5-tuple (default 4). */
  flows?: number;
  /** Probe interval per flow, ms (default 1). */
  intervalMs?: number;
  /** Upper bound of the run (default 600 s); stop() ends it earlier. */
  durationS?: number;
  /** Shorter silences are not noted (default 5 ms). */
  minGapMs?: number;
  /** Names the result and log files (default "probe"). */
  tag?: string;
}

export interface Probe {
  target: string;
  /** Stops the client (if still running) and reads what it saw. */
  stop(): Promise<ProbeResult>;
}

/** Starts the probe client in fsl-cli towards target:PROBE_PORT; returns once the first answers have come back (at most 5 s). */
export async function startProbe(target: string, o: ProbeOptions = {}): Promise<Probe> {
  const tag = o.tag ?? "probe";
  const out = statePath(`${tag}.json`);
  const log = statePath(`${tag}.log`);
  rmSync(out, { force: true });
  rmSync(log, { force: true });
  const durationS = o.durationS ?? 600;
  const pid = await spawnInNs(CLIENT_NS, [
    process.execPath, program("probe-client"), "--target", target, "--port", String(PROBE_PORT), "--out", out,
    "--flows", String(o.flows ?? 4), "--interval-ms", String(o.intervalMs ?? 1), "--duration-s", String(durationS), "--min-gap-ms", String(o.minGapMs ?? 5),
  ], log);
  const stop = async (): Promise<ProbeResult> => {
    if (isAlive(pid)) signal(pid, "SIGTERM");
    const deadline = Date.now() + 5000;
    while (isAlive(pid) && Date.now() < deadline) await sleep(20);
    if (isAlive(pid)) await stopPids([pid], 500);
    if (!existsSync(out)) throw new Error(`the probe (${target}) wrote no result to ${out}:\n${tail(log, 10)}`);
    return JSON.parse(readFileSync(out, "utf8")) as ProbeResult;
  };
  // The client cannot say when answers come without stopping; give the first ones time to arrive.
  await sleep(300);
  if (!isAlive(pid)) throw new Error(`the probe client towards ${target} exited at once:\n${tail(log, 10)}`);
  return { target, stop };
}

export interface Gap {
  /** The longest silence any flow saw around the event (0: none over minGapMs). */
  ms: number;
  /** Probes lost in it, over all flows. */
  lost: number;
  /** Flows that saw a silence. */
  flows: number;
  /** The silence never closed before the probe stopped. */
  open: boolean;
}

/**
 * The gap a client saw around an event at atMs: the longest silence of any flow that spans a moment
 * from atMs to atMs + windowMs (the last answer before it may come from before the event).
 */
export function gapAround(r: ProbeResult, atMs: number, windowMs = 3000): Gap {
  const hits = r.silences.filter((s) => s.toMs >= atMs && s.fromMs <= atMs + windowMs);
  const open = r.open.filter((o) => o.fromMs <= atMs + windowMs);
  const all = [...hits.map((h) => ({ flow: h.flow, ms: h.ms, lost: h.lost })), ...open.map((o) => ({ flow: o.flow, ms: o.ms, lost: o.lost }))];
  return {
    ms: all.reduce((m, x) => Math.max(m, x.ms), 0),
    lost: all.reduce((a, x) => a + x.lost, 0),
    flows: new Set(all.map((x) => x.flow)).size,
    open: open.length > 0,
  };
}

/** Silences that fall in no event's window: the probe saw traffic stop with nothing killed (a false takeover, a hiccup). */
export function silencesOutside(r: ProbeResult, eventsMs: readonly number[], windowMs = 3000, minMs = 20): ProbeSilence[] {
  return r.silences.filter((s) => s.ms >= minMs && !eventsMs.some((at) => s.toMs >= at && s.fromMs <= at + windowMs));
}

export const median = (xs: readonly number[]): number => {
  if (!xs.length) return NaN;
  const a = [...xs].sort((x, y) => x - y);
  const m = Math.floor(a.length / 2);
  return a.length % 2 ? a[m]! : (a[m - 1]! + a[m]!) / 2;
};
