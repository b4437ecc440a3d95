// Address prefixes as the levels protocol uses them: load entries are keyed by prefix (a VIP as a
// /32 or /128, or a virtual subnet), and the system finds a VIP's entry by longest match. Text is
// always canonical (dotted quad, RFC 5952 IPv6) so that the same prefix written two ways by two
// sites is one key.

import type { Address, Prefix } from "../config/schema.js";
import { ipBytes } from "../discovery/protocol.js";
import { formatIPv4, formatIPv6 } from "../net/frame.js";

export type Family = 4 | 6;

export function addressText(family: Family, bytes: Uint8Array): string {
  return family === 4 ? formatIPv4(bytes) : formatIPv6(bytes);
}

/** `bytes` with every bit past `length` cleared (a fresh array). */
export function masked(bytes: Uint8Array, length: number): Uint8Array {
  const out = Uint8Array.from(bytes);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, length - i * 8));
    out[i]! &= (0xff00 >> keep) & 0xff;
  }
  return out;
}

/** Map key of a prefix: family, length and the masked bytes; equal for equal prefixes however written. */
export function prefixKey(family: Family, bytes: Uint8Array, length: number): string {
  return `${family}/${length}/${Buffer.from(masked(bytes, length)).toString("hex")}`;
}

/** A prefix from canonical parts (host bits are cleared). */
export function makePrefix(family: Family, bytes: Uint8Array, length: number): Prefix {
  const b = masked(bytes, length);
  return { family, bytes: b, length, text: `${addressText(family, b)}/${length}` };
}

/** The one-address prefix of a VIP: /32 or /128. */
export function hostPrefix(a: Pick<Address, "family" | "bytes">): Prefix {
  return makePrefix(a.family, a.bytes, a.family === 4 ? 32 : 128);
}

/** The same prefix with canonical text (a configured one keeps the operator's spelling). */
export function canonical(p: Prefix): Prefix {
  return makePrefix(p.family, p.bytes, p.length);
}

/** Whether `a` lies inside `p` (never across families). */
export function contains(p: Prefix, a: Pick<Address, "family" | "bytes">): boolean {
  if (p.family !== a.family) return false;
  for (let bit = 0; bit < p.length; bit += 8) {
    const keep = Math.min(8, p.length - bit);
    const mask = (0xff00 >> keep) & 0xff;
    if ((a.bytes[bit >> 3]! & mask) !== (p.bytes[bit >> 3]! & mask)) return false;
  }
  return true;
}

/**
 * "address/length" with the length required and no bits set past it, in any form net.isIP takes
 * (no zone); the result's text is canonical. A reason instead when the text is not one.
 */
export function parseWirePrefix(text: string): Prefix | string {
  const slash = text.indexOf("/");
  const lengthText = slash < 0 ? "" : text.slice(slash + 1);
  const bytes = slash < 0 ? null : ipBytes(text.slice(0, slash));
  if (bytes === null || !/^\d{1,3}$/.test(lengthText)) return "must be a prefix like 192.0.2.0/24 or 2001:db8::/32";
  const length = Number(lengthText);
  const bits = bytes.length * 8;
  if (length > bits) return `prefix length ${length} is over ${bits}`;
  const family: Family = bytes.length === 4 ? 4 : 6;
  if (!masked(bytes, length).every((b, i) => b === bytes[i])) return `host bits are set beyond /${length}`;
  return makePrefix(family, bytes, length);
}
