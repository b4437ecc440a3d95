// The appliance process on the simulated board: threaded engines, the responder and neighbour
// resolution, seen from the wires as a router and a server switch would see them.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import {
  arp, ethernet, ipv4, ipv6, icmpv4, icmpv6, tcp4Frame, parseMac, parseIP, formatMac, formatIPv4,
  ARP_REQUEST, ARP_REPLY, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, SYN, ACK,
} from "../../host/net/frame.js";
import { l2, arpOf } from "../../host/net/packet-view.js";
import { Wire } from "../lib/sim-wire.js";

const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const ROUTER_MAC = "02:00:00:00:01:fe";
const S1_MAC = "02:00:00:00:02:11";
const S2_MAC = "02:00:00:00:02:12";
const VIP = "10.0.0.100";
const VIP6 = "2001:db8::100";

function config(states: Record<string, "active" | "draining" | "down"> = {}, weights: Record<string, number> = {}): ConfigInput {
  return {
    ports: [
      { name: "client", mac: CLIENT_MAC, ipv4: "192.0.2.1", ipv6: "2001:db8:1::1", gateway: "192.0.2.254" },
      { name: "server", mac: SERVER_MAC, ipv4: "10.0.2.1" },
    ],
    dataplane: { flows: { ipv4: 4096, ipv6: 1024 }, limits: { services: 4, backends: 8 }, buffers: { count: 1024 }, engines: 1, noVip: "drop" },
    backends: [
      { name: "s1", address: "10.0.2.11", via: "server", state: states.s1 ?? "active" }, // MAC by ARP
      { name: "s2", address: "10.0.2.12", mac: S2_MAC, via: "server", state: states.s2 ?? "active" },
    ],
    services: [
      { name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: [{ name: "s1", weight: weights.s1 ?? 1 }, { name: "s2", weight: weights.s2 ?? 1 }] },
      { name: "web6", vip: VIP6, protocol: "tcp", port: 80, mode: "dsr", backends: ["s2"] },
    ],
  };
}

const dir = await mkdtemp(join(tmpdir(), "fsw-appliance-"));
const path = join(dir, "config.json");
await writeFile(path, JSON.stringify(config()));
const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_MAC));
const router = new Wire("router", ROUTER_MAC, clientPort);
const sw = new Wire("switch", S1_MAC, serverPort);
const logs: string[] = [];
const box = await Appliance.boot({ configPath: path, board: new SimBoard([clientPort, serverPort]), log: (l) => void logs.push(l) });
after(async () => {
  await box.stop();
  await rm(dir, { recursive: true, force: true });
});

const isArp = (op: number, tpa?: string) => (f: Uint8Array): boolean => {
  const v = l2(f);
  const a = v && arpOf(f, v);
  return !!a && a.op === op && (tpa === undefined || a.tpa === tpa);
};

test("appliance: announces its VIP with gratuitous ARP on the client-facing port", async () => {
  const g = await router.waitFor("gratuitous ARP for the VIP", (f) => {
    const v = l2(f);
    const a = v && arpOf(f, v);
    return !!a && a.spa === VIP && a.tpa === VIP;
  });
  assert.equal(formatMac(g.subarray(6, 12)), CLIENT_MAC);
});

test("appliance: resolves its gateway and a backend by ARP, and forwards to the backend only once resolved", async () => {
  const ask = await sw.waitFor("ARP request for s1", isArp(ARP_REQUEST, "10.0.2.11"));
  assert.equal(formatIPv4(ask, 28), "10.0.2.1", "asked from the server port's address");
  await router.waitFor("ARP request for the gateway", isArp(ARP_REQUEST, "192.0.2.254"));
  // before s1 answers, every new flow goes to s2
  const before = sw.got.length;
  for (let i = 0; i < 20; i++) router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.9", dst: VIP, sport: 1000 + i, dport: 80, flags: SYN }));
  await new Promise((r) => setTimeout(r, 200));
  const early = sw.got.slice(before).filter((f) => f[12] === 0x08 && f[13] === 0x00);
  assert.equal(early.length, 20);
  assert.ok(early.every((f) => formatMac(f.subarray(0, 6)) === S2_MAC), "unresolved s1 took no flow");
  sw.send(ethernet({ dst: SERVER_MAC, src: S1_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REPLY, sha: S1_MAC, spa: "10.0.2.11", tha: SERVER_MAC, tpa: "10.0.2.1" }) }));
  router.send(ethernet({ dst: CLIENT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REPLY, sha: ROUTER_MAC, spa: "192.0.2.254", tha: CLIENT_MAC, tpa: "192.0.2.1" }) }));
  const resolved = (): boolean => (box.status() as { backends: Record<string, { mac: string }> }).backends.s1.mac === S1_MAC;
  for (let t = 0; !resolved() && t < 300; t++) await new Promise((r) => setTimeout(r, 10));
  await box.settled();
  const start = sw.got.length;
  for (let i = 0; i < 100; i++) router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.10", dst: VIP, sport: 2000 + i, dport: 80, flags: SYN }));
  await sw.waitFor("flows on s1", () => sw.got.slice(start).some((f) => formatMac(f.subarray(0, 6)) === S1_MAC)).catch((e) => {
    throw new Error(`${(e as Error).message}\n${logs.join("\n")}\n${JSON.stringify(box.status(), null, 1).slice(0, 3000)}`);
  });
  assert.ok(logs.some((l) => l.includes("neighbor: 10.0.2.11 is at 02:00:00:00:02:11")), logs.join("\n"));
});

