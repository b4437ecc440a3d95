// The engine pool: worker-thread engines fed through their rings, sleeping when idle, several of
// them sharing one box's flows so that both directions of a NAT flow meet on one engine.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EnginePool } from "../../host/engine/pool.js";
import { clientSideHash } from "../../host/engine/dispatch.js";
import { validateOrThrow } from "../../host/config/validate.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP } from "../lib/lab-config.js";
import { tcp4Frame, tcp6Frame, formatIPv4, SYN, ACK } from "../../host/net/frame.js";
import * as L from "../../assembly/layout.js";

function collect(): { tx: { port: number; frame: Uint8Array }[]; punts: number; out: { tx(p: number, f: Uint8Array): void; punt(): void } } {
  const r = { tx: [] as { port: number; frame: Uint8Array }[], punts: 0, out: { tx: (port: number, f: Uint8Array) => void r.tx.push({ port, frame: f.slice() }), punt: () => void r.punts++ } };
  return r;
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("pool: an idle engine sleeps instead of spinning (a handful of wake-ups a second, not millions of batches)", async () => {
  const c = collect();
  const pool = await EnginePool.create(validateOrThrow(labConfig([svc("dsr")])), 1, c.out);
  try {
    const words = pool.engines[0].controlWords;
    await new Promise((r) => setTimeout(r, 200));
    const before = Atomics.load(words, L.CB_BATCHES_RUN / 4);
    await new Promise((r) => setTimeout(r, 1000));
    const runs = Atomics.load(words, L.CB_BATCHES_RUN / 4) - before;
    assert.ok(runs <= 30, `${runs} run() calls in an idle second`);
    assert.equal(Atomics.load(words, L.CB_IDLE / 4), 1, "asleep");
    pool.dispatch(0, [tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: "198.51.100.1", dst: VIP, sport: 1, dport: 80, flags: SYN })]);
    await until("the frame through a woken engine", () => c.tx.length === 1);
  } finally {
    await pool.stop();
  }
});

test("dispatch: the client-side hash of a flow is the same for its request and for the NAT reply", () => {
  for (let i = 0; i < 500; i++) {
    const client = `198.51.${i % 256}.${(i * 7) % 256}`;
    const req = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: client, dst: VIP, sport: 1024 + i, dport: 80, flags: SYN });
    const rep = tcp4Frame({ srcMac: SERVERS[i % 3].mac, dstMac: SERVER_PORT_MAC, src: SERVERS[i % 3].ip, dst: client, sport: 8080, dport: 1024 + i, flags: SYN | ACK });
    assert.equal(clientSideHash(req, false), clientSideHash(rep, true), `flow ${i}`);
    const req6 = tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: `2001:db8:c::${i.toString(16)}`, dst: "2001:db8::100", sport: 1024 + i, dport: 80, flags: SYN });
    const rep6 = tcp6Frame({ srcMac: ROUTER_MAC, dstMac: SERVER_PORT_MAC, src: SERVERS[0].ip6, dst: `2001:db8:c::${i.toString(16)}`, sport: 80, dport: 1024 + i, flags: ACK });
    assert.equal(clientSideHash(req6, false), clientSideHash(rep6, true), `IPv6 flow ${i}`);
  }
});

test("pool: with three engines, NAT replies meet their flow's engine and the counters add up across engines", async () => {
  const c = collect();
  const pool = await EnginePool.create(validateOrThrow(labConfig([svc("nat", { backends: ["s1", "s2", "s3"], targetPort: 8080 })])), 3, c.out);
  try {
    const n = 300;
    pool.dispatch(0, Array.from({ length: n }, (_, i) => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: `198.51.100.${1 + (i % 200)}`, dst: VIP, sport: 2000 + i, dport: 80, flags: SYN })));
    await until("every request forwarded", () => c.tx.length === n);
    const replies = c.tx.map(({ frame }) => {
      const be = SERVERS.find((s) => s.ip === formatIPv4(frame, 30))!;
      return tcp4Frame({ srcMac: be.mac, dstMac: SERVER_PORT_MAC, src: be.ip, dst: formatIPv4(frame, 26), sport: 8080, dport: (frame[34] << 8) | frame[35], flags: SYN | ACK });
    });
    c.tx.length = 0;
    pool.dispatch(1, replies);
    await until("every reply translated back", () => c.tx.length === n);
    assert.ok(c.tx.every(({ port, frame }) => port === 0 && formatIPv4(frame, 26) === VIP), "all replies left toward the client from the VIP");
    const sum = pool.counters();
    assert.equal(sum.rx, 2 * n);
    assert.equal(sum.tx, 2 * n);
    const perEngine = pool.engines.map((e) => e.counters().rx);
    assert.ok(perEngine.every((x) => x > 0), `every engine took a share: ${perEngine}`);
    assert.equal(perEngine.reduce((a, b) => a + b, 0), 2 * n);
  } finally {
    await pool.stop();
  }
});
