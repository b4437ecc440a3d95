// The end systems the appliance has heard advertise themselves (SERVICE messages), fed with the
// frames the engines punt as PUNT_DISCOVERY. Every datagram is verified (protocol.decode: MAC,
// fields) and checked against replay (ReplayGuard) before it changes anything; every refusal is
// counted by reason and by source address. An end system silent for missedIntervals of its own
// advertised interval is down until it speaks again. The appliance turns what is known here into
// backends (backends()) and merges them with the configured ones.
//
// LOAD moves an end system's weights for new flows (load-weights.ts: smoothed, with hysteresis);
// FLOW adds or withdraws a flow rule that steers matching new flows to an end system
// (flow-rules.ts: how a pattern maps onto what the data plane matches). A rule lives while its
// end system is up or draining and it is refreshed within 3 of the end system's intervals; no
// more are kept than flowRoom() allows, the rest are refused and counted.
//
// Leaving is a drain that ends by itself: a leaving end system takes no new flows, keeps the ones it
// has, and is removed once the appliance finds none left in its tables (reap()) or leaveTimeoutS
// has passed; it is never marked down for falling silent, since a leaving agent stops sending.
//
// Trade-offs: only IPv4/IPv6 over UDP without IP options beyond what packet-view.ts reads. End
// systems that are down are kept so that their flows are handled as for a failed server; they are
// forgotten after FORGET_AFTER_INTERVALS of their interval, which bounds the table to what key
// holders recently advertised.
import { countBySource } from "../wire/refusals.js";
import { isIP } from "node:net";
import type { BackendState, DiscoveryConfig } from "../config/schema.js";
import { l2, ipOf } from "../net/packet-view.js";
import { canonical } from "../net/neighbors.js";
import { decode, type DecodeFailure, type FlowMsg, type LoadMsg, type ServiceMsg, type ServerState } from "./protocol.js";
import { LoadWeights, type LoadSample } from "./load-weights.js";
import { flowKey, mapFlow, type AdvertisedRule } from "./flow-rules.js";
import { ReplayGuard, type ReplayVerdict } from "./replay.js";

/** A down end system is forgotten after this many of its intervals (its flows have long moved). */
const FORGET_AFTER_INTERVALS = 100;
/** A FLOW rule not refreshed within this many of its end system's intervals is removed (the protocol's 3). */
const FLOW_REFRESH_INTERVALS = 3;

export type RejectReason = DecodeFailure | Exclude<ReplayVerdict, "ok">;
export const REJECT_REASONS: readonly RejectReason[] = ["malformed", "unknown-key", "bad-mac", "unsupported-version", "bad-field", "replayed", "stale", "future"];

/** What the registry knows of one end system. */
export interface EndSystem {
  id: string;
  addresses: string[];
  services: ServiceMsg["services"];
  /** As advertised, or "down" when silent for missedIntervals. */
  state: ServerState | "down";
  intervalMs: number;
  /** Local clock, ms, of the last SERVICE accepted. */
  lastSeen: number;
  /** Source address of that datagram. */
  from: string;
  /** The last LOAD accepted, with the local clock (ms) it arrived at. */
  load?: LoadSample & { at: number };
  /** Local clock, ms, of the first SERVICE that said leaving (while it is leaving). */
  leavingSince?: number;
}

/** A flow rule an end system (or the supervisor) advertised, mapped for the data plane. */
export interface AdvertisedFlow {
  /** adv-<n>, unique while the rule lives. */
  name: string;
  endSystem: string;
  rule: AdvertisedRule;
  /** Local clock, ms, of the last add that refreshed it. */
  refreshed: number;
}

/** One end system as a backend for the services of one address family. */
export interface AdvertisedBackend {
  name: string;
  endSystem: string;
  family: 4 | 6;
  address: string;
  state: BackendState;
  /** The services it offers in that family, with their weights. */
  services: { vip: string; protocol: number; port: number; weight: number; capacity: number }[];
}

export interface RegistryStats {
  accepted: number;
  /** Verified datagrams not acted on: requests and answers, LOAD of an unknown end system. */
  ignored: number;
  /** FLOW adds refused: the data plane cannot match the pattern, unknown end system, or no room. */
  flowsRefused: number;
  /** FLOW adds whose rule matches more than the pattern (port ranges, source ports). */
  flowsWidened: number;
  flowRules: number;
  rejected: Record<RejectReason, number>;
  /** Refusals by source address and reason, so a mis-keyed server can be told from an attack. */
  rejectedBy: Record<string, Partial<Record<RejectReason, number>>>;
  endSystems: number;
  down: number;
}

