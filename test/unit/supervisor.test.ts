// The supervisor as docs/advertisement-protocol.md and docs/supervisor.md describe it, driven with
// signed datagrams on a fake clock: the number authority never grants a number twice (random
// lease / renew / release / expiry / restart), holds numbers back, answers retries the same way,
// refuses with reasons; its store refuses to start when it cannot be trusted; server lists fit a
// datagram; registrations conflict and expire; advertisements are relayed byte for byte, never in
// a loop; forged and replayed requests are refused and counted.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decode, encode, MAX_DATAGRAM_BYTES, type AuthKey, type Message, type NumberGrantMsg, type ServerEntry, type ServerListReplyMsg } from "../../host/discovery/protocol.js";
import { Supervisor, type Source, type SupervisorConfig } from "../../host/discovery/supervisor.js";
import { FileLeaseStore, LeaseStoreError, parseLeaseState, serializeLeaseState, type LeaseState, type LeaseStore } from "../../host/discovery/lease-store.js";
import { validate } from "../../host/config/validate.js";
import { labConfig, svc } from "../lib/lab-config.js";

const KEY: AuthKey = { id: 7, secret: new Uint8Array(32).fill(0x42) };
const WRONG: AuthKey = { id: 7, secret: new Uint8Array(32).fill(0x43) };
const T0 = 1_700_000_000_000;
const ES = (i: number): Source => ({ address: `10.0.3.${i}`, port: 40_000 + i });

/** A store in memory that goes through the same text as the file (so a restart parses it), with a gate on saves. */
class MemoryStore implements LeaseStore {
  readonly where = "memory";
  text?: string;
  saves = 0;
  failing = false;
  gate?: Promise<void>;
  async load(): Promise<LeaseState | undefined> {
    return this.text === undefined ? undefined : parseLeaseState(this.text, this.where);
  }
  async save(s: LeaseState): Promise<void> {
    if (this.gate) await this.gate;
    if (this.failing) throw new Error("disk full");
    this.text = serializeLeaseState(s);
    this.saves++;
  }
}

interface Sent {
  bytes: Uint8Array;
  to: Source;
}

/** A supervisor on a fake clock, and end systems that sign requests with the shared key. */
class Harness {
  t = T0;
  sent: Sent[] = [];
  logs: string[] = [];
  sup!: Supervisor;
  private seqs = new Map<string, number>();
  constructor(readonly config: SupervisorConfig, readonly store: LeaseStore | null = new MemoryStore()) {}

  async start(): Promise<this> {
    this.sup = new Supervisor(this.config, { send: (bytes, to) => void this.sent.push({ bytes, to }), store: this.store ?? undefined, now: () => this.t, log: (l) => void this.logs.push(l) });
    await this.sup.start();
    await this.sup.stop(); // no timer in tests: tick() is called by hand
    return this;
  }

  /** A new supervisor process on the same store, later. */
  async restart(): Promise<void> {
    await this.sup.stop();
    await this.start();
  }

  sign(msg: Message, sender: string, key = KEY): Uint8Array {
    const seq = (this.seqs.get(sender) ?? this.t) + 1;
    this.seqs.set(sender, seq);
    return encode(msg, key, seq, this.t, sender);
  }

  /** Sends a request and returns the answers that came back to its source. */
  async ask(msg: Message, sender: string, from: Source, key = KEY): Promise<Message[]> {
    return this.deliver(this.sign(msg, sender, key), from);
  }

  async deliver(bytes: Uint8Array, from: Source): Promise<Message[]> {
    const before = this.sent.length;
    await this.sup.handle(bytes, from);
    return this.sent.slice(before).filter((s) => s.to.address === from.address && s.to.port === from.port).map((s) => {
      assert.ok(s.bytes.length <= MAX_DATAGRAM_BYTES);
      const r = decode(s.bytes, new Map([[KEY.id, KEY.secret]]));
      assert.ok(r.ok, `answer verifies with the request's key: ${!r.ok && r.detail}`);
      assert.equal(r.sender, this.config.id);
      return r.msg;
    });
  }

