// Tunnel fixtures: IP-in-IP and GUE toward the backend, and the ICMP answer for packets that
// would no longer fit the link once encapsulated.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture, transmitted, tsharkProblems, flowKey4, flowKey6 } from "../lib/fixture.js";
import {
  labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, VIP6, CLIENT, CLIENT6,
  TUNNEL_SRC, TUNNEL_SRC6,
} from "../lib/lab-config.js";
import {
  tcp4Frame, tcp6Frame, ethernet, ipv4, ipv6, udp, icmpv4, icmpv6, gueHeader, concat, parseIP, tci,
  SYN, ACK, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
} from "../../host/net/frame.js";

const s1 = SERVERS[0];
const tunnel = { source4: TUNNEL_SRC, source6: TUNNEL_SRC6 };
const ipOf = (frame: Uint8Array, l2 = 14): Uint8Array => frame.subarray(l2);

test("tunnel ipip: an IPv4 packet leaves inside an IPv4 header to the backend (protocol 4), TOS copied", async () => {
  const fx = await Fixture.create("ipip-44", labConfig([svc("tunnel", { tunnel })]));
  const f = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, flags: SYN, tos: 0x28 });
  const expected = ethernet({
    dst: s1.mac, src: SERVER_PORT_MAC, etherType: ETHERTYPE_IPV4,
    payload: ipv4({ src: TUNNEL_SRC, dst: s1.ip, protocol: 4, tos: 0x28, payload: ipOf(f) }),
  });
  fx.expectTx("client", f, expected);
  fx.assertIdentity();
});

test("tunnel ipip: IPv6 in IPv6 (next header 41), with the flow's hash as flow label", async () => {
  const fx = await Fixture.create("ipip-66", labConfig([svc("tunnel", { vip: VIP6, backends: ["s1v6"], tunnel })]));
  const f = tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 40001, dport: 80, flags: SYN });
  const h = fx.engine.hashOf(flowKey6(parseIP(CLIENT6).bytes, parseIP(VIP6).bytes, 40001, 80, 6), 7);
  const expected = ethernet({
    dst: s1.mac6, src: SERVER_PORT_MAC, etherType: ETHERTYPE_IPV6,
    payload: ipv6({ src: TUNNEL_SRC6, dst: s1.ip6, nextHeader: 41, flowLabel: h & 0xfffff, payload: ipOf(f) }),
  });
  fx.expectTx("client", f, expected);
});

test("tunnel gue: an IPv4 packet in GUE over IPv6, with a UDP checksum and an entropy source port", async () => {
  const fx = await Fixture.create("gue-4in6", labConfig([svc("tunnel", { backends: ["s2v6"], tunnel: { ...tunnel, encap: "gue", guePort: 6080 } })]));
  const s2 = SERVERS[1];
  const t = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40002, dport: 80, flags: SYN, vlans: [tci(7)] });
  const h = fx.engine.hashOf(flowKey4(parseIP(CLIENT).bytes, parseIP(VIP).bytes, 40002, 80, 6), 7);
  const inner = ipOf(t, 18);
  const expected = ethernet({
    dst: s2.mac6, src: SERVER_PORT_MAC, vlans: [tci(7)], etherType: ETHERTYPE_IPV6,
    payload: ipv6({
      src: TUNNEL_SRC6, dst: s2.ip6, nextHeader: 17, flowLabel: h & 0xfffff,
      payload: udp({ src: TUNNEL_SRC6, dst: s2.ip6, sport: 0xc000 | (h & 0x3fff), dport: 6080, payload: concat([gueHeader(4), inner]) }),
    }),
  });
  fx.expectTx("client", t, expected);
});

test("tunnel gue: IPv6 in GUE over IPv4 leaves the outer UDP checksum zero", async () => {
  const fx = await Fixture.create("gue-6in4", labConfig([svc("tunnel", { vip: VIP6, backends: ["s1"], tunnel: { ...tunnel, encap: "gue" } })]));
  const f = tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 40003, dport: 80, flags: SYN });
  const h = fx.engine.hashOf(flowKey6(parseIP(CLIENT6).bytes, parseIP(VIP6).bytes, 40003, 80, 6), 7);
  const expected = ethernet({
    dst: s1.mac, src: SERVER_PORT_MAC, etherType: ETHERTYPE_IPV4,
    payload: ipv4({
      src: TUNNEL_SRC, dst: s1.ip, protocol: 17,
      payload: udp({ src: TUNNEL_SRC, dst: s1.ip, sport: 0xc000 | (h & 0x3fff), dport: 6080, checksum: false, payload: concat([gueHeader(41), ipOf(f)]) }),
    }),
  });
  fx.expectTx("client", f, expected);
});

test("tunnel: an IPv4 packet that no longer fits once encapsulated, DF set, is answered with fragmentation-needed", async () => {
  const fx = await Fixture.create("ipip-too-big-4", labConfig([svc("tunnel", { tunnel })]));
  fx.forward("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40004, dport: 80, flags: SYN }));
  const big = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40004, dport: 80, flags: ACK, payload: new Uint8Array(1460).fill(0x61) });
  const expected = ethernet({
    dst: ROUTER_MAC, src: CLIENT_PORT_MAC, etherType: ETHERTYPE_IPV4,
    payload: ipv4({ src: VIP, dst: CLIENT, protocol: 1, df: false, payload: icmpv4({ type: 3, code: 4, rest: 1480, payload: ipOf(big).subarray(0, 548) }) }),
  });
  fx.expectTx("client", big, expected, "the ICMP error goes back to the client with MTU 1500 - 20");
  assert.equal(fx.counters().icmpSent, 1);
  fx.assertIdentity();
});

test("tunnel: an IPv6 packet too big for the tunnel is answered with packet-too-big", async () => {
  const fx = await Fixture.create("ipip-too-big-6", labConfig([svc("tunnel", { vip: VIP6, backends: ["s1v6"], tunnel })]));
  const big = tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 40005, dport: 80, flags: SYN, payload: new Uint8Array(1440).fill(0x62) });
  const expected = ethernet({
    dst: ROUTER_MAC, src: CLIENT_PORT_MAC, etherType: ETHERTYPE_IPV6,
    payload: ipv6({ src: VIP6, dst: CLIENT6, nextHeader: 58, payload: icmpv6({ src: VIP6, dst: CLIENT6, type: 2, code: 0, rest: 1460, payload: ipOf(big).subarray(0, 1232) }) }),
  });
  fx.expectTx("client", big, expected);
});

test("tunnel: an oversize IPv4 packet without DF is dropped as mtu_exceeded", async () => {
  const fx = await Fixture.create("ipip-too-big-nodf", labConfig([svc("tunnel", { tunnel })]));
  const big = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40006, dport: 80, flags: SYN, df: false, payload: new Uint8Array(1460) });
  fx.expectDrop("client", big, "mtu_exceeded");
  fx.assertIdentity();
});

test("tunnel: a packet that fits exactly is encapsulated", async () => {
  const fx = await Fixture.create("ipip-fits", labConfig([svc("tunnel", { tunnel })]));
  const f = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40007, dport: 80, flags: SYN, payload: new Uint8Array(1440) });
  const o = fx.forward("client", f);
  assert.equal(o.port, "server");
  assert.equal(o.frame.length, 14 + 1500);
});

test("tunnel: every frame the tunnel fixtures transmitted passes tshark's checksum and malformed checks", async () => {
  assert.ok(transmitted.length >= 7);
  assert.deepEqual(await tsharkProblems(transmitted), []);
});
