// The election as docs/ha-protocol.md writes it, on a fake clock: two nodes exchange real signed
// heartbeats (encodeHa -> HeartbeatInbox -> Election) over simulated links that can be cut one
// way or both, with 1 ms of latency; each node is ticked exactly when nextWakeAt() says, so a
// deadline the election forgets to announce shows up as a late decision.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Election, type ElectionConfig, type ElectionEvent } from "../../host/ha/election.js";
import { HeartbeatInbox } from "../../host/ha/inbox.js";
import { encodeHa, type HaState } from "../../host/ha/protocol.js";

const EPOCH = 1_700_000_000_000;
const KEY = { id: 1, secret: new Uint8Array(32).fill(7) };
const KEYS = new Map([[KEY.id, KEY.secret]]);
const INTERVAL = 50;
const DEAD = 3 * INTERVAL;

function cfg(node: string, over: Partial<ElectionConfig> = {}): ElectionConfig {
  return { node, priority: 100, preempt: true, preemptDelayMs: 0, intervalMs: INTERVAL, deadCount: 3, links: ["a", "b"], ...over };
}

class Node {
  readonly election: Election;
  readonly inbox: HeartbeatInbox;
  readonly events: ElectionEvent[] = [];
  /** Datagrams as sent, for replaying. */
  readonly sent: { link: string; bytes: Uint8Array }[] = [];
  alive = true;
  /** As the worker does: starting at the clock, so a restarted node's numbers are above its old ones. */
  seq: number;

  constructor(
    readonly sim: Sim,
    readonly name: string,
    c: ElectionConfig,
    readonly bootId = `${name}boot${sim.t}`,
  ) {
    this.seq = EPOCH + sim.t;
    this.election = new Election(c, sim.t);
    this.inbox = new HeartbeatInbox({ node: c.node, keys: KEYS, now: () => EPOCH + sim.t });
    this.handle(this.election.tick(sim.t));
  }

  get state(): HaState {
    return this.election.state;
  }

  handle(events: ElectionEvent[]): void {
    for (const e of events) {
      this.events.push(e);
      if (e.kind === "send") this.sim.transmit(this);
    }
  }

  deliver(link: string, bytes: Uint8Array): ReturnType<HeartbeatInbox["admit"]> {
    const r = this.inbox.admit(bytes, `10.0.0.${this.name === "A" ? 2 : 1}:7788`);
    if (r.ok) this.handle(this.election.receive(r.hb, r.seq, link, this.sim.t));
    return r;
  }

  changes(): { from: HaState; to: HaState; reason: string; at: number }[] {
    return this.events.flatMap((e) => (e.kind === "state" ? [e] : []));
  }

  reannounces(): string[] {
    return this.events.flatMap((e) => (e.kind === "reannounce" ? [e.reason] : []));
  }
}

class Sim {
  t = 0;
  readonly nodes: Node[] = [];
  private queue: { at: number; to: Node; link: string; bytes: Uint8Array }[] = [];
  /** "link:from>to" entries are dropped. */
  readonly cut = new Set<string>();
  /** Every ms: the nodes' states. */
  readonly history: { t: number; states: HaState[] }[] = [];

  add(name: string, c: ElectionConfig, bootId?: string): Node {
    const n = new Node(this, name, c, bootId);
    this.nodes.push(n);
    return n;
  }

  transmit(from: Node): void {
    if (!from.alive) return;
    for (const link of from.election.config.links) {
      const bytes = encodeHa({ type: "heartbeat", ...from.election.beat(), bootId: from.bootId, link, keyIds: [KEY.id] }, KEY, from.seq++, EPOCH + this.t);
      from.sent.push({ link, bytes });
      for (const to of this.nodes) {
        if (to === from || this.cut.has(`${link}:${from.name}>${to.name}`)) continue;
        this.queue.push({ at: this.t + 1, to, link, bytes });
      }
    }
  }

  /** Cuts a link both ways (or one way with from/to). */
  cutLink(link: string, from?: string, to?: string): void {
    for (const a of this.nodes) for (const b of this.nodes) if (a !== b && (!from || a.name === from) && (!to || b.name === to)) this.cut.add(`${link}:${a.name}>${b.name}`);
  }

  heal(): void {
    this.cut.clear();
  }

  run(ms: number): void {
    for (let i = 0; i < ms; i++) {
      this.t++;
      const due = this.queue.filter((m) => m.at <= this.t);
      this.queue = this.queue.filter((m) => m.at > this.t);
      for (const m of due) if (m.to.alive) m.to.deliver(m.link, m.bytes);
      for (const n of this.nodes) if (n.alive && this.t >= n.election.nextWakeAt(this.t)) n.handle(n.election.tick(this.t));
      this.history.push({ t: this.t, states: this.nodes.map((n) => n.state) });
    }
  }

