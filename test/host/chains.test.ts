// Service chains in the appliance on the simulated board: a firewall and its alternate (devices
// that send every frame back) and an IDS on the chain port's switch. Packets reach the server
// through the firewall, the IDS gets copies; a firewall that stops returning packets is found by
// the engine's own counters and its flows go to the alternate; show chains says so.
import { freeUdpPort } from "../lib/ports.js";
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { tcp4Frame, parseMac, formatMac, SYN, ACK } from "../../host/net/frame.js";
import { SimSwitch } from "../lib/sim-switch.js";
import { Wire } from "../lib/sim-wire.js";
import { metricsOf } from "../../host/telemetry/metrics.js";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, CLIENT, backends } from "../lib/lab-config.js";

const CHAIN_MAC = "02:00:00:00:04:01";
const DEV = { fw1: "02:00:00:00:04:11", fw2: "02:00:00:00:04:12", ids1: "02:00:00:00:04:21" } as const;
const s1 = SERVERS[0];

// top-level await: the SNMP port is chosen before the config is written
const config: ConfigInput = {
  ports: [
    { name: "client", mac: CLIENT_PORT_MAC, ipv4: "192.0.2.1", gatewayMac: ROUTER_MAC },
    { name: "server", mac: SERVER_PORT_MAC, ipv4: "10.0.2.1" },
    { name: "chain", mac: CHAIN_MAC, ipv4: "10.0.4.1" },
  ],
  dataplane: { flows: { ipv4: 4096, ipv6: 1024 }, limits: { services: 4, backends: 8 }, buffers: { count: 1024 }, engines: 1, noVip: "drop" },
  backends: backends().filter((b) => b.name === "s1"),
  services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "nat", targetPort: 8080, backends: ["s1"], chain: "fw-ids" }],
  chains: [{
    name: "fw-ids",
    hops: [
      { name: "firewall", kind: "inline", devices: [{ name: "fw1", port: "chain", mac: DEV.fw1 }], alternates: [{ name: "fw2", port: "chain", mac: DEV.fw2 }] },
      { name: "ids", kind: "mirror", devices: [{ name: "ids1", port: "chain", mac: DEV.ids1 }] },
    ],
  }],
  telemetry: { enabled: false },
  snmp: { listen: { address: "127.0.0.1", port: await freeUdpPort() }, communities: [{ name: "fsw-chains" }] },
};

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const dir = await mkdtemp(join(tmpdir(), "fsw-chains-"));
const path = join(dir, "config.json");
await writeFile(path, JSON.stringify(config));
const clientPort = new SimPort("client", parseMac(CLIENT_PORT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_PORT_MAC));
const chainPort = new SimPort("chain", parseMac(CHAIN_MAC));
const router = new Wire("router", ROUTER_MAC, clientPort);
const server = new Wire("s1", s1.mac, serverPort);
const sw = new SimSwitch("chain");
sw.attach(chainPort);
/** Each device: frames it got; firewalls send each back (from their own MAC) while `alive`. */
const got: Record<keyof typeof DEV, Uint8Array[]> = { fw1: [], fw2: [], ids1: [] };
const alive = { fw1: true, fw2: true };
for (const name of Object.keys(DEV) as (keyof typeof DEV)[]) {
  const p = new SimPort(name, parseMac(DEV[name]));
  sw.attach(p);
  p.start((frames) => {
    for (const f of frames) {
      if (formatMac(f.subarray(0, 6)) !== DEV[name]) continue; // flooded, not for this device
      got[name].push(f);
      if (name !== "ids1" && alive[name]) {
        const back = f.slice();
        back.set(parseMac(CHAIN_MAC), 0);
        back.set(parseMac(DEV[name]), 6);
        p.send([back]);
      }
    }
  });
}
const logs: string[] = [];
const box = await Appliance.boot({ configPath: path, board: new SimBoard([clientPort, serverPort, chainPort]), log: (l) => void logs.push(l) });
after(async () => {
  await box.stop();
  await rm(dir, { recursive: true, force: true });
});

const toServer = (sport: number) => (f: Uint8Array): boolean => f[14 + 9] === 6 && ((f[34] << 8) | f[35]) === sport;
const syn = (sport: number, flags = SYN) => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport, dport: 80, flags });

