// Flow recovery (SVCF_RECOVER): a mid-flow TCP packet to a recovering service that has no entry is
// punted (PUNT_RECOVER) for the host to ask its peers who has the flow, instead of being given a
// server by Maglev; the host installs the answer and re-injects the frame with RXA_NO_RECOVER.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture, hex, flowKey4, type Outcome } from "../lib/fixture.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, VIP, CLIENT, CLIENT_PORT_IP } from "../lib/lab-config.js";
import { levelsConfig } from "../lib/levels-fixture.js";
import { tcp4Frame, ethernet, ipv4, formatMac, parseIP, SYN, ACK, RST, FIN, PSH, ETHERTYPE_IPV4 } from "../../host/net/frame.js";
import { validateOrThrow } from "../../host/config/validate.js";
import type { ServiceInput } from "../../host/config/schema.js";
import { DROP_REASON_NAMES, PUNT_REASON_NAMES } from "../../host/engine/counters.js";
import { EnginePool } from "../../host/engine/pool.js";
import { importFlow, type SyncFlow } from "../../host/ha/flow-sync.js";
import * as L from "../../assembly/layout.js";

const THREE = ["s1", "s2", "s3"];
const nameOf = (frame: Uint8Array): string => SERVERS.find((s) => s.mac === formatMac(frame.subarray(0, 6)))!.name;
const seg = (sport: number, flags: number): Uint8Array =>
  tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport, dport: 80, flags });

/** A fixture with recovery on (or off) for its services, set by hand on the validated config. */
async function recovering(name: string, services: ServiceInput[], enabled = true): Promise<Fixture> {
  const fx = await Fixture.create(name, labConfig(services));
  fx.engine.apply({ ...fx.engine.config, levels: levelsConfig({ recovery: { enabled, peers: [], timeoutMs: 20, maxPending: 4096 } }) });
  return fx;
}

/** Fixture.send with RXA_* flags in the rx descriptor: what the host's re-injection does. */
function sendAux(fx: Fixture, frame: Uint8Array, aux: number): Outcome {
  const e = fx.engine;
  assert.ok(e.rxPush(fx.portIndex("client"), frame, aux));
  e.runAll();
  const out: Outcome[] = [];
  e.drainTx((x) => void out.push({ fate: "tx", port: e.config.ports[x.port].name, frame: x.frame.slice() }));
  e.drainPunt((x) => void out.push({ fate: "punt", reason: PUNT_REASON_NAMES[x.reason], frame: x.frame.slice() }));
  e.drainDropped((x) => void out.push({ fate: "drop", reason: DROP_REASON_NAMES[x.reason] }));
  assert.equal(out.length, 1);
  fx.assertIdentity();
  return out[0];
}

/** The backend Maglev gives this flow (a fixture without recovery, same config otherwise). */
async function maglevPick(sport: number): Promise<string> {
  const plain = await Fixture.create(`recover-maglev-${sport}`, labConfig([svc("dsr", { backends: THREE })]));
  return nameOf(plain.forward("client", seg(sport, ACK)).frame);
}

test("recover: a mid-flow ACK with no entry is punted with reason recover (6), counted, and makes no entry", async () => {
  assert.equal(L.PUNT_RECOVER, 6);
  assert.ok(L.PUNT_RECOVER < L.PUNT_REASONS, "its punt counter is one of the reason counters");
  const fx = await recovering("recover-punt", [svc("dsr", { backends: THREE })]);
  for (const flags of [ACK, ACK | PSH, FIN | ACK]) {
    const f = seg(40000, flags);
    const o = fx.send("client", f);
    assert.ok(o.fate === "punt" && o.reason === "recover", `flags ${flags}: ${JSON.stringify(o)}`);
    assert.equal(hex(o.frame), hex(f), "the frame as it came");
  }
  const c = fx.counters();
  assert.equal(c.levels.recoverPunted, 3);
  assert.equal(c.punts.recover, 3);
  assert.equal(c.flows.ipv4, 0);
  assert.equal(c.services.web.newFlows, 0);
});

