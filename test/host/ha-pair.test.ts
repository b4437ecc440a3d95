// The redundant pair on simulated boards: two real appliances (engines, heartbeat workers, the
// sync channel over loopback) on shared client and server segments joined by learning switches.
// The active alone answers and forwards; the standby gets the active's configuration and flow
// entries; when the active stops, the standby takes over, announces itself, and every flow the
// old active had keeps its backend, although a backend was added since (Maglev alone would have
// moved some); NAT replies find their way back through the new active.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomBytes, randomInt } from "node:crypto";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { arp, ethernet, tcp4Frame, parseMac, formatMac, ARP_REQUEST, ARP_REPLY, ETHERTYPE_ARP, SYN, ACK } from "../../host/net/frame.js";
import { l2, arpOf } from "../../host/net/packet-view.js";
import { SimSwitch } from "../lib/sim-switch.js";
import { renderHa } from "../../host/console/ha-view.js";
import { metricsOf } from "../../host/telemetry/metrics.js";
import { SERVERS, ROUTER_MAC, VIP, CLIENT, backends } from "../lib/lab-config.js";

const INTERVAL_MS = 20;
const DEAD = 3;
const PORT = 20000 + randomInt(20000);
const KEY = randomBytes(32).toString("hex");
const NODES = {
  a: { client: "02:0a:00:00:01:01", server: "02:0a:00:00:02:01", local: "127.0.0.2", peer: "127.0.0.3", priority: 200 },
  b: { client: "02:0b:00:00:01:01", server: "02:0b:00:00:02:01", local: "127.0.0.3", peer: "127.0.0.2", priority: 100 },
} as const;

