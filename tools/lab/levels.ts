// The multi-level lab (`up --levels`, issue 10; names and addresses in topology.ts, configs in
// levels-config.ts): a client, a router, a system appliance, three site appliances (site A an ECMP
// pair) and four nginx servers, in namespaces of its own (fsl-lv-*), never touching the main lab.
//
// up:   tears down whatever is left of an earlier levels lab (only that), builds the namespaces,
//       bridges, veths, addresses, routes (the system VIP to fsl-lv-sys, site A's VIP by ECMP to sa1
//       and sa2, hashed on L4) and sysctls, starts nginx in the servers, checks the kernel-only paths
//       (client to each server, each site's management address to its servers' /health, the
//       management addresses to each other), writes the four configs and (unless told not to)
//       starts the four appliances and waits until each is ready: its status file written, its data
//       addresses answering the router's pings, and (sites) its servers healthy with known MACs.
//       Any failure tears the levels lab down again (unless keepOnFailure).
// down: stops the appliances (SIGTERM, SIGKILL after 3 s), nginx and anything else left in its
//       namespaces, and deletes them (their veths and bridges go with them). Works on a partial lab.
//
// The appliances are real Flowswitch processes on the Linux board, one per namespace, each with its
// files in <state>/levels/<node>/ (appliance.json, status.json, appliance.log, appliance.pid, and
// state/ as --state-dir); all sign with the lab's key (levels.key, made once, like the pair's).
//
// The appliances read their ports in promiscuous mode, and two of them (sa1, sa2) share both their
// segments: a frame the bridge floods to an unknown MAC would reach the other one, which would serve
// it too. So the bridges know every appliance port's MAC (static entries) and never flood unknown
// unicast to an appliance port; broadcasts (ARP) still reach them.
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync, type PathLike } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { validate, formatError } from "../../host/config/validate.js";
import {
  ApplianceError, READY_TIMEOUT_MS, interfaceMac, readStatus, spawnAppliance, type AppliancePaths, type ApplianceStatus,
} from "./appliance.js";
import { startCapture, type Capture } from "./capture.js";
import {
  ensureStateDir, holderPid, isAlive, nsRun, nsTry, pidFromFile, privilege, run, signal, sleep, startHolder, statePath, stateDir,
  stopPids, tryRun, withDescendants, writeFileAtomic,
} from "./exec.js";
import { namespacePids } from "./lab.js";
import { ipBatch, offloadsOff, presentNamespaces, sysctl, veth } from "./netns.js";
import { levelsNodeConfig, LEVELS_LAB, type LevelsApplianceConfig, type LevelsKey, type LevelsVariant } from "./levels-config.js";
import { accessLogPath, bigFilePath, ensureBigFile, nginxConf, nginxPid, readAccessLog, type AccessLogEntry } from "./nginx.js";
import {
  HTTP_PORT, LEVELS_CLIENT, LEVELS_CLIENT_NS, LEVELS_NAMESPACES, LEVELS_NODES, LEVELS_NODE_NAMES, LEVELS_ROUTER_NS, LEVELS_SEGMENTS, LEVELS_SERVERS,
  LEVELS_SERVER_NAMES, LEVELS_SITES, LEVELS_VIPS, MTU, levelsDataAddress, type LabServerName, type LevelsNodeName, type LevelsSegmentName,
  type LevelsServerName, type LevelsSiteNodeName,
} from "./topology.js";

// ---------------------------------------------------------------------------------------------
// Files and the key

/** A node's files: <state>/levels/<node>/. */
export function levelsPaths(node: LevelsNodeName): AppliancePaths {
  const dir = (...parts: string[]): string => statePath("levels", node, ...parts);
  return {
    config: (): string => dir("appliance.json"),
    status: (): string => dir("status.json"),
    log: (): string => dir("appliance.log"),
    pid: (): string => dir("appliance.pid"),
    stateDir: (): string => dir("state"),
  };
}

function ensureNodeDir(node: LevelsNodeName): void {
  mkdirSync(statePath("levels", node), { recursive: true, mode: 0o755 });
}

/** The lab's levels key: made once (32 random bytes, hex) in the state directory, the same for every node. */
export function levelsKey(): LevelsKey {
  ensureStateDir();
  const file = statePath("levels.key");
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
  return { id: LEVELS_LAB.keyId, secret: readFileSync(file, "utf8").trim() };
}

