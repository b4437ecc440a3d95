// The lab's names and addresses, declared once: the lab builder, the appliance config generator,
// the end-to-end tests and the end-to-end benchmark all read them from here.
//
//   fsl-cli (client) --- fsl-rtr (router) --- front: fsl-app (Flowswitch) :back ---+
//                              | br0 (10.77.3.0/24, the server segment)             |
//                              +--- app-back, app-mgmt, s1, s2, s3 (, s4) -----------+
//
// With `up --pair`, a second appliance (fsl-app2) joins as the standby of a redundant pair: see PAIR.
//
// Every namespace name starts with "fsl-" so that the lab never touches anything it did not make.
// The VIPs sit on the router's front subnet (10.77.2.0/24): the router resolves them by ARP/ND on
// its `app` port, and the appliance answers.

export const CLIENT_NS = "fsl-cli";
export const ROUTER_NS = "fsl-rtr";
export const APPLIANCE_NS = "fsl-app";

/** The servers of the lab: the appliance's static configuration has exactly these. */
export type ServerName = "s1" | "s2" | "s3";
/**
 * Optional extra servers, made only when `up` is asked for them (`up --extra s4`): a server that
 * joins later by advertising itself (test/e2e/discovery.test.ts). No static configuration names
 * them, so the tests and the benchmark that use the three servers see the same lab either way.
 */
export type ExtraServerName = "s4";
export type LabServerName = ServerName | ExtraServerName;

export interface LabServer<N extends LabServerName = ServerName> {
  name: N;
  ns: string;
  ipv4: string;
  ipv6: string;
  /** The server's bridge port in fsl-rtr. */
  routerPort: string;
}

function labServer<N extends LabServerName>(i: number): LabServer<N> {
  return { name: `s${i}` as N, ns: `fsl-s${i}`, ipv4: `10.77.3.1${i}`, ipv6: `fd77:3::1${i}`, routerPort: `s${i}` };
}

export const SERVERS: readonly LabServer[] = [1, 2, 3].map((i) => labServer<ServerName>(i));
export const EXTRA_SERVERS: readonly LabServer<ExtraServerName>[] = [labServer<ExtraServerName>(4)];
export const ALL_SERVERS: readonly LabServer<LabServerName>[] = [...SERVERS, ...EXTRA_SERVERS];

export const SERVER_NAMES: readonly ServerName[] = SERVERS.map((s) => s.name);
export const EXTRA_SERVER_NAMES: readonly ExtraServerName[] = EXTRA_SERVERS.map((s) => s.name);
export const ALL_SERVER_NAMES: readonly LabServerName[] = ALL_SERVERS.map((s) => s.name);

export function server<N extends LabServerName>(name: N): LabServer<N> {
  const s = ALL_SERVERS.find((x) => x.name === name);
  if (!s) throw new Error(`no lab server named ${name}`);
  return s as LabServer<N>;
}

/** The redundant pair's second appliance: made only by `up --pair` (test/e2e/ha.test.ts, bench:failover). */
export const APPLIANCE2_NS = "fsl-app2";

/**
 * The service-chain segment (`up --chain`, test/e2e/chains.test.ts): a bridge in fsl-rtr (no address
 * of its own: it is a switch) joining the appliance's third data port `chain` (no kernel address:
 * Flowswitch owns it and answers ARP for CHAIN.appliance) with two firewalls and an IDS, each a
 * namespace with ONE interface on the segment. A firewall forwards what the appliance sends it back
 * to the appliance on the same interface (routes to the client, VIP and server subnets via
 * CHAIN.appliance) and counts it with nftables; the IDS only receives mirrored copies (no
 * forwarding: the kernel drops them after tshark has seen them).
 */
export type ChainDeviceName = "fw1" | "fw2" | "ids1";

export interface ChainDevice {
  name: ChainDeviceName;
  ns: string;
  ipv4: string;
  /** Its bridge port in fsl-rtr. */
  routerPort: string;
  /** A firewall forwards (and counts); the IDS only listens. */
  role: "firewall" | "ids";
}

