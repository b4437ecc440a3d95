// The candidate/running model, as on Junos: the console edits a candidate configuration; `commit`
// checks the whole of it, applies it, saves it to flash, and only then makes it the running one.
// Every commit is kept for `rollback N`; `commit confirmed N` puts the previous configuration back
// by itself unless confirmed within N minutes, even across a reboot (the deadline is on flash).
//
// Order of a commit: validate -> apply -> save. If apply throws, nothing is saved and the running
// configuration stays (apply must leave the previous configuration in force when it throws, as the
// engine pool's double-buffered tables do). If the save fails, the previous configuration is
// applied again, so that what runs is always what the flash would boot.
//
// One operation at a time: commits, confirmations and the automatic rollback run in order.
import { isDeepStrictEqual } from "node:util";
import type { Config, ConfigInput } from "./schema.js";
import { validate, formatError, type ConfigError } from "./validate.js";
import { NoSavedConfigError, STORE_MAX_COMMITS, type CommitRecord, type ConfigStore, type LoadedState, type PendingConfirmRecord } from "./store.js";

/** `commit confirmed` takes 1 to 65535 minutes, as on Junos. */
export const CONFIRM_MAX_MINUTES = 65535;
const MINUTE_MS = 60_000;
const MAX_TIMER_MS = 2 ** 31 - 1; // setTimeout's limit (24.8 days): longer waits are re-armed
const SYSTEM_USER = "system";

export interface CommitEvent {
  seq: number;
  user: string;
  comment?: string;
  /** The automatic rollback of an unconfirmed `commit confirmed`. */
  reverted?: boolean;
}

export type CommitResult =
  | {
      ok: true;
      /** The running commit afterwards. */
      seq: number;
      /** False when the candidate equalled the running configuration: nothing was applied. */
      changed: boolean;
      /** The pending `commit confirmed` this commit confirmed. */
      confirmed?: number;
      /** Set by `commit confirmed`: rolled back at `deadline` unless confirmed. */
      pendingConfirm?: { deadline: number; seq: number };
    }
  | { ok: false; stage: "check"; errors: ConfigError[] }
  | { ok: false; stage: "apply" | "save"; message: string }
  /** The guard said no (an HA standby: shared settings are edited on the active). */
  | { ok: false; stage: "refused"; message: string };

export interface ConfigSessionOptions {
  store: ConfigStore;
  /** Puts a validated configuration (and the input it came from) into force; throws (leaving the previous one) if it cannot. */
  apply: (c: Config, input: ConfigInput) => Promise<void>;
  /** Says why a candidate may not be committed here; undefined: it may. */
  guard?: (candidate: ConfigInput) => string | undefined;
  /** Booted when the flash holds no saved configuration. */
  defaultConfig: ConfigInput;
  now?: () => number;
  log?: (line: string) => void;
  /** The length of a `commit confirmed` minute in ms (tests shorten it). */
  minuteMs?: number;
}

/** An operator's request that cannot be done (rollback too far, nothing to confirm). */
export class ConfigSessionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigSessionError";
  }
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

export class ConfigSession {
  /** Newest first: commits[0] is running. */
  private commits: CommitRecord[] = [];
  private cand!: ConfigInput;
  private pending?: PendingConfirmRecord;
  private timer?: NodeJS.Timeout;
  private closed = false;
  private queue: Promise<unknown> = Promise.resolve();
  private readonly listeners: ((e: CommitEvent) => void)[] = [];
  private readonly store: ConfigStore;
  private readonly applyFn: (c: Config, input: ConfigInput) => Promise<void>;
  private readonly now: () => number;
  private readonly log: (line: string) => void;
  private readonly minuteMs: number;

