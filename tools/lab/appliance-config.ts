// The configuration the lab gives the appliance (appliance.json): ports front and back on the Linux
// board's interfaces, health checks from the management address, one backend per server and family,
// and four services: DSR and NAT, IPv4 and IPv6, TCP port 80. Tests and the benchmark write
// variants (a backend draining, one backend only) and send the appliance SIGHUP. With a discovery
// section the appliance also learns backends from the servers' advertisements (tools/lab/agent.ts);
// then the static pools may be empty (servers: []), so that every backend is an advertised one.
// With an ha option it is one node's config of the redundant pair (`up --pair`): the shared parts
// are the same for both nodes, and the node's own (hostname, management address, port MACs, ha)
// differ. With the chain option it also has the chain lab's parts (`up --chain`): the third data
// port `chain`, the chain fw-ids (an inline firewall fw1 with its alternate fw2, then a mirror to
// the IDS), a fifth service at CHAIN.vip (NAT, port 80 to 8081) through that chain, and an ACL on
// the front port that denies the denied client's TCP to it. With policies, named services balance
// otherwise than by Maglev (primary-backup, source-partition with its portions); with capacity, the
// servers' backends state the connections they carry at full load.
//
// The shape is the project's config format (host/config/schema.ts) including the fields the Linux
// board brings (management, port device/gateway/gateway6, dataplane.engines, backend check, backend
// mac optional); it is declared here rather than taken from ConfigInput so that the lab states
// exactly what it writes.
import { APPLIANCE, CHAIN, HA_LINK, HTTP_PORT, PAIR, PROBE_PORT, ROUTER, SERVERS, VIPS, chainDevice, type PairNodeName, type ServerName } from "./topology.js";

export type BackendState = "active" | "draining" | "down";

/** Health-check timing (seconds). Tests derive their waits from it: a dead server is down after fall x interval (+ timeout). */
export const HEALTH_CHECK = { type: "http", port: HTTP_PORT, path: "/health", interval: 1, timeout: 0.5, rise: 2, fall: 2 } as const;

export interface LabPortConfig {
  name: string;
  device: string;
  mac: string;
  mtu?: number;
  ipv4?: string;
  ipv6?: string;
  gateway?: string;
  gateway6?: string;
}

export interface LabBackendConfig {
  name: string;
  address: string;
  via: string;
  state?: BackendState;
  check: typeof HEALTH_CHECK;
  /** Connections it carries at full load (its load is flows / capacity); absent: not stated. */
  capacity?: number;
}

/** host/config/schema.ts ServiceInput.policy: how a service picks a member for a new flow (absent: maglev). */
export type LabServicePolicyName = "maglev" | "primary-backup" | "source-partition";

/** host/config/schema.ts PartitionsInput, as the lab writes it: owners are backend names (s1, or s1v6 for an IPv6 VIP). */
export interface LabPartitionsConfig {
  portions?: { prefix: string; owner: string }[];
  split?: number;
  interleave?: boolean;
  congestedAt?: number;
  holdS?: number;
}

/** A service's policy, and its partitions when source-partition. */
export interface LabServicePolicy {
  policy: LabServicePolicyName;
  partitions?: LabPartitionsConfig;
}

export interface LabServiceConfig {
  name: string;
  vip: string;
  protocol: "tcp" | "udp";
  port: number;
  mode: "dsr" | "nat";
  /** NAT: the servers' port (port translation); default the service's port. */
  targetPort?: number;
  backends: string[];
  /** The service chain its packets pass (by name). */
  chain?: string;
  policy?: LabServicePolicyName;
  partitions?: LabPartitionsConfig;
}

/** A chain device: by address (resolved by ARP on its port, which needs an ipv4 there) or by MAC. */
export type LabChainDevice = { name: string; port: string; address: string } | { name: string; port: string; mac: string };

export interface LabChainHop {
  name: string;
  /** inline: every packet goes through the device and comes back; mirror: the device gets a copy. */
  kind: "inline" | "mirror";
  devices: LabChainDevice[];
  alternates?: LabChainDevice[];
}

export interface LabChainConfig {
  name: string;
  hops: LabChainHop[];
}

export interface LabAclRule {
  name: string;
  action: "allow" | "deny";
  protocol?: "tcp" | "udp";
  source?: string;
}

export interface LabAclConfig {
  name: string;
  port: string;
  service?: string;
  default: "allow" | "deny";
  rules: LabAclRule[];
}

/** host/config/schema.ts DiscoveryInput, as the lab writes it: the servers are on `back`. */
export interface LabDiscoveryConfig {
  keys: { id: number; secret: string }[];
  missedIntervals?: number;
  via: "back";
}

/** host/config/schema.ts HaInput, as the lab writes it: two links, the HA veth first (it carries the sync channel). */
export interface LabHaConfig {
  node: PairNodeName;
  priority: number;
  preempt: boolean;
  preemptDelayMs: number;
  intervalMs: number;
  deadCount: number;
  keys: { id: number; secret: string }[];
  links: { name: "ha" | "data"; local: string; peer: string; port: number }[];
  garp?: { count?: number; intervalMs?: number };
}

