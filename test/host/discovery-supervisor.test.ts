// The supervisor inside the appliance (config discovery.supervisor), on the simulated board: it
// listens on a management address (a kernel UDP socket, 127.0.0.1 here), leases numbers kept in
// the appliance's state directory across a restart, hears the advertisements the engines punt from
// the server-facing port and relays them unchanged, and shows itself on the console.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { parseMac, udp4Frame } from "../../host/net/frame.js";
import { decode, encode, type Message, type NumberGrantMsg, type ServerListReplyMsg } from "../../host/discovery/protocol.js";
import { parseLeaseState } from "../../host/discovery/lease-store.js";
import { LEASE_FILE } from "../../host/discovery/supervisor-host.js";
import { renderSupervisor, supervisorView } from "../../host/console/supervisor-view.js";
import { Wire } from "../lib/sim-wire.js";
import { metricsOf } from "../../host/telemetry/metrics.js";

const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const ES_MAC = "02:00:00:00:02:21";
const ES_IP = "10.0.2.21";
const SECRET = Buffer.alloc(32, 0x6b);
const KEY = { id: 9, secret: new Uint8Array(SECRET) };
const KEYS = new Map([[KEY.id, KEY.secret]]);
const WAIT_MS = 5000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function udp(address: string, port = 0): Promise<UdpSocket> {
  const s = createSocket("udp4");
  await new Promise<void>((ok, fail) => {
    s.once("error", fail);
    s.bind(port, address, () => ok());
  });
  return s;
}

const dir = await mkdtemp(join(tmpdir(), "fsw-appliance-supervisor-"));
const stateDir = join(dir, "state");
const probe = await udp("127.0.0.1");
const port = probe.address().port; // free a moment ago: the supervisor's port
probe.close();
const relayTarget = await udp("127.0.0.3");
const relayed: Buffer[] = [];
relayTarget.on("message", (m) => void relayed.push(m));
const tester = await udp("127.0.0.1");
const answers: Message[] = [];
tester.on("message", (m) => {
  const r = decode(m, KEYS);
  if (r.ok) answers.push(r.msg);
});

const config: ConfigInput = {
  system: { hostname: "fs-sup" },
  management: { ipv4: "127.0.0.1" },
  ports: [
    { name: "client", mac: CLIENT_MAC, ipv4: "192.0.2.1" },
    { name: "server", mac: SERVER_MAC, ipv4: "10.0.2.1" },
  ],
  dataplane: { flows: { ipv4: 1024, ipv6: 256 }, limits: { services: 4, backends: 8 }, buffers: { count: 256 }, engines: 1, noVip: "drop" },
  telemetry: { enabled: false },
  discovery: {
    keys: [{ id: KEY.id, secret: SECRET.toString("hex") }],
    supervisor: { port, intervalMs: 700, pools: [{ name: "ports", first: 5000, last: 5009, maxLeaseS: 60 }], relay: [`127.0.0.3:${relayTarget.address().port}`] },
  },
};
const configPath = join(dir, "config.json");
await writeFile(configPath, JSON.stringify(config));

const logs: string[] = [];
let box: Appliance | undefined;
/** The end systems' switch on the running box's server port. */
let wire: Wire | undefined;
after(async () => {
  await box?.stop();
  tester.close();
  relayTarget.close();
  await rm(dir, { recursive: true, force: true });
});

async function boot(): Promise<{ box: Appliance; wire: Wire }> {
  const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
  const serverPort = new SimPort("server", parseMac(SERVER_MAC));
  const wire = new Wire("switch", ES_MAC, serverPort);
  const b = await Appliance.boot({ configPath, board: new SimBoard([clientPort, serverPort]), log: (l) => void logs.push(l), stateDir });
  const deadline = Date.now() + WAIT_MS;
  while (!b.supervisor()) {
    if (Date.now() > deadline) assert.fail(`the supervisor did not start:\n${logs.join("\n")}`);
    await sleep(5);
  }
  return { box: b, wire };
}

let seq = Date.now();
async function ask(msg: Message, sender = "tester"): Promise<Message> {
  const before = answers.length;
  tester.send(encode(msg, KEY, seq++, Date.now(), sender), port, "127.0.0.1");
  const deadline = Date.now() + WAIT_MS;
  while (answers.length === before) {
    if (Date.now() > deadline) assert.fail(`no answer to ${msg.type}:\n${logs.join("\n")}`);
    await sleep(5);
  }
  return answers.at(-1)!;
}

