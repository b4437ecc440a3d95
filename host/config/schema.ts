// The appliance's configuration as operators write it (JSON), and the normalised form every
// subsystem reads after validation: defaults filled in, addresses parsed, references resolved.
// One config drives everything; later subsystems add their own sections here.

export type ForwardingMode = "dsr" | "nat" | "tunnel";
export type Protocol = "tcp" | "udp";
export type BackendState = "active" | "draining" | "down";
/** admin: may change the configuration; operator: may look and run operational commands. */
export type UserClass = "admin" | "operator";

/** As written by the operator. Every field not marked required has a default. */
export interface ConfigInput {
  system?: {
    hostname?: string;
    /** IANA time zone name for the console and logs (default UTC). */
    timezone?: string;
    /** NTP servers by address or host name, in order of preference. */
    ntp?: string[];
    users?: UserInput[];
  };
  /** The appliance's own management addresses (kernel side): health checks are sent from them. */
  management?: { ipv4?: string; ipv6?: string };
  ports: PortInput[];
  dataplane?: {
    /** Flow-table entries per family: a DSR or tunnel flow takes one, a NAT connection two. */
    flows?: { ipv4?: number; ipv6?: number };
    timeouts?: Partial<Timeouts>;
    noVip?: "forward" | "drop";
    maglevSize?: number;
    /** Packet engines (worker threads); default: cores minus one, at least one. */
    engines?: number;
    limits?: { services?: number; backends?: number };
    buffers?: { count?: number; size?: number };
  };
  backends?: BackendInput[];
  services?: ServiceInput[];
  /** Flows that go to a named backend, ahead of Maglev, with QoS actions; first match wins. */
  flowRules?: FlowRuleInput[];
  /** MQTT telemetry (docs/telemetry.md). Absent: on, to the embedded broker on 127.0.0.1:1883. */
  telemetry?: TelemetryInput;
  /** The SNMP agent (v2c, v3) and its notifications. Absent: no agent. */
  snmp?: SnmpInput;
  /** Backends learnt from service advertisements (docs/advertisement-protocol.md). Absent: none. */
  discovery?: DiscoveryInput;
  /** Service chains: devices services' packets pass before their servers. */
  chains?: ChainInput[];
  /** ACL tables per ingress port, keyed further by service. */
  acls?: AclInput[];
  /** The redundant pair: heartbeats and election (docs/ha-protocol.md). Absent: a single appliance. */
  ha?: HaInput;
  /** Multi-level service routing and flow recovery between appliances (docs/levels.md). Absent: a lone site. */
  levels?: LevelsInput;
}

/** Service advertisements as written. Key secrets are passwords: never echoed in errors or shown. */
export interface DiscoveryInput {
  /** Keys advertisements may be signed with; id 1-65535, secret in hex or base64, 16 bytes or more. */
  keys: { id: number; secret: string }[];
  /** IPv4 group the end systems send to (default 239.255.77.77). */
  group?: string;
  /** IPv6 group the end systems send to (default ff02::77, link-local scope). */
  group6?: string;
  /** UDP port (default 7777). */
  port?: number;
  /** Silent intervals before an end system is down (default 3). */
  missedIntervals?: number;
  /** Seconds a leaving end system's existing flows are waited for before it is removed anyway (default 300). */
  leaveTimeoutS?: number;
  /** The server-facing port the end systems are on (default: the first port with backends, else the second port). */
  via?: string;
  /** Run the supervisor (registrations, server lists, number authority, relay) on the management CPU. Absent: none. */
  supervisor?: SupervisorInput;
}

export interface DiscoveryConfig {
  keys: { id: number; secret: Uint8Array }[];
  group: Address;
  group6: Address;
  port: number;
  missedIntervals: number;
  /** Longest a leaving end system's flows are waited for before it is removed anyway. */
  leaveTimeoutS: number;
  /** Port index. */
  via: number;
  /** Undefined when the discovery section has no supervisor: none runs. */
  supervisor?: SupervisorSettings;
}

