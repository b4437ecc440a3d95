// Service discovery through SNMP, seen by net-snmp's own tools: an appliance on the simulated
// board learns two end systems from signed advertisements (and refuses forged, replayed, stale,
// future and malformed ones); snmpwalk / snmptable read the flowswitchDiscovery group through the
// shipped MIB, and snmptrapd receives flowswitchEndSystemDown when one falls silent and
// flowswitchEndSystemUp when it speaks again. As in snmp.test.ts, the tools see only the MIB
// files we ship or depend on, and no snmp.conf of the host's.
import { freeUdpPort } from "../lib/ports.js";
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { udp4Frame, parseMac } from "../../host/net/frame.js";
import { encode, type Message } from "../../host/discovery/protocol.js";
import { startSnmpAgent, flowswitchOids } from "../../host/snmp/index.js";
import { Wire } from "../lib/sim-wire.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const MIBDIRS = `${join(REPO, "node_modules/net-snmp/lib/mibs")}:${join(REPO, "mib")}`;
const MIBS = "SNMPv2-MIB:IF-MIB:FLOWSWITCH-MIB";
const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const GROUP = "239.255.77.77";
const GROUP_MAC = "01:00:5e:7f:4d:4d";
const VIP = "10.0.0.100";
const COMMUNITY = "fsw-ro-9";
const TRAP_COMMUNITY = "fsw-trap-9";
const SECRET = Buffer.alloc(32, 0x5a);
const KEY = { id: 7, secret: new Uint8Array(SECRET) };
const ES = {
  es1: { ip: "10.0.2.21", mac: "02:00:00:00:02:21", intervalMs: 60_000 },
  es2: { ip: "10.0.2.22", mac: "02:00:00:00:02:22", intervalMs: 100 }, // down after 3 x 100 ms of silence
} as const;
const STRANGER = "10.0.2.66";


const dir = await mkdtemp(join(tmpdir(), "fsw-snmp-disc-"));
const toolEnv = { ...process.env, SNMPCONFPATH: dir, SNMP_PERSISTENT_DIR: join(dir, "persist"), HOME: dir };

interface Run { code: number | null; stdout: string; stderr: string }
function run(cmd: string, args: string[], timeoutMs = 15_000): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env: toolEnv, timeout: timeoutMs, killSignal: "SIGKILL" }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? (err as { code: number }).code : null) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) });
    });
  });
}

const agentPort = await freeUdpPort();
const bareAgentPort = await freeUdpPort();
const trapPort = await freeUdpPort();
const config: ConfigInput = {
  system: { hostname: "fsw-snmp-discovery" },
  ports: [{ name: "client", mac: CLIENT_MAC, ipv4: "192.0.2.1" }, { name: "server", mac: SERVER_MAC, ipv4: "10.0.2.1" }],
  dataplane: { flows: { ipv4: 1024, ipv6: 256 }, limits: { services: 2, backends: 8 }, buffers: { count: 512 }, engines: 1, noVip: "drop" },
  backends: [],
  services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: [] }],
  telemetry: { enabled: false },
  discovery: { keys: [{ id: KEY.id, secret: SECRET.toString("hex") }] },
  snmp: {
    listen: { address: "127.0.0.1", port: agentPort },
    communities: [{ name: COMMUNITY }],
    notify: [{ name: "trapd", address: "127.0.0.1", port: trapPort, version: "v2c", community: TRAP_COMMUNITY }],
  },
};
await writeFile(join(dir, "c.json"), JSON.stringify(config));

await writeFile(join(dir, "snmptrapd.conf"), `authCommunity log ${TRAP_COMMUNITY}\n`);
let trapLog = "";
const trapd: ChildProcess = spawn("snmptrapd", ["-f", "-Lo", "-C", "-c", join(dir, "snmptrapd.conf"), "-M", MIBDIRS, "-m", MIBS, "-F", "%P: %W %v\n", "-n", `udp:127.0.0.1:${trapPort}`], { env: toolEnv, stdio: ["ignore", "pipe", "pipe"] });
process.once("exit", () => trapd.kill("SIGKILL"));
trapd.stdout?.on("data", (d: Buffer) => (trapLog += d.toString()));
trapd.stderr?.on("data", (d: Buffer) => (trapLog += d.toString()));

