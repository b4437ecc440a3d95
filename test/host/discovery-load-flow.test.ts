// LOAD and FLOW advertisements on the simulated board: two end systems serve one service; a
// loaded one's share of new flows shrinks (smoothed, established flows stay), and a FLOW rule
// steers a client prefix's new flows to one end system with its DSCP, until withdrawn.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { discoveryView } from "../../host/box.js";
import { renderDiscovery, renderEndSystems } from "../../host/console/commands.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { arp, ethernet, tcp4Frame, udp4Frame, parseMac, formatMac, ARP_REQUEST, ARP_REPLY, ETHERTYPE_ARP, SYN, ACK } from "../../host/net/frame.js";
import { l2, arpOf } from "../../host/net/packet-view.js";
import { encode, type Message, type FlowMsg } from "../../host/discovery/protocol.js";
import { LoadWeights } from "../../host/discovery/load-weights.js";

const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const ROUTER_MAC = "02:00:00:00:01:fe";
const ES = {
  es1: { ip: "10.0.2.21", mac: "02:00:00:00:02:21" },
  es2: { ip: "10.0.2.22", mac: "02:00:00:00:02:22" },
} as const;
const GROUP = "239.255.77.77";
const GROUP_MAC = "01:00:5e:7f:4d:4d";
const VIP = "10.0.0.100";
const SECRET = Buffer.alloc(32, 0x5a);
const KEY = { id: 7, secret: new Uint8Array(SECRET) };
const INTERVAL_MS = 100; // the protocol's shortest: weights change at most this often
const DSCP_EF = 46;

const config: ConfigInput = {
  ports: [
    { name: "client", mac: CLIENT_MAC, ipv4: "192.0.2.1", gatewayMac: ROUTER_MAC },
    { name: "server", mac: SERVER_MAC, ipv4: "10.0.2.1" },
  ],
  dataplane: { flows: { ipv4: 8192, ipv6: 1024 }, limits: { services: 4, backends: 8 }, buffers: { count: 2048 }, engines: 1, noVip: "drop" },
  backends: [],
  services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: [] }],
  telemetry: { enabled: false },
  discovery: { keys: [{ id: KEY.id, secret: SECRET.toString("hex") }] },
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dir = await mkdtemp(join(tmpdir(), "fsw-discovery-lf-"));
const path = join(dir, "config.json");
await writeFile(path, JSON.stringify(config));
const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_MAC));

/** The router on the client side: records nothing, only sends. */
const router = new SimPort("router", parseMac(ROUTER_MAC));
SimPort.wire(router, clientPort);
router.start(() => undefined);

/** The server-side switch: answers ARP for both end systems and records what reaches them. */
const sw = new SimPort("switch", parseMac(ES.es1.mac));
SimPort.wire(sw, serverPort);
const got: Uint8Array[] = [];
sw.start((frames) => {
  for (const f of frames) {
    const v = l2(f);
    const a = v && arpOf(f, v);
    const es = a && a.op === ARP_REQUEST ? Object.values(ES).find((e) => e.ip === a.tpa) : undefined;
    if (a && es) sw.send([ethernet({ dst: SERVER_MAC, src: es.mac, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REPLY, sha: es.mac, spa: es.ip, tha: SERVER_MAC, tpa: a.spa }) })]);
    else got.push(f);
  }
});

const logs: string[] = [];
const box = await Appliance.boot({ configPath: path, board: new SimBoard([clientPort, serverPort]), log: (l) => void logs.push(l) });

let seq = Date.now();
function send(sender: keyof typeof ES, msg: Message): void {
  const payload = encode(msg, KEY, seq++, Date.now(), sender);
  sw.send([udp4Frame({ srcMac: ES[sender].mac, dstMac: GROUP_MAC, src: ES[sender].ip, dst: GROUP, sport: 7777, dport: 7777, payload })]);
}

/** What the agents repeat every half interval: SERVICE, and the FLOW adds in force. */
const flowAdds: FlowMsg[] = [];
function heartbeat(): void {
  for (const id of ["es1", "es2"] as const) {
    send(id, { type: "service", endSystem: id, addresses: [ES[id].ip], state: "up", intervalMs: INTERVAL_MS, services: [{ vip: VIP, protocol: 6, port: 80, weight: 100, capacity: 0 }] });
  }
  for (const f of flowAdds) send(f.endSystem as keyof typeof ES, f);
}
heartbeat();
const beat = setInterval(heartbeat, INTERVAL_MS / 2);

after(async () => {
  clearInterval(beat);
  await box.stop();
  await rm(dir, { recursive: true, force: true });
});

type Status = { backends: Record<string, { state: string; mac: string }> };
const backendOf = (name: string): { state: string; mac: string } | undefined => (box.status() as Status).backends[name];

