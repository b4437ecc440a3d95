// The levels of an appliance at work (docs/levels.md): the UDP socket and what comes and goes on it.
//
//   site:   every intervalMs, the load of each VIP (and virtual subnet) --LOAD--> uplinks
//           PING --> PONG (the system measures its distance to us)
//   system: LOAD --> SiteTable --> which sites take new flows, per service (members())
//           every intervalMs, PING each site whose distance is measured; PONG --> that distance
//   both:   an engine punts a mid-flow packet without an entry --> WHOHAS to peers (and, on a
//           system, to the sites); HAVE --> install, re-inject; NONE from all, or timeout -->
//           re-inject for the local choice. A WHOHAS from a peer is answered from our own tables.
//
// Whatever arrives goes through the socket's checks (signature, replay) first; what then does not
// fit (a load from no configured site, an answer for no query) is counted, never thrown.
import * as L from "../../assembly/layout.js";
import type { Config, LevelsConfig, LevelsEndpoint, Service } from "../config/schema.js";
import type { EnginePool } from "../engine/pool.js";
import { findFlow, flowKeyOf } from "../engine/flow-lookup.js";
import { flowOf, type SyncFlow } from "../ha/flow-sync.js";
import { LevelsSocket, hostPort, type LevelsReceived, type LevelsSocketStats } from "./socket.js";
import { SiteTable, type Choice, type SiteView, type SiteTableCounters } from "./site-table.js";
import { RttProbe, type RttCounters } from "./rtt.js";
import { RecoveryClient, RecoveryResponder, type HeldFrame, type RecoveryCounters, type ResponderCounters } from "./recovery.js";
import { siteLoadEntries } from "./aggregate.js";
import { loadPages, type LoadEntry } from "./protocol.js";

export interface LevelsHost {
  config(): Config;
  pool(): EnginePool;
  /** Which backends can take new flows now. */
  usable(): (name: string) => boolean;
  /** Each backend's load now (1 = full). */
  loads(): Map<string, number>;
  /** Active flows per backend (at most a few seconds old). */
  flows(): Map<string, number>;
  /** The configured members of a service, advertised ones included. */
  members(s: Service): Service["backends"];
  /** The sites' choice changed: the engines need the new members. */
  reapply(): void;
  /** A site went silent or came back. */
  siteEvent(site: string, from: string, to: string): void;
  log(line: string): void;
}

export interface LevelsView {
  role: "site" | "system";
  name: string;
  socket: string;
  sites?: SiteView[];
  choices?: Record<string, Choice>;
  uplinks?: string[];
  lastReport?: { at: number; entries: LoadEntry[] };
  recovery: RecoveryCounters & { enabled: boolean; peers: string[]; pending: number };
  answered: ResponderCounters;
  siteTable?: SiteTableCounters;
  /** System: the round trips to measured sites (pings, pongs, unmatched, expired). */
  rtt?: RttCounters;
  refused: LevelsSocketStats["rejectedBy"];
  stats: LevelsSocketStats;
}

const endpointText = (e: LevelsEndpoint): string => hostPort(e.address.text, e.port);

export class LevelsManager {
  private timer?: NodeJS.Timeout;
  private readonly rtt = new RttProbe();
  private sites?: SiteTable;
  private recovery?: RecoveryClient;
  private readonly responder: RecoveryResponder;
  /** Peers of recovery by "address:port", and which of them are sites (system role). */
  private peerSites = new Map<string, string>();
  /** Whom recovery asks, by "address:port" (the name answers come back under). */
  private peers = new Map<string, LevelsEndpoint>();
  private lastChoice = new Map<string, string>();
  private siteStates = new Map<string, string>();
  private lastReport?: { at: number; entries: LoadEntry[] };

  private constructor(private cfg: LevelsConfig, private readonly socket: LevelsSocket, private readonly host: LevelsHost) {
    this.responder = new RecoveryResponder({ find: (family, key) => this.find(family, key) });
    this.configure(cfg);
  }

  static async start(cfg: LevelsConfig, host: LevelsHost): Promise<LevelsManager> {
    let manager: LevelsManager | undefined;
    const socket = await LevelsSocket.open({
      address: cfg.local?.text ?? "0.0.0.0",
      port: cfg.port,
      name: cfg.name,
      keys: cfg.keys,
      onMessage: (m) => manager?.onMessage(m),
      log: (l) => host.log(l),
    });
    manager = new LevelsManager(cfg, socket, host);
    host.log(`levels: ${cfg.role} ${cfg.name} on ${hostPort(cfg.local?.text ?? "0.0.0.0", socket.port)}`);
    return manager;
  }

  /** Does this configuration need a new socket (another address or port)? */
  needsRestart(next: LevelsConfig): boolean {
    return next.local?.text !== this.cfg.local?.text || next.port !== this.cfg.port;
  }

