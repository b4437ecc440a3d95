// What is not a flow to a service: the appliance's own traffic (punted to the host), transit
// traffic (L2 to the other port, or dropped), and malformed frames (dropped with their reason).
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture, transmitted, tsharkProblems, hex } from "../lib/fixture.js";
import { labConfig, svc, ROUTER_MAC, CLIENT_PORT_MAC, CLIENT_PORT_IP, CLIENT_PORT_IP6, VIP, VIP6, CLIENT, CLIENT6 } from "../lib/lab-config.js";
import {
  tcp4Frame, tcp6Frame, udp4Frame, ethernet, ipv4, ipv6, tcp, udp, arp, icmpv4, icmpv6, fragmentExt, parseIPv6,
  SYN, ARP_REQUEST, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_ARP, tci,
} from "../../host/net/frame.js";

const BROADCAST = "ff:ff:ff:ff:ff:ff";
const arpFor = (tpa: string): Uint8Array => ethernet({ dst: BROADCAST, src: ROUTER_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: ROUTER_MAC, spa: "192.0.2.254", tpa }) });

test("punt: ARP requests for a VIP and for the appliance's own address go to the host", async () => {
  const fx = await Fixture.create("punt-arp", labConfig([svc("dsr")]));
  fx.expectPunt("client", arpFor(VIP), "arp");
  fx.expectPunt("client", arpFor(CLIENT_PORT_IP), "arp");
  const c = fx.counters();
  assert.equal(c.punt, 2);
  assert.equal(c.ports.client.punts, 2);
  fx.assertIdentity();
});

test("punt: a VIP whose service does not answer ARP is not punted; its ARP crosses at L2", async () => {
  const fx = await Fixture.create("arp-off", labConfig([svc("dsr", { arp: false })]));
  const req = arpFor(VIP);
  fx.expectTx("client", req, req, "unchanged to the other port");
});

test("punt: an IPv6 neighbour solicitation for the VIP goes to the host", async () => {
  const fx = await Fixture.create("punt-nd", labConfig([svc("dsr", { vip: VIP6, backends: ["s1v6"] })]));
  const target = parseIPv6(VIP6);
  const solicited = "ff02::1:ff00:100";
  const ns = ethernet({
    dst: "33:33:ff:00:01:00", src: ROUTER_MAC, etherType: ETHERTYPE_IPV6,
    payload: ipv6({ src: CLIENT6, dst: solicited, nextHeader: 58, hopLimit: 255, payload: icmpv6({ src: CLIENT6, dst: solicited, type: 135, payload: target }) }),
  });
  fx.expectPunt("client", ns, "nd");
});

test("punt: packets for the appliance's own addresses go to the host", async () => {
  const fx = await Fixture.create("punt-local", labConfig([svc("dsr")]));
  fx.expectPunt("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: CLIENT_PORT_IP, sport: 40000, dport: 22, flags: SYN }), "local");
  fx.expectPunt("client", tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: CLIENT_PORT_IP6, sport: 40000, dport: 22, flags: SYN }), "local");
});

test("punt: a UDP datagram to the discovery group or to the appliance at the discovery port goes to the host as discovery; other ports of the group do not", async () => {
  const secret = "00112233445566778899aabbccddeeff";
  const fx = await Fixture.create("punt-discovery", labConfig([svc("dsr")], { dataplane: { noVip: "drop" }, discovery: { keys: [{ id: 1, secret }] } }));
  const GROUP_MAC = "01:00:5e:7f:4d:4d";
  const to = (dst: string, dstMac: string, dport: number): Uint8Array =>
    udp4Frame({ srcMac: "02:00:00:00:02:11", dstMac, src: "10.0.2.11", dst, sport: 40000, dport, payload: new Uint8Array(40) });
  fx.expectPunt("server", to("239.255.77.77", GROUP_MAC, 7777), "discovery");
  fx.expectPunt("server", to("10.0.2.1", "02:00:00:00:02:01", 7777), "discovery");
  fx.expectDrop("server", to("239.255.77.77", GROUP_MAC, 7778), "no_vip");
  fx.expectPunt("server", to("10.0.2.1", "02:00:00:00:02:01", 7778), "local");
  const off = await Fixture.create("punt-discovery-off", labConfig([svc("dsr")], { dataplane: { noVip: "drop" } }));
  off.expectDrop("server", to("239.255.77.77", GROUP_MAC, 7777), "no_vip");
});