function config(node: "a" | "b", pool: string[]): ConfigInput {
  const n = NODES[node];
  return {
    system: { hostname: `fsw-${node}` },
    ports: [
      { name: "client", mac: n.client, ipv4: "192.0.2.1", gatewayMac: ROUTER_MAC },
      { name: "server", mac: n.server, ipv4: "10.0.2.1" },
    ],
    dataplane: { flows: { ipv4: 4096, ipv6: 1024 }, limits: { services: 4, backends: 8 }, buffers: { count: 1024 }, engines: 2, noVip: "drop" },
    backends: backends().filter((b) => !b.name.endsWith("v6")),
    services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "nat", backends: pool }],
    telemetry: { enabled: false },
    ha: { node, priority: n.priority, intervalMs: INTERVAL_MS, deadCount: DEAD, keys: [{ id: 1, secret: KEY }], links: [{ name: "ha", local: n.local, peer: n.peer, port: PORT }], garp: { count: 2, intervalMs: 10 } },
  };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms\n${logs.slice(-40).join("\n")}`);
    await sleep(5);
  }
}

// the segments: a router on the client side, three servers on the server side
const clientSw = new SimSwitch("client");
const serverSw = new SimSwitch("server");
const router = new SimPort("router", parseMac(ROUTER_MAC));
clientSw.attach(router);
/** The router's ARP cache for the VIP, and every ARP answer or announcement it saw (by sender MAC). */
let vipMac: string | undefined;
const vipClaims: string[] = [];
const fromVip: Uint8Array[] = [];
router.start((frames) => {
  for (const f of frames) {
    const v = l2(f);
    const a = v && arpOf(f, v);
    if (a && a.spa === VIP && (a.op === ARP_REPLY || a.tpa === VIP)) {
      vipMac = formatMac(a.sha);
      vipClaims.push(vipMac);
    } else if (!a) fromVip.push(f);
  }
});
/** Frames each server received, by its MAC. */
const atServer = new Map<string, Uint8Array[]>();
for (const s of SERVERS) {
  const p = new SimPort(s.name, parseMac(s.mac));
  serverSw.attach(p);
  atServer.set(s.mac, []);
  p.start((frames) => void atServer.get(s.mac)!.push(...frames));
}
const servers = new Map(SERVERS.map((s) => [s.mac, s]));

const logs: string[] = [];
const dir = await mkdtemp(join(tmpdir(), "fsw-ha-pair-"));
async function boot(node: "a" | "b", pool: string[]): Promise<{ box: Appliance; path: string }> {
  const path = join(dir, `${node}.json`);
  await writeFile(path, JSON.stringify(config(node, pool)));
  const n = NODES[node];
  const c = new SimPort("client", parseMac(n.client));
  const s = new SimPort("server", parseMac(n.server));
  clientSw.attach(c);
  serverSw.attach(s);
  const box = await Appliance.boot({ configPath: path, board: new SimBoard([c, s]), log: (l) => void logs.push(`${node}: ${l}`), stateDir: dir });
  return { box, path };
}

type Ha = { role: string; configDigest: string; sync?: { ready: boolean; flowsReceived: number; connected: boolean } };
const ha = (box: Appliance): Ha => box.haStatus() as Ha;

const a = await boot("a", ["s1", "s2"]);
await sleep(50);
const b = await boot("b", ["s1", "s2"]);
let aStopped = false;
after(async () => {
  if (!aStopped) await a.box.stop();
  await b.box.stop();
  await rm(dir, { recursive: true, force: true });
});

function sendToVip(sport: number, flags: number): void {
  router.send([tcp4Frame({ srcMac: ROUTER_MAC, dstMac: vipMac!, src: CLIENT, dst: VIP, sport, dport: 80, flags })]);
}

/** Which server a flow's packet reached after `since` (per server, the frame count before). */
async function reached(sport: number, since: Map<string, number>): Promise<string> {
  const deadline = Date.now() + 3000;
  for (;;) {
    for (const [mac, got] of atServer) {
      // the switch floods a server MAC it has not learnt: only frames addressed to this server count
      if (got.slice(since.get(mac) ?? 0).some((f) => formatMac(f.subarray(0, 6)) === mac && f[14 + 9] === 6 && ((f[34] << 8) | f[35]) === sport)) return mac;
    }
    if (Date.now() > deadline) assert.fail(`flow ${sport} reached no server\n${logs.slice(-30).join("\n")}`);
    await sleep(5);
  }
}
const mark = (): Map<string, number> => new Map([...atServer].map(([m, f]) => [m, f.length]));

const chosen = new Map<number, string>();

test("ha pair: a becomes active (priority 200), b standby; only a answers ARP for the VIP; b gets a's flows and is ready", async () => {
  await until("a active, b standby and ready", () => ha(a.box).role === "active" && ha(b.box).role === "standby" && ha(b.box).sync?.ready === true, 8000);
  router.send([ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: ROUTER_MAC, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: ROUTER_MAC, spa: "192.0.2.254", tpa: VIP }) })]);
  await until("an ARP answer for the VIP", () => vipMac === NODES.a.client);
  await sleep(100);
  assert.ok(vipClaims.every((m) => m === NODES.a.client), `only the active claims the VIP: ${vipClaims.join(", ")}`);
  for (let i = 0; i < 60; i++) {
    const since = mark();
    sendToVip(30_000 + i, SYN);
    chosen.set(30_000 + i, await reached(30_000 + i, since));
  }
  const used = new Set(chosen.values());
  assert.ok(used.size === 2 && !used.has(SERVERS[2].mac), "a's pool is s1 and s2");
  await until("b has every entry (forward and NAT return)", () => (ha(b.box).sync?.flowsReceived ?? 0) >= 120);
  assert.ok(b.box.view().counters().sync.installed >= 120, JSON.stringify(b.box.view().counters().sync));
  assert.equal(b.box.view().ha(), "standby");
  await sleep(1100); // the election's counters are fetched from its thread once a second
  const text = renderHa(b.box.haStatus());
  assert.match(text, /^Node b: STANDBY, priority 100/m, text);
  assert.match(text, /^  Flow state\s+complete/m, text);
  assert.match(text, /^Peer a: ACTIVE, priority 200, holds the flow state/m, text);
  assert.match(text, /^  ha\s+127\.0\.0\.3 -> 127\.0\.0\.2:\d+\s+up/m, text);
  assert.match(text, /^Sync channel: connected/m, text);
  assert.match(renderHa(a.box.haStatus()), /^Node a: ACTIVE/m);
  assert.equal(renderHa(undefined), "High availability is not configured: this appliance runs alone.");
  const m = metricsOf(b.box.view(), "lab", { eventsDropped: 0, eventsQueued: 0 });
  assert.deepEqual({ role: m.pair?.role, ready: m.pair?.ready, peer: m.pair?.peer, links: m.pair?.links, sync: m.pair?.syncConnected }, { role: "standby", ready: true, peer: { node: "a", state: "active", alive: true }, links: { ha: true }, sync: true }, "MQTT metrics carry the pair");
  assert.ok((m.pair?.flowsReceived ?? 0) >= 120);
});

test("ha pair: a commit on the active reaches the standby; the standby refuses to change the shared configuration itself", async () => {
  await writeFile(a.path, JSON.stringify(config("a", ["s1", "s2", "s3"])));
  assert.ok(await a.box.reload());
  await until("b runs a's configuration", () => ha(b.box).configDigest === ha(a.box).configDigest, 5000);
  assert.deepEqual(b.box.running.services[0].backends.map((x) => x.name), ["s1", "s2", "s3"]);
  assert.equal(b.box.running.hostname, "fsw-b", "b keeps its own system settings");
  assert.equal(formatMac(b.box.running.ports[0].mac), NODES.b.client, "and its own port MACs");
  const why = b.box.refuseLocalChange(config("b", ["s3"]));
  assert.match(why ?? "", /standby of its pair.*edited on the active node/);
  assert.equal(b.box.refuseLocalChange({ ...config("b", ["s1", "s2", "s3"]), system: { hostname: "renamed" } }), undefined, "its own parts may change");
});

test("ha pair: the active stops; the standby takes over at once, announces the VIP, and keeps every flow on its backend", async () => {
  await until("b holds every entry again after the config change", () => ha(b.box).sync?.ready === true);
  const stoppedAt = Date.now();
  aStopped = true;
  await a.box.stop();
  await until("b active", () => ha(b.box).role === "active", 3000);
  const took = Date.now() - stoppedAt;
  await until("the router moved the VIP to b", () => vipMac === NODES.b.client, 2000);
  // a graceful stop says "standby" in a's last heartbeats: b need not wait for the dead interval
  process.stdout.write(`# takeover after ${took} ms (heartbeat ${INTERVAL_MS} ms x ${DEAD})\n`);
  for (const [sport, mac] of chosen) {
    const since = mark();
    sendToVip(sport, ACK);
    assert.equal(await reached(sport, since), mac, `flow ${sport} stays on ${servers.get(mac)!.name}`);
  }
  // a server's reply goes back through b, translated to the VIP
  const [sport, mac] = [...chosen][0];
  const s = servers.get(mac)!;
  const before = fromVip.length;
  const serverPort = new SimPort("reply", parseMac(s.mac));
  serverSw.attach(serverPort);
  serverPort.start((frames) => void atServer.get(s.mac)!.push(...frames)); // the switch now sends this server's frames here
  serverPort.send([tcp4Frame({ srcMac: s.mac, dstMac: NODES.b.server, src: s.ip, dst: CLIENT, sport: 80, dport: sport, flags: ACK })]);
  await until("the reply reached the router from the VIP", () => fromVip.slice(before).some((f) => f[14 + 9] === 6 && f[26] === 10 && f[29] === 100));
  // new flows use the new pool, s3 included
  const seen = new Set<string>();
  for (let i = 0; i < 60; i++) {
    const since = mark();
    sendToVip(31_000 + i, SYN);
    seen.add(await reached(31_000 + i, since));
  }
  assert.ok(seen.has(SERVERS[2].mac), "new flows reach the added backend");
});
