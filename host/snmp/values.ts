// SNMP value forms: numbers clamped to what their type can carry, so a big or odd value from the
// view never makes the library throw while it answers a request.

const MAX32 = 0xffffffff;

/** Gauge32 / Unsigned32: 0 .. 2^32-1, saturating. */
export function gauge(n: number): number {
  return Number.isFinite(n) ? Math.min(MAX32, Math.max(0, Math.floor(n))) : 0;
}

/** Counter32 (ifInOctets ...): the low 32 bits, wrapping as the RFC says. */
export function counter32(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) % 2 ** 32 : 0;
}

/** Counter64 as the 8 big-endian bytes net-snmp writes. */
export function counter64(n: number): Buffer {
  const b = Buffer.alloc(8);
  if (Number.isFinite(n) && n > 0) b.writeBigUInt64BE(BigInt(Math.floor(n)));
  return b;
}

/** DisplayString: printable text of at most `max` characters. */
export function display(s: string, max = 255): string {
  return s.replace(/[^\x20-\x7e]/g, "?").slice(0, max);
}

/** TimeTicks: hundredths of a second, wrapping at 2^32. */
export function ticks(ms: number): number {
  return Math.floor(Math.max(0, ms) / 10) % 2 ** 32;
}

/** 02:00:00:00:00:01 -> 6 bytes (ifPhysAddress). */
export function macBytes(mac: string): Buffer {
  const hex = mac.replace(/[^0-9a-fA-F]/g, "");
  return hex.length === 12 ? Buffer.from(hex, "hex") : Buffer.alloc(0);
}
