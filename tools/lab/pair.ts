// The redundant pair in the lab (`up --pair`): node a in fsl-app (priority 200, the preferred
// active) and node b in fsl-app2 (priority 100), each the same Flowswitch process as the single
// lab's, on its own veths' MACs, with an `ha` section naming the other (appliance-config.ts). Node a
// keeps the single lab's files (appliance.json, status.json, appliance.log); node b has its own
// (appliance-b.json, status-b.json, appliance-b.log); each has its own --state-dir (node-a/,
// node-b/: the pair keeps configurations there). Both sign heartbeats with the lab's key
// (ha.key in the state directory, 32 random bytes, made once).
//
// Here: writing both configs, starting a node and waiting for the role it should reach, SIGKILL
// (a node that dies, not one that stops), reading a node's status, and cutting the HA link alone
// (the data-network heartbeats still arrive over the management addresses).
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { randomBytes } from "node:crypto";
import {
  ApplianceError, appliancePaths, haReady, interfaceMac, readStatus, spawnAppliance, waitReady, type AppliancePaths, type ApplianceStatus, READY_TIMEOUT_MS,
} from "./appliance.js";
import { applianceConfig, type ApplianceConfigOptions, type LabApplianceConfig, type LabHaOptions } from "./appliance-config.js";
import { decodeHa, type HeartbeatMsg } from "../../host/ha/protocol.js";
import { readCapture } from "./capture.js";
import { ensureStateDir, ipIn, isAlive, pidFromFile, signal, sleep, statePath, stopPids, tryRun, writeFileAtomic } from "./exec.js";
import { HA_LINK, PAIR, PAIR_NODE_NAMES, type PairNodeName } from "./topology.js";

export const HA_KEY_ID = 1;

/** Node a has the single lab's files (appliancePaths), node b its own; each its own state directory. */
const NODE_PATHS: Record<PairNodeName, AppliancePaths> = {
  a: { ...appliancePaths, stateDir: (): string => statePath("node-a") },
  b: {
    config: (): string => statePath("appliance-b.json"),
    status: (): string => statePath("status-b.json"),
    log: (): string => statePath("appliance-b.log"),
    pid: (): string => statePath("appliance-b.pid"),
    stateDir: (): string => statePath("node-b"),
  },
};

export function nodePaths(node: PairNodeName): AppliancePaths {
  return NODE_PATHS[node];
}

export const otherNode = (node: PairNodeName): PairNodeName => (node === "a" ? "b" : "a");

/** The lab's heartbeat key: made once (32 random bytes, hex) in the state directory, the same for both nodes. */
export function haKey(): { id: number; secret: string } {
  ensureStateDir();
  const file = statePath("ha.key");
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
  return { id: HA_KEY_ID, secret: readFileSync(file, "utf8").trim() };
}

export type PairConfigOptions = Omit<ApplianceConfigOptions, "frontMac" | "backMac" | "ha"> & { ha?: Omit<LabHaOptions, "node" | "keys"> & { keys?: LabHaOptions["keys"] } };

/** One node's config for these options: its own MACs (read from its namespace), the shared rest. */
export async function pairConfig(node: PairNodeName, o: PairConfigOptions = {}): Promise<LabApplianceConfig> {
  const ns = PAIR[node].ns;
  return applianceConfig({
    ...o,
    frontMac: await interfaceMac(ns, "front"),
    backMac: await interfaceMac(ns, "back"),
    udpProbe: o.udpProbe ?? true,
    ha: { ...o.ha, node, keys: o.ha?.keys ?? [haKey()] },
  });
}

/** Writes both nodes' configs (atomically). */
export async function writePairConfig(o: PairConfigOptions = {}): Promise<Record<PairNodeName, LabApplianceConfig>> {
  ensureStateDir();
  const out = {} as Record<PairNodeName, LabApplianceConfig>;
  for (const node of PAIR_NODE_NAMES) {
    out[node] = await pairConfig(node, o);
    writeFileAtomic(nodePaths(node).config(), `${JSON.stringify(out[node], null, 2)}\n`);
  }
  return out;
}

export function nodePid(node: PairNodeName): number | undefined {
  return pidFromFile(nodePaths(node).pid());
}

export function readNodeStatus(node: PairNodeName): ApplianceStatus | undefined {
  return readStatus(nodePaths(node).status());
}

/** The node's HA role as its status file says it (undefined: no status, or no ha in it). */
export function roleOf(node: PairNodeName): string | undefined {
  return readNodeStatus(node)?.ha?.role;
}

