import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  ACK,
  ARP_REPLY,
  ARP_REQUEST,
  arp,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ethernet,
  FIN,
  formatIPv4,
  formatIPv6,
  formatMac,
  fragmentExt,
  gueHeader,
  icmpv4,
  icmpv6,
  internetChecksum,
  IPPROTO_DSTOPTS,
  IPPROTO_HOPOPTS,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  IPPROTO_IPIP,
  IPPROTO_ROUTING,
  IPPROTO_TCP,
  IPPROTO_UDP,
  ipv4,
  ipv6,
  parseIP,
  parseIPv4,
  parseIPv6,
  parseMac,
  PSH,
  pseudoHeaderSum,
  RST,
  SYN,
  tci,
  tcp,
  tcp4Frame,
  tcp6Frame,
  udp,
  udp4Frame,
  udp6Frame,
  URG,
} from "../../host/net/frame.js";
import { writePcap } from "../../tools/lib/pcap.js";
import { tsharkFields, validatePcap } from "../lib/tshark.js";

const MAC_A = "02:00:00:00:00:01";
const MAC_B = "02:00:00:00:00:02";
const text = (s: string) => new TextEncoder().encode(s);
const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const u16 = (b: Uint8Array, off: number) => (b[off] << 8) | b[off + 1];

describe("frame: addresses", () => {
  it("parses and formats MAC addresses", () => {
    assert.equal(hex(parseMac("02:00:5E:10:aa:ff")), "02005e10aaff");
    assert.equal(hex(parseMac("02-00-5e-10-aa-ff")), "02005e10aaff");
    assert.equal(formatMac(Uint8Array.of(9, 9, 0x02, 0, 0x5e, 0x10, 0xaa, 0xff), 2), "02:00:5e:10:aa:ff");
  });

  it("parses dotted-quad IPv4 and formats it back", () => {
    assert.deepEqual([...parseIPv4("192.0.2.255")], [192, 0, 2, 255]);
    assert.equal(formatIPv4(Uint8Array.of(0, 10, 0, 0, 1), 1), "10.0.0.1");
  });

  it("parses every IPv6 text form to the same 16 bytes", () => {
    const cases: [string, string][] = [
      ["::", "00000000000000000000000000000000"],
      ["::1", "00000000000000000000000000000001"],
      ["1::", "00010000000000000000000000000000"],
      ["2001:db8::1", "20010db8000000000000000000000001"],
      ["2001:DB8:0:0:0:0:0:1", "20010db8000000000000000000000001"],
      ["2001:0db8:0000:0000:0000:0000:0000:0001", "20010db8000000000000000000000001"],
      ["1:2:3:4:5:6:7::", "00010002000300040005000600070000"],
      ["::2:3:4:5:6:7:8", "00000002000300040005000600070008"],
      ["::ffff:192.0.2.1", "00000000000000000000ffffc0000201"],
      ["64:ff9b::10.0.0.1", "0064ff9b00000000000000000a000001"],
      ["1:2:3:4:5:6:1.2.3.4", "00010002000300040005000601020304"],
    ];
    for (const [s, bytes] of cases) assert.equal(hex(parseIPv6(s)), bytes, s);
  });

  it("formats IPv6 as RFC 5952 says", () => {
    const cases: [string, string][] = [
      ["2001:0db8:0000:0000:0000:0000:0002:0001", "2001:db8::2:1"],
      ["2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"], // one zero group stays
      ["2001:0:0:1:0:0:0:1", "2001:0:0:1::1"], // the longest run is compressed
      ["2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"], // on a tie, the first
      ["0:0:0:0:0:0:0:0", "::"],
      ["0:0:0:0:0:0:0:1", "::1"],
      ["1:0:0:0:0:0:0:0", "1::"],
      ["0:0:0:0:0:ffff:c000:201", "::ffff:192.0.2.1"],
      ["FE80:0:0:0:0:0:0:ABCD", "fe80::abcd"],
    ];
    for (const [s, canonical] of cases) assert.equal(formatIPv6(parseIPv6(s)), canonical, s);
    assert.equal(formatIPv6(Uint8Array.of(0xff, ...parseIPv6("2001:db8::7")), 1), "2001:db8::7");
  });

  it("tells the family from the text", () => {
    assert.equal(parseIP("10.0.0.1").family, 4);
    assert.equal(parseIP("::1").family, 6);
    assert.equal(parseIP("::ffff:1.2.3.4").bytes.length, 16);
  });

  it("rejects invalid addresses with an error naming the string", () => {
    for (const s of ["", "02:00:00:00:00", "02:00:00:00:00:0g", "0200.0000.0001", "02:00:00:00:00:01:02"]) {
      assert.throws(() => parseMac(s), { message: `invalid MAC address "${s}"` });
    }
    for (const s of ["", "1.2.3", "1.2.3.4.5", "256.0.0.1", "01.2.3.4", "1.2.3.-4", "a.b.c.d", " 1.2.3.4"]) {
      assert.throws(() => parseIPv4(s), { message: `invalid IPv4 address "${s}"` });
    }
    const badIPv6 = [
      "", ":", ":::", "1::2::3", "1:2:3:4:5:6:7", "1:2:3:4:5:6:7:8:9", "1:2:3:4:5:6:7::8", ":1::", "1::2:",
      "12345::", "g::", "fe80::1%eth0", "::1.2.3", "::256.1.1.1", "1.2.3.4::", "::1.2.3.4:5",
    ];
    for (const s of badIPv6) assert.throws(() => parseIPv6(s), { message: `invalid IPv6 address "${s}"` }, s);
    assert.throws(() => parseIP("10.0.0.256"), /"10\.0\.0\.256"/);
  });
});