  /** Runs until `until` holds, at most `ms`; returns the time it took. */
  runUntil(until: () => boolean, ms: number): number {
    const from = this.t;
    while (!until() && this.t - from < ms) this.run(1);
    assert.ok(until(), `not reached within ${ms} ms`);
    return this.t - from;
  }

  bothActiveAt(): number[] {
    return this.history.filter((h) => h.states.filter((s) => s === "active").length > 1).map((h) => h.t);
  }
}

/** A (priority 200) active, B (100) standby, settled. */
function settledPair(aOver: Partial<ElectionConfig> = {}, bOver: Partial<ElectionConfig> = {}): { sim: Sim; a: Node; b: Node } {
  const sim = new Sim();
  const a = sim.add("A", cfg("A", { priority: 200, ...aOver }));
  const b = sim.add("B", cfg("B", bOver));
  sim.run(500);
  assert.equal(a.state, "active");
  assert.equal(b.state, "standby");
  return { sim, a, b };
}

describe("ha election: booting", () => {
  it("alone: listens deadCount x interval in init, then goes active (not one ms before)", () => {
    const sim = new Sim();
    const a = sim.add("A", cfg("A"));
    sim.run(DEAD - 1);
    assert.equal(a.state, "init");
    sim.run(1);
    assert.equal(a.state, "active");
    assert.deepEqual(a.changes().map((c) => [c.from, c.to, c.at]), [["init", "active", DEAD]]);
    assert.match(a.changes()[0]!.reason, /no peer heard for 150 ms/);
  });

  it("a peer heard active: standby at once, without waiting out the listening", () => {
    const sim = new Sim();
    const b = sim.add("B", cfg("B", { priority: 50 }));
    sim.run(400);
    assert.equal(b.state, "active");
    const a = sim.add("A", cfg("A", { priority: 200 }));
    sim.run(INTERVAL + 2);
    assert.equal(a.state, "standby", "a higher priority does not take an active peer's place at boot");
    assert.match(a.changes()[0]!.reason, /peer B is active/);
    assert.ok(a.changes()[0]!.at - 400 <= INTERVAL + 1);
    sim.run(1000);
    assert.equal(a.state, "standby", "not ready: it never preempts");
    assert.equal(b.state, "active");
  });

  it("both booting together: the higher priority becomes active, the other standby", () => {
    const sim = new Sim();
    const a = sim.add("A", cfg("A", { priority: 90 }));
    const b = sim.add("B", cfg("B", { priority: 110 }));
    sim.run(400);
    assert.deepEqual([a.state, b.state], ["standby", "active"]);
    assert.deepEqual(sim.bothActiveAt(), []);
  });

  it("both booting together with equal priority: the lower node id becomes active", () => {
    const sim = new Sim();
    const b = sim.add("node-b", cfg("node-b"));
    const a = sim.add("node-a", cfg("node-a"));
    sim.run(400);
    assert.deepEqual([a.state, b.state], ["active", "standby"]);
    assert.deepEqual(sim.bothActiveAt(), []);
  });
});

