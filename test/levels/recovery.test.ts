// Flow recovery: a missed mid-flow packet is held while the peers are asked WHOHAS; the first HAVE
// installs the flow and releases the packets to it; all NONE or a timeout releases them for the
// local choice; bounds on queries and on packets held per query; the answering side.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import * as L from "../../assembly/layout.js";
import { RecoveryClient, RecoveryResponder, type HeldFrame, type ReleaseHow, type RecoveryClientOptions } from "../../host/levels/recovery.js";
import type { WhohasMsg, WireFlow } from "../../host/levels/protocol.js";
import type { SyncFlow } from "../../host/ha/flow-sync.js";

const key = (n: number): Uint8Array => Uint8Array.from({ length: L.FLOW4_KEY }, (_, i) => (i === 0 ? n : i));
const frame = (n: number): Uint8Array => Uint8Array.of(0xf0, n);
const FLOW: WireFlow = { service: "web", backend: "srv-2", rule: "pin", flags: L.FF_ESTABLISHED, port: 7, leftMs: 60_000 };

/** A client with recorded effects and a hand-driven clock. */
function harness(o: Partial<RecoveryClientOptions> = {}) {
  const sent: { peer: string; msg: WhohasMsg }[] = [];
  const installed: SyncFlow[] = [];
  const released: { frames: number[]; how: ReleaseHow }[] = [];
  const timers = new Map<number, { fn: () => void; at: number }>();
  let now = 0;
  let nextTimer = 1;
  const c = new RecoveryClient({
    peers: ["a", "b"],
    timeoutMs: 20,
    maxPending: 4,
    firstId: 100,
    send: (peer, msg) => sent.push({ peer, msg }),
    install: (f) => void installed.push(f),
    release: (frames: HeldFrame[], how) => released.push({ frames: frames.map((f) => f.frame[1]!), how }),
    setTimer: (fn, ms) => {
      timers.set(nextTimer, { fn, at: now + ms });
      return nextTimer++;
    },
    clearTimer: (t) => void timers.delete(t as number),
    ...o,
  });
  const advance = (ms: number): void => {
    now += ms;
    for (const [id, t] of [...timers]) {
      if (t.at <= now) {
        timers.delete(id);
        t.fn();
      }
    }
  };
  return { c, sent, installed, released, timers, advance };
}

describe("levels recovery: asking", () => {
  it("a first miss asks every peer with a fresh id; later packets of the flow are held with it", () => {
    const h = harness();
    assert.equal(h.c.onMiss(4, key(1), frame(1), 3, 0), "asked");
    assert.equal(h.c.onMiss(4, key(1), frame(2), 3, 0), "held");
    assert.equal(h.c.onMiss(4, key(2), frame(3), 3, 1), "asked");
    assert.deepEqual(h.sent.map((s) => [s.peer, s.msg.id]), [["a", 100], ["b", 100], ["a", 101], ["b", 101]]);
    assert.deepEqual(h.sent[0]!.msg, { type: "whohas", id: 100, family: 4, key: key(1) });
    assert.equal(h.c.pending, 2);
    assert.equal(h.released.length, 0);
    assert.equal(h.c.counters().held, 3);
  });

  it("the first HAVE installs the flow (the answer's names, this box's ingress port) and releases every held packet to it", () => {
    const h = harness();
    h.c.onMiss(4, key(1), frame(1), 3);
    h.c.onMiss(4, key(1), frame(2), 3);
    h.c.onHave("b", { type: "have", id: 100, flow: FLOW });
    assert.deepEqual(h.installed, [{ family: 4, key: key(1), service: "web", backend: "srv-2", rule: "pin", flags: L.FF_ESTABLISHED | L.FF_VALID, port: 3, leftMs: 60_000, kind: L.EVK_INSTALL }]);
    assert.deepEqual(h.released, [{ frames: [1, 2], how: "installed" }]);
    assert.equal(h.timers.size, 0);
    h.c.onHave("a", { type: "have", id: 100, flow: FLOW }); // the other peer had it too
    h.c.onNone("a", { type: "none", id: 100 }); // an answer after the install: nothing to do
    const n = h.c.counters();
    assert.deepEqual([n.queries, n.answered, n.duplicates, n.releasedInstalled, n.lateAnswers, n.none], [1, 1, 1, 2, 0, 1]);
    assert.equal(h.c.pending, 0);
  });

  it("waits for an asynchronous install before releasing; packets arriving meanwhile go with the rest", async () => {
    let finish!: () => void;
    const h = harness({ install: () => new Promise<void>((r) => (finish = r)) });
    h.c.onMiss(6, new Uint8Array(L.FLOW6_KEY), frame(1), 0);
    h.c.onHave("a", { type: "have", id: 100, flow: FLOW });
    assert.equal(h.c.onMiss(6, new Uint8Array(L.FLOW6_KEY), frame(2), 0), "held");
    h.c.onHave("b", { type: "have", id: 100, flow: FLOW });
    assert.equal(h.released.length, 0);
    finish();
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.released, [{ frames: [1, 2], how: "installed" }]);
    assert.equal(h.c.counters().duplicates, 1);
  });

  it("an install that fails releases the packets for the local choice (counted)", async () => {
    const h = harness({ install: () => Promise.reject(new Error("unknown-backend")) });
    h.c.onMiss(4, key(1), frame(1), 0);
    h.c.onHave("a", { type: "have", id: 100, flow: FLOW });
    await new Promise((r) => setImmediate(r));
    assert.deepEqual(h.released, [{ frames: [1], how: "local" }]);
    const t = harness({ install: () => { throw new Error("boom"); } });
    t.c.onMiss(4, key(1), frame(1), 0);
    t.c.onHave("a", { type: "have", id: 100, flow: FLOW });
    assert.deepEqual(t.released, [{ frames: [1], how: "local" }]);
    assert.equal(t.c.counters().installFailed, 1);
  });
});

