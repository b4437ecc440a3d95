// The network commands both labs (lab.ts, levels.ts) build their namespaces with: batches of ip
// (or bridge) commands that name the failing line, sysctls, veth pairs made in place, offloads
// off, and which of a lab's namespaces exist now.
import { CommandError, run, tryRun } from "./exec.js";
import { MTU } from "./topology.js";

/** `ip [-4|-6] -n NS -batch -` (or `bridge`): one command per line; a failure names the line. */
export async function ipBatch(ns: string, lines: readonly string[], o: { tool?: "ip" | "bridge"; family?: "-4" | "-6" } = {}): Promise<void> {
  const head = [o.tool ?? "ip", ...(o.family ? [o.family] : [])];
  try {
    await run([...head, "-n", ns, "-batch", "-"], { input: `${lines.join("\n")}\n` });
  } catch (e) {
    const line = /Command failed -:(\d+)/.exec((e as CommandError).stderr ?? "");
    if (line) (e as Error).message += `\n  the failed line: ${head.join(" ")} -n ${ns} ${lines[Number(line[1]) - 1]}`;
    throw e;
  }
}

export async function sysctl(ns: string, settings: Record<string, string | number>): Promise<void> {
  await run(["ip", "netns", "exec", ns, "sysctl", "-q", "-w", ...Object.entries(settings).map(([k, v]) => `${k}=${v}`)]);
}

/** A veth pair from `dev` (in the namespace the batch runs in) to `peer` in `peerNs`, both ends made in place (nothing in the host's namespace). */
export function veth(dev: string, peer: string, peerNs: string): string {
  return `link add ${dev} mtu ${MTU} type veth peer name ${peer} mtu ${MTU} netns ${peerNs}`;
}

/** Checksum offload, TSO, GSO and GRO off: the frames the appliance reads in user space are wire-sized, with real checksums. */
export async function offloadsOff(ns: string, dev: string): Promise<void> {
  await run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off"]);
}

/** Which of `names` exist as network namespaces now. */
export async function presentNamespaces(names: readonly string[]): Promise<string[]> {
  const r = await tryRun(["ip", "netns", "list"]);
  if (!r.ok) return [];
  const present = new Set(r.stdout.split("\n").map((l) => l.trim().split(/\s+/)[0]).filter(Boolean));
  return names.filter((n) => present.has(n));
}
