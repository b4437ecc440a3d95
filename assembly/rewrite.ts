// Header rewrites for the forwarding modes: DSR (destination MAC only), NAT (address and port with
// incremental checksums, both directions), and tunnels (IP-in-IP, GUE). Each ends the frame on a
// tx ring, or drops it with a reason.
import {
  BE_MAC, BE_ADDR, BE_FAMILY, PORT_SIZE, PORT_MAC, PORT_GW_MAC, PORT_MTU, PORT_FLAGS,
  PORTF_PRESENT, PORTF_GW_KNOWN, SVC_VIP, SVC_PORT, SVC_ENCAP, SVC_GUE_PORT, SVC_TUN_SRC4,
  SVC_TUN_SRC6, ENCAP_GUE, DR_TTL_EXCEEDED, DR_NO_NEIGHBOR, DR_MTU_EXCEEDED, DR_UNSUPPORTED,
  DR_NO_HEADROOM, DR_BAD_PORT, MAX_PORTS,
} from "./layout";
import {
  M_ADDR, M_LEN, M_L3, M_L4, M_PROTO, M_PFLAGS, M_IPLEN, M_ETYPE, M_HASH, PF_MPLS,
  IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMPV6, IPPROTO_IPIP, IPPROTO_IPV6,
} from "./meta";
import { ports, bufBase, bufSize } from "./state";
import { update16, update32, update128, sum16, pseudoSum } from "./checksum";
import { toTx, toDrop } from "./rings";
import { tooBig } from "./icmp";

@inline export function portRec(p: u32): usize {
  return ports + <usize>p * PORT_SIZE;
}

/** Is board port p configured? (p comes from config or a descriptor: checked, never trusted.) */
@inline export function portUp(p: u32): bool {
  return p < <u32>MAX_PORTS && (load<u8>(portRec(p) + PORT_FLAGS) & PORTF_PRESENT) != 0;
}

/** Destination MAC from dmac, source MAC = the egress port's own. */
@inline function setMacs(a: usize, dmac: usize, port: u32): void {
  const pm = portRec(port) + PORT_MAC;
  store<u32>(a, load<u32>(dmac));
  store<u16>(a + 4, load<u16>(dmac + 4));
  store<u32>(a + 6, load<u32>(pm));
  store<u16>(a + 10, load<u16>(pm + 4));
}

export function dsr(m: usize, be: usize, port: u32): void {
  const a = <usize>load<u32>(m + M_ADDR);
  setMacs(a, be + BE_MAC, port);
  toTx(m, a, load<u16>(m + M_LEN), port);
}

/** Transport checksum offset for protocols whose checksum covers the addresses, or 0. */
@inline function l4CsumAt(proto: u8): usize {
  return proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : proto == IPPROTO_ICMPV6 ? 2 : 0;
}

/** Decrements TTL / hop limit; false when it has run out. */
function decTtl(l3: usize, v6: bool): bool {
  if (v6) {
    const hl = load<u8>(l3 + 7);
    if (hl <= 1) return false;
    store<u8>(l3 + 7, hl - 1);
    return true;
  }
  const ttl = load<u8>(l3 + 8);
  if (ttl <= 1) return false;
  const old = <u32>load<u16>(l3 + 8);
  store<u8>(l3 + 8, ttl - 1);
  store<u16>(l3 + 10, <u16>update16(load<u16>(l3 + 10), old, load<u16>(l3 + 8)));
  return true;
}

/**
 * Rewrites one address (src when which = 0, dst when 1) to the 4 or 16 bytes at na, and one port
 * to np (raw; same side), fixing the IPv4 header and transport checksums incrementally.
 */
function translate(m: usize, v6: bool, which: u32, na: usize, np: u32): void {
  const a = <usize>load<u32>(m + M_ADDR);
  const l3 = a + load<u16>(m + M_L3);
  const l4 = a + load<u16>(m + M_L4);
  const proto = load<u8>(m + M_PROTO);
  const co = l4CsumAt(proto);
  let c: u32 = co ? load<u16>(l4 + co) : 0;
  const udpNone = proto == IPPROTO_UDP && !v6 && c == 0; // IPv4 UDP without a checksum stays so
  if (v6) {
    const at = l3 + 8 + <usize>which * 16;
    if (co) c = update128(c, at, na);
    memory.copy(at, na, 16);
  } else {
    const at = l3 + 12 + <usize>which * 4;
    const old = load<u32>(at);
    const nw = load<u32>(na);
    store<u16>(l3 + 10, <u16>update32(load<u16>(l3 + 10), old, nw));
    if (co) c = update32(c, old, nw);
    store<u32>(at, nw);
  }
  if (proto == IPPROTO_TCP || proto == IPPROTO_UDP) {
    const pa = l4 + <usize>which * 2;
    const op = <u32>load<u16>(pa);
    if (op != np) {
      c = update16(c, op, np);
      store<u16>(pa, <u16>np);
    }
  }
  if (co && !udpNone) {
    if (proto == IPPROTO_UDP && c == 0) c = 0xffff; // UDP says "no checksum" with zero
    store<u16>(l4 + co, <u16>c);
  }
}

/** NAT toward the server: destination becomes the backend (address, port). */
export function natForward(m: usize, be: usize, port: u32, v6: bool, np: u32): void {
  const a = <usize>load<u32>(m + M_ADDR);
  if (!decTtl(a + load<u16>(m + M_L3), v6)) return toDrop(m, DR_TTL_EXCEEDED);
  translate(m, v6, 1, be + BE_ADDR, np);
  setMacs(a, be + BE_MAC, port);
  toTx(m, a, load<u16>(m + M_LEN), port);
}