// ---------------------------------------------------------------------------------------------
// Configs

/** A node's config for a variant: its data ports' MACs read from its namespace, the lab's key. */
export async function levelsConfig(node: LevelsNodeName, variant: LevelsVariant = {}): Promise<LevelsApplianceConfig> {
  const n = LEVELS_NODES[node];
  const macs = Object.fromEntries(await Promise.all(n.ports.map(async (p) => [p.name, await interfaceMac(n.ns, p.name)] as const)));
  return levelsNodeConfig(node, { macs, keys: [levelsKey()] }, variant);
}

/**
 * Writes a node's config (atomically) for a variant, and returns it. It is validated first, as the
 * appliance will (validate: false writes it anyway: a test of a refused reload).
 */
export async function writeLevelsConfig(node: LevelsNodeName, variant: LevelsVariant = {}, o: { validate?: boolean } = {}): Promise<LevelsApplianceConfig> {
  const config = await levelsConfig(node, variant);
  if (o.validate ?? true) {
    const v = validate(config);
    if (!v.ok) throw new Error(`the levels lab's config for ${node} does not validate:\n${v.errors.map((e) => `  ${formatError(e)}`).join("\n")}`);
  }
  ensureNodeDir(node);
  writeFileAtomic(levelsPaths(node).config(), `${JSON.stringify(config, null, 2)}\n`);
  return config;
}

/** The config a node was last given (its appliance.json), or undefined. */
export function readLevelsConfig(node: LevelsNodeName): LevelsApplianceConfig | undefined {
  return readJson(levelsPaths(node).config()) as LevelsApplianceConfig | undefined;
}

// ---------------------------------------------------------------------------------------------
// The appliances

/** A node's status file: the appliance's status; `levels` once the appliance writes one (its shape is the appliance's). */
export type LevelsNodeStatus = ApplianceStatus & { levels?: Record<string, unknown>; neighbors?: Record<string, string> };

export function levelsNodePid(node: LevelsNodeName): number | undefined {
  return pidFromFile(levelsPaths(node).pid());
}

/** The node's status.json, or undefined while there is none (or it does not parse). */
export function readLevelsStatus(node: LevelsNodeName): LevelsNodeStatus | undefined {
  return readStatus(levelsPaths(node).status()) as LevelsNodeStatus | undefined;
}

/** A short line about each node, for failure messages: pid, status age, backends' health. */
export function levelsSummary(): string {
  return LEVELS_NODE_NAMES.map((n) => {
    const s = readLevelsStatus(n);
    const age = s ? `status ${((Date.now() - s.time) / 1000).toFixed(1)} s old` : "no status";
    const health = Object.entries(s?.health ?? {}).map(([b, h]) => `${b} ${h.state}`).join(", ");
    const pid = levelsNodePid(n);
    return `${n}: ${pid ? `pid ${pid}` : "not running"}, ${age}${health ? `, ${health}` : ""}`;
  }).join("; ");
}

export function levelsNodeError(node: LevelsNodeName, what: string): ApplianceError {
  return new ApplianceError(`levels node ${node} (${LEVELS_NODES[node].ns}): ${what}`, levelsPaths(node));
}

/** Waits (bounded) until the node's status satisfies test; throws naming what was awaited, with every node's state and this node's log. */
export async function waitForLevelsNode(
  node: LevelsNodeName, what: string, test: (s: LevelsNodeStatus) => boolean, timeoutMs: number, pollMs = 100,
): Promise<LevelsNodeStatus> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = readLevelsStatus(node);
    if (s && test(s)) return s;
    if (levelsNodePid(node) === undefined) throw levelsNodeError(node, `not running (waiting for ${what}); ${levelsSummary()}`);
    if (Date.now() > deadline) throw levelsNodeError(node, `waited ${timeoutMs / 1000} s for ${what}; ${levelsSummary()}`);
    await sleep(pollMs);
  }
}

/** A status written after `after` (ms since the epoch), so that its counters include what happened before. */
export function waitForFreshLevelsStatus(node: LevelsNodeName, after: number, timeoutMs = 5000): Promise<LevelsNodeStatus> {
  return waitForLevelsNode(node, `a status written after ${new Date(after).toISOString()}`, (s) => s.time > after, timeoutMs);
}

