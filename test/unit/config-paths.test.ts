// Configuration paths: the console's `set` / `delete` / completion / `show | compare` /
// `show configuration` over one declarative tree, and the set form that rebuilds a configuration.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile, readdir } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { ConfigInput } from "../../host/config/schema.js";
import { validate, formatError } from "../../host/config/validate.js";
import { CONFIG_TREE, entries, isObj, type SchemaNode } from "../../host/config/tree.js";
import {
  setPath, deletePath, checkPath, completions, toSetCommands, fromSetCommands, compare, renderConfig,
  normalizeInput, tokenize, quote,
} from "../../host/config/paths.js";
import { labConfig, svc } from "../lib/lab-config.js";

const ROOT = new URL("../../../", import.meta.url);
const HASH = `scrypt$32768$8$1$${Buffer.alloc(16, 7).toString("base64")}$${Buffer.alloc(32, 9).toString("base64")}`;
const HASH2 = `scrypt$16384$8$1$${Buffer.alloc(16, 1).toString("base64")}$${Buffer.alloc(32, 2).toString("base64")}`;

async function exampleConfigs(): Promise<[string, ConfigInput][]> {
  const dir = new URL("test/fixtures/configs/", ROOT);
  const names = (await readdir(dir)).filter((n) => n.endsWith(".json")).sort();
  const files = [...names.map((n) => new URL(n, dir)), new URL("board/sim/demo-config.json", ROOT)];
  return Promise.all(files.map(async (u) => [fileURLToPath(u), JSON.parse(await readFile(u, "utf8")) as ConfigInput] as [string, ConfigInput]));
}

/** A configuration that uses every key validate() knows, every list with an object entry. */
function fullConfig(): ConfigInput {
  return {
    system: {
      hostname: "fs-full",
      timezone: "Europe/Paris",
      ntp: ["192.0.2.123", "pool.ntp.org"],
      users: [{ name: "alice", class: "admin", passwordHash: HASH }, { name: "bob", passwordHash: HASH2 }],
    },
    management: { ipv4: "192.0.2.200", ipv6: "2001:db8:ff::1" },
    ports: [
      {
        name: "client", mac: "02:00:00:00:01:01", mtu: 1500, ipv4: "192.0.2.1", ipv6: "2001:db8:1::1", peer: "server",
        device: "eth1", gateway: "192.0.2.254", gateway6: "2001:db8:1::fe", gatewayMac: "02:00:00:00:01:fe",
      },
      { name: "server", mac: "02:00:00:00:02:01", ipv4: "10.0.2.1", ipv6: "2001:db8:2::1", peer: "client" },
    ],
    dataplane: {
      flows: { ipv4: 4096, ipv6: 1024 },
      timeouts: { tcp: 600, tcpSyn: 20, tcpClosing: 5, udp: 30, icmp: 5, other: 30 },
      noVip: "drop",
      maglevSize: 65537,
      engines: 2,
      limits: { services: 8, backends: 16 },
      buffers: { count: 256, size: 2048 },
    },
    backends: [
      {
        name: "s1", address: "10.0.2.11", mac: "02:00:00:00:02:11", via: "server", natPort: 8080, state: "draining",
        check: { type: "http", port: 8080, path: "/health", host: "www.example.com", expectStatus: 204, interval: 1.5, timeout: 0.5, rise: 2, fall: 3 },
      },
      { name: "s2", address: "10.0.2.12", via: "server", capacity: 500, check: { type: "udp", port: 53, send: 'PING "x"\r\n', expect: "PONG ok" } },
      { name: "s1v6", address: "2001:db8:2::11", mac: "02:00:00:00:02:21", via: "server" },
    ],
    services: [
      {
        name: "web", vip: "10.0.0.100", protocol: "tcp", port: 80, mode: "nat", targetPort: 8080,
        backends: ["s1", { name: "s2", weight: 3 }], onBackendDown: "reset", arp: false, chain: "fw-ids", policy: "primary-backup",
      },
      {
        name: "dns", vip: "2001:db8::53", protocol: "udp", port: 53, mode: "tunnel", backends: ["s1", "s1v6"],
        tunnel: { encap: "gue", source4: "10.0.2.1", source6: "2001:db8:2::1", guePort: 6081 },
      },
      {
        name: "far", vip: "10.0.0.101", protocol: "tcp", port: 80, mode: "tunnel", backends: ["east"],
        tunnel: { encap: "ipip", source4: "10.0.2.1" },
      },
      {
        name: "parts", vip: "10.0.0.102", protocol: "tcp", port: 80, mode: "dsr", backends: ["s1", "s2"], policy: "source-partition",
        partitions: { portions: [{ prefix: "0.0.0.0/1", owner: "s1" }, { prefix: "128.0.0.0/1", owner: "s2" }], congestedAt: 0.8, holdS: 30 },
      },
      {
        name: "dealt", vip: "10.0.0.103", protocol: "tcp", port: 80, mode: "dsr", backends: ["s1", "s2"], policy: "source-partition",
        partitions: { split: 3, interleave: false },
      },
    ],
    flowRules: [
      {
        name: "gold", source: "198.51.100.0/24", protocol: "tcp", vip: "10.0.0.100", port: 80, backend: "s1",
        dscp: 46, pcp: 5, vlanPush: 300, vlanPop: true, mplsPush: { label: 1000, tc: 5, ttl: 32 }, mplsPop: true, idleTimeout: 60,
      },
    ],
    snmp: {
      listen: { address: "192.0.2.1", port: 1161 }, enterprise: 32473, location: "rack 4", contact: "noc@example.com",
      communities: [{ name: "public-ro" }],
      users: [{ name: "ops", authProtocol: "sha512", authKey: "auth-key-123", privProtocol: "aes", privKey: "priv-key-123" }],
      notify: [{ name: "nms", address: "192.0.2.50", port: 162, version: "v3", user: "ops" }, { name: "old", address: "192.0.2.51", version: "v2c", community: "public-ro" }],
      flowTableThreshold: 85,
    },
    telemetry: {
      enabled: true,
      mqtt: { url: "mqtts://broker.example.com:8883", username: "fs", password: "pw", ca: "/etc/flowswitch/ca.pem", cert: "/etc/flowswitch/client.pem", key: "/etc/flowswitch/client.key", site: "paris", interval: 5, format: "cbor", eventBuffer: 500 },
      embeddedBroker: { address: "192.0.2.200", port: 1884 },
    },
    discovery: {
      keys: [{ id: 1, secret: "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" }, { id: 2, secret: Buffer.alloc(24, 3).toString("base64") }],
      group: "239.255.77.78", group6: "ff02::78", port: 7778, missedIntervals: 4, leaveTimeoutS: 60, via: "server",
      supervisor: {
        address: "192.0.2.200", port: 7779, intervalMs: 2000, maxEndSystems: 64,
        pools: [{ name: "ports", first: 40000, last: 40999, maxLeaseS: 600 }, { name: "ids", first: 1, last: 100 }],
        relay: ["10.1.0.2", "10.1.0.3:7780", "[2001:db8:3::2]:7777"], peers: ["192.0.2.201"],
      },
    },
    ha: {
      node: "fs-a", priority: 200, preempt: false, preemptDelayMs: 5000, intervalMs: 100, deadCount: 4,
      keys: [{ id: 9, secret: "ffeeddccbbaa99887766554433221100" }],
      links: [{ name: "direct", local: "192.168.255.1", peer: "192.168.255.2", port: 7789 }, { name: "backup", local: "2001:db8:ff::a", peer: "2001:db8:ff::b" }],
      garp: { count: 5, intervalMs: 50 },
    },
    levels: {
      role: "system", name: "fs-full", keys: [{ id: 5, secret: "0123456789abcdef0123456789abcdef" }], local: "192.0.2.200", port: 7791,
      uplinks: ["10.9.0.1", "10.9.0.2:7792"], intervalMs: 500, aggregate: "max", subnets: ["10.0.0.0/24"], decapsulate: false,
      sites: [{ name: "east", address: "10.0.2.40", via: "server", mac: "02:00:00:00:02:40", control: "10.0.2.41:7791", distance: 12.5 }],
      deadIntervals: 4, cost: { load: 2, distance: 0.5, tolerance: 10 },
      recovery: { enabled: true, peers: ["192.0.2.202"], timeoutMs: 30, maxPending: 1000 },
    },
    chains: [{
      name: "fw-ids",
      hops: [
        { name: "firewall", kind: "inline", devices: [{ name: "fw1", port: "server", address: "10.0.2.31" }, { name: "fw3", port: "server", mac: "02:00:00:00:02:34" }], alternates: [{ name: "fw2", port: "server", mac: "02:00:00:00:02:32" }, { name: "fw4", port: "server", address: "10.0.2.35" }] },
        { name: "ids", kind: "mirror", devices: [{ name: "ids1", port: "server", mac: "02:00:00:00:02:33" }] },
      ],
    }],
    acls: [{
      name: "client-in", port: "client", service: "web", default: "deny",
      rules: [{ name: "ok", action: "allow", protocol: "tcp", source: "198.51.100.0/24", sourcePorts: "1024-65535", destinationPorts: "80" }],
    }],
  };
}