async function until(what: string, ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms\n${logs.join("\n")}\n${JSON.stringify(box.discovery(), null, 1).slice(0, 3000)}`);
    await sleep(5);
  }
  await box.settled();
}

/** Sends n new TCP flows (SYN) from `src`; returns the frame each left on, by source port. */
async function newFlows(n: number, firstPort: number, src = "198.51.100.9", flags = SYN): Promise<Map<number, Uint8Array>> {
  const start = got.length;
  for (let i = 0; i < n; i++) router.send([tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src, dst: VIP, sport: firstPort + i, dport: 80, flags })]);
  const out = new Map<number, Uint8Array>();
  const deadline = Date.now() + 3000;
  while (out.size < n && Date.now() < deadline) {
    await sleep(10);
    for (const f of got.slice(start)) {
      if (f[12] !== 0x08 || f[13] !== 0x00 || f[14 + 9] !== 6) continue;
      const sport = (f[34] << 8) | f[35];
      if (sport >= firstPort && sport < firstPort + n) out.set(sport, f);
    }
  }
  assert.equal(out.size, n, "every flow forwarded");
  return out;
}

const macOf = (f: Uint8Array): string => formatMac(f.subarray(0, 6));
const share = (flows: Map<number, Uint8Array>, mac: string): number => [...flows.values()].filter((f) => macOf(f) === mac).length / flows.size;
const weightNow = (es: string): number => box.discovery()!.weights[es][0].now;

/** IPv4 header checksum verifies (the sum over the header is 0xffff). */
function ipv4ChecksumOk(f: Uint8Array): boolean {
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += (f[i] << 8) | f[i + 1];
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >> 16);
  return sum === 0xffff;
}

let toEs1: number | undefined; // a flow established on es1 before it got loaded

test("load: a heavily loaded end system's share of new flows drops against an idle one, and its established flow stays", async () => {
  await until("both end systems resolved and active", () => backendOf("es-es1")?.mac === ES.es1.mac && backendOf("es-es2")?.mac === ES.es2.mac && backendOf("es-es1")?.state === "active" && backendOf("es-es2")?.state === "active");
  const before = await newFlows(300, 10_000);
  const shareBefore = share(before, ES.es1.mac);
  assert.ok(shareBefore > 0.35 && shareBefore < 0.65, `equal weights split about evenly (es1 ${shareBefore})`);
  toEs1 = [...before].find(([, f]) => macOf(f) === ES.es1.mac)![0];

  // es1: 95% CPU and ten times es2's response time; es2 idle. Reported every interval.
  const deadline = Date.now() + 5000;
  while (weightNow("es1") > 25 && Date.now() < deadline) {
    send("es1", { type: "load", endSystem: "es1", cpu: 95, connections: 900, responseTimeUs: 20_000 });
    send("es2", { type: "load", endSystem: "es2", cpu: 5, connections: 40, responseTimeUs: 2_000 });
    await sleep(INTERVAL_MS + 20);
  }
  assert.ok(weightNow("es1") <= 25, `es1's weight came down step by step (now ${weightNow("es1")})`);
  assert.ok(weightNow("es1") >= 10, "never below 10% of the advertised weight");
  assert.equal(weightNow("es2"), 100, "an idle end system's small move (95%) stays within the hysteresis");
  await until("the lower weight in the engines", () => box.effective().services[0].backends.find((b) => b.name === "es-es1")?.weight === weightNow("es1"));

  const after = await newFlows(300, 20_000);
  const shareAfter = share(after, ES.es1.mac);
  assert.ok(shareAfter < shareBefore - 0.2 && shareAfter < 0.3, `es1's share of new flows dropped: ${shareBefore} -> ${shareAfter}`);

  const established = await newFlows(1, toEs1, "198.51.100.9", ACK);
  assert.equal(macOf(established.get(toEs1)!), ES.es1.mac, "the established flow stays on the loaded end system");
});

test("load: weights are damped: once settled, a load that flips between 40% and 60% every interval leaves the weight alone", () => {
  const w = new LoadWeights();
  const system = (cpu: number) => [{ id: "a", intervalMs: 1, services: [{ vip: VIP, protocol: 6, port: 80, weight: 100, capacity: 0 }], load: { cpu, connections: 0, responseTimeUs: 0 } }];
  const seen: number[] = [];
  for (let i = 0; i < 40; i++) {
    w.onLoad("a", system(i % 2 ? 60 : 40), i);
    seen.push(w.weight("a", system(0)[0].services[0]));
  }
  const late = seen.slice(20);
  assert.ok(late.every((v) => v === late[0]), `no change in the last 20 reports: ${seen.join(" ")}`);
  assert.ok(seen.filter((v, i) => i > 0 && v !== seen[i - 1]).length <= 6, `a few steps down from 100: ${seen.join(" ")}`);
  assert.ok(Math.abs(seen[seen.length - 1] - 50) <= 10, `it settles near the mean target (${seen[seen.length - 1]})`);
});

