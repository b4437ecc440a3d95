// Internet checksums on words loaded in memory (little-endian) order. One's-complement sums do not
// care about byte order as long as every word is taken the same way, so fields are never swapped.

@inline export function fold(s: u32): u32 {
  s = (s & 0xffff) + (s >>> 16);
  return (s & 0xffff) + (s >>> 16);
}

/** One's-complement sum of len bytes at p (not complemented), added to init. */
export function sum16(p: usize, len: u32, init: u32): u32 {
  let s: u64 = <u64>init;
  let i: u32 = 0;
  for (; i + 8 <= len; i += 8) {
    const w = load<u64>(p + i);
    s += (w & 0xffffffff) + (w >>> 32);
  }
  for (; i + 2 <= len; i += 2) s += <u64>load<u16>(p + i);
  if (i < len) s += <u64>load<u8>(p + i);
  s = (s & 0xffffffff) + (s >>> 32);
  s = (s & 0xffffffff) + (s >>> 32);
  return fold(<u32>s);
}

/** Is the 20-byte IPv4 header at p (no options) intact? Unrolled: every packet asks. */
@inline export function ipv4HeaderOk20(p: usize): bool {
  let s: u64 = load<u64>(p);
  let t: u64 = load<u64>(p + 8);
  const u: u64 = <u64>load<u32>(p + 16);
  s = (s & 0xffffffff) + (s >>> 32) + (t & 0xffffffff) + (t >>> 32) + u;
  s = (s & 0xffffffff) + (s >>> 32);
  return fold(<u32>s + <u32>(s >>> 32)) == 0xffff;
}

/** RFC 1624 eqn. 3: checksum c after a 16-bit field changed from old to nw. */
@inline export function update16(c: u32, old: u32, nw: u32): u32 {
  return ~fold((~c & 0xffff) + (~old & 0xffff) + (nw & 0xffff)) & 0xffff;
}

/** The same for a 32-bit field (an IPv4 address, or two ports at once). */
@inline export function update32(c: u32, old: u32, nw: u32): u32 {
  const s = (~c & 0xffff) + (~old & 0xffff) + ((~old) >>> 16) + (nw & 0xffff) + (nw >>> 16);
  return ~fold(s) & 0xffff;
}

/** The same for a 128-bit field (an IPv6 address): 16 bytes at oldp replaced by 16 at newp. */
export function update128(c: u32, oldp: usize, newp: usize): u32 {
  let s: u32 = ~c & 0xffff;
  for (let i: usize = 0; i < 16; i += 2) {
    s += (~(<u32>load<u16>(oldp + i)) & 0xffff) + <u32>load<u16>(newp + i);
  }
  return ~fold(s) & 0xffff;
}

/** Pseudo-header sum for TCP/UDP/ICMPv6: addresses at src/dst (alen bytes each). */
export function pseudoSum(src: usize, dst: usize, alen: u32, proto: u32, len: u32): u32 {
  let s = sum16(src, alen, 0) + sum16(dst, alen, 0);
  s += proto << 8; // the word [0, proto] loaded little-endian
  s += bswap<u16>(<u16>(len & 0xffff)) + bswap<u16>(<u16>(len >>> 16));
  return fold(s);
}
