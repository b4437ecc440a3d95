// Demo traffic for the simulated board: virtual clients behind a router on one port, virtual
// servers on the others. Clients open TCP connections (SYN, request, ACKs, FIN), send UDP queries
// and a little IPv6; servers answer what reaches them addressed to themselves (NAT), as a real
// server would, through the appliance. A small share of noise (ARP and neighbour solicitations for
// the destinations, pings, a port scan, frames cut short) makes the punt and drop counters move.
//
// Deterministic: the same seed and options give the same frames, tick after tick, because time is
// virtual (tick n covers [n * tickMs, (n + 1) * tickMs)) and the random numbers are seeded. The
// server replies depend only on what the engine transmitted, which is itself deterministic.
// The board knows nothing of services: the caller says where clients connect to and which hosts
// are servers; this file only speaks Ethernet, IP, TCP and UDP.
import {
  ACK, ARP_REQUEST, ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_IPV6, FIN, IPPROTO_ICMP,
  IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, PSH, RST, SYN, arp, ethernet, formatIPv4, formatIPv6,
  icmpv4, icmpv6, ipv4, ipv6, parseIP, tcp4Frame, tcp6Frame, udp4Frame, udp6Frame,
} from "../net/frame.js";

/** A frame on a board port at a virtual time (the shape the engine's offline runner takes). */
export interface TimedFrame {
  tsUs: number;
  port: number;
  data: Uint8Array;
}

/** Somewhere clients connect to: an address, a protocol and a port. */
export interface Destination {
  address: string;
  protocol: "tcp" | "udp";
  port: number;
  /** Share of the client sessions, relative to the other destinations' (default 1). */
  weight?: number;
}

/** A virtual server: it answers TCP and UDP addressed to itself, through the appliance. */
export interface ServerHost {
  port: number;
  address: string;
  mac: string;
  /** Its default gateway: the appliance's MAC on that port. */
  gatewayMac: string;
}

export interface TrafficOptions {
  seed?: number;
  /** Length of a tick in ms (default 10). */
  tickMs?: number;
  /** New client sessions (TCP connections and UDP queries) per second, on average (default 150). */
  sessionsPerSecond?: number;
  /** The port the clients' router is on, its MAC, and the appliance's MAC on that port. */
  client: { port: number; routerMac: string; applianceMac: string; routerIPv4?: string; routerIPv6?: string };
  destinations: Destination[];
  servers: ServerHost[];
  /** Noise: a port scanner probes this address and port, where nothing listens (optional). */
  closedPort?: { address: string; port: number };
  /** UDP ports of GUE: servers decapsulate such datagrams and answer the client directly. */
  guePorts?: number[];
  /** Noise on or off (default on). */
  noise?: boolean;
}

/** Client address pools: documentation prefixes, behind the router. */
export const CLIENT_NET4 = "192.0.2.0/24";
export const CLIENT_NET6 = "2001:db8:c::/64";
const CLIENTS6 = 1024;
/** Mean time between noise frames of each kind: a few punts and drops every second. */
const NOISE_EVERY_US = {
  arp: 500e3, // the router asks for a VIP's MAC (punted: the host answers ARP)
  nd: 1500e3, // ... and for an IPv6 VIP's (punted)
  ping: 800e3, // someone pings a VIP (punted: the host answers)
  scan: 300e3, // a port scanner tries a VIP port where no service is (dropped)
  runt: 900e3, // a frame cut short on the way (dropped)
} as const;
const MAX_OPEN_CONNECTIONS = 100_000; // NAT connections the servers keep sequence numbers for
const EPHEMERAL_FIRST = 32768;
const EPHEMERAL_COUNT = 28232; // 32768-60999, as Linux picks them

