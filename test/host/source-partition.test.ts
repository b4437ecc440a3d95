// Source partitions (issue 11): the client address space is dealt to the members in portions;
// new flows go to their portion's owner, and a moved portion (operator, failure, congestion)
// sends its new flows to the new owner while existing flows stay on the old one.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Appliance } from "../../host/appliance.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import type { ConfigInput, ServiceInput } from "../../host/config/schema.js";
import { validate, formatError } from "../../host/config/validate.js";
import { tcp4Frame, parseMac, formatMac, SYN, ACK } from "../../host/net/frame.js";
import { Wire } from "../lib/sim-wire.js";
import { SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, backends } from "../lib/lab-config.js";

type State = "active" | "draining" | "down";
function config(states: Record<string, State> = {}, partitions: ServiceInput["partitions"] = { split: 1 }, members = ["s1", "s2"]): ConfigInput {
  return {
    ports: [
      { name: "client", mac: CLIENT_PORT_MAC, ipv4: "192.0.2.1", gatewayMac: ROUTER_MAC },
      { name: "server", mac: SERVER_PORT_MAC, ipv4: "10.0.2.1" },
    ],
    dataplane: { flows: { ipv4: 4096, ipv6: 1024 }, limits: { services: 4, backends: 8 }, buffers: { count: 1024 }, engines: 1, noVip: "drop" },
    backends: backends(states).filter((b) => !b.name.endsWith("v6")),
    services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "dsr", backends: members, policy: "source-partition", partitions }],
    telemetry: { enabled: false },
  };
}

const errorsOf = (c: ConfigInput): string[] => {
  const v = validate(c);
  return v.ok ? [] : v.errors.map(formatError);
};

test("source-partition config: portions must neither overlap nor leave holes, and cover the whole space", () => {
  const ok = config({}, { portions: [{ prefix: "0.0.0.0/1", owner: "s1" }, { prefix: "128.0.0.0/2", owner: "s2" }, { prefix: "192.0.0.0/2", owner: "s1" }] });
  assert.deepEqual(errorsOf(ok), []);
  const overlap = errorsOf(config({}, { portions: [{ prefix: "0.0.0.0/1", owner: "s1" }, { prefix: "64.0.0.0/2", owner: "s2" }, { prefix: "128.0.0.0/1", owner: "s1" }] }));
  assert.ok(overlap.some((e) => e.includes("overlap") && e.includes("64.0.0.0/2")), overlap.join("\n"));
  const hole = errorsOf(config({}, { portions: [{ prefix: "0.0.0.0/2", owner: "s1" }, { prefix: "128.0.0.0/1", owner: "s2" }] }));
  assert.ok(hole.some((e) => e.includes("hole") && e.includes("64.0.0.0")), hole.join("\n"));
  const short = errorsOf(config({}, { portions: [{ prefix: "0.0.0.0/1", owner: "s1" }, { prefix: "128.0.0.0/2", owner: "s2" }] }));
  assert.ok(short.some((e) => e.includes("whole IPv4 space") && e.includes("192.0.0.0")), short.join("\n"));
  const stranger = errorsOf(config({}, { portions: [{ prefix: "0.0.0.0/1", owner: "s3" }, { prefix: "128.0.0.0/1", owner: "s2" }] }));
  assert.ok(stranger.some((e) => e.includes("owner") && e.includes("a member of the service")), stranger.join("\n"));
  const v6 = errorsOf(config({}, { portions: [{ prefix: "::/1", owner: "s1" }, { prefix: "8000::/1", owner: "s2" }] }));
  assert.ok(v6.some((e) => e.includes("IPv4 prefix")), v6.join("\n"));
  const both = errorsOf(config({}, { portions: [{ prefix: "0.0.0.0/0", owner: "s1" }], split: 2 }));
  assert.ok(both.some((e) => e.includes("either portions or split")), both.join("\n"));
});

test("source-partition config: split deals 2^split portions interleaved (default) or in blocks", () => {
  const portions = (p: ServiceInput["partitions"], members = ["s1", "s2", "s3"]): string[] => {
    const v = validate(config({}, p, members));
    assert.ok(v.ok, v.ok ? "" : v.errors.map(formatError).join("\n"));
    return v.config.services[0].partitions!.portions.map((x) => `${x.prefix.text}=${x.owner}`);
  };
  assert.deepEqual(portions({ split: 2 }), ["0.0.0.0/2=s1", "64.0.0.0/2=s2", "128.0.0.0/2=s3", "192.0.0.0/2=s1"]);
  assert.deepEqual(portions({ split: 2, interleave: false }), ["0.0.0.0/2=s1", "64.0.0.0/2=s1", "128.0.0.0/2=s2", "192.0.0.0/2=s3"]);
  assert.equal(portions({}).length, 4, "default: enough portions for one per member");
});

