// Flow-rule fixtures: new flows matching a rule go to its backend ahead of Maglev, and their
// packets toward it get the rule's QoS actions (DSCP, 802.1p, VLAN and MPLS push / pop). Expected
// frames are built from scratch by the frame builder, so every checksum is fully recomputed.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture, transmitted, tsharkProblems, hex } from "../lib/fixture.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, VIP6, CLIENT, CLIENT6, TUNNEL_SRC, TUNNEL_SRC6 } from "../lib/lab-config.js";
import { tcp4Frame, ethernet, ipv4, ipv6, tcp, tci, SYN, ACK, type MplsEntry } from "../../host/net/frame.js";
import type { FlowRuleInput, ServiceInput } from "../../host/config/schema.js";

const [s1, s2, s3] = SERVERS;
const OTHER = "198.51.100.7"; // a client inside the rules' prefix; CLIENT is outside it
const three = svc("dsr", { backends: ["s1", "s2", "s3"] });
const rule = (o: Partial<FlowRuleInput> = {}): FlowRuleInput => ({ name: "r", vip: VIP, backend: "s3", ...o });
const config = (rules: FlowRuleInput[], services: ServiceInput[] = [three], states = {}) => ({ ...labConfig(services, { states }), flowRules: rules });

type Seg = Partial<Parameters<typeof tcp4Frame>[0]>;
const toVip = (o: Seg = {}): Uint8Array => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: OTHER, dst: VIP, sport: 40000, dport: 80, flags: SYN, ...o });
/** The same segment as DSR sends it to a backend: MACs rewritten, and whatever else `o` says. */
const toServer = (mac: string, o: Seg = {}): Uint8Array => toVip({ srcMac: SERVER_PORT_MAC, dstMac: mac, ...o });
const macOf = (frame: Uint8Array): string => hex(frame.subarray(0, 6));
const hexMac = (mac: string): string => mac.replaceAll(":", "");

/** An IPv4 TCP SYN to the VIP under an Ethernet header of our choosing (VLAN tags, MPLS labels). */
function labelled(srcMac: string, dstMac: string, l2: { vlans?: number[]; mpls?: MplsEntry[] }, sport = 40000): Uint8Array {
  const packet = ipv4({ src: OTHER, dst: VIP, protocol: 6, payload: tcp({ src: OTHER, dst: VIP, sport, dport: 80, flags: SYN }) });
  return ethernet({ dst: dstMac, src: srcMac, vlans: l2.vlans, mpls: l2.mpls, etherType: 0x0800, payload: packet });
}

test("flow rules: a matching client goes to the rule's backend, every packet of its flow, while other clients follow Maglev", async () => {
  const fx = await Fixture.create("rules-pin", config([rule({ source: "198.51.100.0/24" })]));
  const plain = await Fixture.create("rules-pin-reference", config([]));
  for (let sport = 1000; sport < 1040; sport++) {
    fx.expectTx("client", toVip({ sport }), toServer(s3.mac, { sport }), `rule client, flow ${sport}`);
    fx.expectTx("client", toVip({ sport, flags: ACK }), toServer(s3.mac, { sport, flags: ACK }), `rule client, flow ${sport} established`);
  }
  const picks = new Set<string>();
  for (let sport = 1000; sport < 1040; sport++) {
    const seg = { src: CLIENT, sport };
    const got = fx.forward("client", toVip(seg));
    const want = plain.forward("client", toVip(seg));
    assert.equal(hex(got.frame), hex(want.frame), `other client, flow ${sport}: Maglev's pick, as without rules`);
    picks.add(macOf(got.frame));
  }
  assert.ok(picks.size > 1, "the other clients are spread over the backends");
  const c = fx.counters();
  assert.equal(c.backends.s3.newFlows >= 40, true);
  assert.equal(c.services.web.newFlows, 80, "counted for the VIP's service");
  fx.assertIdentity();
});

