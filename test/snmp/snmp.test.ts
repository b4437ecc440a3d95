// The SNMP agent seen by real managers: net-snmp's command-line tools (snmpwalk, snmpget,
// snmptable, snmptranslate) poll an appliance booted on the simulated board, and snmptrapd
// receives its notifications. The tools run with only the MIB files we ship or depend on:
// mib/FLOWSWITCH-MIB.txt and the SNMPv2-* / IF-MIB files of the net-snmp npm package (Debian's
// own IETF MIBs live in non-free snmp-mibs-downloader), and with no snmp.conf of the host's.
import { freeUdpPort } from "../lib/ports.js";
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createServer, type Server } from "node:net";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { tcp4Frame, parseMac, SYN } from "../../host/net/frame.js";
import { startSnmpAgent, flowswitchOids } from "../../host/snmp/index.js";
import { VERSION } from "../../host/version.js";

const REPO = fileURLToPath(new URL("../../../", import.meta.url));
const MIBDIRS = `${join(REPO, "node_modules/net-snmp/lib/mibs")}:${join(REPO, "mib")}`;
const MIBS = "SNMPv2-MIB:IF-MIB:FLOWSWITCH-MIB";
const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const ROUTER_MAC = "02:00:00:00:01:fe";
const VIP = "10.0.0.100";
const COMMUNITY = "fsw-ro-7";
const TRAP_COMMUNITY = "fsw-trap-7";
const USER = { name: "monitor", authKey: "auth-secret-1", privKey: "priv-secret-1" };

async function listen(host: string, port = 0): Promise<Server> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(port, host, r));
  return s;
}
const portOf = (s: Server): number => (s.address() as { port: number }).port;

const dir = await mkdtemp(join(tmpdir(), "fsw-snmp-"));
// no snmp.conf of the host's (Debian's says `mibs :`), a persistent directory of our own
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
const trapPort = await freeUdpPort();
const healthy = await listen("127.0.0.1");
let flaky: Server | undefined = await listen("127.0.0.2");
const flakyPort = portOf(flaky);
const check = (port: number) => ({ type: "tcp" as const, port, interval: 0.1, timeout: 0.08, rise: 2, fall: 2 });
const config: ConfigInput = {
  system: { hostname: "fsw-snmp-test" },
  ports: [{ name: "client", mac: CLIENT_MAC, gatewayMac: ROUTER_MAC }, { name: "server", mac: SERVER_MAC }],
  dataplane: { flows: { ipv4: 4096, ipv6: 256 }, limits: { services: 2, backends: 4 }, buffers: { count: 512 }, engines: 1, noVip: "drop" },
  backends: [
    { name: "alpha", address: "127.0.0.1", mac: "02:00:00:00:02:11", via: "server", check: check(portOf(healthy)) },
    { name: "beta", address: "127.0.0.2", mac: "02:00:00:00:02:12", via: "server", check: check(flakyPort) },
  ],
  services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: ["alpha", { name: "beta", weight: 3 }] }],
  snmp: {
    listen: { address: "127.0.0.1", port: agentPort },
    location: "rack 7, row B",
    contact: "noc@example.net",
    communities: [{ name: COMMUNITY }],
    users: [{ name: USER.name, authProtocol: "sha256", authKey: USER.authKey, privProtocol: "aes", privKey: USER.privKey }],
    notify: [
      { name: "trapd-v2c", address: "127.0.0.1", port: trapPort, version: "v2c", community: TRAP_COMMUNITY },
      { name: "trapd-v3", address: "127.0.0.1", port: trapPort, version: "v3", user: USER.name },
    ],
    flowTableThreshold: 1, // 41 of 4096 IPv4 entries: the test's flows cross it
  },
};
await writeFile(join(dir, "c.json"), JSON.stringify(config));

// snmptrapd first, so that no notification is sent before it listens
await writeFile(join(dir, "snmptrapd.conf"), [
  `authCommunity log ${TRAP_COMMUNITY}`,
  `createUser ${USER.name} SHA-256 ${USER.authKey} AES ${USER.privKey}`,
  `authUser log ${USER.name} priv`,
  "",
].join("\n"));
let trapLog = "";
const trapd: ChildProcess = spawn("snmptrapd", ["-f", "-Lo", "-C", "-c", join(dir, "snmptrapd.conf"), "-M", MIBDIRS, "-m", MIBS, "-F", "%P: %W %v\n", "-n", `udp:127.0.0.1:${trapPort}`], { env: toolEnv, stdio: ["ignore", "pipe", "pipe"] });
process.once("exit", () => trapd.kill("SIGKILL")); // even if the setup below throws before after() is registered
trapd.stdout?.on("data", (d: Buffer) => (trapLog += d.toString()));
trapd.stderr?.on("data", (d: Buffer) => (trapLog += d.toString()));