test("chains: through the firewall to the server (port 8080), with a copy of the packet at the IDS", async () => {
  router.send(syn(41000));
  const f = await server.waitFor("the SYN at the server", toServer(41000));
  assert.equal((f[36] << 8) | f[37], 8080, "port translated at the server hop");
  assert.equal(got.fw1.length, 1, "it passed the firewall first");
  await sleep(50);
  assert.equal(got.ids1.length, 1, "the IDS got a copy");
  assert.equal(formatMac(got.ids1[0].subarray(6, 12)), CHAIN_MAC);
  assert.equal((got.ids1[0][36] << 8) | got.ids1[0][37], 8080, "the copy is the packet as it leaves for the server");
});

test("chains: a firewall that stops returning packets is taken out within seconds; its flows go to the alternate", async () => {
  alive.fw1 = false;
  const start = Date.now();
  let sport = 42000;
  // keep traffic flowing on the existing flow so that the stall is seen
  while (!logs.some((l) => l.includes("device fw1 down")) && Date.now() - start < 8000) {
    router.send(syn(41000, ACK));
    await sleep(100);
  }
  assert.ok(logs.some((l) => l.includes("chain fw-ids: hop firewall: device fw1 down: sent packets and returned none")), logs.join("\n"));
  await box.settled();
  const before = got.fw2.length;
  router.send(syn(41000, ACK));
  await server.waitFor("the existing flow's packet at the server again", (f) => toServer(41000)(f) && (f[47] & ACK) !== 0 && got.fw2.length > before);
  router.send(syn(++sport));
  await server.waitFor("a new flow through the alternate", toServer(sport));
  const text = box.chainView().map((d) => `${d.device} ${d.state}`).join(", ");
  assert.match(text, /fw1 down, fw2 up, ids1 up/);
  const c = box.view().counters();
  assert.ok(c.chains["fw-ids"].firewall.toPackets > c.chains["fw-ids"].firewall.fromPackets, "sent more than came back");
});

test("chains: request service validate sends a probe through every hop and says which device passed it", async () => {
  const r = await box.validateService("web", 500);
  assert.ok(Array.isArray(r), String(r));
  const by = Object.fromEntries((r as { device: string; result: string }[]).map((x) => [x.device, x.result]));
  assert.match(by.fw1, /no answer within 500 ms/, "fw1 passes nothing any more");
  assert.match(by.fw2, /passed: the probe came back/);
  assert.match(by.ids1, /copies go to 02:00:00:00:04:21/);
  assert.equal(await box.validateService("nope"), "no service nope (services: web)");
  const shown = box.aclView();
  assert.deepEqual(shown, [], "no ACL tables in this configuration");
  const m = metricsOf(box.view(), "lab", { eventsDropped: 0, eventsQueued: 0 });
  assert.ok((m.chains?.hops["fw-ids"].firewall.toPackets ?? 0) > 0, "MQTT metrics carry the chains");
  assert.deepEqual(m.chains?.devices.map((d) => [d.device, d.state]), [["fw1", "down"], ["fw2", "up"], ["ids1", "up"]]);
  assert.equal(m.acls, undefined);
});

test("chains: snmptable reads the chain device table through the shipped MIB", async () => {
  const repo = fileURLToPath(new URL("../../../", import.meta.url));
  const mibs = `${join(repo, "node_modules/net-snmp/lib/mibs")}:${join(repo, "mib")}`;
  const env = { ...process.env, SNMPCONFPATH: dir, HOME: dir };
  const out = await new Promise<string>((resolve, reject) => execFile("snmptable", ["-v2c", "-c", "fsw-chains", "-t", "1", "-r", "1", "-M", mibs, "-m", "SNMPv2-MIB:FLOWSWITCH-MIB", "-Cf", "|", `127.0.0.1:${config.snmp!.listen!.port}`, "FLOWSWITCH-MIB::flowswitchChainDeviceTable"], { env, timeout: 15_000 }, (e, so, se) => (e ? reject(new Error(`${e.message}\n${se}`)) : resolve(String(so)))));
  const lines = out.trim().split("\n");
  const head = lines.findIndex((l) => l.startsWith("flowswitchChainDeviceIndex"));
  assert.ok(head >= 0, out);
  const cols = lines[head].split("|");
  const rows = lines.slice(head + 1).map((l) => Object.fromEntries(l.split("|").map((v, i) => [cols[i], v])));
  assert.deepEqual(rows.map((r) => [r.flowswitchChainDevice, r.flowswitchChainHopKind, r.flowswitchChainDeviceRole, r.flowswitchChainDeviceState]), [
    ["fw1", "inline", "device", "down"], ["fw2", "inline", "alternate", "up"], ["ids1", "mirror", "device", "up"],
  ]);
  assert.ok(Number(rows[0].flowswitchChainDeviceSent) > Number(rows[0].flowswitchChainDeviceReturned), JSON.stringify(rows[0]));
});