/** Every node of the tree as it occurs in a configuration: its JSON keys, validate()'s path for it. */
interface Place {
  node: SchemaNode;
  keys: (string | number)[];
  vpath: string;
  /** For objects (containers and list entries): the keys the tree allows there. */
  allowed?: string[];
}

function places(node: SchemaNode, v: unknown, keys: (string | number)[], vpath: string, out: Place[] = []): Place[] {
  const join = (p: string, k: string): string => (p === "config" ? k : `${p}.${k}`);
  if (v === undefined) return out;
  out.push({ node, keys, vpath, allowed: node.kind === "container" ? node.children.map((c) => c.key) : undefined });
  if (node.kind === "container" && isObj(v)) {
    for (const c of node.children) places(c, v[c.key], [...keys, c.key], join(vpath, c.key), out);
  }
  if (node.kind === "list" && Array.isArray(v)) {
    v.forEach((e, i) => {
      if (!isObj(e)) return;
      const at = `${vpath}[${i}]`;
      out.push({ node, keys: [...keys, i], vpath: at, allowed: [node.keyField ?? "name", ...node.children.map((c) => c.key)] });
      for (const c of node.children) places(c, e[c.key], [...keys, i, c.key], join(at, c.key), out);
    });
  }
  return out;
}

function allNodes(node: SchemaNode = CONFIG_TREE): SchemaNode[] {
  return [node, ...(node.kind === "container" || node.kind === "list" ? node.children.flatMap((c) => allNodes(c)) : [])];
}

function at(root: unknown, keys: (string | number)[]): Record<string | number, unknown> {
  let o = root as Record<string | number, unknown>;
  for (const k of keys) o = o[k] as Record<string | number, unknown>;
  return o;
}

function errorsOf(input: unknown): { path: string; value: unknown; expected: string }[] {
  const v = validate(input);
  return v.ok ? [] : v.errors;
}

// ---- the tree covers validate() --------------------------------------------------------------

test("paths: at every object of the configuration, the tree allows exactly the keys validate() accepts", () => {
  const full = fullConfig();
  const objects = places(CONFIG_TREE, full, [], "config").filter((p) => p.allowed);
  for (const p of objects) {
    const probe = structuredClone(full);
    at(probe, p.keys).__probe__ = 1;
    const e = errorsOf(probe).find((x) => x.path === `${p.vpath}.__probe__`);
    assert.ok(e, `validate() did not refuse an unknown key at ${p.vpath}`);
    const accepted = /^one of the keys (.*) \(unknown key\)$/.exec(e.expected)?.[1].split(", ");
    assert.deepEqual([...(accepted ?? [])].sort(), [...(p.allowed ?? [])].sort(), `keys at ${p.vpath}`);
  }
  // and the full config reaches every container and list of the tree
  const reached = new Set(objects.map((p) => p.node));
  for (const n of allNodes()) if (n.kind === "container" || n.kind === "list") assert.ok(reached.has(n), `not reached: ${n.key}`);
});

