// The metrics message: one snapshot of what the BoxView shows, in the shape docs/telemetry.md
// documents. Built only when it is about to be sent (never while the broker is away).
import type { LevelsView } from "../levels/manager.js";
import type { PortionView } from "../partitions.js";
import type { BackendView, BoxView, DiscoveryView, EngineView, FlowTableView, HaState, PairView, PortView, ServiceView } from "../observe.js";
import type { SupervisorStats } from "../discovery/supervisor.js";
import type { ChainDeviceView } from "../chains.js";
import type { CounterSnapshot } from "../engine/counters.js";

export interface MetricsPayload {
  /** When the snapshot was taken, in milliseconds since the Unix epoch. */
  time: number;
  hostname: string;
  site: string;
  version: string;
  uptimeMs: number;
  ha: HaState;
  /** Frames summed over all engines: taken in, sent, punted to the host, dropped. */
  totals: { rx: number; tx: number; punt: number; drop: number };
  ports: PortView[];
  services: ServiceView[];
  backends: BackendView[];
  engines: EngineView[];
  flowTable: FlowTableView;
  /** Service discovery: counters, refusals, end systems. Absent when discovery is not configured. */
  discovery?: DiscoveryView;
  /** The supervisor: counters, pools and leases. Absent when none runs here. */
  supervisor?: SupervisorStats;
  /** The redundant pair. Absent without an ha section. */
  pair?: PairView;
  /** Service chains: per hop packets and bytes to it and back, per device state. Absent without chains. */
  chains?: { hops: CounterSnapshot["chains"]; devices: ChainDeviceView[] };
  /** ACL tables: new flows per rule and default. Absent without ACLs. */
  acls?: CounterSnapshot["acls"];
  /** Multi-level routing: sites, choices, recovery counters (absent without a levels section). */
  levels?: Omit<LevelsView, "stats">;
  /** Source-partition services: each portion's owner (absent without such services). */
  partitions?: Record<string, PortionView[]>;
  /** The publisher itself: events dropped because the buffer was full while disconnected. */
  telemetry: { eventsDropped: number; eventsQueued: number };
}

export function metricsOf(view: BoxView, site: string, telemetry: MetricsPayload["telemetry"]): MetricsPayload {
  const c = view.counters();
  const discovery = view.discovery();
  const supervisor = view.supervisor?.();
  const pair = view.pair?.();
  const levels = view.levels?.();
  const partitions = view.partitions?.();
  return {
    time: Date.now(),
    hostname: view.hostname(),
    site,
    version: view.version(),
    uptimeMs: view.uptimeMs(),
    ha: view.ha(),
    totals: { rx: c.rx, tx: c.tx, punt: c.punt, drop: c.drop },
    ports: view.ports(),
    services: view.services(),
    backends: view.backends(),
    engines: view.engines(),
    flowTable: view.flowTable(),
    ...(discovery && { discovery }),
    ...(supervisor && { supervisor }),
    ...(pair && { pair }),
    ...(c.chains && Object.keys(c.chains).length && { chains: { hops: c.chains, devices: view.chains?.() ?? [] } }),
    ...(c.acls && Object.keys(c.acls).length && { acls: c.acls }),
    ...(levels && { levels: (({ stats: _, ...rest }) => rest)(levels) }),
    ...(partitions && Object.keys(partitions).length && { partitions }),
    telemetry,
  };
}
