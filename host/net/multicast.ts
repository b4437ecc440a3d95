// Group membership on ports the appliance owns in user space: the kernel does not see them, so it
// cannot join groups there, and a switch that snoops IGMP/MLD (most do, and so does a Linux bridge)
// stops flooding a group to a port that never reported it. The appliance therefore reports its own
// memberships: IGMPv3 (RFC 3376) for IPv4 groups, MLDv2 (RFC 3810) for IPv6 groups.
//
// When: on joining, the state-change report (CHANGE_TO_EXCLUDE, no sources: "all sources") twice,
// ROBUSTNESS_GAP_MS apart as the RFCs' robustness variable says; then a current-state report
// (MODE_IS_EXCLUDE) every REFRESH_MS; on leaving, CHANGE_TO_INCLUDE with no sources, twice.
// Trade-off: queries are not punted to the host, so they are not answered one by one; the periodic
// report refreshes the switch well within the default group membership interval (260 s) and
// within any query interval of 60 s or more. Reports leave with TTL / hop limit 1 and Router Alert.

import { ethernet, icmpv4, icmpv6, ipv4, ipv6, parseIP, parseIPv6, formatIPv6, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPPROTO_HOPOPTS, IPPROTO_ICMPV6 } from "./frame.js";

/** IGMPv3 reports go to all IGMPv3-capable routers; MLDv2 reports to all MLDv2-capable routers. */
const IGMPV3_ROUTERS = "224.0.0.22";
const MLDV2_ROUTERS = "ff02::16";
const IPPROTO_IGMP = 2;
const IGMPV3_REPORT = 0x22;
const MLDV2_REPORT = 143;

/** Group record types (RFC 3376 §4.2.12, RFC 3810 §5.2.12). */
export const MODE_IS_EXCLUDE = 2;
export const CHANGE_TO_INCLUDE = 3;
export const CHANGE_TO_EXCLUDE = 4;

export const REFRESH_MS = 30_000;
export const ROBUSTNESS_GAP_MS = 1000;

export interface ReportSource {
  mac: string;
  /** The port's IPv4 address; absent: 0.0.0.0, which RFC 3376 §4.2.13 allows. */
  ipv4?: string;
}

/** The Ethernet address of a multicast group (RFC 1112 §6.4, RFC 2464 §7). */
export function groupMac(group: string): string {
  const b = parseIP(group).bytes;
  const hex = (x: number): string => x.toString(16).padStart(2, "0");
  return b.length === 4
    ? `01:00:5e:${hex(b[1] & 0x7f)}:${hex(b[2])}:${hex(b[3])}`
    : `33:33:${[...b.subarray(12)].map(hex).join(":")}`;
}

/** The modified-EUI-64 link-local address of a MAC (RFC 4291 appendix A): MLD reports must come from one. */
export function linkLocal(mac: string): string {
  const m = mac.split(":").map((x) => parseInt(x, 16));
  const w = (a: number, b: number): string => ((a << 8) | b).toString(16);
  return formatIPv6(parseIPv6(`fe80::${w(m[0] ^ 2, m[1])}:${w(m[2], 0xff)}:${w(0xfe, m[3])}:${w(m[4], m[5])}`));
}

/** One IGMPv3 membership report with a record of `type` (no sources) for each group. */
export function igmpReport(from: ReportSource, groups: string[], type: number): Uint8Array {
  const records = new Uint8Array(8 * groups.length);
  groups.forEach((g, i) => {
    records[i * 8] = type;
    records.set(parseIP(g).bytes, i * 8 + 4);
  });
  const igmp = icmpv4({ type: IGMPV3_REPORT, rest: groups.length, payload: records }); // same layout and checksum as ICMP
  const routerAlert = new Uint8Array([0x94, 0x04, 0x00, 0x00]); // RFC 2113
  const packet = ipv4({ src: from.ipv4 ?? "0.0.0.0", dst: IGMPV3_ROUTERS, protocol: IPPROTO_IGMP, ttl: 1, tos: 0xc0, df: false, options: routerAlert, payload: igmp });
  return ethernet({ dst: groupMac(IGMPV3_ROUTERS), src: from.mac, etherType: ETHERTYPE_IPV4, payload: packet });
}

