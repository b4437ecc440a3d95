// Validation: turns what an operator wrote into a Config, or into a list of errors that each name
// the path, the value found and the form expected. Nothing is applied unless all of it is valid.
import { parseIP, parseMac } from "../net/frame.js";
import { isPrime } from "../engine/maglev.js";
import { MAX_PORTS, BACKEND_NONE, HEADROOM, TAILROOM, MAX_FLOW_RULES, MAX_CHAINS, MAX_HOPS, MAX_HOP_DEVICES, MAX_DEVICES, MAX_ACL_TABLES, MAX_ACL_RULES } from "../../assembly/layout.js";
import {
  type Address, type Backend, type Check, type Config, type ConfigInput, type Port, type Service,
  type Timeouts, type User, type FlowRule, type Prefix, DEFAULT_SIZES, DEFAULT_TIMEOUTS, CHECK_DEFAULT_SECONDS, CHECK_DEFAULT_COUNTS,
  DEFAULT_TIMEZONE, DEFAULT_USER_CLASS,
} from "./schema.js";
import { type TelemetryConfig, TELEMETRY_DEFAULTS } from "./schema.js";
import { type SnmpConfig, type SnmpNotify, type SnmpUser, SNMP_DEFAULTS } from "./schema.js";
import { type DiscoveryConfig, DISCOVERY_DEFAULTS } from "./schema.js";
import { type SupervisorSettings, SUPERVISOR_DEFAULTS } from "./schema.js";
import { type HaConfig, HA_DEFAULTS } from "./schema.js";
import type { Chain, ChainDevice, AclTable, AclRule } from "./schema.js";
import type { Partitions } from "./schema.js";
import { type LevelsConfig, type LevelsEndpoint, type LevelsSite, LEVELS_DEFAULTS } from "./schema.js";
import { isId, ID_FORM } from "../wire/fields.js";

export interface ConfigError {
  path: string;
  value: unknown;
  expected: string;
}

export function formatError(e: ConfigError): string {
  const shown = e.value === undefined ? "missing" : JSON.stringify(e.value);
  return `${e.path}: ${shown}: expected ${e.expected}`;
}

export type Validation = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

// The forms and ranges below are shared with the console's per-value checks (tree.ts), so that
// a value the console takes is never refused at commit for its own sake, and the reverse.
export const NAME = /^[A-Za-z][A-Za-z0-9_.-]{0,31}$/;
export const NAME_FORM = "a name of 1-32 letters, digits, '_', '.', '-', starting with a letter";
const MAX_FLOWS = 1 << 26; // 64M flows: the table must still fit a 4 GiB wasm memory
/** Longest free-text value (health-check path, host, send, expect). */
export const TEXT_MAX = 1024;

/** [min, max] of every numeric setting. */
export const RANGE = {
  mtu: [576, 9000],
  flows: [16, MAX_FLOWS],
  maglevSize: [3, 1_000_003],
  maxServices: [1, 4096],
  maxBackends: [1, BACKEND_NONE],
  bufferCount: [64, 1 << 20],
  bufferSize: [256, 16384],
  engines: [0, 64],
  idleTimeout: [1, 86400 * 7],
  servicePort: [0, 65535], // 0: every port
  port: [1, 65535],
  weight: [0, 1000],
  expectStatus: [100, 599],
  checkCount: [1, 100],
  checkSeconds: [0.05, 3600],
  dscp: [0, 63],
  pcp: [0, 7],
  vlanId: [1, 4094],
  mplsLabel: [0, 1048575],
  mplsTc: [0, 7],
  mplsTtl: [1, 255],
} as const satisfies Record<string, readonly [number, number]>;

export const PASSWORD_HASH_FORM = "a password hash scrypt$N$r$p$<salt>$<hash> (N a power of two up to 2^20, r up to 32, p up to 16, salt of 8 bytes or more and hash of 16 or more in base64), never the password itself";
const SCRYPT = /^scrypt\$(\d{1,10})\$(\d{1,10})\$(\d{1,10})\$([A-Za-z0-9+/]+={0,2})\$([A-Za-z0-9+/]+={0,2})$/;

/** The parts of `scrypt$N$r$p$<salt>$<hash>`, or undefined when the text is not of that form. */
export function parsePasswordHash(text: string): { N: number; r: number; p: number; salt: Buffer; hash: Buffer } | undefined {
  const m = SCRYPT.exec(text);
  if (!m) return undefined;
  const [N, r, p] = [Number(m[1]), Number(m[2]), Number(m[3])];
  // N a power of two above 1 (scrypt's rule); the upper bounds are what login verifies in
  // reasonable memory and time (console/passwords.ts refuses more)
  if (N < 2 || N > 2 ** 20 || (N & (N - 1)) !== 0 || r < 1 || r > 32 || p < 1 || p > 16) return undefined;
  const salt = base64(m[4]);
  const hash = base64(m[5]);
  if (!salt || salt.length < 8 || !hash || hash.length < 16) return undefined;
  return { N, r, p, salt, hash };
}

/** Strict base64 (padded or not): Buffer.from alone skips characters it does not know. */
function base64(text: string): Buffer | undefined {
  const b = Buffer.from(text, "base64");
  const again = b.toString("base64");
  return again === text || again.replace(/=+$/, "") === text ? b : undefined;
}

export const TIMEZONE_FORM = "an IANA time zone name such as UTC or Europe/Paris";
const TZ_NAME = /^[A-Z][A-Za-z0-9_+-]*(\/[A-Z0-9][A-Za-z0-9_+-]*)*$/; // exact case: zoneinfo file names are case-sensitive

export function isTimeZone(text: string): boolean {
  if (!TZ_NAME.test(text)) return false;
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: text });
    return true;
  } catch {
    return false;
  }
}

/** Every zone the runtime knows, for completion ("UTC" is not in Intl's list: it is an alias there). */
export function timeZones(): string[] {
  return ["UTC", ...Intl.supportedValuesOf("timeZone")];
}

export const HOST_FORM = "an IPv4 or IPv6 address or a host name";
const LABEL = /^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$/;

/** An address (not the unspecified one) or an RFC 1123 host name whose last label is not all digits. */
export function isHost(text: string): boolean {
  try {
    return !parseIP(text).bytes.every((b) => b === 0);
  } catch {
    const labels = text.replace(/\.$/, "").split(".");
    return text.length <= 253 && labels.every((l) => LABEL.test(l)) && !/^\d+$/.test(labels[labels.length - 1]);
  }
}

export const PREFIX_FORM = "an address prefix like 192.0.2.0/24 or 2001:db8::/32, no bits set past the length";

/** An address prefix `address/length` (a bare address: its full length), host bits zero; or undefined. */
export function parsePrefix(text: string): Prefix | undefined {
  const m = /^([^/]+)(?:\/(\d{1,3}))?$/.exec(text);
  if (!m) return undefined;
  let a;
  try {
    a = parseIP(m[1]);
  } catch {
    return undefined;
  }
  const bits = a.bytes.length * 8;
  const length = m[2] === undefined ? bits : Number(m[2]);
  if (length > bits) return undefined;
  for (let i = 0; i < bits; i++) {
    if (i >= length && a.bytes[i >> 3] & (0x80 >> (i & 7))) return undefined;
  }
  return { family: a.family, bytes: a.bytes, length, text };
}

class Checker {
  errors: ConfigError[] = [];

  fail(path: string, value: unknown, expected: string): undefined {
    this.errors.push({ path, value, expected });
    return undefined;
  }

  object(path: string, v: unknown, keys: readonly string[]): Record<string, unknown> | undefined {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return this.fail(path, v, "an object");
    for (const k of Object.keys(v)) {
      if (!keys.includes(k)) this.fail(`${path}.${k}`, (v as Record<string, unknown>)[k], `one of the keys ${keys.join(", ")} (unknown key)`);
    }
    return v as Record<string, unknown>;
  }

  array(path: string, v: unknown): unknown[] | undefined {
    if (v === undefined) return [];
    if (!Array.isArray(v)) return this.fail(path, v, "a list");
    return v;
  }

  int(path: string, v: unknown, def: number | undefined, min: number, max: number): number | undefined {
    if (v === undefined) {
      if (def === undefined) return this.fail(path, v, `a whole number from ${min} to ${max}`);
      return def;
    }
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      return this.fail(path, v, `a whole number from ${min} to ${max}`);
    }
    return v;
  }

  oneOf<T extends string>(path: string, v: unknown, def: T | undefined, options: readonly T[]): T | undefined {
    if (v === undefined && def !== undefined) return def;
    if (typeof v !== "string" || !options.includes(v as T)) return this.fail(path, v, `one of ${options.join(", ")}`);
    return v as T;
  }

  name(path: string, v: unknown): string | undefined {
    if (typeof v !== "string" || !NAME.test(v)) return this.fail(path, v, NAME_FORM);
    return v;
  }

  mac(path: string, v: unknown): Uint8Array | undefined {
    try {
      if (typeof v !== "string") throw new Error();
      const m = parseMac(v);
      if (m[0] & 1) return this.fail(path, v, "a unicast MAC address (the first octet is even)");
      return m;
    } catch {
      return this.fail(path, v, "a MAC address like 02:00:00:00:00:01");
    }
  }

  address(path: string, v: unknown, family?: 4 | 6): Address | undefined {
    const form = family === 4 ? "an IPv4 address" : family === 6 ? "an IPv6 address" : "an IPv4 or IPv6 address";
    if (typeof v !== "string") return this.fail(path, v, form);
    try {
      const a = parseIP(v);
      if (family && a.family !== family) return this.fail(path, v, form);
      if (a.bytes.every((b) => b === 0)) return this.fail(path, v, `${form} other than the unspecified address`);
      return { family: a.family, bytes: a.bytes, text: v };
    } catch {
      return this.fail(path, v, form);
    }
  }

  bool(path: string, v: unknown, def: boolean): boolean {
    if (v === undefined) return def;
    if (typeof v !== "boolean") this.fail(path, v, "true or false");
    return v === true;
  }
}

