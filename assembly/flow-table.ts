// The flow table: fixed size, sized at boot, never allocates.
//
// Trade-offs, in the spirit of VPP's lbhash.h: a bucket is one 64-byte cache line holding two IPv4
// entries (two cache lines and two entries for IPv6); a key may live in either of two buckets
// (cuckoo hashing), so an established flow costs one cache line, sometimes two. An insert that
// finds both buckets full searches breadth-first, over at most CUCKOO_BFS_NODES buckets, for a
// chain of residents that can each move to their other bucket, and moves them only once the chain
// ends in a free slot: an insert either succeeds or fails (counted) without disturbing any flow.
// Buckets are picked by multiply-shift, so a table has exactly the entries its configured flows
// need (no power-of-two rounding). Expiry is lazy: an entry whose idle time has passed is free for
// the taking, and a sweeper reclaims a few buckets per batch so that the occupancy gauge stays
// true. The full key is stored and compared: a hash collision never misroutes a flow.
import {
  FLOW4_ENTRY, FLOW4_KEY, FLOW6_ENTRY, FLOW6_KEY, FLOW_WAYS, FV_FLAGS, FV_EXPIRES, FF_VALID,
  C_FLOWS4, C_FLOWS6, C_FLOW_EXPIRED, C_FLOW_CUCKOO_MOVES, CUCKOO_BFS_NODES, SCR_BFS,
  SWEEP_BUCKETS_PER_BATCH, CB_SWEEP_CURSOR4, CB_SWEEP_CURSOR6,
} from "./layout";
import { flow4, flow4Buckets, flow6, flow6Buckets, flowSeed, now, scratch, cb } from "./state";
import { hashWords, hash4, altHash } from "./hash";
import { count, countSub } from "./counters";

/** A table's shape, by address family. */
@inline function tbase(v6: bool): usize { return v6 ? flow6 : flow4; }
@inline function tbuckets(v6: bool): u32 { return v6 ? flow6Buckets : flow4Buckets; }
@inline function esize(v6: bool): usize { return v6 ? FLOW6_ENTRY : FLOW4_ENTRY; }
@inline function ksize(v6: bool): usize { return v6 ? FLOW6_KEY : FLOW4_KEY; }
@inline function bucketAt(v6: bool, h: u32): usize {
  const i = <usize>((<u64>h * <u64>tbuckets(v6)) >>> 32); // h scaled to [0, buckets)
  return tbase(v6) + i * (esize(v6) * FLOW_WAYS);
}

/** The hash that places a key: words of the key, the per-boot seed. */
@inline export function flowHash(key: usize, v6: bool): u32 {
  return v6 ? hashWords(key, 10, flowSeed) : hash4(key, flowSeed);
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

/** Touches both buckets of a key so their cache lines are on their way before they are needed. */
@inline export function touch(v6: bool, h: u32): u32 {
  return load<u32>(bucketAt(v6, h) + ksize(v6) + FV_EXPIRES) + load<u32>(bucketAt(v6, altHash(h)) + ksize(v6) + FV_EXPIRES);
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

/** Puts key in slot e (whose resident has moved on): a zeroed value for the caller to fill. */
@inline function place(e: usize, key: usize, v6: bool): usize {
  const vo = ksize(v6);
  memory.copy(e, key, vo);
  memory.fill(e + vo, 0, 16);
  return e;
}

// BFS queue nodes: u32 bucket address, u16 parent node (0xffff: a root), u8 slot in the parent
const NODE_BUCKET: usize = 0;
const NODE_PARENT: usize = 4;
const NODE_SLOT: usize = 6;
const NO_PARENT: u16 = 0xffff;

@inline function node(i: u32): usize {
  return scratch + SCR_BFS + (<usize>i << 3);
}

@inline function push(i: u32, bucket: usize, parent: u16, slot: u8): void {
  const n = node(i);
  store<u32>(n + NODE_BUCKET, <u32>bucket);
  store<u16>(n + NODE_PARENT, parent);
  store<u8>(n + NODE_SLOT, slot);
}

/** Is bucket b on the chain from node i up to its root? (A chain must not visit a bucket twice.) */
function onChain(i: u32, b: usize): bool {
  let n = i;
  while (true) {
    if (<usize>load<u32>(node(n) + NODE_BUCKET) == b) return true;
    const p = load<u16>(node(n) + NODE_PARENT);
    if (p == NO_PARENT) return false;
    n = p;
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

  const es = esize(v6);
  let tail: u32 = 0;
  push(tail++, b1, NO_PARENT, 0);
  if (b2 != b1) push(tail++, b2, NO_PARENT, 0);
  for (let head: u32 = 0; head < tail; head++) {
    const b = <usize>load<u32>(node(head) + NODE_BUCKET);
    for (let s: u32 = 0; s < <u32>FLOW_WAYS; s++) {
      const resident = b + <usize>s * es;
      const rh = flowHash(resident, v6);
      const r1 = bucketAt(v6, rh);
      const other = r1 == b ? bucketAt(v6, altHash(rh)) : r1;
      if (other == b || onChain(head, other)) continue;
      const free = freeSlot(other, v6);
      if (free) {
        // the chain ends here: move each resident one step, from the free end back to a root
        claim(free, resident, v6);
        memory.copy(free, resident, es);
        count(C_FLOW_CUCKOO_MOVES);
        let hole = resident;
        let n = head;
        let p = load<u16>(node(n) + NODE_PARENT);
        while (p != NO_PARENT) {
          const from = <usize>load<u32>(node(p) + NODE_BUCKET) + <usize>load<u8>(node(n) + NODE_SLOT) * es;
          memory.copy(hole, from, es);
          count(C_FLOW_CUCKOO_MOVES);
          hole = from;
          n = p;
          p = load<u16>(node(n) + NODE_PARENT);
        }
        return place(hole, key, v6);
      }
      if (tail < <u32>CUCKOO_BFS_NODES) push(tail++, other, <u16>head, <u8>s);
    }
  }
  return 0;
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
  const nb = tbuckets(v6);
  const es = esize(v6);
  const vo = ksize(v6);
  let c = load<u32>(cursorAt);
  for (let i: u32 = 0; i < <u32>SWEEP_BUCKETS_PER_BATCH; i++) {
    if (c >= nb) c = 0;
    const b = tbase(v6) + <usize>c * es * FLOW_WAYS;
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
  store<u32>(cursorAt, c);
}
