// The service-chain devices of the lab (`up --chain`; names and addresses: topology.ts CHAIN): two
// firewalls (fsl-fw1, fsl-fw2) and an IDS (fsl-ids), each a namespace with one interface (eth0) on
// the chain segment. The appliance steers a chained service's packets to a firewall's MAC out of
// its `chain` port; the firewall forwards them by its routing table back to the appliance's chain
// address on the same interface, which is all an unmodified network application does. The IDS only
// receives mirrored copies and forwards nothing.
//
// Each firewall counts what it forwards in nftables (table inet fsl, named counters, read with
// `nft -j`): everything (forwarded), per direction (from_client: source in the client subnet; to_client:
// destination in it) and the chained VIP as the client addressed it (to_vip). A firewall is "killed"
// by a rule in a chain of its own that drops everything it would forward (counted in `dead`): its
// link and ARP stay up, so only the appliance's "sent, never returned" can notice.
import { CHAIN, CHAIN_DEVICES, CLIENT, chainDevice, type ChainDevice, type ChainDeviceName } from "./topology.js";
import { nsRun } from "./exec.js";

export const FIREWALL_COUNTERS = ["forwarded", "from_client", "to_client", "to_vip", "dead"] as const;
export type FirewallCounter = (typeof FIREWALL_COUNTERS)[number];
export type FirewallCounters = Record<FirewallCounter, number>;

export const FIREWALLS: readonly ChainDevice[] = CHAIN_DEVICES.filter((d) => d.role === "firewall");
export const IDS: ChainDevice = CHAIN_DEVICES.find((d) => d.role === "ids")!;

/** The firewall's ruleset (nft -f -): counters in the forward hook, and an empty `kill` chain ahead of it. */
export function firewallRuleset(): string {
  const t = CHAIN.nftTable;
  return `table inet ${t}
delete table inet ${t}
table inet ${t} {
${FIREWALL_COUNTERS.map((c) => `  counter ${c} { }`).join("\n")}
  # empty until killFirewall(): then drops everything forwarded, before the counters below
  chain kill {
    type filter hook forward priority -10; policy accept;
  }
  chain forward {
    type filter hook forward priority 0; policy accept;
    counter name forwarded
    ip saddr ${CLIENT.prefix4} counter name from_client
    ip daddr ${CLIENT.prefix4} counter name to_client
    ip saddr ${CLIENT.prefix4} ip daddr ${CHAIN.vip} tcp dport ${CHAIN.port} counter name to_vip
  }
}
`;
}

/**
 * The network commands of one chain device's namespace (ip -batch lines), after its veth exists:
 * address, link, and for a firewall the routes back to the appliance's chain address.
 */
export function chainDeviceIpLines(d: ChainDevice): string[] {
  return [
    "link set lo up",
    `addr add ${d.ipv4}/${CHAIN.prefixLen} dev eth0`,
    "link set eth0 up",
    ...(d.role === "firewall"
      ? [CLIENT.prefix4, "10.77.2.0/24", "10.77.3.0/24"].map((p) => `route add ${p} via ${CHAIN.appliance} dev eth0`)
      : []),
  ];
}

/** Sysctls of a chain device: a firewall forwards, and sends no ICMP redirect for going out where it came in. */
export function chainDeviceSysctls(d: ChainDevice): Record<string, number> {
  return d.role === "firewall"
    ? { "net.ipv4.ip_forward": 1, "net.ipv4.conf.all.send_redirects": 0, "net.ipv4.conf.default.send_redirects": 0, "net.ipv4.conf.eth0.send_redirects": 0 }
    : { "net.ipv4.ip_forward": 0 };
}

export async function loadFirewallRuleset(name: ChainDeviceName): Promise<void> {
  await nsRun(chainDevice(name).ns, ["nft", "-f", "-"], { input: firewallRuleset() });
}

/** The firewall's counters now (packets). */
export async function readFirewallCounters(name: ChainDeviceName): Promise<FirewallCounters> {
  const { stdout } = await nsRun(chainDevice(name).ns, ["nft", "-j", "list", "counters", "table", "inet", CHAIN.nftTable]);
  const items = (JSON.parse(stdout) as { nftables: { counter?: { name: string; packets: number } }[] }).nftables;
  const out = Object.fromEntries(FIREWALL_COUNTERS.map((c) => [c, 0])) as FirewallCounters;
  for (const i of items) if (i.counter && (FIREWALL_COUNTERS as readonly string[]).includes(i.counter.name)) out[i.counter.name as FirewallCounter] = i.counter.packets;
  return out;
}

/** The counters' growth from `before` to `after`. */
export function counterDelta(before: FirewallCounters, after: FirewallCounters): FirewallCounters {
  return Object.fromEntries(FIREWALL_COUNTERS.map((c) => [c, after[c] - before[c]])) as FirewallCounters;
}

/** The firewall stops returning packets (drops all it would forward, counted in `dead`); its link and ARP stay up. */
export async function killFirewall(name: ChainDeviceName): Promise<void> {
  await nsRun(chainDevice(name).ns, ["nft", "add", "rule", "inet", CHAIN.nftTable, "kill", "counter", "name", "dead", "drop"]);
}

export async function reviveFirewall(name: ChainDeviceName): Promise<void> {
  await nsRun(chainDevice(name).ns, ["nft", "flush", "chain", "inet", CHAIN.nftTable, "kill"]);
}

