// Where everything lives in an engine's memory, computed once at boot from the config's sizes.
// The plan is written into the control block; the engine reads it from there and nowhere else.
import * as L from "../../assembly/layout.js";
import type { DataplaneSizes } from "../config/schema.js";

export const LAYOUT_BASE = 65536; // above the wasm module's own static data (a few KiB)
const PAGE = 65536;

export interface RegionPlan {
  controlBlock: number;
  rxRing: number;
  txRing: number;
  puntRing: number;
  freeRing: number;
  ringCapacity: number;
  /** Flow events out and flow installs in (EV_SIZE records, EVENT_RING_CAPACITY of them). */
  eventRing: number;
  syncRing: number;
  buffers: number;
  bufferCount: number;
  bufferSize: number;
  counters: number;
  counterWords: number;
  backendCounterIndex: number;
  /** The first chain / ACL counter word (XC_*). */
  extraCounterIndex: number;
  scratch: number;
  /** The host's own wasm instance works here (service index builds), never in the engine's scratch. */
  controlScratch: number;
  flow4: number;
  flow4Buckets: number;
  flow6: number;
  flow6Buckets: number;
  config: [number, number];
  configLayout: ConfigCopyLayout;
  bytes: number;
  pages: number;
}

/** Offsets inside a config copy, relative to its start. */
export interface ConfigCopyLayout {
  ports: number;
  svcIndex: number;
  svcIndexSlots: number;
  services: number;
  backends: number;
  /** MAX_FLOW_RULES flow-rule records. */
  rules: number;
  maglev: number;
  maglevSize: number;
  chains: number;
  devices: number;
  aclTables: number;
  aclRules: number;
  /** u8 per (service slot, port): ACL table + 1. */
  aclMap: number;
  bytes: number;
}

export function nextPow2(n: number): number {
  let p = 1;
  while (p < n) p *= 2;
  return p;
}

const align = (n: number, a: number): number => Math.ceil(n / a) * a;

/**
 * Buckets for a flow capacity: the configured number of flows fills FLOW_TABLE_LOAD_PERCENT of
 * the entries (two-way cuckoo tables with a breadth-first insert start to refuse near 90%).
 */
export function flowBuckets(capacity: number): number {
  return Math.max(16, Math.ceil((capacity * 100) / L.FLOW_TABLE_LOAD_PERCENT / L.FLOW_WAYS));
}

export function planMemory(s: DataplaneSizes): RegionPlan {
  let at = LAYOUT_BASE;
  const take = (bytes: number, alignment = 64): number => {
    at = align(at, alignment);
    const start = at;
    at += bytes;
    return start;
  };
  const controlBlock = take(L.CB_SIZE, 4096);
  const ringCapacity = nextPow2(s.bufferCount);
  const ringBytes = L.RING_ENTRIES + ringCapacity * L.DESC_SIZE;
  const rxRing = take(ringBytes);
  const txRing = take(ringBytes);
  const puntRing = take(ringBytes);
  const freeRing = take(ringBytes);
  const recordRingBytes = L.RING_ENTRIES + L.EVENT_RING_CAPACITY * L.EV_SIZE;
  const eventRing = take(recordRingBytes, 4096);
  const syncRing = take(recordRingBytes, 4096);
  const buffers = take(s.bufferCount * s.bufferSize, 4096);
  const backendCounterIndex = L.C_SERVICE_BASE + s.maxServices * L.SERVICE_COUNTER_WORDS;
  const extraCounterIndex = backendCounterIndex + s.maxBackends * L.BACKEND_COUNTER_WORDS;
  const counterWords = extraCounterIndex + L.XC_WORDS;
  const counters = take(counterWords * 8, 4096);
  const scratch = take(L.SCRATCH_SIZE, 4096);
  const controlScratch = take(L.SCRATCH_SIZE, 4096);
  const flow4Buckets = flowBuckets(s.ipv4Flows);
  const flow4 = take(flow4Buckets * L.FLOW4_ENTRY * L.FLOW_WAYS, 4096);
  const flow6Buckets = flowBuckets(s.ipv6Flows);
  const flow6 = take(flow6Buckets * L.FLOW6_ENTRY * L.FLOW_WAYS, 4096);

  const svcIndexSlots = nextPow2(s.maxServices * 4 + 64); // services, VIP and ARP keys, local addresses: <= half full
  let c = L.CFG_HEADER_SIZE;
  const ports = c;
  c += L.MAX_PORTS * L.PORT_SIZE;
  const svcIndex = c;
  c += svcIndexSlots * L.SIX_SIZE;
  const services = c;
  c += s.maxServices * L.SVC_SIZE;
  const backends = c;
  c += s.maxBackends * L.BE_SIZE;
  const rules = c;
  c += L.MAX_FLOW_RULES * L.FR_SIZE;
  const chains = c;
  c += L.MAX_CHAINS * L.CH_SIZE;
  const devices = c;
  c += L.MAX_DEVICES * L.DEV_SIZE;
  const aclTables = c;
  c += L.MAX_ACL_TABLES * L.ACLT_SIZE;
  const aclRules = c;
  c += L.MAX_ACL_RULES * L.ACLR_SIZE;
  const aclMap = c;
  c += s.maxServices * L.MAX_PORTS;
  const maglev = align(c, 64);
  c = maglev + s.maxServices * align(s.maglevSize * 2, 64);
  const configLayout: ConfigCopyLayout = {
    ports, svcIndex, svcIndexSlots, services, backends, rules, chains, devices, aclTables, aclRules, aclMap, maglev, maglevSize: s.maglevSize, bytes: align(c, 4096),
  };
  const config: [number, number] = [take(configLayout.bytes, 4096), take(configLayout.bytes, 4096)];
  const bytes = align(at, PAGE);
  if (bytes > 65536 * PAGE) {
    throw new Error(`the data plane needs ${(bytes / 2 ** 30).toFixed(1)} GiB, more than a 4 GiB engine memory: lower dataplane.flows or limits`);
  }
  return {
    controlBlock, rxRing, txRing, puntRing, freeRing, ringCapacity, eventRing, syncRing, buffers,
    bufferCount: s.bufferCount, bufferSize: s.bufferSize, counters, counterWords, backendCounterIndex, extraCounterIndex,
    scratch, controlScratch, flow4, flow4Buckets, flow6, flow6Buckets, config, configLayout, bytes, pages: bytes / PAGE,
  };
}

/** Table memory per configured flow, the figure the benchmark reports. */
export function flowBytesPerFlow(plan: RegionPlan, s: DataplaneSizes): { ipv4: number; ipv6: number } {
  return {
    ipv4: (plan.flow4Buckets * L.FLOW_WAYS * L.FLOW4_ENTRY) / s.ipv4Flows,
    ipv6: (plan.flow6Buckets * L.FLOW_WAYS * L.FLOW6_ENTRY) / s.ipv6Flows,
  };
}
