// The configurations of the multi-level lab's appliances (`up --levels`; names and addresses in
// topology.ts): one function per node, so that tests can make variants and reload them with SIGHUP.
//
// - sys (role system): one data port `core`; the sites siteA (by sa1) and siteB (by sb), each a
//   backend reached through an IP-in-IP tunnel, siteA near (distance 1) and siteB far (20); the
//   service `web` at the system VIP in mode tunnel over both sites.
// - sa1, sa2 (site A) and sb (site B), role site: data ports `up` (core segment) and `down` (the
//   site's server segment); the site's two servers as backends (capacity 20, the main lab's HTTP
//   health check); `web` at the system VIP, DSR (what the system's tunnels carry, once opened), and
//   on site A also `site` at site A's VIP, DSR (what the router's ECMP route sends to sa1 and sa2).
//   sa1 and sa2 have the same services and backends, so they make the same Maglev choice. The
//   site's entry node (sa1, sb) sends load updates up to the system; sa1 and sa2 ask each other
//   about flows they do not know (recovery peers).
//
// Every node: the lab's levels key, port 7790, updates every 200 ms (a fast lab), the levels socket
// on the node's management address, small flow tables. No VIP answers ARP: the router routes them.
//
// The shape is the project's own (host/config/schema.ts ConfigInput), so that the compiler keeps the
// lab in step with it; writeLevelsConfig (levels.ts) also validates each config before writing it.
import type { BackendState, BackendInput, ConfigInput, LevelsInput, LevelsSiteInput, ServiceInput } from "../../host/config/schema.js";
import { HEALTH_CHECK } from "./appliance-config.js";
import {
  HTTP_PORT, LEVELS_NODES, LEVELS_SEGMENTS, LEVELS_SERVERS, LEVELS_SITES, LEVELS_SITE_NAMES, LEVELS_VIPS, MTU, levelsDataAddress,
  type LevelsNodeName, type LevelsServerName, type LevelsSiteName,
} from "./topology.js";

/** The lab's levels settings. */
export const LEVELS_LAB = {
  /** The levels socket's UDP port on every node (the protocol's default). */
  port: 7790,
  /** Load updates every 200 ms: a site that stops is dead to the system after deadIntervals of them. */
  intervalMs: 200,
  deadIntervals: 3,
  /** Each server's capacity: its load in the updates is flows / 20, so a few curl loops show. */
  capacity: 20,
  /** The id of the lab's key (levels.key in the state directory). */
  keyId: 1,
  /** Small flow tables: four appliances share the machine, and no test needs more. */
  flows: { ipv4: 65536, ipv6: 1024 },
} as const;

/** The system's distance to each site (levels.sites[].distance): site A is the near one. */
export const LEVELS_DISTANCE: Record<LevelsSiteName, number> = { siteA: 1, siteB: 20 };

/** Service names: `web` at the system VIP (every node), `site` at site A's VIP (site A's nodes). */
export const LEVELS_SERVICES = { web: "web", site: "site" } as const;

/** A config as the lab writes it: the project's config format, always with a levels section. */
export type LevelsApplianceConfig = ConfigInput & { levels: LevelsInput };

export interface LevelsKey {
  id: number;
  secret: string;
}

/** What a test may vary; the default is the lab's config as `up --levels` writes it. */
export interface LevelsVariant {
  /** Site nodes: servers in the pools (default: the site's two). */
  servers?: readonly LevelsServerName[];
  /** Site nodes: backend state per server (default active). */
  states?: Partial<Record<LevelsServerName, BackendState>>;
  /** System node: the sites it knows and `web` tunnels to (default both). */
  sites?: readonly LevelsSiteName[];
  /** Packet engines (default 1). */
  engines?: number;
  /** Merged over the generated levels section (recovery: field by field). */
  levels?: Partial<LevelsInput>;
  /** Last word: changes the generated config in place (anything the options above do not reach). */
  edit?: (config: LevelsApplianceConfig) => void;
}

export interface LevelsConfigInputs {
  /** The node's data ports' MACs by port name (the Linux board sends with them). */
  macs: Readonly<Record<string, string>>;
  /** The levels keys (the lab's: levels.ts levelsKey()). */
  keys: readonly LevelsKey[];
}