test("paths: a configuration using every key is valid, sets every leaf of the tree, and survives the set form", () => {
  const full = fullConfig();
  const v = validate(full);
  assert.ok(v.ok, v.ok ? "" : v.errors.map(formatError).join("\n"));
  const set = new Set(places(CONFIG_TREE, full, [], "config").map((p) => p.node));
  for (const n of allNodes()) assert.ok(set.has(n), `the full config does not set ${n.word}`);
  // SNMP and discovery keys are never written out: the set form carries (hidden) for them, and import refuses it
  const lines = toSetCommands(full);
  assert.equal(lines.filter((l) => l.includes("(hidden)")).length, 6, "both SNMP keys, both discovery secrets, the HA and the levels secret hidden");
  assert.ok(!lines.some((l) => l.includes(full.ha!.keys[0].secret)), "no HA secret shown");
  assert.ok(!lines.some((l) => l.includes(full.discovery!.keys[0].secret)), "no discovery secret shown");
  const back = fromSetCommands(lines.filter((l) => !l.includes("(hidden)")));
  assert.ok(back.ok, back.ok ? "" : JSON.stringify(back.errors));
  const user = back.config.snmp!.users![0];
  user.authKey = full.snmp!.users![0].authKey;
  user.privKey = full.snmp!.users![0].privKey;
  back.config.discovery!.keys = full.discovery!.keys.map((k) => ({ ...k }));
  back.config.ha!.keys = full.ha!.keys.map((k) => ({ ...k }));
  back.config.levels!.keys = full.levels!.keys.map((k) => ({ ...k }));
  assert.deepEqual(back.config, normalizeInput(full));
});

test("paths: per-value ranges agree with validate(): a number just outside is refused by both", () => {
  const full = fullConfig();
  const leaves = places(CONFIG_TREE, full, [], "config").filter((p) => p.node.kind === "leaf" && p.node.type.range);
  assert.ok(leaves.length >= 25, `only ${leaves.length} numeric leaves`);
  for (const p of leaves) {
    if (p.node.kind !== "leaf" || !p.node.type.range) continue;
    const [min, max] = p.node.type.range;
    assert.notEqual(p.node.type.parse(String(min)), undefined, `${p.vpath}: ${min}`);
    assert.notEqual(p.node.type.parse(String(max)), undefined, `${p.vpath}: ${max}`);
    for (const bad of [min - 1, max + 1]) {
      assert.equal(p.node.type.parse(String(bad)), undefined, `${p.vpath}: ${bad} taken by the tree`);
      const probe = structuredClone(full);
      at(probe, p.keys.slice(0, -1))[p.keys[p.keys.length - 1]] = bad;
      assert.ok(errorsOf(probe).some((e) => e.path === p.vpath), `${p.vpath}: ${bad} taken by validate()`);
    }
  }
});

// ---- discovery ---------------------------------------------------------------------------------

test("config: discovery keys, group, port, missed intervals and via port are validated (secrets never echoed) and normalised", () => {
  const hex = "00112233445566778899aabbccddeeff";
  const ok = validate(labConfig([svc("dsr")], { discovery: { keys: [{ id: 5, secret: hex }, { id: 6, secret: Buffer.alloc(16, 1).toString("base64") }] } }));
  assert.ok(ok.ok, ok.ok ? "" : ok.errors.map(formatError).join("\n"));
  if (!ok.ok) return;
  const d = ok.config.discovery!;
  assert.deepEqual(d.keys.map((k) => [k.id, Buffer.from(k.secret).toString("hex")]), [[5, hex], [6, "01".repeat(16)]]);
  assert.equal(d.group.text, "239.255.77.77");
  assert.equal(d.group6.text, "ff02::77");
  assert.equal(d.port, 7777);
  assert.equal(d.missedIntervals, 3);
  assert.equal(d.via, 1, "default: the first port with backends");
  const none = validate(labConfig([svc("dsr")]));
  assert.ok(none.ok && none.config.discovery === undefined, "absent: no discovery");

  const short = "00112233445566778899aabbccddee"; // 15 bytes
  const bad = errorsOf(labConfig([svc("dsr")], {
    discovery: { keys: [{ id: 0, secret: short }, { id: 7, secret: "not a secret!" }, { id: 7, secret: hex }], group: "10.0.0.1", group6: "fd00::1", port: 0, missedIntervals: 0, via: "nowhere" } as never,
  }));
  const paths = bad.map((e) => e.path).sort();
  assert.deepEqual(paths, [
    "discovery.group", "discovery.group6", "discovery.keys[0].id", "discovery.keys[0].secret", "discovery.keys[1].secret", "discovery.keys[2].id",
    "discovery.missedIntervals", "discovery.port", "discovery.via",
  ].sort());
  for (const e of bad.filter((x) => x.path.endsWith(".secret"))) assert.equal(e.value, "(hidden)");
  assert.ok(!JSON.stringify(bad).includes(short));
  assert.deepEqual(errorsOf(labConfig([svc("dsr")], { discovery: { keys: [] } })).map((e) => e.path), ["discovery.keys"]);
});

// ---- ha --------------------------------------------------------------------------------------

test("config: ha is validated with defaults filled in; links' addresses are parsed", () => {
  const secret = "00112233445566778899aabbccddeeff";
  const ok = validate(labConfig([svc("dsr")], { ha: { node: "fs-b", keys: [{ id: 3, secret }], links: [{ name: "direct", local: "192.168.255.2", peer: "192.168.255.1" }] } }));
  assert.ok(ok.ok, ok.ok ? "" : ok.errors.map(formatError).join("\n"));
  if (!ok.ok) return;
  const h = ok.config.ha!;
  assert.deepEqual({ ...h, keys: undefined, links: undefined }, {
    node: "fs-b", priority: 100, preempt: true, preemptDelayMs: 0, intervalMs: 50, deadCount: 3, keys: undefined, links: undefined, garp: { count: 3, intervalMs: 20 },
  });
  assert.deepEqual(h.keys.map((k) => [k.id, Buffer.from(k.secret).toString("hex")]), [[3, secret]]);
  assert.deepEqual(h.links.map((l) => [l.name, l.local.text, l.peer.text, l.port, l.local.family]), [["direct", "192.168.255.2", "192.168.255.1", 7788, 4]]);
  const none = validate(labConfig([svc("dsr")]));
  assert.ok(none.ok && none.config.ha === undefined, "absent: no pair");
  assert.ok(none.ok && none.config.role === undefined, "the runtime role is not configuration");
});