test("flow: a FLOW add steers a matching client's new flows to the named end system with the advertised DSCP; withdraw returns them to Maglev", async () => {
  const add: FlowMsg = {
    type: "flow", op: "add", endSystem: "es1",
    pattern: { vip: VIP, source: "198.51.100.0/24", protocol: 6, dstPorts: { first: 80, last: 80 } },
    attributes: { dscp: DSCP_EF },
  };
  flowAdds.push(add);
  send("es1", add);
  await until("the advertised rule after the static ones", () => box.effective().flowRules.length === 1);
  const rule = box.effective().flowRules[0];
  assert.equal(rule.backend, "es-es1");
  assert.equal(rule.port, 80);
  assert.equal(rule.protocol, "tcp");
  assert.equal(rule.source?.text, "198.51.100.0/24");

  const steered = await newFlows(60, 30_000);
  for (const [sport, f] of steered) {
    assert.equal(macOf(f), ES.es1.mac, `flow ${sport} goes to es1 (the FLOW wins over its low weight)`);
    assert.equal(f[15] >> 2, DSCP_EF, `flow ${sport} leaves with DSCP ${DSCP_EF}`);
    assert.ok(ipv4ChecksumOk(f), "the IPv4 checksum follows the DSCP");
  }
  const other = await newFlows(60, 31_000, "203.0.113.5");
  assert.ok(share(other, ES.es2.mac) > 0.5, "a client outside the prefix is not steered");
  assert.ok([...other.values()].every((f) => f[15] >> 2 === 0), "nor marked");

  flowAdds.length = 0;
  send("es1", { ...add, op: "withdraw" });
  await until("the rule withdrawn", () => box.effective().flowRules.length === 0);
  const back = await newFlows(60, 32_000);
  assert.ok(share(back, ES.es2.mac) > 0.5, "after the withdraw, Maglev (by weight) picks again");
  assert.ok([...back.values()].every((f) => f[15] >> 2 === 0), "no DSCP rewrite");
});

test("flow: a FLOW add no longer refreshed is removed after 3 intervals; a pattern the data plane cannot match is refused and counted", async () => {
  const add: FlowMsg = { type: "flow", op: "add", endSystem: "es2", pattern: { vip: VIP, protocol: 6, dstPorts: { first: 8000, last: 8100 } }, attributes: { dscp: 10 } };
  send("es2", add);
  await until("the rule in", () => box.effective().flowRules.length === 1);
  assert.equal(box.effective().flowRules[0].port, 0, "a port range widens to any port");
  assert.equal(box.discovery()!.stats.flowsWidened, 1);
  await until("the rule expired", () => box.effective().flowRules.length === 0, 2000);
  assert.ok(logs.some((l) => l.includes("not refreshed")), logs.join("\n"));
  send("es2", { ...add, pattern: { vip: VIP, protocol: 132 } });
  await until("sctp refused", () => box.discovery()!.stats.flowsRefused === 1);
  assert.equal(box.effective().flowRules.length, 0);
});

test("show discovery: end systems with their weight now and last seen, and the refusals by reason and source", async () => {
  // one forged datagram from es2's address: counted by reason and by source
  sw.send([udp4Frame({ srcMac: ES.es2.mac, dstMac: GROUP_MAC, src: ES.es2.ip, dst: GROUP, sport: 7777, dport: 7777, payload: encode({ type: "load", endSystem: "es2", cpu: 1, connections: 1, responseTimeUs: 1 }, { id: KEY.id, secret: new Uint8Array(32) }, seq++, Date.now(), "es2") })]);
  await until("the forged datagram refused", () => box.discovery()!.stats.rejected["bad-mac"] === 1);
  const text = renderDiscovery(discoveryView(box));
  assert.match(text, /Refused datagrams by source:\n\s+10\.0\.2\.22\s+bad-mac 1/, text);
  const detail = renderEndSystems(discoveryView(box));
  assert.match(detail, /^es1\s+up\s+10\.0\.2\.21\s+\d+(\.\d)?s\s+\d+(\.\d)?s\s+95%\s+\d+\s+[\d.]+ms\s+\d+(\.\d)?s$/m, detail);
  assert.match(detail, /^es2\s+up\s+10\.0\.2\.22\s+0\.1s\s+[\d.]+s\s+5%\s+40\s+2\.0ms\s+[\d.]+s$/m, detail);
  const es1 = text.split("\n").find((l) => l.startsWith("es1"));
  assert.ok(es1, text);
  assert.match(es1, /10\.0\.2\.21\s+up\s+10\.0\.0\.100:tcp\/80\s+\d+ \(100\)\s+\d+s ago\s+95%/, text);
  assert.match(text, /^es2\s+10\.0\.2\.22\s+up\s+10\.0\.0\.100:tcp\/80\s+100\s/m, text);
  assert.match(text, /Flow rules 0, refused 1, widened 1/, text);
  assert.match(text, /^\s+bad-mac\s+1$/m, text);
  assert.equal(renderDiscovery(undefined), "Service discovery is not configured.");
});
