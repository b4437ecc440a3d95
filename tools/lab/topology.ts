// The lab's names and addresses, declared once: the lab builder, the appliance config generator,
// the end-to-end tests and the end-to-end benchmark all read them from here.
//
//   fsl-cli (client) --- fsl-rtr (router) --- front: fsl-app (Flowswitch) :back ---+
//                              | br0 (10.77.3.0/24, the server segment)             |
//                              +--- app-back, app-mgmt, s1, s2, s3 -----------------+
//
// Every namespace name starts with "fsl-" so that the lab never touches anything it did not make.
// The VIPs sit on the router's front subnet (10.77.2.0/24): the router resolves them by ARP/ND on
// its `app` port, and the appliance answers.

export const CLIENT_NS = "fsl-cli";
export const ROUTER_NS = "fsl-rtr";
export const APPLIANCE_NS = "fsl-app";

export type ServerName = "s1" | "s2" | "s3";

export interface LabServer {
  name: ServerName;
  ns: string;
  ipv4: string;
  ipv6: string;
  /** The server's bridge port in fsl-rtr. */
  routerPort: string;
}

export const SERVERS: readonly LabServer[] = ([1, 2, 3] as const).map((i) => ({
  name: `s${i}` as ServerName,
  ns: `fsl-s${i}`,
  ipv4: `10.77.3.1${i}`,
  ipv6: `fd77:3::1${i}`,
  routerPort: `s${i}`,
}));

export const SERVER_NAMES: readonly ServerName[] = SERVERS.map((s) => s.name);

export function server(name: ServerName): LabServer {
  const s = SERVERS.find((x) => x.name === name);
  if (!s) throw new Error(`no lab server named ${name}`);
  return s;
}

export const NAMESPACES: readonly string[] = [CLIENT_NS, ROUTER_NS, APPLIANCE_NS, ...SERVERS.map((s) => s.ns)];

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

/** The servers' routing table for replies from their own address (NAT: back through the appliance). */
export const NAT_REPLY_TABLE = 100;

export const MTU = 1500;
/** Size of /big, the file for long downloads (sparse: all zeros, no disk used). */
export const BIG_FILE_BYTES = 100 * 1024 * 1024;

/** An address in a URL: IPv6 in brackets. */
export function urlHost(address: string): string {
  return address.includes(":") ? `[${address}]` : address;
}
