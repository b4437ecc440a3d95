// Builds Ethernet frames byte by byte, with correct lengths and checksums: test inputs, fixtures,
// benchmark traffic, and the few frames the appliance originates itself (ARP replies).
// This is control-plane code: each builder allocates a fresh Uint8Array and throws on a bad
// argument, because here a bad argument is a programming mistake, never a packet from the wire.
// Builders compose from the inside out: ethernet({ payload: ipv4({ payload: tcp({...}) }) }).

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const ETHERTYPE_IPV6 = 0x86dd;
/** Customer VLAN tag (802.1Q), and the TPID of the only tag in a single-tagged frame. */
export const ETHERTYPE_VLAN = 0x8100;
/** Service VLAN tag (802.1ad): the outer tag of a QinQ frame. */
export const ETHERTYPE_QINQ = 0x88a8;
export const ETHERTYPE_MPLS = 0x8847;

export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_ICMP = 1;
export const IPPROTO_IPIP = 4;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_IPV6 = 41;
export const IPPROTO_ROUTING = 43;
export const IPPROTO_FRAGMENT = 44;
export const IPPROTO_GRE = 47;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_NONE = 59;
export const IPPROTO_DSTOPTS = 60;

// TCP flag bits, as in byte 13 of the TCP header.
export const FIN = 0x01;
export const SYN = 0x02;
export const RST = 0x04;
export const PSH = 0x08;
export const ACK = 0x10;
export const URG = 0x20;
export const ECE = 0x40;
export const CWR = 0x80;

export const ARP_REQUEST = 1;
export const ARP_REPLY = 2;

const ETHERNET_HEADER_BYTES = 14;
/** Shortest Ethernet frame without its FCS; shorter frames are padded on the wire. */
const ETHERNET_MIN_FRAME_BYTES = 60;
const IPV4_HEADER_BYTES = 20;
const IPV4_MAX_OPTION_BYTES = 40;
const IPV6_HEADER_BYTES = 40;
const TCP_HEADER_BYTES = 20;
const TCP_MAX_OPTION_BYTES = 40;
const UDP_HEADER_BYTES = 8;
const ICMP_HEADER_BYTES = 8;
const MPLS_DEFAULT_TTL = 64;
const IPV6_FRAGMENT_BODY_BYTES = 6;
/** RFC 4727 experimental routing type: with segments left 0 every node skips it. */
const ROUTING_TYPE_EXPERIMENT = 253;

// ---------------------------------------------------------------------------------------------
// Addresses

export type IPFamily = 4 | 6;

export interface IPAddress {
  family: IPFamily;
  bytes: Uint8Array;
}

/** "02:00:00:00:00:01" (or with "-") to 6 bytes. */
export function parseMac(s: string): Uint8Array {
  const groups = s.split(/[:-]/);
  if (groups.length !== 6 || !groups.every((g) => /^[0-9a-fA-F]{2}$/.test(g))) {
    throw new Error(`invalid MAC address "${s}"`);
  }
  return Uint8Array.from(groups, (g) => parseInt(g, 16));
}

export function formatMac(b: Uint8Array, off = 0): string {
  return Array.from(b.subarray(off, off + 6), (x) => x.toString(16).padStart(2, "0")).join(":");
}

/** Dotted quad to 4 bytes. Leading zeros are refused: some tools read them as octal. */
export function parseIPv4(s: string): Uint8Array {
  const bytes = tryParseIPv4(s);
  if (!bytes) throw new Error(`invalid IPv4 address "${s}"`);
  return bytes;
}

export function formatIPv4(b: Uint8Array, off = 0): string {
  return Array.from(b.subarray(off, off + 4)).join(".");
}