export const DISCOVERY_DEFAULTS = {
  group: "239.255.77.77",
  group6: "ff02::77",
  port: 7777,
  missedIntervals: 3,
  leaveTimeoutS: 300,
};

/** A console / management login. Only the hash is ever stored: `scrypt$N$r$p$<salt>$<hash>` (base64). */
export interface UserInput {
  name: string;
  class?: UserClass;
  passwordHash: string;
}

export interface User {
  name: string;
  class: UserClass;
  passwordHash: string;
}

export interface PortInput {
  name: string;
  mac: string;
  mtu?: number;
  ipv4?: string;
  ipv6?: string;
  /** Where traffic for no VIP goes at L2 when dataplane.noVip is "forward". */
  peer?: string;
  /** The network interface on the Linux board (default: the port's name). */
  device?: string;
  /** Next hop for traffic the appliance sends back out of this port (NAT replies), by address: resolved by ARP / ND. */
  gateway?: string;
  gateway6?: string;
  /** The next hop's MAC, when it is not to be resolved. */
  gatewayMac?: string;
}

export interface BackendInput {
  name: string;
  address: string;
  /** Omitted: resolved by ARP (IPv4) or neighbour discovery (IPv6) on the `via` port. */
  mac?: string;
  /** The board port the backend is reached through. */
  via: string;
  /** NAT: the backend's own port, overriding the service's targetPort. */
  natPort?: number;
  state?: BackendState;
  check?: CheckInput;
  /** Connections the backend is meant to carry at full load: its load in a site's updates is flows / capacity. */
  capacity?: number;
}

/** A health check; times in seconds. */
export interface CheckInput {
  type: "tcp" | "http" | "https" | "udp";
  /** Default: the port of the first service using the backend (its NAT port, if set). */
  port?: number;
  path?: string;
  host?: string;
  expectStatus?: number;
  send?: string;
  expect?: string;
  interval?: number;
  timeout?: number;
  rise?: number;
  fall?: number;
}

export interface Check {
  type: CheckInput["type"];
  port: number;
  path: string;
  host?: string;
  expectStatus: number;
  send?: string;
  expect?: string;
  intervalMs: number;
  timeoutMs: number;
  rise: number;
  fall: number;
}

export interface ServiceInput {
  name: string;
  vip: string;
  protocol: Protocol;
  /** 0: every port. */
  port: number;
  mode: ForwardingMode;
  /** NAT: the port the backends listen on (default: the client's destination port). */
  targetPort?: number;
  backends: (string | { name: string; weight?: number })[];
  /** What happens to flows of a backend that goes down: re-selected, or reset. */
  onBackendDown?: "reselect" | "reset";
  /** Answer ARP / neighbour solicitations for the VIP (off for DSR pools where a router owns it). */
  arp?: boolean;
  tunnel?: { encap?: "ipip" | "gue"; source4?: string; source6?: string; guePort?: number };
  /** The chain (by name) its packets pass before the server, and its replies in reverse. NAT services only. */
  chain?: string;
  /**
   * How a new flow's backend is chosen: maglev (consistent hashing over the members, by weight;
   * the default) or primary-backup (every flow to one member, the primary; when it fails the
   * next member that is up becomes primary, and a recovered one never takes it back).
   */
  policy?: "maglev" | "primary-backup" | "source-partition";
  /**
   * source-partition: the client address space split into portions, each owned by one member.
   * Either `portions` (prefixes that neither overlap nor leave holes) or `split` (2^split equal
   * prefixes, dealt to the members in order, interleaved or in blocks).
   */
  partitions?: PartitionsInput;
}

export interface PartitionsInput {
  portions?: { prefix: string; owner: string }[];
  /** Bits: 2^split equal portions (default: enough for one per member, at least 2). */
  split?: number;
  /** Deal portions round robin (s1 s2 s3 s1 ...) rather than in contiguous blocks (default true). */
  interleave?: boolean;
  /** A member at or above this load (flows/capacity, or its advertised load) sheds portions (default 0.9; 0: never). */
  congestedAt?: number;
  /** Seconds between two portions moved off one congested member (default 10). */
  holdS?: number;
}

