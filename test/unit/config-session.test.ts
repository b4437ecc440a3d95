// The configuration session, as an operator meets it at the console: a candidate edited freely,
// `commit` that checks, applies and saves the whole of it (or changes nothing), numbered
// rollbacks, and `commit confirmed` that undoes itself unless confirmed, even across a reboot.
// The flash is a temporary file; apply is a fake that records what it was given.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openFlashFile, type Flash } from "../../board/flash.js";
import { openConfigStore, type ConfigStore } from "../../host/config/store.js";
import { ConfigSession, ConfigSessionError, type CommitEvent, type ConfigSessionOptions } from "../../host/config/session.js";
import type { Config, ConfigInput } from "../../host/config/schema.js";
import { labConfig, svc } from "../lib/lab-config.js";

const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

const base = (): ConfigInput => labConfig([svc("dsr")]);
const named = (hostname: string): ConfigInput => ({ ...base(), system: { hostname } });

interface Box {
  session: ConfigSession;
  /** Every configuration apply was given, in order. */
  applied: Config[];
  logs: string[];
  flash: Flash;
  store: ConfigStore;
  path: string;
  /** The next apply throws this. */
  failNext?: Error;
  /** Power off: the session's timer stops, the flash file is closed (and stays as it is). */
  off(): Promise<void>;
}

/** Boots a session on the flash file at `path` (a fresh one if not given). */
async function boot(path?: string, opts: Partial<ConfigSessionOptions> = {}): Promise<Box> {
  if (!path) {
    const d = await mkdtemp(join(tmpdir(), "flowswitch-session-"));
    dirs.push(d);
    path = join(d, "flash.img");
  }
  const flash = await openFlashFile(path, { create: true });
  const store = openConfigStore(flash);
  const box = { applied: [] as Config[], logs: [] as string[], flash, store, path } as Box;
  box.session = await ConfigSession.open({
    store,
    defaultConfig: base(),
    apply: async (c) => {
      const e = box.failNext;
      box.failNext = undefined;
      if (e) throw e;
      box.applied.push(c);
    },
    log: (l) => box.logs.push(l),
    ...opts,
  });
  box.off = async () => {
    box.session.close();
    await flash.close();
  };
  return box;
}

async function commitHost(s: ConfigSession, hostname: string, o: { user?: string; confirmMinutes?: number } = {}): Promise<number> {
  s.edit((c) => (c.system = { hostname }));
  const r = await s.commit({ user: o.user ?? "alice", comment: `hostname ${hostname}`, confirmMinutes: o.confirmMinutes });
  assert.ok(r.ok, JSON.stringify(r));
  return r.seq;
}