describe("frame: checksums", () => {
  it("computes the RFC 1071 example sum", () => {
    // RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2, so the checksum is 220d.
    assert.equal(internetChecksum(Uint8Array.of(0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7)), 0x220d);
    assert.equal(internetChecksum(Uint8Array.of(0x00, 0x01, 0xf2)), ~(0x0001 + 0xf200) & 0xffff);
    assert.equal(internetChecksum(new Uint8Array(0), 0x1234), ~0x1234 & 0xffff);
  });

  it("builds a known IPv4 header with its published checksum (0xb861)", () => {
    const packet = ipv4({ src: "192.168.0.1", dst: "192.168.0.199", protocol: IPPROTO_UDP, payload: new Uint8Array(95) });
    assert.equal(hex(packet.subarray(0, 20)), "45000073" + "00004000" + "4011b861" + "c0a80001" + "c0a800c7");
  });

  it("sums the pseudo-header the same way for both IPv4 and IPv6 layouts", () => {
    const v4 = Uint8Array.of(10, 0, 0, 1, 10, 0, 0, 2, 0, IPPROTO_TCP, 0, 20);
    assert.equal(pseudoHeaderSum("10.0.0.1", "10.0.0.2", IPPROTO_TCP, 20), ~internetChecksum(v4) & 0xffff);
    const v6 = new Uint8Array(40);
    v6.set(parseIPv6("2001:db8::1"), 0);
    v6.set(parseIPv6("2001:db8::2"), 16);
    v6.set([0, 1, 0, 4, 0, 0, 0, IPPROTO_UDP], 32); // 32-bit length 65540, 3 zero bytes, next header
    assert.equal(pseudoHeaderSum("2001:db8::1", "2001:db8::2", IPPROTO_UDP, 65540), ~internetChecksum(v6) & 0xffff);
    assert.throws(() => pseudoHeaderSum("10.0.0.1", "::1", IPPROTO_TCP, 20), /must both be IPv4 or both IPv6/);
  });

  it("makes TCP, UDP and ICMPv6 checksums that verify to zero", () => {
    for (const [src, dst] of [["10.0.0.1", "10.0.0.2"], ["2001:db8::1", "2001:db8::2"]]) {
      const seg = tcp({ src, dst, sport: 1, dport: 2, flags: SYN, payload: text("odd") });
      assert.equal(internetChecksum(seg, pseudoHeaderSum(src, dst, IPPROTO_TCP, seg.length)), 0);
      const dgram = udp({ src, dst, sport: 1, dport: 2, payload: text("odd") });
      assert.equal(internetChecksum(dgram, pseudoHeaderSum(src, dst, IPPROTO_UDP, dgram.length)), 0);
    }
    const msg = icmpv6({ src: "fe80::1", dst: "ff02::1", type: 128, payload: text("ping") });
    assert.equal(internetChecksum(msg, pseudoHeaderSum("fe80::1", "ff02::1", IPPROTO_ICMPV6, msg.length)), 0);
    assert.equal(internetChecksum(icmpv4({ type: 8, rest: 0x00010002, payload: text("ping") })), 0);
  });

  it("sends a computed UDP checksum of 0 as 0xffff", () => {
    const base = { src: "10.0.0.1", dst: "10.0.0.2", sport: 53, dport: 53 };
    // With a zero payload word the checksum is c; putting c there makes the sum 0xffff, checksum 0.
    const c = u16(udp({ ...base, payload: new Uint8Array(2) }), 6);
    const dgram = udp({ ...base, payload: Uint8Array.of(c >> 8, c & 0xff) });
    assert.equal(u16(dgram, 6), 0xffff);
  });

  it("leaves the IPv4 UDP checksum out only when asked, and never for IPv6", () => {
    const payload = text("x");
    assert.equal(u16(udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, payload, checksum: false }), 6), 0);
    assert.notEqual(u16(udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2, payload }), 6), 0);
    assert.notEqual(u16(udp({ src: "::1", dst: "::2", sport: 1, dport: 2, payload, checksum: false }), 6), 0);
  });
});

