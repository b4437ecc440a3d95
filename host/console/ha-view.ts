// `show ha`: the redundant pair as an operator checks it at 3 a.m. -- which node forwards, whether
// the peer is heard on every link, whether the standby holds the flow state (it may only take
// over cleanly, and pre-empt, once it does), whether both run the same configuration, and every
// refusal counted.
import type { HaStats } from "../ha/heartbeat.js";
import type { PeerView } from "../ha/election.js";
import type { HaSyncStats } from "../ha/manager.js";

export interface HaView {
  node: string;
  role: string;
  priority: number;
  /** Held in standby by `request ha standby`. */
  maintenance: boolean;
  configVersion: number;
  configDigest: string;
  suppressedFrames: number;
  election?: HaStats;
  peer?: PeerView;
  sync?: HaSyncStats & { channel: { connects: number; framesSent: number; framesReceived: number; refused: Record<string, number> } };
}

const ago = (now: number, at?: number): string => (at === undefined ? "never" : `${Math.max(0, (now - at) / 1000).toFixed(1)}s ago`);
const when = (ms: number): string => (ms ? new Date(ms).toISOString().replace("T", " ").slice(0, 19) : "-");

export function renderHa(v: HaView | undefined, now = Date.now()): string {
  if (!v) return "High availability is not configured: this appliance runs alone.";
  const e = v.election;
  const p = v.peer;
  const s = v.sync;
  const lines = [
    `Node ${v.node}: ${v.role.toUpperCase()}${v.maintenance ? " (held in standby: request ha release)" : ""}, priority ${v.priority}${e ? `, since ${when(e.stateSince)}` : ""}`,
    `  Flow state      ${s?.ready || v.role === "active" ? "complete" : "incomplete (waiting for the active's resync)"}`,
    `  Configuration   version ${v.configVersion} (${when(v.configVersion)}), ${v.configDigest.slice(0, 12)}${p ? (p.configDigest === v.configDigest ? ", same as the peer" : ", DIFFERS from the peer") : ""}`,
  ];
  if (!p) lines.push("Peer: never heard");
  else {
    lines.push(`Peer ${p.node}: ${p.alive ? p.state.toUpperCase() : "DEAD"}, priority ${p.priority}, ${p.ready ? "holds the flow state" : "flow state incomplete"}, heard ${ago(now, p.lastHeardAt)}`);
  }
  if (e) {
    lines.push("Links:");
    for (const [name, l] of Object.entries(e.links)) {
      lines.push(`  ${name.padEnd(10)} ${l.local} -> ${l.peer}:${l.port}  ${l.bound ? (l.up ? "up" : "DOWN") : `not bound: ${l.error ?? "?"}`}, sent ${l.sent}, received ${l.received}, losses ${l.losses}, last ${ago(now, l.lastHeardAt)}`);
    }
    lines.push(`Elections: ${e.takeovers} takeovers, ${e.handovers} handovers, ${e.preempted} pre-empted, ${e.splitBrains} split brains`);
    const rejected = Object.entries(e.rejected).filter(([, n]) => n > 0);
    lines.push(`Heartbeats accepted ${e.accepted}, refused ${rejected.length ? rejected.map(([k, n]) => `${k} ${n}`).join(", ") : "none"}`);
    for (const [from, r] of Object.entries(e.rejectedBy)) lines.push(`  from ${from}: ${Object.entries(r).map(([k, n]) => `${k} ${n}`).join(", ")}`);
  }
  if (s) {
    lines.push(`Sync channel: ${s.connected ? "connected" : "DOWN"} (${s.channel.connects} connections), flows sent ${s.flowsSent}, received ${s.flowsReceived}, resyncs sent ${s.resyncsSent}, received ${s.resyncsReceived}`);
    if (s.lastResync) lines.push(`  last resync: ${s.lastResync.flows} flows in ${s.lastResync.ms} ms, ${ago(now, s.lastResync.at)}`);
    const refused = { ...s.installRefused, ...Object.fromEntries(Object.entries(s.channel.refused).map(([k, n]) => [`frame ${k}`, n])) };
    if (Object.keys(refused).length || s.eventsDropped) lines.push(`  refused: ${Object.entries(refused).map(([k, n]) => `${k} ${n}`).join(", ") || "none"}; events dropped (peer behind) ${s.eventsDropped}`);
    lines.push(`  configurations adopted from the peer ${s.configsAdopted}, refused ${s.configRefused}`);
  }
  if (v.role !== "active") lines.push(`Frames held back while not active: ${v.suppressedFrames}`);
  return lines.join("\n");
}