/** One MLDv2 listener report with a record of `type` (no sources) for each group. */
export function mldReport(from: ReportSource, groups: string[], type: number): Uint8Array {
  const src = linkLocal(from.mac);
  const records = new Uint8Array(20 * groups.length);
  groups.forEach((g, i) => {
    records[i * 20] = type;
    records.set(parseIP(g).bytes, i * 20 + 4);
  });
  const mld = icmpv6({ type: MLDV2_REPORT, rest: groups.length, payload: records, src, dst: MLDV2_ROUTERS });
  const routerAlert = new Uint8Array([0x05, 0x02, 0x00, 0x00]); // RFC 2711, value 0: MLD
  const packet = ipv6({ src, dst: MLDV2_ROUTERS, nextHeader: IPPROTO_ICMPV6, hopLimit: 1, extensions: [{ type: IPPROTO_HOPOPTS, data: routerAlert }], payload: mld });
  return ethernet({ dst: groupMac(MLDV2_ROUTERS), src: from.mac, etherType: ETHERTYPE_IPV6, payload: packet });
}

export interface Membership {
  port: number;
  source: ReportSource;
  groups: string[];
}

/** Keeps the appliance's memberships reported on its ports. */
export class GroupReporter {
  private current: Membership[] = [];
  private refresh?: NodeJS.Timeout;
  private readonly pending = new Set<NodeJS.Timeout>();
  reportsSent = 0;

  constructor(private readonly send: (port: number, frame: Uint8Array) => void) {}

  /** The memberships wanted now: new ones are reported at once, dropped ones left. */
  set(wanted: Membership[]): void {
    const key = (m: Membership, g: string): string => `${m.port} ${m.source.mac} ${m.source.ipv4 ?? ""} ${g}`;
    const before = new Set(this.current.flatMap((m) => m.groups.map((g) => key(m, g))));
    const after = new Set(wanted.flatMap((m) => m.groups.map((g) => key(m, g))));
    for (const m of this.current) {
      const gone = m.groups.filter((g) => !after.has(key(m, g)));
      if (gone.length) this.twice(m, gone, CHANGE_TO_INCLUDE);
    }
    for (const m of wanted) {
      const fresh = m.groups.filter((g) => !before.has(key(m, g)));
      if (fresh.length) this.twice(m, fresh, CHANGE_TO_EXCLUDE);
    }
    this.current = wanted.map((m) => ({ ...m, groups: [...m.groups] }));
    clearInterval(this.refresh);
    this.refresh = undefined;
    if (this.current.some((m) => m.groups.length)) {
      this.refresh = setInterval(() => { for (const m of this.current) this.report(m, m.groups, MODE_IS_EXCLUDE); }, REFRESH_MS);
      this.refresh.unref();
    }
  }

  private twice(m: Membership, groups: string[], type: number): void {
    this.report(m, groups, type);
    const t = setTimeout(() => {
      this.pending.delete(t);
      this.report(m, groups, type);
    }, ROBUSTNESS_GAP_MS);
    t.unref();
    this.pending.add(t);
  }

  private report(m: Membership, groups: string[], type: number): void {
    const v4 = groups.filter((g) => !g.includes(":"));
    const v6 = groups.filter((g) => g.includes(":"));
    if (v4.length) this.send(m.port, igmpReport(m.source, v4, type));
    if (v6.length) this.send(m.port, mldReport(m.source, v6, type));
    this.reportsSent += (v4.length ? 1 : 0) + (v6.length ? 1 : 0);
  }

  /** Leaves every group (one report each, now) and stops. */
  stop(): void {
    for (const m of this.current) if (m.groups.length) this.report(m, m.groups, CHANGE_TO_INCLUDE);
    this.current = [];
    clearInterval(this.refresh);
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
  }
}