describe("levels recovery: nobody has it", () => {
  it("when every peer says NONE the packets go to the local choice at once", () => {
    const h = harness();
    h.c.onMiss(4, key(1), frame(1), 0);
    h.c.onNone("a", { type: "none", id: 100 });
    h.c.onNone("a", { type: "none", id: 100 }); // the same peer twice is still one peer
    h.c.onNone("stranger", { type: "none", id: 100 }); // not a peer of ours
    assert.equal(h.released.length, 0);
    h.c.onNone("b", { type: "none", id: 100 });
    assert.deepEqual(h.released, [{ frames: [1], how: "local" }]);
    assert.equal(h.timers.size, 0);
    h.c.onHave("a", { type: "have", id: 100, flow: FLOW }); // after giving up
    assert.equal(h.c.counters().lateAnswers, 1);
    assert.equal(h.installed.length, 0);
  });

  it("no answer within the timeout releases for the local choice; a later answer is late", () => {
    const h = harness();
    h.c.onMiss(4, key(1), frame(1), 0);
    h.c.onNone("a", { type: "none", id: 100 });
    h.advance(19);
    assert.equal(h.released.length, 0);
    h.advance(1);
    assert.deepEqual(h.released, [{ frames: [1], how: "local" }]);
    h.c.onHave("b", { type: "have", id: 100, flow: FLOW });
    h.c.onNone("b", { type: "none", id: 100 });
    h.c.onHave("b", { type: "have", id: 999, flow: FLOW }); // no such query
    const n = h.c.counters();
    assert.deepEqual([n.timeouts, n.lateAnswers, n.releasedLocal, n.answered], [1, 3, 1, 0]);
    // the key may be asked about again
    assert.equal(h.c.onMiss(4, key(1), frame(2), 0), "asked");
  });

  it("with no peers at all, a packet goes to the local choice at once", () => {
    const h = harness({ peers: [] });
    assert.equal(h.c.onMiss(4, key(1), frame(1), 0), "no-peers");
    assert.deepEqual(h.released, [{ frames: [1], how: "local" }]);
    assert.equal(h.sent.length, 0);
  });
});

