// DSR fixtures: the destination MAC is rewritten, the IP packet leaves byte-identical.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture, transmitted, tsharkProblems, hex, flowKey4 } from "../lib/fixture.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, VIP6, CLIENT, CLIENT6 } from "../lib/lab-config.js";
import { tcp4Frame, tcp6Frame, udp4Frame, ethernet, ipv4, tcp, parseIPv4, tci, SYN, ACK, FIN, RST, ETHERTYPE_IPV4 } from "../../host/net/frame.js";
import { buildMaglev } from "../../host/engine/maglev.js";
import { MAGLEV_SEED } from "../../assembly/layout.js";

const s1 = SERVERS[0];
const toVip = (o: Partial<Parameters<typeof tcp4Frame>[0]> = {}): Uint8Array =>
  tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, flags: SYN, ...o });
/** The same frame as it must leave toward a backend: only the MACs differ. */
const rewritten = (frame: Uint8Array, backendMac: string): Uint8Array => {
  const out = frame.slice();
  out.set(Buffer.from(backendMac.replaceAll(":", ""), "hex"), 0);
  out.set(Buffer.from(SERVER_PORT_MAC.replaceAll(":", ""), "hex"), 6);
  return out;
};

test("dsr: a new IPv4 TCP flow leaves for its backend with the MACs rewritten and the IP packet byte-identical", async () => {
  const fx = await Fixture.create("dsr-v4", labConfig([svc("dsr")]));
  const syn = toVip();
  fx.expectTx("client", syn, rewritten(syn, s1.mac), "SYN");
  const data = toVip({ flags: ACK, seq: 1, payload: new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n") });
  fx.expectTx("client", data, rewritten(data, s1.mac), "established segment");
  const c = fx.counters();
  assert.equal(c.flows.ipv4, 1);
  assert.equal(c.services.web.newFlows, 1);
  assert.equal(c.services.web.packets, 2);
  assert.equal(c.backends.s1.packets, 2);
  assert.equal(c.ports.server.txPackets, 2);
  assert.equal(c.ports.client.rxBytes, syn.length + data.length);
  fx.assertIdentity();
});

test("dsr: an IPv6 flow and a UDP flow are forwarded the same way", async () => {
  const fx = await Fixture.create("dsr-v6-udp", labConfig([
    svc("dsr", { name: "web6", vip: VIP6, backends: ["s2v6"] }),
    svc("dsr", { name: "dns", protocol: "udp", port: 53, backends: ["s3"] }),
  ]));
  const f6 = tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 40001, dport: 80, flags: SYN });
  fx.expectTx("client", f6, rewritten(f6, SERVERS[1].mac6), "IPv6 SYN");
  const q = udp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 5353, dport: 53, payload: new Uint8Array(30) });
  fx.expectTx("client", q, rewritten(q, SERVERS[2].mac), "UDP query");
  assert.equal(fx.counters().flows.ipv6, 1);
  fx.assertIdentity();
});

test("dsr: 802.1Q and QinQ tagged frames keep their tags", async () => {
  const fx = await Fixture.create("dsr-vlan", labConfig([svc("dsr")]));
  const one = toVip({ vlans: [tci(100, 5)] });
  fx.expectTx("client", one, rewritten(one, s1.mac), "802.1Q");
  const two = toVip({ vlans: [tci(200), tci(100)], sport: 40002 });
  fx.expectTx("client", two, rewritten(two, s1.mac), "QinQ");
  fx.assertIdentity();
});

test("dsr: an MPLS-labelled frame keeps its label stack", async () => {
  const fx = await Fixture.create("dsr-mpls", labConfig([svc("dsr")]));
  const packet = ipv4({ src: CLIENT, dst: VIP, protocol: 6, payload: tcp({ src: CLIENT, dst: VIP, sport: 40003, dport: 80, flags: SYN }) });
  const f = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, mpls: [{ label: 1000 }, { label: 2000, tc: 3 }], payload: packet });
  fx.expectTx("client", f, rewritten(f, s1.mac), "MPLS");
  fx.assertIdentity();
});

