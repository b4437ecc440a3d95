// flowswitch-supervisor's config file: who the supervisor is, the keys it accepts, where it
// listens and which groups it joins to hear advertisements, its number pools and lease store,
// and where it relays advertisements to. Validation collects every error, each naming the path in
// the file, the value found and what was expected (as the agent's config does, tools/agent/config.ts).

import { isIP } from "node:net";
import { resolve } from "node:path";
import { DEFAULT_PORT, LIMITS, type AuthKey } from "../../host/discovery/protocol.js";
import { parseRelayTarget, parseUnicast, RELAY_TARGET_FORM, SUPERVISOR_RANGE } from "../../host/config/validate.js";
import { SUPERVISOR_DEFAULTS } from "../../host/config/schema.js";
import type { PoolConfig, RelayTarget, SupervisorConfig } from "../../host/discovery/supervisor.js";
import type { Endpoint, GroupJoin } from "../../host/discovery/supervisor-socket.js";
import { parseKey, isObject, intIn, isMulticast, readJsonConfig, type ConfigError, type Err } from "../agent/config.js";
import { isId, ID_FORM } from "../../host/wire/fields.js";

export { formatConfigError } from "../agent/config.js";

export interface StandaloneConfig {
  supervisor: SupervisorConfig;
  endpoint: Endpoint;
  /** The lease store; required when pools are configured. */
  stateFile?: string;
}

export type StandaloneResult = { ok: true; config: StandaloneConfig } | { ok: false; errors: ConfigError[] };

const TOP_KEYS = ["id", "keys", "listen", "groups", "intervalMs", "maxEndSystems", "pools", "relay", "peers", "stateFile"];

export function loadStandaloneConfig(file: string): StandaloneResult {
  const r = readJsonConfig(file);
  return r.ok ? validateStandaloneConfig(r.raw, r.baseDir) : r;
}

