// The health monitor: runs each backend's probes on schedule and turns results into up/down.
//
// It only probes and decides; the host acts on onChange (marks the backend down in the engines).
// A backend starts "up", so a box that boots serves at once, and is probed at once; `fall`
// consecutive failures take it down, `rise` consecutive successes bring it back (HAProxy's rules).
// Timestamps come from opts.now (wall clock by default); scheduling and probe durations use the
// monotonic clock, so a clock step (NTP, an operator setting the date) neither stalls nor floods
// the probes.

import { performance } from "node:perf_hooks";
import { checkSpecErrors, sameSpec, withDefaults, type CheckSpec, type CheckSpecInput } from "./spec.js";
import { startProbe } from "./probe.js";
import { nextProbe } from "./schedule.js";
import type { ProbeResult } from "./reason.js";

export type HealthState = "up" | "down";

export interface HealthStatus {
  state: HealthState;
  /** Why the backend is in this state: the probe result that moved it, or "initial". */
  reason: string;
  /** When the backend entered this state (or its check was first set). */
  since: number;
  /** The latest finished probe; `at` is when it finished, `ms` how long it took. */
  lastProbe?: { ok: boolean; reason: string; ms: number; at: number };
  /** Length of the current run of equal probe results (successes if lastProbe.ok, else failures). */
  consecutive: number;
}

export interface HealthChange {
  backend: string;
  from: HealthState;
  to: HealthState;
  reason: string;
  at: number;
}

export interface HealthMonitorOptions {
  /** One line per state change, e.g. "health: backend web1 down (timeout, 3 failures)". */
  log?: (line: string) => void;
  /** Clock for the timestamps in statuses and changes; default Date.now. */
  now?: () => number;
}

/** The reason of a backend that has not yet been through `rise` or `fall` probes. */
export const INITIAL_REASON = "initial";

interface Check {
  name: string;
  spec: CheckSpec;
  status: HealthStatus;
  /** Whether the current run of results are successes; undefined before the first probe. */
  streakOk: boolean | undefined;
  running: boolean;
  /** Bumped on every halt, so that a result arriving from an abandoned probe is dropped. */
  generation: number;
  /** Monotonic time of the check's start: the origin of its probe grid. */
  origin: number;
  /** Index on the grid of the probe in flight or due next. */
  k: number;
  timer: NodeJS.Timeout | undefined;
  cancel: (() => void) | undefined;
}

export class HealthMonitor {
  private readonly checks = new Map<string, Check>();
  private readonly listeners: ((c: HealthChange) => void)[] = [];
  private readonly log: (line: string) => void;
  private readonly now: () => number;

  constructor(opts: HealthMonitorOptions = {}) {
    this.log = opts.log ?? (() => {});
    this.now = opts.now ?? Date.now;
  }

  /**
   * The checks to run, by backend name: new ones start, changed ones restart keeping their state,
   * missing ones stop. A restarted check keeps state, reason and since but starts a new run of
   * results: its earlier results were against another target. Throws, changing nothing, if any
   * spec is unusable (the message names every backend and field at fault).
   */
  set(checks: ReadonlyMap<string, CheckSpecInput>): void {
    const problems: string[] = [];
    for (const [name, input] of checks) {
      for (const e of checkSpecErrors(input)) problems.push(`health check for backend ${name}: ${e}`);
    }
    if (problems.length > 0) throw new TypeError(problems.join("\n"));

    for (const [name, check] of this.checks) {
      if (checks.has(name)) continue;
      this.halt(check);
      this.checks.delete(name);
    }
    for (const [name, input] of checks) {
      const spec = withDefaults(input);
      const check = this.checks.get(name);
      if (check === undefined) {
        const fresh: Check = {
          name,
          spec,
          status: { state: "up", reason: INITIAL_REASON, since: this.now(), consecutive: 0 },
          streakOk: undefined,
          running: false,
          generation: 0,
          origin: 0,
          k: 0,
          timer: undefined,
          cancel: undefined,
        };
        this.checks.set(name, fresh);
        this.start(fresh);
      } else if (!sameSpec(check.spec, spec)) {
        this.halt(check);
        check.spec = spec;
        check.streakOk = undefined;
        check.status.consecutive = 0;
        this.start(check);
      } else if (!check.running) {
        this.start(check); // after stop(): resume
      }
    }
  }

  status(backend: string): HealthStatus | undefined {
    const check = this.checks.get(backend);
    return check === undefined ? undefined : copyStatus(check.status);
  }

  all(): Map<string, HealthStatus> {
    const out = new Map<string, HealthStatus>();
    for (const [name, check] of this.checks) out.set(name, copyStatus(check.status));
    return out;
  }

  onChange(fn: (c: HealthChange) => void): void {
    this.listeners.push(fn);
  }

  /** Stops every timer and socket; statuses stay readable, and a later set() resumes. */
  stop(): void {
    for (const check of this.checks.values()) this.halt(check);
  }

  private start(check: Check): void {
    check.running = true;
    check.origin = performance.now();
    check.k = 0;
    this.probe(check);
  }

  private halt(check: Check): void {
    check.running = false;
    check.generation++;
    clearTimeout(check.timer);
    check.timer = undefined;
    const cancel = check.cancel;
    check.cancel = undefined;
    cancel?.();
  }

  private probe(check: Check): void {
    check.timer = undefined;
    const generation = check.generation;
    const began = performance.now();
    check.cancel = startProbe(check.spec, (result) => {
      if (check.generation !== generation) return;
      check.cancel = undefined;
      const finished = performance.now();
      this.record(check, result, Math.round(finished - began));
      if (check.generation !== generation) return; // a listener changed or stopped the checks
      const next = nextProbe(check.name, check.k, check.spec.intervalMs, finished - check.origin);
      check.k = next.k;
      check.timer = setTimeout(() => this.probe(check), next.delayMs);
    });
  }

  private record(check: Check, result: ProbeResult, ms: number): void {
    const at = this.now();
    const s = check.status;
    s.lastProbe = { ok: result.ok, reason: result.reason, ms, at };
    s.consecutive = check.streakOk === result.ok ? s.consecutive + 1 : 1;
    check.streakOk = result.ok;

    const needed = result.ok ? check.spec.rise : check.spec.fall;
    if (s.consecutive < needed) return;
    const to: HealthState = result.ok ? "up" : "down";
    if (s.state === to) {
      // The first full run confirms the state assumed at start: say why it holds, quietly.
      if (s.reason === INITIAL_REASON) s.reason = result.reason;
      return;
    }
    const from = s.state;
    s.state = to;
    s.reason = result.reason;
    s.since = at;
    const count = `${s.consecutive} ${result.ok ? "success" : "failure"}${s.consecutive === 1 ? "" : result.ok ? "es" : "s"}`;
    this.say(`health: backend ${check.name} ${to} (${result.reason}, ${count})`);
    const change: HealthChange = { backend: check.name, from, to, reason: result.reason, at };
    for (const fn of this.listeners) {
      try {
        fn(change);
      } catch (err) {
        this.say(`health: change listener failed for backend ${check.name}: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
  }

  /** A failing logger must not stop the checks. */
  private say(line: string): void {
    try {
      this.log(line);
    } catch {
      // Nowhere left to report it.
    }
  }
}

function copyStatus(s: HealthStatus): HealthStatus {
  return { ...s, ...(s.lastProbe !== undefined ? { lastProbe: { ...s.lastProbe } } : {}) };
}