/**
 * What a node still lacks to be ready (empty: ready): its data addresses answering a ping from the
 * router (the appliance answers ARP and pings for its port addresses), and (sites) every active
 * backend of its config healthy with a known MAC.
 */
export async function levelsNodeMissing(node: LevelsNodeName): Promise<string[]> {
  const s = readLevelsStatus(node);
  if (!s) return [`no readable ${levelsPaths(node).status()}`];
  const missing: string[] = [];
  for (const p of LEVELS_NODES[node].ports) {
    const r = await nsTry(LEVELS_ROUTER_NS, ["ping", "-c1", "-W1", "-n", "-q", p.ipv4], { timeoutMs: 5000 });
    if (!r.ok) missing.push(`no answer from its port ${p.name} (${p.ipv4}) to a ping from ${LEVELS_ROUTER_NS}`);
  }
  for (const b of readLevelsConfig(node)?.backends ?? []) {
    if ((b.state ?? "active") !== "active") continue;
    if (s.health?.[b.name]?.state !== "up") missing.push(`backend ${b.name} not healthy (${s.health?.[b.name]?.state ?? "no check yet"})`);
    else if (!s.backends?.[b.name] || s.backends[b.name].mac === "unresolved") missing.push(`backend ${b.name}'s MAC unresolved`);
  }
  return missing;
}

/** ready: see levelsNodeMissing; running: the process has written a status file. */
export type LevelsNodeGoal = "ready" | "running";

/**
 * Starts a node on its current config (written first if there is none) and waits for the goal.
 * A running one is SIGKILLed first.
 */
export async function startLevelsNode(node: LevelsNodeName, goal: LevelsNodeGoal = "ready", timeoutMs = READY_TIMEOUT_MS): Promise<number> {
  await killLevelsNode(node);
  const paths = levelsPaths(node);
  ensureNodeDir(node);
  if (!existsSync(paths.config())) await writeLevelsConfig(node);
  const pid = await spawnAppliance(LEVELS_NODES[node].ns, paths);
  const deadline = Date.now() + timeoutMs;
  await waitForLevelsNode(node, "a status file", () => true, timeoutMs);
  if (goal === "running") return pid;
  for (;;) {
    if (!isAlive(pid)) throw levelsNodeError(node, `pid ${pid} exited while starting`);
    const missing = await levelsNodeMissing(node);
    if (missing.length === 0) return pid;
    if (Date.now() > deadline) throw levelsNodeError(node, `not ready after ${timeoutMs / 1000} s: ${missing.join("; ")}`);
    await sleep(200);
  }
}

/** SIGKILL (a node that dies, not one that stops), and waits (at most 2 s) until it is gone; returns when it was sent (ms), or undefined if none ran. */
export async function killLevelsNode(node: LevelsNodeName): Promise<number | undefined> {
  const pid = levelsNodePid(node);
  if (pid === undefined) return undefined;
  const at = Date.now();
  signal(pid, "SIGKILL");
  const deadline = Date.now() + 2000;
  while (isAlive(pid) && Date.now() < deadline) await sleep(5);
  if (isAlive(pid)) throw levelsNodeError(node, `pid ${pid} still lives 2 s after SIGKILL`);
  return at;
}

/** SIGTERM (SIGKILL after 3 s). */
export async function stopLevelsNode(node: LevelsNodeName): Promise<void> {
  const pid = levelsNodePid(node);
  if (pid) await stopPids([pid], 3000);
  rmSync(levelsPaths(node).pid(), { force: true });
}

const RELOAD_ACK_MS = 3000;

/**
 * Writes the node's config for a variant and sends SIGHUP; then waits (at most 3 s) for the node to
 * log a line about the reload. A line saying "refused" (or fail, error) is an error; no line at all
 * is taken as done.
 */
