// Two real HeartbeatServices (real worker threads, real UDP on loopback) as a pair, with two links:
// "direct" (127.0.0.1 <-> 127.0.0.2) and "relayed" through a UDP relay on 127.0.0.3 that the test
// can stop. A killed node is noticed within deadCount x interval; losing one link changes nothing;
// forged and replayed datagrams are counted and ignored; a main thread blocked for a second does
// not make the peer think this node is dead. Detection times are printed, not asserted tightly
// (tests never assert on wall-clock speed; the bound only catches a broken timer).
import { describe, it, afterEach } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { Worker } from "node:worker_threads";
import { performance } from "node:perf_hooks";
import type { HaConfig } from "../../host/config/schema.js";
import { parseUnicast } from "../../host/config/validate.js";
import { HeartbeatService, type HaStateChange } from "../../host/ha/heartbeat.js";
import { encodeHa } from "../../host/ha/protocol.js";

const INTERVAL = 50;
const DEAD_COUNT = 3;
const DEAD = INTERVAL * DEAD_COUNT;
/** Generous: two cores shared with other tests. */
const SLACK = 250;
const SECRET = new Uint8Array(32).fill(0x5a);
const A_IP = "127.0.0.1";
const B_IP = "127.0.0.2";
const RELAY_IP = "127.0.0.3";
const ROGUE_IP = "127.0.0.4";

async function freePort(): Promise<number> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "0.0.0.0", () => r()));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

function haConfig(node: string, priority: number, local: string, relayedPeer: string, directPeer: string, ports: { direct: number; relayed: number }): HaConfig {
  const a = (t: string) => parseUnicast(t)!;
  return {
    node, priority, preempt: true, preemptDelayMs: 0, intervalMs: INTERVAL, deadCount: DEAD_COUNT,
    keys: [{ id: 1, secret: SECRET }],
    links: [
      { name: "direct", local: a(local), peer: a(directPeer), port: ports.direct },
      { name: "relayed", local: a(local), peer: a(relayedPeer), port: ports.relayed },
    ],
    garp: { count: 3, intervalMs: 20 },
  };
}

/**
 * A UDP relay on RELAY_IP that forwards between A and B, in a thread of its own (so that blocking
 * the test's thread blocks only what it should), and can drop everything or hand over a copy.
 */
const RELAY_CODE = `
const { workerData: w, parentPort } = require("node:worker_threads");
const s = require("node:dgram").createSocket("udp4");
let dropping = false, lastFromA = null;
s.on("message", (m, r) => {
  if (dropping) return;
  if (r.address === w.a) lastFromA = m;
  s.send(m, w.port, r.address === w.a ? w.b : w.a);
});
s.bind(w.port, w.ip, () => parentPort.postMessage({ type: "ready" }));
parentPort.on("message", (m) => {
  if (m.type === "drop") { dropping = m.on; parentPort.postMessage({ type: "done" }); }
  if (m.type === "capture") parentPort.postMessage({ type: "captured", bytes: lastFromA });
  if (m.type === "close") { s.close(); parentPort.close(); }
});`;

class Relay {
  private worker: Worker | undefined;
  constructor(readonly port: number) {}
  async start(): Promise<void> {
    const w = new Worker(RELAY_CODE, { eval: true, workerData: { port: this.port, ip: RELAY_IP, a: A_IP, b: B_IP } });
    this.worker = w;
    await this.ask({ type: "ping" }, "ready");
  }
  async drop(on: boolean): Promise<void> {
    await this.ask({ type: "drop", on }, "done");
  }
  /** The last datagram fs-a sent through the relay. */
  async capture(): Promise<Uint8Array> {
    return ((await this.ask({ type: "capture" }, "captured")) as { bytes: Uint8Array }).bytes;
  }
  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await w.terminate();
  }
  private ask(m: object, answer: string): Promise<unknown> {
    const w = this.worker!;
    return new Promise((resolve) => {
      const on = (x: { type: string }): void => {
        if (x.type !== answer) return;
        w.off("message", on);
        resolve(x);
      };
      w.on("message", on);
      w.postMessage(m);
    });
  }
}