export const CHAIN = {
  /** fsl-rtr's bridge for the chain segment. */
  bridge: "brc",
  prefix4: "10.77.4.0/24",
  prefixLen: 24,
  /** The appliance's `chain` port address (config only: Flowswitch answers ARP for it). */
  appliance: "10.77.4.1",
  /** fsl-rtr's end of fsl-app's chain veth. */
  routerPort: "app-chain",
  /** The chained service: its VIP on the front subnet, the client-facing port, the servers' port (port translation). */
  vip: "10.77.2.102",
  port: 80,
  targetPort: 8081,
  /** A second client address (secondary on fsl-cli's eth0) that the lab's ACL denies. */
  deniedClient: "10.77.1.8",
  /** The nftables table in each firewall (inet fsl): named counters `forward`, `to-vip`, `to-client`, `dead`. */
  nftTable: "fsl",
} as const;

export const CHAIN_DEVICES: readonly ChainDevice[] = [
  { name: "fw1", ns: "fsl-fw1", ipv4: "10.77.4.11", routerPort: "fw1", role: "firewall" },
  { name: "fw2", ns: "fsl-fw2", ipv4: "10.77.4.12", routerPort: "fw2", role: "firewall" },
  { name: "ids1", ns: "fsl-ids", ipv4: "10.77.4.21", routerPort: "ids1", role: "ids" },
];

export function chainDevice(name: ChainDeviceName): ChainDevice {
  const d = CHAIN_DEVICES.find((x) => x.name === name);
  if (!d) throw new Error(`no chain device named ${name}`);
  return d;
}

/** The namespaces of the lab as the tests and the benchmark know it (without the optional servers). */
export const NAMESPACES: readonly string[] = [CLIENT_NS, ROUTER_NS, APPLIANCE_NS, ...SERVERS.map((s) => s.ns)];
/** Every namespace the lab may make: what `down` looks for. */
export const ALL_NAMESPACES: readonly string[] = [...NAMESPACES, ...EXTRA_SERVERS.map((s) => s.ns), APPLIANCE2_NS, ...CHAIN_DEVICES.map((d) => d.ns)];

export const CLIENT = { ipv4: "10.77.1.2", ipv6: "fd77:1::2", prefix4: "10.77.1.0/24", prefix6: "fd77:1::/64" };

export const ROUTER = {
  /** Towards the client. */
  cli: { ipv4: "10.77.1.1", ipv6: "fd77:1::1" },
  /** Towards the appliance's front port: the VIPs' subnet. */
  app: { ipv4: "10.77.2.1", ipv6: "fd77:2::1" },
  /** The server segment's bridge. */
  br0: { ipv4: "10.77.3.1", ipv6: "fd77:3::1" },
};

/** fsl-app's interfaces. front and back carry no kernel address: Flowswitch owns them. */
export const APPLIANCE = {
  front: { ipv4: "10.77.2.2", ipv6: "fd77:2::2" },
  back: { ipv4: "10.77.3.2", ipv6: "fd77:3::2" },
  /** The kernel's own port on the server segment: health checks come from here. */
  mgmt: { ipv4: "10.77.3.3", ipv6: "fd77:3::3" },
  /** fsl-rtr's ends of fsl-app's three veths. */
  routerPorts: { front: "app", back: "app-back", mgmt: "app-mgmt" },
};

/**
 * The redundant pair (`up --pair`). Both nodes' front veths hang on a bridge in fsl-rtr that carries
 * the router's front address (the client-facing segment), both nodes' back and mgmt veths on br0,
 * and a veth of their own joins them directly: the HA link. Each node runs on its own veths' MACs
 * (node-local) but with the same port addresses and VIPs (shared, replicated from the active).
 * Heartbeats go over the HA link and, as a second path, over the management addresses on br0; the
 * sync channel (port + 1) over the HA link.
 */
export type PairNodeName = "a" | "b";
export const PAIR_NODE_NAMES: readonly PairNodeName[] = ["a", "b"];

