// Reading the few frames the control plane handles (ARP, neighbour discovery, pings): where the
// headers are, with every length checked. A frame that does not parse yields undefined.
import { formatIPv4, formatIPv6 } from "./frame.js";

export interface L2View {
  /** The VLAN tags (TCIs, outermost first), kept on replies. */
  vlans: number[];
  etherType: number;
  /** Offset of the L3 header. */
  l3: number;
  srcMac: Uint8Array;
}

export function l2(f: Uint8Array): L2View | undefined {
  if (f.length < 14) return undefined;
  let off = 12;
  const vlans: number[] = [];
  let et = (f[off] << 8) | f[off + 1];
  while ((et === 0x8100 || et === 0x88a8) && vlans.length < 2) {
    if (f.length < off + 6) return undefined;
    vlans.push((f[off + 2] << 8) | f[off + 3]);
    off += 4;
    et = (f[off] << 8) | f[off + 1];
  }
  return { vlans, etherType: et, l3: off + 2, srcMac: f.slice(6, 12) };
}

export interface ArpView {
  op: number;
  sha: Uint8Array;
  spa: string;
  tha: Uint8Array;
  tpa: string;
}

export function arpOf(f: Uint8Array, v: L2View): ArpView | undefined {
  const p = v.l3;
  if (v.etherType !== 0x0806 || f.length < p + 28) return undefined;
  if (f[p] !== 0 || f[p + 1] !== 1 || f[p + 2] !== 8 || f[p + 3] !== 0 || f[p + 4] !== 6 || f[p + 5] !== 4) return undefined;
  return {
    op: (f[p + 6] << 8) | f[p + 7],
    sha: f.slice(p + 8, p + 14),
    spa: formatIPv4(f, p + 14),
    tha: f.slice(p + 18, p + 24),
    tpa: formatIPv4(f, p + 24),
  };
}

export interface IpView {
  family: 4 | 6;
  src: string;
  dst: string;
  protocol: number;
  /** Offset and length of the payload after the IP header (IPv6: after extension headers we skip none). */
  l4: number;
  l4len: number;
  hopLimit: number;
}

export function ipOf(f: Uint8Array, v: L2View): IpView | undefined {
  const p = v.l3;
  if (v.etherType === 0x0800) {
    if (f.length < p + 20 || f[p] >> 4 !== 4) return undefined;
    const ihl = (f[p] & 15) * 4;
    const tot = (f[p + 2] << 8) | f[p + 3];
    if (ihl < 20 || tot < ihl || f.length < p + tot) return undefined;
    return { family: 4, src: formatIPv4(f, p + 12), dst: formatIPv4(f, p + 16), protocol: f[p + 9], l4: p + ihl, l4len: tot - ihl, hopLimit: f[p + 8] };
  }
  if (v.etherType === 0x86dd) {
    if (f.length < p + 40 || f[p] >> 4 !== 6) return undefined;
    const plen = (f[p + 4] << 8) | f[p + 5];
    if (f.length < p + 40 + plen) return undefined;
    return { family: 6, src: formatIPv6(f, p + 8), dst: formatIPv6(f, p + 24), protocol: f[p + 6], l4: p + 40, l4len: plen, hopLimit: f[p + 7] };
  }
  return undefined;
}

/** The link-layer address option (type 1 source, 2 target) of an ND message's options. */
export function ndLinkAddress(f: Uint8Array, start: number, end: number, type: 1 | 2): Uint8Array | undefined {
  for (let o = start; o + 8 <= end;) {
    const len = f[o + 1] * 8;
    if (len === 0) return undefined;
    if (f[o] === type && len >= 8) return f.slice(o + 2, o + 8);
    o += len;
  }
  return undefined;
}