interface Seen extends HaStateChange {
  seen: number;
}

class Pair {
  a!: HeartbeatService;
  b!: HeartbeatService;
  relay!: Relay;
  ports!: { direct: number; relayed: number };
  readonly events: Record<"a" | "b", Seen[]> = { a: [], b: [] };
  readonly logs: string[] = [];

  async start(): Promise<void> {
    this.ports = { direct: await freePort(), relayed: await freePort() };
    this.relay = new Relay(this.ports.relayed);
    await this.relay.start();
    this.a = this.service("a");
    this.b = this.service("b");
    // one after the other: started together on a loaded machine, whichever worker runs first
    // could be active alone before the other listens, and a node that is not ready never preempts
    await this.a.start(haConfig("fs-a", 200, A_IP, RELAY_IP, B_IP, this.ports));
    await until(() => this.a.state === "active", 3000, "a is active alone");
    await this.b.start(haConfig("fs-b", 100, B_IP, RELAY_IP, A_IP, this.ports));
    await until(() => this.b.state === "standby", 3000, "b is standby");
  }

  private service(name: "a" | "b"): HeartbeatService {
    const s = new HeartbeatService({ log: (l) => this.logs.push(`${name}: ${l}`) });
    s.on("state", (e) => this.events[name].push({ ...e, seen: performance.now() }));
    return s;
  }

  async close(): Promise<void> {
    await Promise.all([this.a?.terminate(), this.b?.terminate(), this.relay?.close()]);
  }
}