describe("ha election: a dead peer", () => {
  it("the standby takes over exactly deadCount x interval after the last heartbeat, not before", () => {
    const { sim, a, b } = settledPair();
    a.alive = false; // killed: not a word more
    const last = b.election.peer(sim.t)!.lastHeardAt;
    sim.runUntil(() => sim.t === last + DEAD - 1, 1000);
    assert.equal(b.state, "standby");
    sim.run(1);
    assert.equal(b.state, "active");
    const c = b.changes().at(-1)!;
    assert.equal(c.at, last + DEAD);
    assert.match(c.reason, /peer A silent on every link for 150 ms/);
    assert.equal(b.election.counters.takeovers, 1);
    assert.equal(b.election.peer(sim.t)!.alive, false);
  });

  it("one link silent while the other still delivers: no takeover; the lost link is counted and shown down", () => {
    const { sim, b } = settledPair();
    sim.cutLink("a");
    sim.run(2000);
    assert.equal(b.state, "standby");
    const p = b.election.peer(sim.t)!;
    assert.equal(p.alive, true);
    assert.equal(p.links.a!.up, false);
    assert.equal(p.links.a!.losses, 1);
    assert.equal(p.links.b!.up, true);
    assert.equal(b.election.counters.takeovers, 0);
    sim.heal();
    sim.run(INTERVAL + 2);
    assert.equal(b.election.peer(sim.t)!.links.a!.up, true, "back up with the next heartbeat");
  });

  it("both links cut: takeover; when they heal, the split brain is resolved by priority and the winner reannounces", () => {
    const { sim, a, b } = settledPair();
    sim.cutLink("a");
    sim.cutLink("b");
    sim.runUntil(() => b.state === "active", 1000);
    sim.run(500);
    assert.deepEqual([a.state, b.state], ["active", "active"]);
    sim.heal();
    sim.run(INTERVAL * 2);
    assert.deepEqual([a.state, b.state], ["active", "standby"]);
    assert.match(b.changes().at(-1)!.reason, /split brain: peer A is active too and ranks first \(priority 100 vs 200\)/);
    // whichever A heard first, B active (split brain) or B back and standby, it announces again
    assert.equal(a.reannounces().length, 1, "the winner sends its gratuitous ARPs again, once");
    assert.match(a.reannounces()[0]!, /split brain: peer B is active too; this node stays active|peer B heard again after a silence/);
    assert.equal(b.reannounces().length, 0, "the loser does not");
    assert.equal(b.election.counters.splitBrains, 1);
  });

  it("a one-way cut (B does not hear A): B takes over, A stays active and reannounces every second while it lasts", () => {
    const { sim, a, b } = settledPair();
    sim.cutLink("a", "A", "B");
    sim.cutLink("b", "A", "B");
    sim.runUntil(() => b.state === "active", 1000);
    sim.run(3000);
    assert.deepEqual([a.state, b.state], ["active", "active"], "B never hears that it lost");
    const r = a.reannounces();
    assert.match(r[0]!, /split brain: peer B is active too; this node stays active/);
    assert.ok(r.length >= 3 && r.slice(1).every((x) => /persists: it does not hear this node/.test(x)), r.join("\n"));
    sim.heal();
    sim.run(INTERVAL * 2);
    assert.deepEqual([a.state, b.state], ["active", "standby"]);
    assert.match(a.reannounces().at(-1)!, /peer B left active \(now standby\) after a split brain/);
  });

  it("split brain with equal priority: the lower node id stays active", () => {
    const sim = new Sim();
    const x = sim.add("x-2", cfg("x-2"));
    const y = sim.add("x-1", cfg("x-1"));
    sim.cutLink("a");
    sim.cutLink("b");
    sim.run(400);
    assert.deepEqual([x.state, y.state], ["active", "active"]);
    sim.heal();
    sim.run(INTERVAL * 2);
    assert.deepEqual([x.state, y.state], ["standby", "active"]);
    assert.match(x.changes().at(-1)!.reason, /equal priority 100, node ids x-2 vs x-1/);
    assert.ok(y.reannounces().length >= 1);
  });

  it("a peer restarted before its dead time (new boot id, in init, not ready): the ready standby goes active at once", () => {
    const { sim, a, b } = settledPair();
    b.election.setReady(true, sim.t); // it has the flows
    a.alive = false;
    sim.run(20);
    const a2 = new Node(sim, "A", cfg("A", { priority: 200 }), "A-second-boot");
    sim.nodes[0] = a2;
    sim.run(5);
    assert.equal(b.state, "active", "no wait for the dead time: the restarted peer said init");
    assert.match(b.changes().at(-1)!.reason, /peer A is init, nobody is active, and this node ranks first/);
    sim.run(5);
    assert.equal(a2.state, "standby");
    void a;
  });
});

