// Building, checking and tearing down the lab (names and addresses: topology.ts).
//
// up:   tears down whatever is left of an earlier lab, then builds the namespaces, links, addresses,
//       routes and sysctls, starts nginx in the servers, checks the kernel-only paths (client to each
//       server directly, management port to each server's /health), writes appliance.json, and
//       (unless told not to) starts the appliance and waits until it answers for its VIPs.
//       Any failure tears the lab down again (unless keepOnFailure).
// down: stops the appliance (SIGTERM, SIGKILL after 3 s) and every process left in a lab namespace,
//       then deletes the namespaces (their veths and bridge go with them). Works on a partial lab.
//
// Offloads are off on every veth (checksum, TSO, GSO, GRO): the appliance reads and writes frames in
// user space, where a frame must be a real, wire-sized frame with its checksums filled in. Off
// everywhere, so that every engine the benchmark compares runs on the same links.
import { existsSync, rmSync } from "node:fs";
import { appliancePaths, appliancePid, readStatus, startAppliance, stopAppliance, writeApplianceConfig } from "./appliance.js";
import {
  CommandError, ensureStateDir, holderPid, pidFromFile, privilege, run, startHolder, statePath, stateDir, stopPids, tryRun, withDescendants, type Privilege,
} from "./exec.js";
import { nginxPid, startNginx } from "./nginx.js";
import {
  APPLIANCE, APPLIANCE_NS, CLIENT, CLIENT_NS, DIRECT_PORT, MTU, NAMESPACES, NAT_REPLY_TABLE, ROUTER, ROUTER_NS, SERVERS, VIPS, urlHost,
} from "./topology.js";

export interface UpOptions {
  /** Start the appliance and wait until it is ready (default true). */
  appliance?: boolean;
  /** Leave a lab that failed to come up as it is, for a look (default: tear it down). */
  keepOnFailure?: boolean;
  /** Progress messages (default: none). */
  log?: (message: string) => void;
}

export async function up(o: UpOptions = {}): Promise<void> {
  const log = o.log ?? ((): void => {});
  const priv = await privilege();
  await down({ log });
  try {
    ensureStateDir();
    if (priv.kind === "userns") {
      log("starting the user-namespace holder (not root)");
      await startHolder();
    }
    log("namespaces, links, addresses, routes");
    await buildNetwork();
    log("nginx in the servers");
    for (const s of SERVERS) await startNginx(s.name);
    log("checking the kernel paths (client -> servers, management -> servers)");
    await checkKernelPaths();
    await writeApplianceConfig();
    if (o.appliance ?? true) {
      log(`starting the appliance (log: ${appliancePaths.log()})`);
      await startAppliance();
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

/** ip -n NS -batch -: one command per line; a failure names the line. */
async function ipBatch(ns: string, lines: string[], family: "-4" | "-6" | "" = ""): Promise<void> {
  const argv = ["ip", ...(family ? [family] : []), "-n", ns, "-batch", "-"];
  try {
    await run(argv, { input: `${lines.join("\n")}\n` });
  } catch (e) {
    const line = /Command failed -:(\d+)/.exec((e as CommandError).stderr ?? "");
    if (line) (e as Error).message += `\n  the failed line: ip ${family ? `${family} ` : ""}-n ${ns} ${lines[Number(line[1]) - 1]}`;
    throw e;
  }
}

async function sysctl(ns: string, settings: Record<string, string | number>): Promise<void> {
  await run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
}

/** A veth pair from `dev` in `ns` to `peer` in `peerNs`, both ends created in place (nothing in the host's namespace). */
function veth(dev: string, peer: string, peerNs: string): string {
  return `link add ${dev} mtu ${MTU} type veth peer name ${peer} mtu ${MTU} netns ${peerNs}`;
}

async function buildNetwork(): Promise<void> {
  for (const ns of NAMESPACES) {
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

  const rp = APPLIANCE.routerPorts;
  await ipBatch(ROUTER_NS, [
    "link set lo up",
    "link add br0 type bridge stp_state 0 mcast_snooping 0",
    `link set br0 mtu ${MTU}`,
    veth("cli", "eth0", CLIENT_NS),
    veth(rp.front, "front", APPLIANCE_NS),
    veth(rp.back, "back", APPLIANCE_NS),
    veth(rp.mgmt, "mgmt", APPLIANCE_NS),
    ...SERVERS.map((s) => veth(s.routerPort, "eth0", s.ns)),
    ...[rp.back, rp.mgmt, ...SERVERS.map((s) => s.routerPort)].map((d) => `link set ${d} master br0`),
  ]);
  await sysctl(ROUTER_NS, { "net.ipv4.ip_forward": 1, "net.ipv6.conf.all.forwarding": 1, "net.ipv4.conf.all.send_redirects": 0 });
  // The appliance's data ports: no IPv6 (no router or neighbour solicitations from the kernel), no
  // ARP answers from the kernel for addresses that are not on the asking port.
  await sysctl(APPLIANCE_NS, {
    "net.ipv6.conf.front.disable_ipv6": 1, "net.ipv6.conf.back.disable_ipv6": 1,
    "net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.all.arp_announce": 2,
  });
  for (const s of SERVERS) {
    await sysctl(s.ns, {
      "net.ipv4.conf.all.arp_ignore": 1, "net.ipv4.conf.eth0.arp_ignore": 1,
      "net.ipv4.conf.all.arp_announce": 2, "net.ipv4.conf.eth0.arp_announce": 2,
    });
  }

  await ipBatch(ROUTER_NS, [
    `addr add ${ROUTER.cli.ipv4}/24 dev cli`, `addr add ${ROUTER.cli.ipv6}/64 dev cli nodad`,
    `addr add ${ROUTER.app.ipv4}/24 dev ${rp.front}`, `addr add ${ROUTER.app.ipv6}/64 dev ${rp.front} nodad`,
    `addr add ${ROUTER.br0.ipv4}/24 dev br0`, `addr add ${ROUTER.br0.ipv6}/64 dev br0 nodad`,
    ...["cli", rp.front, rp.back, rp.mgmt, ...SERVERS.map((s) => s.routerPort), "br0"].map((d) => `link set ${d} up`),
  ]);
  await ipBatch(CLIENT_NS, [
    "link set lo up",
    `addr add ${CLIENT.ipv4}/24 dev eth0`, `addr add ${CLIENT.ipv6}/64 dev eth0 nodad`,
    "link set eth0 up",
    `route add default via ${ROUTER.cli.ipv4} dev eth0`, `route add default via ${ROUTER.cli.ipv6} dev eth0`,
  ]);
  await ipBatch(APPLIANCE_NS, [
    "link set lo up",
    `addr add ${APPLIANCE.mgmt.ipv4}/24 dev mgmt`, `addr add ${APPLIANCE.mgmt.ipv6}/64 dev mgmt nodad`,
    "link set front up", "link set back up", "link set mgmt up",
  ]);
  for (const s of SERVERS) {
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
    ], "-6");
  }

  const offload = async (ns: string, dev: string): Promise<void> => {
    await run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]);
  };
  await Promise.all([
    offload(CLIENT_NS, "eth0"),
    ...["cli", rp.front, rp.back, rp.mgmt, ...SERVERS.map((s) => s.routerPort)].map((d) => offload(ROUTER_NS, d)),
    ...["front", "back", "mgmt"].map((d) => offload(APPLIANCE_NS, d)),
    ...SERVERS.map((s) => offload(s.ns, "eth0")),
  ]);
}

