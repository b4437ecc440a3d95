// Parsing: Ethernet, 802.1Q/QinQ, MPLS, ARP, IPv4, IPv6 with extension headers, TCP, UDP, ICMP.
// Every read is checked against the frame length first; a frame that does not hold what its headers
// promise is dropped with the reason. Results go to the packet's metadata slot, never to globals,
// so a whole batch can be parsed before any of it is looked up.
import {
  MAX_VLAN_TAGS, MAX_MPLS_LABELS, MAX_IPV6_EXT, C_IPV4_OPTIONS,
  DR_TRUNC_ETHERNET, DR_TRUNC_VLAN, DR_TOO_MANY_VLANS, DR_TRUNC_MPLS, DR_TOO_MANY_LABELS,
  DR_BAD_ARP, DR_TRUNC_IPV4, DR_BAD_IPV4_HEADER, DR_BAD_IPV4_CHECKSUM, DR_TRUNC_IPV6,
  DR_BAD_IPV6_HEADER, DR_BAD_IPV6_EXT, DR_TRUNC_L4, DR_BAD_TCP_HEADER, DR_BAD_UDP_LENGTH,
} from "./layout";
import {
  M_ADDR, M_LEN, M_PORT, M_VERDICT, M_L3, M_L4, M_FAMILY, M_PROTO, M_TCPF, M_PFLAGS, M_IPLEN,
  M_REASON, M_ETYPE, M_L2ET, M_KEY, V_LOOKUP, V_DROP, FAM_OTHER, FAM_IPV4, FAM_IPV6, FAM_ARP,
  PF_FRAGMENT, PF_OPTIONS, PF_MPLS, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP, IPPROTO_ICMPV6,
  ETH_IPV4, ETH_IPV6, ETH_ARP,
} from "./meta";
import { sum16, ipv4HeaderOk20 } from "./checksum";
import { count } from "./counters";

@inline function be16(p: usize): u32 {
  return <u32>bswap<u16>(load<u16>(p));
}

@inline function drop(m: usize, reason: u32): void {
  store<u8>(m + M_VERDICT, V_DROP);
  store<u8>(m + M_REASON, <u8>reason);
}

export function parse(m: usize, a: usize, len: u32, port: u32): void {
  store<u32>(m + M_ADDR, <u32>a);
  store<u16>(m + M_LEN, <u16>len);
  store<u8>(m + M_PORT, <u8>port);
  store<u8>(m + M_VERDICT, V_LOOKUP);
  store<u8>(m + M_FAMILY, FAM_OTHER);
  store<u8>(m + M_PFLAGS, 0);
  store<u8>(m + M_TCPF, 0);
  store<u8>(m + M_PROTO, 0);
  if (len < 14) return drop(m, DR_TRUNC_ETHERNET);
  let off: u32 = 14;
  let et = be16(a + 12);
  let tags: u32 = 0;
  while (et == 0x8100 || et == 0x88a8 || et == 0x9100) {
    if (tags == MAX_VLAN_TAGS) return drop(m, DR_TOO_MANY_VLANS);
    if (off + 4 > len) return drop(m, DR_TRUNC_VLAN);
    et = be16(a + off + 2);
    off += 4;
    tags++;
  }
  store<u16>(m + M_ETYPE, <u16>(off - 2));
  store<u16>(m + M_L2ET, <u16>(off - 2));
  if (et == 0x8847 || et == 0x8848) {
    store<u8>(m + M_PFLAGS, PF_MPLS);
    store<u16>(m + M_ETYPE, 0);
    let labels: u32 = 0;
    while (true) {
      if (off + 4 > len) return drop(m, DR_TRUNC_MPLS);
      const bos = load<u8>(a + off + 2) & 1;
      off += 4;
      labels++;
      if (bos) break;
      if (labels == MAX_MPLS_LABELS) return drop(m, DR_TOO_MANY_LABELS);
    }
    if (off >= len) return drop(m, DR_TRUNC_MPLS);
    const v = load<u8>(a + off) >> 4; // MPLS does not say what it carries: the IP version does
    et = v == 4 ? ETH_IPV4 : v == 6 ? ETH_IPV6 : 0;
  }
  store<u16>(m + M_L3, <u16>off);
  if (et == ETH_IPV4) return parseIPv4(m, a, off, len);
  if (et == ETH_IPV6) return parseIPv6(m, a, off, len);
  if (et == ETH_ARP) return parseArp(m, a, off, len);
}

function parseArp(m: usize, a: usize, off: u32, len: u32): void {
  if (off + 28 > len) return drop(m, DR_BAD_ARP);
  const p = a + off;
  // Ethernet / IPv4 ARP only: htype 1, ptype 0x0800, hlen 6, plen 4
  if (be16(p) != 1 || be16(p + 2) != 0x0800 || load<u8>(p + 4) != 6 || load<u8>(p + 5) != 4) {
    return drop(m, DR_BAD_ARP);
  }
  store<u8>(m + M_FAMILY, FAM_ARP);
  store<u8>(m + M_TCPF, <u8>be16(p + 6)); // opcode
  store<u32>(m + M_KEY, load<u32>(p + 14)); // sender IP
  store<u32>(m + M_KEY + 4, load<u32>(p + 24)); // target IP
}