test("dsr: an IPv4 packet with options is forwarded unchanged and counted", async () => {
  const fx = await Fixture.create("dsr-options", labConfig([svc("dsr")]));
  const options = Uint8Array.of(0x94, 0x04, 0x00, 0x00); // router alert
  const packet = ipv4({ src: CLIENT, dst: VIP, protocol: 6, options, payload: tcp({ src: CLIENT, dst: VIP, sport: 40004, dport: 80, flags: SYN }) });
  const f = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: packet });
  fx.expectTx("client", f, rewritten(f, s1.mac), "options");
  assert.equal(fx.counters().ipv4Options, 1);
});

test("dsr: every packet of a flow stays on the backend its first packet got, and that is Maglev's pick", async () => {
  const three = svc("dsr", { backends: ["s1", "s2", "s3"] });
  const fx = await Fixture.create("dsr-sticky", labConfig([three]), 11);
  const other = await Fixture.create("dsr-sticky-2", labConfig([three]), 99); // another appliance
  const table = buildMaglev(["s1", "s2", "s3"].map((id) => ({ id, weight: 1 })), 65537);
  const macToIndex = new Map(SERVERS.map((s, i) => [s.mac.replaceAll(":", ""), i]));
  const picks = [0, 0, 0];
  for (let i = 0; i < 600; i++) {
    const sport = 1024 + i;
    const first = fx.forward("client", toVip({ sport }));
    const again = fx.forward("client", toVip({ sport, flags: ACK, seq: 1 }));
    const elsewhere = other.forward("client", toVip({ sport }));
    const b = macToIndex.get(hex(first.frame.subarray(0, 6)))!;
    assert.equal(hex(again.frame.subarray(0, 6)), hex(first.frame.subarray(0, 6)), `flow ${sport} stays`);
    assert.equal(hex(elsewhere.frame.subarray(0, 6)), hex(first.frame.subarray(0, 6)), `flow ${sport}: same pick on another appliance`);
    const h = fx.engine.hashOf(flowKey4(parseIPv4(CLIENT), parseIPv4(VIP), sport, 80, 6), MAGLEV_SEED);
    assert.equal(b, table[h % 65537], `flow ${sport} is the Maglev table's pick`);
    picks[b]++;
  }
  for (const n of picks) assert.ok(n > 120, `every backend gets a share of 600 flows: ${picks}`);
  fx.assertIdentity();
});

test("dsr: a draining backend keeps its established flows and gets no new ones", async () => {
  const two = svc("dsr", { backends: ["s1", "s2"] });
  const fx = await Fixture.create("dsr-drain", labConfig([two]));
  const onS1: number[] = [];
  for (let sport = 2000; onS1.length < 5; sport++) {
    const o = fx.forward("client", toVip({ sport }));
    if (hex(o.frame.subarray(0, 6)) === s1.mac.replaceAll(":", "")) onS1.push(sport);
  }
  fx.apply(labConfig([two], { states: { s1: "draining" } }));
  for (const sport of onS1) {
    const seg = toVip({ sport, flags: ACK, seq: 1 });
    fx.expectTx("client", seg, rewritten(seg, s1.mac), `established flow ${sport} stays on the draining backend`);
  }
  for (let sport = 3000; sport < 3100; sport++) {
    const syn = toVip({ sport });
    fx.expectTx("client", syn, rewritten(syn, SERVERS[1].mac), `new flow ${sport} avoids the draining backend`);
  }
  fx.assertIdentity();
});

test("dsr: a down backend's flows are re-selected onto a live backend", async () => {
  const two = svc("dsr", { backends: ["s1", "s2"] });
  const fx = await Fixture.create("dsr-down-reselect", labConfig([two]));
  let sport = 4000;
  while (hex(fx.forward("client", toVip({ sport })).frame.subarray(0, 6)) !== s1.mac.replaceAll(":", "")) sport++;
  fx.apply(labConfig([two], { states: { s1: "down" } }));
  const seg = toVip({ sport, flags: ACK, seq: 1 });
  fx.expectTx("client", seg, rewritten(seg, SERVERS[1].mac), "moved to s2");
  fx.expectTx("client", seg, rewritten(seg, SERVERS[1].mac), "and stays there");
  const c = fx.counters();
  assert.equal(c.flows.reselected, 1);
  assert.equal(c.backends.s1.flowsLost, 1);
  fx.assertIdentity();
});