test("appliance: answers ARP for the VIP and its own address, neighbour solicitations for the IPv6 VIP, and pings", async () => {
  router.send(ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: ROUTER_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: ROUTER_MAC, spa: "192.0.2.254", tpa: VIP }) }));
  const r = await router.waitFor("ARP reply for the VIP", isArp(ARP_REPLY, "192.0.2.254"));
  assert.equal(formatMac(r.subarray(22, 28)), CLIENT_MAC, "the VIP is at the client port's MAC");
  const target = parseIP(VIP6).bytes;
  const group = "ff02::1:ff00:100";
  const body = new Uint8Array(24);
  body.set(target);
  body.set([1, 1, ...parseMac(ROUTER_MAC)], 16);
  router.send(ethernet({ dst: "33:33:ff:00:01:00", src: ROUTER_MAC, etherType: ETHERTYPE_IPV6, payload: ipv6({ src: "2001:db8:1::fe", dst: group, nextHeader: 58, hopLimit: 255, payload: icmpv6({ src: "2001:db8:1::fe", dst: group, type: 135, payload: body }) }) }));
  const na = await router.waitFor("solicited neighbour advertisement", (f) => f[12] === 0x86 && f[13] === 0xdd && f[14 + 40] === 136 && formatMac(f.subarray(0, 6)) === ROUTER_MAC);
  assert.equal(na[14 + 40 + 4] & 0x40, 0x40, "solicited flag");
  assert.deepEqual([...na.subarray(14 + 40 + 8, 14 + 40 + 24)], [...target], "advertises the VIP");
  router.send(ethernet({ dst: CLIENT_MAC, src: ROUTER_MAC, etherType: ETHERTYPE_IPV4, payload: ipv4({ src: "198.51.100.7", dst: VIP, protocol: 1, payload: icmpv4({ type: 8, rest: 0x00070001, payload: new Uint8Array(32).fill(5) }) }) }));
  const pong = await router.waitFor("echo reply", (f) => f[12] === 0x08 && f[14 + 9] === 1 && f[14 + 20] === 0);
  assert.equal(formatIPv4(pong, 14 + 12), VIP);
});

test("appliance: backends added, removed, re-weighted and drained under load: no frame is lost to the change", async () => {
  const flows = 200;
  let sent = 0;
  const start = sw.got.length;
  for (let i = 0; i < flows; i++) {
    router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.20", dst: VIP, sport: 10_000 + i, dport: 80, flags: SYN }));
    sent++;
  }
  const withS3 = (): ConfigInput => {
    const c = config();
    c.backends!.push({ name: "s3", address: "10.0.2.13", mac: "02:00:00:00:02:13", via: "server" });
    c.services![0].backends.push("s3");
    return c;
  };
  const withoutS2 = (): ConfigInput => {
    const c = config();
    c.backends = c.backends!.filter((b) => b.name !== "s2");
    c.services = [{ ...c.services![0], backends: ["s1"] }];
    return c;
  };
  // weights change, backends drain, a backend is added, one is removed (its flows move on), and back
  const variants: ConfigInput[] = [config({}, { s1: 3 }), config({ s2: "draining" }), withS3(), config({}, { s2: 5 }), withoutS2(), config({ s1: "draining" }), config()];
  for (let round = 0; round < 25; round++) {
    for (let i = 0; i < flows; i++) {
      router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.20", dst: VIP, sport: 10_000 + i, dport: 80, flags: ACK, seq: round }));
      sent++;
    }
    await writeFile(path, JSON.stringify(variants[round % variants.length]));
    assert.ok(await box.reload(), "reload accepted");
    await new Promise((r) => setImmediate(r));
  }
  const deadline = Date.now() + 5000;
  while (sw.got.length - start < sent && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  const c = (box.status() as { counters: { drop: number; drops: Record<string, number> } }).counters;
  assert.equal(sw.got.length - start, sent, `every frame came out (drops: ${JSON.stringify(c.drops)})`);
  assert.equal(c.drop, 0);
});

test("appliance: a bad configuration file on reload changes nothing and says why", async () => {
  await writeFile(path, JSON.stringify({ ...config(), services: [{ name: "web", vip: "nope" }] }));
  assert.equal(await box.reload(), false);
  assert.ok(logs.some((l) => l.includes("reload refused") && l.includes('services[0].vip: "nope"')), logs.slice(-3).join("\n"));
  await writeFile(path, JSON.stringify(config()));
  assert.ok(await box.reload());
});
