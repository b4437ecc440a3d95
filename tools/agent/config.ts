// The agent's own config file: who this end system is, what it serves, where to advertise it and
// with which key. Validation collects every error it can find, each naming the path in the file,
// the value found and what was expected, so an operator fixes a file in one pass.
//
// Services and flows are checked by the protocol's own validator (host/discovery/protocol.ts), so
// the agent never accepts a config whose advertisements an appliance would refuse.

import { isId, ID_FORM } from "../../host/wire/fields.js";
import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import { dirname, resolve } from "node:path";
import {
  DEFAULT_GROUP_V4,
  DEFAULT_PORT,
  LIMITS,
  validateMessage,
  type AuthKey,
  type FlowAttributes,
  type FlowPattern,
  type ServiceOffer,
} from "../../host/discovery/protocol.js";
import { parseRelayTarget } from "../../host/config/validate.js";

/** A secret shorter than this is refused: HMAC-SHA256 keys should carry 32 random bytes. */
export const MIN_SECRET_BYTES = 16;
/** Default seconds a drain waits for established connections to end (systemd's TimeoutStopSec must exceed it). */
export const DEFAULT_DRAIN_TIMEOUT_S = 30;
/** Default probe timeout: a probe slower than this reports as failed. */
export const DEFAULT_PROBE_TIMEOUT_MS = 500;

export interface AgentFlow {
  pattern: FlowPattern;
  /** The end system traffic goes to; default this agent's id. */
  endSystem: string;
  attributes: FlowAttributes;
}

export interface AgentConfig {
  id: string;
  addresses: string[];
  key: AuthKey;
  group: string;
  port: number;
  /** Local address to send from (and the multicast interface); absent: the OS chooses. */
  interface?: string;
  unicast: string[];
  intervalMs: number;
  services: ServiceOffer[];
  probe?: { url: string; timeoutMs: number };
  flows: AgentFlow[];
  /** Unix socket on which a running agent takes `drain` and `status`. */
  controlSocket: string;
  drainTimeoutS: number;
  /** The supervisor REGISTER and NUMBER requests go to; absent: none (the agent advertises anyway). */
  supervisor?: { address: string; port: number };
  /** Numbers leased from the supervisor's pools at start, renewed at half the lease, released on leave. */
  numbers: NumberWant[];
}

export interface NumberWant {
  pool: string;
  count: number;
  /** Seconds asked for (the supervisor may grant less). */
  leaseS: number;
}

/** Seconds a lease is asked for when the config does not say. */
export const DEFAULT_LEASE_S = 3600;

export interface ConfigError {
  path: string;
  value: unknown;
  expected: string;
}

export type ConfigResult = { ok: true; config: AgentConfig } | { ok: false; errors: ConfigError[] };

export function formatConfigError(e: ConfigError): string {
  const shown = e.value === undefined ? "nothing" : JSON.stringify(e.value);
  return `${e.path || "(top)"}: got ${shown && shown.length > 60 ? `${shown.slice(0, 57)}...` : shown}, expected ${e.expected}`;
}

const TOP_KEYS = ["id", "addresses", "key", "group", "port", "interface", "unicast", "intervalMs", "services", "probe", "flows", "controlSocket", "drainTimeoutS", "supervisor", "numbers"];
const PROTOCOL_NAMES: Record<string, number> = { tcp: 6, udp: 17, sctp: 132 };

/** A JSON config file's contents and its folder (where relative paths in it resolve), or why it cannot be read. */
export function readJsonConfig(file: string): { ok: true; raw: unknown; baseDir: string } | { ok: false; errors: ConfigError[] } {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (e) {
    return { ok: false, errors: [{ path: "", value: file, expected: `a readable file (${(e as Error).message})` }] };
  }
  try {
    return { ok: true, raw: JSON.parse(text), baseDir: dirname(resolve(file)) };
  } catch (e) {
    return { ok: false, errors: [{ path: "", value: "(not JSON)", expected: `a JSON object (${(e as Error).message})` }] };
  }
}

/** Reads and validates a config file; `secretFile` and relative paths resolve against the file's folder. */
export function loadConfig(file: string): ConfigResult {
  const r = readJsonConfig(file);
  return r.ok ? validateConfig(r.raw, r.baseDir) : r;
}