export interface RegistryOptions {
  /** Called after anything that changes backends() or flows() (coalesce on the caller's side). */
  onChange: () => void;
  /** How many advertised flow rules the data plane has room for (default: unlimited). */
  flowRoom?: () => number;
  now?: () => number;
  log?: (line: string) => void;
  /** Called when an end system appears or changes state (up, draining, leaving, down) or is forgotten ("gone"). */
  onEndSystem?: (e: EndSystemChange) => void;
}

/** An end system's state change, for events, logs and notifications. */
export interface EndSystemChange {
  endSystem: string;
  from: EndSystem["state"] | "new";
  to: EndSystem["state"] | "gone";
  reason: string;
  at: number;
}

export class Registry {
  private config: DiscoveryConfig;
  private keys = new Map<number, Uint8Array>();
  private readonly guard: ReplayGuard;
  private readonly systems = new Map<string, EndSystem>();
  private readonly weights = new LoadWeights();
  private readonly flowTable = new Map<string, AdvertisedFlow>();
  private flowSerial = 0;
  private readonly counts: Omit<RegistryStats, "endSystems" | "down" | "rejectedBy" | "flowRules"> & { rejectedBy: Map<string, Partial<Record<RejectReason, number>>> };
  private timer?: NodeJS.Timeout;
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(config: DiscoveryConfig, private readonly opts: RegistryOptions) {
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => {});
    this.guard = new ReplayGuard({ now: this.now });
    this.counts = { accepted: 0, ignored: 0, flowsRefused: 0, flowsWidened: 0, rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>, rejectedBy: new Map() };
    this.config = config;
    this.update(config);
  }

  /** A new discovery configuration: keys and timeouts apply to the next datagram and check. */
  update(config: DiscoveryConfig): void {
    this.config = config;
    this.keys = new Map(config.keys.map((k) => [k.id, k.secret]));
    this.expire();
  }

  /** One punted frame: Ethernet, IPv4 or IPv6, UDP to the discovery port, one datagram. */
  handle(frame: Uint8Array): void {
    const v = l2(frame);
    const ip = v && ipOf(frame, v);
    if (!ip || ip.protocol !== 17 || ip.l4len < 8) return this.reject("malformed", ip?.src ?? "?");
    const udpLen = (frame[ip.l4 + 4] << 8) | frame[ip.l4 + 5];
    const dport = (frame[ip.l4 + 2] << 8) | frame[ip.l4 + 3];
    if (udpLen < 8 || udpLen > ip.l4len || dport !== this.config.port) return this.reject("malformed", ip.src);
    const r = decode(frame.subarray(ip.l4 + 8, ip.l4 + udpLen), this.keys);
    if (!r.ok) return this.reject(r.reason, ip.src);
    const verdict = this.guard.check(r.sender, r.seq, r.time);
    if (verdict !== "ok") return this.reject(verdict, ip.src);
    this.counts.accepted++;
    if (r.msg.type === "service") this.service(r.msg, ip.src);
    else if (r.msg.type === "load") this.load(r.msg);
    else if (r.msg.type === "flow") this.flow(r.msg);
    else this.counts.ignored++;
  }

  private load(m: LoadMsg): void {
    const e = this.systems.get(m.endSystem);
    if (!e) return void this.counts.ignored++;
    e.load = { cpu: m.cpu, connections: m.connections, responseTimeUs: m.responseTimeUs, at: this.now() };
    if (this.weights.onLoad(e.id, [...this.systems.values()].filter((s) => s.state === "up"), this.now())) this.opts.onChange();
  }

  private flow(m: FlowMsg): void {
    const key = flowKey(m);
    const had = this.flowTable.get(key);
    if (m.op === "withdraw") {
      if (had) {
        this.flowTable.delete(key);
        this.log(`discovery: flow rule ${had.name} to ${m.endSystem} withdrawn`);
        this.opts.onChange();
      }
      return;
    }
    const target = this.systems.get(m.endSystem);
    const mapped = mapFlow(m);
    const refuse = (why: string): void => {
      this.counts.flowsRefused++;
      this.log(`discovery: flow rule to ${m.endSystem} refused: ${why}`);
    };
    if (!mapped.ok) return refuse(mapped.reason);
    if (!target || target.state === "down" || target.state === "leaving") return refuse(`end system ${m.endSystem} is ${target?.state ?? "unknown"}`);
    if (!had && this.flowTable.size >= (this.opts.flowRoom?.() ?? Infinity)) return refuse(`no room: ${this.flowTable.size} advertised flow rules already`);
    if (mapped.widened && !had) this.counts.flowsWidened++;
    const next: AdvertisedFlow = { name: had?.name ?? `adv-${++this.flowSerial}`, endSystem: m.endSystem, rule: mapped.rule, refreshed: this.now() };
    this.flowTable.set(key, next);
    if (!had || JSON.stringify(had.rule) !== JSON.stringify(next.rule)) this.opts.onChange();
    this.schedule();
  }

  private reject(reason: RejectReason, from: string): void {
    this.counts.rejected[reason]++;
    countBySource(this.counts.rejectedBy, from, reason);
  }

  private service(m: ServiceMsg, from: string): void {
    const before = this.systems.get(m.endSystem);
    const next: EndSystem = { id: m.endSystem, addresses: m.addresses, services: m.services, state: m.state, intervalMs: m.intervalMs, lastSeen: this.now(), from };
    if (m.state === "leaving") next.leavingSince = before?.state === "leaving" ? before.leavingSince : next.lastSeen;
    this.systems.set(m.endSystem, next);
    if (!before || before.state !== next.state) {
      this.log(`discovery: end system ${m.endSystem} is ${m.state}${before ? ` (was ${before.state})` : ""}`);
      this.opts.onEndSystem?.({ endSystem: m.endSystem, from: before?.state ?? "new", to: m.state, reason: `advertised ${m.state} from ${from}`, at: this.now() });
    }
    if (before?.load) next.load = before.load;
    if (!before || JSON.stringify(backendFields(before)) !== JSON.stringify(backendFields(next))) this.opts.onChange();
    this.expire(); // a leaving end system's flow rules go at once
  }

  /** Marks silent end systems down and forgets long-gone ones; returns whether anything changed. */
  private expire(): boolean {
    const now = this.now();
    let changed = false;
    for (const [id, e] of this.systems) {
      const silent = now - e.lastSeen;
      if (e.state === "leaving" && now - (e.leavingSince ?? now) >= this.config.leaveTimeoutS * 1000) {
        this.remove(e, `its flows did not end within ${this.config.leaveTimeoutS} s of leaving`);
        changed = true;
      } else if (silent >= FORGET_AFTER_INTERVALS * e.intervalMs && e.state === "down") {
        this.systems.delete(id);
        this.weights.forget(id);
        this.opts.onEndSystem?.({ endSystem: id, from: e.state, to: "gone", reason: `silent for ${silent} ms`, at: now });
        changed = true;
      } else if (e.state !== "down" && e.state !== "leaving" && silent >= this.config.missedIntervals * e.intervalMs) {
        this.log(`discovery: end system ${id} is down: silent for ${silent} ms (${this.config.missedIntervals} intervals of ${e.intervalMs} ms)`);
        this.opts.onEndSystem?.({ endSystem: id, from: e.state, to: "down", reason: `silent for ${silent} ms (${this.config.missedIntervals} intervals of ${e.intervalMs} ms)`, at: now });
        e.state = "down";
        changed = true;
      }
    }
    for (const [key, f] of this.flowTable) {
      const e = this.systems.get(f.endSystem);
      if (!e || e.state === "down" || e.state === "leaving" || now - f.refreshed >= FLOW_REFRESH_INTERVALS * e.intervalMs) {
        this.log(`discovery: flow rule ${f.name} to ${f.endSystem} removed: ${!e ? "end system forgotten" : e.state === "down" || e.state === "leaving" ? `end system ${e.state}` : "not refreshed"}`);
        this.flowTable.delete(key);
        changed = true;
      }
    }
    if (changed) this.opts.onChange();
    this.schedule();
    return changed;
  }

  /** A leaving end system goes: its backends leave the configuration, so flows still on it move as for a failed server. */
  private remove(e: EndSystem, why: string): void {
    this.systems.delete(e.id);
    this.weights.forget(e.id);
    this.log(`discovery: end system ${e.id} removed: ${why}`);
    this.opts.onEndSystem?.({ endSystem: e.id, from: e.state, to: "gone", reason: why, at: this.now() });
  }

  /** Ids of the end systems that are leaving: the appliance counts their flows and calls reap(). */
  leaving(): string[] {
    return [...this.systems.values()].filter((e) => e.state === "leaving").map((e) => e.id);
  }

  /**
   * Removes every leaving end system that `flowsOf` says has no flow left (counted in the tables
   * after it started leaving). Returns the ids removed.
   */
  reap(flowsOf: (endSystem: string) => number): string[] {
    const gone: string[] = [];
    for (const e of [...this.systems.values()]) {
      if (e.state !== "leaving" || flowsOf(e.id) > 0) continue;
      this.remove(e, "left, and no flow of it remains");
      gone.push(e.id);
    }
    if (gone.length) {
      this.opts.onChange();
      this.schedule();
    }
    return gone;
  }

  /** One timer, at the next moment an end system goes down, finishes leaving or is forgotten. */
  private schedule(): void {
    clearTimeout(this.timer);
    let next = Infinity;
    for (const e of this.systems.values()) {
      const at = e.state === "leaving"
        ? (e.leavingSince ?? e.lastSeen) + this.config.leaveTimeoutS * 1000
        : e.lastSeen + (e.state === "down" ? FORGET_AFTER_INTERVALS : this.config.missedIntervals) * e.intervalMs;
      if (at < next) next = at;
    }
    for (const f of this.flowTable.values()) {
      const e = this.systems.get(f.endSystem);
      const at = e ? f.refreshed + FLOW_REFRESH_INTERVALS * e.intervalMs : this.now();
      if (at < next) next = at;
    }
    if (next === Infinity) return;
    this.timer = setTimeout(() => this.expire(), Math.max(1, next - this.now()));
    this.timer.unref();
  }

  endSystems(): EndSystem[] {
    return [...this.systems.values()].map((e) => ({ ...e }));
  }

  /**
   * One backend per end system and address family it serves: named es-<id> (IPv6: es-<id>-v6
   * when it serves IPv4 too), at its first address of the family. up -> active, draining or
   * leaving -> draining (no new flows, existing ones stay), silent -> down.
   */
  backends(): AdvertisedBackend[] {
    const out: AdvertisedBackend[] = [];
    for (const e of this.systems.values()) {
      const state: BackendState = e.state === "up" ? "active" : e.state === "draining" || e.state === "leaving" ? "draining" : "down";
      const byFamily = { 4: e.services.filter((s) => isIP(s.vip) === 4), 6: e.services.filter((s) => isIP(s.vip) === 6) };
      for (const family of [4, 6] as const) {
        const address = e.addresses.find((a) => isIP(a) === family);
        if (!byFamily[family].length || !address) continue;
        const name = family === 6 && byFamily[4].length ? `es-${e.id}-v6` : `es-${e.id}`;
        out.push({
          name, endSystem: e.id, family, address, state,
          services: byFamily[family].map((s) => ({ vip: canonical(s.vip), protocol: s.protocol, port: s.port, weight: this.weights.weight(e.id, s), capacity: s.capacity })),
        });
      }
    }
    return out;
  }

  /** Advertised flow rules in the order they were first added. */
  flows(): AdvertisedFlow[] {
    return [...this.flowTable.values()].sort((a, b) => Number(a.name.slice(4)) - Number(b.name.slice(4))).map((f) => ({ ...f }));
  }

  /** The weight new flows of one offered service use now (advertised, moved by LOAD). */
  weightNow(endSystem: string, offer: ServiceMsg["services"][number]): number {
    return this.weights.weight(endSystem, offer);
  }

  stats(): RegistryStats {
    const all = [...this.systems.values()];
    return {
      accepted: this.counts.accepted,
      ignored: this.counts.ignored,
      flowsRefused: this.counts.flowsRefused,
      flowsWidened: this.counts.flowsWidened,
      flowRules: this.flowTable.size,
      rejected: { ...this.counts.rejected },
      rejectedBy: Object.fromEntries([...this.counts.rejectedBy].map(([k, v]) => [k, { ...v }])),
      endSystems: all.length,
      down: all.filter((e) => e.state === "down").length,
    };
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

/** What of an end system shows in backends(): a change of anything else needs no re-apply. */
function backendFields(e: EndSystem): unknown {
  return [e.addresses, e.services, e.state];
}