export async function reloadLevelsNode(node: LevelsNodeName, variant: LevelsVariant = {}, o: { validate?: boolean } = {}): Promise<LevelsApplianceConfig> {
  const pid = levelsNodePid(node);
  if (!pid) throw levelsNodeError(node, "cannot reload it: it is not running");
  const config = await writeLevelsConfig(node, variant, o);
  const logFile = levelsPaths(node).log();
  const from = existsSync(logFile) ? statSync(logFile).size : 0;
  signal(pid, "SIGHUP");
  const deadline = Date.now() + RELOAD_ACK_MS;
  while (Date.now() < deadline) {
    await sleep(100);
    const added = existsSync(logFile) ? readFileSync(logFile).subarray(from).toString("utf8") : "";
    const line = added.split("\n").find((l) => /reload/i.test(l));
    if (line && /refused|fail|error/i.test(line)) throw levelsNodeError(node, `it did not take the new ${levelsPaths(node).config()}: ${line.trim()}`);
    if (line) return config;
  }
  return config;
}

// ---------------------------------------------------------------------------------------------
// The router's ECMP route to site A

/**
 * Replaces the router's route to site A's VIP: next hops the given site A nodes' data addresses
 * (both: ECMP, hashed on L4; one: a plain route; none: no route, so the router answers the client
 * "unreachable").
 */
export async function ecmpNexthops(nodes: readonly LevelsSiteNodeName[]): Promise<void> {
  const bad = nodes.filter((n) => !LEVELS_SITES.siteA.nodes.includes(n));
  if (bad.length) throw new Error(`ecmpNexthops: ${bad.join(", ")} not in site A (${LEVELS_SITES.siteA.nodes.join(", ")})`);
  const route = `${LEVELS_VIPS.siteA}/32`;
  const dev = LEVELS_SEGMENTS.core.bridge;
  if (nodes.length === 0) {
    await tryRun(["ip", "-n", LEVELS_ROUTER_NS, "route", "del", route]);
    return;
  }
  const hops = nodes.length === 1
    ? ["via", levelsDataAddress(nodes[0]), "dev", dev]
    : nodes.flatMap((n) => ["nexthop", "via", levelsDataAddress(n), "dev", dev]);
  await run(["ip", "-n", LEVELS_ROUTER_NS, "route", "replace", route, ...hops]);
}

/** The site A nodes the router's route to site A's VIP leads to now. */
export async function readEcmpNexthops(): Promise<LevelsSiteNodeName[]> {
  const { stdout } = await run(["ip", "-n", LEVELS_ROUTER_NS, "-j", "route", "show", `${LEVELS_VIPS.siteA}/32`]);
  const routes = JSON.parse(stdout || "[]") as { gateway?: string; nexthops?: { gateway?: string }[] }[];
  const gateways = routes.flatMap((r) => (r.nexthops ?? [r]).map((h) => h.gateway)).filter((g): g is string => g !== undefined);
  return LEVELS_SITES.siteA.nodes.filter((n) => gateways.includes(levelsDataAddress(n)));
}

// ---------------------------------------------------------------------------------------------
// Captures

/** Every port of fsl-lv-rtr's bridges and its client link: where startLevelsCapture can listen. */
export function levelsRouterPorts(): string[] {
  return [
    LEVELS_CLIENT.routerPort,
    ...LEVELS_NODE_NAMES.flatMap((n) => [LEVELS_NODES[n].mgmt.routerPort, ...LEVELS_NODES[n].ports.map((p) => p.routerPort)]),
    ...LEVELS_SERVER_NAMES.map((s) => LEVELS_SERVERS[s].routerPort),
  ];
}

/**
 * tshark on one of fsl-lv-rtr's ports (levelsRouterPorts: "sa1-up" sees all that sa1's up port
 * sends and receives, "a1" all of server a1's traffic), writing <state>/levels-<name>.pcap, for at
 * most maxS seconds; read it back with readCapture.
 */
export function startLevelsCapture(routerPort: string, filter: string, name: string, maxS: number): Promise<Capture> {
  if (!levelsRouterPorts().includes(routerPort)) throw new Error(`startLevelsCapture: ${LEVELS_ROUTER_NS} has no port ${routerPort} (${levelsRouterPorts().join(", ")})`);
  return startCapture(LEVELS_ROUTER_NS, routerPort, filter, `levels-${name}`, maxS);
}

// ---------------------------------------------------------------------------------------------
// The servers

// nginx.ts keeps a server's files under <state>/<name>/ and reads nothing else of it but its name;
// the levels servers' names (a1 ... b2) never clash with the main lab's (s1 ... s4), so its readers
// serve them as they are. Its types know the main lab's names only: hence this one cast.
const nginxName = (s: LevelsServerName): LabServerName => s as string as LabServerName;