export function validate(input: unknown): Validation {
  const c = new Checker();
  const root = c.object("config", input, ["system", "management", "ports", "dataplane", "backends", "services", "flowRules", "telemetry", "snmp", "discovery", "ha", "chains", "acls", "levels"]);
  if (!root) return { ok: false, errors: c.errors };

  const system = root.system === undefined ? {} : c.object("system", root.system, ["hostname", "timezone", "ntp", "users"]) ?? {};
  const hostname = system.hostname === undefined ? "flowswitch" : c.name("system.hostname", system.hostname) ?? "";
  let timezone = DEFAULT_TIMEZONE;
  if (system.timezone !== undefined) {
    if (typeof system.timezone === "string" && isTimeZone(system.timezone)) timezone = system.timezone;
    else c.fail("system.timezone", system.timezone, TIMEZONE_FORM);
  }
  const ntp: string[] = [];
  (c.array("system.ntp", system.ntp) ?? []).forEach((s, i) => {
    if (typeof s !== "string" || !isHost(s)) return c.fail(`system.ntp[${i}]`, s, HOST_FORM);
    if (ntp.includes(s)) return c.fail(`system.ntp[${i}]`, s, "each server once");
    ntp.push(s);
  });
  const users: User[] = [];
  const userNames = new Set<string>();
  (c.array("system.users", system.users) ?? []).forEach((u, i) => {
    const path = `system.users[${i}]`;
    const o = c.object(path, u, ["name", "class", "passwordHash"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && userNames.has(name)) c.fail(`${path}.name`, name, "a name no other user has");
    if (name) userNames.add(name);
    const cls = c.oneOf(`${path}.class`, o.class, DEFAULT_USER_CLASS, ["admin", "operator"] as const);
    // never echo what was found: it may be a password typed in the wrong place
    const hash = typeof o.passwordHash === "string" && parsePasswordHash(o.passwordHash) ? o.passwordHash : undefined;
    if (!hash) c.fail(`${path}.passwordHash`, o.passwordHash === undefined ? undefined : "(hidden)", PASSWORD_HASH_FORM);
    if (name && cls && hash) users.push({ name, class: cls, passwordHash: hash });
  });

  const mg = root.management === undefined ? {} : c.object("management", root.management, ["ipv4", "ipv6"]) ?? {};
  const management = {
    ipv4: mg.ipv4 === undefined ? undefined : c.address("management.ipv4", mg.ipv4, 4),
    ipv6: mg.ipv6 === undefined ? undefined : c.address("management.ipv6", mg.ipv6, 6),
  };
  const dp = root.dataplane === undefined ? {} : c.object("dataplane", root.dataplane, ["flows", "timeouts", "noVip", "maglevSize", "engines", "limits", "buffers"]) ?? {};
  const flows = dp.flows === undefined ? {} : c.object("dataplane.flows", dp.flows, ["ipv4", "ipv6"]) ?? {};
  const limits = dp.limits === undefined ? {} : c.object("dataplane.limits", dp.limits, ["services", "backends"]) ?? {};
  const buffers = dp.buffers === undefined ? {} : c.object("dataplane.buffers", dp.buffers, ["count", "size"]) ?? {};
  const D = DEFAULT_SIZES;
  const sizes = {
    ipv4Flows: c.int("dataplane.flows.ipv4", flows.ipv4, D.ipv4Flows, ...RANGE.flows) ?? 0,
    ipv6Flows: c.int("dataplane.flows.ipv6", flows.ipv6, D.ipv6Flows, ...RANGE.flows) ?? 0,
    maglevSize: c.int("dataplane.maglevSize", dp.maglevSize, D.maglevSize, ...RANGE.maglevSize) ?? 0,
    maxServices: c.int("dataplane.limits.services", limits.services, D.maxServices, ...RANGE.maxServices) ?? 0,
    maxBackends: c.int("dataplane.limits.backends", limits.backends, D.maxBackends, ...RANGE.maxBackends) ?? 0,
    bufferCount: c.int("dataplane.buffers.count", buffers.count, D.bufferCount, ...RANGE.bufferCount) ?? 0,
    bufferSize: c.int("dataplane.buffers.size", buffers.size, D.bufferSize, ...RANGE.bufferSize) ?? 0,
    engines: c.int("dataplane.engines", dp.engines, D.engines, ...RANGE.engines) ?? 0,
  };
  if (sizes.maglevSize && !isPrime(sizes.maglevSize)) c.fail("dataplane.maglevSize", sizes.maglevSize, "a prime number, such as 65537");
  if (sizes.bufferSize % 64) c.fail("dataplane.buffers.size", sizes.bufferSize, "a multiple of 64");

  const to = dp.timeouts === undefined ? {} : c.object("dataplane.timeouts", dp.timeouts, Object.keys(DEFAULT_TIMEOUTS)) ?? {};
  const timeouts = {} as Timeouts;
  for (const k of Object.keys(DEFAULT_TIMEOUTS) as (keyof Timeouts)[]) {
    timeouts[k] = c.int(`dataplane.timeouts.${k}`, to[k], DEFAULT_TIMEOUTS[k], ...RANGE.idleTimeout) ?? 0;
  }
  const noVip = c.oneOf("dataplane.noVip", dp.noVip, "forward", ["forward", "drop"] as const) ?? "drop";

  // ports
  const ports: Port[] = [];
  const portIn = c.array("ports", root.ports) ?? [];
  if (portIn.length === 0) c.fail("ports", root.ports, "at least one port");
  if (portIn.length > MAX_PORTS) c.fail("ports", portIn.length, `at most ${MAX_PORTS} ports`);
  const portByName = new Map<string, number>();
  portIn.forEach((p, i) => {
    const path = `ports[${i}]`;
    const o = c.object(path, p, ["name", "device", "mac", "mtu", "ipv4", "ipv6", "peer", "gateway", "gateway6", "gatewayMac"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && portByName.has(name)) c.fail(`${path}.name`, name, "a name no other port has");
    if (name) portByName.set(name, i);
    ports.push({
      index: i,
      name: name ?? "",
      device: o.device === undefined ? name ?? "" : c.name(`${path}.device`, o.device) ?? "",
      mac: c.mac(`${path}.mac`, o.mac) ?? new Uint8Array(6),
      mtu: c.int(`${path}.mtu`, o.mtu, 1500, ...RANGE.mtu) ?? 1500,
      ipv4: o.ipv4 === undefined ? undefined : c.address(`${path}.ipv4`, o.ipv4, 4),
      ipv6: o.ipv6 === undefined ? undefined : c.address(`${path}.ipv6`, o.ipv6, 6),
      gateway: o.gateway === undefined ? undefined : c.address(`${path}.gateway`, o.gateway, 4),
      gateway6: o.gateway6 === undefined ? undefined : c.address(`${path}.gateway6`, o.gateway6, 6),
      gatewayMac: o.gatewayMac === undefined ? undefined : c.mac(`${path}.gatewayMac`, o.gatewayMac),
    });
  });
  portIn.forEach((p, i) => {
    const peer = (p as { peer?: unknown })?.peer;
    if (peer === undefined || !ports[i]) return;
    const idx = typeof peer === "string" ? portByName.get(peer) : undefined;
    if (idx === undefined || idx === i) c.fail(`ports[${i}].peer`, peer, "the name of another port");
    else ports[i].peer = idx;
  });
  if (ports.length === 2 && ports.every((p) => p.peer === undefined)) {
    ports[0].peer = 1; // two ports: a wire through the box, unless said otherwise
    ports[1].peer = 0;
  }
  const maxFrame = sizes.bufferSize - HEADROOM - TAILROOM;
  for (const p of ports) {
    if (p.mtu + 14 + 8 > maxFrame) c.fail(`ports[${p.index}].mtu`, p.mtu, `at most ${maxFrame - 22} with buffers of ${sizes.bufferSize} bytes (raise dataplane.buffers.size)`);
  }

  // backends
  const backends: Backend[] = [];
  const beByName = new Map<string, Backend>();
  (c.array("backends", root.backends) ?? []).forEach((b, i) => {
    const path = `backends[${i}]`;
    const o = c.object(path, b, ["name", "address", "mac", "via", "natPort", "state", "check", "capacity"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && beByName.has(name)) c.fail(`${path}.name`, name, "a name no other backend has");
    const via = typeof o.via === "string" ? portByName.get(o.via) : undefined;
    if (via === undefined) c.fail(`${path}.via`, o.via, `the name of a port (${[...portByName.keys()].join(", ")})`);
    const be: Backend = {
      name: name ?? "",
      address: c.address(`${path}.address`, o.address) ?? { family: 4, bytes: new Uint8Array(4), text: "" },
      mac: o.mac === undefined ? undefined : c.mac(`${path}.mac`, o.mac),
      via: via ?? 0,
      natPort: c.int(`${path}.natPort`, o.natPort, 0, ...RANGE.port) ?? 0,
      state: c.oneOf(`${path}.state`, o.state, "active", ["active", "draining", "down"] as const) ?? "active",
      check: o.check === undefined ? undefined : check(c, `${path}.check`, o.check),
      capacity: c.int(`${path}.capacity`, o.capacity, 0, 0, 100_000_000) ?? 0,
    };
    backends.push(be);
    if (name) beByName.set(name, be);
  });
  // a system appliance's sites are backends too (reached through tunnels), named before the services read them
  const levelsIn = root.levels === undefined ? undefined : c.object("levels", root.levels, LEVELS_KEYS);
  for (const be of levelsIn ? levelSites(c, levelsIn, portByName, beByName) : []) {
    backends.push(be);
    beByName.set(be.name, be);
  }
  if (backends.length > sizes.maxBackends) c.fail("backends", backends.length, `at most ${sizes.maxBackends} backends (dataplane.limits.backends)`);

  // services
  const services: Service[] = [];
  const svcNames = new Set<string>();
  const svcKeys = new Map<string, string>();
  (c.array("services", root.services) ?? []).forEach((s, i) => {
    const path = `services[${i}]`;
    const o = c.object(path, s, ["name", "vip", "protocol", "port", "mode", "targetPort", "backends", "onBackendDown", "arp", "tunnel", "chain", "policy", "partitions"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && svcNames.has(name)) c.fail(`${path}.name`, name, "a name no other service has");
    if (name) svcNames.add(name);
    const vip = c.address(`${path}.vip`, o.vip);
    const protocol = c.oneOf(`${path}.protocol`, o.protocol, undefined, ["tcp", "udp"] as const);
    const port = c.int(`${path}.port`, o.port, undefined, ...RANGE.servicePort);
    const mode = c.oneOf(`${path}.mode`, o.mode, undefined, ["dsr", "nat", "tunnel"] as const);
    const targetPort = c.int(`${path}.targetPort`, o.targetPort, 0, ...RANGE.port) ?? 0;
    if (port === 0 && targetPort) c.fail(`${path}.targetPort`, targetPort, "no targetPort on an every-port service (port 0)");
    if (vip && protocol && port !== undefined) {
      const key = `${vip.text}/${protocol}/${port}`;
      const other = svcKeys.get(key);
      if (other !== undefined) c.fail(`${path}.port`, port, `a VIP, protocol and port no other service has (service ${other} has them)`);
      svcKeys.set(key, name ?? "");
    }
    const members: { name: string; weight: number }[] = [];
    const seen = new Set<string>();
    (c.array(`${path}.backends`, o.backends) ?? []).forEach((m, j) => {
      const mp = `${path}.backends[${j}]`;
      const mo = typeof m === "string" ? { name: m } : c.object(mp, m, ["name", "weight"]);
      if (!mo) return;
      const be = typeof mo.name === "string" ? beByName.get(mo.name) : undefined;
      if (!be) return c.fail(`${mp}.name`, mo.name, `the name of a backend (${[...beByName.keys()].join(", ") || "none defined"})`);
      if (seen.has(be.name)) return c.fail(`${mp}.name`, be.name, "each backend once per service");
      seen.add(be.name);
      const weight = c.int(`${mp}.weight`, mo.weight, 1, ...RANGE.weight) ?? 1;
      if (vip && mode === "nat" && be.address.family !== vip.family) {
        c.fail(`${mp}.name`, be.name, `a backend of the VIP's family (IPv${vip.family}) for NAT: ${be.name} is ${be.address.text}`);
      }
      members.push({ name: be.name, weight });
    });
    const t = o.tunnel === undefined ? {} : c.object(`${path}.tunnel`, o.tunnel, ["encap", "source4", "source6", "guePort"]) ?? {};
    const tunnel = {
      encap: c.oneOf(`${path}.tunnel.encap`, t.encap, "ipip", ["ipip", "gue"] as const) ?? "ipip",
      source4: t.source4 === undefined ? undefined : c.address(`${path}.tunnel.source4`, t.source4, 4),
      source6: t.source6 === undefined ? undefined : c.address(`${path}.tunnel.source6`, t.source6, 6),
      guePort: c.int(`${path}.tunnel.guePort`, t.guePort, 6080, ...RANGE.port) ?? 6080,
    };
    const sites = members.filter((m) => beByName.get(m.name)?.site);
    if (sites.length && (sites.length !== members.length || mode !== "tunnel")) {
      c.fail(`${path}.backends`, members.map((m) => m.name).join(", "), "either sites (levels.sites) only, in mode tunnel, or no site: a system service picks sites, a site service servers");
    }
    if (mode === "tunnel") {
      for (const m of members) {
        const fam = beByName.get(m.name)?.address.family;
        if (fam === 4 && !tunnel.source4) c.fail(`${path}.tunnel.source4`, undefined, `an IPv4 source address: backend ${m.name} is reached over IPv4`);
        if (fam === 6 && !tunnel.source6) c.fail(`${path}.tunnel.source6`, undefined, `an IPv6 source address: backend ${m.name} is reached over IPv6`);
      }
    }
    const policy = c.oneOf(`${path}.policy`, o.policy, "maglev", ["maglev", "primary-backup", "source-partition"] as const) ?? "maglev";
    if (o.partitions !== undefined && policy !== "source-partition") c.fail(`${path}.partitions`, "(given)", "partitions only with policy source-partition");
    const partitions = policy === "source-partition" && vip ? partitionsOf(c, `${path}.partitions`, o.partitions, vip.family, members.map((m) => m.name)) : undefined;
    services.push({
      name: name ?? "",
      vip: vip ?? { family: 4, bytes: new Uint8Array(4), text: "" },
      protocol: protocol ?? "tcp",
      port: port ?? 0,
      mode: mode ?? "dsr",
      targetPort,
      backends: members,
      onBackendDown: c.oneOf(`${path}.onBackendDown`, o.onBackendDown, "reselect", ["reselect", "reset"] as const) ?? "reselect",
      policy,
      ...(partitions && { partitions }),
      arp: c.bool(`${path}.arp`, o.arp, true),
      tunnel,
      ...(o.chain !== undefined && { chain: typeof o.chain === "string" ? o.chain : String(o.chain) }),
    });
  });
  if (services.length > sizes.maxServices) c.fail("services", services.length, `at most ${sizes.maxServices} services (dataplane.limits.services)`);

  // a check without a port probes the port of the first service that uses the backend
  for (const be of backends) {
    if (!be.check || be.check.port) continue;
    const s = services.find((x) => x.backends.some((m) => m.name === be.name));
    be.check.port = be.natPort || (s?.mode === "nat" && s.targetPort) || s?.port || 0;
    if (!be.check.port) c.fail(`backends[${backends.indexOf(be)}].check.port`, undefined, "a port to probe (no service gives one)");
  }

  const flowRules = flowRulesSection(c, root.flowRules, beByName, services);
  const portions = services.reduce((n, s) => n + (s.partitions?.portions.length ?? 0), 0);
  if (portions + flowRules.length > MAX_FLOW_RULES) c.fail("services", `${portions} portions and ${flowRules.length} flow rules`, `at most ${MAX_FLOW_RULES} portions and flow rules together (each portion is a flow rule in the data plane)`);
  const telemetry = telemetrySection(c, root.telemetry);
  const snmp = root.snmp === undefined ? undefined : snmpSection(c, root.snmp);
  const discovery = root.discovery === undefined ? undefined : discoverySection(c, root.discovery, ports, backends);
  const supervisor = supervisorSection(c, root.discovery, management);
  if (discovery && supervisor) discovery.supervisor = supervisor;
  const ha = root.ha === undefined ? undefined : haSection(c, root.ha);
  const chains = chainsSection(c, root.chains, ports, services, (root.services as unknown[] | undefined) ?? []);
  const acls = aclsSection(c, root.acls, ports, services);
  const levels = levelsIn ? levelsSection(c, levelsIn, hostname, management, backends) : undefined;

  if (c.errors.length) return { ok: false, errors: c.errors };
  return { ok: true, config: { hostname, timezone, ntp, users, management, ports, sizes, timeouts, noVip, backends, services, flowRules, telemetry, snmp, discovery, ha, chains, acls, ...(levels && { levels }) } };
}

// ---- service chains and ACLs ------------------------------------------------------------------

export const CHAIN_LIMITS = { chains: MAX_CHAINS, hops: MAX_HOPS, hopDevices: MAX_HOP_DEVICES, devices: MAX_DEVICES } as const;

function chainsSection(c: Checker, v: unknown, ports: Port[], services: Service[], rawServices: unknown[]): Chain[] {
  const chains: Chain[] = [];
  const list = c.array("chains", v) ?? [];
  if (list.length > MAX_CHAINS) c.fail("chains", list.length, `at most ${MAX_CHAINS} chains`);
  const deviceNames = new Set<string>();
  const portByName = new Map(ports.map((p) => [p.name, p]));
  const device = (path: string, d: unknown): ChainDevice | undefined => {
    const o = c.object(path, d, ["name", "port", "mac", "address"]);
    if (!o) return undefined;
    const name = c.name(`${path}.name`, o.name);
    if (name && deviceNames.has(name)) c.fail(`${path}.name`, name, "a name no other chain device has");
    if (name) deviceNames.add(name);
    const port = typeof o.port === "string" ? portByName.get(o.port) : undefined;
    if (!port) c.fail(`${path}.port`, o.port, `the name of a port (${ports.map((p) => p.name).join(", ")})`);
    const mac = o.mac === undefined ? undefined : c.mac(`${path}.mac`, o.mac);
    const address = o.address === undefined ? undefined : c.address(`${path}.address`, o.address);
    if (o.mac === undefined && o.address === undefined) c.fail(path, undefined, "a device with a mac, or an address resolved by ARP / ND on its port");
    if (address && port && !(address.family === 4 ? port.ipv4 : port.ipv6)) c.fail(`${path}.address`, o.address, `an address port ${port.name} can resolve: it has no IPv${address.family} address of its own`);
    if (!name || !port) return undefined;
    return { name, port: port.index, ...(mac && { mac }), ...(address && { address }) };
  };
  list.forEach((ch, i) => {
    const path = `chains[${i}]`;
    const o = c.object(path, ch, ["name", "hops"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && chains.some((x) => x.name === name)) c.fail(`${path}.name`, name, "a name no other chain has");
    const hops: Chain["hops"] = [];
    const hl = c.array(`${path}.hops`, o.hops) ?? [];
    if (hl.length === 0 || hl.length > MAX_HOPS) c.fail(`${path}.hops`, hl.length, `1 to ${MAX_HOPS} hops`);
    hl.forEach((h, j) => {
      const hp = `${path}.hops[${j}]`;
      const ho = c.object(hp, h, ["name", "kind", "devices", "alternates"]);
      if (!ho) return;
      const hname = c.name(`${hp}.name`, ho.name) ?? "";
      const kind = c.oneOf(`${hp}.kind`, ho.kind, undefined, ["inline", "mirror"] as const);
      const devs = (c.array(`${hp}.devices`, ho.devices) ?? []).map((d, k) => device(`${hp}.devices[${k}]`, d)).filter((d): d is ChainDevice => !!d);
      const alts = (c.array(`${hp}.alternates`, ho.alternates) ?? []).map((d, k) => device(`${hp}.alternates[${k}]`, d)).filter((d): d is ChainDevice => !!d);
      if (Array.isArray(ho.devices) && ho.devices.length === 0) c.fail(`${hp}.devices`, [], "one or more devices");
      if (devs.length + alts.length > MAX_HOP_DEVICES) c.fail(hp, devs.length + alts.length, `at most ${MAX_HOP_DEVICES} devices and alternates in a hop`);
      if (kind === "mirror" && hops.at(-1)?.kind === "mirror") c.fail(`${hp}.kind`, kind, "inline: two mirror hops need an inline hop between them");
      if (kind) hops.push({ name: hname, kind, devices: devs, alternates: alts });
    });
    if (name) chains.push({ name, hops });
  });
  if (deviceNames.size > MAX_DEVICES) c.fail("chains", deviceNames.size, `at most ${MAX_DEVICES} chain devices in all`);
  services.forEach((s, i) => {
    if (s.chain === undefined) return;
    const raw = (rawServices[i] as Record<string, unknown> | undefined)?.chain;
    if (!chains.some((x) => x.name === s.chain)) c.fail(`services[${i}].chain`, raw, `the name of a chain (${chains.map((x) => x.name).join(", ") || "none defined"})`);
    else if (s.mode !== "nat") c.fail(`services[${i}].chain`, raw, "a chain on a NAT service only: replies must come back through the appliance to pass the chain in reverse");
  });
  return chains;
}

const ACL_PROTOCOLS: Record<string, number> = { tcp: 6, udp: 17, icmp: 1, icmpv6: 58 };
export const PORT_RANGE_FORM = 'a port (0-65535) or a range "first-last"';

function portRange(c: Checker, path: string, v: unknown): [number, number] | undefined {
  if (v === undefined) return [0, 65535];
  const m = typeof v === "number" ? [String(v), String(v), String(v)] : typeof v === "string" ? /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(v) : null;
  const lo = m ? Number(m[1]) : NaN;
  const hi = m ? Number(m[2] ?? m[1]) : NaN;
  if (!m || !(lo >= 0 && hi <= 65535 && lo <= hi) || !Number.isInteger(lo) || !Number.isInteger(hi)) return c.fail(path, v, PORT_RANGE_FORM);
  return [lo, hi];
}

function aclsSection(c: Checker, v: unknown, ports: Port[], services: Service[]): AclTable[] {
  const tables: AclTable[] = [];
  const list = c.array("acls", v) ?? [];
  if (list.length > MAX_ACL_TABLES) c.fail("acls", list.length, `at most ${MAX_ACL_TABLES} ACL tables`);
  let ruleCount = 0;
  list.forEach((t, i) => {
    const path = `acls[${i}]`;
    const o = c.object(path, t, ["name", "port", "service", "default", "rules"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && tables.some((x) => x.name === name)) c.fail(`${path}.name`, name, "a name no other ACL table has");
    const port = typeof o.port === "string" ? ports.find((p) => p.name === o.port) : undefined;
    if (!port) c.fail(`${path}.port`, o.port, `the name of a port (${ports.map((p) => p.name).join(", ")})`);
    const service = o.service === undefined ? undefined : typeof o.service === "string" && services.some((s) => s.name === o.service) ? o.service : c.fail(`${path}.service`, o.service, `the name of a service (${services.map((s) => s.name).join(", ") || "none defined"})`);
    if (port && tables.some((x) => x.port === port.index && x.service === service)) c.fail(path, o.name, `one table per port${service ? " and service" : ""}: ${port.name}${service ? `/${service}` : ""} has one already`);
    const deny = c.oneOf(`${path}.default`, o.default, "allow", ["allow", "deny"] as const) === "deny";
    const rules: AclRule[] = [];
    (c.array(`${path}.rules`, o.rules) ?? []).forEach((r, j) => {
      const rp = `${path}.rules[${j}]`;
      const ro = c.object(rp, r, ["name", "action", "protocol", "source", "sourcePorts", "destinationPorts"]);
      if (!ro) return;
      const rname = c.name(`${rp}.name`, ro.name);
      if (rname && rules.some((x) => x.name === rname)) c.fail(`${rp}.name`, rname, "a name no other rule of the table has");
      const action = c.oneOf(`${rp}.action`, ro.action, undefined, ["allow", "deny"] as const);
      let protocol = 0;
      if (ro.protocol !== undefined) {
        if (typeof ro.protocol === "string" && ro.protocol in ACL_PROTOCOLS) protocol = ACL_PROTOCOLS[ro.protocol];
        else if (typeof ro.protocol === "number" && Number.isInteger(ro.protocol) && ro.protocol >= 0 && ro.protocol <= 255) protocol = ro.protocol;
        else c.fail(`${rp}.protocol`, ro.protocol, "tcp, udp, icmp, icmpv6 or an IP protocol number (0-255)");
      }
      let source: Prefix | undefined;
      if (ro.source !== undefined) {
        source = typeof ro.source === "string" ? parsePrefix(ro.source) : undefined;
        if (!source) c.fail(`${rp}.source`, ro.source, PREFIX_FORM);
      }
      const sourcePorts = portRange(c, `${rp}.sourcePorts`, ro.sourcePorts);
      const destinationPorts = portRange(c, `${rp}.destinationPorts`, ro.destinationPorts);
      if ((ro.sourcePorts !== undefined || ro.destinationPorts !== undefined) && protocol !== 6 && protocol !== 17) {
        c.fail(`${rp}.protocol`, ro.protocol, "tcp or udp: the rule names ports");
      }
      if (!rname || !action || !sourcePorts || !destinationPorts) return;
      rules.push({ name: rname, deny: action === "deny", protocol, family: source ? source.family : 0, ...(source && source.length > 0 && { source }), sourcePorts, destinationPorts });
    });
    ruleCount += rules.length;
    if (name && port) tables.push({ name, port: port.index, ...(service !== undefined && { service }), deny, rules });
  });
  if (ruleCount > MAX_ACL_RULES) c.fail("acls", ruleCount, `at most ${MAX_ACL_RULES} ACL rules in all`);
  return tables;
}

// ---- flow rules ------------------------------------------------------------------------------

function flowRulesSection(c: Checker, v: unknown, beByName: Map<string, Backend>, services: Service[]): FlowRule[] {
  const rules: FlowRule[] = [];
  const names = new Set<string>();
  const list = c.array("flowRules", v) ?? [];
  if (list.length > MAX_FLOW_RULES) c.fail("flowRules", list.length, `at most ${MAX_FLOW_RULES} flow rules`);
  list.forEach((r, i) => {
    const path = `flowRules[${i}]`;
    const o = c.object(path, r, ["name", "source", "protocol", "vip", "port", "backend", "dscp", "pcp", "vlanPush", "vlanPop", "mplsPush", "mplsPop", "idleTimeout"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && names.has(name)) c.fail(`${path}.name`, name, "a name no other flow rule has");
    if (name) names.add(name);
    const vip = c.address(`${path}.vip`, o.vip);
    let source: Prefix | undefined;
    if (o.source !== undefined) {
      source = typeof o.source === "string" ? parsePrefix(o.source) : undefined;
      if (!source) c.fail(`${path}.source`, o.source, PREFIX_FORM);
      else if (vip && source.family !== vip.family) c.fail(`${path}.source`, o.source, `an IPv${vip.family} prefix, as the VIP is`);
    }
    const protocol = o.protocol === undefined ? undefined : c.oneOf(`${path}.protocol`, o.protocol, undefined, ["tcp", "udp"] as const);
    const port = c.int(`${path}.port`, o.port, 0, ...RANGE.servicePort) ?? 0;
    const be = typeof o.backend === "string" ? beByName.get(o.backend) : undefined;
    if (!be) c.fail(`${path}.backend`, o.backend, `the name of a backend (${[...beByName.keys()].join(", ") || "none defined"})`);
    // the services whose flows the rule can take: counters and mode are theirs
    const covered = vip ? services.filter((s) => equalBytes(s.vip.bytes, vip.bytes))
      .filter((s) => (!protocol || s.protocol === protocol) && (!port || !s.port || s.port === port)) : [];
    if (vip && covered.length === 0) {
      c.fail(`${path}.vip`, o.vip, `the VIP of a service${protocol ? ` on ${protocol}` : ""}${port ? ` serving port ${port}` : ""} (${services.map((s) => s.vip.text).filter((x, j, a) => a.indexOf(x) === j).join(", ") || "none defined"})`);
    }
    for (const s of covered) {
      if (!be) break;
      if (s.mode === "nat" && be.address.family !== s.vip.family) {
        c.fail(`${path}.backend`, be.name, `a backend of the VIP's family (IPv${s.vip.family}): service ${s.name} is NAT and ${be.name} is ${be.address.text}`);
      }
      if (s.mode === "tunnel" && !(be.address.family === 4 ? s.tunnel.source4 : s.tunnel.source6)) {
        c.fail(`${path}.backend`, be.name, `a backend service ${s.name} can tunnel to: it has no IPv${be.address.family} tunnel source`);
      }
    }
    let mplsPush: FlowRule["mplsPush"];
    if (o.mplsPush !== undefined) {
      const mo = c.object(`${path}.mplsPush`, o.mplsPush, ["label", "tc", "ttl"]);
      if (mo) {
        mplsPush = {
          label: c.int(`${path}.mplsPush.label`, mo.label, undefined, ...RANGE.mplsLabel) ?? 0,
          tc: c.int(`${path}.mplsPush.tc`, mo.tc, 0, ...RANGE.mplsTc) ?? 0,
          ttl: c.int(`${path}.mplsPush.ttl`, mo.ttl, 64, ...RANGE.mplsTtl) ?? 64,
        };
      }
    }
    const opt = (k: "dscp" | "pcp" | "vlanPush" | "idleTimeout", range: readonly [number, number]): number | undefined =>
      o[k] === undefined ? undefined : c.int(`${path}.${k}`, o[k], undefined, ...range);
    rules.push({
      name: name ?? "",
      source: source && source.length > 0 ? source : undefined,
      protocol,
      vip: vip ?? { family: 4, bytes: new Uint8Array(4), text: "" },
      port,
      backend: be?.name ?? "",
      dscp: opt("dscp", RANGE.dscp),
      pcp: opt("pcp", RANGE.pcp),
      vlanPush: opt("vlanPush", RANGE.vlanId),
      vlanPop: c.bool(`${path}.vlanPop`, o.vlanPop, false),
      mplsPush,
      mplsPop: c.bool(`${path}.mplsPop`, o.mplsPop, false),
      idleTimeout: opt("idleTimeout", RANGE.idleTimeout),
    });
  });
  return rules;
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function check(c: Checker, path: string, v: unknown): Check | undefined {
  const o = c.object(path, v, ["type", "port", "path", "host", "expectStatus", "send", "expect", "interval", "timeout", "rise", "fall"]);
  if (!o) return undefined;
  const seconds = (k: "interval" | "timeout"): number => {
    const x = o[k] ?? CHECK_DEFAULT_SECONDS[k];
    const [min, max] = RANGE.checkSeconds;
    if (typeof x !== "number" || !(x >= min && x <= max)) {
      c.fail(`${path}.${k}`, o[k], `seconds, from ${min} to ${max}`);
      return CHECK_DEFAULT_SECONDS[k] * 1000;
    }
    return Math.round(x * 1000);
  };
  const str = (k: "path" | "host" | "send" | "expect"): string | undefined => {
    if (o[k] === undefined) return undefined;
    if (typeof o[k] !== "string" || (o[k] as string).length > TEXT_MAX) return c.fail(`${path}.${k}`, o[k], `a string of at most ${TEXT_MAX} characters`);
    return o[k] as string;
  };
  const type = c.oneOf(`${path}.type`, o.type, undefined, ["tcp", "http", "https", "udp"] as const) ?? "tcp";
  const p = str("path") ?? "/";
  if (!p.startsWith("/")) c.fail(`${path}.path`, p, "a path starting with /");
  const out: Check = {
    type,
    port: c.int(`${path}.port`, o.port, 0, ...RANGE.port) ?? 0,
    path: p,
    host: str("host"),
    expectStatus: c.int(`${path}.expectStatus`, o.expectStatus, 200, ...RANGE.expectStatus) ?? 200,
    send: str("send"),
    expect: str("expect"),
    intervalMs: seconds("interval"),
    timeoutMs: seconds("timeout"),
    rise: c.int(`${path}.rise`, o.rise, CHECK_DEFAULT_COUNTS.rise, ...RANGE.checkCount) ?? 1,
    fall: c.int(`${path}.fall`, o.fall, CHECK_DEFAULT_COUNTS.fall, ...RANGE.checkCount) ?? 1,
  };
  if (out.timeoutMs > out.intervalMs) c.fail(`${path}.timeout`, out.timeoutMs / 1000, `at most the interval (${out.intervalMs / 1000} s)`);
  return out;
}

// ---- telemetry -------------------------------------------------------------------------------

/** [min, max] of the telemetry settings. */
export const TELEMETRY_RANGE = {
  interval: [0.1, 86400], // seconds between metrics messages
  eventBuffer: [0, 1_000_000], // 0: events while disconnected are all dropped (and counted)
} as const satisfies Record<string, readonly [number, number]>;

export const MQTT_URL_FORM = "an MQTT broker URL mqtt://host[:port] or mqtts://host[:port] (no login in the URL: use username and password)";

/** mqtt:// or mqtts:// with a host, an optional port and nothing else. */
export function isMqttUrl(text: string): boolean {
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return false;
  }
  const host = u.hostname.replace(/^\[(.*)\]$/, "$1");
  return (u.protocol === "mqtt:" || u.protocol === "mqtts:") && host !== "" && isHost(host)
    && !u.username && !u.password && (u.pathname === "" || u.pathname === "/") && !u.search && !u.hash && text.length <= TEXT_MAX;
}

export const FILE_PATH_FORM = `an absolute file path (starting with /) of at most ${TEXT_MAX} characters`;

export function isFilePath(text: string): boolean {
  return text.startsWith("/") && text.length <= TEXT_MAX && !text.includes("\0");
}

export const MQTT_TEXT_FORM = `a string of 1 to ${TEXT_MAX} characters`;

function telemetrySection(c: Checker, v: unknown): TelemetryConfig {
  const D = TELEMETRY_DEFAULTS;
  const t = v === undefined ? {} : c.object("telemetry", v, ["enabled", "mqtt", "embeddedBroker"]) ?? {};
  const m = t.mqtt === undefined ? {} : c.object("telemetry.mqtt", t.mqtt, ["url", "username", "password", "ca", "cert", "key", "site", "interval", "format", "eventBuffer"]) ?? {};
  const b = t.embeddedBroker === undefined ? {} : c.object("telemetry.embeddedBroker", t.embeddedBroker, ["address", "port"]) ?? {};
  const text = (k: "username" | "password", hide = false): string | undefined => {
    const x = m[k];
    if (x === undefined) return undefined;
    if (typeof x !== "string" || x.length === 0 || x.length > TEXT_MAX) return c.fail(`telemetry.mqtt.${k}`, hide ? "(hidden)" : x, MQTT_TEXT_FORM);
    return x;
  };
  const file = (k: "ca" | "cert" | "key"): string | undefined => {
    const x = m[k];
    if (x === undefined) return undefined;
    if (typeof x !== "string" || !isFilePath(x)) return c.fail(`telemetry.mqtt.${k}`, x, FILE_PATH_FORM);
    return x;
  };
  let url: string | undefined;
  if (m.url !== undefined) {
    if (typeof m.url === "string" && isMqttUrl(m.url)) url = m.url;
    else c.fail("telemetry.mqtt.url", m.url, MQTT_URL_FORM);
  }
  const mqtt: TelemetryConfig["mqtt"] = {
    url,
    username: text("username"),
    password: text("password", true), // never echoed: it is the broker's password itself
    ca: file("ca"),
    cert: file("cert"),
    key: file("key"),
    site: m.site === undefined ? D.site : c.name("telemetry.mqtt.site", m.site) ?? D.site,
    intervalMs: D.interval * 1000,
    format: c.oneOf("telemetry.mqtt.format", m.format, D.format, ["json", "cbor"] as const) ?? D.format,
    eventBuffer: c.int("telemetry.mqtt.eventBuffer", m.eventBuffer, D.eventBuffer, ...TELEMETRY_RANGE.eventBuffer) ?? D.eventBuffer,
  };
  if (m.interval !== undefined) {
    const [min, max] = TELEMETRY_RANGE.interval;
    if (typeof m.interval === "number" && m.interval >= min && m.interval <= max) mqtt.intervalMs = Math.round(m.interval * 1000);
    else c.fail("telemetry.mqtt.interval", m.interval, `seconds, from ${min} to ${max}`);
  }
  if (mqtt.password !== undefined && mqtt.username === undefined) c.fail("telemetry.mqtt.username", undefined, "a username to go with the password");
  const tls = url?.startsWith("mqtts:") === true;
  for (const k of ["ca", "cert", "key"] as const) {
    if (mqtt[k] !== undefined && !tls) c.fail(`telemetry.mqtt.${k}`, mqtt[k], "no TLS file without an mqtts:// url");
  }
  if ((mqtt.cert === undefined) !== (mqtt.key === undefined)) {
    const missing = mqtt.cert === undefined ? "cert" : "key";
    c.fail(`telemetry.mqtt.${missing}`, undefined, `${FILE_PATH_FORM}: a client certificate and its key go together`);
  }
  const embeddedBroker = {
    address: b.address === undefined ? D.brokerAddress : c.address("telemetry.embeddedBroker.address", b.address)?.text ?? D.brokerAddress,
    port: c.int("telemetry.embeddedBroker.port", b.port, D.brokerPort, ...RANGE.port) ?? D.brokerPort,
  };
  return { enabled: c.bool("telemetry.enabled", t.enabled, true), mqtt, embeddedBroker };
}

// ---- snmp ------------------------------------------------------------------------------------

/** [min, max] of the SNMP settings. */
export const SNMP_RANGE = {
  enterprise: [1, 4294967295], // an OID arc is an unsigned 32-bit number
  threshold: [1, 100], // percent of a flow table
  key: [8, 64], // RFC 3414: a passphrase of at least 8 characters
  text: [0, 255], // sysLocation, sysContact: DisplayString (SIZE (0..255))
} as const satisfies Record<string, readonly [number, number]>;

export const SNMP_AUTH = ["sha256", "sha512", "sha384", "sha224", "sha"] as const;
export const SNMP_PRIV = ["aes", "aes256b", "aes256r"] as const;
export const SNMP_COMMUNITY_FORM = "a community string of 1 to 32 printable characters without spaces";
export const SNMP_KEY_FORM = `a key of ${SNMP_RANGE.key[0]} to ${SNMP_RANGE.key[1]} printable characters`;
export const SNMP_TEXT_FORM = `text of at most ${SNMP_RANGE.text[1]} printable characters`;
export const SNMP_LISTEN_FORM = "an IPv4 or IPv6 address (0.0.0.0 or :: for every address)";
const COMMUNITY = /^[\x21-\x7e]{1,32}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

export function isSnmpCommunity(text: string): boolean {
  return COMMUNITY.test(text);
}

export function isSnmpKey(text: string): boolean {
  return text.length >= SNMP_RANGE.key[0] && text.length <= SNMP_RANGE.key[1] && PRINTABLE.test(text);
}

export function isSnmpText(text: string): boolean {
  return text.length <= SNMP_RANGE.text[1] && PRINTABLE.test(text);
}

/** Any address, the unspecified ones included (they mean every address). */
export function isListenAddress(text: string): boolean {
  try {
    parseIP(text);
    return true;
  } catch {
    return false;
  }
}

function snmpSection(c: Checker, v: unknown): SnmpConfig {
  const D = SNMP_DEFAULTS;
  const s = c.object("snmp", v, ["listen", "enterprise", "location", "contact", "communities", "users", "notify", "flowTableThreshold"]) ?? {};
  const l = s.listen === undefined ? {} : c.object("snmp.listen", s.listen, ["address", "port"]) ?? {};
  let address = D.address;
  if (l.address !== undefined) {
    if (typeof l.address === "string" && isListenAddress(l.address)) address = l.address;
    else c.fail("snmp.listen.address", l.address, SNMP_LISTEN_FORM);
  }
  const text = (k: "location" | "contact"): string => {
    if (s[k] === undefined) return "";
    if (typeof s[k] !== "string" || !isSnmpText(s[k] as string)) return c.fail(`snmp.${k}`, s[k], SNMP_TEXT_FORM) ?? "";
    return s[k] as string;
  };
  // community strings and keys are passwords: errors show "(hidden)", never the value
  const communities: string[] = [];
  (c.array("snmp.communities", s.communities) ?? []).forEach((e, i) => {
    const o = c.object(`snmp.communities[${i}]`, e, ["name"]);
    if (!o) return;
    if (typeof o.name !== "string" || !isSnmpCommunity(o.name)) return c.fail(`snmp.communities[${i}].name`, o.name === undefined ? undefined : "(hidden)", SNMP_COMMUNITY_FORM);
    if (communities.includes(o.name)) return c.fail(`snmp.communities[${i}].name`, "(hidden)", "each community once");
    communities.push(o.name);
  });
  const users: SnmpUser[] = [];
  (c.array("snmp.users", s.users) ?? []).forEach((e, i) => {
    const path = `snmp.users[${i}]`;
    const o = c.object(path, e, ["name", "authProtocol", "authKey", "privProtocol", "privKey"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && users.some((u) => u.name === name)) c.fail(`${path}.name`, name, "a name no other SNMP user has");
    const key = (k: "authKey" | "privKey"): string | undefined => {
      if (typeof o[k] === "string" && isSnmpKey(o[k] as string)) return o[k] as string;
      return c.fail(`${path}.${k}`, o[k] === undefined ? undefined : "(hidden)", SNMP_KEY_FORM);
    };
    const user = {
      name,
      authProtocol: c.oneOf(`${path}.authProtocol`, o.authProtocol, D.authProtocol, SNMP_AUTH),
      authKey: key("authKey"),
      privProtocol: c.oneOf(`${path}.privProtocol`, o.privProtocol, D.privProtocol, SNMP_PRIV),
      privKey: key("privKey"),
    };
    if (user.name && user.authProtocol && user.authKey && user.privProtocol && user.privKey) users.push(user as SnmpUser);
  });
  const notify: SnmpNotify[] = [];
  const notifyNames = new Set<string>();
  (c.array("snmp.notify", s.notify) ?? []).forEach((e, i) => {
    const path = `snmp.notify[${i}]`;
    const o = c.object(path, e, ["name", "address", "port", "version", "community", "user"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && notifyNames.has(name)) c.fail(`${path}.name`, name, "a name no other receiver has");
    if (name) notifyNames.add(name);
    const addr = c.address(`${path}.address`, o.address);
    const port = c.int(`${path}.port`, o.port, D.notifyPort, ...RANGE.port);
    const version = c.oneOf(`${path}.version`, o.version, undefined, ["v2c", "v3"] as const);
    if (version === "v2c") {
      if (o.user !== undefined) c.fail(`${path}.user`, o.user, "no user for a v2c receiver (v3 only)");
      let community: string | undefined = communities[0];
      if (o.community !== undefined) {
        community = typeof o.community === "string" && isSnmpCommunity(o.community) ? o.community : c.fail(`${path}.community`, "(hidden)", SNMP_COMMUNITY_FORM);
      } else if (community === undefined) {
        c.fail(`${path}.community`, undefined, `${SNMP_COMMUNITY_FORM} (no snmp.communities to take the first of)`);
      }
      if (name && addr && port && community) notify.push({ name, address: addr.text, port, version, community });
    } else if (version === "v3") {
      if (o.community !== undefined) c.fail(`${path}.community`, "(hidden)", "no community for a v3 receiver (v2c only)");
      const user = typeof o.user === "string" ? users.find((u) => u.name === o.user) : undefined;
      if (!user) c.fail(`${path}.user`, o.user, `the name of an SNMP user (${users.map((u) => u.name).join(", ") || "none defined"})`);
      else if (name && addr && port) notify.push({ name, address: addr.text, port, version, user });
    }
  });
  return {
    listen: { address, port: c.int("snmp.listen.port", l.port, D.port, ...RANGE.port) ?? D.port },
    enterprise: c.int("snmp.enterprise", s.enterprise, D.enterprise, ...SNMP_RANGE.enterprise) ?? D.enterprise,
    location: text("location"),
    contact: text("contact"),
    communities,
    users,
    notify,
    flowTableThreshold: c.int("snmp.flowTableThreshold", s.flowTableThreshold, D.flowTableThreshold, ...SNMP_RANGE.threshold) ?? D.flowTableThreshold,
  };
}

// ---- discovery -----------------------------------------------------------------------------

export const DISCOVERY_RANGE = {
  keyId: [1, 65535],
  missedIntervals: [1, 100],
  leaveTimeoutS: [1, 86400],
} as const satisfies Record<string, readonly [number, number]>;
/** Shortest key secret: an HMAC-SHA256 key under 16 bytes is guessable offline from one datagram. */
export const DISCOVERY_SECRET_MIN_BYTES = 16;
export const DISCOVERY_SECRET_FORM = `a secret of ${DISCOVERY_SECRET_MIN_BYTES} bytes or more, in hex or base64`;
export const DISCOVERY_GROUP_FORM = "an IPv4 multicast group address (224.0.0.0/4)";
export const DISCOVERY_GROUP6_FORM = "an IPv6 multicast group address (ff00::/8)";

/** A key secret's bytes: hex (an even number of hex digits) or strict base64; undefined if neither or too short. */
export function parseDiscoverySecret(text: string): Uint8Array | undefined {
  let b: Buffer | undefined;
  if (/^([0-9a-fA-F]{2})+$/.test(text)) b = Buffer.from(text, "hex");
  else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text)) b = base64(text);
  return b && b.length >= DISCOVERY_SECRET_MIN_BYTES ? new Uint8Array(b) : undefined;
}

export function isMulticastGroup4(text: string): boolean {
  try {
    const a = parseIP(text);
    return a.family === 4 && (a.bytes[0] & 0xf0) === 0xe0;
  } catch {
    return false;
  }
}

export function isMulticastGroup6(text: string): boolean {
  try {
    const a = parseIP(text);
    return a.family === 6 && a.bytes[0] === 0xff;
  } catch {
    return false;
  }
}

function discoverySection(c: Checker, v: unknown, ports: Port[], backends: Backend[]): DiscoveryConfig | undefined {
  const D = DISCOVERY_DEFAULTS;
  const d = c.object("discovery", v, ["keys", "group", "group6", "port", "missedIntervals", "leaveTimeoutS", "via", "supervisor"]);
  if (!d) return undefined;
  const keys = keyList(c, "discovery.keys", d.keys);
  let group: Address | undefined = { family: 4, bytes: parseIP(D.group).bytes, text: D.group };
  if (d.group !== undefined) {
    group = typeof d.group === "string" && isMulticastGroup4(d.group) ? { family: 4, bytes: parseIP(d.group).bytes, text: d.group } : c.fail("discovery.group", d.group, DISCOVERY_GROUP_FORM);
  }
  let group6: Address | undefined = { family: 6, bytes: parseIP(D.group6).bytes, text: D.group6 };
  if (d.group6 !== undefined) {
    group6 = typeof d.group6 === "string" && isMulticastGroup6(d.group6) ? { family: 6, bytes: parseIP(d.group6).bytes, text: d.group6 } : c.fail("discovery.group6", d.group6, DISCOVERY_GROUP6_FORM);
  }
  const port = c.int("discovery.port", d.port, D.port, ...RANGE.port);
  const missedIntervals = c.int("discovery.missedIntervals", d.missedIntervals, D.missedIntervals, ...DISCOVERY_RANGE.missedIntervals);
  const leaveTimeoutS = c.int("discovery.leaveTimeoutS", d.leaveTimeoutS, D.leaveTimeoutS, ...DISCOVERY_RANGE.leaveTimeoutS);
  let via: number | undefined;
  if (d.via !== undefined) {
    via = ports.find((p) => p.name === d.via)?.index;
    if (via === undefined) c.fail("discovery.via", d.via, `the name of a port (${ports.map((p) => p.name).join(", ")})`);
  } else {
    via = ports.find((p) => backends.some((b) => b.via === p.index))?.index ?? ports[1]?.index ?? ports[0]?.index;
    if (via === undefined) c.fail("discovery.via", undefined, "a port the end systems are on (no port defined)");
  }
  if (!group || !group6 || port === undefined || missedIntervals === undefined || leaveTimeoutS === undefined || via === undefined) return undefined;
  return { keys, group, group6, port, missedIntervals, leaveTimeoutS, via };
}

/** A list of signing keys { id, secret } (discovery.keys, ha.keys): one or more, at most `max`, ids unique. */
function keyList(c: Checker, path: string, v: unknown, max = Infinity): { id: number; secret: Uint8Array }[] {
  const keys: { id: number; secret: Uint8Array }[] = [];
  const ids = new Set<number>();
  const list = c.array(path, v) ?? [];
  if (v === undefined || list.length === 0) c.fail(path, v, "a list of one or more keys { id, secret }");
  if (list.length > max) c.fail(path, `${list.length} keys`, `at most ${max} keys`);
  list.forEach((e, i) => {
    const at = `${path}[${i}]`;
    const o = c.object(at, e, ["id", "secret"]);
    if (!o) return;
    const id = c.int(`${at}.id`, o.id, undefined, ...DISCOVERY_RANGE.keyId);
    if (id !== undefined && ids.has(id)) c.fail(`${at}.id`, id, "an id no other key has");
    if (id !== undefined) ids.add(id);
    // a secret is a password: errors show "(hidden)", never the value
    const secret = typeof o.secret === "string" ? parseDiscoverySecret(o.secret) : undefined;
    if (!secret) c.fail(`${at}.secret`, o.secret === undefined ? undefined : "(hidden)", DISCOVERY_SECRET_FORM);
    if (id !== undefined && secret) keys.push({ id, secret });
  });
  return keys;
}

/** Validates or throws one Error listing every problem: for tools that cannot go on without a config. */
export function validateOrThrow(input: unknown): Config {
  const v = validate(input);
  if (!v.ok) throw new Error(`invalid configuration:\n  ${v.errors.map(formatError).join("\n  ")}`);
  return v.config;
}

// ---- discovery.supervisor ------------------------------------------------------------------

export const SUPERVISOR_RANGE = {
  intervalMs: [100, 600_000],
  maxEndSystems: [1, 65_536],
  number: [0, 0xffffffff],
  maxLeaseS: [1, 86_400],
} as const satisfies Record<string, readonly [number, number]>;
export const RELAY_TARGET_FORM = "an appliance's unicast address, optionally with a port: 10.1.0.2, 10.1.0.2:7777 or [2001:db8::2]:7777";
export const UNICAST_FORM = "a unicast IPv4 or IPv6 address";

/** A unicast address (not unspecified, not multicast, not broadcast); undefined if not one. */
export function parseUnicast(text: string): Address | undefined {
  let a;
  try {
    a = parseIP(text);
  } catch {
    return undefined;
  }
  if (a.bytes.every((b) => b === 0)) return undefined;
  if (a.family === 4 ? a.bytes[0] >= 224 : a.bytes[0] === 0xff) return undefined;
  return { family: a.family, bytes: a.bytes, text };
}

/** "address", "address:port" or "[v6address]:port"; undefined if not of that form. */
export function parseRelayTarget(text: string, defaultPort: number): { address: Address; port: number } | undefined {
  const m = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(text) ?? /^([^:\[\]]+)(?::(\d{1,5}))?$/.exec(text) ?? /^([^\[\]]*:[^\[\]]*)()$/.exec(text);
  if (!m) return undefined;
  const address = parseUnicast(m[1]);
  const port = m[2] ? Number(m[2]) : defaultPort;
  if (!address || port < RANGE.port[0] || port > RANGE.port[1]) return undefined;
  return { address, port };
}

/** discovery.supervisor; undefined when absent or wrong (the errors are in c). */
function supervisorSection(c: Checker, discovery: unknown, management: { ipv4?: Address; ipv6?: Address }): SupervisorSettings | undefined {
  if (typeof discovery !== "object" || discovery === null || Array.isArray(discovery)) return undefined;
  const v = (discovery as Record<string, unknown>).supervisor;
  if (v === undefined) return undefined;
  const D = SUPERVISOR_DEFAULTS;
  const s = c.object("discovery.supervisor", v, ["address", "port", "intervalMs", "maxEndSystems", "pools", "relay", "peers"]);
  if (!s) return undefined;
  const dport = (discovery as Record<string, unknown>).port;
  const discoveryPort = typeof dport === "number" && Number.isInteger(dport) && dport >= RANGE.port[0] && dport <= RANGE.port[1] ? dport : DISCOVERY_DEFAULTS.port;
  let address: Address | undefined;
  if (s.address !== undefined) {
    address = typeof s.address === "string" ? parseUnicast(s.address) : undefined;
    if (!address) c.fail("discovery.supervisor.address", s.address, `${UNICAST_FORM} of the appliance's management side`);
  } else {
    address = management.ipv4 ?? management.ipv6;
    if (!address) c.fail("discovery.supervisor.address", undefined, "an address to listen on (management.ipv4 / ipv6, its default, is not set)");
  }
  const port = c.int("discovery.supervisor.port", s.port, discoveryPort, ...RANGE.port);
  const intervalMs = c.int("discovery.supervisor.intervalMs", s.intervalMs, D.intervalMs, ...SUPERVISOR_RANGE.intervalMs);
  const maxEndSystems = c.int("discovery.supervisor.maxEndSystems", s.maxEndSystems, D.maxEndSystems, ...SUPERVISOR_RANGE.maxEndSystems);
  const pools: SupervisorSettings["pools"] = [];
  (c.array("discovery.supervisor.pools", s.pools) ?? []).forEach((e, i) => {
    const path = `discovery.supervisor.pools[${i}]`;
    const o = c.object(path, e, ["name", "first", "last", "maxLeaseS"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name !== undefined && pools.some((p) => p.name === name)) c.fail(`${path}.name`, name, "a name no other pool has");
    const first = c.int(`${path}.first`, o.first, undefined, ...SUPERVISOR_RANGE.number);
    const last = c.int(`${path}.last`, o.last, undefined, ...SUPERVISOR_RANGE.number);
    if (first !== undefined && last !== undefined && last < first) c.fail(`${path}.last`, last, `a number of ${first} (first) or more`);
    const maxLeaseS = c.int(`${path}.maxLeaseS`, o.maxLeaseS, D.maxLeaseS, ...SUPERVISOR_RANGE.maxLeaseS);
    if (name !== undefined && first !== undefined && last !== undefined && maxLeaseS !== undefined) pools.push({ name, first, last, maxLeaseS });
  });
  const relay: SupervisorSettings["relay"] = [];
  (c.array("discovery.supervisor.relay", s.relay) ?? []).forEach((e, i) => {
    const t = typeof e === "string" ? parseRelayTarget(e, port ?? discoveryPort) : undefined;
    if (!t) return c.fail(`discovery.supervisor.relay[${i}]`, e, RELAY_TARGET_FORM);
    if (relay.some((r) => r.address.text === t.address.text && r.port === t.port)) return c.fail(`discovery.supervisor.relay[${i}]`, e, "each target once");
    relay.push(t);
  });
  const peers: Address[] = [];
  (c.array("discovery.supervisor.peers", s.peers) ?? []).forEach((e, i) => {
    const a = typeof e === "string" ? parseUnicast(e) : undefined;
    if (!a) return c.fail(`discovery.supervisor.peers[${i}]`, e, `${UNICAST_FORM} of another supervisor`);
    peers.push(a);
  });
  if (!address || port === undefined || intervalMs === undefined || maxEndSystems === undefined) return undefined;
  return { address, port, intervalMs, maxEndSystems, pools, relay, peers };
}

// ---- ha --------------------------------------------------------------------------------------

export const HA_RANGE = {
  priority: [1, 254], // as VRRP: 0 and 255 are not priorities an operator sets
  preemptDelayMs: [0, 3_600_000],
  intervalMs: [10, 10_000],
  deadCount: [2, 255], // 1 would take over on a single lost heartbeat
  links: [1, 4],
  keys: [1, 16], // every key id rides in each heartbeat (docs/ha-protocol.md)
  garpCount: [1, 100],
  garpIntervalMs: [1, 1000],
} as const satisfies Record<string, readonly [number, number]>;

function haSection(c: Checker, v: unknown): HaConfig | undefined {
  const D = HA_DEFAULTS;
  const h = c.object("ha", v, ["node", "priority", "preempt", "preemptDelayMs", "intervalMs", "deadCount", "keys", "links", "garp"]);
  if (!h) return undefined;
  const node = c.name("ha.node", h.node);
  const priority = c.int("ha.priority", h.priority, D.priority, ...HA_RANGE.priority);
  const preempt = c.bool("ha.preempt", h.preempt, D.preempt);
  const preemptDelayMs = c.int("ha.preemptDelayMs", h.preemptDelayMs, D.preemptDelayMs, ...HA_RANGE.preemptDelayMs);
  const intervalMs = c.int("ha.intervalMs", h.intervalMs, D.intervalMs, ...HA_RANGE.intervalMs);
  const deadCount = c.int("ha.deadCount", h.deadCount, D.deadCount, ...HA_RANGE.deadCount);
  const keys = keyList(c, "ha.keys", h.keys, HA_RANGE.keys[1]);
  const links: HaConfig["links"] = [];
  const linkIn = c.array("ha.links", h.links) ?? [];
  if (linkIn.length < HA_RANGE.links[0] || linkIn.length > HA_RANGE.links[1]) c.fail("ha.links", linkIn.length > HA_RANGE.links[1] ? `${linkIn.length} links` : h.links, `${HA_RANGE.links[0]} to ${HA_RANGE.links[1]} links { name, local, peer, port }`);
  linkIn.forEach((e, i) => {
    const path = `ha.links[${i}]`;
    const o = c.object(path, e, ["name", "local", "peer", "port"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name !== undefined && links.some((l) => l.name === name)) c.fail(`${path}.name`, name, "a name no other link has");
    const addr = (k: "local" | "peer"): Address | undefined => {
      const a = typeof o[k] === "string" ? parseUnicast(o[k] as string) : undefined;
      return a ?? c.fail(`${path}.${k}`, o[k], UNICAST_FORM);
    };
    const local = addr("local");
    const peer = addr("peer");
    const port = c.int(`${path}.port`, o.port, D.port, ...RANGE.port);
    if (local && peer && local.family !== peer.family) c.fail(`${path}.peer`, peer.text, `an IPv${local.family} address, like local`);
    else if (local && peer && sameAddress(local, peer)) c.fail(`${path}.peer`, peer.text, "the peer's address, not this appliance's own (local)");
    if (local && port !== undefined && links.some((l) => sameAddress(l.local, local) && l.port === port)) c.fail(`${path}.local`, local.text, `an address and port no other link binds (${local.text} port ${port} is taken)`);
    if (name !== undefined && local && peer && port !== undefined) links.push({ name, local, peer, port });
  });
  const g = h.garp === undefined ? {} : c.object("ha.garp", h.garp, ["count", "intervalMs"]) ?? {};
  const garp = {
    count: c.int("ha.garp.count", g.count, D.garpCount, ...HA_RANGE.garpCount),
    intervalMs: c.int("ha.garp.intervalMs", g.intervalMs, D.garpIntervalMs, ...HA_RANGE.garpIntervalMs),
  };
  if (node === undefined || priority === undefined || preemptDelayMs === undefined || intervalMs === undefined || deadCount === undefined) return undefined;
  if (garp.count === undefined || garp.intervalMs === undefined) return undefined;
  return { node, priority, preempt, preemptDelayMs, intervalMs, deadCount, keys, links, garp: { count: garp.count, intervalMs: garp.intervalMs } };
}

function sameAddress(a: Address, b: Address): boolean {
  return a.family === b.family && a.bytes.every((x, i) => x === b.bytes[i]);
}

// ---- levels ----------------------------------------------------------------------------------

const LEVELS_KEYS = ["role", "name", "keys", "local", "port", "uplinks", "intervalMs", "aggregate", "subnets", "decapsulate", "sites", "deadIntervals", "cost", "recovery"];

export const LEVELS_RANGE = {
  intervalMs: [50, 600_000],
  deadIntervals: [2, 1000],
  uplinks: [0, 8],
  sites: [0, 64],
  subnets: [0, 64],
  peers: [0, 16],
  costWeight: [0, 1_000_000],
  distance: [0, 1_000_000],
  recoveryTimeoutMs: [1, 10_000],
  recoveryMaxPending: [1, 1_000_000],
  keys: [1, 16],
} as const satisfies Record<string, readonly [number, number]>;

const AGGREGATES = ["mean", "max", "min", "sum", "median"] as const;

/** levels.sites as backends (each named by its site, reached through `via`), checked against the backends written. */
function levelSites(c: Checker, l: Record<string, unknown>, portByName: Map<string, number>, beByName: Map<string, Backend>): Backend[] {
  if (l.sites === undefined) return [];
  const out: Backend[] = [];
  const list = c.array("levels.sites", l.sites) ?? [];
  if (list.length > LEVELS_RANGE.sites[1]) c.fail("levels.sites", `${list.length} sites`, `at most ${LEVELS_RANGE.sites[1]} sites`);
  list.forEach((e, i) => {
    const path = `levels.sites[${i}]`;
    const o = c.object(path, e, ["name", "address", "via", "mac", "control", "distance"]);
    if (!o) return;
    const name = c.name(`${path}.name`, o.name);
    if (name && (beByName.has(name) || out.some((b) => b.name === name))) c.fail(`${path}.name`, name, "a name no backend and no other site has");
    const via = typeof o.via === "string" ? portByName.get(o.via) : undefined;
    if (via === undefined) c.fail(`${path}.via`, o.via, `the name of a port (${[...portByName.keys()].join(", ")})`);
    const address = typeof o.address === "string" ? parseUnicast(o.address) : undefined;
    if (!address) c.fail(`${path}.address`, o.address, `${UNICAST_FORM}: the site appliance's data-port address`);
    if (name && via !== undefined && address) {
      out.push({ name, address, mac: o.mac === undefined ? undefined : c.mac(`${path}.mac`, o.mac), via, natPort: 0, state: "active", capacity: 0, site: true });
    }
  });
  return out;
}

function levelsSection(c: Checker, l: Record<string, unknown>, hostname: string, management: Config["management"], backends: Backend[]): LevelsConfig | undefined {
  const D = LEVELS_DEFAULTS;
  const role = c.oneOf("levels.role", l.role, "site", ["site", "system"] as const);
  const name = l.name === undefined ? hostname : c.name("levels.name", l.name);
  if (name !== undefined && !isId(name)) c.fail("levels.name", name, ID_FORM);
  const keys = keyList(c, "levels.keys", l.keys, LEVELS_RANGE.keys[1]);
  const local = l.local === undefined ? management.ipv4 : typeof l.local === "string" ? parseUnicast(l.local) ?? c.fail("levels.local", l.local, UNICAST_FORM) : c.fail("levels.local", l.local, UNICAST_FORM);
  const port = c.int("levels.port", l.port, D.port, ...RANGE.port);
  const endpoints = (path: string, v: unknown, max: number): LevelsEndpoint[] => {
    const list = c.array(path, v) ?? [];
    if (list.length > max) c.fail(path, `${list.length} entries`, `at most ${max}`);
    return list.flatMap((e, i) => {
      const t = typeof e === "string" ? parseRelayTarget(e, port ?? D.port) : undefined;
      return t ? [t] : (c.fail(`${path}[${i}]`, e, RELAY_TARGET_FORM), []);
    });
  };
  const uplinks = endpoints("levels.uplinks", l.uplinks, LEVELS_RANGE.uplinks[1]);
  const intervalMs = c.int("levels.intervalMs", l.intervalMs, D.intervalMs, ...LEVELS_RANGE.intervalMs);
  const aggregate = c.oneOf("levels.aggregate", l.aggregate, D.aggregate, AGGREGATES);
  const subnetList = c.array("levels.subnets", l.subnets) ?? [];
  if (subnetList.length > LEVELS_RANGE.subnets[1]) c.fail("levels.subnets", `${subnetList.length} subnets`, `at most ${LEVELS_RANGE.subnets[1]}`);
  const subnets = subnetList.flatMap((e, i) => {
    const p = typeof e === "string" ? parsePrefix(e) : undefined;
    return p ? [p] : (c.fail(`levels.subnets[${i}]`, e, PREFIX_FORM), []);
  });
  const decapsulate = c.bool("levels.decapsulate", l.decapsulate, true);
  const deadIntervals = c.int("levels.deadIntervals", l.deadIntervals, D.deadIntervals, ...LEVELS_RANGE.deadIntervals);
  const co = l.cost === undefined ? {} : c.object("levels.cost", l.cost, ["load", "distance", "tolerance"]) ?? {};
  const weight = (k: "load" | "distance" | "tolerance"): number | undefined => {
    const v = co[k] ?? D.cost[k];
    if (typeof v !== "number" || !Number.isFinite(v) || v < LEVELS_RANGE.costWeight[0] || v > LEVELS_RANGE.costWeight[1]) return c.fail(`levels.cost.${k}`, v, `a number from ${LEVELS_RANGE.costWeight[0]} to ${LEVELS_RANGE.costWeight[1]}`);
    return v;
  };
  const cost = { load: weight("load"), distance: weight("distance"), tolerance: weight("tolerance") };
  const sites: LevelsSite[] = [];
  ((c.array("levels.sites", l.sites) ?? []) as Record<string, unknown>[]).forEach((o, i) => {
    const be = backends.find((b) => b.site && b.name === o?.name);
    if (!be || typeof o !== "object") return;
    const path = `levels.sites[${i}]`;
    let distance: number | "measured" = "measured";
    if (o.distance !== undefined && o.distance !== "measured") {
      if (typeof o.distance !== "number" || !Number.isFinite(o.distance) || o.distance < LEVELS_RANGE.distance[0] || o.distance > LEVELS_RANGE.distance[1]) {
        c.fail(`${path}.distance`, o.distance, `"measured" or a number from ${LEVELS_RANGE.distance[0]} to ${LEVELS_RANGE.distance[1]}`);
      } else distance = o.distance;
    }
    let control: LevelsEndpoint | undefined = { address: be.address, port: port ?? D.port };
    if (o.control !== undefined) {
      control = typeof o.control === "string" ? parseRelayTarget(o.control, port ?? D.port) : undefined;
      if (!control) c.fail(`${path}.control`, o.control, RELAY_TARGET_FORM);
    }
    if (control) sites.push({ name: be.name, address: be.address, control, distance });
  });
  if (role === "site" && sites.length) c.fail("levels.sites", `${sites.length} sites`, "no sites on a site appliance (role site): sites are a system appliance's (role system)");
  if (role === "system" && !sites.length) c.fail("levels.sites", l.sites, "one or more sites { name, address, via } for a system appliance");
  const r = l.recovery === undefined ? {} : c.object("levels.recovery", l.recovery, ["enabled", "peers", "timeoutMs", "maxPending"]) ?? {};
  const peers = endpoints("levels.recovery.peers", r.peers, LEVELS_RANGE.peers[1]);
  // a system appliance can always ask its sites; a site needs peers (the other appliances of its set)
  const recovery = {
    enabled: c.bool("levels.recovery.enabled", r.enabled, role === "system" || peers.length > 0),
    peers,
    timeoutMs: c.int("levels.recovery.timeoutMs", r.timeoutMs, D.recoveryTimeoutMs, ...LEVELS_RANGE.recoveryTimeoutMs),
    maxPending: c.int("levels.recovery.maxPending", r.maxPending, D.recoveryMaxPending, ...LEVELS_RANGE.recoveryMaxPending),
  };
  if (role === undefined || name === undefined || port === undefined || intervalMs === undefined || aggregate === undefined || deadIntervals === undefined) return undefined;
  if (cost.load === undefined || cost.distance === undefined || cost.tolerance === undefined) return undefined;
  if (recovery.enabled === undefined || recovery.timeoutMs === undefined || recovery.maxPending === undefined || decapsulate === undefined) return undefined;
  return {
    role, name, keys, ...(local && { local }), port, uplinks, intervalMs, aggregate, subnets, decapsulate, sites, deadIntervals,
    cost: { load: cost.load, distance: cost.distance, tolerance: cost.tolerance },
    recovery: { enabled: recovery.enabled, peers, timeoutMs: recovery.timeoutMs, maxPending: recovery.maxPending },
  };
}

// ---- source partitions -----------------------------------------------------------------------

export const PARTITION_RANGE = { split: [1, 7], portions: [2, 128], holdS: [0, 3600] } as const;

/**
 * A source-partition service's portions: written out (every prefix of the VIP's family, none
 * overlapping, together the whole space) or made by splitting the space into 2^split equal
 * prefixes dealt to the members. Returned in address order.
 */
function partitionsOf(c: Checker, path: string, v: unknown, family: 4 | 6, members: string[]): Partitions | undefined {
  const o = v === undefined ? {} : c.object(path, v, ["portions", "split", "interleave", "congestedAt", "holdS"]);
  if (!o) return undefined;
  if (!members.length) return c.fail(path, undefined, "members to own the portions (the service has no backends)");
  const congestedAt = typeof o.congestedAt === "number" && o.congestedAt >= 0 && o.congestedAt <= 100 ? o.congestedAt
    : o.congestedAt === undefined ? 0.9 : c.fail(`${path}.congestedAt`, o.congestedAt, "a load from 0 (never) to 100, 1 meaning full");
  const holdS = c.int(`${path}.holdS`, o.holdS, 10, ...PARTITION_RANGE.holdS);
  const bits = family === 4 ? 32 : 128;
  let portions: { prefix: Prefix; owner: string }[] = [];
  if (o.portions !== undefined) {
    if (o.split !== undefined || o.interleave !== undefined) c.fail(`${path}.split`, o.split ?? o.interleave, "either portions or split (with interleave), not both");
    const list = c.array(`${path}.portions`, o.portions) ?? [];
    if (list.length < PARTITION_RANGE.portions[0] || list.length > PARTITION_RANGE.portions[1]) c.fail(`${path}.portions`, `${list.length} portions`, `${PARTITION_RANGE.portions[0]} to ${PARTITION_RANGE.portions[1]} portions { prefix, owner }`);
    list.forEach((e, i) => {
      const at = `${path}.portions[${i}]`;
      const po = c.object(at, e, ["prefix", "owner"]);
      if (!po) return;
      const prefix = typeof po.prefix === "string" ? parsePrefix(po.prefix) : undefined;
      if (!prefix) return c.fail(`${at}.prefix`, po.prefix, PREFIX_FORM);
      if (prefix.family !== family) return c.fail(`${at}.prefix`, po.prefix, `an IPv${family} prefix, as the VIP is`);
      if (typeof po.owner !== "string" || !members.includes(po.owner)) return c.fail(`${at}.owner`, po.owner, `a member of the service (${members.join(", ")})`);
      portions.push({ prefix, owner: po.owner });
    });
    portions.sort((a, b) => (prefixStart(a.prefix) < prefixStart(b.prefix) ? -1 : 1));
    let next = 0n;
    for (const p of portions) {
      const start = prefixStart(p.prefix);
      if (start < next) c.fail(`${path}.portions`, p.prefix.text, `portions that do not overlap (${p.prefix.text} overlaps the one before it)`);
      else if (start > next) c.fail(`${path}.portions`, p.prefix.text, `portions that leave no hole (nothing covers ${bigToAddress(next, family)} up to ${p.prefix.text})`);
      next = start + (1n << BigInt(bits - p.prefix.length));
    }
    if (portions.length && next < 1n << BigInt(bits)) c.fail(`${path}.portions`, portions[portions.length - 1].prefix.text, `portions that cover the whole IPv${family} space (nothing covers ${bigToAddress(next, family)} and up)`);
  } else {
    const split = c.int(`${path}.split`, o.split, Math.max(1, Math.ceil(Math.log2(members.length))), ...PARTITION_RANGE.split);
    const interleave = c.bool(`${path}.interleave`, o.interleave, true);
    if (split === undefined) return undefined;
    const n = 1 << split;
    portions = Array.from({ length: n }, (_, i) => ({
      prefix: prefixOf(BigInt(i) << BigInt(bits - split), split, family),
      owner: members[interleave ? i % members.length : Math.floor((i * members.length) / n)],
    }));
  }
  if (congestedAt === undefined || holdS === undefined) return undefined;
  return { portions, congestedAt, holdS };
}

function prefixStart(p: Prefix): bigint {
  return p.bytes.reduce((n, b) => (n << 8n) | BigInt(b), 0n);
}

function bigToAddress(v: bigint, family: 4 | 6): string {
  const bytes = new Uint8Array(family === 4 ? 4 : 16);
  for (let i = bytes.length - 1; i >= 0; i--, v >>= 8n) bytes[i] = Number(v & 0xffn);
  return family === 4 ? bytes.join(".") : Array.from({ length: 8 }, (_, i) => ((bytes[2 * i] << 8) | bytes[2 * i + 1]).toString(16)).join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}

function prefixOf(start: bigint, length: number, family: 4 | 6): Prefix {
  const text = `${bigToAddress(start, family)}/${length}`;
  return parsePrefix(text)!;
}
