// Fuzzing the engine with seeded random and mutated frames: it must never trap, every frame must
// end exactly once, and nothing outside a frame (its input bytes, or the frame it became) may change.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Engine, fateIdentityHolds } from "../../host/engine/index.js";
import { validateOrThrow } from "../../host/config/validate.js";
import * as L from "../../assembly/layout.js";
import { labConfig, svc, ROUTER_MAC, CLIENT_PORT_MAC, VIP, VIP6, CLIENT, CLIENT6, SERVERS, TUNNEL_SRC, TUNNEL_SRC6, SERVER_PORT_MAC } from "../lib/lab-config.js";
import {
  tcp4Frame, tcp6Frame, udp4Frame, udp6Frame, ethernet, ipv4, ipv6, tcp, udp, arp, icmpv4, icmpv6, fragmentExt, tci,
  SYN, ACK, FIN, ARP_REQUEST, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_ARP,
} from "../../host/net/frame.js";

/** xorshift32: the same frames on every run and every machine. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

const tunnel = { source4: TUNNEL_SRC, source6: TUNNEL_SRC6 };
const fuzzConfig = labConfig([
  svc("dsr", { name: "d4", backends: ["s1", "s2", "s3"] }),
  svc("nat", { name: "n4", port: 8080, targetPort: 80, backends: ["s1", "s2"] }),
  svc("tunnel", { name: "t4", port: 443, backends: ["s1", "s2v6"], tunnel }),
  svc("tunnel", { name: "g4", protocol: "udp", port: 4500, backends: ["s3", "s3v6"], tunnel: { ...tunnel, encap: "gue" } }),
  svc("dsr", { name: "d6", vip: VIP6, backends: ["s1v6", "s2v6"], onBackendDown: "reset" }),
  svc("nat", { name: "n6", vip: VIP6, protocol: "udp", port: 5300, backends: ["s1v6"] }),
  svc("tunnel", { name: "t6", vip: VIP6, port: 443, backends: ["s2", "s2v6"], tunnel }),
  svc("dsr", { name: "any", vip: "10.0.0.101", port: 0, backends: ["s2"] }),
], {
  dataplane: { flows: { ipv4: 1 << 14, ipv6: 1 << 12 }, limits: { services: 16, backends: 16 }, buffers: { count: 512 } },
  // rules with every action: frames grow into the headroom and shrink, under DSR, NAT and tunnels
  flowRules: [
    { name: "f1", source: "192.0.2.0/28", vip: VIP, port: 80, backend: "s2", dscp: 46, pcp: 3, vlanPush: 100, mplsPush: { label: 500, tc: 1 } },
    { name: "f2", vip: VIP, protocol: "udp", backend: "s3", vlanPop: true, mplsPop: true },
    { name: "f3", vip: VIP6, backend: "s1v6", dscp: 10, vlanPop: true, mplsPush: { label: 1 }, idleTimeout: 5 },
    { name: "f4", vip: VIP, port: 8080, backend: "s1", vlanPop: true, vlanPush: 7, mplsPop: true, mplsPush: { label: 9, ttl: 1 } },
    { name: "f5", vip: VIP, backend: "s1", pcp: 7, dscp: 0 },
  ],
});

/** Valid frames of every kind the parser knows, to mutate. */
function templates(): Uint8Array[] {
  const c = { srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC };
  const big = new Uint8Array(1440);
  const t: Uint8Array[] = [];
  for (const dport of [80, 8080, 443, 22, 0]) {
    t.push(tcp4Frame({ ...c, src: CLIENT, dst: VIP, sport: 40000, dport, flags: SYN }));
    t.push(tcp4Frame({ ...c, src: CLIENT, dst: VIP, sport: 40000, dport, flags: ACK, payload: big }));
    t.push(tcp6Frame({ ...c, src: CLIENT6, dst: VIP6, sport: 40000, dport, flags: FIN | ACK, payload: big }));
  }
  t.push(udp4Frame({ ...c, src: CLIENT, dst: VIP, sport: 1, dport: 4500, payload: new Uint8Array(1460) }));
  t.push(udp6Frame({ ...c, src: CLIENT6, dst: VIP6, sport: 1, dport: 5300, payload: new Uint8Array(20) }));
  t.push(tcp4Frame({ ...c, src: CLIENT, dst: VIP, sport: 40000, dport: 80, vlans: [tci(1), tci(2)] }));
  t.push(tcp4Frame({ ...c, src: CLIENT, dst: "10.0.0.101", sport: 1, dport: 7 }));
  t.push(tcp4Frame({ srcMac: SERVERS[0].mac, dstMac: SERVER_PORT_MAC, src: SERVERS[0].ip, dst: CLIENT, sport: 80, dport: 40000 }));
  t.push(ethernet({ ...{ dst: CLIENT_PORT_MAC, src: ROUTER_MAC }, mpls: [{ label: 16 }, { label: 17 }], payload: ipv4({ src: CLIENT, dst: VIP, protocol: 6, payload: tcp({ src: CLIENT, dst: VIP, sport: 1, dport: 443, flags: SYN }) }) }));
  t.push(ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 6, options: new Uint8Array(40).fill(1), payload: tcp({ src: CLIENT, dst: VIP, sport: 1, dport: 80, flags: ACK }) }) }));
  t.push(ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 17, mf: true, df: false, payload: udp({ src: CLIENT, dst: VIP, sport: 1, dport: 4500, payload: new Uint8Array(16) }) }) }));
  t.push(ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 6, extensions: [{ type: 0 }, { type: 43 }, fragmentExt(0, false, 1), { type: 60 }], payload: tcp({ src: CLIENT6, dst: VIP6, sport: 1, dport: 80, flags: ACK }) }) }));
  t.push(ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: ROUTER_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: ROUTER_MAC, spa: CLIENT, tpa: VIP }) }));
  t.push(ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 1, payload: icmpv4({ type: 8, payload: new Uint8Array(8) }) }) }));
  t.push(ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: CLIENT6, dst: "ff02::1:ff00:100", nextHeader: 58, payload: icmpv6({ src: CLIENT6, dst: "ff02::1:ff00:100", type: 135, payload: new Uint8Array(16) }) }) }));
  return t;
}

