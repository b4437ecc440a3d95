// Round trips to the sites, for measured distance: the system sends each site a PING with a nonce
// and takes the PONG carrying the same nonce, from the same site, as one sample (SiteTable.onRtt).
// A pong for a nonce not outstanding (answered already, expired, never sent, or from another
// site) is counted and ignored. Outstanding pings are bounded: the oldest goes first.

import type { PingMsg, PongMsg } from "./protocol.js";

export interface RttProbeOptions {
  /** A ping unanswered this long is forgotten (its pong, if it comes, is late). Default 5000 ms. */
  timeoutMs?: number;
  /** Pings awaiting a pong at most; default 1024. */
  maxOutstanding?: number;
  /** First nonce; default random. Nonces then count up (mod 2^32). */
  firstNonce?: number;
}

export interface RttCounters {
  pings: number;
  pongs: number;
  /** Pongs matching no outstanding ping of that site. */
  unmatched: number;
  /** Pings forgotten unanswered. */
  expired: number;
}

export class RttProbe {
  private readonly timeoutMs: number;
  private readonly maxOutstanding: number;
  private nonce: number;
  /** nonce -> (site, sent); insertion order = oldest first. */
  private readonly outstanding = new Map<number, { site: string; sent: number }>();
  private readonly counts: RttCounters = { pings: 0, pongs: 0, unmatched: 0, expired: 0 };

  constructor(opts: RttProbeOptions = {}) {
    this.timeoutMs = opts.timeoutMs ?? 5000;
    this.maxOutstanding = opts.maxOutstanding ?? 1024;
    this.nonce = (opts.firstNonce ?? Math.floor(Math.random() * 0x1_0000_0000)) >>> 0;
  }

  /** The PING to send to `site` now. */
  ping(site: string, now: number): PingMsg {
    this.expire(now);
    if (this.outstanding.size >= this.maxOutstanding) {
      const oldest = this.outstanding.keys().next();
      if (!oldest.done) this.outstanding.delete(oldest.value);
      this.counts.expired++;
    }
    const nonce = this.nonce;
    this.nonce = (this.nonce + 1) >>> 0;
    this.outstanding.delete(nonce); // a wrapped nonce replaces its ancient namesake
    this.outstanding.set(nonce, { site, sent: now });
    this.counts.pings++;
    return { type: "ping", nonce };
  }

  /** The round trip in ms if `msg` answers an outstanding ping to `site`; undefined otherwise (counted). */
  pong(site: string, msg: PongMsg, now: number): number | undefined {
    this.expire(now);
    const p = this.outstanding.get(msg.nonce);
    if (!p || p.site !== site) {
      this.counts.unmatched++;
      return undefined;
    }
    this.outstanding.delete(msg.nonce);
    this.counts.pongs++;
    return Math.max(0, now - p.sent);
  }

  counters(): RttCounters {
    return { ...this.counts };
  }

  private expire(now: number): void {
    for (const [nonce, p] of this.outstanding) {
      if (now - p.sent <= this.timeoutMs) break; // oldest first: the rest are younger
      this.outstanding.delete(nonce);
      this.counts.expired++;
    }
  }
}
