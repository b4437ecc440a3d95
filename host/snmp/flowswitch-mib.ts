// FLOWSWITCH-MIB (mib/FLOWSWITCH-MIB.txt): services, backends, packet engines, flow-table use and
// HA state, read from the box's view. Enumerations here are the MIB's; keep the two in step.
import snmp from "net-snmp";
import type { BackendView, BoxView, EngineView, HaState, ServiceView } from "../observe.js";
import type { AnyTable, ScalarDef, TableDef } from "./objects.js";
import type { FlowswitchOids } from "./oids.js";
import { counter64, display, gauge } from "./values.js";

export const PROTOCOL = { tcp: 6, udp: 17 } as const;
export const MODE: Record<string, number> = { dsr: 1, nat: 2, tunnel: 3 };
export const BACKEND_STATE: Record<string, number> = { active: 1, draining: 2, down: 3, unresolved: 4 };
export const HEALTH = { up: 1, down: 2, unchecked: 3 } as const;
export const HA_STATE: Record<HaState, number> = { standalone: 1, active: 2, standby: 3 };

export function flowswitchTables(view: BoxView, oids: FlowswitchOids): AnyTable[] {
  const T = snmp.ObjectType;
  const services: TableDef<ServiceView> = {
    name: "flowswitchServiceTable",
    oid: oids.serviceEntry,
    rows: () => view.services(),
    columns: [
      { number: 1, name: "flowswitchServiceIndex", type: T.Gauge, get: (_s, i) => i + 1 },
      { number: 2, name: "flowswitchServiceName", type: T.OctetString, get: (s) => display(s.name, 32) },
      { number: 3, name: "flowswitchServiceVip", type: T.OctetString, get: (s) => display(s.vip, 64) },
      { number: 4, name: "flowswitchServiceProtocol", type: T.Integer, get: (s) => PROTOCOL[s.protocol] ?? 6 },
      { number: 5, name: "flowswitchServicePort", type: T.Gauge, get: (s) => gauge(s.port) },
      { number: 6, name: "flowswitchServiceMode", type: T.Integer, get: (s) => MODE[s.mode] ?? 1 },
      { number: 7, name: "flowswitchServiceBackends", type: T.Gauge, get: (s) => gauge(s.backends) },
      { number: 8, name: "flowswitchServicePackets", type: T.Counter64, get: (s) => counter64(s.packets) },
      { number: 9, name: "flowswitchServiceBytes", type: T.Counter64, get: (s) => counter64(s.bytes) },
      { number: 10, name: "flowswitchServiceNewFlows", type: T.Counter64, get: (s) => counter64(s.newFlows) },
      { number: 11, name: "flowswitchServiceDrops", type: T.Counter64, get: (s) => counter64(s.drops) },
    ],
  };
  const backends: TableDef<BackendView> = {
    name: "flowswitchBackendTable",
    oid: oids.backendEntry,
    rows: () => view.backends(),
    columns: [
      { number: 1, name: "flowswitchBackendIndex", type: T.Gauge, get: (_b, i) => i + 1 },
      { number: 2, name: "flowswitchBackendName", type: T.OctetString, get: (b) => display(b.name, 32) },
      { number: 3, name: "flowswitchBackendAddress", type: T.OctetString, get: (b) => display(b.address, 64) },
      { number: 4, name: "flowswitchBackendState", type: T.Integer, get: (b) => BACKEND_STATE[b.state] ?? BACKEND_STATE.down },
      { number: 5, name: "flowswitchBackendWeight", type: T.Gauge, get: (b) => gauge(b.weight) },
      { number: 6, name: "flowswitchBackendActiveFlows", type: T.Gauge, get: (b) => gauge(b.activeFlows) },
      { number: 7, name: "flowswitchBackendPackets", type: T.Counter64, get: (b) => counter64(b.packets) },
      { number: 8, name: "flowswitchBackendBytes", type: T.Counter64, get: (b) => counter64(b.bytes) },
      { number: 9, name: "flowswitchBackendNewFlows", type: T.Counter64, get: (b) => counter64(b.newFlows) },
      { number: 10, name: "flowswitchBackendHealth", type: T.Integer, get: (b) => HEALTH[b.health] ?? HEALTH.unchecked },
      { number: 11, name: "flowswitchBackendHealthReason", type: T.OctetString, get: (b) => display(b.healthReason) },
    ],
  };
  const engines: TableDef<EngineView> = {
    name: "flowswitchEngineTable",
    oid: oids.engineEntry,
    rows: () => view.engines(),
    columns: [
      { number: 1, name: "flowswitchEngineIndex", type: T.Gauge, get: (e) => e.id + 1 },
      { number: 2, name: "flowswitchEngineRxFrames", type: T.Counter64, get: (e) => counter64(e.rxFrames) },
      { number: 3, name: "flowswitchEngineTxFrames", type: T.Counter64, get: (e) => counter64(e.txFrames) },
      { number: 4, name: "flowswitchEngineDrops", type: T.Counter64, get: (e) => counter64(e.drops) },
      { number: 5, name: "flowswitchEngineFlowEntries", type: T.Gauge, get: (e) => gauge(e.flowEntries) },
    ],
  };
  return [services, backends, engines];
}

export function flowswitchScalars(view: BoxView, oids: FlowswitchOids, threshold: number): ScalarDef[] {
  const T = snmp.ObjectType;
  const f = oids.flowTable;
  return [
    { name: "flowswitchFlowsIpv4Used", oid: `${f}.1`, type: T.Gauge, get: () => gauge(view.flowTable().ipv4Used) },
    { name: "flowswitchFlowsIpv4Capacity", oid: `${f}.2`, type: T.Gauge, get: () => gauge(view.flowTable().ipv4Capacity) },
    { name: "flowswitchFlowsIpv6Used", oid: `${f}.3`, type: T.Gauge, get: () => gauge(view.flowTable().ipv6Used) },
    { name: "flowswitchFlowsIpv6Capacity", oid: `${f}.4`, type: T.Gauge, get: () => gauge(view.flowTable().ipv6Capacity) },
    { name: "flowswitchFlowTableThreshold", oid: `${f}.5`, type: T.Gauge, get: () => threshold },
    { name: "flowswitchHaState", oid: oids.haState, type: T.Integer, get: () => HA_STATE[view.ha()] ?? HA_STATE.standalone },
  ];
}
