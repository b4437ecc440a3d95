// Availability clusters (issue 11): a primary-backup service sends every new flow to its primary;
// when the primary fails, the next member that can take flows becomes primary and takes the
// failed one's flows; when the old primary recovers it stays a secondary (no pre-emption).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { tcp4Frame, parseMac, formatMac, SYN, ACK } from "../../host/net/frame.js";
import { Wire } from "../lib/sim-wire.js";
import { SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, CLIENT, backends } from "../lib/lab-config.js";

type State = "active" | "draining" | "down";
function config(states: Record<string, State> = {}): ConfigInput {
  return {
    ports: [
      { name: "client", mac: CLIENT_PORT_MAC, ipv4: "192.0.2.1", gatewayMac: ROUTER_MAC },
      { name: "server", mac: SERVER_PORT_MAC, ipv4: "10.0.2.1" },
    ],
    dataplane: { flows: { ipv4: 4096, ipv6: 1024 }, limits: { services: 4, backends: 8 }, buffers: { count: 1024 }, engines: 1, noVip: "drop" },
    backends: backends(states).filter((b) => !b.name.endsWith("v6")),
    services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: ["s1", "s2", "s3"], policy: "primary-backup" }],
    telemetry: { enabled: false },
  };
}

const dir = await mkdtemp(join(tmpdir(), "fsw-primary-"));
const path = join(dir, "config.json");
await writeFile(path, JSON.stringify(config()));
const clientPort = new SimPort("client", parseMac(CLIENT_PORT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_PORT_MAC));
const router = new Wire("router", ROUTER_MAC, clientPort);
const servers = new Wire("servers", "02:00:00:00:02:fe", serverPort);
const logs: string[] = [];
const box = await Appliance.boot({ configPath: path, board: new SimBoard([clientPort, serverPort]), log: (l) => void logs.push(l) });
after(async () => {
  await box.stop();
  await rm(dir, { recursive: true, force: true });
});

const name = (mac: string): string => SERVERS.find((s) => s.mac === mac)?.name ?? mac;
/** Sends the flows' packets; returns which server each reached. */
async function send(ports: number[], flags = SYN): Promise<string[]> {
  const start = servers.got.length;
  for (const p of ports) router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: p, dport: 80, flags }));
  const deadline = Date.now() + 3000;
  for (;;) {
    const got = servers.got.slice(start).filter((f) => f[14 + 9] === 6);
    if (got.length >= ports.length) return ports.map((p) => name(formatMac(got.find((f) => ((f[34] << 8) | f[35]) === p)!.subarray(0, 6))));
    if (Date.now() > deadline) assert.fail(`${got.length} of ${ports.length} reached a server\n${logs.join("\n")}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const range = (from: number, n: number): number[] => Array.from({ length: n }, (_, i) => from + i);

async function reload(states: Record<string, State>): Promise<void> {
  await writeFile(path, JSON.stringify(config(states)));
  assert.ok(await box.reload());
  await box.settled();
}

test("primary-backup: every new flow goes to the primary, the first member", async () => {
  assert.deepEqual(new Set(await send(range(30000, 40))), new Set(["s1"]));
  assert.deepEqual(box.primaryBackends(), { web: "s1" });
});

test("primary-backup: the primary fails: the next member becomes primary and takes its flows and the new ones", async () => {
  await reload({ s1: "down" });
  assert.deepEqual(box.primaryBackends(), { web: "s2" });
  assert.ok(logs.some((l) => l.includes("service web: primary s2 (was s1)")), logs.join("\n"));
  assert.deepEqual(new Set(await send(range(30000, 10), ACK)), new Set(["s2"]), "the failed primary's flows move to the new one");
  assert.deepEqual(new Set(await send(range(31000, 40))), new Set(["s2"]));
});

test("primary-backup: the old primary recovers and stays a secondary: no pre-emption; the next failure goes down the list", async () => {
  await reload({});
  assert.deepEqual(box.primaryBackends(), { web: "s2" }, "s1 is back, s2 stays primary");
  assert.deepEqual(new Set(await send(range(32000, 40))), new Set(["s2"]));
  await reload({ s2: "down" });
  assert.deepEqual(box.primaryBackends(), { web: "s1" }, "the first member that can take flows");
  assert.deepEqual(new Set(await send(range(33000, 20))), new Set(["s1"]));
  assert.deepEqual((box.status() as { primaries: Record<string, string> }).primaries, { web: "s1" });
});