export interface Partitions {
  /** In address order, covering the VIP's family's whole space. */
  portions: { prefix: Prefix; owner: string }[];
  congestedAt: number;
  holdS: number;
}

/** A device of a chain hop as written: on a port, by MAC or by an address resolved by ARP there. */
export interface ChainDeviceInput {
  name: string;
  port: string;
  mac?: string;
  address?: string;
}

/** An ordered list of hops, referenced by services (`services[].chain`). */
export interface ChainInput {
  name: string;
  hops: {
    name: string;
    /** inline: out to the device and back before the next hop; mirror: a copy goes to it. */
    kind: "inline" | "mirror";
    /** The devices that take flows (each flow keeps its own). */
    devices: ChainDeviceInput[];
    /** Stand in, in order, for a device that fails. */
    alternates?: ChainDeviceInput[];
  }[];
}

/** An ACL table as written: judges new flows entering `port` (of `service` only, if named). */
export interface AclInput {
  name: string;
  port: string;
  service?: string;
  /** What no rule matches gets (default allow). */
  default?: "allow" | "deny";
  rules: {
    name: string;
    action: "allow" | "deny";
    /** tcp, udp, icmp, icmpv6 or an IP protocol number; absent: any. */
    protocol?: "tcp" | "udp" | "icmp" | "icmpv6" | number;
    /** Client prefix; absent: any. */
    source?: string;
    /** A port or "first-last"; needs protocol tcp or udp. */
    sourcePorts?: number | string;
    destinationPorts?: number | string;
  }[];
}

/**
 * A flow rule as written: new flows to a service's VIP that match it go to `backend` (when that
 * backend takes new flows; else the service's Maglev pick), and their packets toward the backend
 * get the actions. Counters and forwarding mode are the service's. Tunnel services: no actions.
 */
export interface FlowRuleInput {
  name: string;
  /** Client prefix such as 192.0.2.0/24 (default: any client), of the VIP's family. */
  source?: string;
  /** Default: any (the service's). */
  protocol?: Protocol;
  vip: string;
  /** Destination port; 0 or absent: any. */
  port?: number;
  backend: string;
  /** DSCP written to IPv4 TOS / IPv6 traffic class (ECN bits kept). */
  dscp?: number;
  /** 802.1p priority of the outermost VLAN tag (the pushed one, if any). */
  pcp?: number;
  /** VLAN id of an 802.1Q tag pushed on the frame. */
  vlanPush?: number;
  /** Remove the outermost VLAN tag, if any (before a push). */
  vlanPop?: boolean;
  mplsPush?: { label: number; tc?: number; ttl?: number };
  /** Remove the top MPLS label, if any (before a push). */
  mplsPop?: boolean;
  /** Idle timeout of established flows, seconds (default: the protocol's). */
  idleTimeout?: number;
}

export interface Prefix {
  family: 4 | 6;
  /** Host bits zero. */
  bytes: Uint8Array;
  length: number;
  text: string;
}

export interface FlowRule {
  name: string;
  /** Undefined: any client. */
  source?: Prefix;
  /** Undefined: any. */
  protocol?: Protocol;
  vip: Address;
  /** 0: any. */
  port: number;
  backend: string;
  dscp?: number;
  pcp?: number;
  vlanPush?: number;
  vlanPop: boolean;
  mplsPush?: { label: number; tc: number; ttl: number };
  mplsPop: boolean;
  /** Seconds; undefined: the protocol's. */
  idleTimeout?: number;
}

/** Idle timeouts in seconds. */
export interface Timeouts {
  tcp: number;
  tcpSyn: number;
  tcpClosing: number;
  udp: number;
  icmp: number;
  other: number;
}

export interface Address {
  family: 4 | 6;
  bytes: Uint8Array;
  text: string;
}

