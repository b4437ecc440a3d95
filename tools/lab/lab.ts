// Building, checking and tearing down the lab (names and addresses: topology.ts).
//
// up:   tears down whatever is left of an earlier lab, then builds the namespaces, links, addresses,
//       routes and sysctls, starts nginx in the servers, checks the kernel-only paths (client to each
//       server directly, management port to each server's /health), writes appliance.json, and
//       (unless told not to) starts the appliance and waits until it answers for its VIPs.
//       Asked for them (extraServers), it also makes the optional servers (s4), built like the
//       others but in no static configuration. Asked for the pair, it also makes fsl-app2 and the HA
//       link, puts the client-facing segment on a bridge, writes both nodes' configs and (unless told
//       not to) starts node a, waits until it is active, then node b, and waits until it is a synced
//       standby (pair.ts). Asked for the chain, it also makes the service-chain segment: fsl-app's
//       third data port `chain` on a bridge in fsl-rtr with two firewalls (fsl-fw1, fsl-fw2: one
//       interface each, forwarding back to the appliance, nftables counters) and an IDS (fsl-ids),
//       the denied client's second address in fsl-cli, nginx on the chained service's target port
//       too, and a config with the chained service, the chain and the ACL (chain.ts).
//       Any failure tears the lab down again (unless keepOnFailure).
// down: stops the appliance (SIGTERM, SIGKILL after 3 s) and the pair's node b, the agents,
//       keepalived and the probe's echoes, and every process left in a lab namespace, then deletes
//       the namespaces, optional ones included (their veths and bridges go with them). Works on a
//       partial lab.
//
// Offloads are off on every veth (checksum, TSO, GSO, GRO): the appliance reads and writes frames in
// user space, where a frame must be a real, wire-sized frame with its checksums filled in. Off
// everywhere, so that every engine the benchmark compares runs on the same links.
import { existsSync, rmSync } from "node:fs";
import { appliancePaths, appliancePid, haReady, readStatus, startAppliance, stopAppliance, writeApplianceConfig } from "./appliance.js";
import {
  ensureStateDir, holderPid, pidFromFile, privilege, run, startHolder, statePath, stateDir, stopPids, tryRun, withDescendants, type Privilege,
} from "./exec.js";
import { agentPaths, agentPid, killAgent } from "./agent.js";
import { nginxPid, startNginx } from "./nginx.js";
import { ipBatch, offloadsOff, presentNamespaces, sysctl, veth } from "./netns.js";
import { stopKeepalived } from "./keepalived.js";
import { stopProbeServers } from "./probe.js";
import { nodePaths, nodePid, readNodeStatus, startPair, stopNode, writePairConfig } from "./pair.js";
import { FIREWALLS, IDS, chainDeviceIpLines, chainDeviceSysctls, loadFirewallRuleset } from "./chain.js";
import {
  ALL_NAMESPACES, ALL_SERVERS, APPLIANCE, APPLIANCE2_NS, CHAIN, CHAIN_DEVICES, APPLIANCE_NS, CLIENT, CLIENT_NS, DIRECT_PORT, EXTRA_SERVERS, EXTRA_SERVER_NAMES, FRONT_BRIDGE, HA_LINK, MTU,
  NAMESPACES, NAT_REPLY_TABLE, PAIR, ROUTER, ROUTER_NS, SERVERS, VIPS, urlHost, type ExtraServerName, type LabServer, type LabServerName, type PairNode,
} from "./topology.js";

export interface UpOptions {
  /** Start the appliance and wait until it is ready (default true). */
  appliance?: boolean;
  /** Leave a lab that failed to come up as it is, for a look (default: tear it down). */
  keepOnFailure?: boolean;
  /** Progress messages (default: none). */
  log?: (message: string) => void;
  /** Optional servers to make as well (default none): in the network, with nginx, in no static config. */
  extraServers?: readonly ExtraServerName[];
  /**
   * The redundant pair (default false): fsl-app2 too, the HA link, the client-facing segment on a
   * bridge; `appliance` then starts both nodes (a active, b a synced standby).
   */
  pair?: boolean;
  /**
   * The service-chain segment (default false; not with pair): fsl-app's `chain` port, the firewalls
   * fsl-fw1 and fsl-fw2, the IDS fsl-ids, CHAIN.deniedClient on fsl-cli, nginx on CHAIN.targetPort
   * too, and the chained service, chain and ACL in appliance.json.
   */
  chain?: boolean;
}