export interface PairNode {
  node: PairNodeName;
  ns: string;
  hostname: string;
  /** Node a is the preferred active. */
  priority: number;
  mgmt: { ipv4: string; ipv6: string };
  /** This node's end of the HA link veth (device HA_LINK.dev in its namespace). */
  haLink: string;
  /** fsl-rtr's ends of the node's front, back and mgmt veths. */
  routerPorts: { front: string; back: string; mgmt: string };
}

export const PAIR: Record<PairNodeName, PairNode> = {
  a: { node: "a", ns: APPLIANCE_NS, hostname: "fsl-app", priority: 200, mgmt: APPLIANCE.mgmt, haLink: "10.77.9.1", routerPorts: APPLIANCE.routerPorts },
  b: { node: "b", ns: APPLIANCE2_NS, hostname: "fsl-app2", priority: 100, mgmt: { ipv4: "10.77.3.4", ipv6: "fd77:3::4" }, haLink: "10.77.9.2", routerPorts: { front: "app2", back: "app2-back", mgmt: "app2-mgmt" } },
};

export const HA_LINK = {
  /** The veth's name in both appliance namespaces. */
  dev: "ha",
  prefixLen: 30,
  /** Heartbeats (UDP); the sync channel (TCP) is on port + 1 of the first link. */
  port: 7788,
};

/** fsl-rtr's bridge for the client-facing segment in a pair lab (the router's front address is on it). */
export const FRONT_BRIDGE = "brf";

/**
 * The keepalived reference of bench:failover (keepalived.ts): VRRP between the same two namespaces'
 * front ports, with the Flowswitch processes stopped. Its VIP, its virtual router id, and the
 * kernel address each node's front gets for the time (VRRP adverts need a source address).
 */
export const KEEPALIVED = { vip: "10.77.2.110", vrid: 77, front: { a: "10.77.2.3", b: "10.77.2.4" } } as const;

export const VIPS = {
  dsr4: "10.77.2.100",
  nat4: "10.77.2.101",
  dsr6: "fd77:2::100",
  nat6: "fd77:2::101",
};

export const HTTP_PORT = 80;
/**
 * Every server also listens here, and answers from this port through the router instead of the
 * appliance: the servers policy-route replies from their own address to the appliance (NAT), so
 * the kernel-only path (client -> router -> server, no balancer) needs a port of its own.
 */
export const DIRECT_PORT = 8080;

/**
 * The failover probe's UDP echo port (probe.ts): on every server (the pair's configs have UDP
 * services for it on the DSR and NAT VIPs) and, for the keepalived reference, on the appliances.
 */
export const PROBE_PORT = 7077;

/** The servers' routing table for replies from their own address (NAT: back through the appliance). */
export const NAT_REPLY_TABLE = 100;

export const MTU = 1500;
/** Size of /big, the file for long downloads (sparse: all zeros, no disk used). */
export const BIG_FILE_BYTES = 100 * 1024 * 1024;

/** An address in a URL: IPv6 in brackets. */
export function urlHost(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}

// ---------------------------------------------------------------------------------------------
// The multi-level lab (`up --levels`, issue 10: service routing at two levels). A lab of its own:
// its namespaces start with "fsl-lv-" and its addresses are in 10.88.0.0/16, so it can be up beside
// the lab above, and neither's up or down touches the other's (`npm run lab -- down` takes both).
//
//   fsl-lv-cli eth0 10.88.1.2 ---- cli 10.88.1.1  fsl-lv-rtr (router)
//                                  brcore 10.88.2.1 (bridge: the core segment)
//                                    +-- sys-core [core 10.88.2.2]  fsl-lv-sys  mgmt 10.88.2.3  -- sys-mgmt   (system appliance)
//                                    +-- sa1-up   [up 10.88.2.31]   fsl-lv-sa1  mgmt 10.88.2.11 -- sa1-mgmt   (site A)
//                                    +-- sa2-up   [up 10.88.2.32]   fsl-lv-sa2  mgmt 10.88.2.12 -- sa2-mgmt   (site A)
//                                    +-- sb-up    [up 10.88.2.41]   fsl-lv-sb   mgmt 10.88.2.21 -- sb-mgmt    (site B)
//                                  brsa 10.88.3.1: sa1-down [down 10.88.3.2], sa2-down [down 10.88.3.3], a1 .11, a2 .12
//                                  brsb 10.88.4.1: sb-down [down 10.88.4.2], b1 .11, b2 .12
//
// [brackets]: a Flowswitch data port (no kernel address: the address is in its config, and the
// appliance answers ARP and pings for it); mgmt is the kernel's own port (health checks, the levels
// socket). The router sends the system VIP to the system appliance, and the site A VIP to sa1 and
// sa2 by an ECMP route (L4 hash); servers answer straight to the router (DSR): no reply ever passes
// an appliance.