/** curl in a namespace; returns the body, or throws naming the command and what came back. */
export async function curlText(ns: string, url: string, extra: string[] = [], timeoutS = 3): Promise<string> {
  const { stdout } = await run(["ip", "netns", "exec", ns, "curl", "-sS", "--fail", "--max-time", String(timeoutS), ...extra, url], { timeoutMs: (timeoutS + 5) * 1000 });
  return stdout;
}

async function checkKernelPaths(): Promise<void> {
  const checks: Promise<void>[] = [];
  const expect = (what: string, got: Promise<string>, want: string): void => {
    checks.push(got.then((body) => {
      if (body.trim() !== want) throw new Error(`${what}: expected "${want}", got "${body.trim()}"`);
    }, (e: Error) => { throw new Error(`${what}: ${e.message}`); }));
  };
  for (const s of SERVERS) {
    for (const addr of [s.ipv4, s.ipv6]) {
      expect(`client -> ${s.name} directly (${addr} port ${DIRECT_PORT}, routed by ${ROUTER_NS})`, curlText(CLIENT_NS, `http://${urlHost(addr)}:${DIRECT_PORT}/`), s.name);
    }
    expect(`${APPLIANCE_NS} mgmt -> ${s.name} /health`, curlText(APPLIANCE_NS, `http://${urlHost(s.ipv4)}/health`, ["--interface", APPLIANCE.mgmt.ipv4]), "ok");
    expect(`${APPLIANCE_NS} mgmt -> ${s.name} /health over IPv6`, curlText(APPLIANCE_NS, `http://${urlHost(s.ipv6)}/health`, ["--interface", APPLIANCE.mgmt.ipv6]), "ok");
  }
  const results = await Promise.allSettled(checks);
  const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => (r.reason as Error).message);
  if (failed.length) throw new Error(`the lab's kernel paths do not work:\n${failed.map((f) => `  ${f}`).join("\n")}`);
}

// ---------------------------------------------------------------------------------------------
// Teardown

/** The lab namespaces that exist now. */
async function existingNamespaces(): Promise<string[]> {
  const r = await tryRun(["ip", "netns", "list"]);
  if (!r.ok) return [];
  const names = new Set(r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean));
  return NAMESPACES.filter((n) => names.has(n));
}

