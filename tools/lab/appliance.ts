// The Flowswitch process in fsl-app: started with the Linux board on the lab's config, stopped with
// SIGTERM (SIGKILL after 3 s), reconfigured by rewriting appliance.json and sending SIGHUP. It writes
// status.json every second: counters, health per backend, engine count, time.
//
// "Ready" means: the process lives, status.json exists, and the router gets answers from the VIPs
// (the appliance answers ARP/ND for them and ICMP echo to them), so traffic can flow.
import { existsSync, readFileSync, rmSync, appendFileSync, writeFileSync, accessSync, statSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { CounterSnapshot } from "../../host/engine/index.js";
import type { Appliance } from "../../host/appliance.js";
import type { HaView } from "../../host/console/ha-view.js";
import { applianceConfig, type ApplianceConfigOptions, type LabApplianceConfig } from "./appliance-config.js";
import { ensureStateDir, ipIn, isAlive, nsTry, pidFromFile, signal, sleep, spawnInNs, statePath, stopPids, tail, writeFileAtomic } from "./exec.js";
import { APPLIANCE_NS, ROUTER_NS, VIPS } from "./topology.js";

/** Where one appliance process keeps its config, status, log and pid (the pair's node b: pair.ts). */
export interface AppliancePaths {
  config(): string;
  status(): string;
  log(): string;
  pid(): string;
  /** --state-dir (what outlives a restart; the pair keeps its configurations there). Absent: the appliance's default. */
  stateDir?(): string;
}

export const appliancePaths: AppliancePaths = {
  config: (): string => statePath("appliance.json"),
  status: (): string => statePath("status.json"),
  log: (): string => statePath("appliance.log"),
  pid: (): string => statePath("appliance.pid"),
};

export const READY_TIMEOUT_MS = 15_000;
const LOG_TAIL_LINES = 30;

export interface HealthState {
  state: "up" | "down";
  reason?: string;
}

/** status.json's `discovery` (present when the config has a discovery section), as JSON. */
export type DiscoveryStatus = NonNullable<ReturnType<Appliance["discovery"]>>;

/**
 * status.json's `ha` (present when the config has an ha section), as `show ha` sees it: the node's
 * role, the election's counters (takeovers, heartbeats refused by reason), the peer as this node
 * sees it, and the sync channel (whether this node holds the pair's flow state).
 */
export type LabHaStatus = HaView;

/** The node holds the pair's flow state (an active always does; a standby once the active's resync is in). */
export function haReady(s: ApplianceStatus | undefined): boolean {
  const h = s?.ha;
  if (!h) return false;
  return h.role === "active" || (h.election?.ready ?? h.sync?.ready ?? false);
}

export interface ApplianceStatus {
  counters: CounterSnapshot;
  health: Record<string, HealthState>;
  /** Every backend the engines run (configured and advertised), with its state now. */
  backends?: Record<string, { state: string; mac: string }>;
  discovery?: DiscoveryStatus;
  ha?: LabHaStatus;
  engines: number;
  time: number;
  /** Since the process started, ms. */
  uptimeMs?: number;
}

/** The repository root: the directory above this file that holds package.json. */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      accessSync(join(dir, "package.json"));
      return dir;
    } catch {
      const up = dirname(dir);
      if (up === dir) throw new Error(`cannot find package.json above ${fileURLToPath(import.meta.url)}`);
      dir = up;
    }
  }
}

/** An interface's MAC address, as the kernel reports it inside a namespace. */
export async function interfaceMac(ns: string, dev: string): Promise<string> {
  const { stdout } = await ipIn(ns, "-j", "link", "show", "dev", dev);
  const links = JSON.parse(stdout) as { address?: string }[];
  const mac = links[0]?.address;
  if (!mac) throw new Error(`no MAC address for ${dev} in ${ns} (ip -j -n ${ns} link show dev ${dev}: ${stdout.trim()})`);
  return mac;
}