/** One node's config: its role's parts, its own ports, addresses and peers, the variant applied. */
export function levelsNodeConfig(name: LevelsNodeName, inputs: LevelsConfigInputs, variant: LevelsVariant = {}): LevelsApplianceConfig {
  const node = LEVELS_NODES[name];
  const ports = node.ports.map((p) => {
    const mac = inputs.macs[p.name];
    if (!mac) throw new Error(`levelsNodeConfig(${name}): no MAC for port ${p.name}`);
    // the core-side port sends what it originates (ICMP errors to clients) to the router
    const gateway = p.segment === "core" ? { gateway: LEVELS_SEGMENTS.core.router } : {};
    return { name: p.name, device: p.name, mac, mtu: MTU, ipv4: p.ipv4, ...gateway };
  });
  const common: LevelsInput = {
    role: node.role,
    // the system knows a site by the name its entry node sends updates under: the site's name
    name: node.site && LEVELS_SITES[node.site].entry === name ? node.site : name,
    keys: inputs.keys.map((k) => ({ ...k })),
    local: node.mgmt.ipv4,
    port: LEVELS_LAB.port,
    intervalMs: LEVELS_LAB.intervalMs,
  };
  const roleParts = node.role === "system" ? systemParts(variant) : siteParts(name, variant);
  const levels: LevelsInput = { ...common, ...roleParts.levels, ...variant.levels };
  if (roleParts.levels.recovery || variant.levels?.recovery) levels.recovery = { ...roleParts.levels.recovery, ...variant.levels?.recovery };
  const config: LevelsApplianceConfig = {
    system: { hostname: node.hostname },
    management: { ipv4: node.mgmt.ipv4 },
    ports,
    dataplane: { noVip: "drop", engines: variant.engines ?? 1, flows: { ...LEVELS_LAB.flows } },
    backends: roleParts.backends,
    services: roleParts.services,
    levels,
  };
  variant.edit?.(config);
  return config;
}

interface RoleParts {
  backends: BackendInput[];
  services: ServiceInput[];
  levels: Partial<LevelsInput>;
}

/** The system: the sites as tunnel backends, `web` over them. */
function systemParts(variant: LevelsVariant): RoleParts {
  const sites = LEVELS_SITE_NAMES.filter((s) => (variant.sites ?? LEVELS_SITE_NAMES).includes(s));
  if (sites.length === 0) throw new Error("levelsNodeConfig(sys): no sites (a system appliance needs one or more)");
  const siteEntries: LevelsSiteInput[] = sites.map((s) => {
    const entry = LEVELS_SITES[s].entry;
    return { name: s, address: levelsDataAddress(entry), via: "core", control: LEVELS_NODES[entry].mgmt.ipv4, distance: LEVELS_DISTANCE[s] };
  });
  return {
    backends: [],
    services: [{
      name: LEVELS_SERVICES.web, vip: LEVELS_VIPS.system, protocol: "tcp", port: HTTP_PORT, mode: "tunnel",
      tunnel: { encap: "ipip", source4: levelsDataAddress("sys") }, backends: [...sites], arp: false,
    }],
    levels: { sites: siteEntries, deadIntervals: LEVELS_LAB.deadIntervals },
  };
}

/** A site node: the site's servers behind `down`, DSR services, updates up (entry node), its peers. */
function siteParts(name: LevelsNodeName, variant: LevelsVariant): RoleParts {
  const siteName = LEVELS_NODES[name].site;
  if (!siteName) throw new Error(`levelsNodeConfig(${name}): a site node without a site (topology.ts LEVELS_NODES)`);
  const site = LEVELS_SITES[siteName];
  const servers = site.servers.filter((s) => (variant.servers ?? site.servers).includes(s));
  const backends: BackendInput[] = servers.map((s) => ({
    name: s, address: LEVELS_SERVERS[s].ipv4, via: "down", state: variant.states?.[s] ?? "active", capacity: LEVELS_LAB.capacity, check: { ...HEALTH_CHECK },
  }));
  const dsr = (service: string, vip: string): ServiceInput => ({ name: service, vip, protocol: "tcp", port: HTTP_PORT, mode: "dsr", backends: [...servers], arp: false });
  const peers = site.nodes.filter((n) => n !== name).map((n) => LEVELS_NODES[n].mgmt.ipv4);
  return {
    backends,
    services: [
      dsr(LEVELS_SERVICES.web, LEVELS_VIPS.system),
      ...(site.vips.includes(LEVELS_VIPS.siteA) ? [dsr(LEVELS_SERVICES.site, LEVELS_VIPS.siteA)] : []),
    ],
    levels: {
      ...(site.entry === name ? { uplinks: [LEVELS_NODES.sys.mgmt.ipv4] } : {}),
      ...(peers.length ? { recovery: { peers } } : {}),
    },
  };
}
