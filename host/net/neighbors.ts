// Neighbour resolution for the addresses the data plane must reach by MAC: backends and gateways
// configured by IP. ARP (IPv4) and neighbour solicitations (IPv6) are sent from the port the
// neighbour is on, retried every second while unresolved, and refreshed every 30 s; an entry that
// stops answering for 3 refreshes is forgotten, so its backend stops getting traffic rather than
// being sent to a stale MAC. Answers arrive as punted frames and are fed to learn().
import {
  arp, ethernet, formatIPv4, formatIPv6, formatMac, ipv6, icmpv6, parseIP, ETHERTYPE_ARP, ETHERTYPE_IPV6, ARP_REQUEST,
} from "./frame.js";

export interface NeighborSource {
  port: number;
  mac: Uint8Array;
  ipv4?: string;
  ipv6?: string;
}

export type NeighborState = "incomplete" | "reachable" | "stale";

export interface NeighborEntry {
  ip: string;
  port: number;
  state: NeighborState;
  mac?: Uint8Array;
  /** ms of the last answer */
  seen: number;
  /** requests sent since the last answer */
  unanswered: number;
}

export interface NeighborOptions {
  retryMs?: number;
  refreshMs?: number;
  /** Refreshes without an answer before an entry is forgotten. */
  maxUnanswered?: number;
  now?: () => number;
  log?: (line: string) => void;
}

export class Neighbors {
  private readonly table = new Map<string, NeighborEntry>();
  private readonly sources = new Map<string, NeighborSource>();
  private timer?: NodeJS.Timeout;
  private readonly retryMs: number;
  private readonly refreshMs: number;
  private readonly maxUnanswered: number;
  private readonly now: () => number;
  private readonly log: (line: string) => void;

  constructor(
    private readonly send: (port: number, frame: Uint8Array) => void,
    private readonly onChange: () => void,
    opts: NeighborOptions = {},
  ) {
    this.retryMs = opts.retryMs ?? 1000;
    this.refreshMs = opts.refreshMs ?? 30_000;
    this.maxUnanswered = opts.maxUnanswered ?? 3;
    this.now = opts.now ?? Date.now;
    this.log = opts.log ?? (() => undefined);
  }

  /** The addresses to resolve, each with the port (and its addresses) to ask from. */
  want(list: readonly { ip: string; source: NeighborSource }[]): void {
    const keep = new Set(list.map((x) => canonical(x.ip)));
    for (const ip of this.table.keys()) {
      if (!keep.has(ip)) {
        this.table.delete(ip);
        this.sources.delete(ip);
      }
    }
    for (const { ip: raw, source } of list) {
      const ip = canonical(raw);
      this.sources.set(ip, source);
      if (!this.table.has(ip)) {
        this.table.set(ip, { ip, port: source.port, state: "incomplete", seen: 0, unanswered: 0 });
        this.ask(ip);
      }
    }
    this.timer ??= setInterval(() => this.tick(), Math.min(this.retryMs, 250));
    this.timer.unref();
  }

  /** An answer (or any frame) said ip is at mac, on port. Only wanted addresses are learnt. */
  learn(rawIp: string, mac: Uint8Array, port: number): void {
    const ip = canonical(rawIp);
    const e = this.table.get(ip);
    if (!e || mac.every((b) => b === 0) || mac[0] & 1) return;
    const changed = !e.mac || formatMac(e.mac) !== formatMac(mac) || e.state !== "reachable";
    e.mac = mac.slice();
    e.port = port;
    e.state = "reachable";
    e.seen = this.now();
    e.unanswered = 0;
    if (changed) {
      this.log(`neighbor: ${ip} is at ${formatMac(mac)}`);
      this.onChange();
    }
  }

  mac(ip: string): Uint8Array | undefined {
    const e = this.table.get(canonical(ip));
    return e?.state === "incomplete" ? undefined : e?.mac;
  }

  entries(): NeighborEntry[] {
    return [...this.table.values()];
  }

  private tick(): void {
    const now = this.now();
    for (const e of this.table.values()) {
      if (e.state === "incomplete") {
        this.ask(e.ip);
        continue;
      }
      if (now - e.seen < this.refreshMs) continue;
      if (e.unanswered >= this.maxUnanswered) {
        this.log(`neighbor: ${e.ip} stopped answering; forgotten`);
        e.state = "incomplete";
        e.mac = undefined;
        e.unanswered = 0;
        this.onChange();
        continue;
      }
      if (e.state === "reachable") e.state = "stale";
      this.ask(e.ip);
      e.seen = now - this.refreshMs + this.retryMs; // ask again after retryMs if no answer
    }
  }

  private ask(ip: string): void {
    const e = this.table.get(ip);
    const src = this.sources.get(ip);
    if (!e || !src) return;
    e.unanswered++;
    const mac = formatMac(src.mac);
    if (!ip.includes(":")) {
      if (!src.ipv4) return;
      this.send(src.port, ethernet({
        dst: "ff:ff:ff:ff:ff:ff", src: mac, etherType: ETHERTYPE_ARP,
        payload: arp({ op: ARP_REQUEST, sha: mac, spa: src.ipv4, tpa: ip }),
      }));
      return;
    }
    if (!src.ipv6) return;
    const t = parseIP(ip).bytes;
    const group = `ff02::1:ff${hex(t[13])}:${hex(t[14])}${hex(t[15])}`;
    const body = new Uint8Array(16 + 8);
    body.set(t, 0);
    body.set([1, 1], 16); // source link-layer address option
    body.set(src.mac, 18);
    this.send(src.port, ethernet({
      dst: `33:33:ff:${hex(t[13])}:${hex(t[14])}:${hex(t[15])}`, src: mac, etherType: ETHERTYPE_IPV6,
      payload: ipv6({ src: src.ipv6, dst: group, nextHeader: 58, hopLimit: 255, payload: icmpv6({ src: src.ipv6, dst: group, type: 135, payload: body }) }),
    }));
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}

const hex = (b: number): string => b.toString(16).padStart(2, "0");

/** One spelling per address, so that "fd77:3::11" and "fd77:3:0::11" are one neighbour. */
export function canonical(ip: string): string {
  try {
    const a = parseIP(ip);
    return a.family === 4 ? formatIPv4(a.bytes) : formatIPv6(a.bytes);
  } catch {
    return ip;
  }
}
