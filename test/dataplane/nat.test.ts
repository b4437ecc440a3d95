// NAT fixtures: destination address and port rewritten toward the server with incremental checksum
// updates; replies found by flow lookup and translated back to the VIP. Expected frames are built
// from scratch by the frame builder, so every checksum is checked against a full computation.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Fixture, transmitted, tsharkProblems } from "../lib/fixture.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, VIP6, CLIENT, CLIENT6 } from "../lib/lab-config.js";
import { tcp4Frame, tcp6Frame, udp4Frame, udp6Frame, ethernet, ipv4, udp, SYN, ACK, ETHERTYPE_IPV4, tci } from "../../host/net/frame.js";

const s1 = SERVERS[0];
const payload = new TextEncoder().encode("GET /index.html HTTP/1.1\r\nHost: example\r\n\r\n");

test("nat: toward the server the destination becomes the backend's address and port, TTL one less", async () => {
  const fx = await Fixture.create("nat-v4-tcp", labConfig([svc("nat", { targetPort: 8080 })]));
  const seg = (o = {}) => ({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, ttl: 60, seq: 1, ack: 1, payload, ...o });
  const toServer = (o = {}) => ({ ...seg(o), srcMac: SERVER_PORT_MAC, dstMac: s1.mac, dst: s1.ip, dport: 8080, ttl: 59 });
  fx.expectTx("client", tcp4Frame(seg({ flags: SYN })), tcp4Frame(toServer({ flags: SYN })), "SYN");
  fx.expectTx("client", tcp4Frame(seg({ flags: ACK })), tcp4Frame(toServer({ flags: ACK })), "data");
  const c = fx.counters();
  assert.equal(c.flows.ipv4, 2, "a forward and a return entry");
  fx.assertIdentity();
});

