// Service discovery in telemetry, against a real broker: an appliance on the simulated board
// learns end systems from signed advertisements and publishes them to a mosquitto started here,
// watched with mosquitto_sub. The metrics snapshot carries discovery's counters, refusals and
// end systems; every end-system state change (new, down, back) is one message on the events topic.
import { freeTcpPort as freePort } from "../lib/ports.js";
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { connect } from "node:net";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import type { BoxEvent } from "../../host/observe.js";
import type { MetricsPayload } from "../../host/telemetry/index.js";
import { udp4Frame, parseMac } from "../../host/net/frame.js";
import { encode, type Message } from "../../host/discovery/protocol.js";
import { Wire } from "../lib/sim-wire.js";

const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const GROUP = "239.255.77.77";
const GROUP_MAC = "01:00:5e:7f:4d:4d";
const VIP = "10.0.0.100";
const SECRET = Buffer.alloc(32, 0x5a);
const KEY = { id: 7, secret: new Uint8Array(SECRET) };
const ES = {
  es1: { ip: "10.0.2.21", mac: "02:00:00:00:02:21", intervalMs: 60_000 },
  es2: { ip: "10.0.2.22", mac: "02:00:00:00:02:22", intervalMs: 100 }, // down after 3 x 100 ms of silence
} as const;
const STRANGER = "10.0.2.66";
const SITE = "lab";
const HOST = "disc-box";
const WAIT_MS = 10_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function until<T>(what: string, get: () => T | undefined, more = (): string => ""): Promise<T> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`no ${what} within ${WAIT_MS} ms${more()}`);
    await sleep(20);
  }
}
const accepts = (port: number): Promise<boolean> => new Promise((resolve) => {
  const s = connect(port, "127.0.0.1");
  s.once("connect", () => (s.destroy(), resolve(true)));
  s.once("error", () => resolve(false));
});

const dir = await mkdtemp(join(tmpdir(), "fsw-mqtt-disc-"));
const children = new Set<ChildProcess>();
const spawnTracked = (cmd: string, args: string[]): ChildProcess => {
  const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe"] });
  children.add(c);
  c.on("exit", () => children.delete(c));
  return c;
};
process.once("exit", () => children.forEach((c) => c.kill("SIGKILL"))); // even if the setup below fails

// ---- the broker and its watcher --------------------------------------------------------------

const brokerPort = await freePort();
await writeFile(join(dir, "mosquitto.conf"), [
  ...(process.getuid?.() === 0 ? ["user root"] : []),
  `listener ${brokerPort} 127.0.0.1`,
  "allow_anonymous true",
  "",
].join("\n"));
let brokerLog = "";
const broker = spawnTracked("mosquitto", ["-c", join(dir, "mosquitto.conf")]);
broker.stdout!.on("data", (d: Buffer) => void (brokerLog += d.toString()));
broker.stderr!.on("data", (d: Buffer) => void (brokerLog += d.toString()));
const deadline = Date.now() + WAIT_MS;
while (!(await accepts(brokerPort))) {
  if (broker.exitCode !== null || Date.now() > deadline) assert.fail(`mosquitto did not start:\n${brokerLog}`);
  await sleep(30);
}

interface MqttMessage { topic: string; payload: Buffer }
const messages: MqttMessage[] = [];
let subscribed = false;
const sub = spawnTracked("mosquitto_sub", ["-h", "127.0.0.1", "-p", String(brokerPort), "-q", "1", "-t", `flowswitch/${SITE}/${HOST}/#`, "-d", "-F", "%t %x"]);
let partial = "";
sub.stdout!.on("data", (d: Buffer) => {
  const lines = (partial + d.toString()).split("\n");
  partial = lines.pop()!;
  for (const line of lines) {
    if (line.startsWith("Subscribed (mid")) subscribed = true;
    const m = /^(\S+) ([0-9a-f]*)$/.exec(line);
    if (m) messages.push({ topic: m[1], payload: Buffer.from(m[2], "hex") });
  }
});

const topic = (leaf: string): string => `flowswitch/${SITE}/${HOST}/${leaf}`;
const parsed = (m: MqttMessage): unknown => JSON.parse(m.payload.toString());
const metrics = (): MetricsPayload[] => messages.filter((m) => m.topic === topic("metrics")).map((m) => parsed(m) as MetricsPayload);
const events = (): BoxEvent[] => messages.filter((m) => m.topic === topic("events")).map((m) => parsed(m) as BoxEvent);
const endSystemEvents = (id: string) => events().filter((e): e is Extract<BoxEvent, { type: "end-system" }> => e.type === "end-system" && e.endSystem === id);

// ---- the appliance ---------------------------------------------------------------------------

const config: ConfigInput = {
  system: { hostname: HOST },
  ports: [{ name: "client", mac: CLIENT_MAC, ipv4: "192.0.2.1" }, { name: "server", mac: SERVER_MAC, ipv4: "10.0.2.1" }],
  dataplane: { flows: { ipv4: 1024, ipv6: 256 }, limits: { services: 2, backends: 8 }, buffers: { count: 512 }, engines: 1, noVip: "drop" },
  backends: [],
  services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: [] }],
  telemetry: { mqtt: { url: `mqtt://127.0.0.1:${brokerPort}`, site: SITE, interval: 0.2 } },
  discovery: { keys: [{ id: KEY.id, secret: SECRET.toString("hex") }] },
};
await writeFile(join(dir, "c.json"), JSON.stringify(config));
const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_MAC));
const sw = new Wire("switch", ES.es1.mac, serverPort);
const logs: string[] = [];
const box = await Appliance.boot({ configPath: join(dir, "c.json"), board: new SimBoard([clientPort, serverPort]), log: (l) => void logs.push(l) });
let beat: NodeJS.Timeout | undefined;
after(async () => {
  clearInterval(beat);
  await box.stop();
  for (const c of children) c.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});
