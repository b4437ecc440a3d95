// flowswitch-agent in the lab's server namespaces (the discovery tests): each server advertises
// its services to 239.255.77.77:7777 on the server segment, from its own address, signed with the
// lab's key; the appliance learns the servers from that (appliance-config.ts, discovery). Per
// server, under <state>/<server>/: agent.json (its config), agent.log, agent.pid, agent.sock (the
// control socket `flowswitch-agent drain` talks to).
//
// Also a sender of arbitrary datagrams from a server's address, for tests that forge or replay one.
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULT_GROUP_V4, DEFAULT_PORT } from "../../host/discovery/protocol.js";
import { repoRoot } from "./appliance.js";
import { ensureStateDir, isAlive, nsTry, pidFromFile, signal, sleep, spawnInNs, statePath, stopPids } from "./exec.js";
import { HTTP_PORT, server, VIPS, type LabServerName } from "./topology.js";

/** The key id the lab signs with; the appliance's discovery section lists the same key. */
export const DISCOVERY_KEY_ID = 1;

export const agentPaths = (name: LabServerName): { config: string; log: string; pid: string; socket: string } => ({
  config: statePath(name, "agent.json"),
  log: statePath(name, "agent.log"),
  pid: statePath(name, "agent.pid"),
  socket: statePath(name, "agent.sock"),
});

const keyPath = (): string => statePath("discovery.key");

/** The lab's advertisement key: 32 random bytes (hex), made once per state directory, readable by root only. */
export function discoveryKey(): { id: number; secret: string } {
  ensureStateDir();
  const file = keyPath();
  if (!existsSync(file)) writeFileSync(file, `${randomBytes(32).toString("hex")}\n`, { mode: 0o600 });
  return { id: DISCOVERY_KEY_ID, secret: readFileSync(file, "utf8").trim() };
}

/** A FLOW the agent advertises, as its config file has it (tools/agent/config.ts). */
export interface LabAgentFlow {
  pattern: { vip: string; source?: string; protocol?: number; dstPorts?: { first: number; last: number } };
  endSystem?: string;
  attributes?: { dscp?: number; pcp?: number; idleTimeoutS?: number };
}

export interface LabAgentOptions {
  /** How often it advertises (SERVICE, LOAD, FLOW). */
  intervalMs: number;
  /** How long a drain waits for connections to end (default 60 s: longer than any test's download). */
  drainTimeoutS?: number;
  flows?: LabAgentFlow[];
  /** The group it advertises to (default the IPv4 one; "ff02::77" for the IPv6 one). */
  group?: string;
}

/** The agent's config for a server: its addresses, the lab's four VIPs on TCP port 80, weight 1. */
export function agentConfig(name: LabServerName, o: LabAgentOptions): object {
  const s = server(name);
  discoveryKey();
  return {
    id: name,
    addresses: [s.ipv4, s.ipv6],
    key: { id: DISCOVERY_KEY_ID, secretFile: keyPath() },
    group: o.group ?? DEFAULT_GROUP_V4,
    port: DEFAULT_PORT,
    // multicast leaves on the server segment, from the server's own address
    interface: s.ipv4,
    intervalMs: o.intervalMs,
    drainTimeoutS: o.drainTimeoutS ?? 60,
    controlSocket: agentPaths(name).socket,
    services: [VIPS.dsr4, VIPS.nat4, VIPS.dsr6, VIPS.nat6].map((vip) => ({ vip, protocol: "tcp", port: HTTP_PORT, weight: 1 })),
    flows: o.flows ?? [],
  };
}

export function agentCommand(...args: string[]): string[] {
  return [process.execPath, join(repoRoot(), "build", "tools", "flowswitch-agent.js"), ...args];
}

export function agentPid(name: LabServerName): number | undefined {
  return pidFromFile(agentPaths(name).pid);
}

/**
 * Writes the server's agent config and starts `flowswitch-agent run` in its namespace (detached,
 * output appended to agent.log). An agent already running there is killed first. Returns its pid.
 */
export async function startAgent(name: LabServerName, o: LabAgentOptions): Promise<number> {
  const p = agentPaths(name);
  await killAgent(name);
  mkdirSync(statePath(name), { recursive: true, mode: 0o755 });
  writeFileSync(p.config, `${JSON.stringify(agentConfig(name, o), null, 2)}\n`);
  const argv = agentCommand("run", "--config", p.config);
  writeFileSync(p.log, `--- lab: ${new Date().toISOString()}: ip netns exec ${server(name).ns} ${argv.join(" ")}\n`, { flag: "a" });
  const pid = await spawnInNs(server(name).ns, argv, p.log);
  writeFileSync(p.pid, `${pid}\n`);
  return pid;
}

/** Kills the server's agent with `sig` (default SIGKILL: no drain, no leaving) and waits until it is gone (bounded). */
export async function killAgent(name: LabServerName, sig: NodeJS.Signals = "SIGKILL"): Promise<void> {
  const pid = agentPid(name);
  if (pid) {
    if (sig === "SIGKILL") {
      signal(pid, "SIGKILL");
      const deadline = Date.now() + 2000;
      while (isAlive(pid) && Date.now() < deadline) await sleep(10);
    } else {
      signal(pid, sig);
      await stopPids([pid], 10_000);
    }
  }
  rmSync(agentPaths(name).pid, { force: true });
}

/**
 * `flowswitch-agent drain` in the server's namespace: returns once the agent has left (exit 0) or
 * the command gave up, with what it printed. Bounded by limitMs.
 */
export async function drainAgent(name: LabServerName, limitMs: number, timeoutS?: number): Promise<{ ok: boolean; output: string }> {
  const argv = agentCommand("drain", "--config", agentPaths(name).config, ...(timeoutS === undefined ? [] : ["--timeout", String(timeoutS)]));
  const r = await nsTry(server(name).ns, argv, { timeoutMs: limitMs });
  return { ok: r.ok, output: `${r.stdout}${r.stderr}${r.error && !r.stderr ? r.error.message : ""}`.trim() };
}

const SEND_SCRIPT = `
const [hex, from, to, port] = process.argv.slice(1);
const s = require("node:dgram").createSocket(to.includes(":") ? "udp6" : "udp4");
s.bind({ address: from, port: 0 }, () => {
  s.setMulticastTTL(1);
  s.setMulticastInterface(from);
  s.send(Buffer.from(hex, "hex"), Number(port), to, (e) => {
    if (e) { console.error(e.message); process.exitCode = 1; }
    s.close();
  });
});`;

/** Sends one UDP datagram (these exact bytes) from a server's namespace and address, to the advertisement group by default. */
export async function sendDatagram(name: LabServerName, bytes: Uint8Array, to = DEFAULT_GROUP_V4, port = DEFAULT_PORT): Promise<void> {
  const s = server(name);
  await sendDatagramFrom(s.ns, s.ipv4, bytes, to, port);
}

/** Sends one UDP datagram (these exact bytes) from any lab namespace and one of its IPv4 addresses (e.g. a forged heartbeat). */
export async function sendDatagramFrom(ns: string, from: string, bytes: Uint8Array, to: string, port: number): Promise<void> {
  const r = await nsTry(ns, [process.execPath, "-e", SEND_SCRIPT, Buffer.from(bytes).toString("hex"), from, to, String(port)], { timeoutMs: 10_000 });
  if (!r.ok) throw new Error(`sending a datagram from ${ns} (${from}) to ${to}:${port} failed: ${r.error?.message}`);
}
