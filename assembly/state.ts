// The engine's view of its memory: region addresses copied once from the control block at init,
// and the config copy chosen once per batch. Globals, so the packet path reads no indirection.
import {
  CB_RX_RING, CB_TX_RING, CB_PUNT_RING, CB_FREE_RING, CB_EVENT_RING, CB_SYNC_RING, CB_COUNTERS, CB_BACKEND_COUNTERS,
  CB_FLOW4_BASE, CB_FLOW4_BUCKETS, CB_FLOW6_BASE, CB_FLOW6_BUCKETS, CB_CONFIG0, CB_CONFIG1,
  CB_SCRATCH, CB_BUF_BASE, CB_BUF_SIZE, CB_NOW_MS, CB_CONFIG_GEN, CB_ACK_GEN, CB_FLOW_SEED, CFG_FLAGS, CFG_SVC_INDEX,
  CFG_SVC_INDEX_MASK, CFG_SERVICES, CFG_BACKENDS, CFG_PORTS, CFG_MAGLEV_SIZE, CFG_TIMEOUTS, CFG_NUM_SERVICES, CFG_RULES, CFG_NUM_RULES,
  CFG_DISC_GROUP4, CFG_DISC_PORT, CFG_DISC_GROUP6, CFG_CHAINS, CFG_DEVICES, CFG_ACL_TABLES, CFG_ACL_RULES, CFG_ACL_MAP,
  CB_EXTRA_COUNTERS,
  SCR_META,
} from "./layout";

export let cb: usize = 0;
export let rxRing: usize = 0;
export let txRing: usize = 0;
export let puntRing: usize = 0;
export let freeRing: usize = 0;
export let eventRing: usize = 0; // EV_* records out (flow events); 0 in layouts without one
export let syncRing: usize = 0; // EV_* records in (flows to install)
export let counters: usize = 0;
export let backendCounters: usize = 0; // address of backend 0's first counter
export let flow4: usize = 0;
export let flow4Buckets: u32 = 0;
export let flow6: usize = 0;
export let flow6Buckets: u32 = 0;
export let flowSeed: u32 = 0;
export let bufBase: usize = 0;
export let bufSize: usize = 0;
export let scratch: usize = 0; // SCR_* regions
export let meta: usize = 0; // MAX_BATCH * META_SIZE bytes

// per batch
export let now: u32 = 0;
export let cfg: usize = 0;
export let cfgFlags: u32 = 0;
export let svcIndex: usize = 0;
export let svcIndexMask: u32 = 0;
export let services: usize = 0;
export let backends: usize = 0;
export let ports: usize = 0;
export let maglevSize: u32 = 0;
export let timeouts: usize = 0;
export let numServices: u32 = 0;
export let rules: usize = 0; // flow-rule records, in priority order
export let numRules: u32 = 0;
export let discGroup4: u32 = 0; // raw, as loaded from the packet
export let discPort: u32 = 0; // raw; 0: discovery off
export let discGroup6a: u64 = 0; // the IPv6 group's two halves, raw
export let discGroup6b: u64 = 0;
export let chains: usize = 0; // CH_* records (0 in a config copy without them)
export let devices: usize = 0; // DEV_* records
export let aclTables: usize = 0;
export let aclRules: usize = 0;
export let aclMap: usize = 0;
export let extraCounters: usize = 0; // address of the first XC_* counter word

export function loadLayout(base: usize): void {
  cb = base;
  rxRing = <usize>load<u32>(base + CB_RX_RING);
  txRing = <usize>load<u32>(base + CB_TX_RING);
  puntRing = <usize>load<u32>(base + CB_PUNT_RING);
  freeRing = <usize>load<u32>(base + CB_FREE_RING);
  eventRing = <usize>load<u32>(base + CB_EVENT_RING);
  syncRing = <usize>load<u32>(base + CB_SYNC_RING);
  counters = <usize>load<u32>(base + CB_COUNTERS);
  backendCounters = counters + (<usize>load<u32>(base + CB_BACKEND_COUNTERS) << 3);
  flow4 = <usize>load<u32>(base + CB_FLOW4_BASE);
  flow4Buckets = load<u32>(base + CB_FLOW4_BUCKETS);
  flow6 = <usize>load<u32>(base + CB_FLOW6_BASE);
  flow6Buckets = load<u32>(base + CB_FLOW6_BUCKETS);
  flowSeed = load<u32>(base + CB_FLOW_SEED);
  bufBase = <usize>load<u32>(base + CB_BUF_BASE);
  bufSize = <usize>load<u32>(base + CB_BUF_SIZE);
  scratch = <usize>load<u32>(base + CB_SCRATCH);
  extraCounters = counters + (<usize>load<u32>(base + CB_EXTRA_COUNTERS) << 3);
  meta = scratch + SCR_META;
}

export function setScratch(addr: usize): void {
  scratch = addr;
  meta = addr + SCR_META;
}

/** Reads the clock and the live config generation: once per batch, so a batch sees one config. */
export function beginBatch(): void {
  now = atomic.load<u32>(cb + CB_NOW_MS);
  const gen = atomic.load<u32>(cb + CB_CONFIG_GEN);
  selectConfig(<usize>load<u32>(cb + ((gen & 1) ? CB_CONFIG1 : CB_CONFIG0)));
  atomic.store<u32>(cb + CB_ACK_GEN, gen);
}

export function selectConfig(copy: usize): void {
  cfg = copy;
  cfgFlags = load<u32>(copy + CFG_FLAGS);
  svcIndex = <usize>load<u32>(copy + CFG_SVC_INDEX);
  svcIndexMask = load<u32>(copy + CFG_SVC_INDEX_MASK);
  services = <usize>load<u32>(copy + CFG_SERVICES);
  backends = <usize>load<u32>(copy + CFG_BACKENDS);
  ports = <usize>load<u32>(copy + CFG_PORTS);
  maglevSize = load<u32>(copy + CFG_MAGLEV_SIZE);
  timeouts = copy + CFG_TIMEOUTS;
  numServices = load<u32>(copy + CFG_NUM_SERVICES);
  rules = <usize>load<u32>(copy + CFG_RULES);
  numRules = load<u32>(copy + CFG_NUM_RULES);
  discGroup4 = load<u32>(copy + CFG_DISC_GROUP4);
  discPort = <u32>load<u16>(copy + CFG_DISC_PORT);
  discGroup6a = load<u64>(copy + CFG_DISC_GROUP6);
  discGroup6b = load<u64>(copy + CFG_DISC_GROUP6 + 8);
  chains = <usize>load<u32>(copy + CFG_CHAINS);
  devices = <usize>load<u32>(copy + CFG_DEVICES);
  aclTables = <usize>load<u32>(copy + CFG_ACL_TABLES);
  aclRules = <usize>load<u32>(copy + CFG_ACL_RULES);
  aclMap = <usize>load<u32>(copy + CFG_ACL_MAP);
}