test("appliance: runs the supervisor from its configuration on the management address, leasing numbers kept in its state directory", async () => {
  ({ box, wire } = await boot());
  assert.deepEqual(box.supervisor()!.endpoint, { address: "127.0.0.1", port });
  assert.match(logs.join("\n"), new RegExp(`supervisor: listening on 127\\.0\\.0\\.1:${port}, pools ports, relaying to 1 appliance\\(s\\)`));
  const g = (await ask({ type: "number-request", requestId: 1, endSystem: "es1", pool: "ports", op: "lease", count: 3, leaseS: 3600 })) as NumberGrantMsg;
  assert.deepEqual([g.status, g.leaseId, g.first, g.count, g.leaseS], ["granted", 1, 5000, 3, 60]);
  const saved = parseLeaseState(await readFile(join(stateDir, LEASE_FILE), "utf8"));
  assert.deepEqual(saved.leases.map((l) => [l.leaseId, l.first, l.count, l.endSystem]), [[1, 5000, 3, "es1"]]);
  const reg = await ask({ type: "register", requestId: 2, endSystem: "es1", addresses: [ES_IP], services: [] }, "es1");
  assert.deepEqual(reg, { type: "register-reply", requestId: 2, endSystem: "es1", status: "accepted", intervalMs: 700 });
});

test("appliance: the supervisor hears advertisements punted from the server port and relays them byte for byte", async () => {
  const payload = encode({ type: "service", endSystem: "es1", addresses: [ES_IP], state: "up", intervalMs: 60_000, services: [{ vip: "10.0.0.100", protocol: 6, port: 80, weight: 3, capacity: 0 }] }, KEY, seq++, Date.now(), "es1");
  wire!.send(udp4Frame({ srcMac: ES_MAC, dstMac: "01:00:5e:7f:4d:4d", src: ES_IP, dst: "239.255.77.77", sport: 7777, dport: 7777, payload }));
  const deadline = Date.now() + WAIT_MS;
  while (!relayed.length) {
    if (Date.now() > deadline) assert.fail(`nothing relayed:\n${logs.join("\n")}`);
    await sleep(5);
  }
  assert.ok(relayed[0]!.equals(Buffer.from(payload)), "relayed unchanged");
  const list = (await ask({ type: "server-list-request", requestId: 3, service: { vip: "10.0.0.100", protocol: 6, port: 80 }, offset: 0 })) as ServerListReplyMsg;
  assert.deepEqual(list.servers, [{ endSystem: "es1", addresses: [ES_IP], state: "up", weight: 3, capacity: 0 }]);
  const text = renderSupervisor(supervisorView(box!.supervisor()));
  assert.match(text, new RegExp(`Supervisor on 127\\.0\\.0\\.1:${port}, number authority running`));
  assert.match(text, /es1 +10\.0\.2\.21 +0 +\d+s ago/);
  assert.match(text, /ports +5000-5009 +1 +3 +0 +7/);
  assert.match(text, /1 +ports +es1 +5000-5002 +active/);
  assert.match(text, /relayed +1/);
  // monitoring carries the same counters: MQTT metrics and the status file
  const m = metricsOf(box!.view(), "lab", { eventsDropped: 0, eventsQueued: 0 });
  assert.equal(m.supervisor?.relayed, 1);
  assert.deepEqual(m.supervisor?.pools.map((p) => [p.name, p.leases]), [["ports", 1]]);
  assert.equal((box!.status() as { supervisor?: { relayed: number } }).supervisor?.relayed, 1);
});

test("appliance: after a restart the supervisor keeps its leases and lease ids from the state directory", async () => {
  await box!.stop();
  box = undefined;
  ({ box } = await boot());
  assert.match(logs.join("\n"), /number authority started from .*supervisor-leases\.json: 1 lease\(s\), next lease id 2/);
  const g = (await ask({ type: "number-request", requestId: 1, endSystem: "es2", pool: "ports", op: "lease", count: 3, leaseS: 60 }, "es2")) as NumberGrantMsg;
  assert.deepEqual([g.status, g.leaseId, g.first], ["granted", 2, 5003], "not the numbers es1 holds");
  assert.deepEqual(box.supervisor()!.supervisor!.leases().map((l) => [l.leaseId, l.endSystem, l.first, l.state]), [[1, "es1", 5000, "active"], [2, "es2", 5003, "active"]]);
  // es1's retry of its first request, answered from the lease itself
  const again = (await ask({ type: "number-request", requestId: 1, endSystem: "es1", pool: "ports", op: "lease", count: 3, leaseS: 3600 }, "es1")) as NumberGrantMsg;
  assert.deepEqual([again.status, again.leaseId, again.first], ["granted", 1, 5000]);
});
