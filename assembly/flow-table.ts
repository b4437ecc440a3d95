// The flow table: fixed size, sized at boot, never allocates.
//
// Trade-offs, in the spirit of VPP's lbhash.h: a bucket is one 64-byte cache line holding two IPv4
// entries (two cache lines and two entries for IPv6); a key may live in either of two buckets
// (cuckoo hashing), so an established flow costs one cache line, sometimes two, and the table fills
// to ~85% before inserts start to fail. An insert that finds both buckets full moves residents to
// their other bucket, at most MAX_CUCKOO_KICKS times, and undoes every move if that fails: the
// insert fails (counted) and no existing flow is lost. Expiry is lazy: an entry whose idle time
// has passed is free for the taking, and a sweeper reclaims a few buckets per batch so that the
// occupancy gauge stays true. The full key is stored and compared: a hash collision never
// misroutes a flow.
import {
  FLOW4_ENTRY, FLOW4_KEY, FLOW6_ENTRY, FLOW6_KEY, FLOW_WAYS, FV_FLAGS, FV_EXPIRES, FF_VALID,
  MAX_CUCKOO_KICKS, C_FLOWS4, C_FLOWS6, C_FLOW_EXPIRED, C_FLOW_CUCKOO_MOVES,
  SWEEP_BUCKETS_PER_BATCH, CB_SWEEP_CURSOR4, CB_SWEEP_CURSOR6,
} from "./layout";
import { flow4, flow4Mask, flow6, flow6Mask, flowSeed, now, cuckooScratch, cb } from "./state";
import { hashWords, altHash } from "./hash";
import { count, countSub } from "./counters";

/** A table's shape, by address family. */
@inline function tbase(v6: bool): usize { return v6 ? flow6 : flow4; }
@inline function tmask(v6: bool): u32 { return v6 ? flow6Mask : flow4Mask; }
@inline function esize(v6: bool): usize { return v6 ? FLOW6_ENTRY : FLOW4_ENTRY; }
@inline function ksize(v6: bool): usize { return v6 ? FLOW6_KEY : FLOW4_KEY; }
@inline function bucketAt(v6: bool, h: u32): usize {
  return tbase(v6) + (<usize>(h & tmask(v6))) * (esize(v6) * FLOW_WAYS);
}

/** The hash that places a key: words of the key, the per-boot seed. */
@inline export function flowHash(key: usize, v6: bool): u32 {
  return hashWords(key, v6 ? 10 : 4, flowSeed);
}

/** Wrap-safe: has the clock passed t? */
@inline export function expired(t: u32): bool {
  return <i32>(now - t) >= 0;
}

@inline function keyEquals(e: usize, key: usize, v6: bool): bool {
  if (!v6) return load<u64>(e) == load<u64>(key) && load<u64>(e + 8) == load<u64>(key + 8);
  return load<u64>(e) == load<u64>(key) && load<u64>(e + 8) == load<u64>(key + 8) &&
    load<u64>(e + 16) == load<u64>(key + 16) && load<u64>(e + 24) == load<u64>(key + 24) &&
    load<u64>(e + 32) == load<u64>(key + 32);
}

/** Touches the first bucket of a key so its cache line is on its way before it is needed. */
@inline export function touch(v6: bool, h: u32): u32 {
  return load<u32>(bucketAt(v6, h) + ksize(v6) + FV_EXPIRES);
}

/** The entry holding key (live or expired: the caller decides), or 0. */
export function lookup(key: usize, h: u32, v6: bool): usize {
  const es = esize(v6);
  const vo = ksize(v6);
  let b = bucketAt(v6, h);
  for (let w: u32 = 0; w < 2; w++) {
    for (let i: usize = 0; i < <usize>FLOW_WAYS; i++) {
      const e = b + i * es;
      if ((load<u8>(e + vo + FV_FLAGS) & FF_VALID) && keyEquals(e, key, v6)) return e;
    }
    b = bucketAt(v6, altHash(h));
  }
  return 0;
}

@inline function isFree(e: usize, vo: usize): bool {
  return !(load<u8>(e + vo + FV_FLAGS) & FF_VALID) || expired(load<u32>(e + vo + FV_EXPIRES));
}

/** Takes slot e for a new entry: an expired resident is reclaimed, counted. */
function claim(e: usize, key: usize, v6: bool): usize {
  const vo = ksize(v6);
  if (load<u8>(e + vo + FV_FLAGS) & FF_VALID) {
    count(C_FLOW_EXPIRED);
  } else {
    count(v6 ? C_FLOWS6 : C_FLOWS4);
  }
  memory.copy(e, key, vo);
  memory.fill(e + vo, 0, 16);
  return e;
}