export function nodeError(node: PairNodeName, what: string): ApplianceError {
  return new ApplianceError(`node ${node} (${PAIR[node].ns}): ${what}`, nodePaths(node));
}

/** A short line about each node, for failure messages: pid, role, ready, peer as seen. */
export function pairSummary(): string {
  return PAIR_NODE_NAMES.map((n) => {
    const s = readNodeStatus(n);
    const h = s?.ha;
    const age = s ? `${((Date.now() - s.time) / 1000).toFixed(1)} s old` : "no status";
    if (nodePid(n) === undefined) return `node ${n}: not running${h ? ` (its last status, ${age}: role ${h.role})` : ""}`;
    return `node ${n}: pid ${nodePid(n)}, ${h ? `role ${h.role}, ready ${haReady(s)}, peer ${JSON.stringify(h.peer ? { state: h.peer.state, alive: h.peer.alive, ready: h.peer.ready } : null)}` : "no ha in status"} (${age})`;
  }).join("; ");
}

/** Waits (bounded) until the node's status satisfies test. Throws naming what was awaited, with both nodes' state and this node's log. */
export async function waitForNode(node: PairNodeName, what: string, test: (s: ApplianceStatus) => boolean, timeoutMs: number, pollMs = 50): Promise<ApplianceStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = readNodeStatus(node);
    if (s && test(s)) return s;
    if (nodePid(node) === undefined) throw nodeError(node, `not running (waiting for ${what}); ${pairSummary()}`);
    if (Date.now() > deadline) throw nodeError(node, `waited ${timeoutMs / 1000} s for ${what}; ${pairSummary()}`);
    await sleep(pollMs);
  }
}

/** A status written after `after` (ms since the epoch), so that its counters include what happened before. */
export function waitForFreshNodeStatus(node: PairNodeName, after: number, timeoutMs = 5000): Promise<ApplianceStatus> {
  return waitForNode(node, `a status written after ${new Date(after).toISOString()}`, (s) => s.time > after, timeoutMs);
}

export type NodeGoal = "active" | "standby-ready" | "running";

/**
 * Starts a node on its current config and waits for `goal`: "active" (its status says active and
 * the router gets answers from every VIP), "standby-ready" (standby, and holds the pair's state),
 * or "running" (a status with an ha section). A running node is SIGKILLed first.
 */
export async function startNode(node: PairNodeName, goal: NodeGoal, timeoutMs = READY_TIMEOUT_MS): Promise<number> {
  await killNode(node);
  const paths = nodePaths(node);
  if (!existsSync(paths.config())) await writePairConfig();
  const pid = await spawnAppliance(PAIR[node].ns, paths);
  const deadline = Date.now() + timeoutMs;
  const left = (): number => Math.max(1000, deadline - Date.now());
  await waitForNode(node, "a status with an ha section", (s) => s.ha !== undefined, left());
  if (goal === "active") {
    await waitForNode(node, "role active", (s) => s.ha?.role === "active", left());
    await waitReady(pid, left(), paths);
  } else if (goal === "standby-ready") {
    await waitForNode(node, "role standby and ready (synced)", (s) => s.ha?.role === "standby" && haReady(s), left());
  }
  return pid;
}

/** SIGKILL, and waits (at most 2 s) until the process is gone; returns when it was sent (ms), or undefined if none ran. */
export async function killNode(node: PairNodeName): Promise<number | undefined> {
  const pid = nodePid(node);
  if (pid === undefined) return undefined;
  const at = Date.now();
  signal(pid, "SIGKILL");
  const deadline = Date.now() + 2000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(5);
  if (isAlive(pid)) throw nodeError(node, `pid ${pid} still lives 2 s after SIGKILL`);
  return at;
}

/** SIGTERM (SIGKILL after 3 s). */
export async function stopNode(node: PairNodeName): Promise<void> {
  const pid = nodePid(node);
  if (pid) await stopPids([pid], 3000);
}

/** Node a active, then node b standby and synced: the pair as `up --pair` leaves it. */
export async function startPair(timeoutMs = READY_TIMEOUT_MS): Promise<void> {
  await startNode("a", "active", timeoutMs);
  await startNode("b", "standby-ready", timeoutMs);
}

export async function stopPair(): Promise<void> {
  await Promise.all(PAIR_NODE_NAMES.map(stopNode));
}

/** The node whose status says active (undefined: none, or both: see pairSummary). */
export function activeNode(): PairNodeName | undefined {
  const active = PAIR_NODE_NAMES.filter((n) => nodePid(n) !== undefined && roleOf(n) === "active");
  return active.length === 1 ? active[0] : undefined;
}