  async number(es: number, op: "lease" | "renew" | "release", f: { requestId: number; pool?: string; count?: number; leaseId?: number; leaseS?: number }): Promise<NumberGrantMsg> {
    const msg: Message = { type: "number-request", requestId: f.requestId, endSystem: `es${es}`, pool: f.pool ?? "p", op };
    if (op === "lease") Object.assign(msg, { count: f.count ?? 1, leaseS: f.leaseS ?? 60 });
    if (op === "renew") Object.assign(msg, { leaseId: f.leaseId, leaseS: f.leaseS ?? 60 });
    if (op === "release") Object.assign(msg, { leaseId: f.leaseId });
    const answers = await this.ask(msg, `es${es}`, ES(es));
    assert.equal(answers.length, 1);
    assert.equal(answers[0]!.type, "number-grant");
    return answers[0] as NumberGrantMsg;
  }
}

function config(extra: Partial<SupervisorConfig> = {}): SupervisorConfig {
  return { id: "sup1", keys: [KEY], intervalMs: 1000, maxEndSystems: 100, pools: [{ name: "p", first: 100, last: 163, maxLeaseS: 30 }], relay: [], peers: [], ...extra };
}

/** A small deterministic PRNG (mulberry32), so a failure can be replayed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// ---- the number authority ---------------------------------------------------------------------

test("number authority: across random lease, renew, release, retry, expiry and restarts, no number is ever granted while another holder may use it or within its hold-back", async () => {
  for (const seed of [1, 2, 3]) {
    const rand = rng(seed);
    const pick = <T>(xs: T[]): T => xs[Math.floor(rand() * xs.length)]!;
    const h = await new Harness(config({ pools: [{ name: "p", first: 100, last: 131, maxLeaseS: 20 }] })).start();
    /** What each lease's holder was told (counted from when it asked), and when it stopped using the numbers. */
    const told = new Map<number, { es: number; first: number; count: number; until: number; holdS: number; released?: number }>();
    type Req = { op: "lease" | "renew" | "release"; f: Parameters<Harness["number"]>[2]; answer: NumberGrantMsg; at: number };
    const last = new Map<number, Req>(); // per end system: its last request
    let requestId = 0;
    let grants = 0;
    let retries = 0;
    let restarts = 0;
    const record = (es: number, op: Req["op"], f: Req["f"], a: NumberGrantMsg, step: number): void => {
      if (a.status === "granted") {
        if (told.has(a.leaseId!)) return; // a retry's answer: the same lease
        grants++;
        assert.ok(a.count === f.count && a.leaseS! <= f.leaseS! && a.leaseS! <= 20);
        assert.ok(a.first! >= 100 && a.first! + a.count! - 1 <= 131);
        for (const [lid, l] of told) {
          const overlap = a.first! <= l.first + l.count - 1 && l.first <= a.first! + a.count! - 1;
          if (!overlap) continue;
          const stopped = l.released ?? l.until;
          assert.ok(h.t >= stopped + l.holdS * 1000, `seed ${seed} step ${step}: numbers ${a.first}+${a.count} granted at ${h.t - T0} ms while lease ${lid} (${l.first}+${l.count}) is used until ${stopped - T0} ms, hold-back ${l.holdS} s`);
        }
        told.set(a.leaseId!, { es, first: a.first!, count: a.count!, until: h.t + a.leaseS! * 1000, holdS: a.leaseS! });
      } else if (a.status === "renewed") {
        const l = told.get(a.leaseId!)!;
        assert.equal(l.es, es, "only the holder renews");
        assert.ok(l.until > h.t || l.until === h.t + a.leaseS! * 1000, "an expired lease is not renewed");
        l.until = Math.max(l.until, h.t + a.leaseS! * 1000);
        l.holdS = Math.max(l.holdS, a.leaseS!);
      } else if (a.status === "released") {
        const l = told.get(a.leaseId!)!;
        l.released ??= h.t;
      } else {
        assert.ok(a.reason && a.reason.length > 0);
        if (op === "renew" && f.leaseId !== undefined) {
          const l = told.get(f.leaseId);
          assert.ok(!l || l.es !== es || l.released !== undefined || l.until <= h.t, `seed ${seed} step ${step}: renewal of a held lease refused: ${a.reason}`);
        }
      }
    };
    for (let step = 0; step < 1500; step++) {
      const es = 1 + Math.floor(rand() * 4);
      const r = rand();
      const prev = last.get(es);
      if (r < 0.1 && prev && prev.at === h.t) {
        // its answer was lost: the same request again at once (after a restart, sometimes)
        if (rand() < 0.5) {
          await h.restart();
          restarts++;
        }
        const again = await h.number(es, prev.op, prev.f);
        if (prev.answer.status === "refused") assert.equal(again.status, "refused");
        else assert.deepEqual(again, prev.answer, `seed ${seed} step ${step}: a retry is answered the same`);
        retries++;
        continue;
      }
      if (r < 0.15) {
        await h.restart();
        restarts++;
        continue;
      }
      if (r < 0.3) {
        h.t += Math.floor(rand() * 15_000);
        h.sup.tick();
        continue;
      }
      const mine = [...told].filter(([, l]) => l.es === es && l.released === undefined && l.until > h.t);
      let op: Req["op"];
      let f: Req["f"];
      if (r < 0.6 || !mine.length) {
        op = "lease";
        f = { requestId: ++requestId, count: 1 + Math.floor(rand() * 6), leaseS: 1 + Math.floor(rand() * 30) };
      } else if (r < 0.85) {
        op = "renew";
        const lid = rand() < 0.8 ? pick(mine)[0] : 1 + Math.floor(rand() * (requestId + 2)); // sometimes a lease it does not hold
        f = { requestId: ++requestId, leaseId: lid, leaseS: 1 + Math.floor(rand() * 30) };
      } else {
        op = "release";
        f = { requestId: ++requestId, leaseId: pick(mine)[0] };
      }
      const a = await h.number(es, op, f);
      record(es, op, f, a, step);
      last.set(es, { op, f, answer: a, at: h.t });
    }
    const ids = [...told.keys()];
    assert.equal(new Set(ids).size, ids.length);
    assert.deepEqual(ids, [...ids].sort((x, y) => x - y), "lease ids only grow, across restarts");
    assert.ok(grants > 100 && restarts > 20 && retries > 10, `the walk exercised enough (grants ${grants}, restarts ${restarts}, retries ${retries})`);
  }
});