export interface Port {
  index: number;
  name: string;
  device: string;
  mac: Uint8Array;
  mtu: number;
  ipv4?: Address;
  ipv6?: Address;
  peer?: number;
  gateway?: Address;
  gateway6?: Address;
  gatewayMac?: Uint8Array;
}

export interface Backend {
  name: string;
  address: Address;
  /** Undefined until resolved: the backend takes no traffic meanwhile. */
  mac?: Uint8Array;
  via: number;
  natPort: number;
  state: BackendState;
  check?: Check;
  /** 0: not stated (its load counts as 0 unless it reports one by advertisement). */
  capacity: number;
  /** Set for a system appliance's site (levels.sites): a backend reached through an IP-in-IP tunnel. */
  site?: boolean;
}

export interface Service {
  name: string;
  vip: Address;
  protocol: Protocol;
  port: number;
  mode: ForwardingMode;
  targetPort: number;
  backends: { name: string; weight: number }[];
  onBackendDown: "reselect" | "reset";
  arp: boolean;
  tunnel: { encap: "ipip" | "gue"; source4?: Address; source6?: Address; guePort: number };
  chain?: string;
  policy: "maglev" | "primary-backup" | "source-partition";
  /** Set when policy is source-partition. */
  partitions?: Partitions;
}

export interface ChainDevice {
  name: string;
  /** Port index. */
  port: number;
  mac?: Uint8Array;
  address?: Address;
  /** Set by the appliance: false when the device has failed (no return, or its check). */
  up?: boolean;
}

export interface Chain {
  name: string;
  hops: { name: string; kind: "inline" | "mirror"; devices: ChainDevice[]; alternates: ChainDevice[] }[];
}

export interface AclRule {
  name: string;
  deny: boolean;
  /** 0: any. */
  protocol: number;
  /** 0: either family. */
  family: 0 | 4 | 6;
  source?: Prefix;
  sourcePorts: [number, number];
  destinationPorts: [number, number];
}

export interface AclTable {
  name: string;
  /** Port index. */
  port: number;
  service?: string;
  deny: boolean;
  rules: AclRule[];
}

/** Sizes fixed at boot: changing them needs a restart of the engines. */
export interface DataplaneSizes {
  ipv4Flows: number;
  ipv6Flows: number;
  maglevSize: number;
  maxServices: number;
  maxBackends: number;
  bufferCount: number;
  bufferSize: number;
  engines: number;
}

export interface Config {
  hostname: string;
  timezone: string;
  ntp: string[];
  users: User[];
  management: { ipv4?: Address; ipv6?: Address };
  ports: Port[];
  sizes: DataplaneSizes;
  timeouts: Timeouts;
  noVip: "forward" | "drop";
  backends: Backend[];
  services: Service[];
  /** In priority order. */
  flowRules: FlowRule[];
  telemetry: TelemetryConfig;
  /** Undefined when the configuration has no snmp section: no agent runs. */
  snmp?: SnmpConfig;
  /** Undefined when the configuration has no discovery section: nothing is learnt. */
  discovery?: DiscoveryConfig;
  chains: Chain[];
  acls: AclTable[];
  /** Undefined when the configuration has no ha section: no peer, no election. */
  ha?: HaConfig;
  /** Undefined when the configuration has no levels section: no tunnels in, no updates, no recovery. */
  levels?: LevelsConfig;
  /**
   * The redundant pair's role in the data plane: set by the appliance's HA state, never written
   * in a configuration. standby: forward nothing; flowEvents: report flows for the peer.
   */
  role?: { standby: boolean; flowEvents: boolean };
}

export const DEFAULT_TIMEOUTS: Timeouts = {
  tcp: 900, // like LVS: idle SSH sessions survive a coffee break
  tcpSyn: 30, // a SYN that is never followed by more: floods age out fast
  tcpClosing: 10, // after FIN or RST: the last ACKs still find their way
  udp: 60,
  icmp: 10,
  other: 60,
};

