// Replies the engine builds in place, in the frame's own buffer (no allocation): ICMP
// "fragmentation needed" / ICMPv6 "packet too big" for packets too large to encapsulate, and a TCP
// reset for flows whose backend is gone. The reply leaves by the port the packet came in on,
// addressed to whoever sent it, from the address it was sent to (the VIP).
import {
  PORT_MAC, ICMP4_QUOTE_MAX, ICMP6_QUOTE_MAX, C_ICMP_SENT, C_TCP_RST_SENT, PORT_SIZE, SCR_SWAP,
} from "./layout";
import { M_ADDR, M_L3, M_L4, M_IPLEN, M_PORT, M_TCPF, TCP_ACK, TCP_RST, TCP_SYN, TCP_FIN } from "./meta";
import { ports, scratch } from "./state";
import { sum16, pseudoSum } from "./checksum";
import { toTx } from "./rings";
import { count } from "./counters";

/** Sends the frame back where it came from: destination MAC = its source, source = our port's MAC. */
function turnAround(a: usize, port: u32): void {
  const pm = ports + <usize>port * PORT_SIZE + PORT_MAC;
  store<u32>(a, load<u32>(a + 6));
  store<u16>(a + 4, load<u16>(a + 10));
  store<u32>(a + 6, load<u32>(pm));
  store<u16>(a + 10, load<u16>(pm + 4));
}

export function tooBig(m: usize, v6: bool, mtu: u32): void {
  const a = <usize>load<u32>(m + M_ADDR);
  const l2 = <u32>load<u16>(m + M_L3);
  const ip = a + l2;
  const iplen = <u32>load<u16>(m + M_IPLEN);
  const port = <u32>load<u8>(m + M_PORT);
  turnAround(a, port);
  let len: u32;
  if (!v6) {
    const q = min(iplen, ICMP4_QUOTE_MAX);
    memory.copy(ip + 28, ip, q); // the quote: the offending header and what follows it
    const qh = ip + 28;
    store<u8>(ip, 0x45);
    store<u8>(ip + 1, 0);
    store<u16>(ip + 2, bswap<u16>(<u16>(28 + q)));
    store<u32>(ip + 4, 0);
    store<u8>(ip + 8, 64);
    store<u8>(ip + 9, 1);
    store<u16>(ip + 10, 0);
    store<u32>(ip + 12, load<u32>(qh + 16));
    store<u32>(ip + 16, load<u32>(qh + 12));
    store<u16>(ip + 10, <u16>(~sum16(ip, 20, 0) & 0xffff));
    const ic = ip + 20;
    store<u8>(ic, 3); // destination unreachable
    store<u8>(ic + 1, 4); // fragmentation needed and DF set
    store<u16>(ic + 2, 0);
    store<u16>(ic + 4, 0);
    store<u16>(ic + 6, bswap<u16>(<u16>mtu));
    store<u16>(ic + 2, <u16>(~sum16(ic, 8 + q, 0) & 0xffff));
    len = l2 + 28 + q;
  } else {
    const q = min(iplen, ICMP6_QUOTE_MAX);
    memory.copy(ip + 48, ip, q);
    const qh = ip + 48;
    store<u32>(ip, bswap<u32>(0x60000000));
    store<u16>(ip + 4, bswap<u16>(<u16>(8 + q)));
    store<u8>(ip + 6, 58);
    store<u8>(ip + 7, 64);
    memory.copy(ip + 8, qh + 24, 16);
    memory.copy(ip + 24, qh + 8, 16);
    const ic = ip + 40;
    store<u8>(ic, 2); // packet too big
    store<u8>(ic + 1, 0);
    store<u16>(ic + 2, 0);
    store<u32>(ic + 4, bswap<u32>(mtu));
    const c = sum16(ic, 8 + q, pseudoSum(ip + 8, ip + 24, 16, 58, 8 + q));
    store<u16>(ic + 2, <u16>(~c & 0xffff));
    len = l2 + 48 + q;
  }
  count(C_ICMP_SENT);
  toTx(m, a, len, port);
}

/**
 * Answers a TCP segment with a reset (RFC 9293 3.10.7.1): if it carried an ACK the reset takes
 * that sequence number, otherwise it acknowledges what the segment occupied.
 */
export function tcpReset(m: usize, v6: bool): void {
  const a = <usize>load<u32>(m + M_ADDR);
  const l2 = <u32>load<u16>(m + M_L3);
  const ip = a + l2;
  const l4 = a + load<u16>(m + M_L4);
  const port = <u32>load<u8>(m + M_PORT);
  const flags = load<u8>(m + M_TCPF);
  const iplen = <u32>load<u16>(m + M_IPLEN);
  const hl = l4 - ip;
  const doff = (<u32>load<u8>(l4 + 12) >> 4) << 2;
  let seglen = iplen - <u32>hl - doff;
  if (flags & TCP_SYN) seglen++;
  if (flags & TCP_FIN) seglen++;
  const seq = bswap<u32>(load<u32>(l4 + 4));
  const ack = load<u32>(l4 + 8);
  const sp = load<u16>(l4);
  const dp = load<u16>(l4 + 2);
  turnAround(a, port);
  // a fresh IP header without options or extension headers, then a bare 20-byte TCP header
  const ipl: u32 = v6 ? 40 : 20;
  const t = ip + ipl;
  if (v6) {
    const park = scratch + SCR_SWAP; // the addresses, while they change places
    memory.copy(park, ip + 8, 32);
    memory.copy(ip + 8, park + 16, 16);
    memory.copy(ip + 24, park, 16);
    store<u32>(ip, bswap<u32>(0x60000000));
    store<u16>(ip + 4, bswap<u16>(20));
    store<u8>(ip + 6, 6);
    store<u8>(ip + 7, 64);
  } else {
    const s = load<u32>(ip + 12);
    const d = load<u32>(ip + 16);
    store<u8>(ip, 0x45);
    store<u8>(ip + 1, 0);
    store<u16>(ip + 2, bswap<u16>(40));
    store<u32>(ip + 4, 0);
    store<u8>(ip + 8, 64);
    store<u8>(ip + 9, 6);
    store<u16>(ip + 10, 0);
    store<u32>(ip + 12, d);
    store<u32>(ip + 16, s);
    store<u16>(ip + 10, <u16>(~sum16(ip, 20, 0) & 0xffff));
  }
  store<u16>(t, dp);
  store<u16>(t + 2, sp);
  if (flags & TCP_ACK) {
    store<u32>(t + 4, ack);
    store<u32>(t + 8, 0);
    store<u8>(t + 13, TCP_RST);
  } else {
    store<u32>(t + 4, 0);
    store<u32>(t + 8, bswap<u32>(seq + seglen));
    store<u8>(t + 13, TCP_RST | TCP_ACK);
  }
  store<u8>(t + 12, 0x50);
  store<u32>(t + 14, 0); // window 0, checksum 0 (filled below)
  store<u16>(t + 18, 0);
  const c = v6 ? pseudoSum(ip + 8, ip + 24, 16, 6, 20) : pseudoSum(ip + 12, ip + 16, 4, 6, 20);
  store<u16>(t + 16, <u16>(~sum16(t, 20, c) & 0xffff));
  count(C_TCP_RST_SENT);
  toTx(m, a, l2 + ipl + 20, port);
}