const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_MAC));
const sw = new Wire("switch", ES.es1.mac, serverPort);
const logs: string[] = [];
const log = (l: string): void => void logs.push(l);
const box = await Appliance.boot({ configPath: join(dir, "c.json"), board: new SimBoard([clientPort, serverPort]), log });
let beat: NodeJS.Timeout | undefined;
let bare: { stop(): Promise<void> } | undefined;
after(async () => {
  clearInterval(beat);
  await bare?.stop();
  await box.stop();
  trapd.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`${what}\nlog:\n${logs.join("\n")}\nsnmptrapd:\n${trapLog}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

let seq = Date.now();
/** A signed datagram as an agent sends it to the group, from `src`. */
function datagram(src: string, msg: Message, o: { key?: typeof KEY; time?: number; sender?: string } = {}): Uint8Array {
  const payload = encode(msg, o.key ?? KEY, seq++, o.time ?? Date.now(), o.sender ?? ("endSystem" in msg ? msg.endSystem : "es1"));
  return udp4Frame({ srcMac: ES.es1.mac, dstMac: GROUP_MAC, src, dst: GROUP, sport: 7777, dport: 7777, payload });
}
const service = (id: keyof typeof ES): Message => ({
  type: "service", endSystem: id, addresses: [ES[id].ip, `2001:db8::${id.slice(2)}`], state: "up", intervalMs: ES[id].intervalMs,
  services: [{ vip: VIP, protocol: 6, port: 80, weight: 10, capacity: 0 }],
});
const es2Beat = (): void => sw.send(datagram(ES.es2.ip, service("es2")));

await until("snmptrapd started", () => trapLog.includes("NET-SNMP version"));
await until("the appliance's SNMP agent listening", () => logs.some((l) => l.startsWith("snmp: agent on udp")));
const view = box.view();
const oids = flowswitchOids(32473);

// what the end systems say: es1 once (with a LOAD), es2 every 50 ms; and what is refused
const first = datagram(ES.es1.ip, service("es1"));
sw.send(first);
sw.send(datagram(ES.es1.ip, { type: "load", endSystem: "es1", cpu: 42, connections: 17, responseTimeUs: 1500 }));
sw.send(datagram(ES.es1.ip, { type: "load", endSystem: "es9", cpu: 1, connections: 1, responseTimeUs: 1 })); // unknown: ignored
es2Beat();
beat = setInterval(es2Beat, 50);
const wrongKey = { id: KEY.id, secret: new Uint8Array(32).fill(1) };
sw.send(datagram(STRANGER, service("es1"), { key: wrongKey }));
sw.send(datagram(STRANGER, service("es1"), { key: wrongKey }));
sw.send(datagram(STRANGER, service("es1"), { key: { id: 99, secret: KEY.secret } }));
sw.send(first); // replayed
sw.send(datagram(ES.es1.ip, service("es1"), { time: Date.now() - 120_000 })); // stale
sw.send(datagram(ES.es1.ip, service("es1"), { time: Date.now() + 120_000 })); // future
sw.send(udp4Frame({ srcMac: ES.es1.mac, dstMac: GROUP_MAC, src: STRANGER, dst: GROUP, sport: 7777, dport: 7777, payload: new Uint8Array([1, 2, 3]) })); // malformed
await until("two end systems, a LOAD, and seven refusals", () => {
  const d = view.discovery();
  return !!d && d.endSystems.length === 2 && !!d.endSystems[0].load && Object.values(d.rejected).reduce((a, b) => a + b, 0) === 7;
});
await new Promise((r) => setTimeout(r, 1100)); // past the agent's one-second snapshot

const target = `127.0.0.1:${agentPort}`;
// -OU: values without their UNITS
const v2c = ["-v2c", "-c", COMMUNITY, "-t", "1", "-r", "1", "-M", MIBDIRS, "-m", MIBS, "-OU"];

/** snmptable -Cf '|' output as rows of { column name (without the table prefix): value }. */
function rows(out: string, prefix: string): Record<string, string>[] {
  const lines = out.trim().split("\n");
  const head = lines.findIndex((l) => l.startsWith(prefix));
  assert.ok(head >= 0, out);
  const cols = lines[head].split("|").map((c) => c.slice(prefix.length));
  return lines.slice(head + 1).filter(Boolean).map((l) => Object.fromEntries(l.split("|").map((v, i) => [cols[i], v])));
}

test("snmp discovery: snmptranslate places the discovery objects and notifications where the agent serves them", async () => {
  const names: [string, string][] = [
    ["flowswitchDiscovery", oids.discovery],
    ["flowswitchDiscoveryRejectEntry", oids.discoveryRejectEntry],
    ["flowswitchEndSystemEntry", oids.endSystemEntry],
    ["flowswitchNotifyEndSystem", oids.varbind.endSystem],
    ["flowswitchNotifyEndSystemState", oids.varbind.endSystemState],
    ["flowswitchEndSystemDown", oids.notification.endSystemDown],
    ["flowswitchEndSystemUp", oids.notification.endSystemUp],
  ];
  const t = await run("snmptranslate", ["-M", MIBDIRS, "-m", "FLOWSWITCH-MIB", "-On", ...names.map(([n]) => `FLOWSWITCH-MIB::${n}`)]);
  assert.equal(t.stderr, "");
  assert.deepEqual(t.stdout.trim().split("\n").filter(Boolean), names.map(([, o]) => `.${o}`));
});

test("snmp discovery: snmpwalk reads the counters: accepted, ignored, end systems, none down", async () => {
  const r = await run("snmpwalk", [...v2c, "-Oqs", target, "FLOWSWITCH-MIB::flowswitchDiscovery"]);
  assert.equal(r.code, 0, r.stderr);
  const got = Object.fromEntries(r.stdout.trim().split("\n").filter((l) => /^\S+\.0 /.test(l)).map((l) => {
    const [k, v] = l.split(" ");
    return [k.replace(/\.0$/, ""), v];
  }));
  // es2 keeps advertising: accepted grows between the agent's snapshot and now
  const accepted = Number(got.flowswitchDiscoveryAccepted);
  assert.ok(accepted >= 4 && accepted <= view.discovery()!.accepted, `accepted ${accepted}: es1's SERVICE and LOAD, the unknown LOAD, es2's SERVICEs`);
  assert.deepEqual({ ...got, flowswitchDiscoveryAccepted: "" }, {
    flowswitchDiscoveryEnabled: "true",
    flowswitchDiscoveryAccepted: "",
    flowswitchDiscoveryIgnored: "1",
    flowswitchDiscoveryFlowsRefused: "0",
    flowswitchDiscoveryFlowsWidened: "0",
    flowswitchDiscoveryFlowRules: "0",
    flowswitchDiscoveryEndSystems: "2",
    flowswitchDiscoveryEndSystemsDown: "0",
  }, r.stdout);
});

test("snmp discovery: snmptable shows the refusals by reason, every reason a row", async () => {
  const r = await run("snmptable", [...v2c, "-Cf", "|", target, "FLOWSWITCH-MIB::flowswitchDiscoveryRejectTable"]);
  assert.equal(r.code, 0, r.stderr);
  const got = rows(r.stdout, "flowswitchDiscovery").map((x) => [x.RejectReason, x.RejectName, x.Rejects]);
  assert.deepEqual(got, [
    ["malformed", "malformed", "1"],
    ["unknownKey", "unknown-key", "1"],
    ["badMac", "bad-mac", "2"],
    ["unsupportedVersion", "unsupported-version", "0"],
    ["badField", "bad-field", "0"],
    ["replayed", "replayed", "1"],
    ["stale", "stale", "1"],
    ["future", "future", "1"],
  ]);
  // by source stays in the view (console, telemetry): the stranger's forgeries are told apart
  assert.deepEqual(view.discovery()!.rejectedBy[STRANGER], { "bad-mac": 2, "unknown-key": 1, malformed: 1 });
});

test("snmp discovery: snmptable shows each end system: state, first address, interval, last heard, and LOAD when heard", async () => {
  const r = await run("snmptable", [...v2c, "-Cf", "|", target, "FLOWSWITCH-MIB::flowswitchEndSystemTable"]);
  assert.equal(r.code, 0, r.stderr);
  const es = rows(r.stdout, "flowswitchEndSystem");
  assert.deepEqual(es.map((x) => [x.Index, x.Id, x.State, x.Address, x.Interval, x.LoadHeard, x.Cpu, x.Connections, x.ResponseTime]), [
    ["1", "es1", "up", ES.es1.ip, "60000", "true", "42", "17", "1500"],
    ["2", "es2", "up", ES.es2.ip, "100", "false", "0", "0", "0"],
  ], r.stdout);
  assert.ok(Number(es[0].LastHeard) >= 1000 && Number(es[0].LastHeard) < 60_000, `es1 heard once, over a second ago: ${es[0].LastHeard}`);
  assert.ok(Number(es[1].LastHeard) < 1000, `es2 heard every 50 ms: ${es[1].LastHeard}`);
  assert.ok(Number(es[0].LoadAge) >= 1000, `es1's LOAD is as old as its SERVICE: ${es[0].LoadAge}`);
});