/** Pids of every process in a lab namespace (nginx, the appliance, haproxy, a test's curl or wrk). */
export async function namespacePids(ns: string): Promise<number[]> {
  const r = await tryRun(["ip", "netns", "pids", ns]);
  return r.ok ? r.stdout.split("\n").map(Number).filter((p) => Number.isInteger(p) && p > 0) : [];
}

export async function down(o: { log?: (message: string) => void } = {}): Promise<void> {
  const log = o.log ?? ((): void => {});
  const priv = await privilege();
  if (appliancePid()) log("stopping the appliance");
  await stopAppliance();
  // Processes the lab started, by their pid files, with their children: also found when their
  // namespace is gone already (deleted by hand, or a half-finished teardown).
  const started = [...SERVERS.map((s) => statePath(s.name, "nginx.pid")), statePath("haproxy.pid")]
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
  for (const f of ["holder.pid", "appliance.pid", "haproxy.pid", ...SERVERS.map((s) => `${s.name}/nginx.pid`)]) rmSync(statePath(f), { force: true });
}

// ---------------------------------------------------------------------------------------------
// Status

export interface LabStatus {
  stateDir: string;
  privilege: Privilege["kind"];
  namespaces: Record<string, boolean>;
  /** ns -> interface -> "UP" | "DOWN" | ... (operational state) */
  interfaces: Record<string, Record<string, string>>;
  nginx: Record<string, number | null>;
  appliance: { pid: number | null; statusAgeS: number | null };
  /** The lab is complete: every namespace, every interface up, every nginx running. */
  networkUp: boolean;
}

const EXPECTED_INTERFACES: Record<string, string[]> = {
  [CLIENT_NS]: ["eth0"],
  [ROUTER_NS]: ["cli", "app", "app-back", "app-mgmt", "s1", "s2", "s3", "br0"],
  [APPLIANCE_NS]: ["front", "back", "mgmt"],
  ...Object.fromEntries(SERVERS.map((s) => [s.ns, ["eth0"]])),
};

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
  const nginx = Object.fromEntries(SERVERS.map((s) => [s.name, nginxPid(s.name) ?? null]));
  const st = readStatus();
  const allIfUp = Object.entries(EXPECTED_INTERFACES).every(([ns, devs]) => devs.every((d) => interfaces[ns]?.[d] === "UP"));
  return {
    stateDir: stateDir(),
    privilege: priv.kind,
    namespaces: Object.fromEntries(NAMESPACES.map((n) => [n, present.includes(n)])),
    interfaces,
    nginx,
    appliance: { pid: appliancePid() ?? null, statusAgeS: st ? Math.round((Date.now() - st.time) / 100) / 10 : null },
    networkUp: present.length === NAMESPACES.length && allIfUp && Object.values(nginx).every((p) => p !== null),
  };
}

export async function statusText(): Promise<string> {
  const s = await status();
  const lines: string[] = [`lab state directory: ${s.stateDir} (${s.privilege === "root" ? "root" : "user namespace"})`];
  lines.push(`network: ${s.networkUp ? "up" : "not (completely) up"}`);
  for (const ns of NAMESPACES) {
    if (!s.namespaces[ns]) {
      lines.push(`  ${ns}: missing`);
      continue;
    }
    const want = EXPECTED_INTERFACES[ns];
    const shown = want.map((d) => `${d} ${s.interfaces[ns]?.[d] ?? "missing"}`).join(", ");
    lines.push(`  ${ns}: ${shown}`);
  }
  for (const [name, pid] of Object.entries(s.nginx)) lines.push(`nginx ${name}: ${pid ? `running (pid ${pid})` : "not running"}`);
  lines.push(`appliance: ${s.appliance.pid ? `running (pid ${s.appliance.pid})` : "not running"}, log ${appliancePaths.log()}`);
  const st = readStatus();
  if (st) {
    lines.push(`status.json (${s.appliance.statusAgeS} s old): engines ${st.engines}`);
    for (const [b, h] of Object.entries(st.health ?? {})) {
      const c = st.counters?.backends?.[b];
      lines.push(`  ${b}: ${h.state}${h.reason ? ` (${h.reason})` : ""}${c ? `, newFlows ${c.newFlows}, packets ${c.packets}` : ""}`);
    }
    const c = st.counters;
    if (c) lines.push(`  frames: rx ${c.rx}, tx ${c.tx}, punt ${c.punt}, drop ${c.drop}${Object.keys(c.drops ?? {}).length ? ` (${Object.entries(c.drops).map(([k, v]) => `${k} ${v}`).join(", ")})` : ""}`);
  } else {
    lines.push(`status.json: ${existsSync(appliancePaths.status()) ? "unreadable" : "none"}`);
  }
  return `${lines.join("\n")}\n`;
}
