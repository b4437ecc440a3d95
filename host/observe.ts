// What monitoring sees of the box: one read-only view (for SNMP tables and MQTT metrics) and one
// stream of events (for traps and MQTT events). Monitoring never reaches into the engines or the
// configuration itself; it reads this, so a slow poller cannot slow forwarding.
import type { PartitionMove, PortionView } from "./partitions.js";
import type { LevelsView } from "./levels/manager.js";
import type { CounterSnapshot } from "./engine/index.js";
import type { RejectReason } from "./discovery/registry.js";
import type { SupervisorStats } from "./discovery/supervisor.js";
import type { ChainDeviceChange, ChainDeviceView } from "./chains.js";

export interface PortView {
  index: number;
  name: string;
  device: string;
  mac: string;
  mtu: number;
  up: boolean;
  rxPackets: number;
  rxBytes: number;
  txPackets: number;
  txBytes: number;
  drops: number;
}

export interface ServiceView {
  name: string;
  vip: string;
  protocol: "tcp" | "udp";
  port: number;
  mode: string;
  backends: number;
  packets: number;
  bytes: number;
  newFlows: number;
  drops: number;
}

export interface BackendView {
  name: string;
  address: string;
  /** What the engines run: active, draining, down, unresolved. */
  state: string;
  /** The highest weight any service gives it. */
  weight: number;
  /** up, down, or unchecked (no health check configured). */
  health: "up" | "down" | "unchecked";
  healthReason: string;
  packets: number;
  bytes: number;
  newFlows: number;
  /** Flow entries that point at it now (counted from the flow tables, at most every few seconds). */
  activeFlows: number;
}

export interface EngineView {
  id: number;
  rxFrames: number;
  txFrames: number;
  drops: number;
  flowEntries: number;
}

export interface FlowTableView {
  ipv4Used: number;
  ipv4Capacity: number;
  ipv6Used: number;
  ipv6Capacity: number;
}

export type HaState = "standalone" | "active" | "standby";

/** As advertised (up, draining, leaving), or down when silent for missedIntervals. */
export type EndSystemState = "up" | "draining" | "leaving" | "down";

export interface EndSystemView {
  id: string;
  state: EndSystemState;
  addresses: string[];
  /** How often it says it repeats its SERVICE message. */
  intervalMs: number;
  /** Since its last SERVICE was accepted. */
  lastHeardMs: number;
  /** Per service offered: the advertised weight and the one new flows use now (moved by LOAD). */
  services: { vip: string; protocol: number; port: number; advertised: number; weight: number }[];
  /** The last LOAD accepted and how old it is; absent until one is heard. */
  load?: { cpu: number; connections: number; responseTimeUs: number; ageMs: number };
}

export interface DiscoveryView {
  /** Datagrams verified and taken. */
  accepted: number;
  /** Verified but not acted on (requests, answers, LOAD of an unknown end system). */
  ignored: number;
  flowsRefused: number;
  flowsWidened: number;
  /** Advertised flow rules in force. */
  flowRules: number;
  /** End systems that are down (silent). */
  down: number;
  /** Refused datagrams by reason, every reason present. */
  rejected: Record<RejectReason, number>;
  /** Refused datagrams by source address (at most 256, then "other") and reason. */
  rejectedBy: Record<string, Partial<Record<RejectReason, number>>>;
  /** In the order they were first heard. */
  endSystems: EndSystemView[];
}

export interface BoxView {
  hostname(): string;
  uptimeMs(): number;
  version(): string;
  ports(): PortView[];
  services(): ServiceView[];
  backends(): BackendView[];
  engines(): EngineView[];
  flowTable(): FlowTableView;
  ha(): HaState;
  counters(): CounterSnapshot;
  /** Service discovery; undefined when the configuration has no discovery section. */
  discovery(): DiscoveryView | undefined;
  /** The supervisor's counters, pools and leases; undefined when none runs here. */
  supervisor?(): SupervisorStats | undefined;
  /** The redundant pair in brief; undefined without an ha section. */
  pair?(): PairView | undefined;
  /** Service chains: every device of every hop with its state and counters. */
  chains?(): ChainDeviceView[];
  /** Multi-level routing (docs/levels.md); undefined without a levels section. */
  levels?(): LevelsView | undefined;
  /** Source-partition services: each portion's owner now. */
  partitions?(): Record<string, PortionView[]>;
  events: BoxEvents;
}

/** The redundant pair as monitoring shows it. */
export interface PairView {
  node: string;
  role: string;
  /** This node holds the pair's flow state (always, when active). */
  ready: boolean;
  peer?: { node: string; state: string; alive: boolean };
  links: Record<string, boolean>;
  takeovers: number;
  splitBrains: number;
  heartbeatsRefused: number;
  flowsSent: number;
  flowsReceived: number;
  syncConnected: boolean;
}

export type BoxEvent =
  | { type: "backend-down" | "backend-up"; backend: string; reason: string; at: number }
  | { type: "commit"; seq: number; user: string; comment?: string; reverted?: boolean; at: number }
  | { type: "login-failure"; user: string; failures: number; at: number }
  | { type: "flow-table-high"; family: 4 | 6; used: number; capacity: number; percent: number; at: number }
  | { type: "ha-state"; from: HaState; to: HaState; at: number }
  | ({ type: "chain-device" } & ChainDeviceChange)
  | { type: "primary"; service: string; primary: string; previous?: string; at: number }
  | ({ type: "partition"; at: number } & PartitionMove)
  | { type: "site"; site: string; from: string; to: string; at: number }
  | { type: "end-system"; endSystem: string; from: EndSystemState | "new"; to: EndSystemState | "gone"; reason: string; at: number };

/** A small fan-out: a listener that throws is reported, never breaks the others or the sender. */
export class BoxEvents {
  private readonly listeners = new Set<(e: BoxEvent) => void>();
  constructor(private readonly log: (line: string) => void = () => undefined) {}

  subscribe(fn: (e: BoxEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  emit(e: BoxEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(e);
      } catch (err) {
        this.log(`events: a listener failed on ${e.type}: ${(err as Error).message}`);
      }
    }
  }
}

/** Flow-table use above this share raises a flow-table-high event (once, until it falls below). */
export const FLOW_TABLE_HIGH_PERCENT = 90;