test("number authority: released and expired numbers are held back for one further lease time", async () => {
  const h = await new Harness(config({ pools: [{ name: "p", first: 0, last: 3, maxLeaseS: 60 }] })).start();
  const a = await h.number(1, "lease", { requestId: 1, count: 4, leaseS: 10 });
  assert.equal(a.status, "granted");
  h.t += 2000;
  assert.equal((await h.number(1, "release", { requestId: 2, leaseId: a.leaseId })).status, "released");
  h.t += 9_999; // released at 2 s: held back until 12 s
  const early = await h.number(2, "lease", { requestId: 1, count: 1, leaseS: 10 });
  assert.equal(early.status, "refused");
  assert.match(early.reason!, /pool p has no 1 consecutive free numbers \(free 0, held back 4\)/);
  assert.deepEqual(h.sup.stats().pools[0], { name: "p", first: 0, last: 3, maxLeaseS: 60, size: 4, used: 0, heldBack: 4, free: 0, leases: 1 });
  h.t += 1;
  const b = await h.number(2, "lease", { requestId: 2, count: 4, leaseS: 10 });
  assert.equal(b.status, "granted");
  assert.equal(b.first, 0);
  // expiry: not renewed within its 10 s, so it is over at 22 s and held back until 32 s
  h.t += 10_000;
  h.sup.tick();
  assert.match(h.logs.join("\n"), new RegExp(`lease ${b.leaseId} of pool p \\(0-3\\) of es2 expired, held back 10 s`));
  const late = await h.number(2, "renew", { requestId: 3, leaseId: b.leaseId, leaseS: 10 });
  assert.equal(late.status, "refused");
  assert.match(late.reason!, /\(expired\)/);
  h.t += 9_999;
  assert.equal((await h.number(3, "lease", { requestId: 1, count: 1 })).status, "refused");
  h.t += 1;
  const c = await h.number(3, "lease", { requestId: 2, count: 1 });
  assert.equal(c.status, "granted");
  assert.ok(c.leaseId! > b.leaseId!, "lease ids only grow");
});