test("config: ha errors name the path, the value and what was expected; secrets are never echoed", () => {
  const short = "00112233445566778899aabbccddee"; // 15 bytes
  const bad = errorsOf(labConfig([svc("dsr")], {
    ha: {
      node: "1st", priority: 255, preempt: "yes", preemptDelayMs: -1, intervalMs: 5, deadCount: 1,
      keys: [{ id: 1, secret: short }, { id: 1, secret: "00112233445566778899aabbccddeeff" }],
      links: [
        { name: "a", local: "192.168.255.1", peer: "2001:db8::2" },
        { name: "a", local: "192.168.255.1", peer: "192.168.255.1" },
        { name: "c", local: "224.0.0.1", peer: "10.0.0.2", port: 0 },
        { name: "d", local: "10.9.0.1", peer: "10.9.0.2", extra: 1 },
        { name: "e", local: "10.9.1.1", peer: "10.9.1.2" },
      ],
      garp: { count: 0, intervalMs: 1001 },
    } as never,
  }));
  const shown = bad.map(formatError);
  const has = (line: string): void => assert.ok(shown.includes(line), `${line}\n--- got:\n${shown.join("\n")}`);
  has('ha.node: "1st": expected a name of 1-32 letters, digits, \'_\', \'.\', \'-\', starting with a letter');
  has("ha.priority: 255: expected a whole number from 1 to 254");
  has('ha.preempt: "yes": expected true or false');
  has("ha.preemptDelayMs: -1: expected a whole number from 0 to 3600000");
  has("ha.intervalMs: 5: expected a whole number from 10 to 10000");
  has("ha.deadCount: 1: expected a whole number from 2 to 255");
  has('ha.keys[0].secret: "(hidden)": expected a secret of 16 bytes or more, in hex or base64');
  has("ha.keys[1].id: 1: expected an id no other key has");
  has('ha.links: "5 links": expected 1 to 4 links { name, local, peer, port }');
  has('ha.links[0].peer: "2001:db8::2": expected an IPv4 address, like local');
  has('ha.links[1].name: "a": expected a name no other link has');
  has('ha.links[1].peer: "192.168.255.1": expected the peer\'s address, not this appliance\'s own (local)');
  has('ha.links[1].local: "192.168.255.1": expected an address and port no other link binds (192.168.255.1 port 7788 is taken)');
  has('ha.links[2].local: "224.0.0.1": expected a unicast IPv4 or IPv6 address');
  has("ha.links[2].port: 0: expected a whole number from 1 to 65535");
  has("ha.links[3].extra: 1: expected one of the keys name, local, peer, port (unknown key)");
  has("ha.garp.count: 0: expected a whole number from 1 to 100");
  has("ha.garp.intervalMs: 1001: expected a whole number from 1 to 1000");
  assert.ok(!JSON.stringify(bad).includes(short), "a secret is never echoed");
  assert.deepEqual(errorsOf(labConfig([svc("dsr")], { ha: { node: "a", keys: [], links: [] } })).map(formatError), [
    "ha.keys: []: expected a list of one or more keys { id, secret }",
    "ha.links: []: expected 1 to 4 links { name, local, peer, port }",
  ]);
  assert.deepEqual(errorsOf(labConfig([svc("dsr")], { ha: {} as never })).map((e) => e.path), ["ha.node", "ha.keys", "ha.links"]);
});

// ---- system: users, time zone, NTP -----------------------------------------------------------

test("config: users, time zone and NTP servers are validated and normalised", () => {
  const ok = validate(labConfig([svc("dsr")], { system: { users: [{ name: "bob", passwordHash: HASH }], ntp: ["pool.ntp.org", "2001:db8::123"] } }));
  assert.ok(ok.ok);
  if (!ok.ok) return;
  assert.deepEqual(ok.config.users, [{ name: "bob", class: "operator", passwordHash: HASH }]);
  assert.equal(ok.config.timezone, "UTC");
  assert.deepEqual(ok.config.ntp, ["pool.ntp.org", "2001:db8::123"]);

  const bad = labConfig([svc("dsr")], {
    system: {
      timezone: "Mars/Olympus",
      ntp: ["bad..host", "10.0.0.300", "pool.ntp.org", "pool.ntp.org"],
      users: [
        { name: "carol", passwordHash: "hunter2" },
        { name: "carol", class: "root" as never, passwordHash: HASH.replace("$32768$", "$1000$") },
        { name: "dave" } as never,
      ],
    },
  });
  const e = errorsOf(bad).map(formatError);
  assert.ok(e.includes('system.timezone: "Mars/Olympus": expected an IANA time zone name such as UTC or Europe/Paris'), e.join("\n"));
  assert.ok(e.includes('system.ntp[0]: "bad..host": expected an IPv4 or IPv6 address or a host name'), e.join("\n"));
  assert.ok(e.includes('system.ntp[1]: "10.0.0.300": expected an IPv4 or IPv6 address or a host name'), e.join("\n"));
  assert.ok(e.includes('system.ntp[3]: "pool.ntp.org": expected each server once'), e.join("\n"));
  assert.ok(e.some((m) => m.startsWith('system.users[0].passwordHash: "(hidden)": expected a password hash scrypt$N$r$p$')), e.join("\n"));
  assert.ok(e.includes('system.users[1].name: "carol": expected a name no other user has'), e.join("\n"));
  assert.ok(e.includes('system.users[1].class: "root": expected one of admin, operator'), e.join("\n"));
  assert.ok(e.some((m) => m.startsWith("system.users[1].passwordHash")), "N not a power of two");
  assert.ok(e.some((m) => m.startsWith("system.users[2].passwordHash: missing: expected a password hash")), e.join("\n"));
  assert.ok(!e.some((m) => m.includes("hunter2")), "a plain password must never be echoed");
});