export function validateStandaloneConfig(raw: unknown, baseDir: string): StandaloneResult {
  const errors: ConfigError[] = [];
  const err: Err = (path, value, expected) => {
    errors.push({ path, value, expected });
    return undefined;
  };
  if (!isObject(raw)) return { ok: false, errors: [{ path: "", value: raw, expected: "a JSON object" }] };
  for (const k of Object.keys(raw)) if (!TOP_KEYS.includes(k)) err(k, raw[k], `one of the known fields (${TOP_KEYS.join(", ")})`);

  const id = isId(raw.id) ? raw.id : err("id", raw.id, `the supervisor's sender an id: ${ID_FORM}`);

  const keys: AuthKey[] = [];
  if (!Array.isArray(raw.keys) || raw.keys.length === 0) err("keys", raw.keys, 'a list of one or more keys { id, secret | secretFile } (every one is accepted)');
  else raw.keys.forEach((k, i) => {
    const key = parseKey(k, baseDir, err, `keys[${i}]`);
    if (!key) return;
    if (keys.some((x) => x.id === key.id)) err(`keys[${i}].id`, key.id, "an id no other key has");
    else keys.push(key);
  });

  let listenAddress = "0.0.0.0";
  let port: number | undefined = DEFAULT_PORT;
  if (raw.listen !== undefined) {
    if (!isObject(raw.listen)) err("listen", raw.listen, "{ address?, port? }");
    else {
      const l = raw.listen;
      for (const k of Object.keys(l)) if (!["address", "port"].includes(k)) err(`listen.${k}`, l[k], "one of the known fields (address, port)");
      if (l.address !== undefined) {
        if (typeof l.address === "string" && (l.address === "0.0.0.0" || l.address === "::" || parseUnicast(l.address))) listenAddress = l.address;
        else err("listen.address", l.address, "a local unicast address, or 0.0.0.0 / :: for all");
      }
      if (l.port !== undefined) port = intIn(l.port, 1, 65535) ?? err("listen.port", l.port, "an integer 1-65535");
    }
  }

  const groups: GroupJoin[] = [];
  if (raw.groups !== undefined && !Array.isArray(raw.groups)) err("groups", raw.groups, 'a list of groups to join: "239.255.77.77" or { address, interface? }');
  else (raw.groups as unknown[] | undefined)?.forEach((g, i) => {
    const o = typeof g === "string" ? { address: g } : g;
    if (!isObject(o)) return err(`groups[${i}]`, g, '"239.255.77.77" or { address, interface? }');
    for (const k of Object.keys(o)) if (!["address", "interface"].includes(k)) err(`groups[${i}].${k}`, o[k], "one of the known fields (address, interface)");
    if (!isMulticast(o.address)) return err(`groups[${i}].address`, o.address, "an IPv4 or IPv6 multicast address, e.g. 239.255.77.77 or ff02::77");
    if (o.interface !== undefined && typeof o.interface !== "string") return err(`groups[${i}].interface`, o.interface, "the local address of the interface to join on (IPv6: ::%eth0)");
    if (o.interface !== undefined && isIP(String(o.interface).split("%")[0]!) === 0) return err(`groups[${i}].interface`, o.interface, "the local address of the interface to join on (IPv6: ::%eth0)");
    groups.push(o.interface === undefined ? { address: o.address } : { address: o.address, interface: o.interface as string });
    return undefined;
  });

  const D = SUPERVISOR_DEFAULTS;
  const range = (path: string, v: unknown, def: number, [min, max]: readonly [number, number]): number | undefined =>
    v === undefined ? def : intIn(v, min, max) ?? err(path, v, `an integer ${min}-${max}`);
  const intervalMs = range("intervalMs", raw.intervalMs, D.intervalMs, [LIMITS.intervalMs.min, LIMITS.intervalMs.max]);
  const maxEndSystems = range("maxEndSystems", raw.maxEndSystems, D.maxEndSystems, SUPERVISOR_RANGE.maxEndSystems);

  const pools: PoolConfig[] = [];
  if (raw.pools !== undefined && !Array.isArray(raw.pools)) err("pools", raw.pools, "a list of { name, first, last, maxLeaseS? }");
  else (raw.pools as unknown[] | undefined)?.forEach((p, i) => {
    const at = `pools[${i}]`;
    if (!isObject(p)) return err(at, p, "{ name, first, last, maxLeaseS? }");
    for (const k of Object.keys(p)) if (!["name", "first", "last", "maxLeaseS"].includes(k)) err(`${at}.${k}`, p[k], "one of the known fields (name, first, last, maxLeaseS)");
    const name = isId(p.name) ? p.name : err(`${at}.name`, p.name, `a pool an id: ${ID_FORM}`);
    if (name !== undefined && pools.some((x) => x.name === name)) err(`${at}.name`, name, "a name no other pool has");
    const first = range(`${at}.first`, p.first, -1, SUPERVISOR_RANGE.number);
    const last = range(`${at}.last`, p.last, -1, SUPERVISOR_RANGE.number);
    if (p.first === undefined) err(`${at}.first`, undefined, "the first number of the pool, 0-4294967295");
    if (p.last === undefined) err(`${at}.last`, undefined, "the last number of the pool, 0-4294967295");
    if (first !== undefined && last !== undefined && first >= 0 && last >= 0 && last < first) err(`${at}.last`, last, `a number of ${first} (first) or more`);
    const maxLeaseS = range(`${at}.maxLeaseS`, p.maxLeaseS, D.maxLeaseS, SUPERVISOR_RANGE.maxLeaseS);
    if (name !== undefined && first !== undefined && last !== undefined && first >= 0 && last >= first && maxLeaseS !== undefined) pools.push({ name, first, last, maxLeaseS });
    return undefined;
  });

  const relay: RelayTarget[] = [];
  if (raw.relay !== undefined && !Array.isArray(raw.relay)) err("relay", raw.relay, `a list of targets, each ${RELAY_TARGET_FORM}`);
  else (raw.relay as unknown[] | undefined)?.forEach((r, i) => {
    const t = typeof r === "string" ? parseRelayTarget(r, port ?? DEFAULT_PORT) : undefined;
    if (!t) return err(`relay[${i}]`, r, RELAY_TARGET_FORM);
    relay.push({ address: t.address.text, port: t.port });
    return undefined;
  });

  const peers: string[] = [];
  if (raw.peers !== undefined && !Array.isArray(raw.peers)) err("peers", raw.peers, "a list of other supervisors' addresses");
  else (raw.peers as unknown[] | undefined)?.forEach((p, i) => {
    if (typeof p !== "string" || !parseUnicast(p)) return err(`peers[${i}]`, p, "a unicast address of another supervisor");
    peers.push(p);
    return undefined;
  });

  let stateFile: string | undefined;
  if (raw.stateFile !== undefined) {
    if (typeof raw.stateFile === "string" && raw.stateFile.length > 0) stateFile = resolve(baseDir, raw.stateFile);
    else err("stateFile", raw.stateFile, "a path for the lease store file");
  } else if (Array.isArray(raw.pools) && raw.pools.length > 0) {
    err("stateFile", undefined, "a path for the lease store file (pools are configured: leases are saved before they are granted)");
  }

  if (errors.length > 0) return { ok: false, errors };
  const config: StandaloneConfig = {
    supervisor: { id: id!, keys, intervalMs: intervalMs!, maxEndSystems: maxEndSystems!, pools, relay, peers },
    endpoint: { address: listenAddress, port: port!, groups },
  };
  if (stateFile !== undefined) config.stateFile = stateFile;
  return { ok: true, config };
}