describe("levels recovery: bounds", () => {
  it("past maxHeldPerFlow, packets of a flow being asked about are dropped (TCP resends them)", () => {
    const h = harness({ maxHeldPerFlow: 2 });
    h.c.onMiss(4, key(1), frame(1), 0);
    h.c.onMiss(4, key(1), frame(2), 0);
    assert.equal(h.c.onMiss(4, key(1), frame(3), 0), "dropped");
    h.c.onHave("a", { type: "have", id: 100, flow: FLOW });
    assert.deepEqual(h.released, [{ frames: [1, 2], how: "installed" }]);
    assert.equal(h.c.counters().dropped, 1);
  });

  it("past maxPending queries, a new flow is not asked about: its packet goes to the local choice (overflow)", () => {
    const h = harness({ maxPending: 2 });
    h.c.onMiss(4, key(1), frame(1), 0);
    h.c.onMiss(4, key(2), frame(2), 0);
    assert.equal(h.c.onMiss(4, key(3), frame(3), 0), "overflow");
    assert.equal(h.c.onMiss(4, key(1), frame(4), 0), "held"); // a flow already asked about still holds
    assert.deepEqual(h.released, [{ frames: [3], how: "local" }]);
    assert.equal(h.c.counters().overflow, 1);
    assert.equal(h.sent.length, 4);
  });

  it("a peer whose send throws is counted; the others are still asked", () => {
    const h = harness({ send: (peer) => { if (peer === "a") throw new Error("EHOSTUNREACH"); } });
    assert.equal(h.c.onMiss(4, key(1), frame(1), 0), "asked");
    assert.equal(h.c.counters().sendErrors, 1);
  });

  it("flush gives every query up for the local choice", () => {
    const h = harness();
    h.c.onMiss(4, key(1), frame(1), 0);
    h.c.onMiss(4, key(2), frame(2), 0);
    h.c.flush();
    assert.deepEqual(h.released, [{ frames: [1], how: "local" }, { frames: [2], how: "local" }]);
    assert.equal(h.timers.size, 0);
  });

  it("works with the real timers by default", async () => {
    const released: ReleaseHow[] = [];
    const c = new RecoveryClient({ peers: ["a"], timeoutMs: 5, maxPending: 1, send: () => {}, install: () => {}, release: (_f, how) => released.push(how) });
    c.onMiss(4, key(1), frame(1), 0);
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(released, ["local"]);
  });
});

describe("levels recovery: answering", () => {
  it("HAVE with the entry in names when it is found, NONE when not", () => {
    const table = new Map([[Buffer.from(key(1)).toString("hex"), { service: "web", backend: "srv-2", flags: 9, port: 2, leftMs: 1234.7 }]]);
    const r = new RecoveryResponder({ find: (_family, k) => table.get(Buffer.from(k).toString("hex")) });
    assert.deepEqual(r.answer({ type: "whohas", id: 5, family: 4, key: key(1) }), { type: "have", id: 5, flow: { service: "web", backend: "srv-2", flags: 9, port: 2, leftMs: 1234 } });
    assert.deepEqual(r.answer({ type: "whohas", id: 6, family: 4, key: key(2) }), { type: "none", id: 6 });
    assert.deepEqual(r.counters(), { asked: 2, had: 1, none: 1 });
  });

  it("an expired entry, or one the wire cannot carry, is NONE", () => {
    for (const f of [
      { service: "web", backend: "srv-2", flags: 1, port: 0, leftMs: 0 },
      { service: "x".repeat(65), backend: "srv-2", flags: 1, port: 0, leftMs: 10 },
      { service: "web", backend: "srv-2", rule: "", flags: 1, port: 0, leftMs: 10 },
    ]) {
      const r = new RecoveryResponder({ find: () => f });
      assert.equal(r.answer({ type: "whohas", id: 1, family: 4, key: key(1) }).type, "none");
    }
  });

  it("asker and responder agree end to end", () => {
    const responder = new RecoveryResponder({ find: () => ({ ...FLOW, rule: undefined }) });
    let client!: RecoveryClient;
    const installed: SyncFlow[] = [];
    client = new RecoveryClient({
      peers: ["p"], timeoutMs: 1000, maxPending: 8, firstId: 1,
      send: (peer, msg) => {
        const a = responder.answer(msg);
        queueMicrotask(() => (a.type === "have" ? client.onHave(peer, a) : client.onNone(peer, a)));
      },
      install: (f) => void installed.push(f),
      release: () => {},
      setTimer: () => 0, clearTimer: () => {},
    });
    client.onMiss(4, key(9), frame(1), 4);
    return Promise.resolve().then(() => {
      assert.equal(installed.length, 1);
      assert.equal(installed[0]!.rule, undefined);
      assert.equal(installed[0]!.backend, "srv-2");
    });
  });
});
