// FLOWSWITCH-MIB's service discovery group (flowswitchDiscovery, mib/FLOWSWITCH-MIB.txt): what the
// registry has accepted and refused, and the end systems it has heard, read from the box's view.
// Without a discovery section the scalars read 0 (flowswitchDiscoveryEnabled false) and the
// tables are empty. Enumerations here are the MIB's; keep the two in step.
import snmp from "net-snmp";
import type { BoxView, DiscoveryView, EndSystemState, EndSystemView } from "../observe.js";
import type { ChainDeviceView } from "../chains.js";
import { REJECT_REASONS, type RejectReason } from "../discovery/registry.js";
import type { AnyTable, ScalarDef, TableDef } from "./objects.js";
import type { FlowswitchOids } from "./oids.js";
import { counter64, display, gauge } from "./values.js";

/** FlowswitchServerState. */
export const SERVER_STATE: Record<EndSystemState, number> = { up: 1, draining: 2, leaving: 3, down: 4 };
/** FlowswitchRejectReason: SMIv2 labels have no hyphens, so the MIB spells them in camel case. */
export const REJECT_REASON: Record<RejectReason, number> = {
  malformed: 1, "unknown-key": 2, "bad-mac": 3, "unsupported-version": 4, "bad-field": 5, replayed: 6, stale: 7, future: 8,
};
/** SNMPv2-TC TruthValue. */
const TRUTH = { true: 1, false: 2 } as const;

export function discoveryScalars(view: BoxView, oids: FlowswitchOids): ScalarDef[] {
  const T = snmp.ObjectType;
  const d = oids.discovery;
  const count = (pick: (v: DiscoveryView) => number) => (): Buffer => counter64(pick(view.discovery() ?? NONE));
  const level = (pick: (v: DiscoveryView) => number) => (): number => gauge(pick(view.discovery() ?? NONE));
  return [
    { name: "flowswitchDiscoveryEnabled", oid: `${d}.1`, type: T.Integer, get: () => (view.discovery() ? TRUTH.true : TRUTH.false) },
    { name: "flowswitchDiscoveryAccepted", oid: `${d}.2`, type: T.Counter64, get: count((v) => v.accepted) },
    { name: "flowswitchDiscoveryIgnored", oid: `${d}.3`, type: T.Counter64, get: count((v) => v.ignored) },
    { name: "flowswitchDiscoveryFlowsRefused", oid: `${d}.4`, type: T.Counter64, get: count((v) => v.flowsRefused) },
    { name: "flowswitchDiscoveryFlowsWidened", oid: `${d}.5`, type: T.Counter64, get: count((v) => v.flowsWidened) },
    { name: "flowswitchDiscoveryFlowRules", oid: `${d}.6`, type: T.Gauge, get: level((v) => v.flowRules) },
    { name: "flowswitchDiscoveryEndSystems", oid: `${d}.7`, type: T.Gauge, get: level((v) => v.endSystems.length) },
    { name: "flowswitchDiscoveryEndSystemsDown", oid: `${d}.8`, type: T.Gauge, get: level((v) => v.down) },
  ];
}