/** Any RFC 4291 text form ("::" compression, trailing dotted quad) to 16 bytes. No zone ids. */
export function parseIPv6(s: string): Uint8Array {
  const invalid = () => new Error(`invalid IPv6 address "${s}"`);
  const out = new Uint8Array(16);
  let text = s;

  // A trailing dotted quad fills the last 32 bits; stand two zero groups in for it while parsing.
  const lastColon = text.lastIndexOf(":");
  if (lastColon >= 0 && text.includes(".", lastColon)) {
    const v4 = tryParseIPv4(text.slice(lastColon + 1));
    if (!v4) throw invalid();
    out.set(v4, 12);
    text = text.slice(0, lastColon + 1) + "0:0";
  }

  const halves = text.split("::");
  if (halves.length > 2) throw invalid();
  const groupsOf = (part: string) => (part === "" ? [] : part.split(":"));
  const head = groupsOf(halves[0]);
  const tail = halves.length === 2 ? groupsOf(halves[1]) : [];
  const compressed = halves.length === 2;
  if (compressed ? head.length + tail.length > 7 : head.length !== 8) throw invalid();
  if (![...head, ...tail].every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) throw invalid();

  const put = (group: string, index: number) => {
    const v = parseInt(group, 16);
    // Keep the dotted quad already written there; its stand-in groups are zero.
    if (index >= 6 && v === 0) return;
    out[index * 2] = v >> 8;
    out[index * 2 + 1] = v & 0xff;
  };
  head.forEach((g, i) => put(g, i));
  tail.forEach((g, i) => put(g, 8 - tail.length + i));
  return out;
}

/** RFC 5952 canonical text: lower case, longest zero run (two groups or more) as "::". */
export function formatIPv6(b: Uint8Array, off = 0): string {
  const bytes = b.subarray(off, off + 16);
  const groups = Array.from({ length: 8 }, (_, i) => (bytes[i * 2] << 8) | bytes[i * 2 + 1]);

  // IPv4-mapped addresses keep the dotted quad (RFC 5952 section 5).
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) {
    return `::ffff:${formatIPv4(bytes, 12)}`;
  }

  let bestStart = -1;
  let bestLength = 1; // a single zero group is never compressed
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const text = (gs: number[]) => gs.map((g) => g.toString(16)).join(":");
  if (bestStart < 0) return text(groups);
  return `${text(groups.slice(0, bestStart))}::${text(groups.slice(bestStart + bestLength))}`;
}

/** An IPv4 or IPv6 address string; the family follows from the presence of a colon. */
export function parseIP(s: string): IPAddress {
  return s.includes(":") ? { family: 6, bytes: parseIPv6(s) } : { family: 4, bytes: parseIPv4(s) };
}

function tryParseIPv4(s: string): Uint8Array | undefined {
  const parts = s.split(".");
  if (parts.length !== 4 || !parts.every((p) => /^(0|[1-9][0-9]{0,2})$/.test(p))) return undefined;
  const bytes = parts.map(Number);
  return bytes.every((x) => x <= 255) ? Uint8Array.from(bytes) : undefined;
}

// ---------------------------------------------------------------------------------------------
// Checksums

/**
 * RFC 1071 Internet checksum of `bytes`, ready to store in a header. `initial` is an
 * uncomplemented partial sum to start from, such as pseudoHeaderSum().
 */
export function internetChecksum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  const even = bytes.length & ~1;
  for (let i = 0; i < even; i += 2) sum += (bytes[i] << 8) | bytes[i + 1];
  if (bytes.length & 1) sum += bytes[even] << 8;
  return ~fold(sum) & 0xffff;
}

/**
 * Uncomplemented sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793 for IPv4, RFC 8200 section 8.1
 * for IPv6). Both layouts add up to the same words: the addresses, the protocol, the length.
 */
export function pseudoHeaderSum(
  src: string | Uint8Array,
  dst: string | Uint8Array,
  protocol: number,
  length: number,
): number {
  const s = typeof src === "string" ? parseIP(src).bytes : src;
  const d = typeof dst === "string" ? parseIP(dst).bytes : dst;
  if (s.length !== d.length || (s.length !== 4 && s.length !== 16)) {
    throw new Error(`pseudo-header addresses must both be IPv4 or both IPv6 (got ${s.length} and ${d.length} bytes)`);
  }
  let sum = protocol + Math.floor(length / 0x10000) + (length & 0xffff);
  for (let i = 0; i < s.length; i += 2) sum += ((s[i] << 8) | s[i + 1]) + ((d[i] << 8) | d[i + 1]);
  return fold(sum);
}