export async function up(o: UpOptions = {}): Promise<void> {
  const log = o.log ?? ((): void => {});
  const priv = await privilege();
  for (const x of o.extraServers ?? []) {
    if (!EXTRA_SERVER_NAMES.includes(x)) throw new Error(`lab up: no optional server named ${x} (there is ${EXTRA_SERVER_NAMES.join(", ")})`);
  }
  const servers = [...SERVERS, ...EXTRA_SERVERS.filter((s) => o.extraServers?.includes(s.name))];
  const chain = o.chain ?? false;
  if (chain && o.pair) throw new Error("lab up: the chain segment is for a single appliance (not with the pair)");
  await down({ log });
  try {
    ensureStateDir();
    if (priv.kind === "userns") {
      log("starting the user-namespace holder (not root)");
      await startHolder();
    }
    const pair = o.pair ?? false;
    const extras = [...servers.slice(SERVERS.length).map((s) => s.name), ...(pair ? [APPLIANCE2_NS, "the HA link"] : []), ...(chain ? ["the chain segment"] : [])];
    log(`namespaces, links, addresses, routes${extras.length ? ` (with ${extras.join(", ")})` : ""}`);
    await buildNetwork(servers, pair);
    if (chain) await buildChain();
    log(`nginx in the servers${chain ? ` (also on port ${CHAIN.targetPort})` : ""}`);
    for (const s of servers) await startNginx(s.name, chain ? [CHAIN.targetPort] : []);
    log(`checking the kernel paths (client -> servers, management -> servers${pair ? ", node a <-> node b on both HA links" : ""}${chain ? ", the chain devices to each other" : ""})`);
    await checkKernelPaths(servers, pair);
    if (chain) await checkChainPaths();
    if (pair) {
      await writePairConfig();
      if (o.appliance ?? true) {
        log(`starting the pair: node a (log: ${nodePaths("a").log()}) until active, then node b (log: ${nodePaths("b").log()}) until it is a synced standby`);
        await startPair();
      }
    } else {
      await writeApplianceConfig({ chain });
      if (o.appliance ?? true) {
        log(`starting the appliance (log: ${appliancePaths.log()})`);
        await startAppliance();
      }
    }
  } catch (e) {
    if (!o.keepOnFailure) {
      log("failed: tearing the lab down");
      await down({ log }).catch((d: Error) => log(`teardown after the failure failed too: ${d.message}`));
    }
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// The network

async function buildNetwork(servers: readonly LabServer<LabServerName>[], pair: boolean): Promise<void> {
  const nodes: readonly PairNode[] = pair ? [PAIR.a, PAIR.b] : [PAIR.a];
  const extraNs = [...servers.map((s) => s.ns), ...nodes.map((n) => n.ns)].filter((ns) => !NAMESPACES.includes(ns));
  for (const ns of [...NAMESPACES, ...extraNs]) {
    await run(["ip", "netns", "add", ns]);
    // before any link exists, so that every link inherits them: no DAD delay, no reverse-path filter
    // (DSR replies reach the router from the server segment with the VIP, a front-subnet address, as source)
    await sysctl(ns, {
      "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
      "net.ipv6.conf.all.accept_dad": 0, "net.ipv6.conf.default.accept_dad": 0,
      "net.ipv6.conf.all.accept_ra": 0, "net.ipv6.conf.default.accept_ra": 0,
      "net.ipv4.ip_forward": 0, "net.ipv6.conf.all.forwarding": 0,
    });
  }

  // The router's front addresses: on the appliance's port, or (pair) on a bridge both fronts hang on.
  const frontDev = pair ? FRONT_BRIDGE : APPLIANCE.routerPorts.front;
  const bridge = (name: string): string[] => [`link add ${name} type bridge stp_state 0 mcast_snooping 0`, `link set ${name} mtu ${MTU}`];
  await ipBatch(ROUTER_NS, [
    "link set lo up",
    ...bridge("br0"),
    ...(pair ? bridge(FRONT_BRIDGE) : []),
    veth("cli", "eth0", CLIENT_NS),
    ...nodes.flatMap((n) => [veth(n.routerPorts.front, "front", n.ns), veth(n.routerPorts.back, "back", n.ns), veth(n.routerPorts.mgmt, "mgmt", n.ns)]),
    ...servers.map((s) => veth(s.routerPort, "eth0", s.ns)),
    ...[...nodes.flatMap((n) => [n.routerPorts.back, n.routerPorts.mgmt]), ...servers.map((s) => s.routerPort)].map((d) => `link set ${d} master br0`),
    ...(pair ? nodes.map((n) => `link set ${n.routerPorts.front} master ${FRONT_BRIDGE}`) : []),
  ]);
  await sysctl(ROUTER_NS, { "net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1, "net.ipv4.conf.all.send_redirects": 0 });
  // The appliance's data ports: no IPv6 (no router or neighbour solicitations from the kernel), no
  // ARP answers from the kernel for addresses that are not on the asking port.
  for (const n of nodes) {
    await sysctl(n.ns, {
      "net.ipv6.conf.front.disable_ipv6": 1, "net.ipv6.conf.back.disable_ipv6": 1,
      "net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.all.arp_announce": 2,
    });
  }
  for (const s of servers) {
    await sysctl(s.ns, {
      "net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.eth0.arp_ignore": 1,
      "net.ipv4.conf.all.arp_announce": 2, "net.ipv4.conf.eth0.arp_announce": 2,
    });
  }

  const routerPorts = ["cli", ...nodes.flatMap((n) => [n.routerPorts.front, n.routerPorts.back, n.routerPorts.mgmt]), ...servers.map((s) => s.routerPort)];
  await ipBatch(ROUTER_NS, [
    `addr add ${ROUTER.cli.ipv4}/24 dev cli`, `addr add ${ROUTER.cli.ipv6}/64 dev cli nodad`,
    `addr add ${ROUTER.app.ipv4}/24 dev ${frontDev}`, `addr add ${ROUTER.app.ipv6}/64 dev ${frontDev} nodad`,
    `addr add ${ROUTER.br0.ipv4}/24 dev br0`, `addr add ${ROUTER.br0.ipv6}/64 dev br0 nodad`,
    ...[...routerPorts, "br0", ...(pair ? [FRONT_BRIDGE] : [])].map((d) => `link set ${d} up`),
  ]);
  await ipBatch(CLIENT_NS, [
    "link set lo up",
    `addr add ${CLIENT.ipv4}/24 dev eth0`, `addr add ${CLIENT.ipv6}/64 dev eth0 nodad`,
    "link set eth0 up",
    `route add default via ${ROUTER.cli.ipv4} dev eth0`, `route add default via ${ROUTER.cli.ipv6} dev eth0`,
  ]);
  for (const n of nodes) {
    await ipBatch(n.ns, [
      "link set lo up",
      `addr add ${n.mgmt.ipv4}/24 dev mgmt`, `addr add ${n.mgmt.ipv6}/64 dev mgmt nodad`,
      "link set front up", "link set back up", "link set mgmt up",
    ]);
  }
  if (pair) {
    // the HA link: a veth of their own between the two appliances, with kernel addresses (heartbeats, sync)
    await ipBatch(PAIR.a.ns, [`link add ${HA_LINK.dev} mtu ${MTU} type veth peer name ${HA_LINK.dev} mtu ${MTU} netns ${PAIR.b.ns}`]);
    for (const n of nodes) await ipBatch(n.ns, [`addr add ${n.haLink}/${HA_LINK.prefixLen} dev ${HA_LINK.dev}`, `link set ${HA_LINK.dev} up`]);
  }
  for (const s of servers) {
    await ipBatch(s.ns, [
      "link set lo up",
      // DSR: the VIPs are the server's own (on lo: arp_ignore keeps it from answering ARP for them)
      `addr add ${VIPS.dsr4}/32 dev lo`, `addr add ${VIPS.dsr6}/128 dev lo`,
      `addr add ${s.ipv4}/24 dev eth0`, `addr add ${s.ipv6}/64 dev eth0 nodad`,
      "link set eth0 up",
      // DSR replies (source: the VIP) and the kernel-only path go via the router ...
      `route add default via ${ROUTER.br0.ipv4} dev eth0`, `route add default via ${ROUTER.br0.ipv6} dev eth0`,
      // ... NAT replies (source: the server's own address) go back through the appliance; the
      // segment stays direct (health checks from the management port), and so do replies from the
      // direct port, which the kernel-only path uses.
      `rule add pref 100 from ${s.ipv4} ipproto tcp sport ${DIRECT_PORT} lookup main`,
      `rule add pref 110 from ${s.ipv4} lookup ${NAT_REPLY_TABLE}`,
      `route add 10.77.3.0/24 dev eth0 src ${s.ipv4} table ${NAT_REPLY_TABLE}`,
      `route add default via ${APPLIANCE.back.ipv4} dev eth0 table ${NAT_REPLY_TABLE}`,
    ]);
    await ipBatch(s.ns, [
      `rule add pref 100 from ${s.ipv6} ipproto tcp sport ${DIRECT_PORT} lookup main`,
      `rule add pref 110 from ${s.ipv6} lookup ${NAT_REPLY_TABLE}`,
      `route add fd77:3::/64 dev eth0 table ${NAT_REPLY_TABLE}`,
      `route add default via ${APPLIANCE.back.ipv6} dev eth0 table ${NAT_REPLY_TABLE}`,
    ], { family: "-6" });
  }

  await Promise.all([
    offloadsOff(CLIENT_NS, "eth0"),
    ...routerPorts.map((d) => offloadsOff(ROUTER_NS, d)),
    ...nodes.flatMap((n) => [...["front", "back", "mgmt"], ...(pair ? [HA_LINK.dev] : [])].map((d) => offloadsOff(n.ns, d))),
    ...servers.map((s) => offloadsOff(s.ns, "eth0")),
  ]);
}

/**
 * The chain segment (after buildNetwork): a bridge in fsl-rtr, fsl-app's `chain` veth and one veth
 * per chain device on it, the devices' addresses, routes, sysctls and (firewalls) nftables, and
 * the denied client's second address on fsl-cli.
 */
async function buildChain(): Promise<void> {
  for (const d of CHAIN_DEVICES) {
    await run(["ip", "netns", "add", d.ns]);
    await sysctl(d.ns, {
      "net.ipv4.conf.all.rp_filter": 0, "net.ipv4.conf.default.rp_filter": 0,
      // the segment carries IPv4 only: no router solicitations or MLD reports among the copies
      "net.ipv6.conf.all.disable_ipv6": 1, "net.ipv6.conf.default.disable_ipv6": 1,
    });
  }
  await ipBatch(ROUTER_NS, [
    `link add ${CHAIN.bridge} type bridge stp_state 0 mcast_snooping 0`, `link set ${CHAIN.bridge} mtu ${MTU}`,
    veth(CHAIN.routerPort, "chain", APPLIANCE_NS),
    ...CHAIN_DEVICES.map((d) => veth(d.routerPort, "eth0", d.ns)),
    ...[CHAIN.routerPort, ...CHAIN_DEVICES.map((d) => d.routerPort)].flatMap((p) => [`link set ${p} master ${CHAIN.bridge}`, `link set ${p} up`]),
    `link set ${CHAIN.bridge} up`,
  ]);
  await sysctl(APPLIANCE_NS, { "net.ipv6.conf.chain.disable_ipv6": 1 });
  await ipBatch(APPLIANCE_NS, ["link set chain up"]);
  for (const d of CHAIN_DEVICES) {
    await ipBatch(d.ns, chainDeviceIpLines(d));
    await sysctl(d.ns, chainDeviceSysctls(d));
  }
  for (const f of FIREWALLS) await loadFirewallRuleset(f.name);
  await ipBatch(CLIENT_NS, [`addr add ${CHAIN.deniedClient}/24 dev eth0`]);
  await Promise.all([
    offloadsOff(APPLIANCE_NS, "chain"),
    ...[CHAIN.routerPort, ...CHAIN_DEVICES.map((d) => d.routerPort)].map((p) => offloadsOff(ROUTER_NS, p)),
    ...CHAIN_DEVICES.map((d) => offloadsOff(d.ns, "eth0")),
  ]);
}

/** The chain segment switches: each firewall reaches the IDS and the other firewall. */
async function checkChainPaths(): Promise<void> {
  const failed: string[] = [];
  for (const f of FIREWALLS) {
    for (const to of CHAIN_DEVICES.filter((d) => d !== f && (d === IDS || d.role === "firewall"))) {
      const r = await tryRun(["ip", "netns", "exec", f.ns, "ping", "-c1", "-W2", "-n", "-q", to.ipv4]);
      if (!r.ok) failed.push(`${f.ns} -> ${to.ns} (${to.ipv4}) across ${CHAIN.bridge} in ${ROUTER_NS}: ${r.error?.message ?? ""}`);
    }
  }
  if (failed.length) throw new Error(`the chain segment does not work:\n${failed.map((f) => `  ${f}`).join("\n")}`);
}

/** curl in a namespace; returns the body, or throws naming the command and what came back. */
export async function curlText(ns: string, url: string, extra: string[] = [], timeoutS = 3): Promise<string> {
  const { stdout } = await run(["ip", "netns", "exec", ns, "curl", "-sS", "--fail", "--max-time", String(timeoutS), ...extra, url], { timeoutMs: (timeoutS + 5) * 1000 });
  return stdout;
}

async function checkKernelPaths(servers: readonly LabServer<LabServerName>[], pair: boolean): Promise<void> {
  const checks: Promise<void>[] = [];
  const expect = (what: string, got: Promise<string>, want: string): void => {
    checks.push(got.then((body) => {
      if (body.trim() !== want) throw new Error(`${what}: expected "${want}", got "${body.trim()}"`);
    }, (e: Error) => { throw new Error(`${what}: ${e.message}`); }));
  };
  for (const s of servers) {
    for (const addr of [s.ipv4, s.ipv6]) {
      expect(`client -> ${s.name} directly (${addr} port ${DIRECT_PORT}, routed by ${ROUTER_NS})`, curlText(CLIENT_NS, `http://${urlHost(addr)}:${DIRECT_PORT}/`), s.name);
    }
    for (const n of pair ? [PAIR.a, PAIR.b] : [PAIR.a]) {
      expect(`${n.ns} mgmt -> ${s.name} /health`, curlText(n.ns, `http://${urlHost(s.ipv4)}/health`, ["--interface", n.mgmt.ipv4]), "ok");
      expect(`${n.ns} mgmt -> ${s.name} /health over IPv6`, curlText(n.ns, `http://${urlHost(s.ipv6)}/health`, ["--interface", n.mgmt.ipv6]), "ok");
    }
  }
  if (pair) {
    // both heartbeat paths: the HA link, and the management addresses across br0
    for (const [from, to] of [[PAIR.a, PAIR.b], [PAIR.b, PAIR.a]] as const) {
      for (const [link, src, dst] of [["HA link", from.haLink, to.haLink], ["data link", from.mgmt.ipv4, to.mgmt.ipv4]] as const) {
        checks.push(run(["ip", "netns", "exec", from.ns, "ping", "-c1", "-W2", "-n", "-q", "-I", src, dst]).then(() => {}, (e: Error) => {
          throw new Error(`${from.ns} -> ${to.ns} over the ${link} (${src} -> ${dst}): ${e.message}`);
        }));
      }
    }
  }
  const results = await Promise.allSettled(checks);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => (r.reason as Error).message);
  if (failed.length) throw new Error(`the lab's kernel paths do not work:\n${failed.map((f) => `  ${f}`).join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// Teardown

/** The lab namespaces that exist now. */
function existingNamespaces(): Promise<string[]> {
  return presentNamespaces(ALL_NAMESPACES);
}

/** Pids of every process in a lab namespace (nginx, the appliance, haproxy, agents, a test's curl, wrk or tshark). */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await tryRun(["ip", "netns", "pids", ns]);
  return r.ok ? r.stdout.split("\n").map(Number).filter((p) => Number.isInteger(p) && p > 0) : [];
}

export async function down(o: { log?: (message: string) => void } = {}): Promise<void> {
  const log = o.log ?? ((): void => {});
  const priv = await privilege();
  if (appliancePid()) log("stopping the appliance");
  await stopAppliance();
  if (nodePid("b")) log("stopping the pair's node b");
  await stopNode("b");
  await stopKeepalived({ kernel: false });
  await stopProbeServers();
  // Agents at once (SIGKILL): SIGTERM would make each drain and leave first, for an appliance that is gone.
  for (const s of ALL_SERVERS) await killAgent(s.name);
  // Processes the lab started, by their pid files, with their children: also found when their
  // namespace is gone already (deleted by hand, or a half-finished teardown).
  const started = [...ALL_SERVERS.map((s) => statePath(s.name, "nginx.pid")), statePath("haproxy.pid")]
    .map(pidFromFile).filter((p): p is number => p !== undefined).flatMap(withDescendants);
  if (started.length) await stopPids(started, 3000);
  const reachable = priv.kind === "root" || holderPid() !== undefined;
  if (reachable) {
    const present = await existingNamespaces();
    const pids = (await Promise.all(present.map(namespacePids))).flat();
    if (pids.length) {
      log(`stopping ${pids.length} process(es) left in the lab namespaces`);
      await stopPids(pids, 3000);
    }
    if (present.length) log(`deleting namespaces ${present.join(" ")}`);
    for (const ns of present) await run(["ip", "netns", "del", ns]);
    const left = await existingNamespaces();
    if (left.length) throw new Error(`lab down: namespaces still present after deleting them: ${left.join(" ")}`);
  }
  const holder = holderPid();
  if (holder) {
    log("stopping the user-namespace holder");
    await stopPids([holder], 1000);
  }
  for (const f of ["holder.pid", "appliance.pid", "appliance-b.pid", "haproxy.pid", ...ALL_SERVERS.map((s) => `${s.name}/nginx.pid`)]) rmSync(statePath(f), { force: true });
}

// ---------------------------------------------------------------------------------------------
// Status

export interface LabStatus {
  stateDir: string;
  privilege: Privilege["kind"];
  namespaces: Record<string, boolean>;
  /** ns -> interface -> "UP" | "DOWN" | ... (operational state) */
  interfaces: Record<string, Record<string, string>>;
  /** Per server: the three always, an optional one (s4) when its namespace exists. */
  nginx: Record<string, number | null>;
  /** flowswitch-agent per server that has one running (discovery tests). */
  agents: Record<string, number>;
  appliance: { pid: number | null; statusAgeS: number | null };
  /** A pair lab (fsl-app2 exists): node b's process, and each node's HA role as its status says. */
  pair?: { b: { pid: number | null; statusAgeS: number | null }; roles: Record<"a" | "b", string | null> };
  /** The lab is complete: every namespace, every interface up, every nginx running (the optional servers: those made). */
  networkUp: boolean;
}

const EXPECTED_INTERFACES: Record<string, string[]> = {
  [CLIENT_NS]: ["eth0"],
  [ROUTER_NS]: ["cli", "app", "app-back", "app-mgmt", ...SERVERS.map((s) => s.routerPort), "br0"],
  [APPLIANCE_NS]: ["front", "back", "mgmt"],
  ...Object.fromEntries(SERVERS.map((s) => [s.ns, ["eth0"]])),
};

/**
 * What to expect of the namespaces present: the base lab, plus each optional server that was made
 * (its eth0, its router port), plus the pair's parts if fsl-app2 was made.
 */
function expectedInterfaces(present: readonly string[]): Record<string, string[]> {
  const extras = EXTRA_SERVERS.filter((s) => present.includes(s.ns));
  const pair = present.includes(APPLIANCE2_NS);
  const chain = CHAIN_DEVICES.filter((d) => present.includes(d.ns));
  const rp = PAIR.b.routerPorts;
  return {
    ...EXPECTED_INTERFACES,
    [ROUTER_NS]: [...EXPECTED_INTERFACES[ROUTER_NS], ...extras.map((s) => s.routerPort), ...(pair ? [rp.front, rp.back, rp.mgmt, FRONT_BRIDGE] : []),
      ...(chain.length ? [CHAIN.routerPort, ...chain.map((d) => d.routerPort), CHAIN.bridge] : [])],
    ...Object.fromEntries(extras.map((s) => [s.ns, ["eth0"]])),
    ...(pair ? { [APPLIANCE_NS]: [...EXPECTED_INTERFACES[APPLIANCE_NS], HA_LINK.dev], [APPLIANCE2_NS]: ["front", "back", "mgmt", HA_LINK.dev] } : {}),
    ...(chain.length ? { [APPLIANCE_NS]: [...EXPECTED_INTERFACES[APPLIANCE_NS], "chain"] } : {}),
    ...Object.fromEntries(chain.map((d) => [d.ns, ["eth0"]])),
  };
}

export async function status(): Promise<LabStatus> {
  const priv = await privilege();
  const reachable = priv.kind === "root" || holderPid() !== undefined;
  const present = reachable ? await existingNamespaces() : [];
  const interfaces: LabStatus["interfaces"] = {};
  for (const ns of present) {
    const r = await tryRun(["ip", "-n", ns, "-j", "link", "show"]);
    const links = r.ok ? (JSON.parse(r.stdout) as { ifname: string; operstate: string; flags: string[] }[]) : [];
    interfaces[ns] = Object.fromEntries(links.filter((l) => l.ifname !== "lo").map((l) => [l.ifname, l.flags.includes("UP") ? (l.operstate === "UNKNOWN" ? "UP" : l.operstate) : "DOWN"]));
  }
  const servers = ALL_SERVERS.filter((s) => SERVERS.includes(s as LabServer) || present.includes(s.ns));
  const nginx = Object.fromEntries(servers.map((s) => [s.name, nginxPid(s.name) ?? null]));
  const agents = Object.fromEntries(ALL_SERVERS.map((s) => [s.name, agentPid(s.name)]).filter(([, p]) => p !== undefined)) as Record<string, number>;
  const st = readStatus();
  const allIfUp = Object.entries(expectedInterfaces(present)).every(([ns, devs]) => devs.every((d) => interfaces[ns]?.[d] === "UP"));
  const ageS = (t: number | undefined): number | null => (t === undefined ? null : Math.round((Date.now() - t) / 100) / 10);
  const pair = present.includes(APPLIANCE2_NS)
    ? { b: { pid: nodePid("b") ?? null, statusAgeS: ageS(readNodeStatus("b")?.time) }, roles: { a: readNodeStatus("a")?.ha?.role ?? null, b: readNodeStatus("b")?.ha?.role ?? null } }
    : undefined;
  return {
    stateDir: stateDir(),
    privilege: priv.kind,
    namespaces: Object.fromEntries(ALL_NAMESPACES.map((n) => [n, present.includes(n)])),
    interfaces,
    nginx,
    agents,
    appliance: { pid: appliancePid() ?? null, statusAgeS: ageS(st?.time) },
    ...(pair ? { pair } : {}),
    networkUp: NAMESPACES.every((n) => present.includes(n)) && allIfUp && Object.values(nginx).every((p) => p !== null),
  };
}

export async function statusText(): Promise<string> {
  const s = await status();
  const lines: string[] = [`lab state directory: ${s.stateDir} (${s.privilege === "root" ? "root" : "user namespace"})`];
  lines.push(`network: ${s.networkUp ? "up" : "not (completely) up"}`);
  const expected = expectedInterfaces(Object.keys(s.namespaces).filter((n) => s.namespaces[n]));
  for (const ns of ALL_NAMESPACES) {
    if (!s.namespaces[ns]) {
      const option = ns === APPLIANCE2_NS ? "--pair" : CHAIN_DEVICES.some((d) => d.ns === ns) ? "--chain" : "--extra";
      lines.push(`  ${ns}: ${NAMESPACES.includes(ns) ? "missing" : `not made (optional: up ${option})`}`);
      continue;
    }
    const want = expected[ns];
    const shown = want.map((d) => `${d} ${s.interfaces[ns]?.[d] ?? "missing"}`).join(", ");
    lines.push(`  ${ns}: ${shown}`);
  }
  for (const [name, pid] of Object.entries(s.nginx)) lines.push(`nginx ${name}: ${pid ? `running (pid ${pid})` : "not running"}`);
  for (const [name, pid] of Object.entries(s.agents)) lines.push(`flowswitch-agent ${name}: running (pid ${pid}), log ${agentPaths(name as LabServerName).log}`);
  lines.push(`appliance${s.pair ? " (node a)" : ""}: ${s.appliance.pid ? `running (pid ${s.appliance.pid})` : "not running"}${s.pair ? `, role ${s.pair.roles.a ?? "unknown"}` : ""}, log ${appliancePaths.log()}`);
  if (s.pair) {
    lines.push(`appliance (node b): ${s.pair.b.pid ? `running (pid ${s.pair.b.pid})` : "not running"}, role ${s.pair.roles.b ?? "unknown"}, log ${nodePaths("b").log()}`);
    for (const n of ["a", "b"] as const) {
      const h = readNodeStatus(n)?.ha;
      if (h) {
        const rejected = Object.entries(h.election?.rejected ?? {}).filter(([, k]) => k > 0).map(([r, k]) => `${r} ${k}`).join(", ");
        lines.push(`  node ${n}: ${h.role}${haReady(readNodeStatus(n)) ? ", holds the flow state" : ""}; peer ${h.peer ? `${h.peer.node} ${h.peer.alive ? h.peer.state : "dead"}` : "never heard"}; ` +
          `${h.election ? `takeovers ${h.election.takeovers}, handovers ${h.election.handovers}, preempted ${h.election.preempted}, heartbeats refused: ${rejected || "none"}` : "no election yet"}`);
      }
    }
  }
  const st = readStatus();
  if (st) {
    lines.push(`status.json (${s.appliance.statusAgeS} s old): engines ${st.engines}`);
    for (const [b, h] of Object.entries(st.health ?? {})) {
      const c = st.counters?.backends?.[b];
      lines.push(`  ${b}: ${h.state}${h.reason ? ` (${h.reason})` : ""}${c ? `, newFlows ${c.newFlows}, packets ${c.packets}` : ""}`);
    }
    const d = st.discovery;
    if (d) {
      const rejected = Object.entries(d.stats.rejected).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`).join(", ");
      lines.push(`  discovery: ${d.stats.accepted} accepted, rejected: ${rejected || "none"}, ${d.flows.length} advertised flow rule(s)`);
      for (const e of d.endSystems) {
        const be = st.backends?.[`es-${e.id}`];
        const c = st.counters?.backends?.[`es-${e.id}`];
        lines.push(`  end system ${e.id} (${e.addresses.join(", ")}): ${e.state}, heard ${((Date.now() - e.lastSeen) / 1000).toFixed(1)} s ago${be ? `, backend es-${e.id} ${be.state}` : ""}${c ? `, newFlows ${c.newFlows}` : ""}`);
      }
    }
    const c = st.counters;
    if (c) lines.push(`  frames: rx ${c.rx}, tx ${c.tx}, punt ${c.punt}, drop ${c.drop}${Object.keys(c.drops ?? {}).length ? ` (${Object.entries(c.drops).map(([k, v]) => `${k} ${v}`).join(", ")})` : ""}`);
  } else {
    lines.push(`status.json: ${existsSync(appliancePaths.status()) ? "unreadable" : "none"}`);
  }
  return `${lines.join("\n")}\n`;
}
