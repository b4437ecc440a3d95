// The system appliance's view of its sites: what each last said about its load (LOAD pages), how
// far it is (configured, or the smoothed round trip of PING/PONG), and from that, for a VIP, which
// sites take new flows. Pure state: time comes in as arguments, nothing here sends or schedules.
//
// Merging: entries are kept per prefix, each with the time it last came. A page refreshes the
// prefixes it carries and leaves the others alone; an entry not refreshed for the site's dead time
// (deadIntervals x its announced intervalMs) counts as absent and is swept. Trade-off: a site that
// stops reporting a VIP keeps its last figure for up to the dead time; in exchange a lost page
// costs nothing (waiting for all pages of an interval would make one lost page per interval lose
// every update).
//
// Choosing: a site takes new flows for a VIP only while it is heard (not unknown, not silent) and
// reports servers for it (its entry for the VIP: exact, else the longest prefix containing it,
// with members > 0). Among those, cost = load% x cost.load + distance x cost.distance, and every
// site within cost.tolerance of the lowest shares the new flows (the caller spreads them, e.g. by
// Maglev over the eligible ones). Flows already pinned in the flow tables never move.
//
// Fail-open: when no site is eligible and some are unknown or silent, every candidate not known to
// have no servers is eligible. Losing the updates (a cut between system and sites, a key mismatch,
// the system's own restart) must not stop a working service: the box keeps forwarding on its last
// configuration rather than dropping every new flow. A site known to have no servers stays out.
//
// Measured distance with no sample yet counts as 0 (as near as can be): the first pong comes a
// round trip later, and until then load alone decides, rather than keeping an unmeasured site out.

import { hostPort } from "./socket.js";
import type { Address, LevelsSite, Prefix } from "../config/schema.js";
import type { LoadMsg } from "./protocol.js";
import { parseWirePrefix, prefixKey, type Family } from "./prefix.js";

export type SiteState = "ok" | "silent" | "unknown" | "no-servers" | "costlier";

export interface SiteTableOptions {
  /** Missed intervals before a site is silent (and its entries absent). */
  deadIntervals: number;
  cost: { load: number; distance: number; tolerance: number };
}

export interface SiteChoice {
  name: string;
  state: SiteState;
  /** The entry's load (1 = 100%), for ok and costlier sites. */
  load?: number;
  /** The entry used: exactly the VIP or the longest prefix containing it. */
  prefix?: string;
  distance?: number;
  cost?: number;
  /** When the site's last LOAD came (the caller's clock); absent: never. */
  lastUpdateMs?: number;
}

export interface Choice {
  /** Sites that take new flows, in the candidates' order. */
  eligible: string[];
  sites: SiteChoice[];
  /** No site was eligible and some were unknown or silent: every candidate with servers (or not known to lack them) is eligible. */
  failOpen: boolean;
}

export interface SiteEntryView {
  prefix: string;
  load: number;
  members: number;
  flows: number;
  ageMs: number;
}

export interface SiteView {
  name: string;
  address: string;
  control: string;
  /** As configured. */
  distanceMode: number | "measured";
  /** The distance cost uses now. */
  distance: number;
  /** Smoothed round trip, ms; absent before the first pong. */
  rttMs?: number;
  rttSamples: number;
  /** Since the last round trip came, ms. */
  rttAgeMs?: number;
  state: "unknown" | "silent" | "live";
  intervalMs?: number;
  lastUpdateAgeMs?: number;
  updates: number;
  /** Pages of the site's last interval, as it announced. */
  pages?: number;
  entries: SiteEntryView[];
}

export interface SiteTableCounters {
  /** LOAD pages taken. */
  updates: number;
  /** LOAD pages or round trips for a site not configured. */
  unknownSite: number;
  /** Entries of new prefixes refused because the site already had MAX_ENTRIES_PER_SITE. */
  refusedEntries: number;
}

/** Prefixes kept per site: a bound on memory whatever a key holder sends (4096 pages of 16). */
export const MAX_ENTRIES_PER_SITE = 65_536;
/** Weight of a new round-trip sample in the smoothed distance. */
export const RTT_ALPHA = 0.3;
/** Costs this close are equal (floating-point sums of the same figures in another order). */
const COST_EPSILON = 1e-9;