// ---- set -------------------------------------------------------------------------------------

test("set: a leaf in a container, in a list entry, in a container under an entry, in a nested list", () => {
  const c = labConfig([svc("dsr")]);
  assert.deepEqual(setPath(c, ["system", "hostname", "edge1"]), { ok: true });
  assert.deepEqual(setPath(c, ["services", "web", "vip", "10.0.0.200"]), { ok: true });
  assert.deepEqual(setPath(c, ["services", "web", "target-port", "8080"]), { ok: true });
  assert.deepEqual(setPath(c, ["services", "web", "on-backend-down", "reset"]), { ok: true });
  assert.deepEqual(setPath(c, ["services", "web", "arp", "false"]), { ok: true });
  assert.deepEqual(setPath(c, ["services", "web", "backends", "s1", "weight", "2"]), { ok: true });
  assert.deepEqual(setPath(c, ["backends", "s1", "check", "type", "http"]), { ok: true });
  assert.deepEqual(setPath(c, ["backends", "s1", "check", "interval", "0.5"]), { ok: true });
  assert.deepEqual(setPath(c, ["ports", "client", "gateway-mac", "02:00:00:00:01:fd"]), { ok: true });
  assert.deepEqual(setPath(c, ["dataplane", "timeouts", "tcp-syn", "15"]), { ok: true });
  assert.equal(c.system?.hostname, "edge1");
  const web = c.services![0];
  assert.equal(web.vip, "10.0.0.200");
  assert.equal(web.targetPort, 8080); // numbers are stored as numbers, booleans as booleans
  assert.equal(web.onBackendDown, "reset");
  assert.equal(web.arp, false);
  assert.deepEqual(web.backends, [{ name: "s1", weight: 2 }]); // the bare name became an entry
  assert.deepEqual(c.backends![0].check, { type: "http", interval: 0.5 });
  assert.equal(c.ports[0].gatewayMac, "02:00:00:00:01:fd");
  assert.equal(c.dataplane?.timeouts?.tcpSyn, 15);
});

test("set: setting a leaf of a new entry creates it at the end; naming an entry alone creates it bare", () => {
  const c = labConfig([svc("dsr")]);
  assert.deepEqual(setPath(c, ["services", "api", "port", "8080"]), { ok: true });
  assert.deepEqual(setPath(c, ["services", "web", "backends", "s2"]), { ok: true });
  assert.deepEqual(setPath(c, ["services", "web", "backends", "s2"]), { ok: true }); // again: no change
  assert.deepEqual(setPath(c, ["system", "users", "alice", "class", "admin"]), { ok: true });
  assert.deepEqual(setPath(c, ["system", "users", "alice", "password-hash", HASH]), { ok: true });
  assert.deepEqual(c.services!.map((s) => s.name), ["web", "api"]);
  assert.deepEqual(c.services![1], { name: "api", port: 8080 });
  assert.deepEqual(c.services![0].backends, ["s1", { name: "s2" }]);
  assert.deepEqual(c.system?.users, [{ name: "alice", class: "admin", passwordHash: HASH }]);
});

test("set: a leaf-list gains a value once, in order", () => {
  const c = labConfig([svc("dsr")]);
  for (const s of ["192.0.2.1", "pool.ntp.org", "192.0.2.1"]) assert.deepEqual(setPath(c, ["system", "ntp", s]), { ok: true });
  assert.deepEqual(c.system?.ntp, ["192.0.2.1", "pool.ntp.org"]);
});

test("set: bad words and values are refused at the right word with the expected form, changing nothing", () => {
  const c = labConfig([svc("dsr")]);
  const before = structuredClone(c);
  const cases: [string[], number, string][] = [
    [["services", "web", "vipp", "10.0.0.1"], 2, 'unknown word "vipp": expected one of vip, protocol, port, mode, target-port, backends, on-backend-down, policy, partitions, arp, chain, tunnel'],
    [["servicez"], 0, 'unknown word "servicez": expected one of system, management, ports, dataplane, backends, services, flow-rules, telemetry, snmp, discovery, ha, chains, acls, levels'],
    [["services", "web", "port", "70000"], 3, 'bad value "70000" for port: expected a whole number from 0 to 65535'],
    [["services", "web", "port", "8o"], 3, 'bad value "8o" for port: expected a whole number from 0 to 65535'],
    [["services", "web", "vip"], 3, "missing value: expected an IPv4 or IPv6 address"],
    [["services", "web", "mode", "magic"], 3, 'bad value "magic" for mode: expected one of dsr, nat, tunnel'],
    [["services", "web", "arp", "yes"], 3, 'bad value "yes" for arp: expected true or false'],
    [["services", "web", "tunnel"], 3, "missing word: expected one of encap, source4, source6, gue-port"],
    [["services", "web", "tunnel", "source4", "2001:db8::1"], 4, 'bad value "2001:db8::1" for source4: expected an IPv4 address'],
    [["services"], 1, "missing service name: expected a name of 1-32 letters, digits, '_', '.', '-', starting with a letter"],
    [["services", "9web", "port", "80"], 1, "bad service name \"9web\": expected a name of 1-32 letters, digits, '_', '.', '-', starting with a letter"],
    [["services", "web", "port", "80", "tcp"], 4, 'unexpected word "tcp": expected the end of the command (port takes one value)'],
    [["services", "web", "backends", "s1", "weight", "1001"], 5, 'bad value "1001" for weight: expected a whole number from 0 to 1000'],
    [["ports", "client", "mac", "03:00:00:00:00:01"], 3, 'bad value "03:00:00:00:00:01" for mac: expected a unicast MAC address like 02:00:00:00:00:01'],
    [["dataplane", "maglev-size", "65536"], 2, 'bad value "65536" for maglev-size: expected a prime number, such as 65537'],
    [["dataplane", "buffers", "size", "1000"], 3, 'bad value "1000" for size: expected a multiple of 64'],
    [["backends", "s1", "check", "path", "health"], 4, 'bad value "health" for path: expected a path starting with /'],
    [["backends", "s1", "check", "interval", "1e3"], 4, 'bad value "1e3" for interval: expected seconds, from 0.05 to 3600'],
    [["system", "timezone", "europe/paris"], 2, 'bad value "europe/paris" for timezone: expected an IANA time zone name such as UTC or Europe/Paris'],
    [["system", "ntp", "bad..host"], 2, 'bad value "bad..host" for ntp: expected an IPv4 or IPv6 address or a host name'],
    [["system", "users", "alice", "class", "root"], 4, 'bad value "root" for class: expected one of admin, operator'],
    [[], 0, "missing word: expected one of system, management, ports, dataplane, backends, services, flow-rules, telemetry, snmp, discovery, ha, chains, acls, levels"],
  ];
  for (const [words, word, message] of cases) {
    assert.deepEqual(setPath(c, words), { ok: false, word, message }, words.join(" "));
  }
  const pw = setPath(c, ["system", "users", "alice", "password-hash", "hunter2"]);
  assert.equal(pw.ok, false);
  assert.ok(!pw.ok && pw.word === 4 && pw.message.startsWith("bad value for password-hash: expected a password hash scrypt$"), JSON.stringify(pw));
  assert.ok(!pw.ok && !pw.message.includes("hunter2"), "a plain password is never echoed");
  assert.deepEqual(c, before);
  assert.deepEqual(checkPath(["services", "web", "vipp"]), { ok: false, word: 2, message: 'unknown word "vipp": expected one of vip, protocol, port, mode, target-port, backends, on-backend-down, policy, partitions, arp, chain, tunnel' });
  assert.deepEqual(checkPath(["services", "web"]), { ok: true });
});