/** Writes the server's nginx config (nginx.ts: X-Server header, body and /big) and starts it in its namespace. */
export async function startLevelsNginx(name: LevelsServerName): Promise<number> {
  const s = LEVELS_SERVERS[name];
  const dir = statePath(name);
  ensureBigFile();
  for (const sub of ["", "tmp"]) mkdirSync(join(dir, sub), { recursive: true, mode: 0o755 });
  const singleProcess = (await privilege()).kind === "userns";
  const conf = join(dir, "nginx.conf");
  writeFileSync(conf, nginxConf({ name: nginxName(name), ns: s.ns, ipv4: s.ipv4, ipv6: "", routerPort: s.routerPort }, dir, bigFilePath(), singleProcess));
  writeFileSync(accessLogPath(nginxName(name)), "");
  await nsRun(s.ns, ["nginx", "-t", "-q", "-c", conf, "-p", dir]);
  await nsRun(s.ns, ["nginx", "-c", conf, "-p", dir]);
  const deadline = Date.now() + 5000;
  for (;;) {
    const pid = levelsNginxPid(name);
    if (pid) return pid;
    if (Date.now() > deadline) throw new Error(`nginx in ${s.ns} did not write its pid file within 5 s; error log:\n${readText(join(dir, "error.log"))}`);
    await sleep(50);
  }
}

export function levelsNginxPid(name: LevelsServerName): number | undefined {
  return nginxPid(nginxName(name));
}

/** The server's access log, parsed (nginx.ts's format: time, client address and port, connection, status, uri, bytes). */
export function levelsAccessLog(name: LevelsServerName): AccessLogEntry[] {
  return readAccessLog(nginxName(name));
}

// ---------------------------------------------------------------------------------------------
// Up

export interface LevelsUpOptions {
  /** Start the four appliances and wait until each is ready (default true). */
  appliances?: boolean;
  /** Leave a levels lab that failed to come up as it is, for a look (default: tear it down). */
  keepOnFailure?: boolean;
  log?: (message: string) => void;
}

export async function upLevels(o: LevelsUpOptions = {}): Promise<void> {
  const log = o.log ?? ((): void => {});
  const priv = await privilege();
  await downLevels({ log });
  try {
    ensureStateDir();
    if (priv.kind === "userns") {
      log("starting the user-namespace holder (not root)");
      await startHolder();
    }
    log(`levels lab: namespaces, bridges, links, addresses, routes (${LEVELS_NAMESPACES.join(" ")})`);
    await buildLevelsNetwork();
    log("levels lab: nginx in the servers");
    for (const s of LEVELS_SERVER_NAMES) await startLevelsNginx(s);
    log("levels lab: checking the kernel paths (client -> servers, site management -> servers, management <-> management)");
    await checkLevelsKernelPaths();
    for (const n of LEVELS_NODE_NAMES) await writeLevelsConfig(n);
    if (o.appliances ?? true) {
      log(`levels lab: starting the appliances ${LEVELS_NODE_NAMES.join(", ")} (logs: ${statePath("levels", "<node>", "appliance.log")})`);
      await Promise.all(LEVELS_NODE_NAMES.map((n) => startLevelsNode(n, "ready")));
    }
  } catch (e) {
    if (!o.keepOnFailure) {
      log("levels lab: failed: tearing it down");
      await downLevels({ log }).catch((d: Error) => log(`teardown after the failure failed too: ${d.message}`));
    }
    throw e;
  }
}