/** Small, fast, seedable PRNG (mulberry32): plenty for traffic shapes, never for keys. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const enc = new TextEncoder();
const HTTP_PATHS = ["/", "/index.html", "/img/logo.png", "/api/v1/orders", "/api/v1/users/42", "/health", "/static/app.js"];
const DNS_NAMES = ["www.example.com", "mail.example.org", "api.example.net", "cdn.example.com", "example.edu"];

function dnsQuery(id: number, name: string, aaaa: boolean): Uint8Array {
  const labels = name.split(".").flatMap((l) => [l.length, ...enc.encode(l)]);
  const q = [id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, ...labels, 0, 0, aaaa ? 28 : 1, 0, 1];
  return Uint8Array.from(q);
}

interface Parsed {
  family: 4 | 6;
  src: string;
  dst: string;
  dstKey: string;
  proto: number;
  sport: number;
  dport: number;
  tcpFlags: number;
  seq: number;
  payloadBytes: number;
}

/** Reads what a server needs from a frame the appliance sent it: plain Ethernet, IPv4/6, TCP/UDP. */
function parseForServer(f: Uint8Array): Parsed | undefined {
  if (f.length < 14) return undefined;
  const dv = new DataView(f.buffer, f.byteOffset, f.byteLength);
  const et = dv.getUint16(12);
  let family: 4 | 6;
  let l4: number;
  let end: number;
  let proto: number;
  let src: string;
  let dst: string;
  let dstKey: string;
  if (et === ETHERTYPE_IPV4 && f.length >= 34) {
    family = 4;
    const ihl = (f[14] & 15) * 4;
    l4 = 14 + ihl;
    end = Math.min(f.length, 14 + dv.getUint16(16));
    proto = f[23];
    src = formatIPv4(f, 26);
    dst = formatIPv4(f, 30);
    dstKey = `4/${dst}`;
  } else if (et === ETHERTYPE_IPV6 && f.length >= 54) {
    family = 6;
    l4 = 54; // servers here take no extension headers
    end = Math.min(f.length, 54 + dv.getUint16(18));
    proto = f[20];
    src = formatIPv6(f, 22);
    dst = formatIPv6(f, 38);
    dstKey = `6/${dst}`;
  } else {
    return undefined;
  }
  if (proto === IPPROTO_TCP && l4 + 20 <= end) {
    const doff = (f[l4 + 12] >> 4) * 4;
    return {
      family, src, dst, dstKey, proto, sport: dv.getUint16(l4), dport: dv.getUint16(l4 + 2),
      tcpFlags: f[l4 + 13], seq: dv.getUint32(l4 + 4), payloadBytes: Math.max(0, end - l4 - doff),
    };
  }
  if (proto === IPPROTO_UDP && l4 + 8 <= end) {
    return {
      family, src, dst, dstKey, proto, sport: dv.getUint16(l4), dport: dv.getUint16(l4 + 2),
      tcpFlags: 0, seq: 0, payloadBytes: end - l4 - 8,
    };
  }
  return undefined;
}

/**
 * The demo's traffic, one tick at a time: call next() for each tick's frames (in time order), and
 * observe() with every frame the appliance transmitted, so that servers can answer.
 */
export class DemoTraffic {
  readonly tickMs: number;
  private readonly rnd: () => number;
  private readonly o: TrafficOptions;
  private readonly sessionsPerSecond: number;
  private readonly totalWeight: number;
  private readonly servers = new Map<string, ServerHost>();
  /** Frames waiting for their tick, by tick number. */
  private readonly pending = new Map<number, TimedFrame[]>();
  private tick = 0;
  private nextSessionUs: number;
  private readonly noiseAt: Record<"arp" | "nd" | "ping" | "scan" | "runt", number>;
  private readonly nextPort4 = new Uint16Array(256);
  private readonly nextPort6 = new Uint16Array(CLIENTS6);
  private ipId = 0;
  /** Server-side sequence numbers of open NAT connections, so replies look like one stream. */
  private readonly serverSeq = new Map<string, number>();

  constructor(o: TrafficOptions) {
    this.o = o;
    this.tickMs = o.tickMs ?? 10;
    this.rnd = prng(o.seed ?? 1);
    this.sessionsPerSecond = o.sessionsPerSecond ?? 150;
    this.totalWeight = o.destinations.reduce((a, d) => a + (d.weight ?? 1), 0);
    for (const s of o.servers) this.servers.set(`${parseIP(s.address).family}/${canonical(s.address)}`, s);
    this.nextSessionUs = this.gap(1e6 / this.sessionsPerSecond);
    const noise = o.noise ?? true;
    const never = Infinity;
    this.noiseAt = {
      arp: noise && this.v4Target() ? this.every(NOISE_EVERY_US.arp) : never,
      nd: noise && this.v6Target() ? this.every(NOISE_EVERY_US.nd) : never,
      ping: noise && o.destinations.length ? this.every(NOISE_EVERY_US.ping) : never,
      scan: noise && o.closedPort ? this.every(NOISE_EVERY_US.scan) : never,
      runt: noise && o.destinations.length ? this.every(NOISE_EVERY_US.runt) : never,
    };
  }

