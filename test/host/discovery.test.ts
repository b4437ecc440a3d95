// Service discovery on the simulated board: end systems advertise themselves on the server-facing
// port, and the appliance turns them into backends of the services they advertise, next to the
// configured ones: new flows after ARP resolution, draining, silence, and refused datagrams.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { arp, ethernet, tcp4Frame, udp4Frame, udp6Frame, parseMac, formatMac, ARP_REQUEST, ARP_REPLY, ETHERTYPE_ARP, SYN, ACK } from "../../host/net/frame.js";
import { l2, arpOf } from "../../host/net/packet-view.js";
import { encode, type ServiceMsg, type ServerState } from "../../host/discovery/protocol.js";
import { Wire } from "../lib/sim-wire.js";

const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const ROUTER_MAC = "02:00:00:00:01:fe";
const S2_MAC = "02:00:00:00:02:12";
const ES_MAC = "02:00:00:00:02:21";
const ES_IP = "10.0.2.21";
const GROUP = "239.255.77.77";
const GROUP_MAC = "01:00:5e:7f:4d:4d";
const VIP = "10.0.0.100";
const SECRET = Buffer.alloc(32, 0x5a);
const KEY = { id: 7, secret: new Uint8Array(SECRET) };

const config: ConfigInput = {
  ports: [
    { name: "client", mac: CLIENT_MAC, ipv4: "192.0.2.1", gatewayMac: ROUTER_MAC },
    { name: "server", mac: SERVER_MAC, ipv4: "10.0.2.1" },
  ],
  dataplane: { flows: { ipv4: 4096, ipv6: 1024 }, limits: { services: 4, backends: 8 }, buffers: { count: 1024 }, engines: 1, noVip: "drop", timeouts: { tcpClosing: 1 } },
  backends: [{ name: "s2", address: "10.0.2.12", mac: S2_MAC, via: "server" }],
  services: [
    { name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: ["s2"] },
    { name: "dns", vip: VIP, protocol: "udp", port: 53, mode: "dsr", backends: ["s2"] },
  ],
  telemetry: { enabled: false },
  discovery: { keys: [{ id: KEY.id, secret: SECRET.toString("hex") }], leaveTimeoutS: 5 },
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dir = await mkdtemp(join(tmpdir(), "fsw-discovery-"));
const path = join(dir, "config.json");
await writeFile(path, JSON.stringify(config));
const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_MAC));
const router = new Wire("router", ROUTER_MAC, clientPort);
const sw = new Wire("switch", ES_MAC, serverPort);
const logs: string[] = [];
const box = await Appliance.boot({ configPath: path, board: new SimBoard([clientPort, serverPort]), log: (l) => void logs.push(l) });
after(async () => {
  await box.stop();
  await rm(dir, { recursive: true, force: true });
});

let seq = Date.now();
/** A SERVICE datagram from end system es1, as the agent sends it to the group. */
function advert(state: ServerState, intervalMs = 60_000, key = KEY, es = { id: "es1", ip: ES_IP, mac: ES_MAC }): Uint8Array {
  const msg: ServiceMsg = {
    type: "service", endSystem: es.id, addresses: [es.ip], state, intervalMs,
    services: [{ vip: VIP, protocol: 6, port: 80, weight: 1, capacity: 0 }],
  };
  const payload = encode(msg, key, seq++, Date.now(), es.id);
  return udp4Frame({ srcMac: es.mac, dstMac: GROUP_MAC, src: es.ip, dst: GROUP, sport: 7777, dport: 7777, payload });
}

type Status = { backends: Record<string, { state: string; mac: string }> };
const backendOf = (name: string): { state: string; mac: string } | undefined => (box.status() as Status).backends[name];