/** The options a caller gives: the MACs are read from fsl-app. */
export type LabConfigOptions = Omit<ApplianceConfigOptions, "frontMac" | "backMac" | "chainMac">;

/** Writes appliance.json (atomically) for these options; front and back (and chain) MACs are read from fsl-app. */
export async function writeApplianceConfig(o: LabConfigOptions = {}): Promise<LabApplianceConfig> {
  const config = applianceConfig({
    ...o, frontMac: await interfaceMac(APPLIANCE_NS, "front"), backMac: await interfaceMac(APPLIANCE_NS, "back"),
    ...(o.chain ? { chainMac: await interfaceMac(APPLIANCE_NS, "chain") } : {}),
  });
  ensureStateDir();
  writeFileAtomic(appliancePaths.config(), `${JSON.stringify(config, null, 2)}\n`);
  return config;
}

export function appliancePid(): number | undefined {
  return pidFromFile(appliancePaths.pid());
}

export function applianceLogTail(lines = LOG_TAIL_LINES, paths: AppliancePaths = appliancePaths): string {
  return tail(paths.log(), lines);
}

/** The error to show when the appliance is not doing what the lab needs: what, and the log's tail. */
export class ApplianceError extends Error {
  constructor(what: string, paths: AppliancePaths = appliancePaths) {
    super(`${what}\n--- last lines of ${paths.log()} ---\n${applianceLogTail(LOG_TAIL_LINES, paths)}\n---`);
  }
}

/** The command line the lab starts the appliance with. */
export function applianceCommand(paths: AppliancePaths = appliancePaths): string[] {
  return [process.execPath, join(repoRoot(), "build", "host", "main.js"), "--board", "linux",
    "--config", paths.config(), "--status-file", paths.status(), ...(paths.stateDir ? ["--state-dir", paths.stateDir()] : [])];
}

/**
 * Starts an appliance process in `ns` on the config at paths.config() (which must exist), with a
 * fresh status file; notes its pid. Does not wait for anything.
 */
export async function spawnAppliance(ns: string, paths: AppliancePaths): Promise<number> {
  rmSync(paths.status(), { force: true });
  if (paths.stateDir) mkdirSync(paths.stateDir(), { recursive: true, mode: 0o755 });
  const argv = applianceCommand(paths);
  if (!existsSync(argv[1])) throw new ApplianceError(`cannot start the appliance: ${argv[1]} does not exist (run npm run build)`, paths);
  appendFileSync(paths.log(), `--- lab: ${new Date().toISOString()}: ip netns exec ${ns} ${argv.join(" ")}\n`);
  const pid = await spawnInNs(ns, argv, paths.log());
  writeFileSync(paths.pid(), `${pid}\n`);
  return pid;
}

/**
 * Starts the appliance in fsl-app on the current appliance.json (written first if missing), and
 * waits until it is ready. A running appliance is stopped first. Throws an ApplianceError with the
 * log's tail if it exits or is not ready within timeoutMs.
 */
export async function startAppliance(timeoutMs = READY_TIMEOUT_MS): Promise<number> {
  await stopAppliance();
  if (!existsSync(appliancePaths.config())) await writeApplianceConfig();
  const pid = await spawnAppliance(APPLIANCE_NS, appliancePaths);
  await waitReady(pid, timeoutMs);
  return pid;
}