const said = (): string => `\nappliance said:\n${logs.join("\n")}\nmosquitto said:\n${brokerLog}\nevents:\n${events().map((e) => JSON.stringify(e)).join("\n")}`;

let seq = Date.now();
function datagram(src: string, msg: Message, key = KEY): Uint8Array {
  const payload = encode(msg, key, seq++, Date.now(), "endSystem" in msg ? msg.endSystem : "es1");
  return udp4Frame({ srcMac: ES.es1.mac, dstMac: GROUP_MAC, src, dst: GROUP, sport: 7777, dport: 7777, payload });
}
const service = (id: keyof typeof ES): Message => ({
  type: "service", endSystem: id, addresses: [ES[id].ip], state: "up", intervalMs: ES[id].intervalMs,
  services: [{ vip: VIP, protocol: 6, port: 80, weight: 10, capacity: 0 }],
});
const es2Beat = (): void => sw.send(datagram(ES.es2.ip, service("es2")));

await until("telemetry connected", () => logs.some((l) => l.startsWith("telemetry: connected to mqtt:")), said);
// mosquitto_sub writes its debug lines (the SUBACK) when it next flushes: at the retained state
await until("SUBACK from mosquitto_sub", () => subscribed, said);
sw.send(datagram(ES.es1.ip, service("es1")));
sw.send(datagram(ES.es1.ip, { type: "load", endSystem: "es1", cpu: 42, connections: 17, responseTimeUs: 1500 }));
sw.send(datagram(STRANGER, service("es1"), { id: KEY.id, secret: new Uint8Array(32).fill(1) }));
es2Beat();
beat = setInterval(es2Beat, 50);

test("mqtt discovery: metrics carry discovery's counters, refusals by reason and source, and each end system with its weights and LOAD", async () => {
  const m = await until("metrics with both end systems and es1's LOAD", () => metrics().find((p) => p.discovery?.endSystems.length === 2 && p.discovery.endSystems[0].load), said);
  const d = m.discovery!;
  assert.ok(d.accepted >= 3, `accepted: ${d.accepted}`);
  assert.equal(d.rejected["bad-mac"], 1);
  assert.equal(d.rejected.replayed, 0, "every reason is present, 0 or not");
  assert.deepEqual(Object.keys(d.rejected).sort(), ["bad-field", "bad-mac", "future", "malformed", "replayed", "stale", "unknown-key", "unsupported-version"]);
  assert.deepEqual(d.rejectedBy, { [STRANGER]: { "bad-mac": 1 } });
  assert.equal(d.down, 0);
  assert.equal(d.flowRules, 0);
  const [es1, es2] = d.endSystems;
  assert.equal(es1.id, "es1");
  assert.equal(es1.state, "up");
  assert.deepEqual(es1.addresses, [ES.es1.ip]);
  assert.equal(es1.intervalMs, 60_000);
  assert.ok(es1.lastHeardMs >= 0 && es1.lastHeardMs < 60_000);
  assert.deepEqual({ ...es1.load!, ageMs: 0 }, { cpu: 42, connections: 17, responseTimeUs: 1500, ageMs: 0 });
  assert.deepEqual(es1.services.map((s) => ({ ...s, weight: 0 })), [{ vip: VIP, protocol: 6, port: 80, advertised: 10, weight: 0 }]);
  assert.ok(es1.services[0].weight >= 0 && es1.services[0].weight <= 10, `weight now: ${es1.services[0].weight}`);
  assert.equal(es2.id, "es2");
  assert.equal(es2.intervalMs, 100);
  assert.equal(es2.load, undefined, "no LOAD heard from es2: no load field");
  // the snapshot is the box's view, as SNMP and the console read it
  const now = box.view().discovery()!;
  assert.deepEqual(now.rejected, d.rejected);
  assert.deepEqual(now.endSystems.map((e) => e.id), ["es1", "es2"]);
});

test("mqtt discovery: each end system's appearance, es2 going down when silent and coming back are events, in order", async () => {
  await until("es1 and es2 appearing", () => endSystemEvents("es1").length >= 1 && endSystemEvents("es2").length >= 1, said);
  const [appeared] = endSystemEvents("es1");
  assert.deepEqual({ ...appeared, at: 0, reason: "" }, { type: "end-system", endSystem: "es1", from: "new", to: "up", reason: "", at: 0 });
  assert.match(appeared.reason, new RegExp(`advertised up from ${ES.es1.ip.replace(/\./g, "\\.")}`));
  assert.ok(Math.abs(appeared.at - Date.now()) < 60_000);

  clearInterval(beat);
  const down = await until("es2 down", () => endSystemEvents("es2").find((e) => e.to === "down"), said);
  assert.equal(down.from, "up");
  assert.match(down.reason, /^silent for \d+ ms \(3 intervals of 100 ms\)$/);
  await until("metrics showing es2 down", () => metrics().some((p) => p.discovery?.down === 1 && p.discovery.endSystems[1].state === "down"), said);

  es2Beat();
  beat = setInterval(es2Beat, 50);
  await until("es2 back", () => endSystemEvents("es2").find((e) => e.from === "down" && e.to === "up"), said);
  assert.deepEqual(endSystemEvents("es2").map((e) => `${e.from}>${e.to}`), ["new>up", "up>down", "down>up"]);
  assert.deepEqual(endSystemEvents("es1").map((e) => `${e.from}>${e.to}`), ["new>up"], "es1's LOAD and the forged datagram are no events");
});
