// The data plane's side of the redundant pair: a standby forwards and answers nothing (but still
// hears service advertisements); an active reports its new flow entries and first FIN/RSTs on the
// event ring; entries carried over by name and installed through the sync ring keep every flow on
// the backend the old active chose, even where the new active's own Maglev would choose another.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture } from "../lib/fixture.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, CLIENT } from "../lib/lab-config.js";
import { tcp4Frame, udp4Frame, ethernet, arp, SYN, ACK, FIN, ETHERTYPE_ARP, ARP_REQUEST, formatMac } from "../../host/net/frame.js";
import { validateOrThrow } from "../../host/config/validate.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { clientSideHash } from "../../host/engine/dispatch.js";
import { exportEvent, importFlow, scanFlows, engineFor, type SyncFlow } from "../../host/ha/flow-sync.js";
import * as L from "../../assembly/layout.js";

const role = (fx: Fixture, config: ConfigInput, r: { standby: boolean; flowEvents: boolean }): void => fx.engine.apply({ ...validateOrThrow(config), role: r });
const syn = (sport: number, flags = SYN) => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport, dport: 80, flags });

function events(fx: Fixture): SyncFlow[] {
  const out: SyncFlow[] = [];
  fx.engine.drainEvents((r) => {
    const f = exportEvent(fx.engine, r);
    assert.ok(f, "every event names a service and backend");
    out.push(f);
  });
  return out;
}

test("ha: a standby forwards nothing and answers nothing, but still hears advertisements", async () => {
  const config = labConfig([svc("dsr", { backends: ["s1", "s2", "s3"] })], { discovery: { keys: [{ id: 1, secret: "00".repeat(16) }] } });
  const fx = await Fixture.create("ha-standby", config);
  role(fx, config, { standby: true, flowEvents: false });
  fx.expectDrop("client", syn(40000), "standby");
  fx.expectDrop("client", ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: ROUTER_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: ROUTER_MAC, spa: "192.0.2.254", tpa: VIP }) }), "standby");
  fx.expectDrop("server", tcp4Frame({ srcMac: SERVERS[0].mac, dstMac: SERVER_PORT_MAC, src: SERVERS[0].ip, dst: CLIENT, sport: 80, dport: 40000, flags: ACK }), "standby");
  fx.expectPunt("server", udp4Frame({ srcMac: SERVERS[0].mac, dstMac: "01:00:5e:7f:4d:4d", src: SERVERS[0].ip, dst: "239.255.77.77", sport: 7777, dport: 7777, payload: new Uint8Array(40) }), "discovery");
  assert.equal(fx.counters().flows.ipv4, 0, "no flow was made");
  role(fx, config, { standby: false, flowEvents: false });
  assert.equal(fx.send("client", syn(40000)).fate, "tx", "active again: forwarded");
});

test("ha: an active reports each new entry (a NAT flow's two) and its first FIN; without flowEvents nothing", async () => {
  const config = labConfig([svc("nat", { backends: ["s1", "s2", "s3"] })]);
  const quiet = await Fixture.create("ha-no-events", config);
  quiet.forward("client", syn(40000));
  assert.equal(events(quiet).length, 0);

  const fx = await Fixture.create("ha-events", config);
  role(fx, config, { standby: false, flowEvents: true });
  const out = fx.forward("client", syn(40001));
  const backend = SERVERS.find((s) => s.mac === formatMac(out.frame.subarray(0, 6)))!.name;
  const got = events(fx);
  assert.deepEqual(got.map((e) => [e.kind, e.service, e.backend, (e.flags & L.FF_REVERSE) !== 0]), [
    [L.EVK_NEW, "web", backend, false],
    [L.EVK_NEW, "web", backend, true],
  ]);
  assert.deepEqual([...got[0].key.subarray(0, 4)], [192, 0, 2, 10], "the forward key starts with the client");
  assert.ok(got[0].leftMs > 0 && got[0].leftMs <= 30_000, `SYN-only timeout left: ${got[0].leftMs}`);
  fx.forward("client", syn(40001, ACK));
  assert.equal(events(fx).length, 0, "an established packet is no event");
  fx.forward("client", syn(40001, FIN | ACK));
  const fin = events(fx);
  assert.deepEqual(fin.map((e) => [e.kind, (e.flags & L.FF_CLOSING) !== 0]), [[L.EVK_CLOSING, true]]);
  fx.forward("client", syn(40001, FIN | ACK));
  assert.equal(events(fx).length, 0, "only the first FIN");
  assert.equal(fx.counters().sync.events, 3);
});