interface Entry {
  prefix: Prefix;
  load: number;
  members: number;
  flows: number;
  at: number;
}

interface SiteRecord {
  site: LevelsSite;
  intervalMs?: number;
  lastUpdate?: number;
  updates: number;
  pages?: number;
  entries: Map<string, Entry>;
  /** Prefix lengths present per family, with how many entries have each; longest match tries these only. */
  lengths: Map<Family, Map<number, number>>;
  lastSweep: number;
  rtt?: number;
  rttSamples: number;
  rttAt?: number;
}

export class SiteTable {
  private opts: SiteTableOptions;
  private readonly records = new Map<string, SiteRecord>();
  private readonly counts: SiteTableCounters = { updates: 0, unknownSite: 0, refusedEntries: 0 };

  constructor(sites: readonly LevelsSite[], opts: SiteTableOptions) {
    this.opts = opts;
    this.configure(sites, opts);
  }

  /** A new configuration: sites still present keep what they said and their measured distance. */
  configure(sites: readonly LevelsSite[], opts: SiteTableOptions): void {
    this.opts = opts;
    const keep = new Map(this.records);
    this.records.clear();
    for (const site of sites) {
      const had = keep.get(site.name);
      this.records.set(site.name, had ? { ...had, site } : { site, updates: 0, entries: new Map(), lengths: new Map(), lastSweep: -Infinity, rttSamples: 0 });
    }
  }

  /**
   * Takes one LOAD page from `site` (the envelope's sender: a site appliance's levels.name is its
   * site's name here); false (counted) if no such site is configured.
   */
  onLoad(site: string, msg: LoadMsg, now: number): boolean {
    const r = this.records.get(site);
    if (!r) {
      this.counts.unknownSite++;
      return false;
    }
    this.counts.updates++;
    r.updates++;
    r.intervalMs = msg.intervalMs;
    r.lastUpdate = now;
    r.pages = msg.pages;
    if (now - r.lastSweep >= msg.intervalMs) this.sweep(r, now);
    for (const e of msg.entries) {
      const p = parseWirePrefix(e.prefix);
      if (typeof p === "string") continue; // decode checked it already; a caller's hand-made message
      const k = prefixKey(p.family, p.bytes, p.length);
      const had = r.entries.get(k);
      if (!had) {
        if (r.entries.size >= MAX_ENTRIES_PER_SITE) {
          this.counts.refusedEntries++;
          continue;
        }
        addLength(r, p.family, p.length, 1);
      }
      r.entries.set(k, { prefix: p, load: e.load, members: e.members, flows: e.flows, at: now });
    }
    return true;
  }

  /** One round trip to `site`, ms: folded into its smoothed distance (EWMA, alpha 0.3; the first sample is taken as is). */
  onRtt(site: string, rttMs: number, now: number): boolean {
    const r = this.records.get(site);
    if (!r) {
      this.counts.unknownSite++;
      return false;
    }
    if (!Number.isFinite(rttMs) || rttMs < 0) return false;
    r.rtt = r.rtt === undefined ? rttMs : (1 - RTT_ALPHA) * r.rtt + RTT_ALPHA * rttMs;
    r.rttSamples++;
    r.rttAt = now;
    return true;
  }

  /** Which of `candidates` (site names: the service's members) take new flows for `vip` now. */
  choose(vip: Pick<Address, "family" | "bytes">, candidates: readonly string[], now: number): Choice {
    const sites = candidates.map((name) => this.judge(name, vip, now));
    const ok = sites.filter((s) => s.state === "ok");
    if (ok.length > 0) {
      const lowest = Math.min(...ok.map((s) => s.cost!));
      for (const s of ok) if (s.cost! > lowest + this.opts.cost.tolerance + COST_EPSILON) s.state = "costlier";
      return { eligible: sites.filter((s) => s.state === "ok").map((s) => s.name), sites, failOpen: false };
    }
    const blind = sites.some((s) => s.state === "unknown" || s.state === "silent");
    return { eligible: blind ? sites.filter((s) => s.state !== "no-servers").map((s) => s.name) : [], sites, failOpen: blind };
  }