export function validateConfig(raw: unknown, baseDir: string): ConfigResult {
  const errors: ConfigError[] = [];
  const err = (path: string, value: unknown, expected: string): undefined => {
    errors.push({ path, value, expected });
    return undefined;
  };
  if (!isObject(raw)) return { ok: false, errors: [{ path: "", value: raw, expected: "a JSON object" }] };
  for (const k of Object.keys(raw)) if (!TOP_KEYS.includes(k)) err(k, raw[k], `one of the known fields (${TOP_KEYS.join(", ")})`);

  const id = isId(raw.id) ? raw.id : err("id", raw.id, `an end-system id: ${ID_FORM}`);

  const key = parseKey(raw.key, baseDir, err);

  const group = raw.group === undefined ? DEFAULT_GROUP_V4 : isMulticast(raw.group) ? raw.group : err("group", raw.group, "an IPv4 or IPv6 multicast address, e.g. 239.255.77.77 or ff02::77");
  const port = raw.port === undefined ? DEFAULT_PORT : intIn(raw.port, 1, 65535) ?? err("port", raw.port, "an integer 1-65535");
  const iface = raw.interface === undefined ? undefined : isIP(String(raw.interface)) && typeof raw.interface === "string" ? raw.interface : err("interface", raw.interface, "a local IPv4 or IPv6 address to send from");
  const unicast = raw.unicast === undefined ? [] : Array.isArray(raw.unicast) ? raw.unicast.map((u, i) => (typeof u === "string" && isIP(u) ? u : err(`unicast[${i}]`, u, "an IPv4 or IPv6 address of an appliance"))) : err("unicast", raw.unicast, "a list of appliance addresses");
  const intervalMs = raw.intervalMs === undefined ? 1000 : intIn(raw.intervalMs, LIMITS.intervalMs.min, LIMITS.intervalMs.max) ?? err("intervalMs", raw.intervalMs, `an integer ${LIMITS.intervalMs.min}-${LIMITS.intervalMs.max}`);
  const drainTimeoutS = raw.drainTimeoutS === undefined ? DEFAULT_DRAIN_TIMEOUT_S : intIn(raw.drainTimeoutS, 0, 86_400) ?? err("drainTimeoutS", raw.drainTimeoutS, "an integer 0-86400 (seconds)");
  const controlSocket = raw.controlSocket === undefined ? `/run/flowswitch-agent/${id ?? "agent"}.sock` : typeof raw.controlSocket === "string" && raw.controlSocket.length > 0 ? resolve(baseDir, raw.controlSocket) : err("controlSocket", raw.controlSocket, "a path for the agent's unix control socket");
  const probe = parseProbe(raw.probe, err);
  let supervisor: AgentConfig["supervisor"];
  if (raw.supervisor !== undefined) {
    const t = typeof raw.supervisor === "string" ? parseRelayTarget(raw.supervisor, port ?? DEFAULT_PORT) : undefined;
    if (t) supervisor = { address: t.address.text, port: t.port };
    else err("supervisor", raw.supervisor, "the supervisor's unicast address, optionally with a port: 10.77.3.5, 10.77.3.5:7777 or [fd77:3::5]:7777");
  }
  const numbers = parseNumbers(raw.numbers, err);
  if (numbers.length > 0 && raw.supervisor === undefined) err("supervisor", undefined, "the supervisor's address (numbers are leased from it)");

  // Services: accept protocol names and default weight/capacity, then let the protocol check them.
  let services: ServiceOffer[] | undefined;
  if (!Array.isArray(raw.services)) err("services", raw.services, "a list of { vip, protocol, port, weight?, capacity? }");
  else {
    services = raw.services.map((s, i) => {
      if (!isObject(s)) return s as unknown as ServiceOffer;
      for (const k of Object.keys(s)) if (!["vip", "protocol", "port", "weight", "capacity"].includes(k)) err(`services[${i}].${k}`, s[k], "one of the known fields (vip, protocol, port, weight, capacity)");
      const protocol = typeof s.protocol === "string" ? (PROTOCOL_NAMES[s.protocol.toLowerCase()] ?? s.protocol) : s.protocol;
      return { vip: s.vip, protocol, port: s.port, weight: s.weight ?? 1, capacity: s.capacity ?? 0 } as ServiceOffer;
    });
    const checked = validateMessage({ type: "service", endSystem: "x", addresses: ["192.0.2.1"], state: "up", intervalMs: 1000, services });
    if (!checked.ok) protocolError(raw, checked.path.replace(/^msg\./, ""), checked.detail, err);
    else if (checked.msg.type === "service") services = checked.msg.services;
  }

  const addrCheck = validateMessage({ type: "service", endSystem: "x", addresses: raw.addresses, state: "up", intervalMs: 1000, services: [] });
  const addresses = addrCheck.ok && addrCheck.msg.type === "service" ? addrCheck.msg.addresses : protocolError(raw, addrCheck.ok ? "addresses" : addrCheck.path.replace(/^msg\./, ""), addrCheck.ok ? "" : addrCheck.detail, err);

  const flows: AgentFlow[] = [];
  if (raw.flows !== undefined && !Array.isArray(raw.flows)) err("flows", raw.flows, "a list of { pattern, attributes?, endSystem? }");
  else if (Array.isArray(raw.flows)) {
    raw.flows.forEach((f, i) => {
      if (!isObject(f)) return err(`flows[${i}]`, f, "a map { pattern, attributes?, endSystem? }");
      for (const k of Object.keys(f)) if (!["pattern", "attributes", "endSystem"].includes(k)) err(`flows[${i}].${k}`, f[k], "one of the known fields (pattern, attributes, endSystem)");
      const msg = { type: "flow", op: "add", pattern: f.pattern, endSystem: f.endSystem ?? id ?? "x", attributes: f.attributes ?? {} };
      const checked = validateMessage(msg);
      if (!checked.ok) return protocolError(f, checked.path.replace(/^msg\./, ""), checked.detail, err, `flows[${i}].`);
      if (checked.msg.type === "flow") flows.push({ pattern: checked.msg.pattern, endSystem: checked.msg.endSystem, attributes: checked.msg.attributes });
      return undefined;
    });
  }

  if (errors.length > 0) return { ok: false, errors };
  const config: AgentConfig = {
    id: id!,
    addresses: addresses!,
    key: key!,
    group: group!,
    port: port!,
    unicast: unicast! as string[],
    intervalMs: intervalMs!,
    services: services!,
    flows,
    controlSocket: controlSocket!,
    drainTimeoutS: drainTimeoutS!,
    numbers,
  };
  if (iface !== undefined) config.interface = iface;
  if (probe !== undefined) config.probe = probe;
  if (supervisor !== undefined) config.supervisor = supervisor;
  return { ok: true, config };
}

