// `show discovery supervisor`: the supervisor's registrations, its number pools and leases, and
// its counters, from the appliance's running supervisor (host/discovery/supervisor.ts).
import type { SupervisorHost } from "../discovery/supervisor-host.js";
import { hostPort } from "../discovery/supervisor-socket.js";
import { table } from "./commands.js";

/** What `show discovery supervisor` shows. */
export interface SupervisorView {
  /** Local clock, ms, that the times below are measured against. */
  now: number;
  listen: string;
  /** "running", "off" (no pools) or why the number authority is not running. */
  authority: string;
  registrations: { endSystem: string; addresses: string[]; services: number; lastHeard: number; from: string }[];
  pools: { name: string; first: number; last: number; used: number; heldBack: number; free: number; leases: number }[];
  leases: { leaseId: number; pool: string; endSystem: string; first: number; count: number; state: string; endsAt: number; freeAt: number }[];
  /** Counters by name, in the order shown. */
  counters: [string, number][];
  /** Requests refused, by reason. */
  refused: Record<string, number>;
  /** Datagrams refused, by reason. */
  rejected: Record<string, number>;
}

/** The console's view of a running supervisor. */
export function supervisorView(host: SupervisorHost | undefined): SupervisorView | undefined {
  const sup = host?.supervisor;
  const ep = host?.endpoint;
  if (!sup || !ep) return undefined;
  const s = sup.stats();
  return {
    now: Date.now(),
    listen: hostPort(ep.address, ep.port),
    authority: s.authority,
    registrations: sup.registrations().map((r) => ({ endSystem: r.endSystem, addresses: r.addresses, services: r.services.length, lastHeard: r.lastHeard, from: r.from })),
    pools: s.pools.map((p) => ({ name: p.name, first: p.first, last: p.last, used: p.used, heldBack: p.heldBack, free: p.free, leases: p.leases })),
    leases: sup.leases().map((l) => ({ leaseId: l.leaseId, pool: l.pool, endSystem: l.endSystem, first: l.first, count: l.count, state: l.state, endsAt: l.endsAt, freeAt: l.freeAt })),
    counters: [
      ...Object.entries(s.accepted).map(([k, v]): [string, number] => [`accepted ${k}`, v]),
      ["not acted on", s.ignored], ["answers sent", s.answers], ["retries answered again", s.repeated], ["relayed", s.relayed],
      ["not relayed (loop)", s.notRelayed], ["send errors", s.sendErrors], ["lease store errors", s.storeErrors],
    ],
    refused: s.refused,
    rejected: s.rejected,
  };
}

const fmt = (n: number): string => n.toLocaleString("en-US");

export function renderSupervisor(v: SupervisorView | undefined): string {
  if (!v) return "The supervisor is not running (configure discovery supervisor).";
  const secs = (ms: number): string => `${Math.round(ms / 1000)}s`;
  const range = (first: number, count: number): string => (count === 1 ? String(first) : `${first}-${first + count - 1}`);
  const lines = [`Supervisor on ${v.listen}, number authority ${v.authority}`, ""];
  lines.push(v.registrations.length
    ? table(["Registered", "Addresses", "Services", "Heard", "From"], v.registrations.map((r) => [r.endSystem, r.addresses.join(" "), String(r.services), `${secs(v.now - r.lastHeard)} ago`, r.from]))
    : "No end systems are registered.");
  if (v.pools.length) {
    lines.push("", table(["Pool", "Numbers", "Leases", "Used", "Held back", "Free"], v.pools.map((p) => [p.name, `${p.first}-${p.last}`, fmt(p.leases), fmt(p.used), fmt(p.heldBack), fmt(p.free)])));
    lines.push("", v.leases.length
      ? table(["Lease", "Pool", "Holder", "Numbers", "State", "Ends / free in"], v.leases.map((l) => [
        String(l.leaseId), l.pool, l.endSystem, range(l.first, l.count), l.state, l.state === "active" ? secs(l.endsAt - v.now) : secs(l.freeAt - v.now),
      ]))
      : "No leases.");
  }
  lines.push("", "Counters:", ...v.counters.map(([k, n]) => `  ${k.padEnd(26)} ${fmt(n).padStart(12)}`));
  lines.push("Requests refused by reason:", ...Object.entries(v.refused).map(([k, n]) => `  ${k.padEnd(26)} ${fmt(n).padStart(12)}`));
  lines.push("Datagrams refused by reason:", ...Object.entries(v.rejected).map(([k, n]) => `  ${k.padEnd(26)} ${fmt(n).padStart(12)}`));
  return lines.join("\n");
}