test("recover: a SYN opens a new flow as always, and the ACKs after it find their entry", async () => {
  const fx = await recovering("recover-syn", [svc("dsr", { backends: THREE })]);
  const first = nameOf(fx.forward("client", seg(40001, SYN)).frame);
  assert.equal(nameOf(fx.forward("client", seg(40001, ACK)).frame), first);
  assert.equal(fx.forward("client", seg(40002, SYN | ACK)).port, "server", "SYN with ACK: a SYN still");
  const c = fx.counters();
  assert.equal(c.levels.recoverPunted, 0);
  assert.equal(c.flows.ipv4, 2);
});

test("recover: a RST with no entry is not punted (there is nothing left to recover)", async () => {
  const fx = await recovering("recover-rst", [svc("dsr", { backends: THREE })]);
  assert.equal(fx.forward("client", seg(40003, RST)).port, "server");
  assert.equal(fx.forward("client", seg(40004, RST | ACK)).port, "server");
  assert.equal(fx.counters().levels.recoverPunted, 0);
});

test("recover: the same ACK re-injected with RXA_NO_RECOVER gets Maglev's choice and an entry", async () => {
  const fx = await recovering("recover-reinject", [svc("dsr", { backends: THREE })]);
  const f = seg(40005, ACK);
  assert.equal(fx.send("client", f).fate, "punt");
  const o = sendAux(fx, f, L.RXA_NO_RECOVER);
  assert.ok(o.fate === "tx", JSON.stringify(o));
  assert.equal(nameOf(o.frame), await maglevPick(40005));
  const c = fx.counters();
  assert.equal(c.flows.ipv4, 1, "an entry was made");
  assert.equal(c.levels.recoverPunted, 1, "not punted again");
  assert.equal(nameOf(fx.forward("client", f).frame), nameOf(o.frame), "the next segment (no flag) finds it");
  assert.equal(sendAux(fx, seg(40006, SYN), 0).fate, "tx", "a descriptor reused with aux 0 carries no stale flag");
  assert.equal(sendAux(fx, seg(40007, ACK), 0).fate, "punt");
});

test("recover: an entry installed through the sync ring (another backend) takes the ACK there", async () => {
  const fx = await recovering("recover-install", [svc("dsr", { backends: THREE })]);
  const sport = 40008;
  const pick = await maglevPick(sport);
  const other = THREE.find((b) => b !== pick)!;
  const f = seg(sport, ACK);
  assert.equal(fx.send("client", f).fate, "punt");
  const flow: SyncFlow = {
    family: 4, key: flowKey4(parseIP(CLIENT).bytes, parseIP(VIP).bytes, sport, 80, 6), service: "web", backend: other,
    flags: L.FF_VALID | L.FF_ESTABLISHED, port: fx.portIndex("client"), leftMs: 60_000, kind: L.EVK_INSTALL,
  };
  const r = importFlow(fx.engine, flow);
  assert.ok(r.ok);
  assert.equal(fx.engine.installsTaken(), true, "nothing pushed yet: nothing waiting");
  assert.equal(fx.engine.pushInstalls([r.record]), 1);
  assert.equal(fx.engine.installsTaken(), false, "pushed, not yet taken");
  const o = sendAux(fx, f, L.RXA_NO_RECOVER);
  assert.equal(fx.engine.installsTaken(), true, "taken before the batch");
  assert.equal(o.fate === "tx" && nameOf(o.frame), other, `to ${other}, not Maglev's ${pick}`);
  assert.equal(fx.counters().sync.installed, 1);
  assert.equal(nameOf(fx.forward("client", f).frame), other, "and so do the flow's next segments");
});

test("recover: recovery off, no levels section, and a UDP service (never flagged) behave as today", async () => {
  const off = await recovering("recover-off", [svc("dsr", { backends: THREE })], false);
  assert.equal(off.forward("client", seg(40009, ACK)).port, "server", "recovery disabled");
  const none = await Fixture.create("recover-none", labConfig([svc("dsr", { backends: THREE })]));
  assert.equal(none.forward("client", seg(40009, ACK)).port, "server", "no levels section");
  const udp = await recovering("recover-udp", [svc("dsr", { name: "dns", protocol: "udp", port: 53, backends: THREE })]);
  const q = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 17, payload: Uint8Array.of(0x9c, 0x40, 0, 53, 0, 8, 0, 0) }) });
  assert.equal(udp.forward("client", q).port, "server", "UDP: no SVCF_RECOVER");
  for (const fx of [off, none, udp]) assert.equal(fx.counters().levels.recoverPunted, 0);
});