test("punt: a ping to a VIP goes to the host, which answers it", async () => {
  const fx = await Fixture.create("punt-icmp", labConfig([svc("dsr")]));
  const ping = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 1, payload: icmpv4({ type: 8, rest: 0x12340001, payload: new Uint8Array(16) }) }) });
  fx.expectPunt("client", ping, "icmp_vip");
});

test("drop: a VIP reached on a port no service listens on is dropped as no_service", async () => {
  const fx = await Fixture.create("no-service", labConfig([svc("dsr")]));
  fx.expectDrop("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 443, flags: SYN }), "no_service");
  fx.expectDrop("client", udp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, payload: new Uint8Array(4) }), "no_service");
});

test("transit: traffic for no VIP crosses unchanged to the other port, or is dropped when noVip is drop", async () => {
  const f = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: "02:00:00:00:09:09", src: CLIENT, dst: "198.51.100.7", sport: 40000, dport: 80, flags: SYN, vlans: [tci(5)] });
  const through = await Fixture.create("transit", labConfig([svc("dsr")]));
  const o = through.forward("client", f);
  assert.equal(o.port, "server");
  assert.equal(hex(o.frame), hex(f));
  const stop = await Fixture.create("transit-drop", labConfig([svc("dsr")], { dataplane: { noVip: "drop" } }));
  stop.expectDrop("client", f, "no_vip");
  stop.expectDrop("client", ethernet({ dst: BROADCAST, src: ROUTER_MAC, etherType: 0x88cc, payload: new Uint8Array(46) }), "no_vip");
});

test("drop: fragments addressed to a VIP are dropped, others cross at L2", async () => {
  const fx = await Fixture.create("fragments", labConfig([svc("dsr", { protocol: "udp" }), svc("dsr", { name: "web6", vip: VIP6, protocol: "udp", backends: ["s1v6"] })]));
  const data = udp({ src: CLIENT, dst: VIP, sport: 40000, dport: 80, payload: new Uint8Array(32) });
  const first = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 17, df: false, mf: true, id: 7, payload: data.subarray(0, 24) }) });
  const second = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 17, df: false, fragOffset: 24, id: 7, payload: data.subarray(24) }) });
  fx.expectDrop("client", first, "fragment_to_vip");
  fx.expectDrop("client", second, "fragment_to_vip");
  const data6 = udp({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, payload: new Uint8Array(32) });
  const frag6 = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 17, extensions: [fragmentExt(0, true, 9)], payload: data6.subarray(0, 24) }) });
  fx.expectDrop("client", frag6, "fragment_to_vip");
  const transit = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: "198.51.100.7", protocol: 17, df: false, mf: true, id: 8, payload: data.subarray(0, 24) }) });
  assert.equal(fx.forward("client", transit).port, "server");
});

test("ipv6: flows are found past hop-by-hop, routing and destination-options headers", async () => {
  const fx = await Fixture.create("v6-ext", labConfig([svc("dsr", { vip: VIP6, backends: ["s1v6"] })]));
  const seg = tcp({ src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: SYN });
  const f = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 6, extensions: [{ type: 0 }, { type: 43 }, { type: 60 }], payload: seg }) });
  assert.equal(fx.forward("client", f).port, "server");
});

/** Truncates a frame to n bytes. */
const cut = (f: Uint8Array, n: number): Uint8Array => f.slice(0, n);
const good = (): Uint8Array => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, flags: SYN });
const good6 = (): Uint8Array => tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: SYN });
const patch = (f: Uint8Array, at: number, ...bytes: number[]): Uint8Array => {
  const out = f.slice();
  out.set(bytes, at);
  return out;
};

