// The saved states of the power-cut test, a pure function of their number: the writer child
// saves stateFor(1), stateFor(2), ... and the test, after each kill, checks that the flash boots
// exactly one of them. Comments carry pseudo-random text so that records span many flash pages
// and compress poorly (a long write is a wide target for the kill).
import type { CommitRecord, StoreState } from "../../../host/config/store.js";
import { labConfig, svc } from "../../lib/lab-config.js";

/** Commits each state carries: running plus 24 rollbacks. */
const HISTORY = 25;

function noise(seed: number, length: number): string {
  let x = (seed * 2654435761) >>> 0 || 1;
  let out = "";
  while (out.length < length) {
    x ^= x << 13; x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5; x >>>= 0;
    out += x.toString(36);
  }
  return out.slice(0, length);
}

export function commitFor(k: number): CommitRecord {
  return {
    seq: k,
    time: 1_700_000_000_000 + k * 1000,
    user: k % 2 ? "alice" : "bob",
    comment: `save ${k}: ${noise(k, 1000 + ((k * 7919) % 12000))}`,
    config: labConfig([svc("dsr", { port: 1000 + k })], { system: { hostname: `h${k}` } }),
  };
}

export function stateFor(n: number): StoreState {
  const commits: CommitRecord[] = [];
  for (let k = n; k >= 1 && k > n - HISTORY; k--) commits.push(commitFor(k));
  if (n % 3 === 0 && n > 1) {
    return { commits, pendingConfirm: { deadline: commits[0].time + 600_000, seq: n, minutes: 10, restore: commitFor(n - 1) } };
  }
  return { commits };
}