export const DEFAULT_SIZES: DataplaneSizes = {
  ipv4Flows: 1 << 20,
  ipv6Flows: 1 << 16,
  maglevSize: 65537,
  maxServices: 64,
  maxBackends: 1024,
  bufferCount: 4096,
  bufferSize: 2048,
  engines: 0, // 0: cores minus one, at least one (decided at boot)
};

export const DEFAULT_TIMEZONE = "UTC";
export const DEFAULT_USER_CLASS: UserClass = "operator";

export const CHECK_DEFAULT_SECONDS = { interval: 2, timeout: 1 };
export const CHECK_DEFAULT_COUNTS = { rise: 2, fall: 3 };

/** MQTT telemetry as written. No `mqtt.url`: the appliance publishes to its own embedded broker. */
export interface TelemetryInput {
  /** false: no telemetry at all, and no embedded broker (default true). */
  enabled?: boolean;
  mqtt?: {
    /** mqtt://host[:port] or mqtts://host[:port]; absent: the embedded broker. */
    url?: string;
    username?: string;
    /** Sent to the broker as is, so kept as is: never echoed in errors or logs. */
    password?: string;
    /** PEM files: the CA that signed the broker's certificate, and a client certificate and key. */
    ca?: string;
    cert?: string;
    key?: string;
    /** The <site> level of the topic tree (default "default"). */
    site?: string;
    /** Seconds between metrics messages (default 10). */
    interval?: number;
    format?: "json" | "cbor";
    /** Events held while the broker is away; beyond this they are dropped and counted (default 1000). */
    eventBuffer?: number;
  };
  embeddedBroker?: { address?: string; port?: number };
}

export interface TelemetryConfig {
  enabled: boolean;
  mqtt: {
    url?: string;
    username?: string;
    password?: string;
    ca?: string;
    cert?: string;
    key?: string;
    site: string;
    intervalMs: number;
    format: "json" | "cbor";
    eventBuffer: number;
  };
  /** Where the embedded broker listens; used only when mqtt.url is absent. */
  embeddedBroker: { address: string; port: number };
}

export const TELEMETRY_DEFAULTS = {
  site: "default",
  interval: 10, // seconds: a dashboard's usual resolution, a few hundred bytes per message
  format: "json" as const,
  eventBuffer: 1000, // a flapping backend for minutes, at a few hundred bytes each
  brokerAddress: "127.0.0.1", // the embedded broker is not offered to the network unless asked
  brokerPort: 1883,
};

/** The SNMP agent as written. Keys and communities are secrets: never echoed in errors or logs. */
export interface SnmpInput {
  listen?: { address?: string; port?: number };
  /** The enterprise number the appliance's MIB lives under (default 32473, for documentation). */
  enterprise?: number;
  location?: string;
  contact?: string;
  /** SNMPv2c read-only communities; `name` is the community string itself. */
  communities?: { name: string }[];
  /** SNMPv3 USM users, always authPriv. */
  users?: SnmpUserInput[];
  /** Where notifications go: v2c traps, v3 informs. */
  notify?: SnmpNotifyInput[];
  /** Flow-table use, in percent, that raises a notification (default 90). */
  flowTableThreshold?: number;
}

export type SnmpAuthProtocol = "sha" | "sha224" | "sha256" | "sha384" | "sha512";
export type SnmpPrivProtocol = "aes" | "aes256b" | "aes256r";

export interface SnmpUserInput {
  name: string;
  authProtocol?: SnmpAuthProtocol;
  authKey: string;
  privProtocol?: SnmpPrivProtocol;
  privKey: string;
}

export interface SnmpNotifyInput {
  name: string;
  address: string;
  port?: number;
  version: "v2c" | "v3";
  /** v2c: the community sent (default: the first of `communities`). */
  community?: string;
  /** v3: the name of one of `users`, whose keys protect the inform. */
  user?: string;
}

export interface SnmpUser {
  name: string;
  authProtocol: SnmpAuthProtocol;
  authKey: string;
  privProtocol: SnmpPrivProtocol;
  privKey: string;
}

export type SnmpNotify =
  | { name: string; address: string; port: number; version: "v2c"; community: string }
  | { name: string; address: string; port: number; version: "v3"; user: SnmpUser };