// ---- delete ----------------------------------------------------------------------------------

test("delete: an entry, a leaf, a container, a nested entry, a leaf-list value or all of it; emptied parents go", () => {
  const c = fullConfig();
  assert.deepEqual(deletePath(c, ["services", "dns"]), { ok: true });
  assert.deepEqual(c.services!.map((s) => s.name), ["web", "far", "parts", "dealt"]);
  assert.deepEqual(deletePath(c, ["services", "web", "target-port"]), { ok: true });
  assert.equal(c.services![0].targetPort, undefined);
  assert.ok(!("targetPort" in c.services![0]));
  assert.deepEqual(deletePath(c, ["services", "web", "backends", "s1"]), { ok: true }); // a bare-name entry
  assert.deepEqual(c.services![0].backends, [{ name: "s2", weight: 3 }]);
  assert.deepEqual(deletePath(c, ["services", "web", "backends", "s2", "weight"]), { ok: true });
  assert.deepEqual(c.services![0].backends, [{ name: "s2" }]); // the entry stays, bare
  assert.deepEqual(deletePath(c, ["backends", "s1", "check"]), { ok: true });
  assert.equal(c.backends![0].check, undefined);
  assert.deepEqual(deletePath(c, ["system", "ntp", "pool.ntp.org"]), { ok: true });
  assert.deepEqual(c.system?.ntp, ["192.0.2.123"]);
  assert.deepEqual(deletePath(c, ["system", "ntp"]), { ok: true });
  assert.deepEqual(deletePath(c, ["dataplane", "timeouts", "tcp", "600"]), { ok: true }); // with its current value
  assert.deepEqual(deletePath(c, ["system", "users"]), { ok: true });
  assert.deepEqual(deletePath(c, ["system", "hostname"]), { ok: true });
  assert.deepEqual(deletePath(c, ["system", "timezone"]), { ok: true });
  assert.equal(c.system, undefined); // emptied: gone
  assert.deepEqual(deletePath(c, ["ports"]), { ok: true });
  assert.deepEqual(c.ports, []); // the one list that is always there
  const check = fullConfig();
  for (const k of ["type", "port", "path", "host", "expect-status", "interval", "timeout", "rise", "fall"]) {
    assert.deepEqual(deletePath(check, ["backends", "s1", "check", k]), { ok: true }, k);
  }
  assert.ok(!("check" in check.backends![0]), "an emptied container is removed");
});

test("delete: what is not there is refused with what is, changing nothing", () => {
  const c = fullConfig();
  const before = structuredClone(c);
  assert.deepEqual(deletePath(c, ["services", "webx"]), { ok: false, word: 1, message: 'no service "webx": expected one of web, dns, far, parts, dealt' });
  assert.deepEqual(deletePath(c, ["services", "dns", "target-port"]), { ok: false, word: 2, message: "nothing to delete: target-port is not set" });
  assert.deepEqual(deletePath(c, ["services", "web", "backends", "s1", "weight"]), { ok: false, word: 4, message: "nothing to delete: weight is not set" });
  assert.deepEqual(deletePath(c, ["services", "web", "port", "81"]), { ok: false, word: 3, message: "no such value: expected the current value, 80" });
  assert.deepEqual(deletePath(c, ["system", "ntp", "192.0.2.9"]), { ok: false, word: 2, message: "no such value: expected one of 192.0.2.123, pool.ntp.org" });
  assert.deepEqual(deletePath(c, ["services", "web", "vipp"]).ok, false);
  assert.deepEqual(deletePath(c, []), { ok: false, word: 0, message: "missing word: expected one of system, management, ports, dataplane, backends, services, flow-rules, telemetry, snmp, discovery, ha, chains, acls, levels" });
  assert.deepEqual(c, before);
});

// ---- completions -----------------------------------------------------------------------------

const words = (list: { word: string }[]): string[] => list.map((c) => c.word);

test("completions: top level, filtered by the partial word, with help", () => {
  const c = labConfig([svc("dsr")]);
  assert.deepEqual(words(completions(c, [], "")), ["system", "management", "ports", "dataplane", "backends", "services", "flow-rules", "telemetry", "snmp", "discovery", "ha", "chains", "acls", "levels"]);
  assert.deepEqual(words(completions(c, [], "s")), ["system", "services", "snmp"]);
  assert.ok(completions(c, [], "").every((x) => x.help.length > 0));
});