function fold(sum: number): number {
  // Division, not >>>, so sums past 2^32 (huge inputs) still fold correctly.
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

// ---------------------------------------------------------------------------------------------
// Layer 2

export interface MplsEntry {
  label: number;
  /** Traffic class (the former EXP bits), 0..7. */
  tc?: number;
  ttl?: number;
}

export interface EthernetOptions {
  dst: string;
  src: string;
  /** 802.1Q tag control information (see tci()), outermost first. */
  vlans?: number[];
  /** TPID of each tag, outermost first; default 0x8100 for one tag, 0x88a8 then 0x8100 for QinQ. */
  vlanTpids?: number[];
  /** Label stack, outermost first; makes the frame MPLS unicast (0x8847), ignoring etherType. */
  mpls?: MplsEntry[];
  etherType?: number;
  payload: Uint8Array;
  /** Pad with zeros to the 60-byte Ethernet minimum, as a NIC does on transmit. Default false. */
  pad?: boolean;
}

/** 802.1Q tag control information: priority code point, drop eligible indicator, VLAN id. */
export function tci(vid: number, pcp = 0, dei = 0): number {
  checkUint("VLAN id", vid, 12);
  checkUint("VLAN priority", pcp, 3);
  checkUint("VLAN DEI", dei, 1);
  return (pcp << 13) | (dei << 12) | vid;
}

export function ethernet(o: EthernetOptions): Uint8Array {
  const vlans = o.vlans ?? [];
  const tpids = o.vlanTpids ?? defaultTpids(vlans.length);
  if (tpids.length !== vlans.length) {
    throw new Error(`${vlans.length} VLAN tags but ${tpids.length} TPIDs`);
  }
  const mpls = o.mpls ?? [];
  let etherType: number;
  if (mpls.length > 0) etherType = ETHERTYPE_MPLS;
  else if (o.etherType === undefined) throw new Error("ethernet(): etherType is required without an MPLS stack");
  else etherType = o.etherType;
  checkUint("etherType", etherType, 16);

  const headerLength = ETHERNET_HEADER_BYTES + 4 * vlans.length + 4 * mpls.length;
  const length = headerLength + o.payload.length;
  const out = new Uint8Array(o.pad ? Math.max(length, ETHERNET_MIN_FRAME_BYTES) : length);
  out.set(parseMac(o.dst), 0);
  out.set(parseMac(o.src), 6);
  let off = 12;
  vlans.forEach((tag, i) => {
    checkUint("VLAN TPID", tpids[i], 16);
    checkUint("VLAN TCI", tag, 16);
    put16(out, off, tpids[i]);
    put16(out, off + 2, tag);
    off += 4;
  });
  put16(out, off, etherType);
  off += 2;
  mpls.forEach((entry, i) => {
    const tc = entry.tc ?? 0;
    const ttl = entry.ttl ?? MPLS_DEFAULT_TTL;
    checkUint("MPLS label", entry.label, 20);
    checkUint("MPLS traffic class", tc, 3);
    checkUint("MPLS TTL", ttl, 8);
    const bottomOfStack = i === mpls.length - 1 ? 1 : 0;
    put32(out, off, entry.label * 0x1000 + ((tc << 9) | (bottomOfStack << 8) | ttl));
    off += 4;
  });
  out.set(o.payload, off);
  return out;
}

function defaultTpids(count: number): number[] {
  if (count === 1) return [ETHERTYPE_VLAN];
  // Stacked tags: service tags outside, one customer tag innermost (802.1ad).
  return Array.from({ length: count }, (_, i) => (i === count - 1 ? ETHERTYPE_VLAN : ETHERTYPE_QINQ));
}

export interface ArpOptions {
  /** ARP_REQUEST (1) or ARP_REPLY (2). */
  op: number;
  sha: string;
  spa: string;
  /** Target hardware address; all zeros (unknown) by default, as in a request. */
  tha?: string;
  tpa: string;
}

/** ARP for IPv4 over Ethernet (28 bytes); wrap it with ethernet({ etherType: ETHERTYPE_ARP }). */
export function arp(o: ArpOptions): Uint8Array {
  checkUint("ARP op", o.op, 16);
  const out = new Uint8Array(28);
  put16(out, 0, 1); // hardware type: Ethernet
  put16(out, 2, ETHERTYPE_IPV4);
  out[4] = 6;
  out[5] = 4;
  put16(out, 6, o.op);
  out.set(parseMac(o.sha), 8);
  out.set(parseIPv4(o.spa), 14);
  out.set(parseMac(o.tha ?? "00:00:00:00:00:00"), 18);
  out.set(parseIPv4(o.tpa), 24);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Layer 3

export interface Ipv4Options {
  src: string;
  dst: string;
  protocol: number;
  payload: Uint8Array;
  ttl?: number;
  tos?: number;
  id?: number;
  df?: boolean;
  mf?: boolean;
  /** Fragment offset in bytes; a multiple of 8. */
  fragOffset?: number;
  /** Raw option bytes, padded with end-of-options (0) to a multiple of 4. */
  options?: Uint8Array;
}

export function ipv4(o: Ipv4Options): Uint8Array {
  const { ttl = 64, tos = 0, id = 0, df = true, mf = false, fragOffset = 0 } = o;
  const options = padTo(o.options ?? new Uint8Array(0), 4);
  if (options.length > IPV4_MAX_OPTION_BYTES) {
    throw new Error(`IPv4 options are ${options.length} bytes padded, the maximum is ${IPV4_MAX_OPTION_BYTES}`);
  }
  checkUint("IPv4 protocol", o.protocol, 8);
  checkUint("IPv4 TTL", ttl, 8);
  checkUint("IPv4 TOS", tos, 8);
  checkUint("IPv4 id", id, 16);
  checkFragmentOffset(fragOffset);

  const headerLength = IPV4_HEADER_BYTES + options.length;
  const totalLength = headerLength + o.payload.length;
  checkUint("IPv4 total length", totalLength, 16);
  const out = new Uint8Array(totalLength);
  out[0] = 0x40 | (headerLength / 4);
  out[1] = tos;
  put16(out, 2, totalLength);
  put16(out, 4, id);
  put16(out, 6, (df ? 0x4000 : 0) | (mf ? 0x2000 : 0) | (fragOffset / 8));
  out[8] = ttl;
  out[9] = o.protocol;
  out.set(parseIPv4(o.src), 12);
  out.set(parseIPv4(o.dst), 16);
  out.set(options, IPV4_HEADER_BYTES);
  put16(out, 10, internetChecksum(out.subarray(0, headerLength)));
  out.set(o.payload, headerLength);
  return out;
}

export interface Ipv6Extension {
  /** Header type: IPPROTO_HOPOPTS, IPPROTO_ROUTING, IPPROTO_FRAGMENT, IPPROTO_DSTOPTS, ... */
  type: number;
  /**
   * The header's body after its next-header and length bytes.
   * Hop-by-hop and destination options: the options, padded here with Pad1/PadN (default none).
   * Routing: routing type, segments left, then type-specific data (default: experimental type
   * 253 with segments left 0). Fragment: the 6 bytes after the reserved byte, as fragmentExt() makes them. Other types are laid
   * out the same generic way (length in 8-octet units), zero-padded.
   */
  data?: Uint8Array;
}

export interface Ipv6Options {
  src: string;
  dst: string;
  /** Protocol of the payload, after the last extension header. */
  nextHeader: number;
  payload: Uint8Array;
  hopLimit?: number;
  trafficClass?: number;
  flowLabel?: number;
  /** Extension headers in wire order. */
  extensions?: Ipv6Extension[];
}

export function ipv6(o: Ipv6Options): Uint8Array {
  const { hopLimit = 64, trafficClass = 0, flowLabel = 0 } = o;
  checkUint("IPv6 next header", o.nextHeader, 8);
  checkUint("IPv6 hop limit", hopLimit, 8);
  checkUint("IPv6 traffic class", trafficClass, 8);
  checkUint("IPv6 flow label", flowLabel, 20);

  const extensions = o.extensions ?? [];
  const chain = extensions.map((ext, i) =>
    extensionHeader(ext, i + 1 < extensions.length ? extensions[i + 1].type : o.nextHeader),
  );
  const payload = concat([...chain, o.payload]);
  checkUint("IPv6 payload length", payload.length, 16);

  const out = new Uint8Array(IPV6_HEADER_BYTES + payload.length);
  put32(out, 0, 6 * 0x10000000 + ((trafficClass << 20) | flowLabel));
  put16(out, 4, payload.length);
  out[6] = extensions.length > 0 ? extensions[0].type : o.nextHeader;
  out[7] = hopLimit;
  out.set(parseIPv6(o.src), 8);
  out.set(parseIPv6(o.dst), 24);
  out.set(payload, IPV6_HEADER_BYTES);
  return out;
}

/** A fragment extension header; `offset` in bytes (a multiple of 8), `more` is the M flag. */
export function fragmentExt(offset: number, more: boolean, id: number): Ipv6Extension {
  checkFragmentOffset(offset);
  checkUint("IPv6 fragment id", id, 32);
  const data = new Uint8Array(IPV6_FRAGMENT_BODY_BYTES);
  put16(data, 0, offset | (more ? 1 : 0)); // the offset sits in the top 13 bits, in 8-byte units
  put32(data, 2, id);
  return { type: IPPROTO_FRAGMENT, data };
}

function extensionHeader(ext: Ipv6Extension, next: number): Uint8Array {
  checkUint("IPv6 extension type", ext.type, 8);
  let body: Uint8Array;
  switch (ext.type) {
    case IPPROTO_HOPOPTS:
    case IPPROTO_DSTOPTS:
      body = padOptions(ext.data ?? new Uint8Array(0));
      break;
    case IPPROTO_FRAGMENT:
      body = ext.data ?? new Uint8Array(IPV6_FRAGMENT_BODY_BYTES); // offset 0, M clear, id 0
      if (body.length !== IPV6_FRAGMENT_BODY_BYTES) {
        throw new Error(`IPv6 fragment header data must be ${IPV6_FRAGMENT_BODY_BYTES} bytes (use fragmentExt())`);
      }
      break;
    case IPPROTO_ROUTING:
      body = padTo(ext.data ?? Uint8Array.of(ROUTING_TYPE_EXPERIMENT, 0, 0, 0, 0, 0), 8, 2);
      break;
    default:
      body = padTo(ext.data ?? new Uint8Array(6), 8, 2);
  }
  const length = 2 + body.length;
  // The fragment header has a reserved byte where the others count 8-octet units beyond the first.
  const lengthField = ext.type === IPPROTO_FRAGMENT ? 0 : length / 8 - 1;
  checkUint("IPv6 extension header length", lengthField, 8);
  const out = new Uint8Array(length);
  out[0] = next;
  out[1] = lengthField;
  out.set(body, 2);
  return out;
}

/** Pads an options body with Pad1 or PadN so the header (2 bytes + body) is a multiple of 8. */
function padOptions(options: Uint8Array): Uint8Array {
  const padding = (8 - ((2 + options.length) % 8)) % 8;
  const out = new Uint8Array(options.length + padding);
  out.set(options, 0);
  // Pad1 is a single zero byte, already there; PadN is type 1, length, zeros.
  if (padding >= 2) {
    out[options.length] = 1;
    out[options.length + 1] = padding - 2;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Layer 4

export interface TcpOptions {
  /** Addresses of the enclosing IP header, for the pseudo-header checksum; IPv4 or IPv6. */
  src: string;
  dst: string;
  sport: number;
  dport: number;
  seq?: number;
  ack?: number;
  /** OR of FIN, SYN, RST, PSH, ACK, URG, ECE, CWR. */
  flags: number;
  window?: number;
  urgent?: number;
  payload?: Uint8Array;
  /** Raw option bytes, padded with end-of-options (0) to a multiple of 4. */
  options?: Uint8Array;
}

export function tcp(o: TcpOptions): Uint8Array {
  const { seq = 0, ack = 0, window = 65535, urgent = 0 } = o;
  const payload = o.payload ?? new Uint8Array(0);
  const options = padTo(o.options ?? new Uint8Array(0), 4);
  if (options.length > TCP_MAX_OPTION_BYTES) {
    throw new Error(`TCP options are ${options.length} bytes padded, the maximum is ${TCP_MAX_OPTION_BYTES}`);
  }
  checkUint("TCP source port", o.sport, 16);
  checkUint("TCP destination port", o.dport, 16);
  checkUint("TCP sequence number", seq, 32);
  checkUint("TCP acknowledgment number", ack, 32);
  checkUint("TCP flags", o.flags, 8);
  checkUint("TCP window", window, 16);
  checkUint("TCP urgent pointer", urgent, 16);

  const headerLength = TCP_HEADER_BYTES + options.length;
  const out = new Uint8Array(headerLength + payload.length);
  put16(out, 0, o.sport);
  put16(out, 2, o.dport);
  put32(out, 4, seq);
  put32(out, 8, ack);
  out[12] = (headerLength / 4) << 4;
  out[13] = o.flags;
  put16(out, 14, window);
  put16(out, 18, urgent);
  out.set(options, TCP_HEADER_BYTES);
  out.set(payload, headerLength);
  put16(out, 16, internetChecksum(out, pseudoHeaderSum(o.src, o.dst, IPPROTO_TCP, out.length)));
  return out;
}

export interface UdpOptions {
  /** Addresses of the enclosing IP header, for the pseudo-header checksum; IPv4 or IPv6. */
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload: Uint8Array;
  /** IPv4 only: false writes 0 ("no checksum"). IPv6 UDP always carries one (RFC 8200). */
  checksum?: boolean;
}

export function udp(o: UdpOptions): Uint8Array {
  checkUint("UDP source port", o.sport, 16);
  checkUint("UDP destination port", o.dport, 16);
  const length = UDP_HEADER_BYTES + o.payload.length;
  checkUint("UDP length", length, 16);
  const out = new Uint8Array(length);
  put16(out, 0, o.sport);
  put16(out, 2, o.dport);
  put16(out, 4, length);
  out.set(o.payload, UDP_HEADER_BYTES);
  const ipv6Addresses = parseIP(o.src).family === 6;
  if (o.checksum !== false || ipv6Addresses) {
    const sum = internetChecksum(out, pseudoHeaderSum(o.src, o.dst, IPPROTO_UDP, length));
    put16(out, 6, sum === 0 ? 0xffff : sum); // 0 on the wire means "no checksum"
  }
  return out;
}

export interface Icmpv4Options {
  type: number;
  code?: number;
  /** The 4 bytes after the checksum (e.g. echo id and sequence), as bytes or a 32-bit number. */
  rest?: Uint8Array | number;
  payload?: Uint8Array;
}

export function icmpv4(o: Icmpv4Options): Uint8Array {
  const out = icmpMessage(o);
  put16(out, 2, internetChecksum(out));
  return out;
}

export interface Icmpv6Options extends Icmpv4Options {
  /** Addresses of the enclosing IPv6 header, for the pseudo-header checksum. */
  src: string;
  dst: string;
}

export function icmpv6(o: Icmpv6Options): Uint8Array {
  const out = icmpMessage(o);
  put16(out, 2, internetChecksum(out, pseudoHeaderSum(parseIPv6(o.src), parseIPv6(o.dst), IPPROTO_ICMPV6, out.length)));
  return out;
}

function icmpMessage(o: Icmpv4Options): Uint8Array {
  const code = o.code ?? 0;
  const payload = o.payload ?? new Uint8Array(0);
  checkUint("ICMP type", o.type, 8);
  checkUint("ICMP code", code, 8);
  const out = new Uint8Array(ICMP_HEADER_BYTES + payload.length);
  out[0] = o.type;
  out[1] = code;
  if (o.rest instanceof Uint8Array) {
    if (o.rest.length !== 4) throw new Error(`ICMP rest of header must be 4 bytes, got ${o.rest.length}`);
    out.set(o.rest, 4);
  } else {
    checkUint("ICMP rest of header", o.rest ?? 0, 32);
    put32(out, 4, o.rest ?? 0);
  }
  out.set(payload, ICMP_HEADER_BYTES);
  return out;
}

/**
 * GUE variant 0 header (draft-ietf-intarea-gue): version 0, no control flag, no optional fields,
 * no flags; `innerProtocol` (IPPROTO_IPIP, IPPROTO_IPV6, ...) says what follows.
 */
export function gueHeader(innerProtocol: number): Uint8Array {
  checkUint("GUE inner protocol", innerProtocol, 8);
  return Uint8Array.of(0, innerProtocol, 0, 0);
}

// ---------------------------------------------------------------------------------------------
// Whole frames, the shapes tests use most

export interface FrameOptions {
  srcMac: string;
  dstMac: string;
  /** VLAN TCIs, outermost first, as in ethernet(). */
  vlans?: number[];
  src: string;
  dst: string;
  sport: number;
  dport: number;
  payload?: Uint8Array;
  /** IPv4 TTL or IPv6 hop limit. */
  ttl?: number;
  /** IPv4 TOS or IPv6 traffic class. */
  tos?: number;
  /** IPv4 only: don't-fragment flag, default true. */
  df?: boolean;
}

export interface TcpFrameOptions extends FrameOptions {
  /** Default ACK: a segment from the middle of a connection. */
  flags?: number;
  seq?: number;
  ack?: number;
}

export function tcp4Frame(o: TcpFrameOptions): Uint8Array {
  return ipv4Frame(o, IPPROTO_TCP, tcpSegment(o));
}

export function tcp6Frame(o: TcpFrameOptions): Uint8Array {
  return ipv6Frame(o, IPPROTO_TCP, tcpSegment(o));
}

export function udp4Frame(o: FrameOptions): Uint8Array {
  return ipv4Frame(o, IPPROTO_UDP, udpDatagram(o));
}

export function udp6Frame(o: FrameOptions): Uint8Array {
  return ipv6Frame(o, IPPROTO_UDP, udpDatagram(o));
}

function tcpSegment(o: TcpFrameOptions): Uint8Array {
  const { src, dst, sport, dport, seq, ack, payload } = o;
  return tcp({ src, dst, sport, dport, seq, ack, payload, flags: o.flags ?? ACK });
}

function udpDatagram(o: FrameOptions): Uint8Array {
  const { src, dst, sport, dport } = o;
  return udp({ src, dst, sport, dport, payload: o.payload ?? new Uint8Array(0) });
}

function ipv4Frame(o: FrameOptions, protocol: number, payload: Uint8Array): Uint8Array {
  const packet = ipv4({ src: o.src, dst: o.dst, protocol, payload, ttl: o.ttl, tos: o.tos, df: o.df });
  return ethernet({ dst: o.dstMac, src: o.srcMac, vlans: o.vlans, etherType: ETHERTYPE_IPV4, payload: packet });
}

function ipv6Frame(o: FrameOptions, nextHeader: number, payload: Uint8Array): Uint8Array {
  const packet = ipv6({ src: o.src, dst: o.dst, nextHeader, payload, hopLimit: o.ttl, trafficClass: o.tos });
  return ethernet({ dst: o.dstMac, src: o.srcMac, vlans: o.vlans, etherType: ETHERTYPE_IPV6, payload: packet });
}

// ---------------------------------------------------------------------------------------------
// Bytes

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** Zero-pads so that `prefix + length` is a multiple of `unit`. */
function padTo(bytes: Uint8Array, unit: number, prefix = 0): Uint8Array {
  const padding = (unit - ((prefix + bytes.length) % unit)) % unit;
  if (padding === 0) return bytes;
  const out = new Uint8Array(bytes.length + padding);
  out.set(bytes, 0);
  return out;
}

function put16(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 8;
  b[off + 1] = v & 0xff;
}

function put32(b: Uint8Array, off: number, v: number): void {
  b[off] = v >>> 24;
  b[off + 1] = (v >>> 16) & 0xff;
  b[off + 2] = (v >>> 8) & 0xff;
  b[off + 3] = v & 0xff;
}

function checkUint(name: string, value: number, bits: number): void {
  const max = 2 ** bits - 1;
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new Error(`${name} must be an integer from 0 to ${max}, got ${value}`);
  }
}

function checkFragmentOffset(offset: number): void {
  checkUint("fragment offset", offset, 16);
  if (offset % 8 !== 0) throw new Error(`fragment offset must be a multiple of 8 bytes, got ${offset}`);
}