test("flow rules: DSCP is rewritten in IPv4 TOS with the header checksum right and the ECN bits kept, on every packet", async () => {
  const fx = await Fixture.create("rules-dscp4", config([rule({ dscp: 46 })]));
  fx.expectTx("client", toVip({ tos: 0x01 }), toServer(s3.mac, { tos: (46 << 2) | 0x01 }), "SYN, ECT(1)");
  fx.expectTx("client", toVip({ tos: 0x03, flags: ACK }), toServer(s3.mac, { tos: (46 << 2) | 0x03, flags: ACK }), "established, CE");
  fx.expectTx("client", toVip({ tos: 0xfc, flags: ACK, sport: 40001 }), toServer(s3.mac, { tos: 46 << 2, flags: ACK, sport: 40001 }), "another DSCP overwritten");
});

test("flow rules: DSCP is rewritten in the IPv6 traffic class, ECN and the flow label untouched", async () => {
  const web6 = svc("dsr", { name: "web6", vip: VIP6, backends: ["s1v6", "s2v6"] });
  const fx = await Fixture.create("rules-dscp6", config([rule({ vip: VIP6, backend: "s2v6", dscp: 10 })], [web6]));
  const frame = (src: string, dst: string, trafficClass: number) => ethernet({
    dst, src, etherType: 0x86dd,
    payload: ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 6, trafficClass, flowLabel: 0xabcde, payload: tcp({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: SYN }) }),
  });
  fx.expectTx("client", frame(ROUTER_MAC, CLIENT_PORT_MAC, 0xb2), frame(SERVER_PORT_MAC, s2.mac6, (10 << 2) | 0x02));
});

test("flow rules: in NAT mode the actions come with the address translation", async () => {
  const nat = svc("nat", { targetPort: 8080, backends: ["s1", "s2"] });
  const fx = await Fixture.create("rules-nat", config([rule({ backend: "s2", dscp: 34, vlanPush: 20 })], [nat]));
  const out = (o: Seg) => toVip({ srcMac: SERVER_PORT_MAC, dstMac: s2.mac, dst: s2.ip, dport: 8080, ttl: 63, tos: 34 << 2, vlans: [tci(20)], ...o });
  fx.expectTx("client", toVip(), out({}), "SYN");
  fx.expectTx("client", toVip({ flags: ACK }), out({ flags: ACK }), "established");
  // the reply goes back untouched by the rule
  const back = { srcMac: s2.mac, dstMac: SERVER_PORT_MAC, src: s2.ip, dst: OTHER, sport: 8080, dport: 40000, flags: SYN | ACK };
  fx.expectTx("server", tcp4Frame(back), tcp4Frame({ ...back, srcMac: CLIENT_PORT_MAC, dstMac: ROUTER_MAC, src: VIP, sport: 80, ttl: 63 }), "reply");
});

test("flow rules: 802.1p priority is set on a tagged frame's tag; an untagged frame is left alone", async () => {
  const fx = await Fixture.create("rules-pcp", config([rule({ pcp: 5 })]));
  fx.expectTx("client", toVip({ vlans: [tci(100, 1)] }), toServer(s3.mac, { vlans: [tci(100, 5)] }), "802.1Q");
  fx.expectTx("client", toVip({ vlans: [tci(200, 0, 1), tci(100)], sport: 40001 }), toServer(s3.mac, { vlans: [tci(200, 5, 1), tci(100)], sport: 40001 }), "QinQ: the outer tag, DEI kept");
  fx.expectTx("client", toVip({ sport: 40002 }), toServer(s3.mac, { sport: 40002 }), "untagged");
});