const dir = await mkdtemp(join(tmpdir(), "fsw-partition-"));
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
/** Sends one packet per (client, port); returns which server each reached. */
async function send(flows: [string, number][], flags = SYN): Promise<string[]> {
  const start = servers.got.length;
  for (const [src, p] of flows) router.send(tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src, dst: VIP, sport: p, dport: 80, flags }));
  const deadline = Date.now() + 3000;
  for (;;) {
    const got = servers.got.slice(start).filter((f) => f[14 + 9] === 6);
    if (got.length >= flows.length) {
      return flows.map(([src, p]) => name(formatMac(got.find((f) => ((f[34] << 8) | f[35]) === p && f.subarray(26, 30).join(".") === src)!.subarray(0, 6))));
    }
    if (Date.now() > deadline) assert.fail(`${got.length} of ${flows.length} reached a server\n${logs.join("\n")}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}
const low = (from: number, n: number): [string, number][] => Array.from({ length: n }, (_, i) => [`10.1.${i % 200}.${1 + (i % 7)}`, from + i]);
const high = (from: number, n: number): [string, number][] => Array.from({ length: n }, (_, i) => [`200.1.${i % 200}.${1 + (i % 7)}`, from + i]);
const owners = (): Record<string, string> => Object.fromEntries((box.partitionView() as { portions: { prefix: string; owner: string }[] }[])[0].portions.map((p) => [p.prefix, p.owner]));

async function reload(states: Record<string, State>): Promise<void> {
  await writeFile(path, JSON.stringify(config(states)));
  assert.ok(await box.reload());
  await box.settled();
}

test("source-partition: each portion's new flows go to its owner", async () => {
  assert.deepEqual(owners(), { "0.0.0.0/1": "s1", "128.0.0.0/1": "s2" });
  assert.deepEqual(new Set(await send(low(20000, 30))), new Set(["s1"]));
  assert.deepEqual(new Set(await send(high(20000, 30))), new Set(["s2"]));
});

test("source-partition: an operator's move sends the portion's new flows to the new owner; existing flows stay", async () => {
  assert.equal(box.repartition("web", "0.0.0.0/1", "s2"), undefined);
  await box.settled();
  assert.deepEqual(owners(), { "0.0.0.0/1": "s2", "128.0.0.0/1": "s2" });
  assert.deepEqual(new Set(await send(low(20000, 30), ACK)), new Set(["s1"]), "established flows stay on the old owner");
  assert.deepEqual(new Set(await send(low(21000, 30))), new Set(["s2"]), "new flows of the moved portion go to the new owner");
  assert.ok(logs.some((l) => l.includes("portion 0.0.0.0/1 moves from s1 to s2 (operator)")), logs.join("\n"));
  assert.match(box.repartition("web", "10.0.0.0/8", "s2") ?? "", /no portion 10\.0\.0\.0\/8/);
  assert.match(box.repartition("web", "0.0.0.0/1", "s3") ?? "", /not a member/);
  assert.equal(box.repartition("web", "reset"), undefined);
  await box.settled();
  assert.deepEqual(owners(), { "0.0.0.0/1": "s1", "128.0.0.0/1": "s2" });
});

test("source-partition: a failed owner's portions go to a member that can take them, and come back when it recovers", async () => {
  await reload({ s2: "down" });
  assert.deepEqual(owners(), { "0.0.0.0/1": "s1", "128.0.0.0/1": "s1" });
  assert.deepEqual(new Set(await send(high(22000, 30))), new Set(["s1"]));
  await reload({});
  assert.deepEqual(owners(), { "0.0.0.0/1": "s1", "128.0.0.0/1": "s2" });
  assert.deepEqual(new Set(await send(high(23000, 30))), new Set(["s2"]));
  assert.deepEqual(new Set(await send(high(22000, 30), ACK)), new Set(["s1"]), "the stand-in keeps the flows it took");
  const status = box.status() as { partitions: Record<string, { prefix: string; owner: string; why: string }[]> };
  assert.deepEqual(status.partitions.web.map((p) => `${p.prefix}=${p.owner}/${p.why}`), ["0.0.0.0/1=s1/configured", "128.0.0.0/1=s2/configured"]);
});