async function until(what: string, ok: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms\n${logs.join("\n")}\n${JSON.stringify(box.status(), null, 1).slice(0, 2000)}`);
    await sleep(5);
  }
  await box.settled();
}

/** Sends n new TCP flows to the VIP; returns the destination MAC of each, by source port. */
async function newFlows(n: number, firstPort: number): Promise<Map<number, string>> {
  const start = sw.got.length;
  for (let i = 0; i < n; i++) router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.9", dst: VIP, sport: firstPort + i, dport: 80, flags: SYN }));
  const out = new Map<number, string>();
  const deadline = Date.now() + 3000;
  while (out.size < n && Date.now() < deadline) {
    await sleep(10);
    for (const f of sw.got.slice(start)) {
      if (f[12] !== 0x08 || f[13] !== 0x00 || f[14 + 9] !== 6) continue;
      out.set((f[34] << 8) | f[35], formatMac(f.subarray(0, 6)));
    }
  }
  assert.equal(out.size, n, "every flow forwarded");
  return out;
}

const isArpFor = (tpa: string) => (f: Uint8Array): boolean => {
  const v = l2(f);
  const a = v && arpOf(f, v);
  return !!a && a.op === ARP_REQUEST && a.tpa === tpa;
};

let toEs: number | undefined; // source port of a flow the end system took

test("discovery: an advertised end system, once its MAC is resolved, takes new flows of the service it advertises, next to the static backend", async () => {
  sw.send(advert("up"));
  const ask = await sw.waitFor("ARP request for the end system", isArpFor(ES_IP));
  assert.equal(formatMac(ask.subarray(6, 12)), SERVER_MAC, "asked on the discovery port");
  sw.send(ethernet({ dst: SERVER_MAC, src: ES_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REPLY, sha: ES_MAC, spa: ES_IP, tha: SERVER_MAC, tpa: "10.0.2.1" }) }));
  await until("es-es1 resolved and active", () => backendOf("es-es1")?.mac === ES_MAC && backendOf("es-es1")?.state === "active");
  const flows = await newFlows(100, 20_000);
  const macs = [...flows.values()];
  assert.ok(macs.some((m) => m === ES_MAC), "the end system takes new flows");
  assert.ok(macs.some((m) => m === S2_MAC), "the static backend keeps taking new flows");
  toEs = [...flows].find(([, m]) => m === ES_MAC)![0];
  const eff = box.effective();
  assert.deepEqual(eff.services.find((s) => s.name === "web")!.backends.map((b) => b.name), ["s2", "es-es1"]);
  assert.deepEqual(eff.services.find((s) => s.name === "dns")!.backends.map((b) => b.name), ["s2"], "not a member of a service it does not advertise");
  assert.equal(box.discovery()!.stats.accepted, 1);
});

test("discovery: a forged (wrong key, unknown key) or replayed datagram is refused, counted, and changes nothing", async () => {
  const replay = advert("up");
  sw.send(replay);
  await until("the fresh one accepted", () => box.discovery()!.stats.accepted === 2);
  const before = box.discovery()!.endSystems;
  sw.send(advert("draining", 60_000, { id: KEY.id, secret: new Uint8Array(32).fill(1) }));
  sw.send(advert("draining", 60_000, { id: 99, secret: new Uint8Array(SECRET) }));
  sw.send(replay);
  await until("three refusals", () => {
    const r = box.discovery()!.stats.rejected;
    return r["bad-mac"] === 1 && r["unknown-key"] === 1 && r.replayed === 1;
  });
  const s = box.discovery()!.stats;
  assert.equal(s.accepted, 2);
  assert.deepEqual(s.rejectedBy[ES_IP], { "bad-mac": 1, "unknown-key": 1, replayed: 1 });
  assert.deepEqual(box.discovery()!.endSystems, before, "no end system changed");
  assert.equal(backendOf("es-es1")?.state, "active");
});

test("discovery: a draining end system gets no new flows while its established flow keeps going", async () => {
  assert.ok(toEs !== undefined);
  sw.send(advert("draining"));
  await until("es-es1 draining", () => backendOf("es-es1")?.state === "draining");
  const start = sw.got.length;
  router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.9", dst: VIP, sport: toEs, dport: 80, flags: ACK }));
  const f = await sw.waitFor("the established flow's packet", (x) => sw.got.indexOf(x) >= start && x[14 + 9] === 6 && ((x[34] << 8) | x[35]) === toEs);
  assert.equal(formatMac(f.subarray(0, 6)), ES_MAC, "the established flow stays on the draining end system");
  const flows = await newFlows(60, 30_000);
  assert.ok([...flows.values()].every((m) => m === S2_MAC), "no new flow to the draining end system");
});

test("discovery: an end system silent for 3 of its intervals is down, and back with its next advertisement", async () => {
  sw.send(advert("up", 200));
  await until("es-es1 active again", () => backendOf("es-es1")?.state === "active");
  const heard = Date.now();
  await until("es-es1 down after silence", () => backendOf("es-es1")?.state === "down", 3000);
  const silent = Date.now() - heard;
  assert.ok(silent >= 550, `down after ${silent} ms, not before 3 intervals of 200 ms`);
  assert.equal(box.discovery()!.endSystems[0].state, "down");
  const flows = await newFlows(40, 40_000);
  assert.ok([...flows.values()].every((m) => m === S2_MAC), "no new flow to a silent end system");
  assert.ok(logs.some((l) => l.includes("discovery: end system es1 is down")), logs.join("\n"));
  sw.send(advert("up", 60_000));
  await until("es-es1 back", () => backendOf("es-es1")?.state === "active");
});

/** Brings end system `es` up (advertisement, then its ARP answer) and returns a source port of a flow it took. */
async function joinAndTakeFlow(es: { id: string; ip: string; mac: string }, firstPort: number): Promise<number> {
  sw.send(advert("up", 60_000, KEY, es));
  await sw.waitFor(`ARP request for ${es.ip}`, isArpFor(es.ip));
  sw.send(ethernet({ dst: SERVER_MAC, src: es.mac, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REPLY, sha: es.mac, spa: es.ip, tha: SERVER_MAC, tpa: "10.0.2.1" }) }));
  await until(`es-${es.id} active`, () => backendOf(`es-${es.id}`)?.mac === es.mac && backendOf(`es-${es.id}`)?.state === "active");
  const flows = await newFlows(60, firstPort);
  const mine = [...flows].filter(([, m]) => m === es.mac).map(([p]) => p);
  assert.ok(mine.length > 0, `${es.id} took some of 60 new flows`);
  // only one flow of it stays: the others end at once (RST, then the 1 s closing timeout)
  for (const p of mine.slice(1)) router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.9", dst: VIP, sport: p, dport: 80, flags: 0x04 }));
  return mine[0];
}

const known = (id: string): boolean => box.discovery()!.endSystems.some((e) => e.id === id);

test("discovery: a leaving end system keeps its flows, takes no new ones, and is removed once its last flow has ended", async () => {
  const es3 = { id: "es3", ip: "10.0.2.23", mac: "02:00:00:00:02:23" };
  const port = await joinAndTakeFlow(es3, 50_000);
  sw.send(advert("leaving", 60_000, KEY, es3));
  await until("es-es3 no longer takes new flows", () => backendOf("es-es3")?.state === "draining");
  const flows = await newFlows(40, 51_000);
  assert.ok([...flows.values()].every((m) => m !== es3.mac), "no new flow to a leaving end system");
  const start = sw.got.length;
  router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.9", dst: VIP, sport: port, dport: 80, flags: ACK }));
  const f = await sw.waitFor("the established flow's packet", (x) => sw.got.indexOf(x) >= start && x[14 + 9] === 6 && ((x[34] << 8) | x[35]) === port);
  assert.equal(formatMac(f.subarray(0, 6)), es3.mac, "its established flow stays on it");
  await sleep(2500); // the other flows have ended (1 s closing timeout) and reaping ran: the one left holds it
  assert.ok(known("es3"), "still there while a flow of it lives");
  router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.9", dst: VIP, sport: port, dport: 80, flags: 0x04 }));
  await until("es3 removed after its last flow ended", () => !known("es3") && backendOf("es-es3") === undefined, 4000);
  assert.ok(logs.some((l) => l.includes("end system es3 removed: left, and no flow of it remains")), logs.join("\n"));
});

test("discovery: a leaving end system whose flows do not end is removed after leaveTimeoutS", async () => {
  const es4 = { id: "es4", ip: "10.0.2.24", mac: "02:00:00:00:02:24" };
  await joinAndTakeFlow(es4, 52_000);
  sw.send(advert("leaving", 60_000, KEY, es4));
  const leftAt = Date.now();
  await until("es-es4 draining", () => backendOf("es-es4")?.state === "draining");
  await until("es4 removed after the leave timeout", () => !known("es4"), 8000);
  const took = Date.now() - leftAt;
  assert.ok(took >= 4900, `removed after ${took} ms, not before leaveTimeoutS (5 s)`);
  assert.ok(logs.some((l) => l.includes("end system es4 removed: its flows did not end within 5 s of leaving")), logs.join("\n"));
});

test("discovery: the appliance reports membership of both advertisement groups (IGMPv3, MLDv2) on the discovery port only", async () => {
  const igmp = await sw.waitFor("an IGMPv3 report", (f) => f[12] === 0x08 && f[14 + 9] === 2 && f[14 + 24] === 0x22);
  assert.equal(formatMac(igmp.subarray(6, 12)), SERVER_MAC);
  assert.deepEqual([...igmp.subarray(14 + 24 + 12, 14 + 24 + 16)], [239, 255, 77, 77], "the IPv4 group");
  const mld = await sw.waitFor("an MLDv2 report", (f) => f[12] === 0x86 && f[12 + 2 + 6] === 0 && f[14 + 40 + 8] === 143);
  assert.equal(formatMac(mld.subarray(0, 6)), "33:33:00:00:00:16");
  assert.equal(Buffer.from(mld.subarray(14 + 40 + 8 + 8 + 4, 14 + 40 + 8 + 8 + 20)).toString("hex"), "ff020000000000000000000000000077", "the IPv6 group");
  assert.ok(!router.got.some((f) => (f[12] === 0x08 && f[14 + 9] === 2) || (f[12] === 0x86 && f[14 + 40 + 8] === 143)), "no report on the client port");
});

test("discovery: an advertisement to the IPv6 group ff02::77 is heard like one to the IPv4 group", async () => {
  const accepted = box.discovery()!.stats.accepted;
  const msg: ServiceMsg = { type: "service", endSystem: "es6", addresses: ["fd00:2::26"], state: "up", intervalMs: 60_000, services: [] };
  const payload = encode(msg, KEY, seq++, Date.now(), "es6");
  sw.send(udp6Frame({ srcMac: "02:00:00:00:02:26", dstMac: "33:33:00:00:00:77", src: "fe80::26", dst: "ff02::77", sport: 7777, dport: 7777, payload }));
  await until("es6 known", () => known("es6"));
  assert.equal(box.discovery()!.stats.accepted, accepted + 1);
  // to another IPv6 group: not punted as an advertisement, so not even refused
  sw.send(udp6Frame({ srcMac: "02:00:00:00:02:26", dstMac: "33:33:00:00:00:78", src: "fe80::26", dst: "ff02::78", sport: 7777, dport: 7777, payload: encode(msg, KEY, seq++, Date.now(), "es6") }));
  await sleep(200);
  assert.equal(box.discovery()!.stats.accepted, accepted + 1);
  assert.equal(Object.values(box.discovery()!.stats.rejected).reduce((a, b) => a + b, 0), 3, "only the three refusals of the earlier test");
});
