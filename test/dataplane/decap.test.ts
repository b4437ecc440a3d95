// IP-in-IP termination at a site (CFGF_DECAP): a system appliance's tunnel to one of our port
// addresses is opened and its inner packet served exactly as if it had come to the VIP directly.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Fixture, transmitted, tsharkProblems, hex } from "../lib/fixture.js";
import { tsharkFields } from "../lib/tshark.js";
import {
  labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, VIP6, CLIENT, CLIENT6,
  CLIENT_PORT_IP, CLIENT_PORT_IP6, TUNNEL_SRC,
} from "../lib/lab-config.js";
import {
  tcp4Frame, tcp6Frame, udp4Frame, ethernet, ipv4, ipv6, concat, tci, SYN, ACK, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
  IPPROTO_DSTOPTS, formatIPv4,
} from "../../host/net/frame.js";
import type { ConfigInput, LevelsConfig, ServiceInput } from "../../host/config/schema.js";
import { levelsConfig as levels } from "../lib/levels-fixture.js";
import { writePcap } from "../../tools/lib/pcap.js";
import { validateOrThrow } from "../../host/config/validate.js";
import { EnginePool } from "../../host/engine/pool.js";

const s1 = SERVERS[0];
const SYSTEM = "198.51.100.7"; // the system appliance: the tunnels' outer source
const SYSTEM6 = "2001:db8:5::7";

/** A fixture whose config has a levels section (null: none). */
async function site(name: string, services: ServiceInput[], l: LevelsConfig | null = levels(), extra: Partial<ConfigInput> = {}): Promise<Fixture> {
  const fx = await Fixture.create(name, labConfig(services, extra));
  if (l) fx.engine.apply({ ...fx.engine.config, levels: l });
  return fx;
}

const toVip = (o: Partial<Parameters<typeof tcp4Frame>[0]> = {}): Uint8Array =>
  tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, flags: SYN, ...o });
const toVip6 = (o: Partial<Parameters<typeof tcp6Frame>[0]> = {}): Uint8Array =>
  tcp6Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT6, dst: VIP6, sport: 40000, dport: 80, flags: SYN, ...o });
const ipOf = (frame: Uint8Array, l2 = 14): Uint8Array => frame.subarray(l2);

/** The packet inside an IPv4 tunnel (protocol 4 or 41 by the inner version) to dst, as a frame to our client port. */
function in4(inner: Uint8Array, o: { dst?: string; vlans?: number[]; df?: boolean; mf?: boolean; protocol?: number } = {}): Uint8Array {
  const protocol = o.protocol ?? (inner[0] >> 4 === 6 ? 41 : 4);
  return ethernet({
    dst: CLIENT_PORT_MAC, src: ROUTER_MAC, vlans: o.vlans, etherType: ETHERTYPE_IPV4,
    payload: ipv4({ src: SYSTEM, dst: o.dst ?? CLIENT_PORT_IP, protocol, df: o.df, mf: o.mf, payload: inner }),
  });
}

function in6(inner: Uint8Array, o: { dst?: string; extensions?: { type: number }[] } = {}): Uint8Array {
  return ethernet({
    dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6,
    payload: ipv6({ src: SYSTEM6, dst: o.dst ?? CLIENT_PORT_IP6, nextHeader: inner[0] >> 4 === 6 ? 41 : 4, extensions: o.extensions, payload: inner }),
  });
}

/** The inner packet as DSR sends it: behind the backend's MAC and our server port's. */
const dsrOut = (inner: Uint8Array, mac: string, vlans?: number[]): Uint8Array =>
  ethernet({ dst: mac, src: SERVER_PORT_MAC, vlans, etherType: inner[0] >> 4 === 6 ? ETHERTYPE_IPV6 : ETHERTYPE_IPV4, payload: inner });