/**
 * The lab's heartbeat timing: fast, so that a takeover is quick (3 x 30 ms), but not so fast that a
 * busy 2-core machine running wrk, nginx and two appliances misses three in a row.
 */
export const LAB_HA = { intervalMs: 30, deadCount: 3 } as const;

export interface LabHaOptions {
  node: PairNodeName;
  /** Heartbeat keys (the lab's: pair.ts haKey()). */
  keys: { id: number; secret: string }[];
  intervalMs?: number;
  deadCount?: number;
  preempt?: boolean;
  preemptDelayMs?: number;
  garp?: { count?: number; intervalMs?: number };
}

export interface LabApplianceConfig {
  system: { hostname: string };
  management: { ipv4: string; ipv6: string };
  ports: LabPortConfig[];
  dataplane: { noVip: "drop"; engines: number };
  backends: LabBackendConfig[];
  services: LabServiceConfig[];
  chains?: LabChainConfig[];
  acls?: LabAclConfig[];
  discovery?: LabDiscoveryConfig;
  ha?: LabHaConfig;
}

export interface ApplianceConfigOptions {
  /** MAC addresses of fsl-app's front and back interfaces (the Linux board sends with them). */
  frontMac: string;
  backMac: string;
  /** MAC of fsl-app's chain interface: needed with `chain`. */
  chainMac?: string;
  /** The chain lab's parts (see the top of this file; `up --chain` must have made the segment). Default false. */
  chain?: boolean;
  /** Servers in the pools (default: all three). The benchmark uses ["s1"]; none ([]) needs discovery. */
  servers?: readonly ServerName[];
  /** Backend state per server, for both of its backends (IPv4 and IPv6); default active. */
  states?: Partial<Record<ServerName, BackendState>>;
  /** Packet engines (default 1). */
  engines?: number;
  /** Learn backends from advertisements signed with these keys (default: no discovery section). */
  discovery?: { keys: { id: number; secret: string }[]; missedIntervals?: number };
  /** One node of the redundant pair: its ha section, hostname and management address (default: a single appliance). */
  ha?: LabHaOptions;
  /** Also UDP services on PROBE_PORT at the IPv4 DSR and NAT VIPs, for the failover probe (probe.ts; default false). */
  udpProbe?: boolean;
  /** Policies by service name (SERVICE_BY_VIP; e.g. web-dsr: primary-backup); the others balance by Maglev (no policy written). */
  policies?: Record<string, LabServicePolicy>;
  /** Connections a server carries at full load, written as the capacity of both of its backends (default: not written). */
  capacity?: Partial<Record<ServerName, number>>;
}

/** The backend names of a server: IPv4 and IPv6. */
export const backendNames = (s: ServerName): { v4: string; v6: string } => ({ v4: s, v6: `${s}v6` });

export function applianceConfig(o: ApplianceConfigOptions): LabApplianceConfig {
  const servers = SERVERS.filter((s) => (o.servers ?? SERVERS.map((x) => x.name)).includes(s.name));
  if (servers.length === 0 && !o.discovery) throw new Error("applianceConfig: no servers (and no discovery to learn them from)");
  const states = o.states ?? {};
  const backends: LabBackendConfig[] = servers.flatMap((s) => {
    const state = states[s.name] ?? "active";
    const names = backendNames(s.name);
    const capacity = o.capacity?.[s.name];
    const extra = capacity !== undefined ? { capacity } : {};
    return [
      { name: names.v4, address: s.ipv4, via: "back", state, check: HEALTH_CHECK, ...extra },
      { name: names.v6, address: s.ipv6, via: "back", state, check: HEALTH_CHECK, ...extra },
    ];
  });
  const v4 = servers.map((s) => backendNames(s.name).v4);
  const v6 = servers.map((s) => backendNames(s.name).v6);
  const service = (name: string, vip: string, mode: "dsr" | "nat", pool: string[], protocol: "tcp" | "udp" = "tcp", port = HTTP_PORT): LabServiceConfig =>
    ({ name, vip, protocol, port, mode, backends: pool });
  const self = o.ha ? PAIR[o.ha.node] : undefined;
  const services: LabServiceConfig[] = [
    service("web-dsr", VIPS.dsr4, "dsr", v4),
    service("web-nat", VIPS.nat4, "nat", v4),
    service("web6-dsr", VIPS.dsr6, "dsr", v6),
    service("web6-nat", VIPS.nat6, "nat", v6),
    ...(o.udpProbe ? [service("probe-dsr", VIPS.dsr4, "dsr", v4, "udp", PROBE_PORT), service("probe-nat", VIPS.nat4, "nat", v4, "udp", PROBE_PORT)] : []),
    ...(o.chain ? [{ ...service(CHAIN_SERVICE, CHAIN.vip, "nat", v4), targetPort: CHAIN.targetPort, chain: CHAIN_NAME }] : []),
  ];
  const unknown = Object.keys(o.policies ?? {}).filter((n) => !services.some((s) => s.name === n));
  if (unknown.length) throw new Error(`applianceConfig: policies for ${unknown.join(", ")}: no such service (there are ${services.map((s) => s.name).join(", ")})`);
  return {
    system: { hostname: self?.hostname ?? "fsl-app" },
    management: { ipv4: (self ?? APPLIANCE).mgmt.ipv4, ipv6: (self ?? APPLIANCE).mgmt.ipv6 },
    ports: [
      { name: "front", device: "front", mac: o.frontMac, mtu: 1500, ipv4: APPLIANCE.front.ipv4, ipv6: APPLIANCE.front.ipv6, gateway: ROUTER.app.ipv4, gateway6: ROUTER.app.ipv6 },
      { name: "back", device: "back", mac: o.backMac, mtu: 1500, ipv4: APPLIANCE.back.ipv4, ipv6: APPLIANCE.back.ipv6 },
      ...(o.chain ? [{ name: "chain", device: "chain", mac: chainMac(o), mtu: 1500, ipv4: CHAIN.appliance }] : []),
    ],
    dataplane: { noVip: "drop", engines: o.engines ?? 1 },
    backends,
    services: services.map((s) => withPolicy(s, o.policies?.[s.name])),
    ...(o.chain ? { chains: [labChain()], acls: [labAcl()] } : {}),
    ...(o.discovery ? {
      discovery: {
        keys: o.discovery.keys.map((k) => ({ ...k })),
        ...(o.discovery.missedIntervals !== undefined ? { missedIntervals: o.discovery.missedIntervals } : {}),
        via: "back" as const,
      },
    } : {}),
    ...(o.ha ? { ha: haSection(o.ha) } : {}),
  };
}

