// What the host does with the frames the engines punt: answer ARP and neighbour solicitations for
// its own addresses and the VIPs that answer them, answer pings to both, learn neighbours from
// whatever they say, and announce VIPs (gratuitous ARP, unsolicited neighbour advertisements).
// Anything else addressed to the appliance is counted and dropped.
import * as L from "../../assembly/layout.js";
import type { Config } from "../config/schema.js";
import {
  arp, ethernet, formatMac, formatIPv6, ipv4, ipv6, icmpv4, icmpv6, parseIP, parseMac, ARP_REPLY, ARP_REQUEST,
  ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6,
} from "./frame.js";
import { l2, arpOf, ipOf, ndLinkAddress, type L2View } from "./packet-view.js";
import { canonical, type Neighbors } from "./neighbors.js";

export interface ResponderStats {
  arpReplies: number;
  ndAdvertisements: number;
  echoReplies: number;
  ignored: number;
  malformed: number;
}

export class Responder {
  readonly stats: ResponderStats = { arpReplies: 0, ndAdvertisements: 0, echoReplies: 0, ignored: 0, malformed: 0 };
  private answers = new Set<string>(); // addresses we answer ARP / ND for
  private ours = new Set<string>(); // addresses pings are answered for (ours and every VIP)

  constructor(
    private readonly send: (port: number, frame: Uint8Array) => void,
    private readonly neighbors: Neighbors,
    private config: Config,
  ) {
    this.update(config);
  }

  update(config: Config): void {
    this.config = config;
    this.answers = new Set();
    this.ours = new Set();
    for (const p of config.ports) {
      for (const a of [p.ipv4, p.ipv6]) if (a) this.answers.add(canonical(a.text)).add(a.text);
    }
    for (const s of config.services) {
      if (s.arp) this.answers.add(canonical(s.vip.text));
      this.ours.add(canonical(s.vip.text));
    }
    for (const a of this.answers) this.ours.add(a);
  }

  handle(port: number, reason: number, frame: Uint8Array): void {
    const v = l2(frame);
    const p = this.config.ports[port];
    if (!v || !p) return void this.stats.malformed++;
    const portMac = formatMac(p.mac);
    if (reason === L.PUNT_ARP) {
      const a = arpOf(frame, v);
      if (!a) return void this.stats.malformed++;
      if (a.spa !== "0.0.0.0") this.neighbors.learn(a.spa, a.sha, port);
      if (a.op !== ARP_REQUEST || !this.answers.has(canonical(a.tpa))) return void this.stats.ignored++;
      this.stats.arpReplies++;
      return this.send(port, ethernet({
        dst: formatMac(a.sha), src: portMac, vlans: v.vlans, etherType: ETHERTYPE_ARP,
        payload: arp({ op: ARP_REPLY, sha: portMac, spa: a.tpa, tha: formatMac(a.sha), tpa: a.spa }),
      }));
    }
    const ip = ipOf(frame, v);
    if (!ip) return void this.stats.malformed++;
    if (ip.family === 6 && ip.protocol === 58 && ip.l4len >= 24 && (frame[ip.l4] === 135 || frame[ip.l4] === 136)) {
      return this.nd(port, frame, v, ip.src, ip.l4, ip.l4len, portMac);
    }
    const echo = ip.family === 4 ? ip.protocol === 1 && frame[ip.l4] === 8 : ip.protocol === 58 && frame[ip.l4] === 128;
    if (echo && ip.l4len >= 8 && this.ours.has(canonical(ip.dst))) {
      const rest = frame.subarray(ip.l4 + 4, ip.l4 + 8);
      const data = frame.subarray(ip.l4 + 8, ip.l4 + ip.l4len);
      this.stats.echoReplies++;
      const payload = ip.family === 4
        ? ipv4({ src: ip.dst, dst: ip.src, protocol: 1, payload: icmpv4({ type: 0, rest, payload: data }) })
        : ipv6({ src: ip.dst, dst: ip.src, nextHeader: 58, payload: icmpv6({ src: ip.dst, dst: ip.src, type: 129, rest, payload: data }) });
      return this.send(port, ethernet({ dst: formatMac(v.srcMac), src: portMac, vlans: v.vlans, etherType: ip.family === 4 ? ETHERTYPE_IPV4 : ETHERTYPE_IPV6, payload }));
    }
    this.stats.ignored++;
  }

  /** Neighbour solicitations and advertisements (RFC 4861). */
  private nd(port: number, f: Uint8Array, v: L2View, src: string, l4: number, len: number, portMac: string): void {
    const type = f[l4];
    const target = f.slice(l4 + 8, l4 + 24);
    const targetText = formatIPv6(f, l4 + 8);
    if (type === 136) {
      const mac = ndLinkAddress(f, l4 + 24, l4 + len, 2) ?? v.srcMac;
      this.neighbors.learn(targetText, mac, port);
      return void this.stats.ignored++;
    }
    const from = ndLinkAddress(f, l4 + 24, l4 + len, 1);
    if (from && src !== "::") this.neighbors.learn(src, from, port);
    if (!this.answers.has(canonical(targetText))) return void this.stats.ignored++;
    const unspecified = src === "::";
    const to = unspecified ? "ff02::1" : src;
    const body = new Uint8Array(24);
    body.set(target, 0);
    body.set([2, 1], 16); // target link-layer address option
    body.set(parseMac(portMac), 18);
    const flags = (unspecified ? 0 : 0x40000000) | 0x20000000; // solicited (unless to all nodes), override
    this.stats.ndAdvertisements++;
    this.send(port, ethernet({
      dst: unspecified ? "33:33:00:00:00:01" : formatMac(from ?? v.srcMac), src: portMac, vlans: v.vlans, etherType: ETHERTYPE_IPV6,
      payload: ipv6({ src: targetText, dst: to, nextHeader: 58, hopLimit: 255, payload: icmpv6({ src: targetText, dst: to, type: 136, rest: flags >>> 0, payload: body }) }),
    }));
  }

  /** Announces addresses on a port: gratuitous ARP for IPv4, unsolicited advertisements for IPv6. */
  announce(port: number, addresses: readonly string[]): void {
    const p = this.config.ports[port];
    if (!p) return;
    const mac = formatMac(p.mac);
    for (const a of addresses) {
      if (!a.includes(":")) {
        this.send(port, ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: mac, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: mac, spa: a, tpa: a }) }));
        continue;
      }
      const body = new Uint8Array(24);
      body.set(parseIP(a).bytes, 0);
      body.set([2, 1], 16);
      body.set(p.mac, 18);
      this.send(port, ethernet({
        dst: "33:33:00:00:00:01", src: mac, etherType: ETHERTYPE_IPV6,
        payload: ipv6({ src: a, dst: "ff02::1", nextHeader: 58, hopLimit: 255, payload: icmpv6({ src: a, dst: "ff02::1", type: 136, rest: 0x20000000, payload: body }) }),
      }));
    }
  }
}
