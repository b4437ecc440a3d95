// A levels section as validate.ts makes it, for fixtures that set it by hand on a validated Config
// (the data plane reads only decapsulate, role and recovery.enabled of it).
import type { LevelsConfig } from "../../host/config/schema.js";

export function levelsConfig(o: Partial<LevelsConfig> = {}): LevelsConfig {
  return {
    role: "site", name: "site-a", keys: [], port: 7790, uplinks: [], intervalMs: 1000, aggregate: "mean", subnets: [],
    decapsulate: true, sites: [], deadIntervals: 3, cost: { load: 1, distance: 1, tolerance: 5 },
    recovery: { enabled: false, peers: [], timeoutMs: 20, maxPending: 4096 }, ...o,
  };
}
