// The configuration the lab gives the appliance (appliance.json): ports front and back on the Linux
// board's interfaces, health checks from the management address, one backend per server and family,
// and four services: DSR and NAT, IPv4 and IPv6, TCP port 80. Tests and the benchmark write
// variants (a backend draining, one backend only) and send the appliance SIGHUP.
//
// The shape is the project's config format (host/config/schema.ts) including the fields the Linux
// board brings (management, port device/gateway/gateway6, dataplane.engines, backend check, backend
// mac optional); it is declared here rather than taken from ConfigInput so that the lab states
// exactly what it writes.
import { APPLIANCE, HTTP_PORT, ROUTER, SERVERS, VIPS, type ServerName } from "./topology.js";

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
}

export interface LabServiceConfig {
  name: string;
  vip: string;
  protocol: "tcp";
  port: number;
  mode: "dsr" | "nat";
  backends: string[];
}

export interface LabApplianceConfig {
  system: { hostname: string };
  management: { ipv4: string; ipv6: string };
  ports: LabPortConfig[];
  dataplane: { noVip: "drop"; engines: number };
  backends: LabBackendConfig[];
  services: LabServiceConfig[];
}

export interface ApplianceConfigOptions {
  /** MAC addresses of fsl-app's front and back interfaces (the Linux board sends with them). */
  frontMac: string;
  backMac: string;
  /** Servers in the pools (default: all three). The benchmark uses ["s1"]. */
  servers?: readonly ServerName[];
  /** Backend state per server, for both of its backends (IPv4 and IPv6); default active. */
  states?: Partial<Record<ServerName, BackendState>>;
  /** Packet engines (default 1). */
  engines?: number;
}

/** The backend names of a server: IPv4 and IPv6. */
export const backendNames = (s: ServerName): { v4: string; v6: string } => ({ v4: s, v6: `${s}v6` });

export function applianceConfig(o: ApplianceConfigOptions): LabApplianceConfig {
  const servers = SERVERS.filter((s) => (o.servers ?? SERVERS.map((x) => x.name)).includes(s.name));
  if (servers.length === 0) throw new Error("applianceConfig: no servers");
  const states = o.states ?? {};
  const backends: LabBackendConfig[] = servers.flatMap((s) => {
    const state = states[s.name] ?? "active";
    const names = backendNames(s.name);
    return [
      { name: names.v4, address: s.ipv4, via: "back", state, check: HEALTH_CHECK },
      { name: names.v6, address: s.ipv6, via: "back", state, check: HEALTH_CHECK },
    ];
  });
  const v4 = servers.map((s) => backendNames(s.name).v4);
  const v6 = servers.map((s) => backendNames(s.name).v6);
  const service = (name: string, vip: string, mode: "dsr" | "nat", pool: string[]): LabServiceConfig =>
    ({ name, vip, protocol: "tcp", port: HTTP_PORT, mode, backends: pool });
  return {
    system: { hostname: "fsl-app" },
    management: { ipv4: APPLIANCE.mgmt.ipv4, ipv6: APPLIANCE.mgmt.ipv6 },
    ports: [
      { name: "front", device: "front", mac: o.frontMac, mtu: 1500, ipv4: APPLIANCE.front.ipv4, ipv6: APPLIANCE.front.ipv6, gateway: ROUTER.app.ipv4, gateway6: ROUTER.app.ipv6 },
      { name: "back", device: "back", mac: o.backMac, mtu: 1500, ipv4: APPLIANCE.back.ipv4, ipv6: APPLIANCE.back.ipv6 },
    ],
    dataplane: { noVip: "drop", engines: o.engines ?? 1 },
    backends,
    services: [
      service("web-dsr", VIPS.dsr4, "dsr", v4),
      service("web-nat", VIPS.nat4, "nat", v4),
      service("web6-dsr", VIPS.dsr6, "dsr", v6),
      service("web6-nat", VIPS.nat6, "nat", v6),
    ],
  };
}

/** Services by VIP, for tests that pick a VIP and want its service's name. */
export const SERVICE_BY_VIP: Record<string, string> = {
  [VIPS.dsr4]: "web-dsr",
  [VIPS.nat4]: "web-nat",
  [VIPS.dsr6]: "web6-dsr",
  [VIPS.nat6]: "web6-nat",
};