export type LevelsNodeName = "sys" | "sa1" | "sa2" | "sb";
export type LevelsSiteNodeName = Exclude<LevelsNodeName, "sys">;
export type LevelsSiteName = "siteA" | "siteB";
export type LevelsServerName = "a1" | "a2" | "b1" | "b2";
export type LevelsSegmentName = "core" | LevelsSiteName;

export const LEVELS_PREFIX = "fsl-lv-";
export const LEVELS_CLIENT_NS = "fsl-lv-cli";
export const LEVELS_ROUTER_NS = "fsl-lv-rtr";

export const LEVELS_CLIENT = { ipv4: "10.88.1.2", prefixLen: 24, router: "10.88.1.1", routerPort: "cli" } as const;

/** The router's bridges: each a segment, with the router's address on it (the segment's gateway). */
export interface LevelsSegment {
  bridge: string;
  router: string;
  prefix4: string;
  prefixLen: number;
}

export const LEVELS_SEGMENTS: Record<LevelsSegmentName, LevelsSegment> = {
  core: { bridge: "brcore", router: "10.88.2.1", prefix4: "10.88.2.0/24", prefixLen: 24 },
  siteA: { bridge: "brsa", router: "10.88.3.1", prefix4: "10.88.3.0/24", prefixLen: 24 },
  siteB: { bridge: "brsb", router: "10.88.4.1", prefix4: "10.88.4.0/24", prefixLen: 24 },
};

/** A Flowswitch data port: its device in the node's namespace has the port's name. */
export interface LevelsDataPort {
  name: string;
  ipv4: string;
  segment: LevelsSegmentName;
  /** fsl-lv-rtr's end of its veth (a port of the segment's bridge). */
  routerPort: string;
}

export interface LevelsNode {
  name: LevelsNodeName;
  ns: string;
  hostname: string;
  role: "system" | "site";
  /** The kernel's own port on the core segment: health checks and the levels socket use it. */
  mgmt: { ipv4: string; routerPort: string };
  /** The data ports; the first is on the core segment (its address is the node's data address). */
  ports: readonly LevelsDataPort[];
  site?: LevelsSiteName;
}

export const LEVELS_NODES: Record<LevelsNodeName, LevelsNode> = {
  sys: {
    name: "sys", ns: "fsl-lv-sys", hostname: "fsl-lv-sys", role: "system", mgmt: { ipv4: "10.88.2.3", routerPort: "sys-mgmt" },
    ports: [{ name: "core", ipv4: "10.88.2.2", segment: "core", routerPort: "sys-core" }],
  },
  sa1: {
    name: "sa1", ns: "fsl-lv-sa1", hostname: "fsl-lv-sa1", role: "site", site: "siteA", mgmt: { ipv4: "10.88.2.11", routerPort: "sa1-mgmt" },
    ports: [{ name: "up", ipv4: "10.88.2.31", segment: "core", routerPort: "sa1-up" }, { name: "down", ipv4: "10.88.3.2", segment: "siteA", routerPort: "sa1-down" }],
  },
  sa2: {
    name: "sa2", ns: "fsl-lv-sa2", hostname: "fsl-lv-sa2", role: "site", site: "siteA", mgmt: { ipv4: "10.88.2.12", routerPort: "sa2-mgmt" },
    ports: [{ name: "up", ipv4: "10.88.2.32", segment: "core", routerPort: "sa2-up" }, { name: "down", ipv4: "10.88.3.3", segment: "siteA", routerPort: "sa2-down" }],
  },
  sb: {
    name: "sb", ns: "fsl-lv-sb", hostname: "fsl-lv-sb", role: "site", site: "siteB", mgmt: { ipv4: "10.88.2.21", routerPort: "sb-mgmt" },
    ports: [{ name: "up", ipv4: "10.88.2.41", segment: "core", routerPort: "sb-up" }, { name: "down", ipv4: "10.88.4.2", segment: "siteB", routerPort: "sb-down" }],
  },
};