export type HaLinkCut = "down" | "loss";

/**
 * Cuts the HA link alone: "down" sets node a's end down (node b's end loses its carrier, like a
 * pulled cable); "loss" leaves both ends up and drops everything on node a's end both ways
 * (netem 100% on egress, a drop-all filter on ingress), like a dead switch in between.
 */
export async function cutHaLink(how: HaLinkCut = "down"): Promise<void> {
  const ns = PAIR.a.ns;
  if (how === "down") {
    await ipIn(ns, "link", "set", HA_LINK.dev, "down");
    return;
  }
  await tryRun(["tc", "-n", ns, "qdisc", "del", "dev", HA_LINK.dev, "root"]);
  await tryRun(["tc", "-n", ns, "qdisc", "del", "dev", HA_LINK.dev, "ingress"]);
  const tc = async (...args: string[]): Promise<void> => {
    const r = await tryRun(["tc", "-n", ns, ...args]);
    if (!r.ok) throw new Error(`cutting the HA link: ${r.error?.message}`);
  };
  await tc("qdisc", "add", "dev", HA_LINK.dev, "root", "netem", "loss", "100%");
  await tc("qdisc", "add", "dev", HA_LINK.dev, "ingress");
  await tc("filter", "add", "dev", HA_LINK.dev, "parent", "ffff:", "matchall", "action", "drop");
}

/** Undoes cutHaLink, whichever way it was cut. */
export async function restoreHaLink(): Promise<void> {
  const ns = PAIR.a.ns;
  await tryRun(["tc", "-n", ns, "qdisc", "del", "dev", HA_LINK.dev, "root"]);
  await tryRun(["tc", "-n", ns, "qdisc", "del", "dev", HA_LINK.dev, "ingress"]);
  await ipIn(ns, "link", "set", HA_LINK.dev, "up");
  // the address comes back with the link; the route to the peer with it
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const r = await tryRun(["ip", "netns", "exec", ns, "ping", "-c1", "-W1", "-n", "-q", PAIR.b.haLink], { timeoutMs: 3000 });
    if (r.ok) return;
    await sleep(50);
  }
  throw new Error(`the HA link does not carry a ping from ${PAIR.a.haLink} to ${PAIR.b.haLink} after restoring it`);
}

/** One heartbeat datagram from a capture, decoded with the lab's key (hb undefined: it did not verify). */
export interface CapturedHeartbeat {
  /** Capture time, ms since the epoch. */
  at: number;
  src: string;
  bytes: Uint8Array;
  hb?: HeartbeatMsg;
  seq?: number;
  /** Why it did not verify. */
  refused?: string;
}

/** The heartbeats (UDP to HA_LINK.port) in a capture, in order, decoded with the lab's key. */
export async function readHeartbeats(file: string): Promise<CapturedHeartbeat[]> {
  const key = haKey();
  const keys = new Map([[key.id, new Uint8Array(Buffer.from(key.secret, "hex"))]]);
  const rows = await readCapture(file, ["frame.time_epoch", "ip.src", "udp.payload"], `udp.dstport == ${HA_LINK.port}`);
  return rows.filter((r) => r[2]).map(([t, src, hex]) => {
    const bytes = new Uint8Array(Buffer.from(hex!.replace(/:/g, ""), "hex"));
    const r = decodeHa(bytes, keys);
    return { at: Math.round(Number(t) * 1000), src: src!, bytes, ...(r.ok ? { hb: r.msg, seq: r.seq } : { refused: `${r.reason}: ${r.detail}` }) };
  });
}

/** A role change as the node logged it: "2026-...Z ha: standby -> active: peer a silent on every link for 91 ms". */
export interface RoleChange {
  at: number;
  from: string;
  to: string;
  reason: string;
}

/** The role changes a node logged after byte `from` of its log (its size before a restart, say), in order. */
export function roleChanges(node: PairNodeName, from = 0): RoleChange[] {
  const file = nodePaths(node).log();
  if (!existsSync(file)) return [];
  const text = readFileSync(file).subarray(from).toString("utf8");
  const out: RoleChange[] = [];
  for (const m of text.matchAll(/^(\S+Z) ha: (\w+) -> (\w+): (.*)$/gm)) out.push({ at: Date.parse(m[1]!), from: m[2]!, to: m[3]!, reason: m[4]! });
  return out;
}

/** The size of a node's log now: where roleChanges should start reading to see only what comes next. */
export function logSize(node: PairNodeName): number {
  const file = nodePaths(node).log();
  return existsSync(file) ? statSync(file).size : 0;
}