test("decap: IPv4 in IPv4 to our port address leaves DSR'd to the backend with the inner packet byte-identical", async () => {
  const fx = await site("decap-44", [svc("dsr")]);
  const inner = ipOf(toVip());
  fx.expectTx("client", in4(inner), dsrOut(inner, s1.mac), "tunnelled SYN");
  const data = ipOf(toVip({ flags: ACK, payload: new TextEncoder().encode("GET / HTTP/1.1\r\n\r\n") }));
  fx.expectTx("client", in4(data), dsrOut(data, s1.mac), "tunnelled segment of the same flow");
  fx.expectTx("client", toVip({ flags: ACK }), dsrOut(ipOf(toVip({ flags: ACK })), s1.mac), "the same flow arriving directly");
  const c = fx.counters();
  assert.equal(c.levels.decapsulated, 2);
  assert.equal(c.flows.ipv4, 1, "one flow: the inner packet's, whichever way it came");
  assert.equal(c.services.web.newFlows, 1);
  assert.equal(c.services.web.packets, 3);
  fx.assertIdentity();
});

test("decap: IPv6 in IPv4 (protocol 41), IPv4 in IPv6 and IPv6 in IPv6 past an outer extension header", async () => {
  const fx = await site("decap-mixed", [svc("dsr"), svc("dsr", { name: "web6", vip: VIP6, backends: ["s1v6"] })]);
  const v6 = ipOf(toVip6());
  fx.expectTx("client", in4(v6), dsrOut(v6, s1.mac6), "IPv6 in IPv4");
  const v4 = ipOf(toVip({ sport: 40001 }));
  fx.expectTx("client", in6(v4), dsrOut(v4, s1.mac), "IPv4 in IPv6");
  const v66 = ipOf(toVip6({ sport: 40002 }));
  fx.expectTx("client", in6(v66, { extensions: [{ type: IPPROTO_DSTOPTS }] }), dsrOut(v66, s1.mac6), "IPv6 in IPv6, destination options first");
  assert.equal(fx.counters().levels.decapsulated, 3);
});

test("decap: a VLAN-tagged (and a QinQ) outer frame keeps its tags; the ethertype becomes the inner family's", async () => {
  const fx = await site("decap-vlan", [svc("dsr"), svc("dsr", { name: "web6", vip: VIP6, backends: ["s1v6"] })]);
  const inner = ipOf(toVip());
  fx.expectTx("client", in4(inner, { vlans: [tci(100, 5)] }), dsrOut(inner, s1.mac, [tci(100, 5)]), "802.1Q");
  const v6 = ipOf(toVip6({ sport: 40003 }));
  fx.expectTx("client", in4(v6, { vlans: [tci(200), tci(100)] }), dsrOut(v6, s1.mac6, [tci(200), tci(100)]), "QinQ, IPv6 inside");
});

test("decap: bytes after the outer packet (Ethernet padding, a trailer) do not follow the inner one", async () => {
  const fx = await site("decap-padding", [svc("dsr", { protocol: "udp", port: 53 })]);
  const inner = ipOf(udp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 5353, dport: 53 }));
  const padded = concat([in4(inner), new Uint8Array(6).fill(0xee)]);
  fx.expectTx("client", padded, dsrOut(inner, s1.mac), "only the inner packet leaves");
});

test("decap: a tunnelled packet leaves exactly as the same packet sent directly would, NAT and tunnel modes too", async () => {
  const tunnel = { source4: TUNNEL_SRC };
  for (const [mode, o] of [["nat", { targetPort: 8080 }], ["tunnel", { tunnel }], ["dsr", {}]] as const) {
    const direct = await site(`decap-like-direct-${mode}`, [svc(mode, o)], null);
    const tunnelled = await site(`decap-like-${mode}`, [svc(mode, o)]);
    for (const flags of [SYN, ACK]) {
      const f = toVip({ flags, payload: new Uint8Array(100).fill(0x41) });
      const want = direct.forward("client", f);
      const got = tunnelled.forward("client", in4(ipOf(f)));
      assert.equal(got.port, want.port, `${mode}: egress port`);
      assert.equal(hex(got.frame), hex(want.frame), `${mode}: frame bytes`);
    }
  }
});