export function discoveryTables(view: BoxView, oids: FlowswitchOids): AnyTable[] {
  const T = snmp.ObjectType;
  const rejects: TableDef<{ reason: RejectReason; count: number }> = {
    name: "flowswitchDiscoveryRejectTable",
    oid: oids.discoveryRejectEntry,
    rows: () => {
      const d = view.discovery();
      return d ? REJECT_REASONS.map((reason) => ({ reason, count: d.rejected[reason] ?? 0 })) : [];
    },
    columns: [
      { number: 1, name: "flowswitchDiscoveryRejectReason", type: T.Integer, get: (r) => REJECT_REASON[r.reason] },
      { number: 2, name: "flowswitchDiscoveryRejectName", type: T.OctetString, get: (r) => r.reason },
      { number: 3, name: "flowswitchDiscoveryRejects", type: T.Counter64, get: (r) => counter64(r.count) },
    ],
  };
  const endSystems: TableDef<EndSystemView> = {
    name: "flowswitchEndSystemTable",
    oid: oids.endSystemEntry,
    rows: () => view.discovery()?.endSystems ?? [],
    columns: [
      { number: 1, name: "flowswitchEndSystemIndex", type: T.Gauge, get: (_e, i) => i + 1 },
      { number: 2, name: "flowswitchEndSystemId", type: T.OctetString, get: (e) => display(e.id, 64) },
      { number: 3, name: "flowswitchEndSystemState", type: T.Integer, get: (e) => SERVER_STATE[e.state] ?? SERVER_STATE.down },
      { number: 4, name: "flowswitchEndSystemAddress", type: T.OctetString, get: (e) => display(e.addresses[0] ?? "", 64) },
      { number: 5, name: "flowswitchEndSystemInterval", type: T.Gauge, get: (e) => gauge(e.intervalMs) },
      { number: 6, name: "flowswitchEndSystemLastHeard", type: T.Gauge, get: (e) => gauge(e.lastHeardMs) },
      { number: 7, name: "flowswitchEndSystemLoadHeard", type: T.Integer, get: (e) => (e.load ? TRUTH.true : TRUTH.false) },
      { number: 8, name: "flowswitchEndSystemCpu", type: T.Gauge, get: (e) => Math.min(100, gauge(e.load?.cpu ?? 0)) },
      { number: 9, name: "flowswitchEndSystemConnections", type: T.Gauge, get: (e) => gauge(e.load?.connections ?? 0) },
      { number: 10, name: "flowswitchEndSystemResponseTime", type: T.Gauge, get: (e) => gauge(e.load?.responseTimeUs ?? 0) },
      { number: 11, name: "flowswitchEndSystemLoadAge", type: T.Gauge, get: (e) => gauge(e.load?.ageMs ?? 0) },
    ],
  };
  return [rejects, endSystems];
}

const NONE: DiscoveryView = {
  accepted: 0, ignored: 0, flowsRefused: 0, flowsWidened: 0, flowRules: 0, down: 0,
  rejected: Object.fromEntries(REJECT_REASONS.map((r) => [r, 0])) as Record<RejectReason, number>, rejectedBy: {}, endSystems: [],
};

/** FLOWSWITCH-MIB's flowswitchChains group: every device of every hop, its state and counters. */
export function chainTables(view: BoxView, oids: FlowswitchOids): AnyTable[] {
  const T = snmp.ObjectType;
  const STATE = { up: 1, down: 2, unresolved: 3 } as const;
  const devices: TableDef<ChainDeviceView> = {
    name: "flowswitchChainDeviceTable",
    oid: oids.chainDeviceEntry,
    rows: () => view.chains?.() ?? [],
    columns: [
      { number: 1, name: "flowswitchChainDeviceIndex", type: T.Gauge, get: (_d, i) => i + 1 },
      { number: 2, name: "flowswitchChainName", type: T.OctetString, get: (d) => display(d.chain, 64) },
      { number: 3, name: "flowswitchChainHop", type: T.OctetString, get: (d) => display(d.hop, 64) },
      { number: 4, name: "flowswitchChainHopKind", type: T.Integer, get: (d) => (d.kind === "mirror" ? 2 : 1) },
      { number: 5, name: "flowswitchChainDevice", type: T.OctetString, get: (d) => display(d.device, 64) },
      { number: 6, name: "flowswitchChainDeviceRole", type: T.Integer, get: (d) => (d.role === "alternate" ? 2 : 1) },
      { number: 7, name: "flowswitchChainDeviceState", type: T.Integer, get: (d) => STATE[d.state] },
      { number: 8, name: "flowswitchChainDeviceSent", type: T.Counter64, get: (d) => counter64(d.sent) },
      { number: 9, name: "flowswitchChainDeviceReturned", type: T.Counter64, get: (d) => counter64(d.returned) },
    ],
  };
  return [devices];
}