  private constructor(private readonly opts: ConfigSessionOptions) {
    this.store = opts.store;
    this.applyFn = opts.apply;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? ((line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
    this.minuteMs = opts.minuteMs ?? MINUTE_MS;
  }

  /** Loads the running configuration from the store (or the default) and applies it. */
  static async open(opts: ConfigSessionOptions): Promise<ConfigSession> {
    const s = new ConfigSession(opts);
    await s.serial(() => s.boot());
    return s;
  }

  get running(): ConfigInput {
    return clone(this.commits[0].config);
  }

  get candidate(): ConfigInput {
    return clone(this.cand);
  }

  /** Changes the candidate; if fn throws, the candidate stays as it was. */
  edit(fn: (candidate: ConfigInput) => void): void {
    const draft = clone(this.cand);
    fn(draft);
    this.cand = clone(draft); // JSON form: an `undefined` left by a delete is no difference
  }

  get dirty(): boolean {
    return !isDeepStrictEqual(this.cand, this.commits[0].config);
  }

  /** `commit check`: the whole candidate validated, nothing applied. */
  check(): { ok: true } | { ok: false; errors: ConfigError[] } {
    const v = validate(this.cand);
    return v.ok ? { ok: true } : { ok: false, errors: v.errors };
  }

  commit(opts: { user: string; comment?: string; confirmMinutes?: number }): Promise<CommitResult> {
    return this.serial(() => this.doCommit(opts));
  }

  /**
   * Commits a whole configuration that came from elsewhere (the HA peer's), past the guard: applied,
   * saved, kept for rollback like any commit. The candidate follows unless it has edits of its own.
   */
  adopt(input: ConfigInput, user: string, comment: string): Promise<{ ok: true; seq: number } | { ok: false; message: string }> {
    return this.serial(async () => {
      const v = validate(input);
      if (!v.ok) return { ok: false, message: v.errors.map(formatError).join("; ") };
      const running = this.commits[0];
      const dirty = !isDeepStrictEqual(this.cand, running.config);
      try {
        await this.applyFn(v.config, input);
      } catch (e) {
        return { ok: false, message: `applying it failed: ${message(e)}` };
      }
      const rec: CommitRecord = { seq: running.seq + 1, time: this.now(), user, comment, config: clone(input) };
      await this.record(rec, this.pending);
      if (!dirty) this.cand = clone(input);
      this.log(`config: commit ${rec.seq} by ${user}: ${comment}`);
      this.emit({ seq: rec.seq, user, comment });
      return { ok: true, seq: rec.seq };
    });
  }

  /** Confirms the pending `commit confirmed`. */
  confirm(user: string): Promise<void> {
    return this.serial(async () => {
      const p = this.pending;
      if (!p) throw new ConfigSessionError("no commit is waiting for confirmation");
      await this.store.save({ commits: this.commits });
      this.setPending(undefined);
      this.log(`commit confirmed: commit ${p.seq} confirmed by ${user}`);
    });
  }

  get pendingConfirm(): { deadline: number; seq: number } | undefined {
    return this.pending && { deadline: this.pending.deadline, seq: this.pending.seq };
  }

  /** Candidate = the configuration n commits ago (0: running). */
  rollback(n: number): void {
    const last = this.commits.length - 1;
    if (!Number.isInteger(n) || n < 0) throw new ConfigSessionError(`rollback ${n}: expected a whole number from 0 to ${last}`);
    if (n > last) throw new ConfigSessionError(`rollback ${n}: only ${last} previous configuration${last === 1 ? " is" : "s are"} kept (rollback 0-${last})`);
    this.cand = clone(this.commits[n].config);
  }

  /** Newest first; index n is what `rollback n` gives. */
  history(): { seq: number; time: number; user: string; comment?: string }[] {
    return this.commits.map(({ seq, time, user, comment }) => (comment === undefined ? { seq, time, user } : { seq, time, user, comment }));
  }

  /** Candidate = running. */
  discard(): void {
    this.cand = clone(this.commits[0].config);
  }

  /**
   * Replaces the candidate with a whole configuration in JSON. Text that is not a JSON object is
   * refused (ConfigSessionError, candidate unchanged); what `commit` would refuse is returned.
   */
  importJson(text: string): { problems: ConfigError[] } {
    let x: unknown;
    try {
      x = JSON.parse(text);
    } catch (e) {
      throw new ConfigSessionError(`not JSON: ${message(e)}`);
    }
    if (typeof x !== "object" || x === null || Array.isArray(x)) throw new ConfigSessionError("not a configuration: expected a JSON object");
    this.cand = x as ConfigInput;
    const v = validate(x);
    return { problems: v.ok ? [] : v.errors };
  }

  /** The whole candidate (or running) configuration as JSON. */
  exportJson(which: "candidate" | "running" = "candidate"): string {
    return `${JSON.stringify(which === "candidate" ? this.cand : this.commits[0].config, null, 2)}\n`;
  }

  /** Called after every commit, including the automatic rollback. Returns an unsubscribe. */
  onCommit(fn: (e: CommitEvent) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  /** Resolves once every commit, confirmation and rollback started so far has finished. */
  async idle(): Promise<void> {
    for (let q = this.queue; ; q = this.queue) {
      await q;
      if (q === this.queue) return;
    }
  }

  /** Stops the rollback timer (shutdown; the deadline stays on flash for the next boot). */
  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  // --- internals ---

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async boot(): Promise<void> {
    let loaded: LoadedState | undefined;
    try {
      loaded = await this.store.load();
    } catch (e) {
      if (!(e instanceof NoSavedConfigError)) throw e;
      this.log(`config: ${e.message}: booting the default configuration`);
    }
    if (!loaded) {
      this.commits = [{ seq: 0, time: this.now(), user: SYSTEM_USER, comment: "factory default", config: clone(this.opts.defaultConfig) }];
      await this.applyInput(this.commits[0].config, "the default configuration");
      this.cand = clone(this.commits[0].config);
      return;
    }
    this.commits = loaded.commits;
    this.pending = loaded.pendingConfirm;
    const running = this.commits[0];
    this.cand = clone(running.config);
    if (this.pending && this.now() >= this.pending.deadline) {
      // the window closed while the box was down: the unconfirmed configuration is not run at all
      await this.expire(this.pending.seq);
      if (!this.pending) return;
    }
    try {
      await this.applyInput(running.config, `commit ${running.seq}`);
      this.log(`config: running commit ${running.seq} (by ${running.user}, ${new Date(running.time).toISOString()})`);
    } catch (e) {
      this.log(`config: ${message(e)}`);
      if (this.pending) {
        await this.expire(this.pending.seq);
        if (!this.pending) return;
      }
      await this.bootDefault(`commit ${running.seq} could not be applied at boot: default configuration booted`);
      return;
    }
    if (this.pending && !this.timer) {
      this.log(`commit confirmed: commit ${this.pending.seq} is not confirmed: rolling back to commit ${this.pending.restore.seq} at ${new Date(this.pending.deadline).toISOString()} unless confirmed`);
      this.arm();
    }
  }

  /** The last resort when no saved configuration applies: the default, as a new commit (history kept). */
  private async bootDefault(comment: string): Promise<void> {
    this.log("config: booting the default configuration");
    await this.applyInput(this.opts.defaultConfig, "the default configuration");
    this.pending = undefined;
    this.arm();
    const rec: CommitRecord = { seq: this.commits[0].seq + 1, time: this.now(), user: SYSTEM_USER, comment, config: clone(this.opts.defaultConfig) };
    await this.record(rec, undefined);
    this.cand = clone(rec.config);
  }

  /** Validates and applies; throws one message naming what failed. */
  private async applyInput(input: ConfigInput, what: string): Promise<void> {
    const v = validate(input);
    if (!v.ok) throw new Error(`${what} is not valid: ${v.errors.map(formatError).join("; ")}`);
    try {
      await this.applyFn(v.config, input);
    } catch (e) {
      throw new Error(`applying ${what} failed: ${message(e)}`);
    }
  }

  /** Makes rec the running commit and saves; a failed save is logged (the next save carries it). */
  private async record(rec: CommitRecord, pending: PendingConfirmRecord | undefined): Promise<void> {
    this.commits = [rec, ...this.commits].slice(0, STORE_MAX_COMMITS);
    try {
      const saved = await this.store.save({ commits: this.commits, ...(pending ? { pendingConfirm: pending } : {}) });
      this.commits = this.commits.slice(0, saved.kept);
    } catch (e) {
      this.log(`config: commit ${rec.seq} is running but could not be saved to flash: ${message(e)}`);
    }
  }

  private async doCommit(opts: { user: string; comment?: string; confirmMinutes?: number }): Promise<CommitResult> {
    const minutes = opts.confirmMinutes;
    if (minutes !== undefined && (!Number.isInteger(minutes) || minutes < 1 || minutes > CONFIRM_MAX_MINUTES)) {
      return { ok: false, stage: "check", errors: [{ path: "commit confirmed", value: minutes, expected: `minutes, a whole number from 1 to ${CONFIRM_MAX_MINUTES}` }] };
    }
    const running = this.commits[0];
    const snapshot = clone(this.cand);
    const deadline = minutes === undefined ? undefined : this.now() + minutes * this.minuteMs;

    if (isDeepStrictEqual(snapshot, running.config)) {
      // nothing to apply: a plain commit confirms a pending one, a confirmed commit restarts its clock
      const p = this.pending;
      if (!p) return { ok: true, seq: running.seq, changed: false };
      const next = deadline === undefined ? undefined : { ...p, deadline, minutes: minutes as number };
      try {
        await this.store.save({ commits: this.commits, ...(next ? { pendingConfirm: next } : {}) });
      } catch (e) {
        return { ok: false, stage: "save", message: `cannot save to flash: ${message(e)}` };
      }
      this.setPending(next);
      if (next) {
        this.log(`commit confirmed: commit ${p.seq} will be rolled back to commit ${p.restore.seq} in ${minutes} minutes unless confirmed`);
        return { ok: true, seq: running.seq, changed: false, pendingConfirm: { deadline: next.deadline, seq: next.seq } };
      }
      this.log(`commit confirmed: commit ${p.seq} confirmed by ${opts.user}`);
      return { ok: true, seq: running.seq, changed: false, confirmed: p.seq };
    }

    const v = validate(snapshot);
    if (!v.ok) return { ok: false, stage: "check", errors: v.errors };
    const refusal = this.opts.guard?.(snapshot);
    if (refusal) {
      this.log(`config: commit by ${opts.user} refused: ${refusal}`);
      return { ok: false, stage: "refused", message: refusal };
    }
    try {
      await this.applyFn(v.config, snapshot);
    } catch (e) {
      this.log(`config: commit by ${opts.user} refused: applying failed: ${message(e)}; still running commit ${running.seq}`);
      return { ok: false, stage: "apply", message: message(e) };
    }

    const rec: CommitRecord = { seq: running.seq + 1, time: this.now(), user: opts.user, ...(opts.comment !== undefined ? { comment: opts.comment } : {}), config: snapshot };
    const pending: PendingConfirmRecord | undefined = deadline === undefined ? undefined : { deadline, seq: rec.seq, minutes: minutes as number, restore: this.pending?.restore ?? running };
    const commits = [rec, ...this.commits].slice(0, STORE_MAX_COMMITS);
    try {
      const saved = await this.store.save({ commits, ...(pending ? { pendingConfirm: pending } : {}) });
      this.commits = commits.slice(0, saved.kept);
    } catch (e) {
      // what runs must be what the flash boots: put the previous configuration back
      try {
        await this.applyInput(running.config, `commit ${running.seq}`);
      } catch (e2) {
        this.log(`config: ${message(e2)}: the box runs an unsaved configuration`);
      }
      this.log(`config: commit by ${opts.user} refused: cannot save to flash: ${message(e)}; still running commit ${running.seq}`);
      return { ok: false, stage: "save", message: `cannot save to flash: ${message(e)}` };
    }

    const confirmed = this.pending && !pending ? this.pending.seq : undefined;
    this.setPending(pending);
    this.log(`config: commit ${rec.seq} by ${rec.user}${rec.comment ? `: ${rec.comment}` : ""}`);
    if (confirmed !== undefined) this.log(`commit confirmed: commit ${confirmed} confirmed by ${opts.user}`);
    if (pending) this.log(`commit confirmed: commit ${rec.seq} will be rolled back to commit ${pending.restore.seq} in ${minutes} minutes unless confirmed`);
    this.emit({ seq: rec.seq, user: rec.user, ...(rec.comment !== undefined ? { comment: rec.comment } : {}) });
    return {
      ok: true, seq: rec.seq, changed: true,
      ...(confirmed !== undefined ? { confirmed } : {}),
      ...(pending ? { pendingConfirm: { deadline: pending.deadline, seq: pending.seq } } : {}),
    };
  }

  private setPending(p: PendingConfirmRecord | undefined): void {
    this.pending = p;
    this.arm();
  }

  /** Starts (or stops) the clock of the pending confirmation. */
  private arm(delayMs?: number): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const p = this.pending;
    if (!p || this.closed) return;
    const remaining = delayMs ?? p.deadline - this.now();
    const far = remaining > MAX_TIMER_MS;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (far) this.arm();
      else void this.serial(() => this.expire(p.seq));
    }, Math.max(0, Math.min(remaining, MAX_TIMER_MS)));
    this.timer.unref(); // the appliance lives anyway; a one-shot tool must not hang (the deadline is on flash)
  }

