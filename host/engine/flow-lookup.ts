// One flow looked up in an engine's tables from the host thread (the engine's memory is shared):
// the engine's own hash (assembly/hash.ts), bucket choice and two-bucket search
// (assembly/flow-table.ts), ported line for line, so that a peer's "who has this flow?" is
// answered without a trip through the rings. And the key the parser would build for a frame.
//
// Trade-off: the engine keeps writing while we read. An entry a cuckoo insert is moving at that
// moment may be missed (the asker then gets no answer from us, as if the flow were unknown), and
// a value read mid-update is one packet stale. A lookup takes no lock and never stalls the engine.
import * as L from "../../assembly/layout.js";
import type { Engine } from "./engine.js";

// ---- assembly/hash.ts: murmur3's mixing over 32-bit words --------------------------------------

function mixWord(h: number, k: number): number {
  k = Math.imul(k, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** hashWords(p, n, seed) of the engine (hash4 is the same for n = 4), over the first n words of key. */
export function hashWords(key: Uint8Array, n: number, seed: number): number {
  const dv = new DataView(key.buffer, key.byteOffset, key.byteLength);
  let h = seed | 0;
  for (let i = 0; i < n; i++) h = mixWord(h, dv.getUint32(i * 4, true));
  return finish(h ^ (n << 2));
}

const altHash = (h: number): number => finish((h ^ 0x9e3779b9) | 0);

// ---- assembly/flow-table.ts: bucketAt, lookup ---------------------------------------------------

interface Table {
  base: number;
  buckets: number;
  /** entry size, key size (the value follows the key), key bytes compared */
  es: number;
  ko: number;
  cmp: number;
  words: number;
}

function tableOf(engine: Engine, family: 4 | 6): Table {
  const p = engine.plan;
  return family === 6
    ? { base: p.flow6, buckets: p.flow6Buckets, es: L.FLOW6_ENTRY, ko: L.FLOW6_KEY, cmp: 40, words: 10 }
    : { base: p.flow4, buckets: p.flow4Buckets, es: L.FLOW4_ENTRY, ko: L.FLOW4_KEY, cmp: 16, words: 4 };
}

/** floor(h * buckets / 2^32), exactly (the product passes 2^53): the engine's multiply-shift. */
function bucketAt(t: Table, h: number): number {
  const hi = (h >>> 16) * t.buckets;
  const lo = (h & 0xffff) * t.buckets;
  const i = Math.floor((hi + Math.floor(lo / 65536)) / 65536);
  return t.base + i * t.es * L.FLOW_WAYS;
}

function keyEquals(mem: Uint8Array, e: number, key: Uint8Array, n: number): boolean {
  for (let i = 0; i < n; i++) if (mem[e + i] !== key[i]) return false;
  return true;
}

export interface FoundFlow {
  /** A copy of the entry: key then value bytes (FLOW4_ENTRY or FLOW6_ENTRY), as flowOf takes it. */
  entry: Uint8Array;
  /** ms until it expires if nothing more is seen (always > 0). */
  leftMs: number;
}

/**
 * The live entry of key (FLOW4_KEY bytes, or FLOW6_KEY / its first 40) in the engine's table of
 * that family, or undefined: absent, or expired (the engine would choose afresh).
 */
export function findFlow(engine: Engine, family: 4 | 6, key: Uint8Array): FoundFlow | undefined {
  const t = tableOf(engine, family);
  if (key.length < t.cmp) throw new Error(`an IPv${family} flow key has ${t.cmp} bytes or more, not ${key.length}`);
  const mem = engine.bytes;
  const dv = new DataView(mem.buffer);
  const seed = dv.getUint32(engine.plan.controlBlock + L.CB_FLOW_SEED, true);
  const h = hashWords(key, t.words, seed);
  for (const b of [bucketAt(t, h), bucketAt(t, altHash(h))]) {
    for (let w = 0; w < L.FLOW_WAYS; w++) {
      const e = b + w * t.es;
      if (!(mem[e + t.ko + L.FV_FLAGS] & L.FF_VALID) || !keyEquals(mem, e, key, t.cmp)) continue;
      const leftMs = (dv.getUint32(e + t.ko + L.FV_EXPIRES, true) - engine.clock) | 0; // wrap-safe
      if (leftMs <= 0) return undefined;
      return { entry: mem.slice(e, e + t.es), leftMs };
    }
  }
  return undefined;
}

// ---- assembly/parse.ts: the key of a frame ------------------------------------------------------

export interface FrameKey {
  family: 4 | 6;
  /** FLOW4_KEY bytes (src, dst, ports as on the wire, protocol as a little-endian word) or FLOW6_KEY (the same, 8 zero bytes after). */
  key: Uint8Array;
}

const be16 = (f: Uint8Array, at: number): number => (f[at] << 8) | f[at + 1];

/**
 * The key the engine's parser builds for a frame (through VLAN tags and MPLS labels, past IPv6
 * extension headers), or undefined where the engine would look no flow up: not IP, malformed or
 * truncated (lengths are checked as the parser does; the IPv4 checksum is not), or a fragment.
 */
export function flowKeyOf(f: Uint8Array): FrameKey | undefined {
  if (f.length < 14) return undefined;
  let off = 14;
  let et = be16(f, 12);
  for (let tags = 0; et === 0x8100 || et === 0x88a8 || et === 0x9100; tags++) {
    if (tags === L.MAX_VLAN_TAGS || off + 4 > f.length) return undefined;
    et = be16(f, off + 2);
    off += 4;
  }
  if (et === 0x8847 || et === 0x8848) {
    for (let labels = 1; ; labels++) {
      if (off + 4 > f.length) return undefined;
      const bos = f[off + 2] & 1;
      off += 4;
      if (bos) break;
      if (labels === L.MAX_MPLS_LABELS) return undefined;
    }
    if (off >= f.length) return undefined;
    const v = f[off] >> 4;
    et = v === 4 ? 0x0800 : v === 6 ? 0x86dd : 0;
  }
  if (et === 0x0800) return key4(f, off);
  if (et === 0x86dd) return key6(f, off);
  return undefined;
}

function key4(f: Uint8Array, off: number): FrameKey | undefined {
  if (off + 20 > f.length) return undefined;
  const ihl = (f[off] & 15) << 2;
  const tot = be16(f, off + 2);
  if (f[off] >> 4 !== 4 || ihl < 20 || tot < ihl || off + tot > f.length) return undefined;
  if (be16(f, off + 6) & 0x3fff) return undefined; // a fragment: the engine keys none
  const proto = f[off + 9];
  const key = new Uint8Array(L.FLOW4_KEY);
  key.set(f.subarray(off + 12, off + 20), 0);
  key[12] = proto;
  return ports(f, off + ihl, off + tot, proto, key, 8) ? { family: 4, key } : undefined;
}

function key6(f: Uint8Array, off: number): FrameKey | undefined {
  if (off + 40 > f.length || f[off] >> 4 !== 6) return undefined;
  const plen = be16(f, off + 4);
  const end = off + 40 + plen;
  if (plen === 0 || end > f.length) return undefined;
  let nh = f[off + 6];
  let cur = off + 40;
  for (let n = 0; ; n++) {
    const ext = nh === 0 || nh === 43 || nh === 60 || nh === 51;
    if (!ext && nh !== 44) break;
    if (n === L.MAX_IPV6_EXT || cur + 8 > end) return undefined;
    if (nh === 44 && be16(f, cur + 2) & 0xfff9) return undefined; // a fragment: the engine keys none
    const len = nh === 44 ? 8 : nh === 51 ? (f[cur + 1] + 2) << 2 : (f[cur + 1] + 1) << 3;
    nh = f[cur];
    cur += len;
    if (cur > end) return undefined;
  }
  const key = new Uint8Array(L.FLOW6_KEY);
  key.set(f.subarray(off + 8, off + 40), 0);
  key[36] = nh;
  return ports(f, cur, end, nh, key, 32) ? { family: 6, key } : undefined;
}

/** The ports word for TCP and UDP (left zero for others); false where the engine drops the packet. */
function ports(f: Uint8Array, l4: number, end: number, proto: number, key: Uint8Array, at: number): boolean {
  if (proto === 6) {
    if (l4 + 20 > end) return false;
    const doff = (f[l4 + 12] >> 4) << 2;
    if (doff < 20 || l4 + doff > end) return false;
  } else if (proto === 17) {
    if (l4 + 8 > end) return false;
    const ulen = be16(f, l4 + 4);
    if (ulen < 8 || l4 + ulen > end) return false;
  } else {
    if ((proto === 1 || proto === 58) && l4 + 8 > end) return false;
    return true;
  }
  key.set(f.subarray(l4, l4 + 4), at);
  return true;
}