export type Err = (path: string, value: unknown, expected: string) => undefined;

/** A key { id, secret } or { id, secretFile } at `at` in a config file; secretFile resolves against baseDir. */
export function parseKey(v: unknown, baseDir: string, err: Err, at = "key"): AuthKey | undefined {
  const what = '{ id: 0-65535, secret: "hex or base64" } or { id, secretFile: "path" }';
  if (!isObject(v)) return err(at, v, what);
  for (const k of Object.keys(v)) if (!["id", "secret", "secretFile"].includes(k)) err(`${at}.${k}`, v[k], "one of the known fields (id, secret, secretFile)");
  const id = intIn(v.id, 0, LIMITS.keyId) ?? err(`${at}.id`, v.id, "an integer 0-65535");
  let text: string | undefined;
  let path = `${at}.secret`;
  if (v.secret !== undefined && v.secretFile !== undefined) return err(at, "(both)", "one of secret or secretFile, not both");
  if (typeof v.secret === "string") text = v.secret;
  else if (typeof v.secretFile === "string") {
    path = `${at}.secretFile`;
    try {
      text = readFileSync(resolve(baseDir, v.secretFile), "utf8").trim();
    } catch (e) {
      return err(path, v.secretFile, `a readable file holding the secret in hex or base64 (${(e as Error).message})`);
    }
  } else return err(`${at}.secret`, v.secret, `a secret in hex or base64, or ${at}.secretFile naming a file that holds one`);
  const secret = decodeSecret(text);
  // Never echo a secret into an error message.
  if (secret === null) return err(path, "(hidden)", "hex (an even number of 0-9a-f) or base64");
  if (secret.length < MIN_SECRET_BYTES) return err(path, `(${secret.length} bytes)`, `at least ${MIN_SECRET_BYTES} bytes of secret (32 random bytes recommended)`);
  return id === undefined ? undefined : { id, secret };
}