test("dsr: a down backend's TCP flows are reset when the service says reset", async () => {
  const one = svc("dsr", { onBackendDown: "reset" });
  const fx = await Fixture.create("dsr-down-reset", labConfig([one]));
  fx.forward("client", toVip({ sport: 5000 }));
  fx.apply(labConfig([one], { states: { s1: "down" } }));
  const seg = toVip({ sport: 5000, flags: ACK, seq: 1001, ack: 7777, payload: new Uint8Array(10) });
  const rst = ethernet({
    dst: ROUTER_MAC, src: CLIENT_PORT_MAC, etherType: ETHERTYPE_IPV4,
    payload: ipv4({ src: VIP, dst: CLIENT, protocol: 6, df: false, payload: tcp({ src: VIP, dst: CLIENT, sport: 80, dport: 5000, flags: RST, seq: 7777, ack: 0, window: 0 }) }),
  });
  fx.expectTx("client", seg, rst, "a reset back to the client, seq = the segment's ack");
  assert.equal(fx.counters().tcpResetsSent, 1);
  // no flow is left: once the backend is back, the next SYN makes a new one
  fx.apply(labConfig([one]));
  const syn = toVip({ sport: 5000 });
  fx.expectTx("client", syn, rewritten(syn, s1.mac), "after recovery");
  fx.assertIdentity();
});

test("dsr: a service with no active backend drops new flows as no_backend", async () => {
  const fx = await Fixture.create("dsr-no-backend", labConfig([svc("dsr")], { states: { s1: "down" } }));
  fx.expectDrop("client", toVip(), "no_backend");
  assert.equal(fx.counters().services.web.drops, 1);
  fx.assertIdentity();
});

test("dsr: a FIN shortens a flow's idle timeout; an idle flow expires and is counted", async () => {
  const fx = await Fixture.create("dsr-timeouts", labConfig([svc("dsr")], { dataplane: { timeouts: { tcp: 100, tcpClosing: 5, tcpSyn: 20 } } }));
  fx.forward("client", toVip({ sport: 6000 }));
  fx.forward("client", toVip({ sport: 6000, flags: ACK }));
  fx.advance(50);
  fx.forward("client", toVip({ sport: 6000, flags: ACK }));
  assert.equal(fx.counters().flows.inserts, 1, "an established flow outlives 50 s of a 100 s timeout");
  fx.forward("client", toVip({ sport: 6000, flags: FIN | ACK }));
  fx.advance(6);
  fx.forward("client", toVip({ sport: 6000, flags: ACK }));
  let c = fx.counters();
  assert.equal(c.flows.inserts, 2, "after FIN the flow expired within tcpClosing and was made anew");
  assert.equal(c.flows.expired, 1);
  fx.forward("client", toVip({ sport: 6001 })); // SYN only
  fx.advance(21);
  fx.forward("client", toVip({ sport: 6001 }));
  c = fx.counters();
  assert.equal(c.flows.inserts, 4, "a SYN-only flow ages out after tcpSyn");
  fx.assertIdentity();
});

test("dsr: every frame the DSR fixtures transmitted passes tshark's checksum and malformed checks", async () => {
  assert.ok(transmitted.length > 100);
  assert.deepEqual(await tsharkProblems(transmitted), []);
});

test("dsr: a SYN reusing the 5-tuple of a closed flow is a new connection: counted, and a draining backend does not get it", async () => {
  const two = svc("dsr", { backends: ["s1", "s2"] });
  const fx = await Fixture.create("dsr-port-reuse", labConfig([two]));
  let sport = 7000;
  while (hex(fx.forward("client", toVip({ sport })).frame.subarray(0, 6)) !== s1.mac.replaceAll(":", "")) sport++;
  fx.forward("client", toVip({ sport, flags: FIN | ACK }));
  fx.apply(labConfig([two], { states: { s1: "draining" } }));
  const before = fx.counters().services.web.newFlows;
  const syn = toVip({ sport, seq: 99 });
  fx.expectTx("client", syn, rewritten(syn, SERVERS[1].mac), "the recycled port's new connection avoids the draining s1");
  const c = fx.counters();
  assert.equal(c.services.web.newFlows, before + 1);
  assert.equal(c.flows.reused, 1);
  const retransmit = toVip({ sport: sport + 1000 });
  fx.forward("client", retransmit);
  fx.forward("client", retransmit); // a retransmitted SYN of a live flow is not a new connection
  assert.equal(fx.counters().flows.reused, 1);
});