async function buildLevelsNetwork(): Promise<void> {
  const servers = LEVELS_SERVER_NAMES.map((s) => LEVELS_SERVERS[s]);
  const nodes = LEVELS_NODE_NAMES.map((n) => LEVELS_NODES[n]);
  for (const ns of LEVELS_NAMESPACES) {
    await run(["ip", "netns", "add", ns]);
    // before any link exists, so that every link inherits them: no reverse-path filter (DSR replies
    // reach the router from a server segment with a VIP as source), and IPv4 only (no router
    // solicitations or MLD reports on the appliances' ports); a server keeps IPv6 on lo, where
    // nginx listens on [::] too
    const server = servers.some((s) => s.ns === ns);
    await sysctl(ns, {
      "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
      ...(server ? {} : { "net.ipv6.conf.all.disable_ipv6": 1 }), "net.ipv6.conf.default.disable_ipv6": 1,
      "net.ipv4.ip_forward": ns === LEVELS_ROUTER_NS ? 1 : 0,
      ...(ns === LEVELS_ROUTER_NS ? { "net.ipv4.conf.all.send_redirects": 0, "net.ipv4.conf.default.send_redirects": 0, "net.ipv4.fib_multipath_hash_policy": 1 } : {}),
      // the kernel answers ARP only for its own port's addresses (never for a Flowswitch port's
      // neighbour, a server never for its VIPs), and asks from the asking port's address
      ...(ns === LEVELS_ROUTER_NS || ns === LEVELS_CLIENT_NS ? {} : { "net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.all.arp_announce": 2 }),
    });
  }

  const bridges = Object.values(LEVELS_SEGMENTS);
  const dataPorts = nodes.flatMap((n) => n.ports.map((p) => ({ node: n, port: p })));
  const bridgeOf = (segment: LevelsSegmentName): string => LEVELS_SEGMENTS[segment].bridge;
  const routerPorts = levelsRouterPorts();
  await ipBatch(LEVELS_ROUTER_NS, [
    "link set lo up",
    ...bridges.flatMap((b) => [`link add ${b.bridge} type bridge stp_state 0 mcast_snooping 0`, `link set ${b.bridge} mtu ${MTU}`]),
    veth(LEVELS_CLIENT.routerPort, "eth0", LEVELS_CLIENT_NS),
    ...nodes.map((n) => veth(n.mgmt.routerPort, "mgmt", n.ns)),
    ...dataPorts.map(({ node, port }) => veth(port.routerPort, port.name, node.ns)),
    ...servers.map((s) => veth(s.routerPort, "eth0", s.ns)),
    ...nodes.map((n) => `link set ${n.mgmt.routerPort} master ${bridgeOf("core")}`),
    ...dataPorts.map(({ port }) => `link set ${port.routerPort} master ${bridgeOf(port.segment)}`),
    ...servers.map((s) => `link set ${s.routerPort} master ${bridgeOf(s.site)}`),
    `addr add ${LEVELS_CLIENT.router}/${LEVELS_CLIENT.prefixLen} dev ${LEVELS_CLIENT.routerPort}`,
    ...bridges.map((b) => `addr add ${b.router}/${b.prefixLen} dev ${b.bridge}`),
    ...[...routerPorts, ...bridges.map((b) => b.bridge)].map((d) => `link set ${d} up`),
  ]);
  // the bridges know the appliances' ports and flood them no unknown unicast (see the top of this file)
  const fdb: string[] = [];
  for (const { node, port } of dataPorts) {
    fdb.push(`link set dev ${port.routerPort} flood off`, `fdb replace ${await interfaceMac(node.ns, port.name)} dev ${port.routerPort} master static`);
  }
  await ipBatch(LEVELS_ROUTER_NS, fdb, { tool: "bridge" });

  await ipBatch(LEVELS_CLIENT_NS, [
    "link set lo up",
    `addr add ${LEVELS_CLIENT.ipv4}/${LEVELS_CLIENT.prefixLen} dev eth0`, "link set eth0 up",
    `route add default via ${LEVELS_CLIENT.router} dev eth0`,
  ]);
  const core = LEVELS_SEGMENTS.core;
  for (const n of nodes) {
    await ipBatch(n.ns, [
      "link set lo up",
      `addr add ${n.mgmt.ipv4}/${core.prefixLen} dev mgmt`, "link set dev mgmt up",
      // "dev": the ports are called up and down, which ip would read as its keywords
      ...n.ports.map((p) => `link set dev ${p.name} up`),
      // health checks to the site's servers, and anything else the kernel sends, leave by the router
      `route add default via ${core.router} dev mgmt`,
    ]);
  }
  for (const s of servers) {
    const segment = LEVELS_SEGMENTS[s.site];
    await ipBatch(s.ns, [
      "link set lo up",
      // DSR: the site's VIPs are the server's own (on lo: arp_ignore keeps it from answering ARP for them)
      ...LEVELS_SITES[s.site].vips.map((v) => `addr add ${v}/32 dev lo`),
      `addr add ${s.ipv4}/${segment.prefixLen} dev eth0`, "link set eth0 up",
      // every reply leaves by the router, never through an appliance
      `route add default via ${segment.router} dev eth0`,
    ]);
    await sysctl(s.ns, { "net.ipv4.conf.eth0.arp_ignore": 1, "net.ipv4.conf.eth0.arp_announce": 2 });
  }
  // the VIPs: the system's to the system appliance, site A's to both of its appliances
  await ipBatch(LEVELS_ROUTER_NS, [`route add ${LEVELS_VIPS.system}/32 via ${levelsDataAddress("sys")} dev ${core.bridge}`]);
  await ecmpNexthops(LEVELS_SITES.siteA.nodes);

  await Promise.all([
    offloadsOff(LEVELS_CLIENT_NS, "eth0"),
    ...routerPorts.map((d) => offloadsOff(LEVELS_ROUTER_NS, d)),
    ...nodes.flatMap((n) => ["mgmt", ...n.ports.map((p) => p.name)].map((d) => offloadsOff(n.ns, d))),
    ...servers.map((s) => offloadsOff(s.ns, "eth0")),
  ]);
}