test("nat: the server's reply is translated back to the VIP and leaves toward the client's gateway", async () => {
  const fx = await Fixture.create("nat-v4-return", labConfig([svc("nat", { targetPort: 8080 })]));
  fx.forward("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, flags: SYN }));
  const reply = (o = {}) => ({ srcMac: s1.mac, dstMac: SERVER_PORT_MAC, src: s1.ip, dst: CLIENT, sport: 8080, dport: 40000, flags: SYN | ACK, ttl: 64, payload, ...o });
  const toClient = (o = {}) => ({ ...reply(o), srcMac: CLIENT_PORT_MAC, dstMac: ROUTER_MAC, src: VIP, sport: 80, ttl: 63 });
  fx.expectTx("server", tcp4Frame(reply()), tcp4Frame(toClient()), "SYN-ACK");
  fx.expectTx("server", tcp4Frame(reply({ flags: ACK, seq: 99 })), tcp4Frame(toClient({ flags: ACK, seq: 99 })), "data back");
  const c = fx.counters();
  assert.equal(c.ports.client.txPackets, 2);
  assert.equal(c.services.web.packets, 3, "both directions count for the service");
  fx.assertIdentity();
});

test("nat: a reply from a server to a client it has no flow with is not translated", async () => {
  const fx = await Fixture.create("nat-unknown-reply", labConfig([svc("nat")], { dataplane: { noVip: "drop" } }));
  fx.expectDrop("server", tcp4Frame({ srcMac: s1.mac, dstMac: SERVER_PORT_MAC, src: s1.ip, dst: CLIENT, sport: 80, dport: 40000, flags: ACK }), "no_vip");
});

test("nat: IPv6 UDP both ways, with the port kept when no target port is set", async () => {
  const fx = await Fixture.create("nat-v6-udp", labConfig([svc("nat", { name: "dns6", vip: VIP6, protocol: "udp", port: 5301, backends: ["s2v6"] })]));
  const s2 = SERVERS[1];
  const q = { srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 40053, dport: 5301, payload: new Uint8Array(33).fill(7), ttl: 50 };
  fx.expectTx("client", udp6Frame(q), udp6Frame({ ...q, srcMac: SERVER_PORT_MAC, dstMac: s2.mac6, dst: s2.ip6, ttl: 49 }), "query");
  const a = { srcMac: s2.mac6, dstMac: SERVER_PORT_MAC, src: s2.ip6, dst: CLIENT6, sport: 5301, dport: 40053, payload: new Uint8Array(80).fill(9), ttl: 64 };
  fx.expectTx("server", udp6Frame(a), udp6Frame({ ...a, srcMac: CLIENT_PORT_MAC, dstMac: ROUTER_MAC, src: VIP6, ttl: 63 }), "answer");
  fx.assertIdentity();
});

test("nat: an IPv4 UDP datagram without a checksum stays without one", async () => {
  const fx = await Fixture.create("nat-udp-nocsum", labConfig([svc("nat", { name: "dns", protocol: "udp", port: 5301 })]));
  const frame = (src: string, dst: string, srcMac: string, dstMac: string, ttl: number) => ethernet({
    dst: dstMac, src: srcMac, etherType: ETHERTYPE_IPV4,
    payload: ipv4({ src, dst, protocol: 17, ttl, payload: udp({ src, dst, sport: 40053, dport: 5301, payload: new Uint8Array(20), checksum: false }) }),
  });
  fx.expectTx("client", frame(CLIENT, VIP, ROUTER_MAC, CLIENT_PORT_MAC, 64), frame(CLIENT, s1.ip, SERVER_PORT_MAC, s1.mac, 63));
});

test("nat: a backend's own port overrides the service's target port; VLAN tags are kept", async () => {
  const config = labConfig([svc("nat", { targetPort: 8080 })]);
  config.backends![0].natPort = 9090;
  const fx = await Fixture.create("nat-backend-port", config);
  const seg = { srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 41000, dport: 80, flags: SYN, vlans: [tci(42)] };
  fx.expectTx("client", tcp4Frame(seg), tcp4Frame({ ...seg, srcMac: SERVER_PORT_MAC, dstMac: s1.mac, dst: s1.ip, dport: 9090, ttl: 63 }));
  const back = { srcMac: s1.mac, dstMac: SERVER_PORT_MAC, src: s1.ip, dst: CLIENT, sport: 9090, dport: 41000, flags: ACK, vlans: [tci(42)] };
  fx.expectTx("server", tcp4Frame(back), tcp4Frame({ ...back, srcMac: CLIENT_PORT_MAC, dstMac: ROUTER_MAC, src: VIP, sport: 80, ttl: 63 }));
});

test("nat: an every-port service keeps the client's destination port both ways", async () => {
  const fx = await Fixture.create("nat-any-port", labConfig([svc("nat", { port: 0 })]));
  const seg = { srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 42000, dport: 2222, flags: SYN };
  fx.expectTx("client", tcp4Frame(seg), tcp4Frame({ ...seg, srcMac: SERVER_PORT_MAC, dstMac: s1.mac, dst: s1.ip, ttl: 63 }));
  const back = { srcMac: s1.mac, dstMac: SERVER_PORT_MAC, src: s1.ip, dst: CLIENT, sport: 2222, dport: 42000, flags: ACK };
  fx.expectTx("server", tcp4Frame(back), tcp4Frame({ ...back, srcMac: CLIENT_PORT_MAC, dstMac: ROUTER_MAC, src: VIP, ttl: 63 }));
});

test("nat: a packet whose TTL would run out is dropped as ttl_exceeded", async () => {
  const fx = await Fixture.create("nat-ttl", labConfig([svc("nat")]));
  fx.expectDrop("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 43000, dport: 80, flags: SYN, ttl: 1 }), "ttl_exceeded");
  fx.assertIdentity();
});

test("nat: replies cannot leave when the client port has no gateway", async () => {
  const config = labConfig([svc("nat")]);
  delete config.ports[0].gatewayMac;
  const fx = await Fixture.create("nat-no-gw", config);
  fx.forward("client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 44000, dport: 80, flags: SYN }));
  fx.expectDrop("server", tcp4Frame({ srcMac: s1.mac, dstMac: SERVER_PORT_MAC, src: s1.ip, dst: CLIENT, sport: 80, dport: 44000, flags: ACK }), "no_neighbor");
});

test("nat: IPv6 TCP toward the server", async () => {
  const fx = await Fixture.create("nat-v6-tcp", labConfig([svc("nat", { vip: VIP6, backends: ["s3v6"] })]));
  const s3 = SERVERS[2];
  const seg = { srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 45000, dport: 80, flags: SYN };
  fx.expectTx("client", tcp6Frame(seg), tcp6Frame({ ...seg, srcMac: SERVER_PORT_MAC, dstMac: s3.mac6, dst: s3.ip6, ttl: 63 }));
});

test("nat: every frame the NAT fixtures transmitted passes tshark's checksum and malformed checks", async () => {
  assert.ok(transmitted.length >= 12);
  assert.deepEqual(await tsharkProblems(transmitted), []);
});
