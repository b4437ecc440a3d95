// The flow table when it is full: inserts fail and are counted, DSR keeps forwarding by Maglev
// alone, NAT refuses the new flow, and no flow already in the table is lost to make room.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture } from "../lib/fixture.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP } from "../lib/lab-config.js";
import { tcp4Frame, formatIPv4, SYN, ACK } from "../../host/net/frame.js";

const tiny = { dataplane: { flows: { ipv4: 16, ipv6: 16 } } }; // 32 entries, 16 buckets of 2

const syn = (i: number): Uint8Array => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: `198.51.100.${1 + (i % 250)}`, dst: VIP, sport: 20000 + i, dport: 80, flags: SYN });

test("flow table: when full, NAT refuses new flows as flow_table_full and every admitted flow keeps working", async () => {
  const fx = await Fixture.create("full-nat", labConfig([svc("nat", { backends: ["s1", "s2", "s3"] })], tiny));
  const admitted: { client: string; sport: number; backend: string }[] = [];
  let refused = 0;
  for (let i = 0; i < 200; i++) {
    const o = fx.send("client", syn(i));
    if (o.fate === "drop") {
      assert.equal(o.reason, "flow_table_full");
      refused++;
    } else if (o.fate === "tx") {
      admitted.push({ client: formatIPv4(o.frame, 26), sport: 20000 + i, backend: formatIPv4(o.frame, 30) });
    }
  }
  const c = fx.counters();
  assert.ok(refused > 0 && admitted.length >= 12, `some refused (${refused}), most of the table used (${admitted.length} flows)`);
  assert.equal(c.flows.ipv4, admitted.length * 2, "two entries per NAT flow, nothing else");
  assert.ok(c.flows.insertFailed >= refused);
  assert.ok(c.flows.cuckooMoves > 0, "residents were moved to make room");
  for (const a of admitted) {
    const be = SERVERS.find((s) => s.ip === a.backend)!;
    const reply = tcp4Frame({ srcMac: be.mac, dstMac: SERVER_PORT_MAC, src: be.ip, dst: a.client, sport: 80, dport: a.sport, flags: SYN | ACK });
    const o = fx.forward("server", reply);
    assert.equal(formatIPv4(o.frame, 26), VIP, `the reply of admitted flow ${a.sport} is still translated`);
    const again = fx.forward("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: a.client, dst: VIP, sport: a.sport, dport: 80, flags: ACK }));
    assert.equal(formatIPv4(again.frame, 30), a.backend, `admitted flow ${a.sport} still goes to its backend`);
  }
  assert.equal(fx.counters().flows.inserts, c.flows.inserts, "no admitted flow had to be made again");
});

test("flow table: when full, DSR still forwards new flows to their Maglev backend, counted as stateless", async () => {
  const fx = await Fixture.create("full-dsr", labConfig([svc("dsr", { backends: ["s1", "s2", "s3"] })], tiny));
  for (let i = 0; i < 200; i++) assert.equal(fx.forward("client", syn(i)).port, "server");
  const c = fx.counters();
  assert.ok(c.flows.stateless > 0);
  assert.equal(c.flows.stateless, c.flows.insertFailed);
  assert.equal(c.drop, 0);
});

test("flow table: expired entries make room again", async () => {
  const fx = await Fixture.create("full-expiry", labConfig([svc("nat")], { dataplane: { ...tiny.dataplane, timeouts: { tcpSyn: 5 } } }));
  for (let i = 0; i < 100; i++) fx.send("client", syn(i));
  assert.ok(fx.counters().flows.insertFailed > 0);
  fx.advance(6);
  for (let i = 100; i < 108; i++) assert.equal(fx.send("client", syn(i)).fate, "tx", `flow ${i} finds room among expired entries`);
});