export const LEVELS_NODE_NAMES: readonly LevelsNodeName[] = ["sys", "sa1", "sa2", "sb"];
export const LEVELS_SITE_NODE_NAMES: readonly LevelsSiteNodeName[] = ["sa1", "sa2", "sb"];

/** A node's data address: its first (core-side) port's. The system tunnels to a site's entry node's. */
export const levelsDataAddress = (node: LevelsNodeName): string => LEVELS_NODES[node].ports[0].ipv4;

/** The lab's VIPs: the system VIP (routed to fsl-lv-sys, served by both sites) and site A's own (ECMP to sa1 and sa2). */
export const LEVELS_VIPS = { system: "10.88.9.100", siteA: "10.88.9.200" } as const;

export interface LevelsSite {
  name: LevelsSiteName;
  segment: LevelsSegmentName;
  /** The site's appliances: identical services and backends (the same Maglev choice). */
  nodes: readonly LevelsSiteNodeName[];
  /** The node the system knows the site by: the tunnels' destination, its load updates' sender. */
  entry: LevelsSiteNodeName;
  servers: readonly LevelsServerName[];
  /** The VIPs the site serves (on its servers' lo). */
  vips: readonly string[];
}

export const LEVELS_SITES: Record<LevelsSiteName, LevelsSite> = {
  siteA: { name: "siteA", segment: "siteA", nodes: ["sa1", "sa2"], entry: "sa1", servers: ["a1", "a2"], vips: [LEVELS_VIPS.system, LEVELS_VIPS.siteA] },
  siteB: { name: "siteB", segment: "siteB", nodes: ["sb"], entry: "sb", servers: ["b1", "b2"], vips: [LEVELS_VIPS.system] },
};

export const LEVELS_SITE_NAMES: readonly LevelsSiteName[] = ["siteA", "siteB"];

export interface LevelsServer {
  name: LevelsServerName;
  ns: string;
  ipv4: string;
  site: LevelsSiteName;
  /** fsl-lv-rtr's end of its veth (a port of its site's bridge). */
  routerPort: string;
}

export const LEVELS_SERVERS: Record<LevelsServerName, LevelsServer> = {
  a1: { name: "a1", ns: "fsl-lv-a1", ipv4: "10.88.3.11", site: "siteA", routerPort: "a1" },
  a2: { name: "a2", ns: "fsl-lv-a2", ipv4: "10.88.3.12", site: "siteA", routerPort: "a2" },
  b1: { name: "b1", ns: "fsl-lv-b1", ipv4: "10.88.4.11", site: "siteB", routerPort: "b1" },
  b2: { name: "b2", ns: "fsl-lv-b2", ipv4: "10.88.4.12", site: "siteB", routerPort: "b2" },
};

export const LEVELS_SERVER_NAMES: readonly LevelsServerName[] = ["a1", "a2", "b1", "b2"];

/** Every namespace of the multi-level lab: what `up --levels` makes and `down` deletes. */
export const LEVELS_NAMESPACES: readonly string[] = [
  LEVELS_CLIENT_NS, LEVELS_ROUTER_NS, ...LEVELS_NODE_NAMES.map((n) => LEVELS_NODES[n].ns), ...LEVELS_SERVER_NAMES.map((s) => LEVELS_SERVERS[s].ns),
];