test("completions: existing entries and a placeholder for a new one; inside an entry, its children", () => {
  const c = labConfig([svc("dsr"), svc("nat", { name: "api", port: 8080 })]);
  assert.deepEqual(completions(c, ["services"], ""), [
    { word: "web", help: "10.0.0.100 tcp/80 dsr" },
    { word: "api", help: "10.0.0.100 tcp/8080 nat" },
    { word: "<name>", help: "new service: 1-32 letters, digits, '_', '.', '-', starting with a letter" },
  ]);
  assert.deepEqual(words(completions(c, ["services"], "a")), ["api", "<name>"]);
  assert.deepEqual(words(completions(c, ["services", "web"], "t")), ["target-port", "tunnel"]);
  assert.deepEqual(words(completions(c, ["services", "web", "tunnel"], "")), ["encap", "source4", "source6", "gue-port"]);
  // a service's backends: its members, then the other defined backends
  assert.deepEqual(words(completions(c, ["services", "web", "backends"], "s1")), ["s1", "s1v6", "<name>"]);
  assert.equal(completions(c, ["services", "web", "backends"], "s1")[0].help, "member, weight 1");
  assert.equal(completions(c, ["services", "web", "backends"], "s1")[1].help, "backend 2001:db8:2::11 via server");
});

test("completions: enumeration values, booleans, references, placeholders for free-form values", () => {
  const c = labConfig([svc("dsr")]);
  assert.deepEqual(completions(c, ["services", "web", "mode"], ""), [
    { word: "dsr", help: "direct server return: rewrite the MAC only" },
    { word: "nat", help: "rewrite address and port" },
    { word: "tunnel", help: "encapsulate (IP-in-IP or GUE)" },
  ]);
  assert.deepEqual(words(completions(c, ["services", "web", "mode"], "n")), ["nat"]);
  assert.deepEqual(words(completions(c, ["services", "web", "arp"], "")), ["true", "false"]);
  assert.deepEqual(completions(c, ["services", "web", "vip"], ""), [{ word: "<address>", help: "IPv4 or IPv6 address" }]);
  assert.deepEqual(completions(c, ["services", "web", "port"], ""), [{ word: "<port>", help: "whole number from 0 to 65535, 0: every port" }]);
  assert.deepEqual(words(completions(c, ["backends", "s9", "via"], "")), ["client", "server", "<name>"]);
  assert.deepEqual(words(completions(c, ["system", "timezone"], "Europe/Pa")), ["Europe/Paris", "<timezone>"]);
  assert.deepEqual(words(completions(c, ["system", "timezone"], "")), ["<timezone>"]); // hundreds: type a few letters first
  assert.deepEqual(completions(c, ["services", "web", "vip", "10.0.0.1"], ""), []); // complete: nothing follows
  assert.deepEqual(completions(c, ["services", "web", "vipp"], ""), []);
});

test("completions for delete: only what is set", () => {
  const c = fullConfig();
  assert.deepEqual(words(completions(c, ["services", "dns"], "", "delete")), ["vip", "protocol", "port", "mode", "backends", "tunnel"]);
  assert.deepEqual(completions(c, ["system", "ntp"], "", "delete"), [
    { word: "192.0.2.123", help: "current value" },
    { word: "pool.ntp.org", help: "current value" },
  ]);
  assert.deepEqual(words(completions(c, ["system", "users"], "", "delete")), ["alice", "bob"]);
  assert.deepEqual(words(completions(c, ["services", "web", "port"], "", "delete")), ["80"]);
});

// ---- set form --------------------------------------------------------------------------------

test("set form: the example configurations and the demo configuration round-trip", async () => {
  for (const [file, c] of await exampleConfigs()) {
    const lines = toSetCommands(c);
    assert.ok(lines.every((l) => l.startsWith("set ")));
    const back = fromSetCommands(lines);
    assert.ok(back.ok, `${file}: ${back.ok ? "" : JSON.stringify(back.errors)}`);
    assert.deepEqual(back.config, normalizeInput(c), file);
    // normalising changes nothing validate() cares about
    const [v1, v2] = [validate(c), validate(back.config)];
    assert.ok(v1.ok && v2.ok, file);
    assert.deepEqual(v2.config, v1.config, file);
  }
});

test("set form: one line per leaf in schema order, bare entries on a line of their own, quoted values", () => {
  const c = labConfig([svc("dsr", { backends: ["s1", { name: "s2", weight: 2 }] })], { system: { hostname: "edge1" } });
  c.backends![0].check = { type: "udp", send: "PING\r\n", expect: "PONG ok" };
  const lines = toSetCommands(c);
  assert.deepEqual(lines.slice(0, 3), ["set system hostname edge1", "set ports client mac 02:00:00:00:01:01", "set ports client ipv4 192.0.2.1"]);
  assert.ok(lines.includes('set backends s1 check send "PING\\r\\n"'), lines.join("\n"));
  assert.ok(lines.includes('set backends s1 check expect "PONG ok"'));
  assert.deepEqual(lines.slice(-7), [
    "set services web vip 10.0.0.100",
    "set services web protocol tcp",
    "set services web port 80",
    "set services web mode dsr",
    "set services web backends s1",
    "set services web backends s2 weight 2",
    "set telemetry enabled false",
  ]);
  assert.deepEqual(tokenize('set backends s1 check expect "PONG ok"'), { ok: true, words: ["set", "backends", "s1", "check", "expect", "PONG ok"] });
  for (const w of ["", "a b", 'q"uote', "back\\slash", "tab\there", "#hash", "{", "plain-1.2:3/4"]) {
    const t = tokenize(`set x ${quote(w)} y`);
    assert.deepEqual(t, { ok: true, words: ["set", "x", w, "y"] }, w);
  }
});