describe("frame: layouts", () => {
  const payload = Uint8Array.of(0xde, 0xad);

  it("puts a single 802.1Q tag (TPID 0x8100) before the ethertype", () => {
    const f = ethernet({ dst: MAC_B, src: MAC_A, vlans: [tci(100, 5, 1)], etherType: ETHERTYPE_IPV4, payload });
    assert.equal(hex(f), "020000000002" + "020000000001" + "8100" + "b064" + "0800" + "dead");
  });

  it("tags QinQ frames 0x88a8 outside, 0x8100 inside, unless TPIDs are given", () => {
    const qinq = ethernet({ dst: MAC_B, src: MAC_A, vlans: [10, 20], etherType: ETHERTYPE_IPV6, payload });
    assert.equal(hex(qinq.subarray(12)), "88a8000a" + "81000014" + "86dd" + "dead");
    const custom = ethernet({ dst: MAC_B, src: MAC_A, vlans: [10, 20], vlanTpids: [0x9100, 0x8100], etherType: 0x0800, payload });
    assert.equal(hex(custom.subarray(12, 20)), "9100000a81000014");
    assert.throws(() => ethernet({ dst: MAC_B, src: MAC_A, vlans: [10], vlanTpids: [], etherType: 0x0800, payload }), /1 VLAN tags but 0 TPIDs/);
  });

  it("builds the 802.1Q TCI from priority, DEI and VLAN id", () => {
    assert.equal(tci(100), 100);
    assert.equal(tci(4095, 7, 1), 0xffff);
    assert.throws(() => tci(4096), /VLAN id must be an integer from 0 to 4095, got 4096/);
  });

  it("writes an MPLS stack with bottom-of-stack only on the last label and ethertype 0x8847", () => {
    const f = ethernet({ dst: MAC_B, src: MAC_A, mpls: [{ label: 16 }, { label: 0xfffff, tc: 7, ttl: 1 }], etherType: 0x0800, payload });
    assert.equal(hex(f.subarray(12)), "8847" + "00010040" + "ffffff01" + "dead");
    assert.throws(() => ethernet({ dst: MAC_B, src: MAC_A, payload }), /etherType is required/);
  });

  it("pads to the 60-byte minimum only when asked", () => {
    const request = arp({ op: ARP_REQUEST, sha: MAC_A, spa: "10.0.0.1", tpa: "10.0.0.2" });
    assert.equal(ethernet({ dst: MAC_B, src: MAC_A, etherType: ETHERTYPE_ARP, payload: request }).length, 42);
    assert.equal(ethernet({ dst: MAC_B, src: MAC_A, etherType: ETHERTYPE_ARP, payload: request, pad: true }).length, 60);
  });

  it("lays out ARP for IPv4 over Ethernet", () => {
    const reply = arp({ op: ARP_REPLY, sha: MAC_A, spa: "10.0.0.1", tha: MAC_B, tpa: "10.0.0.2" });
    assert.equal(hex(reply), "0001080006040002" + "020000000001" + "0a000001" + "020000000002" + "0a000002");
  });

  it("sets IPv4 flags, fragment offset, options and header length", () => {
    const p = ipv4({
      src: "10.0.0.1", dst: "10.0.0.2", protocol: IPPROTO_UDP, payload, ttl: 1, tos: 0xb8, id: 0x1234,
      df: false, mf: true, fragOffset: 1480, options: Uint8Array.of(0x94, 0x04, 0x00),
    });
    assert.equal(p[0], 0x46); // 24-byte header: 3 option bytes padded to 4
    assert.equal(p[1], 0xb8);
    assert.equal(u16(p, 2), 26);
    assert.equal(u16(p, 4), 0x1234);
    assert.equal(u16(p, 6), 0x2000 | (1480 / 8));
    assert.equal(hex(p.subarray(20, 24)), "94040000");
    assert.equal(internetChecksum(p.subarray(0, 24)), 0);
    assert.throws(() => ipv4({ src: "10.0.0.1", dst: "10.0.0.2", protocol: 17, payload, fragOffset: 12 }), /multiple of 8/);
    assert.throws(() => ipv4({ src: "::1", dst: "10.0.0.2", protocol: 17, payload }), /invalid IPv4 address "::1"/);
  });

  it("chains IPv6 extension headers with padded lengths and next-header fields", () => {
    const p = ipv6({
      src: "2001:db8::1", dst: "2001:db8::2", nextHeader: IPPROTO_UDP, payload, trafficClass: 0xb8, flowLabel: 0xabcde,
      extensions: [
        { type: IPPROTO_HOPOPTS, data: Uint8Array.of(5, 2, 0, 0) }, // router alert: 2 + 4 + PadN 2
        { type: IPPROTO_DSTOPTS, data: Uint8Array.of(0x1e, 3, 1, 2, 3) }, // 2 + 5 + Pad1
        { type: IPPROTO_ROUTING },
        fragmentExt(2048, true, 0xcafe0001),
      ],
    });
    assert.equal(hex(p.subarray(0, 4)), "6b8abcde");
    assert.equal(u16(p, 4), 8 + 8 + 8 + 8 + 2);
    assert.equal(p[6], IPPROTO_HOPOPTS);
    const chain = hex(p.subarray(40));
    assert.equal(chain.slice(0, 16), "3c00" + "05020000" + "0100"); // next: dest. options; PadN of 2
    assert.equal(chain.slice(16, 32), "2b00" + "1e03010203" + "00"); // next: routing; Pad1
    assert.equal(chain.slice(32, 48), "2c00" + "fd00" + "00000000"); // next: fragment; type 253, segments left 0
    assert.equal(chain.slice(48, 64), "1100" + "0801" + "cafe0001"); // next: UDP; offset 2048 = 256 units, M set
    assert.equal(chain.slice(64), "dead");
  });

  it("pads an empty options header with a 4-byte PadN", () => {
    const p = ipv6({ src: "::1", dst: "::1", nextHeader: 59, payload: new Uint8Array(0), extensions: [{ type: IPPROTO_DSTOPTS }] });
    assert.equal(hex(p.subarray(40)), "3b00" + "0104" + "00000000");
  });

  it("lays out TCP with data offset, flags and padded options", () => {
    const seg = tcp({
      src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 443, seq: 0xfffffffe, ack: 7, flags: SYN | ACK,
      window: 1024, options: Uint8Array.of(2, 4, 0x05, 0xb4, 1, 3, 3),
    });
    assert.equal(u16(seg, 0), 40000);
    assert.equal(u16(seg, 2), 443);
    assert.equal(hex(seg.subarray(4, 12)), "fffffffe00000007");
    assert.equal(seg[12] >> 4, 7); // 20 + 8 option bytes
    assert.equal(seg[13], 0x12);
    assert.equal(u16(seg, 14), 1024);
    assert.equal(hex(seg.subarray(20)), "020405b401030300");
    assert.throws(() => tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 70000, dport: 1, flags: 0 }), /TCP source port/);
  });

  it("lays out a GUE variant 0 header", () => {
    assert.equal(hex(gueHeader(IPPROTO_IPIP)), "00040000");
    assert.equal(hex(gueHeader(41)), "00290000");
  });

  it("builds whole frames in one call, defaulting TCP flags to ACK", () => {
    const o = { srcMac: MAC_A, dstMac: MAC_B, src: "10.0.0.1", dst: "10.0.0.2", sport: 1, dport: 2 };
    const t4 = tcp4Frame({ ...o, vlans: [7] });
    assert.equal(t4.length, 18 + 20 + 20);
    assert.equal(u16(t4, 16), ETHERTYPE_IPV4);
    assert.equal(t4[18 + 20 + 13], ACK);
    assert.equal(udp4Frame({ ...o, payload: text("abc") }).length, 14 + 20 + 8 + 3);
    const o6 = { ...o, src: "2001:db8::1", dst: "2001:db8::2" };
    assert.equal(u16(tcp6Frame(o6), 12), ETHERTYPE_IPV6);
    assert.equal(udp6Frame({ ...o6, ttl: 3 })[14 + 7], 3);
  });
});