async function checkLevelsKernelPaths(): Promise<void> {
  const checks: Promise<void>[] = [];
  const curl = async (ns: string, url: string, extra: string[] = []): Promise<string> =>
    (await nsRun(ns, ["curl", "-sS", "--fail", "--max-time", "3", ...extra, url], { timeoutMs: 8000 })).stdout.trim();
  const expect = (what: string, got: () => Promise<string>, want: string): void => {
    checks.push(got().then((body) => {
      if (body !== want) throw new Error(`${what}: expected "${want}", got "${body}"`);
    }, (e: Error) => { throw new Error(`${what}: ${e.message}`); }));
  };
  for (const name of LEVELS_SERVER_NAMES) {
    const s = LEVELS_SERVERS[name];
    expect(`client -> ${name} directly (${s.ipv4}, routed by ${LEVELS_ROUTER_NS})`, () => curl(LEVELS_CLIENT_NS, `http://${s.ipv4}:${HTTP_PORT}/`), name);
    for (const n of LEVELS_SITES[s.site].nodes) {
      const mgmt = LEVELS_NODES[n].mgmt.ipv4;
      expect(`${n} mgmt (${mgmt}) -> ${name} /health`, () => curl(LEVELS_NODES[n].ns, `http://${s.ipv4}:${HTTP_PORT}/health`, ["--interface", mgmt]), "ok");
    }
  }
  // the levels socket's paths: each site node to the system and to its site's other nodes
  for (const site of Object.values(LEVELS_SITES)) {
    for (const n of site.nodes) {
      const from = LEVELS_NODES[n];
      for (const to of ["sys" as const, ...site.nodes.filter((x) => x !== n)]) {
        const dst = LEVELS_NODES[to].mgmt.ipv4;
        checks.push(run(["ip", "netns", "exec", from.ns, "ping", "-c1", "-W2", "-n", "-q", "-I", from.mgmt.ipv4, dst]).then(() => {}, (e: Error) => {
          throw new Error(`${n} mgmt -> ${to} mgmt (${from.mgmt.ipv4} -> ${dst}): ${e.message}`);
        }));
      }
    }
  }
  const results = await Promise.allSettled(checks);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => (r.reason as Error).message);
  if (failed.length) throw new Error(`the levels lab's kernel paths do not work:\n${failed.map((f) => `  ${f}`).join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// Down

function presentLevelsNamespaces(): Promise<string[]> {
  return presentNamespaces(LEVELS_NAMESPACES);
}

/** Stops everything in the levels lab and deletes its namespaces; the main lab is left alone (and so is the user-namespace holder). */
export async function downLevels(o: { log?: (message: string) => void } = {}): Promise<void> {
  const log = o.log ?? ((): void => {});
  const priv = await privilege();
  const running = LEVELS_NODE_NAMES.filter((n) => levelsNodePid(n) !== undefined);
  if (running.length) log(`levels lab: stopping the appliances ${running.join(", ")}`);
  await Promise.all(LEVELS_NODE_NAMES.map(stopLevelsNode));
  // nginx by its pid files, with its workers: also found when its namespace is gone already
  const started = LEVELS_SERVER_NAMES.map(levelsNginxPid).filter((p): p is number => p !== undefined).flatMap(withDescendants);
  if (started.length) await stopPids(started, 3000);
  if (priv.kind === "root" || holderPid() !== undefined) {
    const present = await presentLevelsNamespaces();
    const pids = (await Promise.all(present.map(namespacePids))).flat();
    if (pids.length) {
      log(`levels lab: stopping ${pids.length} process(es) left in its namespaces`);
      await stopPids(pids, 3000);
    }
    if (present.length) log(`levels lab: deleting namespaces ${present.join(" ")}`);
    for (const ns of present) await run(["ip", "netns", "del", ns]);
    const left = await presentLevelsNamespaces();
    if (left.length) throw new Error(`lab down: levels namespaces still present after deleting them: ${left.join(" ")}`);
  }
  for (const s of LEVELS_SERVER_NAMES) rmSync(statePath(s, "nginx.pid"), { force: true });
}

// ---------------------------------------------------------------------------------------------
// Status

export interface LevelsLabStatus {
  /** Every levels namespace exists. */
  up: boolean;
  namespaces: Record<string, boolean>;
  nodes: Record<LevelsNodeName, { pid: number | null; statusAgeS: number | null }>;
  nginx: Record<LevelsServerName, number | null>;
  /** The site A nodes the router's ECMP route leads to (null: no router). */
  ecmp: LevelsSiteNodeName[] | null;
}

export async function levelsStatus(): Promise<LevelsLabStatus> {
  const priv = await privilege();
  const present = priv.kind === "root" || holderPid() !== undefined ? await presentLevelsNamespaces() : [];
  const ageS = (t: number | undefined): number | null => (t === undefined ? null : Math.round((Date.now() - t) / 100) / 10);
  return {
    up: present.length === LEVELS_NAMESPACES.length,
    namespaces: Object.fromEntries(LEVELS_NAMESPACES.map((n) => [n, present.includes(n)])),
    nodes: Object.fromEntries(LEVELS_NODE_NAMES.map((n) => [n, { pid: levelsNodePid(n) ?? null, statusAgeS: ageS(readLevelsStatus(n)?.time) }])) as LevelsLabStatus["nodes"],
    nginx: Object.fromEntries(LEVELS_SERVER_NAMES.map((s) => [s, levelsNginxPid(s) ?? null])) as LevelsLabStatus["nginx"],
    ecmp: present.includes(LEVELS_ROUTER_NS) ? await readEcmpNexthops() : null,
  };
}

export async function levelsStatusText(): Promise<string> {
  const s = await levelsStatus();
  const made = Object.values(s.namespaces).filter(Boolean).length;
  const lines = [`levels lab (up --levels): ${s.up ? "up" : made ? `partial (${made} of ${LEVELS_NAMESPACES.length} namespaces)` : "not made"}; files ${join(stateDir(), "levels")}`];
  if (!made) return `${lines.join("\n")}\n`;
  for (const n of LEVELS_NODE_NAMES) {
    const node = s.nodes[n];
    const st = node.pid ? readLevelsStatus(n) : undefined; // a stopped node's last status is history
    const health = Object.entries(st?.health ?? {}).map(([b, h]) => `${b} ${h.state}`).join(", ");
    const flows = Object.entries(st?.counters?.services ?? {}).map(([svc, c]) => `${svc} newFlows ${c.newFlows}`).join(", ");
    lines.push(`  ${n} (${LEVELS_NODES[n].ns}): ${node.pid ? `running (pid ${node.pid}), status ${node.statusAgeS} s old` : "not running"}${health ? `; ${health}` : ""}${flows ? `; ${flows}` : ""}`);
  }
  lines.push(`  nginx: ${LEVELS_SERVER_NAMES.map((x) => `${x} ${s.nginx[x] ? "running" : "not running"}`).join(", ")}`);
  lines.push(`  route to ${LEVELS_VIPS.siteA}: ${s.ecmp === null ? "no router" : s.ecmp.length ? s.ecmp.join(" + ") : "none"}`);
  return `${lines.join("\n")}\n`;
}

function readJson(file: PathLike): unknown {
  try {
    return JSON.parse(readFileSync(file, "utf8")) as unknown;
  } catch {
    return undefined;
  }
}

function readText(file: string): string {
  return existsSync(file) ? readFileSync(file, "utf8").trim() : "(none)";
}