test("set form: comments, blank lines and delete are read; bad lines are all reported with line and word", () => {
  const good = fromSetCommands([
    "# the web service",
    "",
    "set ports client mac 02:00:00:00:01:01",
    "set services web vip 10.0.0.100",
    "set services web port 80",
    "delete services web port",
    "   set system ntp pool.ntp.org   ",
  ]);
  assert.deepEqual(good, { ok: true, config: { system: { ntp: ["pool.ntp.org"] }, ports: [{ name: "client", mac: "02:00:00:00:01:01" }], services: [{ name: "web", vip: "10.0.0.100" }] } });
  const bad = fromSetCommands([
    "set services web vip 10.0.0.100",
    "sett services web port 80",
    "set services web port 80000",
    'set backends s1 check expect "unterminated',
    "delete services api",
  ]);
  assert.deepEqual(bad, {
    ok: false,
    errors: [
      { line: 2, word: 0, message: 'unknown command "sett": expected set or delete' },
      { line: 3, word: 4, message: 'bad value "80000" for port: expected a whole number from 0 to 65535' },
      { line: 4, word: 5, message: 'unterminated quote: expected a closing "' },
      { line: 5, word: 2, message: 'no service "api": expected one of web' },
    ],
  });
});

// ---- compare ---------------------------------------------------------------------------------

test("compare: nothing for equal configurations, however the members are written", () => {
  const a = labConfig([svc("dsr", { backends: ["s1", { name: "s2" }] })]);
  const b = labConfig([svc("dsr", { backends: [{ name: "s1" }, "s2"] })]);
  assert.deepEqual(compare(a, b), []);
  assert.deepEqual(compare(fullConfig(), fullConfig()), []);
});

test("compare: a changed leaf shows old then new; added and removed leaves and entries show all their lines", () => {
  const a = labConfig([svc("dsr", { backends: ["s1", "s2"] }), svc("nat", { name: "api", port: 8080, targetPort: 80 })]);
  const b = structuredClone(a);
  for (const w of [
    ["services", "web", "port", "81"],
    ["services", "web", "backends", "s2", "weight", "3"],
    ["services", "web", "backends", "s3"],
    ["system", "ntp", "192.0.2.1"],
    ["services", "dns", "vip", "10.0.0.53"],
  ]) assert.deepEqual(setPath(b, w), { ok: true });
  for (const w of [["services", "api"], ["services", "web", "backends", "s1"], ["backends", "s3v6", "mac"]]) assert.deepEqual(deletePath(b, w), { ok: true });
  assert.deepEqual(compare(a, b), [
    "+ set system ntp 192.0.2.1",
    "- set backends s3v6 mac 02:00:00:00:02:23",
    "- set services web port 80",
    "+ set services web port 81",
    "- set services web backends s1",
    "+ set services web backends s2 weight 3",
    "+ set services web backends s3",
    "- set services api vip 10.0.0.100",
    "- set services api protocol tcp",
    "- set services api port 8080",
    "- set services api mode nat",
    "- set services api target-port 80",
    "- set services api backends s1",
    "+ set services dns vip 10.0.0.53",
  ]);
  // and the other way round: the same lines, signs swapped (a changed leaf: new then old)
  const back = compare(b, a);
  assert.deepEqual([...back].map((l) => l.slice(1)).sort(), compare(a, b).map((l) => l.slice(1)).sort());
  assert.ok(back.includes("+ set services web port 80") && back.includes("- set services web port 81"));
});

test("compare: entries in another order show as moved (removed and added again)", () => {
  const a = labConfig([svc("dsr")]);
  const b = structuredClone(a);
  b.ports.reverse();
  const d = compare(a, b);
  assert.ok(d.length > 0);
  assert.ok(d.every((l) => l.includes("set ports ")), d.join("\n"));
});

// ---- show configuration ----------------------------------------------------------------------

test("renderConfig: Junos-style blocks indented by four, a subtree for a path, leaf-lists bracketed", () => {
  const c = labConfig([svc("nat", { targetPort: 8080, backends: ["s1", { name: "s2", weight: 2 }] })], {
    system: { hostname: "edge1", ntp: ["192.0.2.1", "192.0.2.2"], users: [{ name: "alice", class: "admin", passwordHash: HASH }] },
  });
  const all = renderConfig(c);
  assert.ok(all.startsWith(`system {\n    hostname edge1;\n    ntp [ 192.0.2.1 192.0.2.2 ];\n    users {\n        alice {\n            class admin;\n            password-hash ${HASH};\n        }\n    }\n}\nports {\n    client {\n        mac 02:00:00:00:01:01;`), all);
  assert.ok(all.endsWith("\n}"));
  assert.equal(renderConfig(c, ["services"]), [
    "web {",
    "    vip 10.0.0.100;",
    "    protocol tcp;",
    "    port 80;",
    "    mode nat;",
    "    target-port 8080;",
    "    backends {",
    "        s1;",
    "        s2 {",
    "            weight 2;",
    "        }",
    "    }",
    "}",
  ].join("\n"));
  assert.equal(renderConfig(c, ["services", "web", "backends", "s2"]), "weight 2;");
  assert.equal(renderConfig(c, ["services", "web", "vip"]), "vip 10.0.0.100;");
  assert.equal(renderConfig(c, ["system", "ntp", "192.0.2.2"]), "ntp 192.0.2.2;");
  assert.equal(renderConfig(c, ["services", "nope"]), "");
  assert.equal(renderConfig(c, ["services", "web", "vipp"]), "");
  // a secret that is not a hash is never shown
  (c.system!.users![0] as { passwordHash: string }).passwordHash = "hunter2";
  assert.ok(!renderConfig(c).includes("hunter2") && !toSetCommands(c).join("\n").includes("hunter2") && !compare(labConfig([]), c).join("\n").includes("hunter2"));
});

test("renderConfig: lines fit 80 columns; a leaf-list too long for one line gets a line per value", async () => {
  const c = labConfig([svc("dsr")], { system: { ntp: ["0.pool.ntp.org", "1.pool.ntp.org", "2.pool.ntp.org", "3.pool.ntp.org", "time.example.net"] } });
  const shown = renderConfig(c, ["system"]);
  assert.equal(shown, "ntp 0.pool.ntp.org;\nntp 1.pool.ntp.org;\nntp 2.pool.ntp.org;\nntp 3.pool.ntp.org;\nntp time.example.net;");
  for (const [file, x] of await exampleConfigs()) {
    for (const line of renderConfig(x).split("\n")) assert.ok(line.length <= 80, `${file}: ${line}`);
  }
});