const MALFORMED: [string, () => Uint8Array, string][] = [
  ["a frame shorter than an Ethernet header", () => cut(good(), 10), "trunc_ethernet"],
  ["a VLAN tag cut short", () => cut(good(), 15).fill(0x81, 12, 13).fill(0, 13, 14), "trunc_vlan"],
  ["three VLAN tags", () => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 1, dport: 80, vlans: [tci(1), tci(2), tci(3)] }), "too_many_vlans"],
  ["an MPLS stack with no bottom", () => ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: 0x8847, payload: Uint8Array.of(0, 1, 0, 64) }), "trunc_mpls"],
  ["an ARP packet for another hardware type", () => patch(arpFor(VIP), 15, 6), "bad_arp"],
  ["an IPv4 header cut short", () => cut(good(), 30), "trunc_ipv4"],
  ["an IPv4 header length below 20", () => patch(good(), 14, 0x44), "bad_ipv4_header"],
  ["an IPv4 total length beyond the frame", () => patch(good(), 16, 0x05, 0xdc), "trunc_ipv4"],
  ["an IPv4 header checksum that does not add up", () => patch(good(), 24, 0x12, 0x34), "bad_ipv4_checksum"],
  ["an IPv6 header cut short", () => cut(good6(), 40), "trunc_ipv6"],
  ["an IPv6 payload length beyond the frame", () => patch(good6(), 18, 0x05, 0xdc), "trunc_ipv6"],
  ["an IPv6 extension header running past the packet", () => ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 0, payload: Uint8Array.of(6, 9, 0, 0, 0, 0, 0, 0) }) }), "bad_ipv6_ext"],
  ["a TCP header cut short", () => ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 6, payload: new Uint8Array(12) }) }), "trunc_l4"],
  ["a TCP data offset below 5", () => {
    const f = good();
    f[14 + 20 + 12] = 0x40;
    return f;
  }, "bad_tcp_header"],
  ["a UDP length beyond the packet", () => {
    const f = udp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 1, dport: 80, payload: new Uint8Array(8) });
    return patch(f, 14 + 20 + 4, 0x01, 0x00);
  }, "bad_udp_length"],
  ["an ICMP header cut short", () => ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: CLIENT, dst: VIP, protocol: 1, payload: Uint8Array.of(8, 0, 0, 0) }) }), "trunc_l4"],
];

for (const [what, make, reason] of MALFORMED) {
  test(`malformed: ${what} is dropped as ${reason}`, async () => {
    const fx = await Fixture.create(`malformed ${reason}`, labConfig([svc("dsr"), svc("dsr", { name: "web6", vip: VIP6, backends: ["s1v6"] })]));
    fx.expectDrop("client", make(), reason);
    fx.assertIdentity();
  });
}

test("drop: a frame on a port that is not configured is dropped as bad_port", async () => {
  const fx = await Fixture.create("bad-port", labConfig([svc("dsr")]));
  assert.ok(fx.engine.rxPush(9, good()));
  fx.engine.runAll();
  const reasons: number[] = [];
  fx.engine.drainDropped((e) => void reasons.push(e.reason));
  assert.equal(reasons.length, 1);
  assert.deepEqual(fx.counters().drops, { bad_port: 1 });
  fx.assertIdentity();
});

test("punt and drop: every frame these fixtures transmitted passes tshark's checksum and malformed checks", async () => {
  assert.ok(transmitted.length >= 4);
  assert.deepEqual(await tsharkProblems(transmitted), []);
});



test("punt: a neighbour solicitation sent to the VIP itself (a router's reachability probe) goes to the host", async () => {
  const fx = await Fixture.create("punt-nd-unicast", labConfig([svc("dsr", { vip: VIP6, backends: ["s1v6"] })]));
  const ns = ethernet({
    dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6,
    payload: ipv6({ src: CLIENT6, dst: VIP6, nextHeader: 58, hopLimit: 255, payload: icmpv6({ src: CLIENT6, dst: VIP6, type: 135, payload: parseIPv6(VIP6) }) }),
  });
  fx.expectPunt("client", ns, "nd");
});