  /** The virtual time at the start of the next tick, in ms. */
  get nowMs(): number {
    return this.tick * this.tickMs;
  }

  /** The frames of the next tick, in time order; advances virtual time by one tick. */
  next(): TimedFrame[] {
    const endUs = (this.tick + 1) * this.tickMs * 1000;
    if (this.totalWeight > 0 && this.sessionsPerSecond > 0) {
      while (this.nextSessionUs < endUs) {
        this.startSession(this.nextSessionUs);
        this.nextSessionUs += this.gap(1e6 / this.sessionsPerSecond);
      }
    }
    this.noise(endUs);
    const frames = this.pending.get(this.tick) ?? [];
    this.pending.delete(this.tick);
    this.tick++;
    return frames.sort((a, b) => a.tsUs - b.tsUs);
  }

  /** A frame the appliance transmitted at tsUs: a server it was addressed to answers. */
  observe(f: TimedFrame): void {
    const p = parseForServer(f.data);
    if (!p) return;
    const srv = this.servers.get(p.dstKey);
    if (!srv || srv.port !== f.port) return;
    // a tunnelled packet: the server takes the inner packet and answers the client itself
    if (p.proto === IPPROTO_UDP && this.o.guePorts?.includes(p.dport)) return;
    const at = f.tsUs + 200 + Math.floor(this.rnd() * 1800); // the server thinks for 0.2-2 ms
    const base = { srcMac: srv.mac, dstMac: srv.gatewayMac, src: srv.address, dst: p.src, sport: p.dport, dport: p.sport };
    if (p.proto === IPPROTO_UDP) {
      const answer = { ...base, payload: new Uint8Array(p.payloadBytes + 16) };
      return this.at(at, srv.port, p.family === 4 ? udp4Frame(answer) : udp6Frame(answer));
    }
    const conn = `${p.src}/${p.sport}/${p.dst}/${p.dport}`;
    const f4 = p.family === 4 ? tcp4Frame : tcp6Frame;
    if (p.tcpFlags & RST) {
      this.serverSeq.delete(conn);
    } else if (p.tcpFlags & SYN) {
      if (this.serverSeq.size >= MAX_OPEN_CONNECTIONS) this.serverSeq.clear(); // lost FINs: forget, do not grow
      const isn = Math.floor(this.rnd() * 2 ** 32);
      this.serverSeq.set(conn, (isn + 1) >>> 0);
      this.at(at, srv.port, f4({ ...base, flags: SYN | ACK, seq: isn, ack: (p.seq + 1) >>> 0 }));
    } else if (p.tcpFlags & FIN) {
      const seq = this.serverSeq.get(conn) ?? 1;
      this.serverSeq.delete(conn);
      this.at(at, srv.port, f4({ ...base, flags: FIN | ACK, seq, ack: (p.seq + p.payloadBytes + 1) >>> 0 }));
    } else if (p.payloadBytes > 0) {
      const seq = this.serverSeq.get(conn) ?? 1;
      const body = 200 + Math.floor(this.rnd() * 1000);
      const payload = enc.encode(`HTTP/1.1 200 OK\r\nContent-Length: ${body}\r\n\r\n${"x".repeat(body)}`);
      this.serverSeq.set(conn, (seq + payload.length) >>> 0);
      this.at(at, srv.port, f4({ ...base, flags: PSH | ACK, seq, ack: (p.seq + p.payloadBytes) >>> 0, payload }));
    }
  }

  /** Queues a frame for the tick holding tsUs (never a tick already handed out). */
  private at(tsUs: number, port: number, data: Uint8Array): void {
    tsUs = Math.round(tsUs); // whole microseconds, as a capture has them
    let tick = Math.floor(tsUs / 1000 / this.tickMs);
    if (tick < this.tick) {
      tick = this.tick;
      tsUs = tick * this.tickMs * 1000;
    }
    let list = this.pending.get(tick);
    if (!list) this.pending.set(tick, (list = []));
    list.push({ tsUs, port, data });
  }

  /** An exponential gap with this mean (µs): arrivals of a Poisson process. */
  private gap(meanUs: number): number {
    return Math.max(1, Math.round(-Math.log(1 - this.rnd()) * meanUs));
  }

  /** A gap of 0.5 to 1.5 times this mean (µs): noise that comes steadily, so that every second shows some. */
  private every(meanUs: number): number {
    return Math.round(meanUs * (0.5 + this.rnd()));
  }