/** The service with its policy (and partitions) written, when it has one. */
function withPolicy(s: LabServiceConfig, p: LabServicePolicy | undefined): LabServiceConfig {
  if (!p) return s;
  return { ...s, policy: p.policy, ...(p.partitions ? { partitions: { ...p.partitions, ...(p.partitions.portions ? { portions: p.partitions.portions.map((x) => ({ ...x })) } : {}) } } : {}) };
}

/** The chain lab's names: the chained service, its chain, the ACL on front and its deny rule. */
export const CHAIN_SERVICE = "web-chain";
export const CHAIN_NAME = "fw-ids";
export const CHAIN_ACL = "front-in";
export const CHAIN_ACL_DENY_RULE = "deny-8";

function chainMac(o: ApplianceConfigOptions): string {
  if (!o.chainMac) throw new Error("applianceConfig: chain needs chainMac (the MAC of fsl-app's chain interface)");
  return o.chainMac;
}

const byAddress = (name: "fw1" | "fw2" | "ids1"): LabChainDevice => ({ name, port: "chain", address: chainDevice(name).ipv4 });

/** fw-ids: the firewall fw1 inline (fw2 its alternate), then a copy to the IDS. */
export function labChain(): LabChainConfig {
  return {
    name: CHAIN_NAME,
    hops: [
      { name: "firewall", kind: "inline", devices: [byAddress("fw1")], alternates: [byAddress("fw2")] },
      { name: "ids", kind: "mirror", devices: [byAddress("ids1")] },
    ],
  };
}

/** front-in: on front, for the chained service, TCP from the denied client is dropped; the rest allowed. */
export function labAcl(): LabAclConfig {
  return {
    name: CHAIN_ACL, port: "front", service: CHAIN_SERVICE, default: "allow",
    rules: [{ name: CHAIN_ACL_DENY_RULE, action: "deny", protocol: "tcp", source: `${CHAIN.deniedClient}/32` }],
  };
}

/** One node's ha section: node a is preferred (priority 200 over 100); links to the other node. */
export function haSection(o: LabHaOptions): LabHaConfig {
  const self = PAIR[o.node];
  const peer = PAIR[o.node === "a" ? "b" : "a"];
  return {
    node: o.node,
    priority: self.priority,
    preempt: o.preempt ?? true,
    preemptDelayMs: o.preemptDelayMs ?? 0,
    intervalMs: o.intervalMs ?? LAB_HA.intervalMs,
    deadCount: o.deadCount ?? LAB_HA.deadCount,
    keys: o.keys.map((k) => ({ ...k })),
    links: [
      { name: "ha", local: self.haLink, peer: peer.haLink, port: HA_LINK.port },
      { name: "data", local: self.mgmt.ipv4, peer: peer.mgmt.ipv4, port: HA_LINK.port },
    ],
    ...(o.garp ? { garp: { ...o.garp } } : {}),
  };
}

/** Services by VIP, for tests that pick a VIP and want its service's name. */
export const SERVICE_BY_VIP: Record<string, string> = {
  [VIPS.dsr4]: "web-dsr",
  [VIPS.nat4]: "web-nat",
  [VIPS.dsr6]: "web6-dsr",
  [VIPS.nat6]: "web6-nat",
};