test("ha: flows carried by name keep their backend on the new active, where its own Maglev would move some", async () => {
  const oldConfig = labConfig([svc("nat", { backends: ["s1", "s2"] })]);
  const newConfig = labConfig([svc("nat", { backends: ["s1", "s2", "s3"] })]); // a backend added since
  const active = await Fixture.create("ha-old-active", oldConfig);
  role(active, oldConfig, { standby: false, flowEvents: true });
  const standby = await Fixture.create("ha-standby-sync", newConfig, 99);
  role(standby, newConfig, { standby: true, flowEvents: false });
  const fresh = await Fixture.create("ha-no-sync", newConfig, 5);

  const N = 200;
  const chosen = new Map<number, string>();
  for (let i = 0; i < N; i++) chosen.set(41000 + i, formatMac(active.forward("client", syn(41000 + i)).frame.subarray(0, 6)));
  const flows = events(active);
  assert.equal(flows.length, 2 * N);
  const records = flows.map((f) => {
    const r = importFlow(standby.engine, f);
    assert.ok(r.ok, JSON.stringify(r));
    return r.record;
  });
  assert.equal(standby.engine.pushInstalls(records), records.length);
  standby.engine.runAll();
  assert.equal(standby.counters().sync.installed, 2 * N);
  assert.equal(standby.counters().flows.ipv4, 2 * N);
  role(standby, newConfig, { standby: false, flowEvents: true });

  let movedWithoutSync = 0;
  for (const [sport, mac] of chosen) {
    const next = { ...{ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport, dport: 80, flags: ACK } };
    assert.equal(formatMac(standby.forward("client", tcp4Frame(next)).frame.subarray(0, 6)), mac, `flow ${sport} stays on its backend`);
    if (formatMac(fresh.forward("client", tcp4Frame(next)).frame.subarray(0, 6)) !== mac) movedWithoutSync++;
  }
  assert.ok(movedWithoutSync > N / 10, `without the sync ${movedWithoutSync} of ${N} flows would have moved: the test means something`);
  // the NAT return entry came over too: the server's reply is translated back
  const [sport, mac] = [...chosen][0];
  const s = SERVERS.find((x) => x.mac === mac)!;
  const back = standby.forward("server", tcp4Frame({ srcMac: s.mac, dstMac: SERVER_PORT_MAC, src: s.ip, dst: CLIENT, sport: 80, dport: sport, flags: ACK }));
  assert.equal(back.port, "client");
  assert.equal(events(standby).length, 0, "installed entries are no new events");

  let scanned = 0;
  scanFlows(active.engine, (f) => {
    scanned++;
    assert.equal(f.kind, L.EVK_INSTALL);
  });
  assert.equal(scanned, 2 * N, "a bulk resync sees every live entry");
  active.advance(31);
  assert.equal(scanFlows(active.engine, () => {}), 0, "expired entries are not resent");
});

test("ha: a flow's install goes to the engine the pool's dispatch hash gives its packets, both directions", async () => {
  const config = labConfig([svc("nat", { backends: ["s1", "s2", "s3"] })]);
  const fx = await Fixture.create("ha-engine-for", config);
  role(fx, config, { standby: false, flowEvents: true });
  for (let i = 0; i < 50; i++) {
    const client = `192.0.2.${10 + i}`;
    const out = fx.forward("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: client, dst: VIP, sport: 42000 + i * 7, dport: 80, flags: SYN }));
    const s = SERVERS.find((x) => x.mac === formatMac(out.frame.subarray(0, 6)))!;
    const [fwd, rev] = events(fx);
    const reply = tcp4Frame({ srcMac: s.mac, dstMac: SERVER_PORT_MAC, src: s.ip, dst: client, sport: 80, dport: 42000 + i * 7, flags: ACK });
    for (const n of [2, 3, 5]) {
      assert.equal(engineFor(fwd, n), clientSideHash(out.frame, false) % n, "forward: hashed like the client's frames");
      assert.equal(engineFor(rev, n), clientSideHash(reply, true) % n, "return: hashed like the server's replies");
    }
  }
});