test("number authority: a retried request gets the same answer, from memory and after a restart, so a lost grant never costs a second lease", async () => {
  const store = new MemoryStore();
  const h = await new Harness(config(), store).start();
  const g = await h.number(1, "lease", { requestId: 77, count: 3, leaseS: 20 });
  assert.equal(g.status, "granted");
  h.t += 1000;
  assert.deepEqual(await h.number(1, "lease", { requestId: 77, count: 3, leaseS: 20 }), g, "the same grant, not a second lease");
  await h.restart();
  h.t += 1000;
  assert.deepEqual(await h.number(1, "lease", { requestId: 77, count: 3, leaseS: 20 }), g, "after a restart too (the lease remembers its request)");
  assert.equal(h.sup.leases().length, 1);
  const r = await h.number(1, "renew", { requestId: 78, leaseId: g.leaseId, leaseS: 10 });
  await h.restart();
  assert.deepEqual(await h.number(1, "renew", { requestId: 78, leaseId: g.leaseId, leaseS: 10 }), r);
  const x = await h.number(1, "release", { requestId: 79, leaseId: g.leaseId });
  assert.equal(x.status, "released");
  await h.restart();
  assert.deepEqual(await h.number(1, "release", { requestId: 79, leaseId: g.leaseId }), x);
  // a refusal, retried, is the same refusal (cached), even after numbers became free
  const big = await h.number(2, "lease", { requestId: 5, count: 65, leaseS: 10 });
  assert.equal(big.status, "refused");
  assert.deepEqual(await h.number(2, "lease", { requestId: 5, count: 65, leaseS: 10 }), big);
  assert.ok(h.sup.stats().repeated >= 2, "counted since the last restart");
  // retries while the save is in flight: one lease, the same answer to both
  const s2 = new MemoryStore();
  const h2 = await new Harness(config(), s2).start();
  let open!: () => void;
  s2.gate = new Promise((r) => (open = r));
  const bytes = h2.sign({ type: "number-request", requestId: 9, endSystem: "es1", pool: "p", op: "lease", count: 1, leaseS: 5 }, "es1");
  const again = h2.sign({ type: "number-request", requestId: 9, endSystem: "es1", pool: "p", op: "lease", count: 1, leaseS: 5 }, "es1");
  const first = h2.sup.handle(bytes, ES(1));
  const second = h2.sup.handle(again, ES(1));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(h2.sent.length, 0, "no grant before the lease is saved");
  open();
  await Promise.all([first, second]);
  assert.equal(h2.sent.length, 2);
  assert.deepEqual(h2.sent[0]!.bytes.length, h2.sent[1]!.bytes.length);
  assert.equal(h2.sup.leases().length, 1);
  assert.equal(s2.saves, 1);
});

test("number authority: a lease is saved before its grant is sent; a failed save grants nothing", async () => {
  const store = new MemoryStore();
  const h = await new Harness(config(), store).start();
  const g = await h.number(1, "lease", { requestId: 1, count: 2, leaseS: 10 });
  const saved = parseLeaseState(store.text!);
  assert.deepEqual(saved.leases.map((l) => [l.leaseId, l.first, l.count, l.endSystem]), [[g.leaseId, g.first, 2, "es1"]]);
  assert.equal(saved.nextLeaseId, g.leaseId! + 1, "the next lease id is saved too");
  store.failing = true;
  const f = await h.number(2, "lease", { requestId: 1, count: 2, leaseS: 10 });
  assert.equal(f.status, "refused");
  assert.match(f.reason!, /lease store cannot be written: disk full/);
  assert.equal(h.sup.stats().refused.unavailable, 1);
  store.failing = false;
  const ok = await h.number(2, "lease", { requestId: 2, count: 2, leaseS: 10 });
  assert.equal(ok.status, "granted");
  assert.notEqual(ok.first, g.first);
});

