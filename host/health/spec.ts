// What a health check is: its spec, its defaults, and the checks that make a spec usable.
//
// The probes always target the backend's real address, never the VIP: a DSR backend carries the
// VIP on its loopback, so a probe to the VIP would be answered by the appliance's own path.

import { isIP } from "node:net";

export type CheckType = "tcp" | "http" | "https" | "udp";

export interface CheckSpec {
  type: CheckType;
  /** The backend's real IP (IPv4 or IPv6), never the VIP. */
  address: string;
  port: number;
  /** http(s): the path to GET; default "/". */
  path?: string;
  /** http(s): the Host header; default the address (bracketed if IPv6), with ":port" if not 80/443. */
  host?: string;
  /** http(s): the one status that passes; if unset, any 2xx passes (redirects are never followed). */
  expectStatus?: number;
  /**
   * https: verify the backend's certificate chain and name. Default false: backends behind a
   * load balancer mostly carry self-signed certificates, and the check asks "is it serving", not
   * "is it trusted". A handshake failure is reported as "tls error: ..." either way.
   */
  verifyTls?: boolean;
  /** udp: the payload to send; default an empty datagram. */
  send?: string;
  /** udp: the reply must contain this; default any reply passes. */
  expect?: string;
  /** Time between probe starts; default 2000. */
  intervalMs: number;
  /** A probe not finished after this long fails ("timeout", or "no reply" for udp); default 1000. */
  timeoutMs: number;
  /** Consecutive successes that bring a down backend up; default 2. */
  rise: number;
  /** Consecutive failures that take an up backend down; default 3. */
  fall: number;
  /** Bind probes to this local address (the appliance's management address). */
  sourceAddress?: string;
}

/** Defaults as HAProxy and keepalived operators expect them (HAProxy: inter 2s, rise 2, fall 3). */
export const CHECK_DEFAULTS = { intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3 } as const satisfies Pick<
  CheckSpec,
  "intervalMs" | "timeoutMs" | "rise" | "fall"
>;

type Defaulted = keyof typeof CHECK_DEFAULTS;

/** A spec as configured: the timing fields may be left out and take CHECK_DEFAULTS. */
export type CheckSpecInput = Omit<CheckSpec, Defaulted> & Partial<Pick<CheckSpec, Defaulted>>;

/** The spec with every default filled in, so that two specs compare field by field. */
export function withDefaults(input: CheckSpecInput): CheckSpec {
  const spec: CheckSpec = {
    type: input.type,
    address: input.address,
    port: input.port,
    intervalMs: input.intervalMs ?? CHECK_DEFAULTS.intervalMs,
    timeoutMs: input.timeoutMs ?? CHECK_DEFAULTS.timeoutMs,
    rise: input.rise ?? CHECK_DEFAULTS.rise,
    fall: input.fall ?? CHECK_DEFAULTS.fall,
  };
  if (input.sourceAddress !== undefined) spec.sourceAddress = input.sourceAddress;
  if (input.type === "http" || input.type === "https") {
    spec.path = input.path ?? "/";
    spec.host = input.host ?? defaultHost(input.address, input.port, input.type);
    if (input.expectStatus !== undefined) spec.expectStatus = input.expectStatus;
    if (input.type === "https") spec.verifyTls = input.verifyTls ?? false;
  }
  if (input.type === "udp") {
    spec.send = input.send ?? "";
    if (input.expect !== undefined) spec.expect = input.expect;
  }
  return spec;
}

function defaultHost(address: string, port: number, type: "http" | "https"): string {
  const name = isIP(address) === 6 ? `[${address}]` : address;
  const standard = type === "http" ? 80 : 443;
  return port === standard ? name : `${name}:${port}`;
}

/** True when two filled-in specs probe the same way (so a running check need not restart). */
export function sameSpec(a: CheckSpec, b: CheckSpec): boolean {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)] as (keyof CheckSpec)[]);
  for (const k of keys) if (a[k] !== b[k]) return false;
  return true;
}

const TYPES: readonly CheckType[] = ["tcp", "http", "https", "udp"];

function wholeIn(v: unknown, min: number, max: number): boolean {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;
}

/** What is wrong with a spec, one message per problem, each naming the field; empty if usable. */
export function checkSpecErrors(input: CheckSpecInput): string[] {
  const errors: string[] = [];
  const s = withDefaults(input);
  if (!TYPES.includes(s.type)) errors.push(`type: ${JSON.stringify(s.type)}: expected one of ${TYPES.join(", ")}`);
  const family = typeof s.address === "string" ? isIP(s.address) : 0;
  if (family === 0) errors.push(`address: ${JSON.stringify(s.address)}: expected an IPv4 or IPv6 address`);
  if (!wholeIn(s.port, 1, 65535)) errors.push(`port: ${s.port}: expected a whole number from 1 to 65535`);
  if (!wholeIn(s.intervalMs, 10, 3_600_000)) errors.push(`intervalMs: ${s.intervalMs}: expected a whole number from 10 to 3600000`);
  if (!wholeIn(s.timeoutMs, 1, 3_600_000)) errors.push(`timeoutMs: ${s.timeoutMs}: expected a whole number from 1 to 3600000`);
  if (!wholeIn(s.rise, 1, 1000)) errors.push(`rise: ${s.rise}: expected a whole number from 1 to 1000`);
  if (!wholeIn(s.fall, 1, 1000)) errors.push(`fall: ${s.fall}: expected a whole number from 1 to 1000`);
  if (s.sourceAddress !== undefined) {
    const srcFamily = typeof s.sourceAddress === "string" ? isIP(s.sourceAddress) : 0;
    if (srcFamily === 0) errors.push(`sourceAddress: ${JSON.stringify(s.sourceAddress)}: expected an IPv4 or IPv6 address`);
    else if (family !== 0 && srcFamily !== family) {
      errors.push(`sourceAddress: ${s.sourceAddress}: expected an IPv${family} address, like the backend's address`);
    }
  }
  if (s.type === "http" || s.type === "https") {
    // The request is written by hand: a space or line break would change its meaning.
    if (typeof s.path !== "string" || !/^\/[\x21-\x7e]*$/.test(s.path)) {
      errors.push(`path: ${JSON.stringify(s.path)}: expected a path starting with "/", without spaces or control characters`);
    }
    if (typeof s.host !== "string" || !/^[\x21-\x7e]+$/.test(s.host)) {
      errors.push(`host: ${JSON.stringify(s.host)}: expected a host name without spaces or control characters`);
    }
    if (s.expectStatus !== undefined && !wholeIn(s.expectStatus, 100, 599)) {
      errors.push(`expectStatus: ${s.expectStatus}: expected a whole number from 100 to 599`);
    }
  }
  if (s.type === "udp") {
    if (typeof s.send !== "string") errors.push(`send: ${JSON.stringify(s.send)}: expected a string`);
    if (s.expect !== undefined && (typeof s.expect !== "string" || s.expect === "")) {
      errors.push(`expect: ${JSON.stringify(s.expect)}: expected a non-empty string`);
    }
  }
  return errors;
}