test("recover: an expired entry of the same key is taken over as today, not punted", async () => {
  const fx = await recovering("recover-expired", [svc("dsr", { backends: THREE })]);
  fx.forward("client", seg(40010, SYN));
  fx.forward("client", seg(40010, ACK));
  fx.advance(3600); // past every idle timeout
  assert.equal(fx.forward("client", seg(40010, ACK)).port, "server");
  const c = fx.counters();
  assert.equal(c.levels.recoverPunted, 0);
  assert.equal(c.flows.expired, 1);
});

test("recover: at a site, a tunnelled mid-flow ACK is punted opened, and that frame re-injected is served", async () => {
  const fx = await Fixture.create("recover-decap", labConfig([svc("dsr", { backends: THREE })]));
  fx.engine.apply({ ...fx.engine.config, levels: levelsConfig({ recovery: { enabled: true, peers: [], timeoutMs: 20, maxPending: 4096 } }) });
  const f = seg(40011, ACK);
  const outer = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: "198.51.100.7", dst: CLIENT_PORT_IP, protocol: 4, payload: f.subarray(14) }) });
  const o = fx.send("client", outer);
  assert.ok(o.fate === "punt" && o.reason === "recover", JSON.stringify(o));
  assert.equal(hex(o.frame), hex(f), "the host holds the inner packet, as if it had come directly");
  const again = sendAux(fx, o.frame, L.RXA_NO_RECOVER);
  assert.ok(again.fate === "tx" && nameOf(again.frame) === (await maglevPick(40011)));
});

// ---- the host's side: pool.reinject and pool.installsTaken over worker-thread engines ----------

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test("recover: through a pool of three engines: punt, install the peer's answer, wait until taken, re-inject", async () => {
  const tx: Uint8Array[] = [];
  const punts: { port: number; reason: number; frame: Uint8Array }[] = [];
  const config = { ...validateOrThrow(labConfig([svc("dsr", { backends: THREE })])), levels: levelsConfig({ recovery: { enabled: true, peers: [], timeoutMs: 20, maxPending: 4096 } }) };
  const pool = await EnginePool.create(config, 3, {
    tx: (_p, f) => void tx.push(f.slice()),
    punt: (port, reason, f) => void punts.push({ port, reason, frame: f.slice() }),
  });
  try {
    const n = 60;
    const frames = Array.from({ length: n }, (_, i) => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: `198.51.100.${1 + i}`, dst: VIP, sport: 30000 + i, dport: 80, flags: ACK }));
    pool.dispatch(0, frames);
    await until("every mid-flow ACK punted", () => punts.length === n);
    assert.ok(punts.every((p) => p.reason === L.PUNT_RECOVER && p.port === 0));
    // the peers' answer: every flow on s3 (the backend Maglev gives only some of them)
    const answer: SyncFlow[] = frames.map((_, i) => ({
      family: 4, key: flowKey4(parseIP(`198.51.100.${1 + i}`).bytes, parseIP(VIP).bytes, 30000 + i, 80, 6), service: "web", backend: "s3",
      flags: L.FF_VALID | L.FF_ESTABLISHED, port: 0, leftMs: 60_000, kind: L.EVK_INSTALL,
    }));
    assert.deepEqual(pool.install(answer).refused, {});
    await pool.installsTaken();
    assert.ok(pool.engines.every((e) => e.installsTaken()));
    assert.equal(pool.counters().sync.installed, n);
    pool.reinject(0, punts.map((p) => p.frame), L.RXA_NO_RECOVER);
    await until("every re-injected frame forwarded", () => tx.length === n);
    assert.deepEqual(new Set(tx.map(nameOf)), new Set(["s3"]), "each met its installed entry on its own engine");
    const c = pool.counters();
    assert.equal(c.levels.recoverPunted, n, "none punted twice");
    assert.equal(c.flows.inserts, 0, "no engine chose afresh");
    assert.ok(pool.engines.every((e) => e.counters().rx > 0), "the flows were spread over every engine");
    // nobody knew: re-injected as they are, they get Maglev's choice
    tx.length = 0;
    pool.reinject(0, [tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40012, dport: 80, flags: ACK })], L.RXA_NO_RECOVER);
    await until("the unknown flow forwarded", () => tx.length === 1);
    assert.equal(nameOf(tx[0]), await maglevPick(40012));
  } finally {
    await pool.stop();
  }
});
