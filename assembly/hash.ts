// Flow hashing: murmur3's mixing over 32-bit key words. Two uses with different seeds: the flow
// table (per-boot random seed, so outsiders cannot aim collisions at a bucket) and Maglev
// selection (a fixed seed, so every engine and every appliance picks the same backend).

@inline function mixWord(h: u32, k: u32): u32 {
  k *= 0xcc9e2d51;
  k = rotl<u32>(k, 15);
  k *= 0x1b873593;
  h ^= k;
  h = rotl<u32>(h, 13);
  return h * 5 + 0xe6546b64;
}

@inline export function finish(h: u32): u32 {
  h ^= h >>> 16;
  h *= 0x85ebca6b;
  h ^= h >>> 13;
  h *= 0xc2b2ae35;
  return h ^ (h >>> 16);
}

/** Hash of n 32-bit words at p. */
export function hashWords(p: usize, n: u32, seed: u32): u32 {
  let h = seed;
  for (let i: u32 = 0; i < n; i++) h = mixWord(h, load<u32>(p + (<usize>i << 2)));
  return finish(h ^ (n << 2));
}

/** The same as hashWords(p, 4, seed), unrolled: an IPv4 flow key, hashed for every packet. */
@inline export function hash4(p: usize, seed: u32): u32 {
  let h = mixWord(seed, load<u32>(p));
  h = mixWord(h, load<u32>(p + 4));
  h = mixWord(h, load<u32>(p + 8));
  h = mixWord(h, load<u32>(p + 12));
  return finish(h ^ 16);
}

/** The second bucket choice of a key: independent enough of the first, cheap to recompute. */
@inline export function altHash(h: u32): u32 {
  return finish(h ^ 0x9e3779b9);
}