  private pick(): Destination {
    let r = this.rnd() * this.totalWeight;
    for (const d of this.o.destinations) {
      r -= d.weight ?? 1;
      if (r < 0) return d;
    }
    return this.o.destinations[this.o.destinations.length - 1];
  }

  /** A client address of the family and a fresh source port for it. */
  private clientEndpoint(family: 4 | 6): { addr: string; port: number } {
    if (family === 4) {
      const host = 1 + Math.floor(this.rnd() * 254);
      const port = EPHEMERAL_FIRST + (this.nextPort4[host]++ % EPHEMERAL_COUNT);
      return { addr: `192.0.2.${host}`, port };
    }
    const host = Math.floor(this.rnd() * CLIENTS6);
    const port = EPHEMERAL_FIRST + (this.nextPort6[host]++ % EPHEMERAL_COUNT);
    return { addr: `2001:db8:c::${(0x1000 + host).toString(16)}`, port };
  }

  private startSession(t: number): void {
    const d = this.pick();
    const family = parseIP(d.address).family;
    const c = this.clientEndpoint(family);
    if (d.protocol === "udp") return this.udpQuery(t, d, family, c.addr, c.port);
    this.tcpConnection(t, d, family, c.addr, c.port);
  }

  /** Client frames reach the appliance from the router. */
  private clientFrame(): { srcMac: string; dstMac: string } {
    return { srcMac: this.o.client.routerMac, dstMac: this.o.client.applianceMac };
  }

  /** SYN; ACK and a request after one round trip; the client's ACKs of the answer; FIN; last ACK. */
  private tcpConnection(t: number, d: Destination, family: 4 | 6, addr: string, sport: number): void {
    const rtt = 5000 + Math.floor(this.rnd() * 60000);
    const isn = Math.floor(this.rnd() * 2 ** 32);
    const port = this.o.client.port;
    const base = { ...this.clientFrame(), src: addr, dst: d.address, sport, dport: d.port };
    const f = family === 4 ? tcp4Frame : tcp6Frame;
    const path = HTTP_PATHS[Math.floor(this.rnd() * HTTP_PATHS.length)];
    const request = enc.encode(`GET ${path} HTTP/1.1\r\nHost: ${d.address}\r\nUser-Agent: flowswitch-demo\r\n\r\n`);
    let seq = isn;
    this.at(t, port, f({ ...base, flags: SYN, seq }));
    seq = (seq + 1) >>> 0;
    t += rtt;
    this.at(t, port, f({ ...base, flags: ACK, seq, ack: 1 }));
    this.at(t + 100, port, f({ ...base, flags: PSH | ACK, seq, ack: 1, payload: request }));
    seq = (seq + request.length) >>> 0;
    const acks = Math.floor(this.rnd() * 6); // the answer's segments, acknowledged as they come
    let ack = 1;
    for (let i = 0; i < acks; i++) {
      t += (rtt >> 1) + Math.floor(this.rnd() * 20000);
      ack += 1448 * 2;
      this.at(t, port, f({ ...base, flags: ACK, seq, ack }));
    }
    t += rtt + Math.floor(this.rnd() * 100000);
    this.at(t, port, f({ ...base, flags: FIN | ACK, seq, ack }));
    this.at(t + rtt, port, f({ ...base, flags: ACK, seq: (seq + 1) >>> 0, ack: ack + 1 }));
  }

  private udpQuery(t: number, d: Destination, family: 4 | 6, addr: string, sport: number): void {
    const name = DNS_NAMES[Math.floor(this.rnd() * DNS_NAMES.length)];
    const payload = dnsQuery(Math.floor(this.rnd() * 65536), name, this.rnd() < 0.3);
    const base = { ...this.clientFrame(), src: addr, dst: d.address, sport, dport: d.port, payload };
    this.at(t, this.o.client.port, family === 4 ? udp4Frame(base) : udp6Frame(base));
  }

  private v4Target(): string | undefined {
    return this.o.destinations.find((d) => parseIP(d.address).family === 4)?.address;
  }

  private v6Target(): string | undefined {
    return this.o.destinations.find((d) => parseIP(d.address).family === 6)?.address;
  }

