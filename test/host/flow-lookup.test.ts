// The host's lookup of one flow in an engine's tables (host/engine/flow-lookup.ts): the engine's
// hash, buckets and cuckoo search ported to the host, and the key the parser builds for a frame.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Engine } from "../../host/engine/engine.js";
import { findFlow, flowKeyOf, hashWords } from "../../host/engine/flow-lookup.js";
import { readFlows } from "../../host/engine/flows.js";
import { validateOrThrow } from "../../host/config/validate.js";
import type { Config } from "../../host/config/schema.js";
import { exportEvent, flowOf } from "../../host/ha/flow-sync.js";
import { labConfig, svc, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, VIP, VIP6 } from "../lib/lab-config.js";
import { flowKey4, flowKey6, hex } from "../lib/fixture.js";
import {
  tcp4Frame, tcp6Frame, udp4Frame, udp6Frame, ethernet, ipv4, ipv6, tcp, icmpv4, arp, tci, parseIP, fragmentExt,
  SYN, ACK, ETHERTYPE_IPV4, ETHERTYPE_IPV6, ETHERTYPE_ARP, ARP_REQUEST, IPPROTO_DSTOPTS, IPPROTO_HOPOPTS,
} from "../../host/net/frame.js";
import * as L from "../../assembly/layout.js";

const B4 = ["s1", "s2", "s3"];
const B6 = ["s1v6", "s2v6", "s3v6"];

function config(flows4: number, flows6: number): Config {
  const c = labConfig([
    svc("dsr", { backends: B4 }),
    svc("dsr", { name: "dns", protocol: "udp", port: 53, backends: B4 }),
    svc("dsr", { name: "web6", vip: VIP6, backends: B6 }),
    svc("dsr", { name: "dns6", vip: VIP6, protocol: "udp", port: 53, backends: B6 }),
  ]);
  c.dataplane = { ...c.dataplane, flows: { ipv4: flows4, ipv6: flows6 } };
  return { ...validateOrThrow(c), role: { standby: false, flowEvents: true } };
}

/** Flow i of a family: TCP or UDP, untagged, 802.1Q or QinQ, from its own client address and port. */
function frameOf(family: 4 | 6, i: number): Uint8Array {
  const vlans = i % 5 === 0 ? [tci(10)] : i % 7 === 0 ? [tci(20), tci(30)] : undefined;
  const sport = 1024 + (i % 60000);
  const base = { srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, vlans, sport };
  if (family === 4) {
    const src = `100.64.${(i >> 8) & 255}.${i & 255}`;
    return i % 4 === 0 ? udp4Frame({ ...base, src, dst: VIP, dport: 53, payload: new Uint8Array(12) }) : tcp4Frame({ ...base, src, dst: VIP, dport: 80, flags: SYN });
  }
  const src = `2001:db8:c1::${i.toString(16)}`;
  return i % 4 === 0 ? udp6Frame({ ...base, src, dst: VIP6, dport: 53, payload: new Uint8Array(12) }) : tcp6Frame({ ...base, src, dst: VIP6, dport: 80, flags: SYN });
}