test("flow rules: a VLAN tag is pushed (with the rule's priority), popped, or rewritten by pop and push", async () => {
  const push = await Fixture.create("rules-vlan-push", config([rule({ vlanPush: 300, pcp: 3 })]));
  push.expectTx("client", toVip(), toServer(s3.mac, { vlans: [tci(300, 3)] }), "push on untagged");
  push.expectTx("client", toVip({ flags: ACK }), toServer(s3.mac, { vlans: [tci(300, 3)], flags: ACK }), "push on established");
  const pop = await Fixture.create("rules-vlan-pop", config([rule({ vlanPop: true })]));
  pop.expectTx("client", toVip({ vlans: [tci(100)] }), toServer(s3.mac), "pop the only tag");
  pop.expectTx("client", toVip({ vlans: [tci(200), tci(100)], sport: 40001 }), toServer(s3.mac, { vlans: [tci(100)], sport: 40001 }), "pop the outer of two");
  pop.expectTx("client", toVip({ sport: 40002 }), toServer(s3.mac, { sport: 40002 }), "nothing to pop");
  const swap = await Fixture.create("rules-vlan-swap", config([rule({ vlanPop: true, vlanPush: 42 })]));
  swap.expectTx("client", toVip({ vlans: [tci(100, 7)] }), toServer(s3.mac, { vlans: [tci(42)] }), "rewrite");
});

test("flow rules: an MPLS label is pushed with the configured label, TC and TTL", async () => {
  const fx = await Fixture.create("rules-mpls-push", config([rule({ mplsPush: { label: 1000, tc: 5, ttl: 32 } })]));
  const pushed = { label: 1000, tc: 5, ttl: 32 };
  fx.expectTx("client", labelled(ROUTER_MAC, CLIENT_PORT_MAC, {}), labelled(SERVER_PORT_MAC, s3.mac, { mpls: [pushed] }), "on IPv4: the only label, bottom of stack");
  fx.expectTx("client", labelled(ROUTER_MAC, CLIENT_PORT_MAC, { vlans: [tci(7)] }, 40001), labelled(SERVER_PORT_MAC, s3.mac, { vlans: [tci(7)], mpls: [pushed] }, 40001), "after a VLAN tag");
  fx.expectTx("client", labelled(ROUTER_MAC, CLIENT_PORT_MAC, { mpls: [{ label: 16 }] }, 40002), labelled(SERVER_PORT_MAC, s3.mac, { mpls: [pushed, { label: 16 }] }, 40002), "on top of a stack");
  const d = await Fixture.create("rules-mpls-default", config([rule({ mplsPush: { label: 77 } })]));
  d.expectTx("client", labelled(ROUTER_MAC, CLIENT_PORT_MAC, {}), labelled(SERVER_PORT_MAC, s3.mac, { mpls: [{ label: 77, tc: 0, ttl: 64 }] }), "TC 0 and TTL 64 by default");
});

test("flow rules: the top MPLS label is popped; the last one gives the IP ethertype back (IPv4 and IPv6)", async () => {
  const fx = await Fixture.create("rules-mpls-pop", config([rule({ mplsPop: true })]));
  fx.expectTx("client", labelled(ROUTER_MAC, CLIENT_PORT_MAC, { mpls: [{ label: 16 }] }), labelled(SERVER_PORT_MAC, s3.mac, {}), "the only label");
  fx.expectTx("client", labelled(ROUTER_MAC, CLIENT_PORT_MAC, { mpls: [{ label: 16 }, { label: 17, tc: 2 }] }, 40001), labelled(SERVER_PORT_MAC, s3.mac, { mpls: [{ label: 17, tc: 2 }] }, 40001), "the top of two");
  fx.expectTx("client", labelled(ROUTER_MAC, CLIENT_PORT_MAC, {}, 40002), labelled(SERVER_PORT_MAC, s3.mac, {}, 40002), "nothing to pop");
  const web6 = svc("dsr", { name: "web6", vip: VIP6, backends: ["s1v6"] });
  const f6 = await Fixture.create("rules-mpls-pop6", config([rule({ vip: VIP6, backend: "s1v6", mplsPop: true })], [web6]));
  const packet = ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 6, payload: tcp({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: SYN }) });
  f6.expectTx("client", ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, mpls: [{ label: 99 }], payload: packet }),
    ethernet({ dst: s1.mac6, src: SERVER_PORT_MAC, etherType: 0x86dd, payload: packet }), "IPv6 under the label");
});