test("number authority: every refusal has its reason and is counted: unknown pool, exhausted, not your lease (unknown, someone else's, released, expired)", async () => {
  const h = await new Harness(config({ pools: [{ name: "p", first: 1, last: 4, maxLeaseS: 30 }] })).start();
  const expect = async (es: number, op: "lease" | "renew" | "release", f: Parameters<Harness["number"]>[2], re: RegExp): Promise<void> => {
    const a = await h.number(es, op, f);
    assert.equal(a.status, "refused");
    assert.match(a.reason!, re);
    assert.equal(a.leaseId, undefined);
  };
  await expect(1, "lease", { requestId: 1, pool: "nope" }, /^unknown pool nope$/);
  await expect(1, "lease", { requestId: 2, count: 5 }, /^pool p has no 5 consecutive free numbers \(free 4, held back 0\)$/);
  const g = await h.number(1, "lease", { requestId: 3, count: 2, leaseS: 10 });
  await expect(1, "renew", { requestId: 4, leaseId: 999 }, /lease 999 is not held by es1 in pool p \(unknown\)/);
  await expect(2, "renew", { requestId: 1, leaseId: g.leaseId }, /not held by es2 in pool p \(someone else's\)/);
  await expect(2, "release", { requestId: 2, leaseId: g.leaseId }, /someone else's/);
  await h.number(1, "release", { requestId: 5, leaseId: g.leaseId });
  await expect(1, "renew", { requestId: 6, leaseId: g.leaseId }, /\(released\)/);
  const g2 = await h.number(1, "lease", { requestId: 7, count: 1, leaseS: 1 });
  h.t += 1000;
  await expect(1, "release", { requestId: 8, leaseId: g2.leaseId }, /\(expired\)/);
  const s = h.sup.stats();
  assert.deepEqual(s.refused, { "address-conflict": 0, full: 0, "unknown-pool": 1, exhausted: 1, "not-your-lease": 5, unavailable: 0 });
  assert.deepEqual(s.refusedBy[ES(1).address], { "unknown-pool": 1, exhausted: 1, "not-your-lease": 3 });
});

test("number authority: leaseS is capped at the pool's maxLeaseS, and a renewal never shortens a lease", async () => {
  const h = await new Harness(config()).start();
  const g = await h.number(1, "lease", { requestId: 1, count: 1, leaseS: 3600 });
  assert.equal(g.leaseS, 30, "at most maxLeaseS");
  const r = await h.number(1, "renew", { requestId: 2, leaseId: g.leaseId, leaseS: 5 });
  assert.equal(r.leaseS, 5);
  const l = h.sup.leases()[0]!;
  assert.equal(l.endsAt, T0 + 30_000, "still ends where the first grant said");
  assert.equal(l.holdS, 30, "and is held back for the longest lease time granted");
});

test("lease store: a corrupt, inconsistent or unreadable store refuses to start the number authority (logged, counted), and nothing is granted", async () => {
  const dir = await mkdtemp(join(tmpdir(), "fsw-leases-"));
  try {
    const file = join(dir, "leases.json");
    const good: LeaseState = {
      nextLeaseId: 3,
      leases: [
        { leaseId: 1, pool: "p", endSystem: "es1", first: 100, count: 4, leaseS: 10, holdS: 10, endsAt: T0 + 5000, released: false, lastRequest: { requestId: 1, op: "lease" } },
        { leaseId: 2, pool: "p", endSystem: "es2", first: 104, count: 1, leaseS: 10, holdS: 10, endsAt: T0 + 5000, released: true, lastRequest: { requestId: 4, op: "release" } },
      ],
    };
    const cases: [string, string | undefined, RegExp][] = [
      ["truncated", serializeLeaseState(good).slice(0, 60), /is not JSON/],
      ["empty", "", /is not JSON/],
      ["overlapping", serializeLeaseState({ ...good, leases: [good.leases[0]!, { ...good.leases[1]!, first: 103 }] }), /leases of pool p overlap: lease 1 and lease 2/],
      ["lease id not below nextLeaseId", serializeLeaseState({ ...good, nextLeaseId: 2 }), /leases\[1\]\.leaseId is not below nextLeaseId 2/],
      ["bad version", JSON.stringify({ version: 9, nextLeaseId: 1, leases: [] }), /version is 9, expected 1/],
      ["a directory", undefined, /cannot read .*EISDIR/],
    ];
    for (const [what, text, re] of cases) {
      await rm(file, { recursive: true, force: true });
      if (text === undefined) await (await import("node:fs/promises")).mkdir(file);
      else await writeFile(file, text);
      const h = await new Harness(config(), new FileLeaseStore(file)).start();
      assert.match(h.sup.authorityProblem ?? "", re, what);
      assert.match(h.logs.join("\n"), /number authority not started: lease store unusable, refusing to grant numbers/, what);
      const s = h.sup.stats();
      assert.equal(s.storeErrors, 1, what);
      assert.match(s.authority, re, what);
      const a = await h.number(1, "lease", { requestId: 1, count: 1 });
      assert.equal(a.status, "refused", what);
      assert.match(a.reason!, /number authority unavailable: lease store unusable/, what);
      if (text !== undefined) assert.equal(await readFile(file, "utf8"), text, `${what}: the store is left as it was`);
    }
    // a good file loads, and what it holds is respected
    await rm(file, { recursive: true, force: true });
    await writeFile(file, serializeLeaseState(good));
    const h = await new Harness(config(), new FileLeaseStore(file)).start();
    assert.equal(h.sup.authorityProblem, undefined);
    const g = await h.number(3, "lease", { requestId: 1, count: 1 });
    assert.deepEqual([g.status, g.leaseId, g.first], ["granted", 3, 105]);
    assert.equal(parseLeaseState(await readFile(file, "utf8")).nextLeaseId, 4);
    // no pools: no store needed; pools without a store: refused, never granted unsaved
    assert.equal((await new Harness(config({ pools: [] }), null).start()).sup.stats().authority, "off");
    const none = await new Harness(config(), null).start();
    assert.match(none.sup.authorityProblem!, /no lease store/);
    assert.equal((await none.number(1, "lease", { requestId: 1 })).status, "refused");
    assert.throws(() => parseLeaseState("{}"), LeaseStoreError);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

// ---- SERVER-LIST, REGISTER ----------------------------------------------------------------------

const SERVICE = { vip: "2001:db8::100", protocol: 6, port: 443 };
const v6 = (i: number, j: number): string => `2001:db8:ffff:${i.toString(16)}:ffff:ffff:ffff:${j.toString(16)}`;

test("SERVER-LIST: every page fits 8192 bytes, and the pages together list every server once, registered and advertised", async () => {
  const h = await new Harness(config({ maxEndSystems: 1000 })).start();
  const offer = { ...SERVICE, weight: 65535, capacity: 4294967295 };
  for (let i = 0; i < 150; i++) {
    const addresses = Array.from({ length: 16 }, (_, j) => v6(i, j));
    const id = `end-system-with-a-long-name-${String(i).padStart(4, "0")}`;
    if (i % 3 === 0) {
      await h.deliver(h.sign({ type: "service", endSystem: id, addresses, state: i % 2 ? "up" : "draining", intervalMs: 60_000, services: [offer] }, id), ES(1));
    } else {
      const a = await h.ask({ type: "register", requestId: i, endSystem: id, addresses, services: [offer] }, id, ES(2));
      assert.equal((a[0] as { status: string }).status, "accepted");
    }
  }
  // one more that serves another service only, and one whose advertisement (port 0: every port) covers it
  await h.ask({ type: "register", requestId: 1, endSystem: "other", addresses: ["10.9.9.9"], services: [{ ...offer, port: 80 }] }, "other", ES(3));
  await h.deliver(h.sign({ type: "service", endSystem: "all-ports", addresses: ["2001:db8::9"], state: "up", intervalMs: 60_000, services: [{ ...offer, port: 0 }] }, "all-ports"), ES(4));

  const got: ServerEntry[] = [];
  let pages = 0;
  for (let offset = 0; ; ) {
    const before = h.sent.length;
    const [a] = await h.ask({ type: "server-list-request", requestId: 1000 + pages, service: SERVICE, offset }, "appliance1", ES(9));
    assert.ok(h.sent.at(-1)!.bytes.length <= MAX_DATAGRAM_BYTES);
    assert.equal(h.sent.length, before + 1, "one datagram per page");
    const r = a as ServerListReplyMsg;
    assert.equal(r.total, 151);
    assert.equal(r.offset, offset);
    assert.ok(r.servers.length > 0 && r.servers.length <= 64);
    // a full page: one more server would not have fitted
    if (offset + r.servers.length < r.total) assert.ok(h.sent.at(-1)!.bytes.length + 900 > MAX_DATAGRAM_BYTES, `page of ${r.servers.length} is ${h.sent.at(-1)!.bytes.length} bytes: not shrunk too far`);
    got.push(...r.servers);
    pages++;
    offset += r.servers.length;
    if (offset >= r.total) break;
  }
  assert.ok(pages >= 10, `${pages} pages`);
  assert.equal(new Set(got.map((s) => s.endSystem)).size, 151, "each server once");
  assert.ok(!got.some((s) => s.endSystem === "other"));
  assert.ok(got.some((s) => s.endSystem === "all-ports"));
  assert.deepEqual(got.map((s) => s.endSystem), [...got.map((s) => s.endSystem)].sort(), "in a stable order");
  const adv = got.find((s) => s.endSystem === "end-system-with-a-long-name-0000")!;
  assert.equal(adv.state, "draining", "an advertiser as it advertises");
  assert.equal(got.find((s) => s.endSystem === "end-system-with-a-long-name-0001")!.state, "up");
  // past the end: an empty page, offset clamped to total
  const [end] = await h.ask({ type: "server-list-request", requestId: 1, service: SERVICE, offset: 1000 }, "appliance1", ES(9));
  assert.deepEqual([(end as ServerListReplyMsg).offset, (end as ServerListReplyMsg).servers.length], [151, 0]);
});

test("REGISTER: accepted with the configured interval; an address registered by another live end system or a full table is refused with a reason; expiry frees both", async () => {
  const h = await new Harness(config({ maxEndSystems: 2, intervalMs: 500 })).start();
  const reg = async (es: number, addresses: string[], requestId = 1): Promise<{ status: string; reason?: string; intervalMs: number }> => {
    const [a] = await h.ask({ type: "register", requestId, endSystem: `es${es}`, addresses, services: [] }, `es${es}`, ES(es));
    return a as never;
  };
  assert.deepEqual(await reg(1, ["10.0.3.1", "fd00::1"]), { type: "register-reply", requestId: 1, endSystem: "es1", status: "accepted", intervalMs: 500 });
  const clash = await reg(2, ["10.0.3.2", "fd00:0:0::1"]);
  assert.equal(clash.status, "refused");
  assert.equal(clash.reason, "address fd00::1 is registered by end system es1");
  assert.equal(clash.intervalMs, 500);
  assert.equal((await reg(1, ["10.0.3.1", "fd00::1"], 2)).status, "accepted", "re-registering itself is no conflict");
  assert.equal((await reg(2, ["10.0.3.2"])).status, "accepted");
  const full = await reg(3, ["10.0.3.3"]);
  assert.equal(full.reason, "the supervisor holds its most registrations (2)");
  // SERVICE keeps es1 alive; es2 says nothing and expires after 3 intervals of 500 ms
  for (let i = 0; i < 4; i++) {
    h.t += 400;
    await h.deliver(h.sign({ type: "service", endSystem: "es1", addresses: ["10.0.3.1"], state: "up", intervalMs: 500, services: [] }, "es1"), ES(1));
  }
  h.sup.tick();
  assert.deepEqual(h.sup.registrations().map((r) => r.endSystem), ["es1"]);
  assert.match(h.logs.join("\n"), /registration of es2 expired: nothing heard for 1600 ms \(3 intervals of 500 ms\)/);
  assert.equal((await reg(3, ["10.0.3.2"])).status, "accepted", "es2's address and place are free again");
  assert.deepEqual(h.sup.stats().refused, { "address-conflict": 1, full: 1, "unknown-pool": 0, exhausted: 0, "not-your-lease": 0, unavailable: 0 });
});

// ---- relay, refusals ----------------------------------------------------------------------------

test("relay: SERVICE, LOAD and FLOW heard from end systems go to every relay target byte for byte; never from a relay target, a peer or another supervisor, never a bad or replayed datagram, never a request", async () => {
  const targets = [{ address: "10.1.0.2", port: 7777 }, { address: "2001:db8:1::2", port: 7000 }];
  const h = await new Harness(config({ relay: targets, peers: ["10.5.0.5"] })).start();
  const relayed = (): Sent[] => h.sent.filter((s) => targets.some((t) => t.address === s.to.address && t.port === s.to.port));
  const msgs: Message[] = [
    { type: "service", endSystem: "es1", addresses: ["10.0.3.1"], state: "up", intervalMs: 1000, services: [] },
    { type: "load", endSystem: "es1", cpu: 5, connections: 1, responseTimeUs: 10 },
    { type: "flow", op: "add", pattern: { vip: "10.0.0.1" }, endSystem: "es1", attributes: {} },
  ];
  const originals = msgs.map((m) => h.sign(m, "es1"));
  for (const b of originals) await h.deliver(b, ES(1));
  assert.equal(relayed().length, 6);
  for (let i = 0; i < 3; i++) {
    for (const t of targets) assert.ok(relayed().some((s) => s.to.address === t.address && Buffer.from(s.bytes).equals(Buffer.from(originals[i]!))), `datagram ${i} to ${t.address} unchanged`);
  }
  const count = relayed().length;
  // the same datagram again (replayed), a forged one, a request: not relayed
  await h.deliver(originals[0]!, ES(1));
  await h.deliver(h.sign(msgs[0]!, "es1", WRONG), ES(1));
  await h.ask({ type: "register", requestId: 1, endSystem: "es1", addresses: ["10.0.3.1"], services: [] }, "es1", ES(1));
  // from a relay target (the IPv4-mapped form a dual-stack socket reports), from a configured peer, from a supervisor heard answering
  await h.deliver(h.sign(msgs[1]!, "es2"), { address: "::ffff:10.1.0.2", port: 7777 });
  await h.deliver(h.sign(msgs[1]!, "es3"), { address: "10.5.0.5", port: 7777 });
  await h.deliver(h.sign({ type: "register-reply", requestId: 1, endSystem: "x", status: "accepted", intervalMs: 1000 }, "sup2"), { address: "10.6.0.6", port: 7777 });
  await h.deliver(h.sign(msgs[1]!, "es4"), { address: "10.6.0.6", port: 7777 });
  assert.equal(relayed().length, count, "nothing more relayed");
  const s = h.sup.stats();
  assert.equal(s.relayed, 6);
  assert.equal(s.notRelayed, 3);
  assert.equal(s.rejected.replayed, 1);
  assert.equal(s.rejected["bad-mac"], 1);
  // a relay of a relay cannot circle back either: the first supervisor takes each (sender, seq) once
  await h.deliver(originals[2]!, { address: "10.7.0.7", port: 7777 });
  assert.equal(h.sup.stats().rejected.replayed, 2);
});

test("forged and replayed requests are refused, counted by reason and by source, and get no answer", async () => {
  const h = await new Harness(config()).start();
  const lease: Message = { type: "number-request", requestId: 1, endSystem: "es1", pool: "p", op: "lease", count: 1, leaseS: 10 };
  assert.deepEqual(await h.ask(lease, "es1", ES(1), WRONG), [], "a wrong key: no answer");
  assert.deepEqual(await h.ask(lease, "es1", ES(1), { id: 8, secret: KEY.secret }), [], "an unknown key id");
  const ok = h.sign(lease, "es1");
  assert.equal((await h.deliver(ok, ES(1))).length, 1);
  assert.deepEqual(await h.deliver(ok, ES(1)), [], "the same datagram again");
  const stale = encode(lease, KEY, T0 + 999, T0 - 60_000, "es1");
  assert.deepEqual(await h.deliver(stale, ES(2)), []);
  assert.deepEqual(await h.deliver(new Uint8Array([0x87, 1, 2, 3]), ES(3)), []);
  const s = h.sup.stats();
  assert.equal(h.sup.leases().length, 1, "one lease, from the one good request");
  assert.deepEqual([s.rejected["bad-mac"], s.rejected["unknown-key"], s.rejected.replayed, s.rejected.stale, s.rejected.malformed], [1, 1, 1, 1, 1]);
  assert.deepEqual(s.rejectedBy, { [ES(1).address]: { "bad-mac": 1, "unknown-key": 1, replayed: 1 }, [ES(2).address]: { stale: 1 }, [ES(3).address]: { malformed: 1 } });
  assert.equal(s.accepted["number-request"], 1);
  assert.equal(s.answers, 1);
});

// ---- configuration --------------------------------------------------------------------------------

test("config: discovery.supervisor defaults to the management address and the discovery port; bad values name their path", () => {
  const keys = [{ id: 1, secret: "11".repeat(32) }];
  const ok = validate(labConfig([svc("dsr")], { management: { ipv4: "192.0.2.200" }, discovery: { keys, port: 7800, supervisor: { pools: [{ name: "ports", first: 10, last: 20 }], relay: ["10.1.0.2", "[2001:db8::2]:9"] } } }));
  assert.ok(ok.ok, ok.ok ? "" : JSON.stringify(ok.errors));
  const s = ok.config.discovery!.supervisor!;
  assert.equal(s.address.text, "192.0.2.200");
  assert.equal(s.port, 7800);
  assert.equal(s.intervalMs, 1000);
  assert.deepEqual(s.pools, [{ name: "ports", first: 10, last: 20, maxLeaseS: 3600 }]);
  assert.deepEqual(s.relay.map((r) => [r.address.text, r.port]), [["10.1.0.2", 7800], ["2001:db8::2", 9]]);
  const bad = validate(labConfig([svc("dsr")], {
    discovery: { keys, supervisor: { address: "239.1.1.1", intervalMs: 50, maxEndSystems: 0, pools: [{ name: "a", first: 5, last: 4 }, { name: "a", first: 1, last: 2, maxLeaseS: 0 }], relay: ["10.1.0.2:0", "nowhere"], peers: ["224.0.0.1"] } as never },
  }));
  assert.ok(!bad.ok);
  assert.deepEqual(bad.errors.map((e) => e.path).sort(), [
    "discovery.supervisor.address", "discovery.supervisor.intervalMs", "discovery.supervisor.maxEndSystems", "discovery.supervisor.peers[0]",
    "discovery.supervisor.pools[0].last", "discovery.supervisor.pools[1].maxLeaseS", "discovery.supervisor.pools[1].name",
    "discovery.supervisor.relay[0]", "discovery.supervisor.relay[1]",
  ]);
  const noAddress = validate(labConfig([svc("dsr")], { discovery: { keys, supervisor: {} } }));
  assert.ok(!noAddress.ok && noAddress.errors.some((e) => e.path === "discovery.supervisor.address" && /management/.test(e.expected)));
});