/** NAT back toward the client: source becomes the VIP and service port, out the flow's ingress port. */
export function natReturn(m: usize, svc: usize, port: u32, v6: bool): void {
  if (!portUp(port)) return toDrop(m, DR_BAD_PORT);
  const pr = portRec(port);
  if (!(load<u8>(pr + PORT_FLAGS) & PORTF_GW_KNOWN)) return toDrop(m, DR_NO_NEIGHBOR);
  const a = <usize>load<u32>(m + M_ADDR);
  if (!decTtl(a + load<u16>(m + M_L3), v6)) return toDrop(m, DR_TTL_EXCEEDED);
  let sp = <u32>load<u16>(svc + SVC_PORT);
  if (sp == 0) sp = load<u16>(a + load<u16>(m + M_L4)); // an every-port service kept the port
  translate(m, v6, 0, svc + SVC_VIP, sp);
  setMacs(a, pr + PORT_GW_MAC, port);
  toTx(m, a, load<u16>(m + M_LEN), port);
}

/** Encapsulates the IP packet toward the backend: IP-in-IP, or GUE (variant 0) over UDP. */
export function tunnel(m: usize, svc: usize, be: usize, port: u32, v6in: bool): void {
  const outer6 = load<u8>(be + BE_FAMILY) == 6;
  const pflags = load<u8>(m + M_PFLAGS);
  // an MPLS label says nothing of what it carries; we cannot change the family under it
  if ((pflags & PF_MPLS) && outer6 != v6in) return toDrop(m, DR_UNSUPPORTED);
  const gue = load<u8>(svc + SVC_ENCAP) == ENCAP_GUE;
  const ohl: u32 = outer6 ? 40 : 20;
  const over: u32 = ohl + (gue ? 12 : 0);
  const iplen = <u32>load<u16>(m + M_IPLEN);
  const a = <usize>load<u32>(m + M_ADDR);
  const l2 = <u32>load<u16>(m + M_L3);
  const inner = a + l2;
  const mtu = <u32>load<u16>(portRec(port) + PORT_MTU);
  if (iplen + over > mtu) {
    const df = v6in || (load<u8>(inner + 6) & 0x40) != 0;
    if (df) return tooBig(m, v6in, mtu - over);
    return toDrop(m, DR_MTU_EXCEEDED);
  }
  const slot = bufBase + ((a - bufBase) / bufSize) * bufSize;
  if (a - slot < <usize>over) return toDrop(m, DR_NO_HEADROOM);
  const na = a - over;
  memory.copy(na, a, l2);
  const et = load<u16>(m + M_ETYPE);
  if (et) store<u16>(na + et, bswap<u16>(outer6 ? 0x86dd : 0x0800));
  const o = na + l2;
  const innerProto: u8 = v6in ? IPPROTO_IPV6 : IPPROTO_IPIP;
  const tc: u32 = v6in ? (bswap<u32>(load<u32>(inner)) >> 20) & 0xff : load<u8>(inner + 1);
  const h = load<u32>(m + M_HASH);
  const tot = iplen + over;
  if (outer6) {
    store<u32>(o, bswap<u32>(0x60000000 | (tc << 20) | (h & 0xfffff)));
    store<u16>(o + 4, bswap<u16>(<u16>(tot - 40)));
    store<u8>(o + 6, gue ? IPPROTO_UDP : innerProto);
    store<u8>(o + 7, 64);
    memory.copy(o + 8, svc + SVC_TUN_SRC6, 16);
    memory.copy(o + 24, be + BE_ADDR, 16);
  } else {
    store<u8>(o, 0x45);
    store<u8>(o + 1, <u8>tc);
    store<u16>(o + 2, bswap<u16>(<u16>tot));
    store<u16>(o + 4, 0);
    store<u16>(o + 6, bswap<u16>(0x4000)); // DF: the path must tell us, not fragment silently
    store<u8>(o + 8, 64);
    store<u8>(o + 9, gue ? IPPROTO_UDP : innerProto);
    store<u16>(o + 10, 0);
    store<u32>(o + 12, load<u32>(svc + SVC_TUN_SRC4));
    store<u32>(o + 16, load<u32>(be + BE_ADDR));
    store<u16>(o + 10, <u16>(~sum16(o, 20, 0) & 0xffff));
  }
  if (gue) {
    const u = o + ohl;
    store<u16>(u, bswap<u16>(<u16>(0xc000 | (h & 0x3fff)))); // source port: entropy for ECMP / RSS
    store<u16>(u + 2, load<u16>(svc + SVC_GUE_PORT));
    store<u16>(u + 4, bswap<u16>(<u16>(iplen + 12)));
    store<u16>(u + 6, 0);
    store<u32>(u + 8, <u32>innerProto << 8); // GUE v0: version 0, no options, proto, no flags
    if (outer6) { // IPv6 requires a UDP checksum
      let c = pseudoSum(o + 8, o + 24, 16, IPPROTO_UDP, iplen + 12);
      c = ~sum16(u, iplen + 12, c) & 0xffff;
      store<u16>(u + 6, <u16>(c == 0 ? 0xffff : c));
    }
  }
  setMacs(na, be + BE_MAC, port);
  toTx(m, na, l2 + tot, port);
}