export interface SnmpConfig {
  listen: { address: string; port: number };
  enterprise: number;
  location: string;
  contact: string;
  communities: string[];
  users: SnmpUser[];
  notify: SnmpNotify[];
  flowTableThreshold: number;
}

export const SNMP_DEFAULTS = {
  address: "0.0.0.0",
  port: 161,
  enterprise: 32473, // IANA's enterprise number for documentation (RFC 5612): a site sets its own
  authProtocol: "sha256" as SnmpAuthProtocol,
  privProtocol: "aes" as SnmpPrivProtocol,
  notifyPort: 162,
  flowTableThreshold: 90,
};

/** The supervisor as written (docs/supervisor.md). */
export interface SupervisorInput {
  /** Management address its UDP socket binds (default management.ipv4, else management.ipv6). */
  address?: string;
  /** UDP port (default discovery.port). */
  port?: number;
  /** Interval end systems are told to advertise at, ms (default 1000). */
  intervalMs?: number;
  /** Live registrations at most (default 1024). */
  maxEndSystems?: number;
  /** Number pools of the number authority; leases are kept in the state directory. */
  pools?: { name: string; first: number; last: number; maxLeaseS?: number }[];
  /** Appliances on other segments that advertisements are relayed to: "address" or "address:port" ("[v6]:port"). */
  relay?: string[];
  /** Other supervisors' addresses: what they send is never relayed. */
  peers?: string[];
}

export interface SupervisorSettings {
  address: Address;
  port: number;
  intervalMs: number;
  maxEndSystems: number;
  pools: { name: string; first: number; last: number; maxLeaseS: number }[];
  relay: { address: Address; port: number }[];
  peers: Address[];
}

export const SUPERVISOR_DEFAULTS = {
  intervalMs: 1000,
  maxEndSystems: 1024,
  maxLeaseS: 3600,
};

/**
 * The redundant pair as written (docs/ha-protocol.md). Per appliance: node, priority and the
 * links' addresses differ between the two boxes of a pair.
 */
export interface HaInput {
  /** This appliance's id in the pair; the peer's must differ. Ties of priority go to the lower id. */
  node: string;
  /** 1-254, higher is preferred as active (default 100). */
  priority?: number;
  /** Take over from a lower-priority active peer once this node holds the flow state (default true). */
  preempt?: boolean;
  /** How long the preempt conditions must hold before preempting, ms (default 0). */
  preemptDelayMs?: number;
  /** Heartbeat interval, ms (default 50). */
  intervalMs?: number;
  /** Intervals without a heartbeat on any link before the peer is dead (default 3). */
  deadCount?: number;
  /** Keys heartbeats may be signed with; id 1-65535, secret in hex or base64, 16 bytes or more. */
  keys: { id: number; secret: string }[];
  /** 1-4 independent paths to the peer; the peer is dead only when every one is silent. */
  links: HaLinkInput[];
  /** Gratuitous ARP bursts sent on becoming active. */
  garp?: { count?: number; intervalMs?: number };
}

export interface HaLinkInput {
  name: string;
  /** Address the link's UDP socket binds (a kernel-side address of this appliance). */
  local: string;
  /** The peer's address on this link. */
  peer: string;
  /** UDP port, the same on both ends (default 7788). */
  port?: number;
}

export interface HaLink {
  name: string;
  local: Address;
  peer: Address;
  port: number;
}

export interface HaConfig {
  node: string;
  priority: number;
  preempt: boolean;
  preemptDelayMs: number;
  intervalMs: number;
  deadCount: number;
  keys: { id: number; secret: Uint8Array }[];
  links: HaLink[];
  garp: { count: number; intervalMs: number };
}

export const HA_DEFAULTS = {
  priority: 100, // VRRP's default: an operator raises the one meant to be active
  preempt: true,
  preemptDelayMs: 0,
  intervalMs: 50, // 3 x 50 ms: a dead peer is noticed within 150 ms
  deadCount: 3,
  port: 7788,
  garpCount: 3, // a lost gratuitous ARP is covered by the next
  garpIntervalMs: 20,
};

