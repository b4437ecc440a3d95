// The topology every data-plane fixture uses: a client port facing a router, a server port facing
// three servers (IPv4 and IPv6), one VIP per family.
import type { ConfigInput, ServiceInput, BackendInput } from "../../host/config/schema.js";

export const ROUTER_MAC = "02:00:00:00:01:fe";
export const CLIENT_PORT_MAC = "02:00:00:00:01:01";
export const SERVER_PORT_MAC = "02:00:00:00:02:01";
export const CLIENT_PORT_IP = "192.0.2.1";
export const CLIENT_PORT_IP6 = "2001:db8:1::1";
export const VIP = "10.0.0.100";
export const VIP6 = "2001:db8::100";
export const CLIENT = "192.0.2.10";
export const CLIENT6 = "2001:db8:c::10";
export const TUNNEL_SRC = "10.0.2.1";
export const TUNNEL_SRC6 = "2001:db8:2::1";

export const SERVERS = [1, 2, 3].map((i) => ({
  name: `s${i}`,
  ip: `10.0.2.1${i}`,
  ip6: `2001:db8:2::1${i}`,
  mac: `02:00:00:00:02:1${i}`,
  mac6: `02:00:00:00:02:2${i}`,
}));

export function backends(states: Record<string, BackendInput["state"]> = {}): BackendInput[] {
  return SERVERS.flatMap((s) => [
    { name: s.name, address: s.ip, mac: s.mac, via: "server", state: states[s.name] ?? "active" },
    { name: `${s.name}v6`, address: s.ip6, mac: s.mac6, via: "server", state: states[`${s.name}v6`] ?? "active" },
  ]);
}

export function labConfig(services: ServiceInput[], extra: Partial<ConfigInput> & { states?: Record<string, BackendInput["state"]> } = {}): ConfigInput {
  const { states, ...rest } = extra;
  return {
    ports: [
      { name: "client", mac: CLIENT_PORT_MAC, gatewayMac: ROUTER_MAC, ipv4: CLIENT_PORT_IP, ipv6: CLIENT_PORT_IP6 },
      { name: "server", mac: SERVER_PORT_MAC, ipv4: "10.0.2.1" },
    ],
    dataplane: { flows: { ipv4: 4096, ipv6: 1024 }, limits: { services: 8, backends: 16 }, buffers: { count: 256 } },
    backends: backends(states),
    services,
    telemetry: { enabled: false }, // tests that want MQTT say so; no embedded broker per fixture
    ...rest,
  };
}

/** A one-backend service, so that fixtures know where a flow goes without asking Maglev. */
export function svc(mode: ServiceInput["mode"], o: Partial<ServiceInput> = {}): ServiceInput {
  return { name: "web", vip: VIP, protocol: "tcp", port: 80, mode, backends: ["s1"], ...o };
}