function parseIPv4(m: usize, a: usize, off: u32, len: u32): void {
  if (off + 20 > len) return drop(m, DR_TRUNC_IPV4);
  const p = a + off;
  const vihl = <u32>load<u8>(p);
  const ihl = (vihl & 15) << 2;
  if ((vihl >> 4) != 4 || ihl < 20) return drop(m, DR_BAD_IPV4_HEADER);
  if (off + ihl > len) return drop(m, DR_TRUNC_IPV4);
  const tot = be16(p + 2);
  if (tot < ihl) return drop(m, DR_BAD_IPV4_HEADER);
  if (off + tot > len) return drop(m, DR_TRUNC_IPV4);
  if (ihl == 20 ? !ipv4HeaderOk20(p) : sum16(p, ihl, 0) != 0xffff) return drop(m, DR_BAD_IPV4_CHECKSUM);
  store<u8>(m + M_FAMILY, FAM_IPV4);
  store<u16>(m + M_IPLEN, <u16>tot);
  let pf = load<u8>(m + M_PFLAGS);
  if (ihl > 20) {
    pf |= PF_OPTIONS;
    count(C_IPV4_OPTIONS);
  }
  const proto = load<u8>(p + 9);
  store<u8>(m + M_PROTO, proto);
  const k = m + M_KEY;
  store<u32>(k, load<u32>(p + 12));
  store<u32>(k + 4, load<u32>(p + 16));
  store<u32>(k + 8, 0);
  store<u32>(k + 12, <u32>proto);
  if (be16(p + 6) & 0x3fff) { // more-fragments or an offset: ports are not in every piece
    store<u8>(m + M_PFLAGS, pf | PF_FRAGMENT);
    return;
  }
  store<u8>(m + M_PFLAGS, pf);
  parseL4(m, a, off + ihl, off + tot, proto, k + 8);
}

function parseIPv6(m: usize, a: usize, off: u32, len: u32): void {
  if (off + 40 > len) return drop(m, DR_TRUNC_IPV6);
  const p = a + off;
  if ((load<u8>(p) >> 4) != 6) return drop(m, DR_BAD_IPV6_HEADER);
  const plen = be16(p + 4);
  if (plen == 0) return drop(m, DR_BAD_IPV6_HEADER); // jumbograms: not on Ethernet
  const end = off + 40 + plen;
  if (end > len) return drop(m, DR_TRUNC_IPV6);
  let nh = <u32>load<u8>(p + 6);
  let cur = off + 40;
  let pf = load<u8>(m + M_PFLAGS);
  let n: u32 = 0;
  while (true) {
    if (nh == 0 || nh == 43 || nh == 60 || nh == 51) { // hop-by-hop, routing, dest. options, AH
      if (n == MAX_IPV6_EXT || cur + 8 > end) return drop(m, DR_BAD_IPV6_EXT);
      const hl = nh == 51 ? (<u32>load<u8>(a + cur + 1) + 2) << 2 : (<u32>load<u8>(a + cur + 1) + 1) << 3;
      nh = load<u8>(a + cur);
      cur += hl;
      if (cur > end) return drop(m, DR_BAD_IPV6_EXT);
      n++;
    } else if (nh == 44) { // fragment header: offset or more-fragments makes it a fragment
      if (n == MAX_IPV6_EXT || cur + 8 > end) return drop(m, DR_BAD_IPV6_EXT);
      if (be16(a + cur + 2) & 0xfff9) pf |= PF_FRAGMENT;
      nh = load<u8>(a + cur);
      cur += 8;
      n++;
    } else break;
  }
  store<u8>(m + M_FAMILY, FAM_IPV6);
  store<u16>(m + M_IPLEN, <u16>(40 + plen));
  store<u8>(m + M_PROTO, <u8>nh);
  store<u8>(m + M_PFLAGS, pf);
  const k = m + M_KEY;
  store<u64>(k, load<u64>(p + 8));
  store<u64>(k + 8, load<u64>(p + 16));
  store<u64>(k + 16, load<u64>(p + 24));
  store<u64>(k + 24, load<u64>(p + 32));
  store<u32>(k + 32, 0);
  store<u32>(k + 36, nh);
  if (pf & PF_FRAGMENT) return;
  parseL4(m, a, cur, end, <u8>nh, k + 32);
}

function parseL4(m: usize, a: usize, l4: u32, end: u32, proto: u8, ports: usize): void {
  store<u16>(m + M_L4, <u16>l4);
  const p = a + l4;
  if (proto == IPPROTO_TCP) {
    if (l4 + 20 > end) return drop(m, DR_TRUNC_L4);
    const doff = (<u32>load<u8>(p + 12) >> 4) << 2;
    if (doff < 20 || l4 + doff > end) return drop(m, DR_BAD_TCP_HEADER);
    store<u32>(ports, load<u32>(p));
    store<u8>(m + M_TCPF, load<u8>(p + 13));
  } else if (proto == IPPROTO_UDP) {
    if (l4 + 8 > end) return drop(m, DR_TRUNC_L4);
    const ulen = be16(p + 4);
    if (ulen < 8 || l4 + ulen > end) return drop(m, DR_BAD_UDP_LENGTH);
    store<u32>(ports, load<u32>(p));
  } else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
    if (l4 + 8 > end) return drop(m, DR_TRUNC_L4);
    store<u8>(m + M_TCPF, load<u8>(p)); // the ICMP type
  }
}