test("decap: the frame's start moved later in its buffer, and a VLAN push or an encapsulation still finds its headroom", async () => {
  // tunnel mode re-encapsulates the inner packet toward the server (20 bytes in front) after the
  // outer header (20 bytes) was taken off: both happen in the one buffer of the frame
  const fx = await site("decap-reencap", [svc("tunnel", { tunnel: { source4: TUNNEL_SRC } })]);
  for (let i = 0; i < 300; i++) { // more frames than buffers: every buffer goes back where it belongs
    const inner = ipOf(toVip({ sport: 41000 + i }));
    const o = fx.forward("client", in4(inner));
    assert.equal(hex(o.frame.subarray(34)), hex(inner), "the inner packet behind the server tunnel's header");
  }
  assert.equal(fx.engine.freeBuffers, fx.engine.plan.bufferCount, "every buffer came back");
  const direct = await site("decap-push", [svc("dsr")], levels(), { flowRules: [{ name: "tag", vip: VIP, backend: "s1", vlanPush: 300 }] });
  const inner = ipOf(toVip());
  direct.expectTx("client", in4(inner), dsrOut(inner, s1.mac, [tci(300)]), "a pushed tag after the outer header came off");
});

test("decap: IP-in-IP to an address that is not ours is not opened", async () => {
  const fx = await site("decap-not-ours", [svc("dsr")]);
  const transit = in4(ipOf(toVip()), { dst: "203.0.113.9" });
  const o = fx.forward("client", transit); // no VIP: through the box at L2, as any transit packet
  assert.deepEqual([o.port, hex(o.frame)], ["server", hex(transit)], "left whole, outer header and all");
  fx.expectDrop("client", in4(ipOf(toVip()), { dst: VIP }), "no_service"); // a VIP is not a tunnel endpoint
  assert.equal(fx.counters().levels.decapsulated, 0);
});

test("decap: without decapsulate, or at a system appliance, IP-in-IP to our address is punted as today", async () => {
  for (const [name, l] of [["none", null], ["off", levels({ decapsulate: false })], ["system", levels({ role: "system" })]] as const) {
    const fx = await site(`decap-${name}`, [svc("dsr")], l);
    const outer = in4(ipOf(toVip()));
    const o = fx.send("client", outer);
    assert.equal(o.fate, "punt", name);
    assert.ok(o.fate === "punt" && o.reason === "local" && hex(o.frame) === hex(outer), `${name}: punted whole, as local`);
    assert.equal(fx.counters().levels.decapsulated, 0);
  }
});

test("decap: a fragment of a tunnel, or a tunnel under MPLS, is not opened", async () => {
  const fx = await site("decap-fragment", [svc("dsr")]);
  fx.expectPunt("client", in4(ipOf(toVip()), { df: false, mf: true }), "local");
  const mpls = ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, mpls: [{ label: 1000 }], payload: ipv4({ src: SYSTEM, dst: CLIENT_PORT_IP, protocol: 4, payload: ipOf(toVip()) }) });
  fx.expectPunt("client", mpls, "local");
  assert.equal(fx.counters().levels.decapsulated, 0);
});

test("decap: a tunnel inside the tunnel is not opened again: the inner tunnel to our address is punted", async () => {
  const fx = await site("decap-twice", [svc("dsr")]);
  const once = in4(ipOf(toVip())); // a tunnel to us...
  const twice = in4(ipOf(once)); // ...inside a tunnel to us
  const o = fx.send("client", twice);
  assert.ok(o.fate === "punt" && o.reason === "local", JSON.stringify(o));
  assert.equal(hex(o.fate === "punt" ? o.frame : new Uint8Array()), hex(once), "the host gets the frame opened once");
  assert.equal(fx.counters().levels.decapsulated, 1);
});