  /** The confirmation did not come: the last confirmed configuration becomes a new commit. */
  private async expire(seq: number): Promise<void> {
    const p = this.pending;
    if (!p || p.seq !== seq || this.closed) return; // confirmed (or superseded) meanwhile
    const target = p.restore;
    try {
      await this.applyInput(target.config, `commit ${target.seq}`);
    } catch (e) {
      this.log(`commit confirmed: rolling back to commit ${target.seq} failed: ${message(e)}; retrying in 1 minute`);
      this.arm(this.minuteMs);
      return;
    }
    const wasClean = !this.dirty;
    const rec: CommitRecord = {
      seq: this.commits[0].seq + 1, time: this.now(), user: SYSTEM_USER,
      comment: `automatic rollback: commit ${p.seq} not confirmed within ${p.minutes} minutes`, config: clone(target.config),
    };
    this.pending = undefined;
    this.arm();
    await this.record(rec, undefined);
    if (wasClean) this.cand = clone(rec.config); // an operator's unfinished edits are left alone
    this.log(`commit confirmed: not confirmed within ${p.minutes} minutes: rolled back to commit ${target.seq}`);
    this.emit({ seq: rec.seq, user: rec.user, comment: rec.comment, reverted: true });
  }

  private emit(e: CommitEvent): void {
    for (const fn of [...this.listeners]) {
      try {
        fn(e);
      } catch (err) {
        this.log(`config: a commit listener failed: ${message(err)}`);
      }
    }
  }
}