/** The next commit event, or a failure after `ms` (this timer also keeps the test alive). */
function nextCommit(s: ConfigSession, ms = 5000): Promise<CommitEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no commit event within ${ms} ms`)), ms);
    const off = s.onCommit((e) => {
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe("config session: boot", () => {
  it("boots and applies the default configuration when the flash holds none", async () => {
    const box = await boot();
    assert.equal(box.applied.length, 1);
    assert.equal(box.applied[0].hostname, "flowswitch");
    assert.deepStrictEqual(box.session.running, base());
    assert.deepStrictEqual(box.session.candidate, base());
    assert.equal(box.session.dirty, false);
    assert.deepStrictEqual(box.session.history().map((h) => [h.seq, h.user, h.comment]), [[0, "system", "factory default"]]);
    assert.ok(box.logs.some((l) => /no saved configuration: slot A: empty; slot B: empty: booting the default configuration/.test(l)), box.logs.join("\n"));
    await box.off();
  });
});

describe("config session: commit", () => {
  it("validates, applies and saves the candidate, which becomes the running configuration", async () => {
    const box = await boot();
    const s = box.session;
    const events: CommitEvent[] = [];
    s.onCommit((e) => events.push(e));
    s.edit((c) => (c.system = { hostname: "edge1" }));
    assert.equal(s.dirty, true);
    assert.equal(s.running.system, undefined, "the running configuration is untouched by edits");
    const r = await s.commit({ user: "alice", comment: "rename" });
    assert.deepStrictEqual(r, { ok: true, seq: 1, changed: true });
    assert.equal(box.applied.at(-1)?.hostname, "edge1");
    assert.deepStrictEqual(s.running, named("edge1"));
    assert.equal(s.dirty, false);
    assert.deepStrictEqual(events, [{ seq: 1, user: "alice", comment: "rename" }]);
    assert.deepStrictEqual(s.history().map((h) => [h.seq, h.user, h.comment]), [[1, "alice", "rename"], [0, "system", "factory default"]]);

    const again = await s.commit({ user: "alice" });
    assert.deepStrictEqual(again, { ok: true, seq: 1, changed: false }, "nothing to commit: nothing applied");
    assert.equal(box.applied.length, 2);
    await box.off();

    const reboot = await boot(box.path);
    assert.deepStrictEqual(reboot.session.running, named("edge1"));
    assert.equal(reboot.applied.length, 1);
    assert.equal(reboot.applied[0].hostname, "edge1");
    assert.equal(reboot.session.history()[0].comment, "rename");
    await reboot.off();
  });

  it("commit check lists every error with its path, value and expected form; a refused commit changes nothing", async () => {
    const box = await boot();
    const s = box.session;
    s.edit((c) => {
      c.ports[0].mac = "02:00:00:00:01";
      c.services![0].port = 70000;
    });
    const expected = [
      { path: "ports[0].mac", value: "02:00:00:00:01", expected: "a MAC address like 02:00:00:00:00:01" },
      { path: "services[0].port", value: 70000, expected: "a whole number from 0 to 65535" },
    ];
    assert.deepStrictEqual(s.check(), { ok: false, errors: expected });
    const r = await s.commit({ user: "alice" });
    assert.deepStrictEqual(r, { ok: false, stage: "check", errors: expected });
    assert.equal(box.applied.length, 1, "nothing applied");
    assert.deepStrictEqual(s.running, base());
    assert.equal(s.dirty, true, "the candidate keeps the operator's edits");
    s.discard();
    assert.equal(s.dirty, false);
    assert.deepStrictEqual(s.check(), { ok: true });
    await box.off();
    const reboot = await boot(box.path);
    assert.equal(reboot.session.history().length, 1, "nothing saved");
    await reboot.off();
  });

  it("an edit that throws leaves the candidate as it was", async () => {
    const box = await boot();
    assert.throws(() => box.session.edit((c) => {
      c.system = { hostname: "half" };
      throw new Error("no such node");
    }), /no such node/);
    assert.equal(box.session.dirty, false);
    await box.off();
  });

  it("if apply throws, nothing is saved, the running configuration stays, and the error comes back", async () => {
    const box = await boot();
    const s = box.session;
    await commitHost(s, "h1");
    s.edit((c) => (c.system = { hostname: "h2" }));
    box.failNext = new Error("engine refused the tables");
    const r = await s.commit({ user: "alice" });
    assert.deepStrictEqual(r, { ok: false, stage: "apply", message: "engine refused the tables" });
    assert.deepStrictEqual(s.running, named("h1"));
    assert.equal(s.history()[0].seq, 1);
    assert.equal(s.dirty, true);
    await box.off();
    const reboot = await boot(box.path);
    assert.deepStrictEqual(reboot.session.running, named("h1"));
    assert.deepStrictEqual(reboot.session.history().map((h) => h.seq), [1, 0]);
    await reboot.off();
  });

  it("if the flash cannot take the commit, the previous configuration is applied again", async () => {
    const box = await boot();
    const s = box.session;
    await commitHost(s, "h1");
    await box.flash.close(); // the flash fails
    s.edit((c) => (c.system = { hostname: "h2" }));
    const r = await s.commit({ user: "alice" });
    assert.equal(r.ok, false);
    assert.ok(!r.ok && r.stage === "save" && /cannot save to flash: flash: .* is closed/.test(r.message), JSON.stringify(r));
    assert.deepStrictEqual(box.applied.map((c) => c.hostname), ["flowswitch", "h1", "h2", "h1"]);
    assert.deepStrictEqual(s.running, named("h1"));
    s.close();
  });
});

describe("config session: the pair's standby", () => {
  it("the guard refuses a commit with its reason and changes nothing; adopt commits a configuration from the peer past it", async () => {
    let standby = true;
    const box = await boot(undefined, { guard: (c) => (standby && c.services?.length !== 1 ? "shared settings are edited on the active node" : undefined) });
    const s = box.session;
    s.edit((c) => (c.services = []));
    const r = await s.commit({ user: "bob" });
    assert.deepStrictEqual(r, { ok: false, stage: "refused", message: "shared settings are edited on the active node" });
    assert.equal(box.applied.length, 1, "nothing applied");
    assert.equal(s.history().length, 1, "nothing recorded");
    assert.ok(box.logs.some((l) => l.includes("commit by bob refused: shared settings")), box.logs.join("\n"));

    const peer = { ...base(), system: { hostname: "from-peer" } };
    const a = await s.adopt(peer, "ha-peer", "replicated from the active node");
    assert.deepStrictEqual(a, { ok: true, seq: 1 });
    assert.equal(box.applied.at(-1)?.hostname, "from-peer");
    assert.deepStrictEqual(s.history().map((h) => [h.seq, h.user]), [[1, "ha-peer"], [0, "system"]]);
    assert.equal(s.dirty, true, "the operator's own edit of the candidate is kept");
    const bad = await s.adopt({ ...base(), services: [{ name: "x" }] } as never, "ha-peer", "broken");
    assert.equal(bad.ok, false);
    assert.equal(s.history().length, 2, "an invalid one is not recorded");
    standby = false;
    assert.equal((await s.commit({ user: "bob" })).ok, true, "once active, the same commit goes through");
    await box.off();
  });
});

describe("config session: rollback", () => {
  it("rollback n puts the configuration n commits ago into the candidate; too far is an error", async () => {
    const box = await boot();
    const s = box.session;
    for (const h of ["h1", "h2", "h3"]) await commitHost(s, h);
    s.rollback(2);
    assert.deepStrictEqual(s.candidate, named("h1"));
    s.rollback(3);
    assert.deepStrictEqual(s.candidate, base());
    s.rollback(0);
    assert.deepStrictEqual(s.candidate, named("h3"));
    assert.throws(() => s.rollback(4), (e: Error) => e instanceof ConfigSessionError && e.message === "rollback 4: only 3 previous configurations are kept (rollback 0-3)");
    assert.throws(() => s.rollback(-1), ConfigSessionError);
    s.rollback(2);
    const r = await s.commit({ user: "bob", comment: "back to h1" });
    assert.ok(r.ok && r.seq === 4);
    assert.deepStrictEqual(s.running, named("h1"));
    assert.deepStrictEqual(s.history().map((h) => h.seq), [4, 3, 2, 1, 0]);
    await box.off();
  });

  it("keeps at least 20 previous commits (50 in all), newest first, across a reboot", async () => {
    const box = await boot();
    for (let i = 1; i <= 55; i++) await commitHost(box.session, `h${i}`);
    const h = box.session.history();
    assert.equal(h.length, 50);
    assert.deepStrictEqual(h.map((x) => x.seq), Array.from({ length: 50 }, (_, i) => 55 - i));
    await box.off();

    const reboot = await boot(box.path);
    const s = reboot.session;
    assert.equal(s.history().length, 50);
    s.rollback(20);
    assert.deepStrictEqual(s.candidate, named("h35"));
    s.rollback(49);
    assert.deepStrictEqual(s.candidate, named("h6"));
    assert.throws(() => s.rollback(50), /rollback 50: only 49 previous configurations are kept/);
    await reboot.off();
  });
});

describe("config session: commit confirmed", () => {
  const MINUTE = 25; // ms in a test minute

  it("rolls back by itself unless confirmed in time, and says so", async () => {
    const box = await boot(undefined, { minuteMs: MINUTE });
    const s = box.session;
    await commitHost(s, "h1");
    const t0 = Date.now();
    s.edit((c) => (c.system = { hostname: "h2" }));
    const r = await s.commit({ user: "alice", confirmMinutes: 2 });
    assert.ok(r.ok && r.seq === 2 && r.pendingConfirm?.seq === 2, JSON.stringify(r));
    assert.deepStrictEqual(s.pendingConfirm, r.ok ? r.pendingConfirm : undefined);
    assert.deepStrictEqual(s.running, named("h2"));

    const e = await nextCommit(s);
    assert.ok(Date.now() - t0 >= 2 * MINUTE - 5, "not before the deadline");
    assert.deepStrictEqual(e, { seq: 3, user: "system", comment: "automatic rollback: commit 2 not confirmed within 2 minutes", reverted: true });
    assert.ok(box.logs.includes("commit confirmed: not confirmed within 2 minutes: rolled back to commit 1"), box.logs.join("\n"));
    assert.deepStrictEqual(box.applied.map((c) => c.hostname), ["flowswitch", "h1", "h2", "h1"]);
    assert.deepStrictEqual(s.running, named("h1"));
    assert.deepStrictEqual(s.candidate, named("h1"), "an unedited candidate follows the rollback");
    assert.equal(s.pendingConfirm, undefined);
    assert.deepStrictEqual(s.history().map((h) => [h.seq, h.user]), [[3, "system"], [2, "alice"], [1, "alice"], [0, "system"]]);
    await box.off();

    const reboot = await boot(box.path, { minuteMs: MINUTE });
    assert.deepStrictEqual(reboot.session.running, named("h1"));
    assert.equal(reboot.session.pendingConfirm, undefined);
    reboot.session.rollback(1);
    assert.deepStrictEqual(reboot.session.candidate, named("h2"), "the unconfirmed commit stays in the history");
    await reboot.off();
  });

  it("confirmed in time, it stays; a plain commit while pending also confirms", async () => {
    const minute = 200; // room for a slow disk's saves before each confirmation
    const box = await boot(undefined, { minuteMs: minute });
    const s = box.session;
    const events: CommitEvent[] = [];
    s.onCommit((e) => events.push(e));
    await commitHost(s, "h1");
    await commitHost(s, "h2", { confirmMinutes: 2 });
    await s.confirm("bob");
    assert.equal(s.pendingConfirm, undefined);
    assert.ok(box.logs.includes("commit confirmed: commit 2 confirmed by bob"));
    await assert.rejects(s.confirm("bob"), (e: Error) => e instanceof ConfigSessionError && /no commit is waiting for confirmation/.test(e.message));

    await commitHost(s, "h3", { confirmMinutes: 2 });
    s.edit((c) => (c.system = { hostname: "h4" }));
    const plain = await s.commit({ user: "carol" });
    assert.ok(plain.ok && plain.seq === 4 && plain.confirmed === 3, JSON.stringify(plain));
    assert.equal(s.pendingConfirm, undefined);

    await commitHost(s, "h5", { confirmMinutes: 2 });
    const empty = await s.commit({ user: "dave" }); // nothing changed: confirms only
    assert.deepStrictEqual(empty, { ok: true, seq: 5, changed: false, confirmed: 5 });

    await sleep(3 * minute);
    await s.idle();
    assert.deepStrictEqual(s.running, named("h5"));
    assert.ok(events.every((e) => !e.reverted), "no rollback happened");
    assert.equal(box.applied.at(-1)?.hostname, "h5");
    await box.off();
    const reboot = await boot(box.path, { minuteMs: MINUTE });
    assert.equal(reboot.session.pendingConfirm, undefined, "the confirmation was saved");
    assert.deepStrictEqual(reboot.session.running, named("h5"));
    await reboot.off();
  });

  it("rolls back to the last confirmed configuration after several confirmed commits in a row", async () => {
    const box = await boot(undefined, { minuteMs: MINUTE });
    const s = box.session;
    await commitHost(s, "h1");
    await commitHost(s, "h2", { confirmMinutes: 40 }); // replaced by the next one long before it is due
    await commitHost(s, "h3", { confirmMinutes: 2 });
    await nextCommit(s);
    assert.deepStrictEqual(s.running, named("h1"));
    assert.ok(box.logs.includes("commit confirmed: not confirmed within 2 minutes: rolled back to commit 1"), box.logs.join("\n"));
    await box.off();
  });

  it("refuses a number of minutes outside 1-65535 like any configuration error", async () => {
    const box = await boot();
    box.session.edit((c) => (c.system = { hostname: "h1" }));
    const r = await box.session.commit({ user: "alice", confirmMinutes: 0 });
    assert.deepStrictEqual(r, { ok: false, stage: "check", errors: [{ path: "commit confirmed", value: 0, expected: "minutes, a whole number from 1 to 65535" }] });
    assert.equal(box.applied.length, 1);
    await box.off();
  });

  it("the deadline survives a reboot: before it the box waits, after it the box boots the previous configuration", async () => {
    let clock = 1_800_000_000_000;
    const now = (): number => clock;
    const box = await boot(undefined, { now });
    await commitHost(box.session, "h1");
    await commitHost(box.session, "h2", { confirmMinutes: 5 });
    const deadline = clock + 5 * 60_000;
    assert.deepStrictEqual(box.session.pendingConfirm, { deadline, seq: 2 });
    await box.off(); // power cut during the window

    clock += 4 * 60_000;
    const early = await boot(box.path, { now });
    assert.deepStrictEqual(early.session.pendingConfirm, { deadline, seq: 2 });
    assert.deepStrictEqual(early.applied.map((c) => c.hostname), ["h2"]);
    assert.ok(early.logs.some((l) => l.startsWith("commit confirmed: commit 2 is not confirmed: rolling back to commit 1 at ")), early.logs.join("\n"));
    await early.off();

    clock += 2 * 60_000;
    const late = await boot(box.path, { now });
    assert.deepStrictEqual(late.applied.map((c) => c.hostname), ["h1"], "the unconfirmed configuration is not run at all");
    assert.deepStrictEqual(late.session.running, named("h1"));
    assert.equal(late.session.pendingConfirm, undefined);
    assert.ok(late.logs.includes("commit confirmed: not confirmed within 5 minutes: rolled back to commit 1"), late.logs.join("\n"));
    assert.deepStrictEqual(late.session.history().slice(0, 2).map((h) => [h.seq, h.user]), [[3, "system"], [2, "alice"]]);
    await late.off();

    const after = await boot(box.path, { now });
    assert.deepStrictEqual(after.session.running, named("h1"));
    assert.equal(after.session.pendingConfirm, undefined, "the rollback was saved");
    await after.off();
  });

  it("a box rebooted inside the window rolls back once booted", async () => {
    const box = await boot(undefined, { minuteMs: MINUTE });
    await commitHost(box.session, "h1");
    await commitHost(box.session, "h2", { confirmMinutes: 20 }); // the reboot takes a fraction of it
    await box.off();
    const reboot = await boot(box.path, { minuteMs: MINUTE });
    assert.deepStrictEqual(reboot.session.running, named("h2"));
    const e = await nextCommit(reboot.session);
    assert.equal(e.reverted, true);
    assert.deepStrictEqual(reboot.session.running, named("h1"));
    assert.deepStrictEqual(reboot.applied.map((c) => c.hostname), ["h2", "h1"]);
    await reboot.off();
  });
});

describe("config session: JSON", () => {
  it("exports the whole configuration and imports it back into the candidate", async () => {
    const one = await boot();
    await commitHost(one.session, "exported");
    one.session.edit((c) => c.backends!.pop());
    const text = one.session.exportJson();
    assert.deepStrictEqual(JSON.parse(text), one.session.candidate);
    assert.deepStrictEqual(JSON.parse(one.session.exportJson("running")), named("exported"));
    await one.off();

    const two = await boot();
    assert.deepStrictEqual(two.session.importJson(text), { problems: [] });
    assert.deepStrictEqual(two.session.candidate, JSON.parse(text));
    const r = await two.session.commit({ user: "alice", comment: "imported" });
    assert.ok(r.ok && r.changed);
    assert.equal(two.session.exportJson("running"), text);

    assert.throws(() => two.session.importJson("{ not json"), (e: Error) => e instanceof ConfigSessionError && /^not JSON: /.test(e.message));
    assert.throws(() => two.session.importJson("[1, 2]"), /expected a JSON object/);
    assert.equal(two.session.dirty, false, "a refused import leaves the candidate");
    const bad = two.session.importJson(JSON.stringify({ ...JSON.parse(text), ports: [] }));
    assert.deepStrictEqual(bad.problems[0], { path: "ports", value: [], expected: "at least one port" });
    assert.equal(two.session.dirty, true, "imported anyway: commit will refuse it");
    await two.off();
  });
});