describe("ha election: preemption", () => {
  /** B (100) active; A (200, preempt) boots and stands by. */
  function returning(aOver: Partial<ElectionConfig> = {}): { sim: Sim; a: Node; b: Node } {
    const sim = new Sim();
    const b = sim.add("B", cfg("B"));
    sim.run(400);
    const a = sim.add("A", cfg("A", { priority: 200, ...aOver }));
    sim.run(200);
    assert.deepEqual([a.state, b.state], ["standby", "active"]);
    return { sim, a, b };
  }

  it("never before the returning node is ready, however long it waits", () => {
    const { sim, a, b } = returning();
    sim.run(5000);
    assert.deepEqual([a.state, b.state], ["standby", "active"]);
  });

  it("once ready and after preemptDelayMs: preempting, the active says standby, then active; never both active", () => {
    const { sim, a, b } = returning({ preemptDelayMs: 300 });
    const readyAt = sim.t;
    a.handle(a.election.setReady(true, sim.t));
    sim.run(299);
    assert.equal(a.state, "standby", "held for the delay");
    sim.runUntil(() => a.state === "active", 100);
    assert.deepEqual([a.state, b.state], ["active", "standby"]);
    const ac = a.changes();
    assert.deepEqual(ac.slice(-2).map((c) => [c.from, c.to]), [["standby", "preempting"], ["preempting", "active"]]);
    assert.equal(ac.at(-2)!.at, readyAt + 300);
    assert.match(ac.at(-1)!.reason, /peer B is standby: handed over/);
    assert.match(b.changes().at(-1)!.reason, /preempted by peer A \(priority 200 above 100, ready\)/);
    assert.deepEqual(sim.bothActiveAt(), [], "no instant with both active");
    // and the gap with nobody active is two one-way trips
    const gap = ac.at(-1)!.at - b.changes().at(-1)!.at;
    assert.ok(gap <= 2, `nobody active for ${gap} ms`);
    assert.equal(a.election.counters.handovers, 1);
    assert.equal(b.election.counters.preempted, 1);
  });

  it("for 3 s after handing over, the node that stepped down waits 3 dead intervals before taking over; after that, one", () => {
    const { sim, a, b } = returning();
    a.handle(a.election.setReady(true, sim.t));
    sim.runUntil(() => a.state === "active", 100);
    sim.run(500);
    a.alive = false; // stalls right after pre-empting (a busy boot), or dies
    const last = b.election.peer(sim.t)!.lastHeardAt;
    sim.runUntil(() => b.state === "active", 2000);
    const took = b.changes().at(-1)!.at - last;
    assert.ok(took >= 3 * DEAD && took <= 3 * DEAD + 3 * INTERVAL, `took over ${took} ms after the last heartbeat: a grace of 3 dead intervals (${3 * DEAD} ms) while the new active settles`);
    // later, the ordinary dead interval again
    a.alive = true;
    sim.runUntil(() => a.state === "active" && b.state === "standby", 3000);
    sim.run(4000);
    a.alive = false;
    const last2 = b.election.peer(sim.t)!.lastHeardAt;
    sim.runUntil(() => b.state === "active", 2000);
    assert.equal(b.changes().at(-1)!.at, last2 + DEAD);
  });

  it("preempting is given up if the node stops being ready before the handover", () => {
    const { sim, a } = returning({ preemptDelayMs: 100 });
    a.handle(a.election.setReady(true, sim.t));
    sim.cutLink("a", "A", "B");
    sim.cutLink("b", "A", "B"); // B never hears the preempting
    sim.runUntil(() => a.state === "preempting", 200);
    a.handle(a.election.setReady(false, sim.t));
    assert.equal(a.state, "standby");
    assert.match(a.changes().at(-1)!.reason, /preempting given up: this node does not hold the flow state yet/);
  });

  it("with preempt off, a ready higher-priority standby stays standby", () => {
    const { sim, a, b } = returning({ preempt: false });
    a.handle(a.election.setReady(true, sim.t));
    sim.run(2000);
    assert.deepEqual([a.state, b.state], ["standby", "active"]);
  });

  it("equal priority never preempts", () => {
    const { sim, a, b } = returning({ priority: 100 });
    a.handle(a.election.setReady(true, sim.t));
    sim.run(2000);
    assert.deepEqual([a.state, b.state], ["standby", "active"]);
  });
});