/** One fuzz frame: a mutated template, or noise. */
function fuzzFrame(next: () => number, base: Uint8Array[], maxFrame: number): Uint8Array {
  const kind = next() % 8;
  if (kind === 0) { // pure noise of any length
    const f = new Uint8Array(next() % (maxFrame + 1));
    for (let i = 0; i < f.length; i++) f[i] = next() & 0xff;
    return f;
  }
  let f = base[next() % base.length].slice();
  if (kind === 1) return f.slice(0, next() % (f.length + 1)); // truncated anywhere
  if (kind === 2 && f.length < maxFrame) { // longer than its headers say
    const g = new Uint8Array(Math.min(maxFrame, f.length + (next() % 64)));
    g.set(f);
    return g;
  }
  const flips = 1 + (next() % 6);
  for (let i = 0; i < flips; i++) {
    // most flips land in the headers, where the parser decides things
    const at = next() % 4 ? next() % Math.min(f.length, 80) : next() % f.length;
    f[at] = kind === 3 ? 0xff : kind === 4 ? 0 : next() & 0xff;
  }
  if (kind === 5 && f.length > 20) f = f.slice(0, f.length - (next() % 20));
  return f;
}

test("fuzz: a million random and mutated frames: no trap, and every frame ends exactly once", async (t) => {
  const engine = await Engine.create(validateOrThrow(fuzzConfig), { seed: 1 });
  const next = rng(0xf10f5);
  const base = templates();
  const N = 1_000_000;
  let pushed = 0;
  let clock = 1000;
  const states = ["active", "draining", "down"] as const;
  for (let sent = 0, flips = 0; sent < N; flips++) {
    if (flips % 200 === 199) { // backends change state under traffic: generation flips, reselect, reset
      const s = (n: number) => states[(flips + n) % 3];
      engine.apply(validateOrThrow({ ...fuzzConfig, backends: fuzzConfig.backends!.map((b, i) => ({ ...b, state: s(i) })) }));
    }
    const batch = Math.min(L.MAX_BATCH, N - sent);
    for (let i = 0; i < batch; i++) {
      const port = next() % 17 === 0 ? 2 + (next() % 20) : next() & 1; // now and then a port that does not exist
      if (engine.rxPush(port, fuzzFrame(next, base, engine.maxFrame))) pushed++;
    }
    sent += batch;
    engine.clock = clock += next() % 3000; // time passes, flows expire
    engine.runAll();
    engine.drainTx();
    engine.drainPunt();
    engine.drainDropped();
  }
  const c = engine.counters();
  t.diagnostic(`fates and reasons reached: ${JSON.stringify({ tx: c.tx, punt: c.punt, drop: c.drop, drops: c.drops, flows: c.flows, icmpSent: c.icmpSent, resets: c.tcpResetsSent })}`);
  assert.equal(pushed, N, "every frame fits a buffer");
  assert.equal(c.rx, N);
  assert.ok(fateIdentityHolds(c), JSON.stringify({ rx: c.rx, tx: c.tx, punt: c.punt, drop: c.drop, drops: c.drops }));
  assert.ok(c.tx > N / 20 && c.drop > N / 20 && c.punt > 0, `every fate was reached: ${JSON.stringify({ tx: c.tx, punt: c.punt, drop: c.drop })}`);
  assert.ok(Object.keys(c.drops).length >= 15, `many drop reasons were reached: ${Object.keys(c.drops).join(", ")}`);
  assert.ok(c.flows.reselected > 0 && c.tcpResetsSent > 0 && c.icmpSent > 0, `reselect, reset and ICMP paths ran: ${JSON.stringify(c.flows)}`);
  assert.equal(engine.freeBuffers, engine.plan.bufferCount, "every buffer came back");
});