/** Hex if it is all hex digits in pairs, otherwise strict base64; null if neither. */
export function decodeSecret(s: string): Uint8Array | null {
  const t = s.trim();
  if (/^([0-9a-fA-F]{2})+$/.test(t)) return new Uint8Array(Buffer.from(t, "hex"));
  if (t.length > 0 && /^[A-Za-z0-9+/]+={0,2}$/.test(t) && t.length % 4 === 0) return new Uint8Array(Buffer.from(t, "base64"));
  return null;
}

function parseProbe(v: unknown, err: Err): { url: string; timeoutMs: number } | undefined {
  if (v === undefined) return undefined;
  if (!isObject(v)) return err("probe", v, '{ url: "http://127.0.0.1:80/health", timeoutMs? }');
  for (const k of Object.keys(v)) if (!["url", "timeoutMs"].includes(k)) err(`probe.${k}`, v[k], "one of the known fields (url, timeoutMs)");
  let url: string | undefined;
  try {
    const u = new URL(String(v.url));
    if (typeof v.url === "string" && u.protocol === "http:") url = v.url;
  } catch {
    // reported below
  }
  if (url === undefined) err("probe.url", v.url, "an http:// URL of a local health page");
  const timeoutMs = v.timeoutMs === undefined ? DEFAULT_PROBE_TIMEOUT_MS : intIn(v.timeoutMs, 1, 60_000) ?? err("probe.timeoutMs", v.timeoutMs, "an integer 1-60000");
  return url === undefined || timeoutMs === undefined ? undefined : { url, timeoutMs };
}

function parseNumbers(v: unknown, err: Err): NumberWant[] {
  const out: NumberWant[] = [];
  if (v === undefined) return out;
  if (!Array.isArray(v)) return err("numbers", v, "a list of { pool, count?, leaseS? }") ?? out;
  v.forEach((n, i) => {
    const at = `numbers[${i}]`;
    if (!isObject(n)) return err(at, n, "{ pool, count?, leaseS? }");
    for (const k of Object.keys(n)) if (!["pool", "count", "leaseS"].includes(k)) err(`${at}.${k}`, n[k], "one of the known fields (pool, count, leaseS)");
    const pool = isId(n.pool) ? n.pool : err(`${at}.pool`, n.pool, `a pool name: ${ID_FORM}`);
    const count = n.count === undefined ? 1 : intIn(n.count, 1, LIMITS.numberCount) ?? err(`${at}.count`, n.count, `an integer 1-${LIMITS.numberCount}`);
    const leaseS = n.leaseS === undefined ? DEFAULT_LEASE_S : intIn(n.leaseS, LIMITS.leaseS.min, LIMITS.leaseS.max) ?? err(`${at}.leaseS`, n.leaseS, `an integer ${LIMITS.leaseS.min}-${LIMITS.leaseS.max} (seconds)`);
    if (pool !== undefined && count !== undefined && leaseS !== undefined) out.push({ pool, count, leaseS });
    return undefined;
  });
  return out;
}

/** Reports a protocol validation failure at its path in the file, with the value found there. */
function protocolError(root: unknown, path: string, detail: string, err: Err, prefix = ""): undefined {
  return err(`${prefix}${path}`, valueAt(root, path), detail.replace(/^must be /, ""));
}

function valueAt(root: unknown, path: string): unknown {
  let cur: unknown = root;
  for (const part of path.match(/[^.[\]]+/g) ?? []) {
    if (cur === null || typeof cur !== "object") return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function intIn(v: unknown, min: number, max: number): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? v : undefined;
}

export function isMulticast(v: unknown): v is string {
  if (typeof v !== "string") return false;
  const fam = isIP(v);
  if (fam === 4) return Number(v.split(".")[0]) >= 224 && Number(v.split(".")[0]) <= 239;
  return fam === 6 && /^ff/i.test(v);
}