describe("ha election: maintenance", () => {
  it("an active node put in maintenance goes standby at once and the peer takes over at once", () => {
    const { sim, a, b } = settledPair();
    a.handle(a.election.setMaintenance(true, sim.t));
    assert.equal(a.state, "standby");
    sim.run(3);
    assert.equal(b.state, "active");
    assert.match(b.changes().at(-1)!.reason, /peer A is standby, nobody is active, and this node ranks first \(B: not ready, priority 100; A: maintenance/);
    sim.run(2000);
    assert.equal(a.state, "standby", "never active while in maintenance");
    b.alive = false;
    sim.run(2000);
    assert.equal(a.state, "standby", "not even when the peer dies");
    assert.deepEqual(sim.bothActiveAt(), []);
  });
});

describe("ha election: forged and replayed heartbeats change nothing", () => {
  it("a heartbeat signed with another key is bad-mac; the same datagram twice is replayed; an edited one is bad-mac", () => {
    const { sim, a, b } = settledPair();
    const before = b.events.length;
    // a forger without the key claims A is standby (which would make B active)
    const forged = encodeHa({ type: "heartbeat", ...a.election.beat(), state: "standby", maintenance: true, bootId: a.bootId, link: "a", keyIds: [1] }, { id: 1, secret: new Uint8Array(32).fill(8) }, 1e9, EPOCH + sim.t);
    assert.equal(b.deliver("a", forged).ok, false);
    // a captured datagram played again
    const captured = a.sent.at(-1)!;
    const again = b.deliver(captured.link, captured.bytes);
    assert.deepEqual([again.ok, again.ok ? "" : again.reason], [false, "replayed"]);
    // a captured "active" with its state byte flipped
    const edited = Uint8Array.from(captured.bytes);
    const at = Buffer.from(edited).indexOf("active");
    edited.set(Buffer.from("standb"), at);
    assert.equal(b.deliver(captured.link, edited).ok, false);
    const s = b.inbox.stats();
    assert.equal(s.rejected["bad-mac"], 2);
    assert.equal(s.rejected.replayed, 1);
    assert.deepEqual(s.rejectedBy["10.0.0.1:7788"], { "bad-mac": 2, replayed: 1 });
    assert.equal(b.events.length, before, "the election saw nothing");
    assert.equal(b.state, "standby");
  });

  it("replaying a dead peer's old heartbeats does not keep it alive", () => {
    const { sim, a, b } = settledPair();
    const old = a.sent.slice(-20);
    a.alive = false;
    const last = b.election.peer(sim.t)!.lastHeardAt;
    sim.run(100);
    for (const d of old) assert.equal(b.deliver(d.link, d.bytes).ok, false);
    sim.runUntil(() => b.state === "active", 200);
    assert.equal(b.changes().at(-1)!.at, last + DEAD);
  });

  it("a heartbeat of the peer's earlier boot, delivered late, is not taken for a restart", () => {
    const { sim, a, b } = settledPair();
    sim.cutLink("a", "A", "B");
    const dropped = a.seq; // the next one, sent on link a, never arrives
    sim.run(INTERVAL);
    sim.heal();
    sim.run(INTERVAL);
    const old = encodeHa({ type: "heartbeat", ...a.election.beat(), state: "init", ready: false, bootId: "an-earlier-boot", link: "a", keyIds: [1] }, KEY, dropped, EPOCH + sim.t);
    assert.equal(b.deliver("a", old).ok, true, "unseen and within the replay window");
    const p = b.election.peer(sim.t)!;
    assert.deepEqual([p.bootId, p.state], [a.bootId, "active"]);
    assert.equal(p.links.a!.late, 1);
    assert.equal(b.state, "standby");
  });

  it("a heartbeat carrying this node's own id is counted and ignored", () => {
    const { sim, b } = settledPair();
    const own = encodeHa({ type: "heartbeat", ...b.election.beat(), state: "active", bootId: "x", link: "a", keyIds: [1] }, KEY, 5e9, EPOCH + sim.t);
    const r = b.deliver("a", own);
    assert.deepEqual([r.ok, r.ok ? "" : r.reason], [false, "own-node"]);
    assert.equal(b.inbox.stats().ownNode, 1);
    assert.equal(b.state, "standby");
  });

  it("an older heartbeat arriving late on a link does not roll the peer's state back", () => {
    const { sim, a, b } = settledPair();
    const activeBeat = a.sent.at(-1)!; // A said active
    a.handle(a.election.setMaintenance(true, sim.t)); // now it says standby
    sim.run(3);
    assert.equal(b.state, "active");
    // the old "active" datagram, never delivered on link b before, arrives now: within the replay window, but old
    const stale = encodeHa({ type: "heartbeat", ...a.election.beat(), state: "active", maintenance: false, bootId: a.bootId, link: "b", keyIds: [1] }, KEY, a.seq - 10, EPOCH + sim.t);
    b.deliver("b", stale);
    assert.equal(b.election.peer(sim.t)!.state, "standby");
    assert.equal(b.state, "active");
    void activeBeat;
  });
});

describe("ha election: timers", () => {
  it("nextWakeAt is the next heartbeat or deadline, never a busy loop", () => {
    const { sim, b } = settledPair();
    const w = b.election.nextWakeAt(sim.t);
    assert.ok(w > sim.t && w <= sim.t + INTERVAL, `${w - sim.t} ms ahead`);
    const sends = b.events.filter((e) => e.kind === "send").length;
    sim.run(1000);
    const per = (b.events.filter((e) => e.kind === "send").length - sends) / 1000;
    assert.ok(Math.abs(per - 1 / INTERVAL) < 0.002, `${per * 1000} heartbeats a second`);
  });
});