async function until(cond: () => boolean, ms: number, what: string): Promise<void> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) throw new Error(`timed out after ${ms} ms waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

let open: Pair | undefined;
afterEach(async () => {
  await open?.close();
  open = undefined;
});

async function pair(): Promise<Pair> {
  const p = new Pair();
  open = p;
  await p.start();
  return p;
}

describe("ha heartbeat service: two real nodes over loopback", () => {
  it("a killed active node is noticed within deadCount x interval: the standby takes over (5 runs, times printed)", async () => {
    const times: number[] = [];
    for (let run = 0; run < 5; run++) {
      const p = await pair();
      await sleep(Math.random() * INTERVAL); // kill at a random phase of the heartbeat cycle
      const killedAt = performance.now();
      await p.a.terminate(); // like SIGKILL: not a word more
      await until(() => p.b.state === "active", DEAD + SLACK + 500, "b takes over");
      const e = p.events.b.at(-1)!;
      const took = e.seen - killedAt;
      times.push(took);
      assert.match(e.reason, /peer fs-a silent on every link for 1[5-9]\d ms|peer fs-a silent on every link for 2\d\d ms/);
      assert.ok(took <= DEAD + SLACK, `detected after ${took.toFixed(1)} ms`);
      const s = await p.b.stats();
      assert.equal(s.takeovers, 1);
      assert.equal(s.peer?.alive, false);
      await p.close();
      open = undefined;
    }
    const sorted = [...times].sort((x, y) => x - y);
    console.log(`ha: kill -> standby active: ${times.map((t) => t.toFixed(1)).join(", ")} ms; median ${sorted[2]!.toFixed(1)} ms (deadCount ${DEAD_COUNT} x ${INTERVAL} ms)`);
  });

  it("a stopped node says goodbye: the standby takes over at once, not after the dead time", async () => {
    const p = await pair();
    const stopAt = performance.now();
    await p.a.stop();
    await until(() => p.b.state === "active", 1000, "b takes over");
    const took = p.events.b.at(-1)!.seen - stopAt;
    console.log(`ha: graceful stop -> standby active: ${took.toFixed(1)} ms`);
    assert.match(p.events.b.at(-1)!.reason, /peer fs-a is standby, nobody is active/);
    assert.deepEqual(p.events.a.at(-1)!.to, "standby");
    assert.match(p.events.a.at(-1)!.reason, /heartbeat service stopping/);
  });

  it("one link's datagrams dropped (the relay stopped): no takeover, the link shows down and counts its loss", async () => {
    const p = await pair();
    await p.relay.drop(true);
    await sleep(DEAD * 6);
    assert.equal(p.b.state, "standby");
    assert.equal(p.a.state, "active");
    assert.deepEqual(p.events.b.slice(1), [], "no state change after settling");
    const s = await p.b.stats();
    assert.equal(s.takeovers, 0);
    assert.equal(s.links.relayed!.up, false);
    assert.equal(s.links.relayed!.losses, 1);
    assert.equal(s.links.direct!.up, true);
    assert.equal(s.links.direct!.losses, 0);
    assert.equal(s.peer?.alive, true);
    await p.relay.drop(false);
    await until(() => p.b.peer?.links.relayed?.up === true, 1000, "the relayed link is back");
  });

  it("a forged heartbeat (wrong key) and a replayed one sent from a raw socket are counted by reason and source; nothing changes", async () => {
    const p = await pair();
    await sleep(INTERVAL * 2);
    const rogue = createSocket("udp4");
    await new Promise<void>((r) => rogue.bind(0, ROGUE_IP, () => r()));
    const from = `${ROGUE_IP}:${rogue.address().port}`;
    try {
      const send = (b: Uint8Array, port: number): Promise<void> => new Promise((r) => rogue.send(b, port, B_IP, () => r()));
      // forged: "fs-a is standby and in maintenance" would make fs-b active at once, if believed
      const forged = encodeHa({
        type: "heartbeat", node: "fs-a", bootId: "forged", state: "standby", priority: 200, ready: false, maintenance: true,
        configVersion: 0, configDigest: "0".repeat(64), intervalMs: INTERVAL, link: "direct", keyIds: [1],
      }, { id: 1, secret: new Uint8Array(32).fill(0x11) }, Date.now() * 2, Date.now());
      await send(forged, p.ports.direct);
      // replayed: a genuine heartbeat of fs-a, copied by the relay on its way to fs-b
      const genuine = await p.relay.capture();
      assert.ok(genuine && Buffer.from(genuine).includes("fs-a"), "the relay saw fs-a's heartbeats");
      await send(genuine, p.ports.relayed);
      await send(Buffer.from("not even CBOR"), p.ports.direct);
      let s = await p.b.stats();
      for (let i = 0; i < 50 && s.rejected.replayed + s.rejected["bad-mac"] + s.rejected.malformed < 3; i++) {
        await sleep(10);
        s = await p.b.stats();
      }
      assert.equal(s.rejected["bad-mac"], 1);
      assert.equal(s.rejected.replayed, 1);
      assert.equal(s.rejected.malformed, 1);
      assert.deepEqual(s.rejectedBy[from], { "bad-mac": 1, replayed: 1, malformed: 1 });
      await sleep(DEAD);
      assert.equal(p.b.state, "standby");
      assert.deepEqual(p.events.b.slice(1), [], "no state change");
      assert.equal(p.b.peer?.state, "active");
    } finally {
      rogue.close();
    }
  });

  it("the main thread blocked for a second: heartbeats go on from the workers, the peer sees no gap", async () => {
    const p = await pair();
    const before = await p.b.stats();
    const end = Date.now() + 1000;
    while (Date.now() < end) {
      // busy: no event of this thread runs
    }
    await sleep(INTERVAL * 2);
    const after = await p.b.stats();
    const afterA = await p.a.stats();
    assert.deepEqual([p.a.state, p.b.state], ["active", "standby"]);
    assert.deepEqual(p.events.b.slice(1), [], "no state change");
    assert.equal(after.takeovers, 0);
    assert.equal(after.peer?.alive, true);
    // the direct link involves only the two heartbeat threads; the relayed one also the relay's
    // thread, which a machine loaded by other tests may starve (counted, shown, never a takeover)
    assert.equal(after.links.direct!.losses, before.links.direct!.losses, "no loss on the direct link seen by b");
    assert.equal(afterA.links.direct!.losses, 0, "no loss on the direct link seen by a");
    for (const l of ["direct", "relayed"]) {
      const sent = after.links[l]!.sent - before.links[l]!.sent;
      assert.ok(sent >= 1000 / INTERVAL - 3, `b sent ${sent} heartbeats on ${l} while the main thread was blocked`);
    }
  });
});