test("snmp discovery: snmptrapd receives flowswitchEndSystemDown when es2 falls silent, flowswitchEndSystemUp when it speaks again", { timeout: 30_000 }, async () => {
  const count = (name: string): number => trapLog.split(`FLOWSWITCH-MIB::${name}`).length - 1;
  clearInterval(beat);
  await until("end system down", () => count("flowswitchEndSystemDown") >= 1);
  assert.match(trapLog, /flowswitchNotifyEndSystem\.0 = STRING: "?es2"?/);
  assert.match(trapLog, /flowswitchNotifyEndSystemState\.0 = INTEGER: down\(4\)/);
  assert.match(trapLog, /flowswitchNotifyReason\.0 = STRING: "?silent for \d+ ms/);
  await new Promise((r) => setTimeout(r, 1100));
  const down = await run("snmpget", [...v2c, "-Oqv", target, "FLOWSWITCH-MIB::flowswitchDiscoveryEndSystemsDown.0", "FLOWSWITCH-MIB::flowswitchEndSystemState.2"]);
  assert.deepEqual(down.stdout.trim().split("\n"), ["1", "down"], down.stderr);

  es2Beat();
  beat = setInterval(es2Beat, 50);
  await until("end system up", () => count("flowswitchEndSystemUp") >= 1);
  assert.match(trapLog, /flowswitchNotifyEndSystemState\.0 = INTEGER: up\(1\)/);
  // one of each: es1 and es2 appearing, es1's LOAD, es2's steady heartbeat are no alarms
  const lines = trapLog.split("\n").filter((l) => l.includes("snmpTrapOID") && l.includes("FLOWSWITCH-MIB::flowswitchEndSystem"));
  assert.deepEqual(lines.map((l) => /flowswitchEndSystem(Down|Up)/.exec(l)![1]), ["Down", "Up"], trapLog);
  assert.ok(lines.every((l) => l.includes(TRAP_COMMUNITY)));
});

test("snmp discovery: without a discovery section, flowswitchDiscoveryEnabled is false, the counters 0 and the tables empty", async () => {
  bare = await startSnmpAgent({ ...box.running.snmp!, listen: { address: "127.0.0.1", port: bareAgentPort }, notify: [] }, { ...view, discovery: () => undefined }, log);
  const at = `127.0.0.1:${bareAgentPort}`;
  const r = await run("snmpwalk", [...v2c, "-Oqs", at, "FLOWSWITCH-MIB::flowswitchDiscovery"]);
  assert.equal(r.code, 0, r.stderr);
  // the discovery group ends the MIB tree, so the walk ends with net-snmp's "past the end" line
  const lines = r.stdout.trim().split("\n").filter((l) => !l.includes("No more variables left"));
  assert.equal(lines[0], "flowswitchDiscoveryEnabled.0 false");
  assert.ok(lines.slice(1).every((l) => / 0$/.test(l)), r.stdout);
  assert.equal(lines.length, 8, "the scalars only: no table rows");
});