/** Waits until the process lives, has written its status file, and the router gets answers from every VIP. */
export async function waitReady(pid: number, timeoutMs: number, paths: AppliancePaths = appliancePaths): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const pending = new Set([VIPS.dsr4, VIPS.nat4, VIPS.dsr6, VIPS.nat6]);
  let statusSeen = false;
  for (;;) {
    if (!isAlive(pid)) throw new ApplianceError(`the appliance (pid ${pid}) exited while starting`, paths);
    if (!statusSeen) statusSeen = readStatus(paths.status()) !== undefined;
    // one echo per pending VIP; each waits at most 1 s
    for (const vip of [...pending]) {
      if ((await nsTry(ROUTER_NS, ["ping", "-c1", "-W1", "-n", "-q", vip], { timeoutMs: 5000 })).ok) pending.delete(vip);
    }
    if (statusSeen && pending.size === 0) return;
    if (Date.now() > deadline) {
      const missing = [
        ...(statusSeen ? [] : [`no readable ${paths.status()}`]),
        ...(pending.size ? [`no answer from ${[...pending].join(", ")} to a ping from ${ROUTER_NS} (the appliance must answer ARP/ND and ICMP echo for its VIPs)`] : []),
      ];
      throw new ApplianceError(`the appliance (pid ${pid}) is not ready after ${timeoutMs / 1000} s: ${missing.join("; ")}`, paths);
    }
    await sleep(200);
  }
}

/** SIGTERM, then SIGKILL after 3 s. */
export async function stopAppliance(): Promise<void> {
  const pid = appliancePid();
  if (pid) await stopPids([pid], 3000);
  rmSync(appliancePaths.pid(), { force: true });
}

const RELOAD_ACK_MS = 3000;

/**
 * Writes a new appliance.json and sends SIGHUP, so the running appliance reloads it; then waits
 * (at most 3 s) for the appliance to log a line about the reload. A line saying "refused" is an
 * error; no line at all is taken as done (the appliance need not log).
 */
export async function reloadAppliance(o: LabConfigOptions = {}): Promise<LabApplianceConfig> {
  const config = await writeApplianceConfig(o);
  const pid = appliancePid();
  if (!pid) throw new ApplianceError("cannot reload the appliance: it is not running");
  const logFile = appliancePaths.log();
  const from = existsSync(logFile) ? statSync(logFile).size : 0;
  signal(pid, "SIGHUP");
  const deadline = Date.now() + RELOAD_ACK_MS;
  while (Date.now() < deadline) {
    await sleep(100);
    const added = existsSync(logFile) ? readFileSync(logFile).subarray(from).toString("utf8") : "";
    const line = added.split("\n").find((l) => /reload/i.test(l));
    if (line && /refused|fail|error/i.test(line)) throw new ApplianceError(`the appliance did not take the new ${appliancePaths.config()}: ${line.trim()}`);
    if (line) return config;
  }
  return config;
}

/** status.json (or another node's status file), or undefined while there is none (or it does not parse). */
export function readStatus(file = appliancePaths.status()): ApplianceStatus | undefined {
  try {
    const s = JSON.parse(readFileSync(file, "utf8")) as ApplianceStatus;
    return typeof s === "object" && s !== null && typeof s.counters === "object" ? s : undefined;
  } catch {
    return undefined;
  }
}

/** Waits (bounded) until status.json satisfies test; throws an ApplianceError naming what was awaited. */
export async function waitForStatus(what: string, test: (s: ApplianceStatus) => boolean, timeoutMs: number): Promise<ApplianceStatus> {
  const deadline = Date.now() + timeoutMs;
  let last: ApplianceStatus | undefined;
  for (;;) {
    last = readStatus();
    if (last && test(last)) return last;
    if (Date.now() > deadline) {
      const shown = last ? JSON.stringify({ health: last.health, time: last.time, engines: last.engines }) : "(no status.json)";
      throw new ApplianceError(`waited ${timeoutMs / 1000} s for ${what}; status.json: ${shown}`);
    }
    if (appliancePid() === undefined) throw new ApplianceError(`the appliance is not running (waiting for ${what})`);
    await sleep(200);
  }
}

/** A status.json written after `after` (ms since the epoch): the counters then include what happened before it. */
export function waitForFreshStatus(after: number, timeoutMs = 5000): Promise<ApplianceStatus> {
  return waitForStatus(`a status.json written after ${new Date(after).toISOString()}`, (s) => s.time > after, timeoutMs);
}