// Every builder's output, decoded by an independent dissector: tshark must find nothing wrong and
// must read back the values that were set.
interface DecodeCase {
  name: string;
  frame: Uint8Array;
  /** tshark field name -> the value tshark must show (comma-joined when repeated). */
  expect: Record<string, string>;
}

const udpDatagram = udp({ src: "10.1.0.1", dst: "10.1.0.2", sport: 41000, dport: 41001, payload: text("fragmented datagram, 40 bytes long!!!!!!") });
const udp6Datagram = udp({ src: "2001:db8::a", dst: "2001:db8::b", sport: 41000, dport: 41001, payload: text("fragmented datagram, 40 bytes long!!!!!!") });
const quoted = ipv4({
  src: "10.0.0.2", dst: "192.0.2.9", protocol: IPPROTO_TCP,
  payload: tcp({ src: "10.0.0.2", dst: "192.0.2.9", sport: 33000, dport: 80, flags: SYN }),
});
const eth4 = (payload: Uint8Array) => ethernet({ dst: MAC_B, src: MAC_A, etherType: ETHERTYPE_IPV4, payload });
const eth6 = (payload: Uint8Array) => ethernet({ dst: MAC_B, src: MAC_A, etherType: ETHERTYPE_IPV6, payload });

const DECODE_CASES: DecodeCase[] = [
  {
    name: "tcp4Frame on VLAN 100: MACs, addresses, ports, flags, sequence numbers",
    frame: tcp4Frame({
      srcMac: MAC_A, dstMac: MAC_B, vlans: [tci(100, 3)], src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 80,
      flags: SYN | ACK, seq: 1000, ack: 2000, ttl: 17, tos: 0x10, payload: text("GET / HTTP/1.0\r\n\r\n"),
    }),
    expect: {
      "eth.src": MAC_A, "eth.dst": MAC_B, "vlan.id": "100", "vlan.priority": "3", "ip.src": "10.0.0.1",
      "ip.dst": "10.0.0.2", "ip.ttl": "17", "ip.dsfield": "0x10", "ip.flags.df": "1", "tcp.srcport": "40000",
      "tcp.dstport": "80", "tcp.flags": "0x0012", "tcp.seq_raw": "1000", "tcp.ack_raw": "2000", "tcp.len": "18",
      "tcp.checksum.status": "1", "ip.checksum.status": "1",
    },
  },
  {
    name: "tcp6Frame in QinQ: S-tag 10, C-tag 20, IPv6 addresses and ports",
    frame: tcp6Frame({
      srcMac: MAC_A, dstMac: MAC_B, vlans: [10, tci(20, 5)], src: "2001:db8::1", dst: "2001:db8:0:1::2",
      sport: 1234, dport: 8443, flags: FIN | PSH | ACK | URG | RST, ttl: 9, payload: text("bye"),
    }),
    expect: {
      "ieee8021ad.id": "10", "vlan.id": "20", "vlan.priority": "5", "ipv6.src": "2001:db8::1",
      "ipv6.dst": "2001:db8:0:1::2", "ipv6.hlim": "9", "tcp.srcport": "1234", "tcp.dstport": "8443",
      "tcp.flags": "0x003d", "tcp.checksum.status": "1",
    },
  },
  {
    name: "udp4Frame: ports, TOS, DF cleared, payload",
    frame: udp4Frame({ srcMac: MAC_A, dstMac: MAC_B, src: "192.0.2.1", dst: "198.51.100.7", sport: 40053, dport: 33333, tos: 0xb8, df: false, payload: text("dns?") }),
    expect: {
      "ip.src": "192.0.2.1", "ip.dst": "198.51.100.7", "ip.dsfield": "0xb8", "ip.flags.df": "0", "udp.srcport": "40053",
      "udp.dstport": "33333", "udp.length": "12", "udp.checksum.status": "1",
    },
  },
  {
    name: "udp6Frame: addresses, ports, hop limit, traffic class",
    frame: udp6Frame({ srcMac: MAC_A, dstMac: MAC_B, src: "fd00::1", dst: "fd00::ffff:2", sport: 40789, dport: 40790, ttl: 255, tos: 0x20, payload: text("v6") }),
    expect: {
      "ipv6.src": "fd00::1", "ipv6.dst": "fd00::ffff:2", "ipv6.hlim": "255", "ipv6.tclass": "0x00000020",
      "udp.srcport": "40789", "udp.dstport": "40790", "udp.checksum.status": "1",
    },
  },
  {
    name: "ipv4 with options and tcp with options: header lengths, MSS, window",
    frame: eth4(ipv4({
      src: "10.0.0.1", dst: "10.0.0.2", protocol: IPPROTO_TCP, id: 4321, options: Uint8Array.of(0x94, 0x04, 0, 0),
      payload: tcp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 50000, dport: 22, flags: SYN, seq: 77, window: 29200, options: Uint8Array.of(2, 4, 0x05, 0xb4, 1, 1, 4, 2) }),
    })),
    expect: {
      "ip.hdr_len": "24", "ip.opt.type": "148", "ip.id": "0x10e1", "tcp.hdr_len": "28", "tcp.options.mss_val": "1460",
      "tcp.window_size_value": "29200", "tcp.flags": "0x0002", "ip.checksum.status": "1", "tcp.checksum.status": "1",
    },
  },
  {
    name: "ipv4 first fragment: MF set, offset 0",
    frame: eth4(ipv4({ src: "10.1.0.1", dst: "10.1.0.2", protocol: IPPROTO_UDP, id: 7, df: false, mf: true, payload: udpDatagram.subarray(0, 24) })),
    expect: { "ip.flags.mf": "1", "ip.frag_offset": "0", "ip.id": "0x0007" },
  },
  {
    name: "ipv4 last fragment: offset 24, reassembled into the UDP datagram",
    frame: eth4(ipv4({ src: "10.1.0.1", dst: "10.1.0.2", protocol: IPPROTO_UDP, id: 7, df: false, fragOffset: 24, payload: udpDatagram.subarray(24) })),
    // tshark 4.0 shows the offset field raw, in 8-byte units.
    expect: { "ip.flags.mf": "0", "ip.frag_offset": "3", "udp.srcport": "41000", "udp.length": "48", "udp.checksum.status": "1" },
  },
  {
    name: "ipv6 extension chain: hop-by-hop, destination options, routing, fragment, then UDP",
    frame: eth6(ipv6({
      src: "2001:db8::1", dst: "2001:db8::2", nextHeader: IPPROTO_UDP,
      payload: udp({ src: "2001:db8::1", dst: "2001:db8::2", sport: 40007, dport: 40009, payload: text("chain") }),
      extensions: [
        { type: IPPROTO_HOPOPTS, data: Uint8Array.of(5, 2, 0, 0) },
        { type: IPPROTO_DSTOPTS },
        { type: IPPROTO_ROUTING },
        fragmentExt(0, false, 0x12345678),
      ],
    })),
    expect: {
      "ipv6.nxt": "0", "ipv6.hopopts.nxt": "60", "ipv6.dstopts.nxt": "43", "ipv6.routing.nxt": "44",
      "ipv6.routing.type": "253", "ipv6.routing.segleft": "0", "ipv6.fraghdr.nxt": "17",
      "ipv6.fraghdr.ident": "0x12345678", "ipv6.fraghdr.more": "0", "udp.dstport": "40009", "udp.checksum.status": "1",
    },
  },
  {
    name: "ipv6 first fragment: fragment header with M set",
    frame: eth6(ipv6({ src: "2001:db8::a", dst: "2001:db8::b", nextHeader: IPPROTO_UDP, payload: udp6Datagram.subarray(0, 24), extensions: [fragmentExt(0, true, 99)] })),
    expect: { "ipv6.nxt": "44", "ipv6.fraghdr.offset": "0", "ipv6.fraghdr.more": "1", "ipv6.fraghdr.ident": "0x00000063" },
  },
  {
    name: "ipv6 last fragment: offset 24 (3 units), reassembled into the UDP datagram",
    frame: eth6(ipv6({ src: "2001:db8::a", dst: "2001:db8::b", nextHeader: IPPROTO_UDP, payload: udp6Datagram.subarray(24), extensions: [fragmentExt(24, false, 99)] })),
    expect: { "ipv6.fraghdr.offset": "3", "ipv6.fraghdr.more": "0", "udp.srcport": "41000", "udp.length": "48", "udp.checksum.status": "1" },
  },
  {
    name: "MPLS stack of two labels over IPv4/UDP",
    frame: ethernet({
      dst: MAC_B, src: MAC_A, mpls: [{ label: 1000, tc: 1, ttl: 200 }, { label: 2000, tc: 5, ttl: 3 }],
      payload: ipv4({ src: "10.9.0.1", dst: "10.9.0.2", protocol: IPPROTO_UDP, payload: udp({ src: "10.9.0.1", dst: "10.9.0.2", sport: 1, dport: 2, payload: text("mpls") }) }),
    }),
    expect: {
      "eth.type": "0x8847", "mpls.label": "1000,2000", "mpls.exp": "1,5", "mpls.bottom": "0,1", "mpls.ttl": "200,3",
      "ip.src": "10.9.0.1", "udp.dstport": "2",
    },
  },
  {
    name: "icmpv4 echo request: type, identifier, sequence",
    frame: eth4(ipv4({ src: "10.0.0.1", dst: "10.0.0.2", protocol: IPPROTO_ICMP, payload: icmpv4({ type: 8, rest: (0x1234 << 16) | 5, payload: text("abcdefgh") }) })),
    expect: { "icmp.type": "8", "icmp.code": "0", "icmp.ident": "4660", "icmp.seq": "5", "icmp.checksum.status": "1" },
  },
  {
    name: "icmpv4 fragmentation needed quoting the offending packet",
    frame: eth4(ipv4({ src: "10.0.0.1", dst: "10.0.0.2", protocol: IPPROTO_ICMP, payload: icmpv4({ type: 3, code: 4, rest: Uint8Array.of(0, 0, 0x05, 0xdc), payload: quoted }) })),
    expect: { "icmp.type": "3", "icmp.code": "4", "icmp.mtu": "1500", "ip.src": "10.0.0.1,10.0.0.2", "tcp.dstport": "80", "icmp.checksum.status": "1" },
  },
  {
    name: "icmpv6 echo request: type, identifier, sequence",
    frame: eth6(ipv6({ src: "fe80::1", dst: "ff02::1", nextHeader: IPPROTO_ICMPV6, hopLimit: 1, payload: icmpv6({ src: "fe80::1", dst: "ff02::1", type: 128, rest: (7 << 16) | 9, payload: text("ping6") }) })),
    expect: { "icmpv6.type": "128", "icmpv6.code": "0", "icmpv6.echo.identifier": "0x0007", "icmpv6.echo.sequence_number": "9", "icmpv6.checksum.status": "1" },
  },
  {
    name: "arp request, padded to 60 bytes",
    frame: ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: MAC_A, etherType: ETHERTYPE_ARP, pad: true, payload: arp({ op: ARP_REQUEST, sha: MAC_A, spa: "10.0.0.1", tpa: "10.0.0.254" }) }),
    expect: { "arp.opcode": "1", "arp.src.hw_mac": MAC_A, "arp.src.proto_ipv4": "10.0.0.1", "arp.dst.hw_mac": "00:00:00:00:00:00", "arp.dst.proto_ipv4": "10.0.0.254", "frame.len": "60" },
  },
  {
    name: "arp reply",
    frame: ethernet({ dst: MAC_A, src: MAC_B, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REPLY, sha: MAC_B, spa: "10.0.0.254", tha: MAC_A, tpa: "10.0.0.1" }) }),
    expect: { "arp.opcode": "2", "arp.src.hw_mac": MAC_B, "arp.src.proto_ipv4": "10.0.0.254", "arp.dst.hw_mac": MAC_A, "arp.dst.proto_ipv4": "10.0.0.1" },
  },
  {
    name: "GUE over UDP carrying IPv4/TCP (tshark has no GUE dissector: checks the UDP layer and payload)",
    frame: udp4Frame({ srcMac: MAC_A, dstMac: MAC_B, src: "10.0.0.1", dst: "10.0.0.100", sport: 49152, dport: 6080, payload: new Uint8Array([...gueHeader(IPPROTO_IPIP), ...quoted]) }),
    expect: { "udp.dstport": "6080", "udp.length": String(8 + 4 + quoted.length), "udp.checksum.status": "1", "data.data": "00040000" + hex(quoted) },
  },
  {
    name: "udp over IPv4 without a checksum",
    frame: eth4(ipv4({ src: "10.0.0.1", dst: "10.0.0.2", protocol: IPPROTO_UDP, payload: udp({ src: "10.0.0.1", dst: "10.0.0.2", sport: 9, dport: 9, payload: text("x"), checksum: false }) })),
    expect: { "udp.checksum": "0x0000", "udp.dstport": "9" },
  },
];

describe("frame: tshark decodes what the builders set", () => {
  let dir = "";
  let pcap = "";

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flowswitch-frame-"));
    pcap = join(dir, "frames.pcap");
    const t0 = Date.UTC(2024, 0, 1) * 1000;
    await writeFile(pcap, writePcap(DECODE_CASES.map((c, i) => ({ tsUs: t0 + i * 1000, data: c.frame }))));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("finds no malformed packet and no bad checksum in any builder's frame", async () => {
    const { frames, problems } = await validatePcap(pcap);
    assert.deepEqual(problems, []);
    assert.equal(frames, DECODE_CASES.length);
  });

  DECODE_CASES.forEach((c, i) => {
    it(c.name, async () => {
      const fields = Object.keys(c.expect);
      const rows = await tsharkFields(pcap, fields, `frame.number == ${i + 1}`);
      assert.equal(rows.length, 1);
      assert.deepEqual(Object.fromEntries(fields.map((f, j) => [f, rows[0][j]])), c.expect);
    });
  });
});