  /** Every configured site as `show` prints it. */
  view(now: number): SiteView[] {
    return [...this.records.values()].map((r) => {
      const v: SiteView = {
        name: r.site.name,
        address: r.site.address.text,
        control: hostPort(r.site.control.address.text, r.site.control.port),
        distanceMode: r.site.distance,
        distance: this.distance(r),
        rttSamples: r.rttSamples,
        state: r.lastUpdate === undefined ? "unknown" : this.silent(r, now) ? "silent" : "live",
        updates: r.updates,
        entries: [...r.entries.values()]
          .filter((e) => this.fresh(r, e, now))
          .map((e) => ({ prefix: e.prefix.text, load: e.load, members: e.members, flows: e.flows, ageMs: now - e.at })),
      };
      if (r.rtt !== undefined) v.rttMs = r.rtt;
      if (r.rttAt !== undefined) v.rttAgeMs = now - r.rttAt;
      if (r.intervalMs !== undefined) v.intervalMs = r.intervalMs;
      if (r.lastUpdate !== undefined) v.lastUpdateAgeMs = now - r.lastUpdate;
      if (r.pages !== undefined) v.pages = r.pages;
      return v;
    });
  }

  counters(): SiteTableCounters {
    return { ...this.counts };
  }

  private judge(name: string, vip: Pick<Address, "family" | "bytes">, now: number): SiteChoice {
    const r = this.records.get(name);
    if (!r || r.lastUpdate === undefined) return { name, state: "unknown" };
    const lastUpdateMs = r.lastUpdate;
    if (this.silent(r, now)) return { name, state: "silent", lastUpdateMs };
    const e = this.lookup(r, vip, now);
    if (!e || e.members === 0) return e ? { name, state: "no-servers", prefix: e.prefix.text, lastUpdateMs } : { name, state: "no-servers", lastUpdateMs };
    const distance = this.distance(r);
    const cost = e.load * 100 * this.opts.cost.load + distance * this.opts.cost.distance;
    return { name, state: "ok", load: e.load, prefix: e.prefix.text, distance, cost, lastUpdateMs };
  }

  /** The freshest answer for the VIP: its own entry, else the longest fresh prefix containing it. */
  private lookup(r: SiteRecord, vip: Pick<Address, "family" | "bytes">, now: number): Entry | undefined {
    const lengths = r.lengths.get(vip.family);
    if (!lengths) return undefined;
    for (const len of [...lengths.keys()].sort((a, b) => b - a)) {
      const e = r.entries.get(prefixKey(vip.family, vip.bytes, len));
      if (e && this.fresh(r, e, now)) return e;
    }
    return undefined;
  }

  private deadMs(r: SiteRecord): number {
    return this.opts.deadIntervals * (r.intervalMs ?? 0);
  }

  private silent(r: SiteRecord, now: number): boolean {
    return r.lastUpdate === undefined || now - r.lastUpdate > this.deadMs(r);
  }

  private fresh(r: SiteRecord, e: Entry, now: number): boolean {
    return now - e.at <= this.deadMs(r);
  }

  private distance(r: SiteRecord): number {
    return r.site.distance === "measured" ? (r.rtt ?? 0) : r.site.distance;
  }

  private sweep(r: SiteRecord, now: number): void {
    r.lastSweep = now;
    for (const [k, e] of r.entries) {
      if (this.fresh(r, e, now)) continue;
      r.entries.delete(k);
      addLength(r, e.prefix.family, e.prefix.length, -1);
    }
  }
}

function addLength(r: SiteRecord, family: Family, length: number, by: 1 | -1): void {
  let m = r.lengths.get(family);
  if (!m) r.lengths.set(family, (m = new Map()));
  const n = (m.get(length) ?? 0) + by;
  if (n > 0) m.set(length, n);
  else m.delete(length);
}