const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_MAC));
const router = new SimPort("router", parseMac(ROUTER_MAC));
const servers = new SimPort("servers", parseMac("02:00:00:00:02:11"));
SimPort.wire(router, clientPort);
SimPort.wire(servers, serverPort);
const atServers: Uint8Array[] = [];
servers.start((f) => void atServers.push(...f));
router.start(() => undefined);
const logs: string[] = [];
const log = (l: string): void => void logs.push(l);
const box = await Appliance.boot({ configPath: join(dir, "c.json"), board: new SimBoard([clientPort, serverPort]), log });
after(async () => {
  await box.stop();
  trapd.kill("SIGKILL");
  healthy.close();
  flaky?.close();
  await rm(dir, { recursive: true, force: true });
});

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`${what}\nlog:\n${logs.join("\n")}\nsnmptrapd:\n${trapLog}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

await until("snmptrapd started", () => trapLog.includes("NET-SNMP version"));
const view = box.view();
const oids = flowswitchOids(32473);
// the appliance started its agent from the configuration's snmp section
await until("the appliance's SNMP agent listening", () => !logs.some((l) => l.startsWith("snmp: not started")));
// both backends healthy, then traffic: 200 new flows through the VIP
await until("both backends up", () => view.backends().every((b) => b.health === "up"));
router.send(Array.from({ length: 200 }, (_, i) => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.1", dst: VIP, sport: 20_000 + i, dport: 80, flags: SYN })));
await until("the flows reach the servers", () => atServers.filter((f) => f[12] === 0x08 && f[13] === 0x00).length >= 200);

const target = `127.0.0.1:${agentPort}`;
const v2c = (community = COMMUNITY): string[] => ["-v2c", "-c", community, "-t", "1", "-r", "1", "-M", MIBDIRS, "-m", MIBS];
const v3 = (authKey = USER.authKey, privKey = USER.privKey): string[] => ["-v3", "-l", "authPriv", "-u", USER.name, "-a", "SHA-256", "-A", authKey, "-x", "AES", "-X", privKey, "-t", "1", "-r", "1", "-M", MIBDIRS, "-m", MIBS];

test("snmp: snmptranslate loads the shipped FLOWSWITCH-MIB without errors, and its OIDs are the agent's", async () => {
  const alone = await run("snmptranslate", ["-M", MIBDIRS, "-m", "FLOWSWITCH-MIB", "-Tp"]);
  assert.equal(alone.code, 0, alone.stderr);
  assert.equal(alone.stderr, "", "no errors or warnings");
  for (const n of ["flowswitchServiceTable", "flowswitchBackendTable", "flowswitchEngineTable", "flowswitchFlowsIpv4Used", "flowswitchHaState", "flowswitchBackendDown", "flowswitchLoginFailure"]) {
    assert.ok(alone.stdout.includes(n), `${n} in the tree`);
  }
  // the form an operator types: added to the default MIB path and list; the only complaints are the
  // host's own missing default modules (Debian ships no IETF MIBs), never about our file
  const added = await run("snmptranslate", ["-M", `+:${MIBDIRS}`, "-m", "+FLOWSWITCH-MIB", "-Tp"]);
  assert.equal(added.code, 0, added.stderr);
  assert.ok(added.stdout.includes("flowswitchBackendTable"));
  assert.deepEqual(added.stderr.split("\n").filter((l) => /FLOWSWITCH/i.test(l)), [], added.stderr);
  const names: [string, string][] = [
    ["flowswitchAppliance", oids.appliance],
    ["flowswitchServiceEntry", oids.serviceEntry],
    ["flowswitchBackendEntry", oids.backendEntry],
    ["flowswitchEngineEntry", oids.engineEntry],
    ["flowswitchHaState", oids.haState],
    ["flowswitchNotifyBackendName", oids.varbind.backendName],
    ["flowswitchNotifyFailures", oids.varbind.failures],
    ["flowswitchBackendDown", oids.notification.backendDown],
    ["flowswitchConfigCommitted", oids.notification.configCommitted],
    ["flowswitchFlowTableHigh", oids.notification.flowTableHigh],
    ["flowswitchLoginFailure", oids.notification.loginFailure],
  ];
  const t = await run("snmptranslate", ["-M", MIBDIRS, "-m", "FLOWSWITCH-MIB", "-On", ...names.map(([n]) => `FLOWSWITCH-MIB::${n}`)]);
  assert.equal(t.stderr, "");
  assert.deepEqual(t.stdout.trim().split("\n").filter(Boolean), names.map(([, o]) => `.${o}`));
});

test("snmp: snmpwalk v2c reads the system group: version, our sysObjectID, hostname, contact, location", async () => {
  const r = await run("snmpwalk", [...v2c(), "-Oq", target, "SNMPv2-MIB::system"]);
  assert.equal(r.code, 0, r.stderr + logs.join("\n"));
  assert.match(r.stdout, new RegExp(`sysDescr\\.0 .*Flowswitch ${VERSION.replace(/\./g, "\\.")}`));
  assert.match(r.stdout, /sysObjectID\.0 FLOWSWITCH-MIB::flowswitchAppliance/);
  assert.match(r.stdout, /sysUpTime\.0 /);
  assert.match(r.stdout, /sysName\.0 "?fsw-snmp-test"?/);
  assert.match(r.stdout, /sysContact\.0 "?noc@example\.net"?/);
  assert.match(r.stdout, /sysLocation\.0 "?rack 7, row B"?/);
  const ifs = await run("snmpwalk", [...v2c(), "-Oq", target, "IF-MIB::ifName"]);
  assert.match(ifs.stdout, /ifName\.1 "?client"?\nIF-MIB::ifName\.2 "?server"?|ifName\.1 "?client"?\nifName\.2 "?server"?/, ifs.stdout);
});

test("snmp: snmpwalk v3 authPriv (SHA-256, AES) reads the same tree", async () => {
  const r = await run("snmpwalk", [...v3(), "-Oq", target, "IF-MIB::ifXTable"]);
  assert.equal(r.code, 0, r.stderr + logs.join("\n"));
  assert.match(r.stdout, /ifName\.1 "?client"?/);
  assert.match(r.stdout, /ifHCInOctets\.1 \d+/);
  const sys = await run("snmpget", [...v3(), "-Oqv", target, "SNMPv2-MIB::sysName.0"]);
  assert.equal(sys.stdout.trim().replace(/"/g, ""), "fsw-snmp-test");
});

test("snmp: snmpget of IF-MIB HC counters matches the data plane's port counters", async () => {
  // traffic has stopped; wait out the agent's one-second snapshot so both read the same counts
  await new Promise((r) => setTimeout(r, 1100));
  const cols = ["ifHCInOctets", "ifHCInUcastPkts", "ifHCOutOctets", "ifHCOutUcastPkts"];
  const r = await run("snmpget", [...v2c(), "-Oqv", target, ...[1, 2].flatMap((i) => cols.map((c) => `IF-MIB::${c}.${i}`))]);
  assert.equal(r.code, 0, r.stderr);
  const got = r.stdout.trim().split("\n").map(Number);
  const ports = view.ports();
  const want = ports.flatMap((p) => [p.rxBytes, p.rxPackets, p.txBytes, p.txPackets]);
  assert.deepEqual(got, want);
  assert.ok(ports[0].rxPackets >= 200 && ports[1].txPackets >= 200, `the counters moved: ${JSON.stringify(ports)}`);
});

test("snmp: snmptable shows the service and backend tables through the shipped MIB", async () => {
  const s = await run("snmptable", [...v2c(), "-OU", "-Cf", "|", "-CH", target, "FLOWSWITCH-MIB::flowswitchServiceTable"]);
  assert.equal(s.code, 0, s.stderr);
  const svc = s.stdout.trim().split("\n").map((l) => l.split("|"));
  assert.equal(svc.length, 1, s.stdout);
  assert.deepEqual(svc[0].slice(0, 7), ["1", "web", VIP, "tcp", "80", "dsr", "2"]);
  assert.ok(Number(svc[0][7]) >= 200, `service packets: ${s.stdout}`);
  const b = await run("snmptable", [...v2c(), "-OU", "-Cf", "|", target, "FLOWSWITCH-MIB::flowswitchBackendTable"]);
  assert.equal(b.code, 0, b.stderr);
  const lines = b.stdout.trim().split("\n");
  const head = lines.find((l) => l.startsWith("flowswitchBackendIndex") || l.includes("|Name|") || l.startsWith("Index"))!;
  assert.ok(head, b.stdout);
  const h = head.split("|");
  const rows = lines.slice(lines.indexOf(head) + 1).map((l) => Object.fromEntries(l.split("|").map((v, i) => [h[i], v])));
  const col = (n: string): string => h.find((x) => x.endsWith(n))!;
  assert.deepEqual(rows.map((r) => [r[col("Name")], r[col("Address")], r[col("State")], r[col("Weight")], r[col("Health")]]), [
    ["alpha", "127.0.0.1", "active", "1", "up"],
    ["beta", "127.0.0.2", "active", "3", "up"],
  ]);
  const vb = view.backends();
  assert.equal(rows.reduce((n, r) => n + Number(r[col("Packets")]), 0), vb.reduce((n, x) => n + x.packets, 0));
  assert.ok(rows.every((r) => Number(r[col("ActiveFlows")]) >= 0 && r[col("Bytes")] !== undefined));
  const e = await run("snmptable", [...v3(), "-Cf", "|", "-CH", target, "FLOWSWITCH-MIB::flowswitchEngineTable"]);
  assert.equal(e.stdout.trim().split("\n").length, 1, e.stdout);
});

test("snmp: a wrong community and wrong v3 keys get no data", async () => {
  const c = await run("snmpget", [...v2c("public"), target, "SNMPv2-MIB::sysName.0"]);
  assert.notEqual(c.code, 0);
  assert.doesNotMatch(c.stdout, /fsw-snmp-test/);
  assert.match(c.stderr, /Timeout/);
  const a = await run("snmpget", [...v3("wrong-auth-pass"), target, "SNMPv2-MIB::sysName.0"]);
  assert.notEqual(a.code, 0);
  assert.doesNotMatch(a.stdout, /fsw-snmp-test/);
  const p = await run("snmpget", [...v3(USER.authKey, "wrong-priv-pass"), target, "SNMPv2-MIB::sysName.0"]);
  assert.notEqual(p.code, 0);
  assert.doesNotMatch(p.stdout, /fsw-snmp-test/);
  const w = await run("snmpwalk", [...v2c("fsw-trap-7"), target, "SNMPv2-MIB::system"]);
  assert.doesNotMatch(w.stdout, /fsw-snmp-test/, "a notification community is not a read community");
});

test("snmp: snmptrapd receives backend down/up, commit, login failure, HA change and flow-table-high as v2c traps and v3 informs", { timeout: 60_000 }, async () => {
  const count = (name: string): number => trapLog.split(`FLOWSWITCH-MIB::${name}`).length - 1;
  await until("flow-table-high (threshold 1%) from both receivers", () => count("flowswitchFlowTableHigh") >= 2);
  flaky?.close();
  flaky = undefined;
  await until("backend down, as a trap and an inform", () => count("flowswitchBackendDown") >= 2);
  assert.match(trapLog, /flowswitchNotifyBackendName\.0 = STRING: "?beta"?/);
  assert.match(trapLog, /flowswitchNotifyReason\.0 = STRING: "?[a-z]/);
  view.events.emit({ type: "commit", seq: 42, user: "admin", comment: "drain beta", at: Date.now() });
  await until("config committed", () => count("flowswitchConfigCommitted") >= 2);
  assert.match(trapLog, /flowswitchNotifyCommitSeq\.0 = Gauge32: 42/);
  assert.match(trapLog, /flowswitchNotifyComment\.0 = STRING: "?drain beta"?/);
  view.events.emit({ type: "login-failure", user: "mallory", failures: 3, at: Date.now() });
  view.events.emit({ type: "ha-state", from: "standby", to: "active", at: Date.now() });
  await until("login failure and HA change", () => count("flowswitchLoginFailure") >= 2 && count("flowswitchHaStateChange") >= 2);
  assert.match(trapLog, /flowswitchNotifyHaTo\.0 = INTEGER: active\(2\)/);
  // beta comes back
  flaky = await listen("127.0.0.2", flakyPort);
  await until("backend up, as a trap and an inform", () => count("flowswitchBackendUp") >= 2);
  // every notification came once as a v2c trap with the community, once as a v3 inform from the user
  const lines = trapLog.split("\n").filter((l) => l.includes("FLOWSWITCH-MIB::flowswitch") && l.includes("snmpTrapOID"));
  for (const n of ["FlowTableHigh", "BackendDown", "ConfigCommitted", "LoginFailure", "HaStateChange", "BackendUp"]) {
    const of = lines.filter((l) => l.includes(`OID: FLOWSWITCH-MIB::flowswitch${n}`));
    assert.equal(of.filter((l) => l.includes(TRAP_COMMUNITY)).length, 1, `${n} as a v2c trap:\n${of.join("\n")}`);
    assert.equal(of.filter((l) => l.includes(USER.name)).length, 1, `${n} as a v3 inform:\n${of.join("\n")}`);
  }
});

test("snmp: a port already in use fails start with a clear error", async () => {
  await assert.rejects(startSnmpAgent(box.running.snmp!, view, log), (e: Error) => {
    assert.match(e.message, new RegExp(`snmp: cannot listen on udp 127\\.0\\.0\\.1:${agentPort}: .*EADDRINUSE`));
    return true;
  });
});