  configure(cfg: LevelsConfig): void {
    this.cfg = cfg;
    this.socket.configure(cfg.name, cfg.keys);
    if (cfg.role === "system") {
      if (this.sites) this.sites.configure(cfg.sites, { deadIntervals: cfg.deadIntervals, cost: cfg.cost });
      else this.sites = new SiteTable(cfg.sites, { deadIntervals: cfg.deadIntervals, cost: cfg.cost });
    } else this.sites = undefined;
    this.peerSites = new Map(cfg.role === "system" ? cfg.sites.map((s) => [endpointText(s.control), s.name]) : []);
    this.peers = new Map([...cfg.recovery.peers, ...(cfg.role === "system" ? cfg.sites.map((s) => s.control) : [])].map((e) => [endpointText(e), e]));
    const peers = [...this.peers.keys()];
    this.recovery?.flush();
    this.recovery = cfg.recovery.enabled
      ? new RecoveryClient({
          peers,
          timeoutMs: cfg.recovery.timeoutMs,
          maxPending: cfg.recovery.maxPending,
          send: (peer, msg) => void this.sendTo(peer, msg),
          install: (flow, from) => this.install(flow, from),
          release: (frames, how) => this.release(frames, how),
        })
      : undefined;
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), cfg.intervalMs);
    this.timer.unref();
    this.tick();
  }

  /** A punted packet (PUNT_RECOVER): held while the peers are asked. */
  onMiss(port: number, frame: Uint8Array): void {
    const k = flowKeyOf(frame);
    if (!k || !this.recovery) {
      this.host.pool().reinject(port, [frame.slice()], L.RXA_NO_RECOVER);
      return;
    }
    this.recovery.onMiss(k.family, k.key, frame.slice(), port);
  }

  /**
   * A system service's members that take new flows now: the sites the costs choose (all of them
   * on a site appliance, or for a service that is not made of sites).
   */
  members(s: Service, members: Service["backends"]): Service["backends"] {
    if (!this.sites || !members.some((m) => this.host.config().backends.find((b) => b.name === m.name)?.site)) return members;
    const choice = this.sites.choose(s.vip, members.map((m) => m.name), Date.now());
    const chosen = new Set(choice.eligible);
    return members.filter((m) => chosen.has(m.name));
  }

  view(): LevelsView {
    const now = Date.now();
    const c = this.host.config();
    const stats = this.socket.stats();
    const v: LevelsView = {
      role: this.cfg.role,
      name: this.cfg.name,
      socket: hostPort(this.cfg.local?.text ?? "0.0.0.0", this.socket.port),
      recovery: { ...(this.recovery?.counters() ?? emptyRecovery()), enabled: !!this.recovery, peers: [...this.peers.keys()], pending: this.recovery?.pending ?? 0 },
      answered: this.responder.counters(),
      refused: stats.rejectedBy,
      stats,
    };
    if (this.sites) {
      v.sites = this.sites.view(now);
      v.siteTable = this.sites.counters();
      v.rtt = this.rtt.counters();
      v.choices = Object.fromEntries(this.siteServices(c).map((s) => [s.name, this.sites!.choose(s.vip, s.backends.map((m) => m.name), now)]));
    } else {
      v.uplinks = this.cfg.uplinks.map(endpointText);
      if (this.lastReport) v.lastReport = this.lastReport;
    }
    return v;
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.recovery?.flush();
    await this.socket.close();
  }

  private siteServices(c: Config): Service[] {
    return c.services.filter((s) => s.backends.some((m) => c.backends.find((b) => b.name === m.name)?.site));
  }

  private tick(): void {
    const now = Date.now();
    if (this.cfg.role === "site") {
      if (this.cfg.uplinks.length) this.report(now);
      return;
    }
    // only a measured distance needs round trips (docs/levels-protocol.md, PING)
    for (const s of this.cfg.sites) if (s.distance === "measured") void this.socket.send(s.control, this.rtt.ping(s.name, now));
    this.watchSites(now);
  }

  /** Site: this interval's loads, per VIP and virtual subnet, to every uplink. */
  private report(now: number): void {
    const c = this.host.config();
    const usable = this.host.usable();
    const loads = this.host.loads();
    const flows = this.host.flows();
    const services = c.services.map((s) => ({
      vip: s.vip,
      members: this.host.members(s).map((m) => ({ load: loads.get(m.name) ?? 0, usable: usable(m.name), flows: flows.get(m.name) ?? 0 })),
    }));
    const entries = siteLoadEntries(services, this.cfg.subnets, this.cfg.aggregate);
    this.lastReport = { at: now, entries };
    for (const page of loadPages(entries, this.cfg.intervalMs)) for (const u of this.cfg.uplinks) void this.socket.send(u, page);
  }

  /** System: a change of which sites take new flows (or of a site's liveness) reaches the engines. */
  private watchSites(now: number): void {
    if (!this.sites) return;
    for (const v of this.sites.view(now)) {
      const had = this.siteStates.get(v.name);
      if (had !== undefined && had !== v.state) {
        this.host.log(`levels: site ${v.name} ${v.state === "silent" ? `silent: no update for ${v.lastUpdateAgeMs} ms` : v.state}`);
        this.host.siteEvent(v.name, had, v.state);
      }
      this.siteStates.set(v.name, v.state);
    }
    let changed = false;
    for (const s of this.siteServices(this.host.config())) {
      const choice = this.sites.choose(s.vip, s.backends.map((m) => m.name), now);
      const key = `${choice.eligible.join(",")}${choice.failOpen ? " (fail open)" : ""}`;
      if (this.lastChoice.get(s.name) !== key) {
        const unheard = choice.sites.filter((x) => x.state === "unknown" || x.state === "silent").map((x) => `${x.name} ${x.state}`).join(", ");
        if (this.lastChoice.has(s.name)) this.host.log(`levels: service ${s.name}: new flows to ${choice.eligible.join(", ") || "no site"}${choice.failOpen ? ` (fail open: no site is usable by its figures; ${unheard})` : ""}`);
        this.lastChoice.set(s.name, key);
        changed = true;
      }
    }
    if (changed) this.host.reapply();
  }

  private onMessage(r: LevelsReceived): void {
    const from = hostPort(r.from.address, r.from.port);
    const m = r.msg;
    switch (m.type) {
      case "load":
        if (this.sites?.onLoad(r.sender, m, Date.now())) this.watchSites(Date.now());
        return;
      case "ping":
        void this.socket.send(r.from, { type: "pong", nonce: m.nonce });
        return;
      case "pong": {
        const ms = this.rtt.pong(r.sender, m, Date.now());
        if (ms !== undefined) this.sites?.onRtt(r.sender, ms, Date.now());
        return;
      }
      case "whohas":
        void this.socket.send(r.from, this.responder.answer(m));
        return;
      case "have":
        this.recovery?.onHave(from, m);
        return;
      case "none":
        this.recovery?.onNone(from, m);
    }
  }

  private sendTo(peer: string, msg: Parameters<LevelsSocket["send"]>[1]): Promise<boolean> {
    const to = this.peers.get(peer);
    return to ? this.socket.send(to, msg) : Promise.resolve(false);
  }

  /** The live entry of this key in any of our engines, in names. */
  private find(family: 4 | 6, key: Uint8Array): SyncFlow | undefined {
    for (const e of this.host.pool().engines) {
      const f = findFlow(e, family, key);
      if (f) return flowOf(e, family, f.entry, f.leftMs, L.EVK_INSTALL);
    }
    return undefined;
  }

  /**
   * A HAVE's flow into our engines. From a site (system role): the site has the flow, so it is
   * pinned to that site under our own service for the key. From a peer: as named (peers of a set
   * share the configuration).
   */
  private async install(flow: SyncFlow, from: string): Promise<void> {
    const site = this.peerSites.get(from);
    let f = flow;
    if (site !== undefined) {
      const s = serviceOfKey(this.host.config(), flow.family, flow.key);
      if (!s) throw new Error("no service of ours for that flow");
      f = { ...flow, service: s.name, backend: site, rule: undefined };
    }
    const pool = this.host.pool();
    const r = pool.install([f]);
    if (Object.keys(r.refused).length) throw new Error(`refused: ${Object.keys(r.refused).join(", ")}`);
    await pool.installsTaken();
  }

  private release(frames: HeldFrame[], how: "installed" | "local"): void {
    const pool = this.host.pool();
    for (const f of frames) pool.reinject(f.port, [f.frame], L.RXA_NO_RECOVER);
    void how;
  }
}

/** The service a forward key (src, dst, sport, dport, proto) is addressed to. */
function serviceOfKey(c: Config, family: 4 | 6, key: Uint8Array): Service | undefined {
  const alen = family === 6 ? 16 : 4;
  const dst = key.subarray(alen, 2 * alen);
  const dport = (key[2 * alen + 2] << 8) | key[2 * alen + 3];
  const proto = key[2 * alen + 4];
  const named = proto === 6 ? "tcp" : proto === 17 ? "udp" : undefined;
  const at = (port: number): Service | undefined => c.services.find((s) => s.vip.family === family && s.protocol === named && s.port === port && s.vip.bytes.every((b, i) => b === dst[i]));
  return at(dport) ?? at(0);
}

function emptyRecovery(): RecoveryCounters {
  return { queries: 0, answered: 0, none: 0, timeouts: 0, overflow: 0, duplicates: 0, held: 0, dropped: 0, releasedInstalled: 0, releasedLocal: 0, lateAnswers: 0, installFailed: 0, sendErrors: 0 };
}