test("flow rules: a rule whose backend is down falls back to Maglev's pick, its actions still applied", async () => {
  const fx = await Fixture.create("rules-down", config([rule({ dscp: 8 })], [three], { s3: "down" }));
  const plain = await Fixture.create("rules-down-reference", config([], [three], { s3: "down" }));
  for (let sport = 2000; sport < 2020; sport++) {
    const want = plain.forward("client", toVip({ sport }));
    assert.notEqual(macOf(want.frame), hexMac(s3.mac));
    const mac = `${macOf(want.frame).match(/../g)!.join(":")}`;
    fx.expectTx("client", toVip({ sport }), toServer(mac, { sport, tos: 8 << 2 }), `flow ${sport}`);
  }
  // once the backend is back, new flows go to it again
  fx.apply(config([rule({ dscp: 8 })], [three]));
  fx.expectTx("client", toVip({ sport: 3000 }), toServer(s3.mac, { sport: 3000, tos: 8 << 2 }), "back up");
  fx.assertIdentity();
});

test("flow rules: rules are tried in order, the first that matches wins", async () => {
  const narrow = rule({ name: "narrow", source: "198.51.100.0/28", backend: "s2" });
  const broad = rule({ name: "broad", source: "198.51.100.0/24", port: 80, protocol: "tcp", backend: "s1" });
  const fx = await Fixture.create("rules-order", config([narrow, broad]));
  fx.expectTx("client", toVip(), toServer(s2.mac), "in both: the first");
  fx.expectTx("client", toVip({ src: "198.51.100.77" }), toServer(s1.mac, { src: "198.51.100.77" }), "in the second only");
  const reversed = await Fixture.create("rules-order-reversed", config([broad, narrow]));
  reversed.expectTx("client", toVip(), toServer(s1.mac), "the broad rule first now");
});

test("flow rules: protocol, port and VIP narrow a rule; a tunnel service's flows get the backend but no actions", async () => {
  const web = svc("dsr", { backends: ["s1", "s2"] });
  const ssh = svc("dsr", { name: "ssh", port: 22, backends: ["s1"] });
  const fx = await Fixture.create("rules-narrow", config([rule({ port: 22, backend: "s2", dscp: 1 })], [web, ssh]));
  fx.expectTx("client", toVip({ dport: 22 }), toServer(s2.mac, { dport: 22, tos: 4 }), "port 22 matches");
  const other = fx.forward("client", toVip({ dport: 80 }));
  assert.equal(other.frame[15], 0, "port 80 does not match: TOS untouched");

  const tun = svc("tunnel", { backends: ["s1", "s2"], tunnel: { source4: TUNNEL_SRC, source6: TUNNEL_SRC6 } });
  const t = await Fixture.create("rules-tunnel", config([rule({ backend: "s2", dscp: 46, vlanPush: 9 })], [tun]));
  const o = t.forward("client", toVip());
  assert.equal(macOf(o.frame), hexMac(s2.mac), "the rule's backend");
  assert.equal(hex(o.frame.subarray(12, 14)), "0800", "no tag pushed");
  assert.equal(o.frame[15], 0, "outer TOS copied from the untouched inner packet");
});

test("flow rules: the counters identity holds and the rule's flows count for the service and the backend", async () => {
  const fx = await Fixture.create("rules-counters", config([rule({ vlanPush: 5, mplsPush: { label: 3000 } })]));
  for (let sport = 5000; sport < 5010; sport++) {
    fx.forward("client", toVip({ sport }));
    fx.forward("client", toVip({ sport, flags: ACK }));
  }
  const c = fx.counters();
  assert.equal(c.backends.s3.newFlows, 10);
  assert.equal(c.backends.s3.packets, 20);
  assert.equal(c.services.web.packets, 20);
  assert.equal(c.ports.server.txPackets, 20);
  assert.equal(c.tx, 20);
  fx.assertIdentity();
});

test("flow rules: every frame the rule fixtures transmitted passes tshark's checksum and malformed checks", async () => {
  assert.ok(transmitted.length >= 100);
  assert.deepEqual(await tsharkProblems(transmitted), []);
});