test("fuzz: no byte of a buffer outside the frame that came in, or the frame that went out, ever changes", async () => {
  const engine = await Engine.create(validateOrThrow(fuzzConfig), { seed: 2 });
  const next = rng(0xca11);
  const base = templates();
  const mem = engine.bytes;
  const { buffers, bufferSize, bufferCount } = engine.plan;
  const CANARY = 0xa5;
  mem.fill(CANARY, buffers, buffers + bufferSize * bufferCount);
  for (let i = 0; i < 30_000; i++) {
    if (i % 1000 === 999) {
      const down = new Set([`s${1 + ((i / 1000) % 3)}`, `s${1 + ((i / 1000) % 3)}v6`]);
      engine.apply(validateOrThrow({ ...fuzzConfig, backends: fuzzConfig.backends!.map((b) => ({ ...b, state: down.has(b.name) ? "down" : "active" })) }));
    }
    const frame = fuzzFrame(next, base, engine.maxFrame);
    assert.ok(engine.rxPush(next() & 1, frame));
    const slot = buffers + engine.lastPushedBuffer * bufferSize;
    const inStart = slot + L.HEADROOM;
    const inEnd = inStart + frame.length;
    engine.clock = i * 10;
    engine.runAll();
    let outStart = inStart;
    let outEnd = inEnd;
    const seen = (e: { frame: Uint8Array }): void => {
      outStart = e.frame.byteOffset;
      outEnd = e.frame.byteOffset + e.frame.length;
    };
    engine.drainTx(seen);
    engine.drainPunt(seen);
    engine.drainDropped(seen);
    const lo = Math.min(inStart, outStart);
    const hi = Math.max(inEnd, outEnd);
    assert.ok(lo >= slot && hi <= slot + bufferSize, `frame ${i}: output within its buffer`);
    for (let p = slot; p < slot + bufferSize; p++) {
      if (p >= lo && p < hi) continue;
      if (mem[p] !== CANARY) assert.fail(`frame ${i}: byte ${p - slot} of its buffer changed (in ${inStart - slot}..${inEnd - slot}, out ${outStart - slot}..${outEnd - slot})`);
    }
    mem.fill(CANARY, slot, slot + bufferSize);
  }
  assert.ok(fateIdentityHolds(engine.counters()));
});