@inline function freeSlot(b: usize, v6: bool): usize {
  const es = esize(v6);
  const vo = ksize(v6);
  for (let i: usize = 0; i < <usize>FLOW_WAYS; i++) {
    const e = b + i * es;
    if (isFree(e, vo)) return e;
  }
  return 0;
}

@inline function swap(a: usize, b: usize, n: usize): void {
  for (let i: usize = 0; i < n; i += 8) {
    const t = load<u64>(a + i);
    store<u64>(a + i, load<u64>(b + i));
    store<u64>(b + i, t);
  }
}

/**
 * A zeroed entry for key (whose value the caller fills), or 0 when the table has no room.
 * The caller has looked the key up first: it is not in the table.
 */
export function insert(key: usize, h: u32, v6: bool): usize {
  const b1 = bucketAt(v6, h);
  let e = freeSlot(b1, v6);
  if (e) return claim(e, key, v6);
  const b2 = bucketAt(v6, altHash(h));
  e = freeSlot(b2, v6);
  if (e) return claim(e, key, v6);

  // Cuckoo: the newcomer takes a slot, the resident moves to its other bucket, and so on.
  const es = esize(v6);
  const vo = ksize(v6);
  const homeless = cuckooScratch; // one entry
  const path = cuckooScratch + FLOW6_ENTRY; // addresses of the slots swapped, for the undo
  memory.copy(homeless, key, vo);
  memory.fill(homeless + vo, 0, 16);
  store<u8>(homeless + vo + FV_FLAGS, FF_VALID);
  // live while it moves: an expiry of 0 would read as expired and let a resident land on it
  store<u32>(homeless + vo + FV_EXPIRES, now + 0x40000000);
  let b = (h & 1) ? b2 : b1;
  let k: u32 = 0;
  for (; k < <u32>MAX_CUCKOO_KICKS; k++) {
    // never move a slot already on the path: the newcomer must stay where it first landed
    let slot = b + <usize>((h >>> (k + 1)) & 1) * es;
    if (onPath(path, k, slot)) slot = slot == b ? b + es : b;
    if (onPath(path, k, slot)) break;
    swap(homeless, slot, es);
    store<u32>(path + (<usize>k << 2), <u32>slot);
    // the displaced resident now sits in homeless: where else may it live?
    const rh = flowHash(homeless, v6);
    const r1 = bucketAt(v6, rh);
    const other = r1 == b ? bucketAt(v6, altHash(rh)) : r1;
    const dst = freeSlot(other, v6);
    if (dst) {
      if (load<u8>(dst + vo + FV_FLAGS) & FF_VALID) count(C_FLOW_EXPIRED);
      else count(v6 ? C_FLOWS6 : C_FLOWS4);
      memory.copy(dst, homeless, es);
      count(C_FLOW_CUCKOO_MOVES);
      const first = <usize>load<u32>(path);
      memory.fill(first + vo, 0, 16);
      return first;
    }
    b = other;
  }
  for (let i = <i32>k - 1; i >= 0; i--) {
    swap(homeless, <usize>load<u32>(path + (<usize>i << 2)), es);
  }
  return 0;
}

@inline function onPath(path: usize, n: u32, slot: usize): bool {
  for (let i: u32 = 0; i < n; i++) if (<usize>load<u32>(path + (<usize>i << 2)) == slot) return true;
  return false;
}

/** Frees an entry now (a flow that must not continue). */
export function remove(e: usize, v6: bool): void {
  store<u8>(e + ksize(v6) + FV_FLAGS, 0);
  countSub(v6 ? C_FLOWS6 : C_FLOWS4);
}

/** Reclaims expired entries in the next few buckets of each table. */
export function sweep(): void {
  sweepTable(false, cb + CB_SWEEP_CURSOR4);
  sweepTable(true, cb + CB_SWEEP_CURSOR6);
}

function sweepTable(v6: bool, cursorAt: usize): void {
  const mask = tmask(v6);
  const es = esize(v6);
  const vo = ksize(v6);
  let c = load<u32>(cursorAt);
  for (let i: u32 = 0; i < <u32>SWEEP_BUCKETS_PER_BATCH; i++) {
    const b = tbase(v6) + <usize>(c & mask) * es * FLOW_WAYS;
    for (let j: usize = 0; j < <usize>FLOW_WAYS; j++) {
      const v = b + j * es + vo;
      if ((load<u8>(v + FV_FLAGS) & FF_VALID) && expired(load<u32>(v + FV_EXPIRES))) {
        store<u8>(v + FV_FLAGS, 0);
        countSub(v6 ? C_FLOWS6 : C_FLOWS4);
        count(C_FLOW_EXPIRED);
      }
    }
    c++;
  }
  store<u32>(cursorAt, c & mask);
}