/**
 * Multi-level service routing as written (docs/levels.md). A site appliance picks servers (as
 * every appliance does); a system appliance picks sites, each reached through an IP-in-IP tunnel
 * to the site appliance's data-port address, by cost = F(load, distance) from the sites' signed
 * load updates. Both may ask their peers about a mid-flow packet they have no flow for.
 */
export interface LevelsInput {
  /** site (default): selects servers; system: selects sites. */
  role?: "site" | "system";
  /** This appliance's id in updates and queries (default: system.hostname). */
  name?: string;
  /** Keys updates and queries may be signed with; id 1-65535, secret in hex or base64, 16 bytes or more. The first signs. */
  keys: { id: number; secret: string }[];
  /** Kernel-side address the levels UDP socket binds (default: management.ipv4, else 0.0.0.0). */
  local?: string;
  /** UDP port of the levels socket, the same on every appliance (default 7790). */
  port?: number;
  /** Site: the system appliances its load updates go to ("address" or "address:port"). */
  uplinks?: string[];
  /** Site: ms between load updates (default 1000). */
  intervalMs?: number;
  /** Site: how the loads of a VIP's servers make one figure (default mean). */
  aggregate?: LevelsAggregate;
  /** Site: virtual subnets reported as a whole (the aggregate over every served VIP inside), besides each VIP. */
  subnets?: string[];
  /** Site: take IP-in-IP (protocol 4 and 41) packets addressed to a port address whose inner destination is a VIP (default true). */
  decapsulate?: boolean;
  /** System: the sites, each also a backend by its name (a tunnel service lists them as its backends). */
  sites?: LevelsSiteInput[];
  /** System: missed update intervals before a site takes no new flows (default 3). */
  deadIntervals?: number;
  /** System: cost = load% x cost.load + distance x cost.distance; sites within cost.tolerance of the lowest share new flows. */
  cost?: { load?: number; distance?: number; tolerance?: number };
  /** Flow recovery: who is asked about a mid-flow TCP packet without a flow entry (docs/levels.md). */
  recovery?: { enabled?: boolean; peers?: string[]; timeoutMs?: number; maxPending?: number };
}

export type LevelsAggregate = "mean" | "max" | "min" | "sum" | "median";

export interface LevelsSiteInput {
  name: string;
  /** The site appliance's data-port address: the tunnels' outer destination. */
  address: string;
  /** The board port the site is reached through (as a backend's via). */
  via: string;
  mac?: string;
  /** The site appliance's levels socket ("address" or "address:port"; default: address at levels.port). */
  control?: string;
  /** A fixed distance (any unit the operator likes: hops, ms, money), or "measured": the smoothed round trip of pings, in ms (default). */
  distance?: number | "measured";
}

export interface LevelsEndpoint {
  address: Address;
  port: number;
}

export interface LevelsSite {
  name: string;
  /** Same as the backend of the same name's address. */
  address: Address;
  control: LevelsEndpoint;
  distance: number | "measured";
}

export interface LevelsConfig {
  role: "site" | "system";
  name: string;
  keys: { id: number; secret: Uint8Array }[];
  local?: Address;
  port: number;
  uplinks: LevelsEndpoint[];
  intervalMs: number;
  aggregate: LevelsAggregate;
  subnets: Prefix[];
  decapsulate: boolean;
  sites: LevelsSite[];
  deadIntervals: number;
  cost: { load: number; distance: number; tolerance: number };
  recovery: { enabled: boolean; peers: LevelsEndpoint[]; timeoutMs: number; maxPending: number };
}

export const LEVELS_DEFAULTS = {
  port: 7790,
  intervalMs: 1000,
  aggregate: "mean" as LevelsAggregate,
  deadIntervals: 3,
  cost: { load: 1, distance: 1, tolerance: 5 },
  recoveryTimeoutMs: 20,
  recoveryMaxPending: 4096,
};