test("decap: a truncated or garbage inner packet is dropped with the parser's reason and counted", async () => {
  const fx = await site("decap-bad", [svc("dsr")]);
  const inner = ipOf(toVip());
  fx.expectDrop("client", in4(inner.subarray(0, 12), { protocol: 4 }), "trunc_ipv4");
  fx.expectDrop("client", in4(ipOf(toVip6()), { protocol: 4 }), "bad_ipv4_header"); // says IPv4, is IPv6
  const badSum = inner.slice();
  badSum[10] ^= 0xff;
  fx.expectDrop("client", in4(badSum), "bad_ipv4_checksum");
  const tcpSeg = inner.subarray(20);
  const long = ipv4({ src: CLIENT, dst: VIP, protocol: 6, payload: concat([tcpSeg, new Uint8Array(8)]) }).subarray(0, inner.length);
  // (its total length claims 8 bytes more than the outer packet carries; its checksum is right)
  fx.expectDrop("client", in4(long), "trunc_ipv4");
  fx.expectDrop("client", in4(ipOf(toVip6()).subarray(0, 30), { protocol: 41 }), "trunc_ipv6");
  fx.expectDrop("client", in4(inner.subarray(0, 30)), "trunc_ipv4");
  const c = fx.counters();
  assert.equal(c.levels.decapsulated, 6, "each was opened");
  assert.deepEqual(c.drops, { trunc_ipv4: 3, bad_ipv4_header: 1, bad_ipv4_checksum: 1, trunc_ipv6: 1 });
  fx.assertIdentity();
});

test("decap: a pool of three engines spreads tunnelled packets by their inner client, so NAT replies meet their flow", async () => {
  const tx: Uint8Array[] = [];
  const config = { ...validateOrThrow(labConfig([svc("nat", { backends: ["s1", "s2", "s3"], targetPort: 8080 })])), levels: levels() };
  const pool = await EnginePool.create(config, 3, { tx: (_p, f) => void tx.push(f.slice()), punt: () => {} });
  try {
    const n = 120;
    // every request comes from the one system appliance: hashed by the outer source, all would meet one engine
    pool.dispatch(0, Array.from({ length: n }, (_, i) => in4(ipOf(toVip({ src: `198.51.${i % 50}.${1 + i}`, sport: 20000 + i })))));
    await until("every tunnelled request forwarded", () => tx.length === n);
    const replies = tx.map((frame) => {
      const be = SERVERS.find((s) => s.ip === formatIPv4(frame, 30))!;
      return tcp4Frame({ srcMac: be.mac, dstMac: SERVER_PORT_MAC, src: be.ip, dst: formatIPv4(frame, 26), sport: 8080, dport: (frame[34] << 8) | frame[35], flags: SYN | ACK });
    });
    tx.length = 0;
    pool.dispatch(1, replies);
    await until("every reply translated back", () => tx.length === n);
    assert.ok(tx.every((f) => formatIPv4(f, 26) === VIP), "every reply left from the VIP: it met its NAT entry");
    assert.ok(pool.engines.every((e) => e.counters().levels.decapsulated > 0), "every engine opened a share of the tunnels");
  } finally {
    await pool.stop();
  }
});

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

test("decap: tshark reads what went in as IP-in-IP and what came out as the plain client packet", async () => {
  const fx = await site("decap-tshark", [svc("dsr")]);
  const inner = ipOf(toVip({ sport: 40100, flags: ACK, payload: new Uint8Array(64).fill(0x42) }));
  const input = in4(inner, { vlans: [tci(42)] });
  const out = fx.forward("client", input).frame;
  const dir = await mkdtemp(join(tmpdir(), "fsw-decap-"));
  try {
    const path = join(dir, "decap.pcap");
    await writeFile(path, writePcap([{ tsUs: 1_000_000, data: input }, { tsUs: 1_000_001, data: out }]));
    const rows = await tsharkFields(path, ["vlan.id", "ip.proto", "ip.src", "ip.dst", "tcp.srcport", "tcp.checksum.status", "eth.dst"]);
    assert.deepEqual(rows[0].slice(0, 4), ["42", "4,6", `${SYSTEM},${CLIENT}`, `${CLIENT_PORT_IP},${VIP}`], "in: IPv4 in IPv4, tagged");
    assert.deepEqual(rows[1], ["42", "6", CLIENT, VIP, "40100", "1", s1.mac], "out: the client's TCP segment to the VIP, tag kept, checksum good");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("decap: every frame the decap fixtures transmitted passes tshark's checksum and malformed checks", async () => {
  assert.ok(transmitted.length >= 20);
  assert.deepEqual(await tsharkProblems(transmitted), []);
});
