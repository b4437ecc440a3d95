// Health checks driving the data plane: a backend whose check fails gets no new flows, its
// established flows follow the service's policy, and it comes back when it recovers. The checked
// server is a real TCP listener on loopback; the traffic runs on the simulated board.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server } from "node:net";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { tcp4Frame, parseMac, formatMac, SYN, ACK } from "../../host/net/frame.js";

const CLIENT_MAC = "02:00:00:00:01:01";
const SERVER_MAC = "02:00:00:00:02:01";
const ROUTER_MAC = "02:00:00:00:01:fe";
const A_MAC = "02:00:00:00:02:11";
const B_MAC = "02:00:00:00:02:12";
const VIP = "10.0.0.100";

async function listen(host: string, port = 0): Promise<Server> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(port, host, r));
  return s;
}
const portOf = (s: Server): number => (s.address() as { port: number }).port;

const healthy = await listen("127.0.0.1");
let flaky: Server | undefined = await listen("127.0.0.2");
const flakyPort = portOf(flaky);
const check = (port: number) => ({ type: "tcp" as const, port, interval: 0.1, timeout: 0.08, rise: 2, fall: 2 });
const config: ConfigInput = {
  ports: [{ name: "client", mac: CLIENT_MAC, gatewayMac: ROUTER_MAC }, { name: "server", mac: SERVER_MAC }],
  dataplane: { flows: { ipv4: 4096, ipv6: 256 }, limits: { services: 2, backends: 4 }, buffers: { count: 512 }, engines: 1, noVip: "drop" },
  backends: [
    { name: "a", address: "127.0.0.1", mac: A_MAC, via: "server", check: check(portOf(healthy)) },
    { name: "b", address: "127.0.0.2", mac: B_MAC, via: "server", check: check(flakyPort) },
  ],
  services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: ["a", "b"], onBackendDown: "reset" }],
};

const dir = await mkdtemp(join(tmpdir(), "fsw-health-"));
await writeFile(join(dir, "c.json"), JSON.stringify(config));
const clientPort = new SimPort("client", parseMac(CLIENT_MAC));
const serverPort = new SimPort("server", parseMac(SERVER_MAC));
const router = new SimPort("router", parseMac(ROUTER_MAC));
const servers = new SimPort("servers", parseMac(A_MAC));
SimPort.wire(router, clientPort);
SimPort.wire(servers, serverPort);
const atServers: Uint8Array[] = [];
const atRouter: Uint8Array[] = [];
servers.start((f) => void atServers.push(...f));
router.start((f) => void atRouter.push(...f));
const logs: string[] = [];
const box = await Appliance.boot({ configPath: join(dir, "c.json"), board: new SimBoard([clientPort, serverPort]), log: (l) => void logs.push(l) });
after(async () => {
  await box.stop();
  healthy.close();
  flaky?.close();
  await rm(dir, { recursive: true, force: true });
});

const syn = (sport: number, flags = SYN): Uint8Array => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_MAC, src: "198.51.100.1", dst: VIP, sport, dport: 80, flags });
async function sendAndCollect(frames: Uint8Array[], into: Uint8Array[]): Promise<Uint8Array[]> {
  const start = into.length;
  router.send(frames);
  const deadline = Date.now() + 3000;
  while (into.length - start < frames.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  return into.slice(start);
}
async function until(what: string, cond: () => boolean): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`${what}; log:\n${logs.join("\n")}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  await box.settled();
}
const stateOf = (name: string): string => (box.status() as { backends: Record<string, { state: string }> }).backends[name].state;

test("health: a backend whose check fails takes no new flows, its flows are reset, and it returns when it recovers", async () => {
  let out = await sendAndCollect(Array.from({ length: 100 }, (_, i) => syn(1000 + i)), atServers);
  const onB = out.filter((f) => formatMac(f.subarray(0, 6)) === B_MAC).map((f) => (f[34] << 8) | f[35]);
  assert.ok(onB.length > 10 && onB.length < 90, `both healthy backends take flows (b: ${onB.length})`);

  await new Promise<void>((r) => flaky!.close(() => r()));
  flaky = undefined;
  await until("b marked down after 2 failed probes", () => stateOf("b") === "down");
  assert.ok(logs.some((l) => /health: backend b down \(connection refused/.test(l)), logs.join("\n"));

  out = await sendAndCollect(Array.from({ length: 100 }, (_, i) => syn(3000 + i)), atServers);
  assert.ok(out.every((f) => formatMac(f.subarray(0, 6)) === A_MAC), "new flows only to a");
  const resets = await sendAndCollect(onB.slice(0, 5).map((sport) => syn(sport, ACK)), atRouter);
  assert.equal(resets.length, 5);
  assert.ok(resets.every((f) => f[14 + 20 + 13] === 0x04), "b's established flows are reset (onBackendDown: reset)");

  flaky = await listen("127.0.0.2", flakyPort);
  await until("b back up after 2 good probes", () => stateOf("b") === "active");
  out = await sendAndCollect(Array.from({ length: 100 }, (_, i) => syn(5000 + i)), atServers);
  assert.ok(out.some((f) => formatMac(f.subarray(0, 6)) === B_MAC), "b takes new flows again");
});