const backendOfMac = new Map(SERVERS.flatMap((s) => [[s.mac, s.name], [s.mac6, `${s.name}v6`]] as [string, string][]));
const macText = (f: Uint8Array): string => [...f.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");

interface Made {
  frames: { family: 4 | 6; frame: Uint8Array }[];
  /** engine key (hex) -> the backend the flow's packet left for */
  backendOf: Map<string, string>;
  /** engine keys (hex) of the EVK_NEW events: the bytes the engine itself wrote */
  engineKeys: Set<string>;
}

/** Opens n4 IPv4 and n6 IPv6 flows on engine, in batches, every frame transmitted. */
function openFlows(engine: Engine, n4: number, n6: number): Made {
  const frames = [
    ...Array.from({ length: n4 }, (_, i) => ({ family: 4 as const, frame: frameOf(4, i) })),
    ...Array.from({ length: n6 }, (_, i) => ({ family: 6 as const, frame: frameOf(6, i) })),
  ];
  const backendOf = new Map<string, string>();
  const engineKeys = new Set<string>();
  for (let at = 0; at < frames.length; at += 128) {
    for (const { frame } of frames.slice(at, at + 128)) assert.ok(engine.rxPush(0, frame));
    engine.runAll();
    engine.drainTx((x) => {
      const k = flowKeyOf(x.frame); // DSR: the IP packet left as it came, so it keys the same
      assert.ok(k);
      backendOf.set(hex(k.key), backendOfMac.get(macText(x.frame))!);
    });
    assert.equal(engine.drainPunt(), 0);
    assert.equal(engine.drainDropped(), 0);
    engine.drainEvents((r) => void engineKeys.add(hex(exportEvent(engine, r)!.key)));
  }
  return { frames, backendOf, engineKeys };
}

test("flow lookup: findFlow finds every entry of a few thousand IPv4 and IPv6 flows in a nearly full table, cuckoo-moved ones too", async () => {
  const engine = await Engine.create(config(3000, 1000), { seed: 0x1234567 });
  engine.clock = 5_000;
  const n4 = Math.floor(engine.plan.flow4Buckets * L.FLOW_WAYS * 0.88);
  const n6 = Math.floor(engine.plan.flow6Buckets * L.FLOW_WAYS * 0.88);
  const made = openFlows(engine, n4, n6);
  const c = engine.counters();
  assert.equal(c.flows.insertFailed, 0);
  assert.equal(c.flows.ipv4 + c.flows.ipv6, n4 + n6);
  assert.ok(c.flows.cuckooMoves > 100, `entries were moved to their other bucket: ${c.flows.cuckooMoves}`);
  assert.equal(made.engineKeys.size, n4 + n6);

  const t = engine.config.timeouts;
  for (const step of [0, 1234]) {
    engine.clock = 5_000 + step;
    for (const { family, frame } of made.frames) {
      const k = flowKeyOf(frame);
      assert.ok(k && k.family === family);
      const id = hex(k.key);
      assert.ok(made.engineKeys.has(id), `flowKeyOf builds the engine's own key bytes: ${id}`);
      const found = findFlow(engine, family, k.key);
      assert.ok(found, `flow ${id} found`);
      const proto = k.key[family === 4 ? 12 : 36];
      const idle = (proto === 6 ? t.tcpSyn : t.udp) * 1000;
      assert.equal(found.leftMs, idle - step);
      assert.equal(found.entry.length, family === 4 ? L.FLOW4_ENTRY : L.FLOW6_ENTRY);
      const flow = flowOf(engine, family, found.entry, found.leftMs, L.EVK_INSTALL);
      assert.ok(flow);
      assert.equal(flow.backend, made.backendOf.get(id), "the entry names the backend the packet went to");
      assert.equal(hex(flow.key), id);
    }
  }
  assert.equal(readFlows(engine).length, n4 + n6, "no more entries than findFlow found");
  assert.equal(findFlow(engine, 4, flowKey4(parseIP("100.64.200.200").bytes, parseIP(VIP).bytes, 1, 80, 6)), undefined, "an unknown flow");
  assert.equal(findFlow(engine, 6, flowKey6(parseIP("2001:db8:c1::ffff").bytes, parseIP(VIP6).bytes, 1, 80, 6)), undefined);
  // idle past the SYN timeout: the TCP entries (SYN only) are expired, the UDP ones are not yet
  engine.clock = 5_000 + t.tcpSyn * 1000;
  const tcpLeft = made.frames.filter(({ family, frame }) => flowKeyOf(frame)!.key[family === 4 ? 12 : 36] === 6);
  assert.ok(tcpLeft.every(({ family, frame }) => findFlow(engine, family, flowKeyOf(frame)!.key) === undefined), "expired: undefined");
});

test("flow lookup: the host's hash is the engine's (hashWords over 4 and 10 words, any seed)", async () => {
  const engine = await Engine.create(config(1024, 1024), { seed: 1 });
  for (let i = 0; i < 500; i++) {
    const key = new Uint8Array(40).map((_, j) => (i * 131 + j * 17 + (i >> 3)) & 255);
    const seed = (i * 0x9e3779b1) >>> 0;
    assert.equal(hashWords(key, 4, seed), engine.hashOf(key.subarray(0, 16), seed));
    assert.equal(hashWords(key, 10, seed), engine.hashOf(key, seed));
  }
});

test("flow lookup: leftMs is wrap-safe across the engine's 32-bit clock", async () => {
  const engine = await Engine.create(config(1024, 1024), { seed: 99 });
  engine.clock = 2 ** 32 - 400;
  const f = frameOf(4, 1);
  assert.ok(engine.rxPush(0, f));
  engine.runAll();
  assert.equal(engine.drainTx(), 1);
  const k = flowKeyOf(f)!;
  assert.equal(findFlow(engine, 4, k.key)!.leftMs, engine.config.timeouts.tcpSyn * 1000);
  engine.clock = 1_100; // 1500 ms later, past the wrap
  assert.equal(findFlow(engine, 4, k.key)!.leftMs, engine.config.timeouts.tcpSyn * 1000 - 1500);
});

test("flow lookup: flowKeyOf lays out the engine's key for TCP, UDP, IPv4, IPv6, VLAN tags, MPLS and IPv6 extension headers", () => {
  const c4 = parseIP("192.0.2.77").bytes;
  const c6 = parseIP("2001:db8:c::77").bytes;
  const v4 = parseIP(VIP).bytes;
  const v6 = parseIP(VIP6).bytes;
  const pad6 = (k: Uint8Array): string => hex(k) + "00".repeat(L.FLOW6_KEY - k.length);
  const base = { srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, sport: 4321 };
  const cases: [string, Uint8Array, 4 | 6, string][] = [
    ["tcp4", tcp4Frame({ ...base, src: "192.0.2.77", dst: VIP, dport: 80 }), 4, hex(flowKey4(c4, v4, 4321, 80, 6))],
    ["udp4 802.1Q", udp4Frame({ ...base, vlans: [tci(5)], src: "192.0.2.77", dst: VIP, dport: 53 }), 4, hex(flowKey4(c4, v4, 4321, 53, 17))],
    ["tcp6 QinQ", tcp6Frame({ ...base, vlans: [tci(1), tci(2)], src: "2001:db8:c::77", dst: VIP6, dport: 443 }), 6, pad6(flowKey6(c6, v6, 4321, 443, 6))],
    ["udp6", udp6Frame({ ...base, src: "2001:db8:c::77", dst: VIP6, dport: 53 }), 6, pad6(flowKey6(c6, v6, 4321, 53, 17))],
    ["tcp4 under MPLS", ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, mpls: [{ label: 16 }, { label: 17 }], payload: ipv4({ src: "192.0.2.77", dst: VIP, protocol: 6, payload: tcp({ src: "192.0.2.77", dst: VIP, sport: 4321, dport: 80, flags: ACK }) }) }), 4, hex(flowKey4(c4, v4, 4321, 80, 6))],
    ["tcp6 past hop-by-hop and destination options", ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: "2001:db8:c::77", dst: VIP6, nextHeader: 6, extensions: [{ type: IPPROTO_HOPOPTS }, { type: IPPROTO_DSTOPTS }], payload: tcp({ src: "2001:db8:c::77", dst: VIP6, sport: 4321, dport: 80, flags: ACK }) }) }), 6, pad6(flowKey6(c6, v6, 4321, 80, 6))],
    ["icmp4: no ports", ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: "192.0.2.77", dst: VIP, protocol: 1, payload: icmpv4({ type: 8, code: 0, payload: new Uint8Array(8) }) }) }), 4, hex(flowKey4(c4, v4, 0, 0, 1))],
  ];
  for (const [what, frame, family, key] of cases) {
    const k = flowKeyOf(frame);
    assert.ok(k, what);
    assert.deepEqual([k.family, hex(k.key)], [family, key], what);
  }
  const none: [string, Uint8Array][] = [
    ["ARP", ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: ROUTER_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: ROUTER_MAC, spa: "192.0.2.254", tpa: VIP }) })],
    ["an IPv4 fragment", ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: "192.0.2.77", dst: VIP, protocol: 6, mf: true, df: false, payload: new Uint8Array(24) }) })],
    ["an IPv6 fragment", ethernet({ dst: CLIENT_PORT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: "2001:db8:c::77", dst: VIP6, nextHeader: 6, extensions: [fragmentExt(8, false, 1)], payload: new Uint8Array(24) }) })],
    ["a truncated packet", tcp4Frame({ ...base, src: "192.0.2.77", dst: VIP, dport: 80 }).subarray(0, 14 + 20 + 10)],
    ["three VLAN tags", tcp4Frame({ ...base, vlans: [tci(1), tci(2), tci(3)], src: "192.0.2.77", dst: VIP, dport: 80 })],
    ["a runt", new Uint8Array(10)],
  ];
  for (const [what, frame] of none) assert.equal(flowKeyOf(frame), undefined, what);
});
