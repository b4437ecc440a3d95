// The packet engines' public face: create, program, feed, read.
export { Engine, dataplaneModule, type EngineOptions, type RingEntry } from "./engine.js";
export { runFrames, type TimedFrame, type EndedFrame, type OfflineResult } from "./offline.js";
export { readCounters, fateIdentityHolds, subtractCounters, DROP_REASON_NAMES, PUNT_REASON_NAMES, type CounterSnapshot } from "./counters.js";
export { planMemory, flowBytesPerFlow, type RegionPlan } from "./memory-plan.js";
export { buildMaglev, maglevShares } from "./maglev.js";
export { readFlows, countFlowsByBackend, type FlowRow, type FlowFilter } from "./flows.js";
export { findFlow, flowKeyOf, type FoundFlow, type FrameKey } from "./flow-lookup.js";