  /** ARP and neighbour solicitations from the router, pings, a port scan, frames cut short. */
  private noise(endUs: number): void {
    const n = this.noiseAt;
    const c = this.o.client;
    const routerIPv4 = c.routerIPv4 ?? "198.51.100.1";
    const routerIPv6 = c.routerIPv6 ?? "2001:db8:100::1";
    while (n.arp < endUs) {
      const request = arp({ op: ARP_REQUEST, sha: c.routerMac, spa: routerIPv4, tpa: this.v4Target()! });
      this.at(n.arp, c.port, ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: c.routerMac, etherType: ETHERTYPE_ARP, payload: request, pad: true }));
      n.arp += this.every(NOISE_EVERY_US.arp);
    }
    while (n.nd < endUs) {
      this.at(n.nd, c.port, this.neighbourSolicitation(routerIPv6, this.v6Target()!));
      n.nd += this.every(NOISE_EVERY_US.nd);
    }
    while (n.ping < endUs) {
      const d = this.o.destinations[Math.floor(this.rnd() * this.o.destinations.length)];
      this.at(n.ping, c.port, this.echoRequest(d.address));
      n.ping += this.every(NOISE_EVERY_US.ping);
    }
    while (n.scan < endUs) {
      const cp = this.o.closedPort!;
      const family = parseIP(cp.address).family;
      const src = this.clientEndpoint(family);
      const base = { ...this.clientFrame(), src: src.addr, dst: cp.address, sport: src.port, dport: cp.port, flags: SYN };
      this.at(n.scan, c.port, family === 4 ? tcp4Frame(base) : tcp6Frame(base));
      n.scan += this.every(NOISE_EVERY_US.scan);
    }
    while (n.runt < endUs) {
      // a request whose frame was cut short on the way (a bad cable, a buggy NIC)
      const d = this.o.destinations[0];
      const family = parseIP(d.address).family;
      const src = this.clientEndpoint(family);
      const syn = { ...this.clientFrame(), src: src.addr, dst: d.address, sport: src.port, dport: d.port, flags: SYN };
      const whole = family === 4 ? tcp4Frame(syn) : tcp6Frame(syn);
      this.at(n.runt, c.port, whole.slice(0, 14 + 12 + Math.floor(this.rnd() * 8)));
      n.runt += this.every(NOISE_EVERY_US.runt);
    }
  }

  private echoRequest(dst: string): Uint8Array {
    const family = parseIP(dst).family;
    const c = this.o.client;
    const src = this.clientEndpoint(family).addr;
    const rest = ((0x4000 + (this.ipId & 0xfff)) << 16) | (this.ipId++ & 0xffff);
    const payload = enc.encode("flowswitch demo ping ..........");
    if (family === 4) {
      const packet = ipv4({ src, dst, protocol: IPPROTO_ICMP, payload: icmpv4({ type: 8, rest: rest >>> 0, payload }) });
      return ethernet({ dst: c.applianceMac, src: c.routerMac, etherType: ETHERTYPE_IPV4, payload: packet });
    }
    const packet = ipv6({ src, dst, nextHeader: IPPROTO_ICMPV6, payload: icmpv6({ type: 128, rest: rest >>> 0, payload, src, dst }) });
    return ethernet({ dst: c.applianceMac, src: c.routerMac, etherType: ETHERTYPE_IPV6, payload: packet });
  }

  private neighbourSolicitation(src: string, target: string): Uint8Array {
    const t = parseIP(target).bytes;
    const hex = (i: number): string => t[i].toString(16).padStart(2, "0");
    const group = `ff02::1:ff${hex(13)}:${hex(14)}${hex(15)}`; // solicited-node multicast
    const mac = `33:33:ff:${hex(13)}:${hex(14)}:${hex(15)}`;
    const option = Uint8Array.of(1, 1, ...this.o.client.routerMac.split(":").map((x) => parseInt(x, 16)));
    const body = new Uint8Array(16 + option.length);
    body.set(t, 0);
    body.set(option, 16);
    const icmp = icmpv6({ type: 135, rest: 0, payload: body, src, dst: group });
    const packet = ipv6({ src, dst: group, nextHeader: IPPROTO_ICMPV6, payload: icmp, hopLimit: 255 });
    return ethernet({ dst: mac, src: this.o.client.routerMac, etherType: ETHERTYPE_IPV6, payload: packet });
  }
}

/** The canonical text of an address, so that spellings like "2001:DB8::B" still find their server. */
function canonical(address: string): string {
  const a = parseIP(address);
  return a.family === 4 ? formatIPv4(a.bytes) : formatIPv6(a.bytes);
}
