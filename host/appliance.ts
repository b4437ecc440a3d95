// The appliance: boots the board, the packet engines and the control plane around them, and runs
// until told to stop. The configuration file is the one truth; what the box learns (neighbours'
// MACs, backends' health) only refines it into the effective configuration the engines run:
// a backend whose MAC is unknown or whose health check fails takes no new flows.
//
//   board ports --frames--> engine pool --tx--> board ports
//                                       --punt--> responder (ARP, ND, pings) --> neighbours
//                                       --punt--> discovery registry (advertised end systems)
//   config file --(boot, SIGHUP)--> effective config <-- neighbours, health checks --> engines
import { readFile, writeFile, rename, stat } from "node:fs/promises";
import { availableParallelism } from "node:os";
import { parseArgs } from "node:util";
import type { Board } from "../board/types.js";
import type { Config, ConfigInput } from "./config/schema.js";
import { validate, formatError } from "./config/validate.js";
import { EnginePool } from "./engine/pool.js";
import { readFlows, countFlowsByBackend, subtractCounters, type CounterSnapshot, type FlowFilter, type FlowRow } from "./engine/index.js";
import { Neighbors, type NeighborSource } from "./net/neighbors.js";
import { Responder } from "./net/responder.js";
import { formatMac, parseIP, parseMac, ethernet, ipv4, icmpv4, ETHERTYPE_IPV4 } from "./net/frame.js";
import { HealthMonitor, type CheckSpec } from "./health/index.js";
import { BoxEvents, FLOW_TABLE_HIGH_PERCENT, type BoxView } from "./observe.js";
import { VERSION } from "./version.js";
import { Monitoring } from "./monitoring.js";
import * as L from "../assembly/layout.js";
import { Registry } from "./discovery/registry.js";
import { SupervisorHost } from "./discovery/supervisor-host.js";
import { canonical } from "./net/neighbors.js";
import { GroupReporter } from "./net/multicast.js";
import { ChainMonitor, type ChainDeviceView } from "./chains.js";
import { chainDevices } from "./engine/program.js";
import { HaManager, type HaRole } from "./ha/manager.js";
import { HeartbeatService, type HaStats } from "./ha/heartbeat.js";
import type { PeerView } from "./ha/election.js";
import type { HaView } from "./console/ha-view.js";
import { syncCodec } from "./ha/sync-codec.js";
import { sharedPart, mergeShared, digestOf, changesShared } from "./ha/config-sync.js";
import { RANGE } from "./config/validate.js";
import { PartitionTable, type PortionView } from "./partitions.js";
import { LevelsManager, type LevelsView } from "./levels/manager.js";
import type { Backend, FlowRule, Service } from "./config/schema.js";

export interface ApplianceOptions {
  /** The configuration file: the truth when there is no flash; re-read on SIGHUP (reload()). */
  configPath: string;
  statusFile?: string;
  /** A board already open (tests: the simulated board); otherwise the Linux board is opened. */
  board?: Board;
  log?: (line: string) => void;
  /** Where state that outlives a restart is kept (the supervisor's leases); absent: nowhere, so no number pools. */
  stateDir?: string;
}

/** A change of data-plane sizes is kept for the next boot; everything else applies at once. */
export const SIZES_AT_BOOT = "data-plane sizes (dataplane.flows, limits, buffers, engines, maglevSize) take effect at the next boot";

const STATUS_EVERY_MS = 1000;
const GARP_REPEATS = [0, 1000, 3000]; // ms after a VIP appears: a lost announcement is made good

export class ConfigFileError extends Error {}

async function loadConfig(path: string): Promise<Config> {
  return (await loadConfigFile(path)).config;
}

/** The file's configuration, validated, with the text it was written as (the pair shares that). */
async function loadConfigFile(path: string): Promise<{ config: Config; input: ConfigInput; version: number }> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    throw new ConfigFileError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let input: unknown;
  try {
    input = JSON.parse(text);
  } catch (e) {
    throw new ConfigFileError(`${path} is not JSON: ${(e as Error).message}`);
  }
  const v = validate(input);
  if (!v.ok) throw new ConfigFileError(`${path} is not a valid configuration:\n  ${v.errors.map(formatError).join("\n  ")}`);
  // the file's modification time is its commit time: after a split the newer file wins
  const version = Math.floor((await stat(path)).mtimeMs);
  return { config: v.config, input: input as ConfigInput, version };
}

export class Appliance {
  private pool!: EnginePool;
  private neighbors!: Neighbors;
  private responder!: Responder;
  /** End systems learnt from advertisements; undefined while the configuration has no discovery. */
  private registry?: Registry;
  /** The supervisor (config discovery.supervisor) on a management-side socket; created at the first configuration. */
  private supervisorHost?: SupervisorHost;
  /** IGMP/MLD reports for the advertisement groups on the discovery port (snooping switches). */
  private groups?: GroupReporter;
  /** The configuration as written (file or commit): the pair replicates its shared part. */
  private input?: ConfigInput;
  /** When the shared part last changed (ms): after a split, the newer configuration wins. */
  private configVersion = 0;
  private sharedDigest = "";
  /** standalone without an ha section; otherwise the role the election gave. */
  private haRole: "standalone" | HaRole = "standalone";
  private heartbeat?: HeartbeatService;
  private haManager?: HaManager;
  /** Frames not sent because this node is not the active one. */
  private haSuppressed = 0;
  private garpTimers: NodeJS.Timeout[] = [];
  /** Chain devices that stopped returning packets. */
  private readonly chainMonitor = new ChainMonitor((e) => {
    this.events.emit({ type: "chain-device", ...e });
    this.log(`chain ${e.chain}: hop ${e.hop}: device ${e.device} ${e.to}: ${e.reason}`);
    this.reapplySoon();
  });
  private haPeer?: PeerView;
  private haElection?: HaStats;
  private haStatsTimer?: NodeJS.Timeout;
  private haMaintenance = false;
  private probeSeq = 0;
  /** Source-partition services: the owner of each portion now. */
  private readonly partitions = new PartitionTable((m) => {
    this.events.emit({ type: "partition", ...m, at: Date.now() });
    this.log(`service ${m.service}: portion ${m.prefix} moves from ${m.from} to ${m.to} (${m.reason})`);
  });
  /** Multi-level routing and flow recovery (config levels); undefined without that section. */
  private levels?: LevelsManager;
  private levelsChange: Promise<void> = Promise.resolve();
  /** Primary-backup services: their primary, kept until it fails (no pre-emption). */
  private readonly primaries = new Map<string, string>();
  private readonly probes = new Map<number, { port: number; mac: string; done: () => void }>();
  /** Applies a configuration adopted from the peer (the console's session saves it to flash); default: applied and kept in the state dir. */
  configAdopter?: (input: ConfigInput) => Promise<{ ok: true } | { ok: false; message: string }>;
  private readonly health: HealthMonitor;
  private statusTimer?: NodeJS.Timeout;
  private watchTimer?: NodeJS.Timeout;
  private monitoring?: Monitoring;
  private flowTableHigh = { 4: false, 6: false };
  private activeFlows = { at: 0, counts: new Map<string, number>() };
  /** Backend up/down and flow-table events (the console and the config session add theirs). */
  readonly events: BoxEvents;
  private reapplyTimer?: NodeJS.Timeout;
  private lastApply: Promise<void> = Promise.resolve();
  private announced = new Set<string>();
  private readonly started = Date.now();
  private readonly log: (line: string) => void;

  private baseline?: CounterSnapshot;

  private constructor(private config: Config, readonly board: Board, private readonly opts: ApplianceOptions) {
    this.log = opts.log ?? ((line) => process.stdout.write(`${new Date().toISOString()} ${line}\n`));
    this.health = new HealthMonitor({ log: this.log });
    this.events = new BoxEvents(this.log);
  }

  static async boot(opts: ApplianceOptions): Promise<Appliance> {
    const { config, input, version } = await loadConfigFile(opts.configPath);
    const board = opts.board ?? (await openBoard(config));
    const box = new Appliance(config, board, opts);
    box.noteInput(input, version);
    await box.start();
    return box;
  }

  /**
   * Boots with no configuration applied yet: the first applyConfig() starts the engines. For a
   * configuration session that loads the running configuration itself (from flash).
   */
  static async prepare(opts: ApplianceOptions, initial: Config): Promise<Appliance> {
    const board = opts.board ?? (await openBoard(initial));
    return new Appliance(initial, board, opts);
  }

  get running(): Config {
    return this.config;
  }

  /**
   * Makes a validated configuration live: engines (started on the first call), neighbours,
   * health checks, announcements. New data-plane sizes are kept for the next boot.
   */
  async applyConfig(next: Config, input?: ConfigInput, version?: number): Promise<void> {
    if (input) this.noteInput(input, version);
    if (!this.pool) {
      this.config = next;
      return this.start();
    }
    if (JSON.stringify(next.sizes) !== JSON.stringify(this.config.sizes)) {
      this.log(`flowswitch: ${SIZES_AT_BOOT}`);
      next = { ...next, sizes: this.config.sizes };
    }
    this.config = next;
    this.partitions.retain(next.services);
    this.configureControlPlane();
    await this.configureLevels();
    await this.pool.apply(this.effective());
    this.announce();
    await this.monitoring?.apply(next);
    if (this.heartbeat && next.ha) this.heartbeat.configure(next.ha); // an ha section appearing or going takes a restart
    this.haManager?.configChanged();
  }

  /** The configuration as written; a change of its shared part gets a new version. */
  private noteInput(input: ConfigInput, version = Date.now()): void {
    this.input = input;
    const digest = digestOf(sharedPart(input));
    if (digest !== this.sharedDigest) {
      this.sharedDigest = digest;
      this.configVersion = version;
    }
  }

  private async start(): Promise<void> {
    const c = this.config;
    const engines = c.sizes.engines || Math.max(1, availableParallelism() - 1);
    this.neighbors = new Neighbors((port, f) => this.sendOn(port, f), () => this.reapplySoon(), { log: this.log });
    this.responder = new Responder((port, f) => this.sendOn(port, f), this.neighbors, c);
    // membership reports go out in every role: a standby must hear advertisements too
    this.groups = new GroupReporter((port, f) => this.board.ports[port]?.send([f]));
    if (c.ha) this.haRole = "init"; // forward nothing until the election says otherwise
    this.pool = await EnginePool.create(this.effective(), engines, {
      event: (engine, record) => this.haManager?.onEvent(engine, record),
      mirror: (device, frame) => this.mirrorTo(device, frame),
      tx: (port, frame) => this.sendOn(port, frame),
      punt: (port, reason, frame) => {
        if (reason === L.PUNT_ICMP_VIP && this.probeReturned(port, frame)) return;
        if (reason === L.PUNT_RECOVER) {
          // without a levels section nobody asks: the packet goes back for the local choice
          if (this.levels) this.levels.onMiss(port, frame);
          else this.pool.reinject(port, [frame.slice()], L.RXA_NO_RECOVER);
          return;
        }
        if (reason === L.PUNT_DISCOVERY) {
          this.registry?.handle(frame.slice());
          this.supervisorHost?.hearFrame(frame.slice());
        } else this.responder.handle(port, reason, frame.slice());
      },
    });
    this.board.ports.forEach((p, i) => p.start((frames) => this.pool.dispatch(i, frames)));
    this.health.onChange((c) => {
      this.events.emit({ type: c.to === "down" ? "backend-down" : "backend-up", backend: c.backend, reason: c.reason, at: c.at });
      this.reapplySoon();
    });
    this.watchTimer = setInterval(() => {
      this.watchFlowTable();
      this.watchChains();
      this.watchPartitions();
      this.reapLeaving();
    }, STATUS_EVERY_MS);
    this.watchTimer.unref();
    this.partitions.retain(c.services);
    this.monitoring = new Monitoring(this.view(), this.log);
    await this.monitoring.apply(c);
    this.configureControlPlane();
    await this.configureLevels();
    await this.pool.apply(this.effective());
    this.announce();
    this.log(`flowswitch: ${c.hostname} up on the ${this.board.kind} board: ${engines} engine(s), ports ${c.ports.map((p) => `${p.name}=${p.device}`).join(", ")}, ${c.services.length} service(s)`);
    if (c.ha) await this.startHa();
    if (this.opts.statusFile) {
      this.statusTimer = setInterval(() => void this.writeStatus(), STATUS_EVERY_MS);
      await this.writeStatus();
    }
  }

  /** Congested owners shed portions; every change of owner is reported. */
  private watchPartitions(): void {
    const c = this.config;
    if (!this.pool || !c.services.some((s) => s.partitions)) return;
    const loads = this.backendLoads();
    if (this.partitions.tick(c.services, this.usable(), (n) => loads.get(n) ?? 0, Date.now())) this.reapplySoon();
  }

  /** `show partitions`: each portion of each source-partition service (or of one). */
  partitionView(service?: string): { service: string; portions: PortionView[] }[] | string {
    const all = Object.entries(this.partitionsByService()).map(([name, portions]) => ({ service: name, portions }));
    const list = all.filter((x) => service === undefined || x.service === service);
    if (service !== undefined && !list.length) return `no source-partition service ${service} (they are: ${all.map((x) => x.service).join(", ") || "none"})`;
    return list;
  }

  /** Every source-partition service's portions, by service (status file, MQTT). */
  partitionsByService(): Record<string, PortionView[]> {
    const usable = this.usable();
    return Object.fromEntries(this.config.services.filter((s) => s.partitions).map((s) => [s.name, this.partitions.view(s, usable)]));
  }

  /** `request service repartition NAME PREFIX BACKEND` (or NAME reset): live, for new flows only. */
  repartition(service: string, prefix: string, owner?: string): string | undefined {
    const s = this.config.services.find((x) => x.name === service);
    if (!s?.partitions) return `no source-partition service ${service}`;
    if (prefix === "reset") this.partitions.reset(service);
    else {
      const err = this.partitions.assign(s, prefix, owner ?? "");
      if (err) return err;
    }
    this.reapplySoon();
    this.watchPartitions();
    return undefined;
  }

  /** A copy for a mirror hop's device: its MAC as destination, from the port it is on. */
  private mirrorTo(device: number, frame: Uint8Array): void {
    const d = chainDevices(this.pool.current)[device];
    const p = d && this.pool.current.ports[d.port];
    if (!d?.mac || !p) return;
    const copy = frame.slice();
    copy.set(d.mac, 0);
    copy.set(p.mac, 6);
    this.sendOn(d.port, copy);
  }

  private watchChains(): void {
    const c = this.config;
    if (!c.chains.length || !this.pool) return;
    const seen = new Map(this.neighbors.entries().map((e) => [e.ip, e.mac ? e.seen : undefined]));
    const byName = new Map(chainDevices(c).map((d) => [d.name, d]));
    this.chainMonitor.tick(c.chains, this.pool.counters().devices, (name) => {
      const a = byName.get(name)?.address;
      return a ? seen.get(canonical(a.text)) : undefined;
    });
  }

  /** `show chains`: every device of every hop, its state and counters. */
  chainView(): ChainDeviceView[] {
    const eff = this.effective();
    const k = this.pool.counters();
    return eff.chains.flatMap((c) => c.hops.flatMap((h) => [...h.devices.map((d) => ({ d, role: "device" as const })), ...h.alternates.map((d) => ({ d, role: "alternate" as const }))].map(({ d, role }) => ({
      chain: c.name, hop: h.name, kind: h.kind, device: d.name, role, port: eff.ports[d.port]?.name ?? `#${d.port}`,
      ...(d.mac && { mac: formatMac(d.mac) }),
      state: !d.mac ? "unresolved" as const : d.up === false ? "down" as const : "up" as const,
      ...(this.chainMonitor.downReason(d.name) && { reason: this.chainMonitor.downReason(d.name) }),
      sent: k.devices[d.name]?.sent ?? 0, returned: k.devices[d.name]?.returned ?? 0,
    }))));
  }

  /**
   * `request service validate NAME`: a handshake through every hop of the service's chain. To
   * each inline device (alternates too) the appliance sends an ICMP echo from the device's port
   * to the VIP, as a client's packet would reach it; a device that passes packets sends it back,
   * and it is caught here before the ping answerer. Mirror devices only get copies: whether their
   * MAC is known is all that can be said.
   */
  async validateService(name: string, timeoutMs = 1000): Promise<{ hop: string; kind: string; device: string; result: string; ms?: number }[] | string> {
    const eff = this.effective();
    const s = eff.services.find((x) => x.name === name);
    if (!s) return `no service ${name} (services: ${eff.services.map((x) => x.name).join(", ") || "none"})`;
    if (!s.chain) return `service ${name} has no chain: nothing to validate`;
    const chain = eff.chains.find((c) => c.name === s.chain);
    if (!chain) return `service ${name} names chain ${s.chain}, which does not exist`;
    if (s.vip.family !== 4) return "validation probes are IPv4 only for now";
    const out: { hop: string; kind: string; device: string; result: string; ms?: number }[] = [];
    for (const h of chain.hops) {
      for (const d of [...h.devices, ...h.alternates]) {
        const port = eff.ports[d.port];
        if (!d.mac) {
          out.push({ hop: h.name, kind: h.kind, device: d.name, result: "MAC unknown (no ARP answer)" });
          continue;
        }
        if (h.kind === "mirror") {
          out.push({ hop: h.name, kind: h.kind, device: d.name, result: `copies go to ${formatMac(d.mac)}: a mirror sends nothing back to check` });
          continue;
        }
        if (!port?.ipv4) {
          out.push({ hop: h.name, kind: h.kind, device: d.name, result: `port ${port?.name} has no IPv4 address to probe from` });
          continue;
        }
        const id = (this.probeSeq = (this.probeSeq + 1) & 0xffff);
        const started = performance.now();
        const back = new Promise<boolean>((resolve) => {
          const t = setTimeout(() => resolve(false), timeoutMs);
          this.probes.set(id, { port: d.port, mac: formatMac(d.mac!), done: () => { clearTimeout(t); resolve(true); } });
        });
        const echo = icmpv4({ type: 8, rest: (id << 16) | 1, payload: new TextEncoder().encode("flowswitch validate") });
        this.board.ports[d.port]?.send([ethernet({ dst: formatMac(d.mac), src: formatMac(port.mac), etherType: ETHERTYPE_IPV4, payload: ipv4({ src: port.ipv4.text, dst: s.vip.text, protocol: 1, ttl: 64, payload: echo }) })]);
        const ok = await back;
        this.probes.delete(id);
        out.push({ hop: h.name, kind: h.kind, device: d.name, result: ok ? "passed: the probe came back" : `no answer within ${timeoutMs} ms`, ...(ok && { ms: Math.round((performance.now() - started) * 10) / 10 }) });
      }
    }
    return out;
  }

  /** A punted ping to a VIP that is a validation probe coming back from its device: taken here. */
  private probeReturned(port: number, frame: Uint8Array): boolean {
    if (!this.probes.size || frame.length < 42 || frame[12] !== 0x08 || frame[13] !== 0x00) return false;
    const l4 = 14 + (frame[14] & 15) * 4;
    if (frame[23] !== 1 || frame[l4] !== 8) return false;
    const p = this.probes.get((frame[l4 + 4] << 8) | frame[l4 + 5]);
    if (!p || p.port !== port || formatMac(frame.subarray(6, 12)) !== p.mac) return false;
    p.done();
    return true;
  }

  /** `show acls`: every table's rules with the new flows each decided. */
  aclView(): { table: string; port: string; service?: string; rules: { name: string; action: string; hits: number }[]; default: string; defaultHits: number }[] {
    const k = this.pool.counters().acls;
    return this.config.acls.map((t) => ({
      table: t.name, port: this.config.ports[t.port]?.name ?? `#${t.port}`, ...(t.service !== undefined && { service: t.service }),
      rules: t.rules.map((r) => ({ name: r.name, action: r.deny ? "deny" : "allow", hits: k[t.name]?.rules[r.name] ?? 0 })),
      default: t.deny ? "deny" : "allow", defaultHits: k[t.name]?.default ?? 0,
    }));
  }

  private sendOn(port: number, frame: Uint8Array): void {
    if (this.haRole === "init" || this.haRole === "standby") {
      this.haSuppressed++; // the active answers and forwards; a standby's frames would confuse the segment
      return;
    }
    this.board.ports[port]?.send([frame]);
  }

  // ---- the redundant pair --------------------------------------------------------------------------

  private async startHa(): Promise<void> {
    const ha = this.config.ha!;
    const link = ha.links[0];
    const hb = new HeartbeatService({ log: this.log, configVersion: this.configVersion, configDigest: this.sharedDigest });
    this.heartbeat = hb;
    hb.on("peer", (peer) => {
      const was = this.haPeer?.state;
      this.haPeer = peer;
      // the peer left active (a healed split brain, a hand-over): its last announcements may have
      // gone out after ours, so the segment hears ours again
      if (this.haRole === "active" && was === "active" && peer.state !== "active") this.garpBurst("the peer stepped down", true);
    });
    const election = {
      on: (event: "state" | "reannounce", fn: (e: { from: string; to: string; reason: string }) => void) =>
        event === "state" ? hb.on("state", (e) => fn(e)) : hb.on("reannounce", (e) => fn({ from: "", to: "", reason: e.reason })),
      setReady: (r: boolean) => hb.setReady(r),
      setConfig: (v: number, d: string) => hb.setConfig(v, d),
    };
    this.haManager = new HaManager({
      pool: () => this.pool,
      setRole: (role, reason) => this.setRole(role, reason),
      reannounce: () => this.garpBurst("split brain healed", true),
      sharedConfig: () => ({ version: this.configVersion, digest: this.sharedDigest, input: sharedPart(this.input ?? ({} as ConfigInput)) }),
      adoptConfig: (version, shared) => this.adoptConfig(version, shared),
      neighbors: () => this.neighbors.entries().filter((e) => e.mac).map((e) => [e.ip, formatMac(e.mac!), e.port]),
      learnNeighbor: (ip, mac, port) => this.neighbors.learn(ip, parseMac(mac), port),
      log: this.log,
    }, {
      node: ha.node,
      link: { local: link.local.text, peer: link.peer.text, port: link.port + 1 },
      codec: syncCodec({ node: ha.node, keys: ha.keys }),
      election,
      refreshMs: Math.min(300_000, Math.max(5000, (Math.min(this.config.timeouts.tcp, this.config.timeouts.udp, this.config.timeouts.other) * 1000) / 3)),
    });
    await this.haManager.start();
    await hb.start(ha);
    this.haStatsTimer = setInterval(() => void hb.stats().then((st) => (this.haElection = st)), STATUS_EVERY_MS);
    this.haStatsTimer.unref();
  }

  /** The election's decision, in force: engines, ports, announcements. */
  private async setRole(role: HaRole, reason: string): Promise<void> {
    const from = this.haRole;
    this.haRole = role;
    await this.pool.apply(this.effective());
    const shown = (r: typeof from): "active" | "standby" | "standalone" => (r === "init" ? "standby" : r);
    if (shown(from) !== shown(role)) this.events.emit({ type: "ha-state", from: shown(from), to: shown(role), at: Date.now() });
    this.log(`ha: ${role}: ${reason}`);
    if (role === "active") this.garpBurst("taking over");
    else for (const t of this.garpTimers.splice(0)) clearTimeout(t);
  }

  /**
   * Gratuitous ARPs and unsolicited neighbour advertisements for every address the active owns:
   * VIPs on the ports that face clients, each port's own addresses on that port (servers reach
   * the NAT return path through them). ha.garp.count times, ha.garp.intervalMs apart.
   */
  private garpBurst(why: string, again = false): void {
    const c = this.config;
    const { count, intervalMs } = c.ha?.garp ?? { count: 1, intervalMs: 0 };
    const vips = [...new Set(c.services.filter((s) => s.arp).map((s) => s.vip.text))];
    const clientPorts = c.ports.filter((p) => !c.backends.some((b) => b.via === p.index) && p.index !== c.discovery?.via);
    const plan = c.ports.map((p) => ({
      port: p.index,
      addresses: [...new Set([...(clientPorts.includes(p) ? vips : []), ...(p.ipv4 ? [p.ipv4.text] : []), ...(p.ipv6 ? [p.ipv6.text] : [])])],
    })).filter((x) => x.addresses.length);
    const send = (): void => {
      if (this.haRole !== "active") return;
      for (const x of plan) this.responder.announce(x.port, x.addresses);
    };
    send();
    // after a contest, once more a little later: the loser's control plane may lag its heartbeats
    const at = [...Array.from({ length: count - 1 }, (_, i) => (i + 1) * intervalMs), ...(again ? [100, 500] : [])];
    for (const ms of at) {
      const t = setTimeout(send, ms);
      t.unref();
      this.garpTimers.push(t);
    }
    this.log(`ha: announcing ${plan.map((x) => `${x.addresses.join(", ")} on ${c.ports[x.port].name}`).join("; ")} (${why})`);
  }

  /** The peer's newer shared configuration, with this node's own parts: applied, ours kept as the rollback. */
  private async adoptConfig(version: number, shared: ConfigInput): Promise<{ ok: true } | { ok: false; message: string }> {
    const local = this.input ?? ({} as ConfigInput);
    const merged = mergeShared(local, shared);
    if (!merged.ok) return merged;
    if (this.configAdopter) {
      const r = await this.configAdopter(merged.input);
      if (!r.ok) return r;
    } else {
      const v = validate(merged.input);
      if (!v.ok) return { ok: false, message: v.errors.map(formatError).join("; ") };
      if (this.opts.stateDir) {
        try {
          await writeFile(`${this.opts.stateDir}/ha-rollback.json`, JSON.stringify(local, null, 1));
          await writeFile(`${this.opts.stateDir}/ha-config.json`, JSON.stringify(merged.input, null, 1));
        } catch (e) {
          this.log(`ha: cannot keep the configurations in ${this.opts.stateDir}: ${(e as Error).message}`);
        }
      }
      await this.applyConfig(v.config, merged.input, version);
    }
    this.configVersion = version;
    this.haManager?.configChanged();
    return { ok: true };
  }

  /**
   * A local change the pair's standby must refuse: anything but its own parts (system,
   * management, ha, port MACs and devices) comes from the active. Undefined: allowed.
   */
  refuseLocalChange(next: ConfigInput): string | undefined {
    if (this.haRole === "active" || this.haRole === "standalone" || !this.input) return undefined;
    if (!changesShared(this.input, next)) return undefined;
    return `this appliance is the standby of its pair (node ${this.config.ha?.node}): services, backends and the rest of the shared configuration are edited on the active node and replicated here; only system, management, ha and port mac/device settings can be changed on this node`;
  }

  /**
   * `request ha standby`: this node leaves active at once (the peer takes over without waiting
   * for a dead interval) and stays standby until `request ha release`. False without a pair.
   */
  holdStandby(on: boolean): boolean {
    if (!this.heartbeat) return false;
    this.haMaintenance = on;
    this.heartbeat.setMaintenance(on);
    this.log(`ha: ${on ? "held in standby by the operator" : "released: may become active again"}`);
    return true;
  }

  /** The pair's state for status, console and monitoring; undefined without an ha section. */
  haStatus(): HaView | undefined {
    if (!this.config.ha) return undefined;
    return { node: this.config.ha.node, role: this.haRole, priority: this.config.ha.priority, maintenance: this.haMaintenance, configVersion: this.configVersion, configDigest: this.sharedDigest, suppressedFrames: this.haSuppressed, election: this.haElection, peer: this.haPeer, sync: this.haManager?.status() };
  }

  /** Neighbours to resolve and checks to run, from the configuration. */
  private configureControlPlane(): void {
    const c = this.config;
    void (this.supervisorHost ??= new SupervisorHost({ stateDir: this.opts.stateDir, log: this.log })).configure(c);
    if (c.discovery) {
      if (this.registry) this.registry.update(c.discovery);
      else this.registry = new Registry(c.discovery, {
        onChange: () => this.discoveryChanged(),
        flowRoom: () => Math.max(0, L.MAX_FLOW_RULES - this.config.flowRules.length),
        log: this.log,
        onEndSystem: (e) => this.events.emit({ type: "end-system", ...e }),
      });
    } else if (this.registry) {
      this.registry.stop();
      this.registry = undefined;
    }
    const via = c.discovery && c.ports[c.discovery.via];
    this.groups?.set(via ? [{ port: via.index, source: { mac: formatMac(via.mac), ipv4: via.ipv4?.text }, groups: [c.discovery!.group.text, c.discovery!.group6.text] }] : []);
    this.wantNeighbors();
    const checks = new Map<string, CheckSpec>();
    for (const b of c.backends) {
      if (!b.check) continue;
      const from = b.address.family === 4 ? c.management.ipv4 : c.management.ipv6;
      checks.set(b.name, { ...b.check, address: b.address.text, sourceAddress: from?.text });
    }
    this.health.set(checks);
    this.responder.update(c);
  }

  /** The levels section's socket and timers follow the configuration (a new address or port: a new socket). */
  private configureLevels(): Promise<void> {
    const next = async (): Promise<void> => {
      const cfg = this.config.levels;
      if (this.levels && (!cfg || this.levels.needsRestart(cfg))) {
        await this.levels.stop();
        this.levels = undefined;
      }
      if (!cfg) return;
      if (this.levels) return this.levels.configure(cfg);
      try {
        this.levels = await LevelsManager.start(cfg, {
          config: () => this.config,
          pool: () => this.pool,
          usable: () => this.usable(),
          loads: () => this.backendLoads(),
          flows: () => this.activeFlowCounts(),
          members: (s) => this.membersOf(s),
          reapply: () => this.reapplySoon(),
          siteEvent: (site, from, to) => this.events.emit({ type: "site", site, from, to, at: Date.now() }),
          log: this.log,
        });
      } catch (e) {
        this.log(`levels: cannot open the levels socket on ${cfg.local?.text ?? "0.0.0.0"} port ${cfg.port}: ${(e as Error).message}`);
      }
    };
    this.levelsChange = this.levelsChange.then(next, next);
    return this.levelsChange;
  }

  /** `show levels`, the status file: undefined without a levels section. */
  levelsView(): LevelsView | undefined {
    return this.levels?.view();
  }

  /** Neighbours to resolve: gateways and backends, configured and advertised, without a MAC. */
  private wantNeighbors(): void {
    const c = this.config;
    const source = (port: number): NeighborSource => {
      const p = c.ports[port];
      return { port, mac: p.mac, ipv4: p.ipv4?.text, ipv6: p.ipv6?.text };
    };
    const wanted: { ip: string; source: NeighborSource }[] = [];
    for (const b of [...c.backends, ...this.advertisedBackends()]) if (!b.mac) wanted.push({ ip: b.address.text, source: source(b.via) });
    for (const d of chainDevices(c)) if (!d.mac && d.address) wanted.push({ ip: d.address.text, source: source(d.port) });
    for (const p of c.ports) {
      if (p.gateway && !p.gatewayMac) wanted.push({ ip: p.gateway.text, source: source(p.index) });
      if (p.gateway6 && !p.gatewayMac) wanted.push({ ip: p.gateway6.text, source: source(p.index) });
    }
    this.neighbors.want(wanted);
  }

  /** An end system appeared, changed or went silent: resolve its address and re-apply. */
  private discoveryChanged(): void {
    this.wantNeighbors();
    this.reapplySoon();
  }

  /**
   * Advertised end systems as backends on the discovery port: a configured backend of the same
   * name wins, and no more are taken than the data plane has backend slots for.
   */
  private advertisedBackends(): (Backend & { endSystem: string; offers: { vip: string; protocol: number; port: number; weight: number }[] })[] {
    const c = this.config;
    if (!this.registry || !c.discovery) return [];
    const statics = new Set(c.backends.map((b) => b.name));
    const room = Math.max(0, c.sizes.maxBackends - c.backends.length);
    const via = c.discovery.via;
    return this.registry.backends()
      .filter((b) => !statics.has(b.name))
      .slice(0, room)
      .map((b) => {
        const ip = parseAddress(b.address);
        return { name: b.name, endSystem: b.endSystem, address: ip, via, natPort: 0, state: b.state, capacity: 0, offers: b.services };
      });
  }

  /**
   * Advertised flow rules after the configured ones (which therefore win), each to its end
   * system's backend of the VIP's family; an end system without one (not a backend: no room,
   * or a configured backend has its name) has no rules. Never more than the data plane holds.
   */
  private advertisedFlowRules(advertised: { name: string; endSystem: string; address: { family: 4 | 6 } }[]): FlowRule[] {
    if (!this.registry) return [];
    const room = Math.max(0, L.MAX_FLOW_RULES - this.config.flowRules.length);
    const out: FlowRule[] = [];
    for (const f of this.registry.flows()) {
      const b = advertised.find((a) => a.endSystem === f.endSystem && a.address.family === f.rule.vip.family);
      if (b) out.push({ ...f.rule, name: f.name, backend: b.name });
    }
    return out.slice(0, room);
  }

  /** The supervisor, when discovery.supervisor is configured and its socket is bound. */
  supervisor(): SupervisorHost | undefined {
    return this.supervisorHost?.supervisor ? this.supervisorHost : undefined;
  }

  /** Discovery's view: end systems with their weights now, advertised flow rules, counters. */
  discovery(): { endSystems: ReturnType<Registry["endSystems"]>; weights: Record<string, { service: string; advertised: number; now: number }[]>; flows: ReturnType<Registry["flows"]>; stats: ReturnType<Registry["stats"]> } | undefined {
    const r = this.registry;
    if (!r) return undefined;
    const endSystems = r.endSystems();
    const weights = Object.fromEntries(endSystems.map((e) => [e.id, e.services.map((s) => ({
      service: `${s.vip.includes(":") ? `[${s.vip}]` : s.vip}:${s.protocol === 6 ? "tcp" : s.protocol === 17 ? "udp" : s.protocol}/${s.port || "*"}`,
      advertised: s.weight,
      now: r.weightNow(e.id, s),
    }))]));
    return { endSystems, weights, flows: r.flows(), stats: r.stats() };
  }

  /**
   * The configuration refined by what the box knows: MACs learnt, backends failing their checks,
   * and advertised end systems as backends and members of the services they advertise.
   */
  effective(): Config {
    const c = this.config;
    const advertised = this.advertisedBackends();
    const usable = this.usable(advertised);
    const members = (s: Service): Service["backends"] => this.membersOf(s, advertised);
    const chosen = (s: Service): Service["backends"] => {
      const m = members(s);
      if (s.policy === "primary-backup") return this.primaryOnly(s, m, usable);
      return this.levels ? this.levels.members(s, m) : m;
    };
    return {
      ...c,
      services: c.services.map((s) => ({ ...s, backends: chosen(s) })),
      chains: c.chains.map((ch) => ({
        ...ch,
        hops: ch.hops.map((h) => {
          const live = (d: (typeof h.devices)[number]): typeof d => ({ ...d, mac: d.mac ?? (d.address && this.neighbors?.mac(d.address.text)), up: this.chainMonitor.isUp(d.name) });
          return { ...h, devices: h.devices.map(live), alternates: h.alternates.map(live) };
        }),
      })),
      ...(this.haRole !== "standalone" && { role: { standby: this.haRole !== "active", flowEvents: this.haRole === "active" } }),
      flowRules: [...c.flowRules, ...c.services.flatMap((s) => this.partitions.rules(s, usable)), ...this.advertisedFlowRules(advertised)],
      ports: c.ports.map((p) => ({
        ...p,
        gatewayMac: p.gatewayMac ?? (p.gateway && this.neighbors?.mac(p.gateway.text)) ?? (p.gateway6 && this.neighbors?.mac(p.gateway6.text)) ?? undefined,
      })),
      backends: [
        ...c.backends.map((b) => ({
          ...b,
          mac: b.mac ?? this.neighbors?.mac(b.address.text),
          state: this.health.status(b.name)?.state === "down" ? "down" : b.state,
        })),
        ...advertised.map(({ offers: _, endSystem: __, ...b }) => ({ ...b, mac: this.neighbors?.mac(b.address.text) })),
      ],
    };
  }

  /** A service's members: the configured ones, and the end systems that advertise it. */
  private membersOf(s: Service, advertised = this.advertisedBackends()): Service["backends"] {
    const protocolNumber = { tcp: 6, udp: 17 } as const;
    const vip = canonical(s.vip.text);
    const extra = advertised.flatMap((b) => b.offers
      .filter((o) => o.vip === vip && o.protocol === protocolNumber[s.protocol] && o.port === s.port)
      .slice(0, 1)
      .map((o) => ({ name: b.name, weight: Math.min(o.weight, RANGE.weight[1]) })));
    return extra.length ? [...s.backends, ...extra] : s.backends;
  }

  /** Can the backend (configured or advertised) take new flows now: active, not failing its check, its MAC known? */
  private usable(advertised = this.advertisedBackends()): (name: string) => boolean {
    const c = this.config;
    return (name: string): boolean => {
      const b = c.backends.find((x) => x.name === name);
      if (b) return b.state === "active" && this.health.status(name)?.state !== "down" && !!(b.mac ?? this.neighbors?.mac(b.address.text));
      const a = advertised.find((x) => x.name === name);
      return !!a && a.state === "active" && !!this.neighbors?.mac(a.address.text);
    };
  }

  /**
   * Each backend's load now (1 = full): its active flows over its configured capacity, or what it
   * advertised (CPU, or connections over the capacity it offered), whichever is higher; 0 when
   * nothing says. Flow counts are at most 5 s old (activeFlowCounts).
   */
  backendLoads(): Map<string, number> {
    const flows = this.activeFlowCounts();
    const out = new Map<string, number>();
    for (const b of this.config.backends) out.set(b.name, b.capacity > 0 ? (flows.get(b.name) ?? 0) / b.capacity : 0);
    for (const e of this.registry?.endSystems() ?? []) {
      if (!e.load) continue;
      const capacity = Math.max(0, ...e.services.map((s) => s.capacity));
      const reported = Math.max(e.load.cpu / 100, capacity > 0 ? e.load.connections / capacity : 0);
      for (const b of this.registry!.backends().filter((x) => x.endSystem === e.id)) out.set(b.name, Math.max(out.get(b.name) ?? 0, reported));
    }
    return out;
  }

  /**
   * A primary-backup service's one member: the primary while it can take flows; when it cannot,
   * the first member (in the configured order) that can, which stays primary after the old one
   * recovers (no pre-emption). Its flows are then re-selected to the new primary (or reset, as
   * the service says), as for any failed backend.
   */
  private primaryOnly(s: Service, members: Service["backends"], usable: (name: string) => boolean): Service["backends"] {
    const had = this.primaries.get(s.name);
    let primary = had !== undefined && members.some((m) => m.name === had) && usable(had) ? had : members.find((m) => usable(m.name))?.name;
    if (primary === undefined) primary = had !== undefined && members.some((m) => m.name === had) ? had : undefined;
    if (primary !== had) {
      if (primary === undefined) this.primaries.delete(s.name);
      else this.primaries.set(s.name, primary);
      this.log(`service ${s.name}: primary ${primary ?? "(none: no member can take flows)"}${had ? ` (was ${had})` : ""}`);
      if (primary !== undefined) this.events.emit({ type: "primary", service: s.name, primary, ...(had !== undefined && { previous: had }), at: Date.now() });
    }
    return members.filter((m) => m.name === primary);
  }

  /** Each primary-backup service's primary now. */
  primaryBackends(): Record<string, string> {
    return Object.fromEntries(this.primaries);
  }

  /** Coalesces a burst of changes (many neighbours answering at once) into one apply. */
  private reapplySoon(): void {
    if (this.reapplyTimer) return;
    this.reapplyTimer = setTimeout(() => {
      this.reapplyTimer = undefined;
      this.lastApply = this.pool.apply(this.effective()).catch((e: Error) => this.log(`flowswitch: applying the configuration failed: ${e.message}`));
    }, 5);
  }

  /** Resolves once every change noticed so far runs in the engines. */
  async settled(): Promise<void> {
    while (this.reapplyTimer) await new Promise((r) => setTimeout(r, 1));
    await this.lastApply;
  }

  /** VIPs announce themselves on the ports that face clients (no backend behind them). */
  private announce(): void {
    const c = this.config;
    if (this.haRole === "init" || this.haRole === "standby") return; // the active announces (and on taking over, all of it)
    const vips = [...new Set(c.services.filter((s) => s.arp).map((s) => s.vip.text))];
    const fresh = vips.filter((v) => !this.announced.has(v));
    this.announced = new Set(vips);
    if (!fresh.length) return;
    // the ports that face clients: neither a backend's nor the one the end systems advertise on
    const clientPorts = c.ports.filter((p) => !c.backends.some((b) => b.via === p.index) && p.index !== c.discovery?.via);
    for (const delay of GARP_REPEATS) {
      setTimeout(() => {
        for (const p of clientPorts) this.responder.announce(p.index, fresh);
      }, delay).unref();
    }
    this.log(`flowswitch: announcing ${fresh.join(", ")} on ${clientPorts.map((p) => p.name).join(", ")}`);
  }

  /** Re-reads the configuration file; a bad file changes nothing and says why. */
  async reload(): Promise<boolean> {
    let next: Config;
    let input: ConfigInput | undefined;
    let version: number | undefined;
    try {
      ({ config: next, input, version } = await loadConfigFile(this.opts.configPath));
    } catch (e) {
      this.log(`flowswitch: reload refused, still running the previous configuration: ${(e as Error).message}`);
      return false;
    }
    if (JSON.stringify(next.sizes) !== JSON.stringify(this.config.sizes)) {
      this.log("flowswitch: reload refused: data-plane sizes (dataplane.flows, limits, buffers, engines, maglevSize) change only at boot");
      return false;
    }
    const refused = input && this.refuseLocalChange(input);
    if (refused && input && this.input) {
      // the file's shared settings are the operator's old copy: this node's own parts are taken from it
      const merged = mergeShared(input, sharedPart(this.input));
      const v = merged.ok ? validate(merged.input) : undefined;
      if (!merged.ok || !v?.ok) {
        this.log(`flowswitch: reload refused: ${refused}`);
        return false;
      }
      this.log(`flowswitch: reload: the file's shared settings differ from the active's and are ignored: ${refused}`);
      next = v.config;
      input = merged.input;
    }
    await this.applyConfig(next, input, version);
    this.log(`flowswitch: configuration reloaded: ${next.services.length} service(s), ${next.backends.length} backend(s)`);
    return true;
  }

  status(): object {
    const health: Record<string, { state: string; reason: string }> = {};
    for (const [name, s] of this.health.all()) health[name] = { state: s.state, reason: s.reason };
    const neighbors: Record<string, string> = {};
    for (const e of this.neighbors.entries()) neighbors[e.ip] = e.mac ? `${formatMac(e.mac)} (${e.state})` : e.state;
    return {
      time: Date.now(),
      uptimeMs: Date.now() - this.started,
      engines: this.pool.engines.length,
      counters: this.pool.counters(),
      host: { ...this.pool.stats, ...this.responder.stats },
      health,
      neighbors,
      backends: Object.fromEntries(this.effective().backends.map((b) => [b.name, { state: b.state, mac: b.mac ? formatMac(b.mac) : "unresolved" }])),
      ports: Object.fromEntries(this.board.ports.map((p) => [p.name, p.stats()])),
      discovery: this.discovery(),
      supervisor: this.supervisorHost?.supervisor?.stats(),
      ha: this.haStatus(),
      primaries: this.primaryBackends(),
      levels: this.levelsView(),
      partitions: this.partitionsByService(),
    };
  }

  private async writeStatus(): Promise<void> {
    const path = this.opts.statusFile;
    if (!path) return;
    try {
      await writeFile(`${path}.tmp`, JSON.stringify(this.status(), null, 1));
      await rename(`${path}.tmp`, path);
    } catch (e) {
      this.log(`flowswitch: cannot write ${path}: ${(e as Error).message}`);
    }
  }

  /** Raises flow-table-high once when use crosses the threshold; again only after it fell below 80%. */
  private watchFlowTable(): void {
    const t = this.view().flowTable();
    for (const [family, used, cap] of [[4, t.ipv4Used, t.ipv4Capacity], [6, t.ipv6Used, t.ipv6Capacity]] as const) {
      const percent = cap ? (100 * used) / cap : 0;
      if (!this.flowTableHigh[family] && percent >= FLOW_TABLE_HIGH_PERCENT) {
        this.flowTableHigh[family] = true;
        this.events.emit({ type: "flow-table-high", family, used, capacity: cap, percent: Math.round(percent), at: Date.now() });
        this.log(`flowswitch: IPv${family} flow table ${Math.round(percent)}% full (${used} of ${cap})`);
      } else if (this.flowTableHigh[family] && percent < 80) {
        this.flowTableHigh[family] = false;
      }
    }
  }

  /** Flow entries per backend, counted from the tables at most every 5 s (a full scan is not free). */
  private activeFlowCounts(): Map<string, number> {
    if (Date.now() - this.activeFlows.at < 5000) return this.activeFlows.counts;
    return this.countFlowsNow();
  }

  private countFlowsNow(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const e of this.pool.engines) countFlowsByBackend(e, counts);
    this.activeFlows = { at: Date.now(), counts };
    return counts;
  }

  /**
   * Leaving end systems whose flows have all ended are removed. The count is taken fresh, after
   * they started leaving, so no flow that existed then is missed.
   */
  private reapLeaving(): void {
    const r = this.registry;
    if (!r || r.leaving().length === 0) return;
    const counts = this.countFlowsNow();
    const byEndSystem = new Map<string, number>();
    for (const b of this.advertisedBackends()) byEndSystem.set(b.endSystem, (byEndSystem.get(b.endSystem) ?? 0) + (counts.get(b.name) ?? 0));
    r.reap((id) => byEndSystem.get(id) ?? 0);
  }

  /**
   * The read-only view monitoring uses (SNMP, MQTT): raw engine counters, never reset by
   * `clear counters` (SNMP Counter64s must only grow).
   */
  view(): BoxView {
    const box = this;
    return {
      hostname: () => box.config.hostname,
      uptimeMs: () => Date.now() - box.started,
      version: () => VERSION,
      counters: () => box.pool.counters(),
      ports: () => {
        const c = box.pool.counters();
        return box.portInfo().map((p, index) => {
          const k = c.ports[p.name];
          return { index, name: p.name, device: p.device, mac: p.mac, mtu: p.mtu, up: p.up, rxPackets: k?.rxPackets ?? 0, rxBytes: k?.rxBytes ?? 0, txPackets: k?.txPackets ?? 0, txBytes: k?.txBytes ?? 0, drops: k?.drops ?? 0 };
        });
      },
      services: () => {
        const c = box.pool.counters();
        return box.config.services.map((s) => {
          const k = c.services[s.name];
          return { name: s.name, vip: s.vip.text, protocol: s.protocol, port: s.port, mode: s.mode, backends: s.backends.length, packets: k?.packets ?? 0, bytes: k?.bytes ?? 0, newFlows: k?.newFlows ?? 0, drops: k?.drops ?? 0 };
        });
      },
      backends: () => {
        const c = box.pool.counters();
        const active = box.activeFlowCounts();
        const eff = box.backendStates();
        return box.config.backends.map((b) => {
          const k = c.backends[b.name];
          const h = box.health.status(b.name);
          const weight = Math.max(0, ...box.config.services.flatMap((s) => s.backends.filter((m) => m.name === b.name).map((m) => m.weight)));
          return {
            name: b.name, address: b.address.text, state: eff[b.name]?.state ?? b.state, weight,
            health: h ? h.state : "unchecked", healthReason: h?.reason ?? "", packets: k?.packets ?? 0, bytes: k?.bytes ?? 0,
            newFlows: k?.newFlows ?? 0, activeFlows: active.get(b.name) ?? 0,
          };
        });
      },
      engines: () => box.pool.engines.map((e) => {
        const k = e.counters();
        return { id: e.id, rxFrames: k.rx, txFrames: k.tx, drops: k.drop, flowEntries: k.flows.ipv4 + k.flows.ipv6 };
      }),
      flowTable: () => {
        const c = box.pool.counters();
        const n = box.pool.engines.length;
        return { ipv4Used: c.flows.ipv4, ipv4Capacity: box.config.sizes.ipv4Flows * n, ipv6Used: c.flows.ipv6, ipv6Capacity: box.config.sizes.ipv6Flows * n };
      },
      ha: () => (box.haRole === "init" ? "standby" : box.haRole),
      discovery: () => {
        const r = box.registry;
        if (!r) return undefined;
        const now = Date.now();
        const { endSystems: _, ...stats } = r.stats();
        return {
          ...stats,
          endSystems: r.endSystems().map((e) => ({
            id: e.id, state: e.state, addresses: e.addresses, intervalMs: e.intervalMs, lastHeardMs: Math.max(0, now - e.lastSeen),
            services: e.services.map((s) => ({ vip: s.vip, protocol: s.protocol, port: s.port, advertised: s.weight, weight: r.weightNow(e.id, s) })),
            ...(e.load && { load: { cpu: e.load.cpu, connections: e.load.connections, responseTimeUs: e.load.responseTimeUs, ageMs: Math.max(0, now - e.load.at) } }),
          })),
        };
      },
      supervisor: () => box.supervisorHost?.supervisor?.stats(),
      chains: () => box.chainView(),
      levels: () => box.levelsView(),
      partitions: () => box.partitionsByService(),
      pair: () => {
        if (!box.config.ha) return undefined;
        const e = box.haElection;
        const sync = box.haManager?.status();
        return {
          node: box.config.ha.node,
          role: box.haRole,
          ready: box.haRole === "active" || (sync?.ready ?? false),
          ...(box.haPeer && { peer: { node: box.haPeer.node, state: box.haPeer.state, alive: box.haPeer.alive } }),
          links: Object.fromEntries(Object.entries(e?.links ?? {}).map(([k, l]) => [k, l.up])),
          takeovers: e?.takeovers ?? 0,
          splitBrains: e?.splitBrains ?? 0,
          heartbeatsRefused: Object.values(e?.rejected ?? {}).reduce((a, b) => a + b, 0),
          flowsSent: sync?.flowsSent ?? 0,
          flowsReceived: sync?.flowsReceived ?? 0,
          syncConnected: sync?.connected ?? false,
        };
      },
      events: box.events,
    };
  }

  /** Counters summed over the engines, since the last clearCounters(). */
  counters(): CounterSnapshot {
    const now = this.pool.counters();
    return this.baseline ? subtractCounters(now, this.baseline) : now;
  }

  /** Starts the counters shown from zero (the engines' own counters keep running). */
  clearCounters(): void {
    this.baseline = this.pool.counters();
  }

  flows(filter: FlowFilter): FlowRow[] {
    const out: FlowRow[] = [];
    for (const e of this.pool.engines) out.push(...readFlows(e, { ...filter, limit: (filter.limit ?? Infinity) - out.length }));
    return out;
  }

  /** Per backend: what the engines run (state, MAC) and what the health check says. */
  backendStates(): Record<string, { state: string; mac: string; health?: string }> {
    const out: Record<string, { state: string; mac: string; health?: string }> = {};
    for (const b of this.effective().backends) {
      const h = this.health.status(b.name);
      out[b.name] = { state: b.mac ? b.state : "unresolved", mac: b.mac ? formatMac(b.mac) : "(resolving)", health: h ? `${h.state} (${h.reason})` : undefined };
    }
    return out;
  }

  portInfo(): { name: string; device: string; mac: string; mtu: number; addresses: string[]; up: boolean }[] {
    return this.config.ports.map((p) => ({
      name: p.name, device: p.device, mac: formatMac(p.mac), mtu: p.mtu,
      addresses: [p.ipv4?.text, p.ipv6?.text].filter((a): a is string => !!a), up: this.board.ports[p.index] !== undefined,
    }));
  }

  systemInfo(): Record<string, string> {
    const up = Math.floor((Date.now() - this.started) / 1000);
    return {
      hostname: this.config.hostname,
      board: this.board.kind,
      "packet engines": String(this.pool?.engines.length ?? 0),
      uptime: `${Math.floor(up / 86400)}d ${Math.floor((up % 86400) / 3600)}h ${Math.floor((up % 3600) / 60)}m ${up % 60}s`,
      "flow table": `${this.config.sizes.ipv4Flows.toLocaleString("en-US")} IPv4, ${this.config.sizes.ipv6Flows.toLocaleString("en-US")} IPv6 entries`,
      node: process.version,
    };
  }

  async stop(): Promise<void> {
    clearInterval(this.statusTimer);
    clearInterval(this.watchTimer);
    await this.monitoring?.stop();
    clearTimeout(this.reapplyTimer);
    this.health.stop();
    this.registry?.stop();
    await this.supervisorHost?.stop();
    await this.levelsChange;
    await this.levels?.stop();
    for (const t of this.garpTimers) clearTimeout(t);
    clearInterval(this.haStatsTimer);
    await this.heartbeat?.stop();
    await this.haManager?.stop();
    this.groups?.stop();
    this.neighbors?.stop();
    await this.pool?.stop();
    await this.board.close();
  }
}

function parseAddress(text: string): Backend["address"] {
  const a = parseIP(text);
  return { family: a.family, bytes: a.bytes, text };
}

async function openBoard(config: Config): Promise<Board> {
  const { openLinuxBoard } = await import("../board/linux/index.js");
  return openLinuxBoard(config.ports.map((p) => ({ name: p.name, device: p.device })));
}

/** Where `--board linux` keeps state that outlives a restart (the supervisor's leases) unless --state-dir says otherwise. */
export const DEFAULT_STATE_DIR = "/var/lib/flowswitch";

const USAGE = `usage: flowswitch --board linux --config FILE [--flash FILE] [--console TTY [--console-speed BAUD]] [--status-file FILE] [--state-dir DIR]

Runs the appliance on the Linux board: the ports of the configuration bound to the network
interfaces their "device" names.
  without --flash   FILE is the configuration; SIGHUP re-reads it
  --flash FILE      the configuration lives in this flash image (a file or block device, made if
                    missing): committed from the console, saved atomically, with rollbacks; the
                    --config FILE is only the factory default for an empty flash
  --console TTY     the serial console on this tty (a serial port or a pty)
  --console-speed BAUD  its line speed (default 9600; 115200 makes an image upload 12 times faster)
  --state-dir DIR   state that outlives a restart: the supervisor's leases (default ${DEFAULT_STATE_DIR})
SIGTERM or SIGINT stops.`;

/** The command line: returns the exit status once stopped. */
export async function runAppliance(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: "string" }, "status-file": { type: "string" }, flash: { type: "string" }, console: { type: "string" }, "console-speed": { type: "string" }, "state-dir": { type: "string" }, help: { type: "boolean" } },
    }));
  } catch (e) {
    process.stderr.write(`flowswitch: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.config) {
    process.stderr.write(`flowswitch: --config is required\n${USAGE}\n`);
    return 2;
  }
  if (values.console && !values.flash) {
    process.stderr.write("flowswitch: --console needs --flash: the console commits to the configuration in flash\n");
    return 2;
  }
  const stateDir = values["state-dir"] ?? DEFAULT_STATE_DIR;
  const speed = values["console-speed"] === undefined ? undefined : Number(values["console-speed"]);
  if (speed !== undefined && !CONSOLE_SPEEDS.includes(speed)) {
    process.stderr.write(`flowswitch: --console-speed ${values["console-speed"]}: expected one of ${CONSOLE_SPEEDS.join(", ")}\n`);
    return 2;
  }
  if (values.flash) return runManaged(values.config, values.flash, values.console, values["status-file"], stateDir, speed);
  let box: Appliance;
  try {
    box = await Appliance.boot({ configPath: values.config, statusFile: values["status-file"], stateDir });
  } catch (e) {
    process.stderr.write(`flowswitch: ${(e as Error).message}\n`);
    return e instanceof ConfigFileError ? 2 : 1;
  }
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      process.stdout.write(`${new Date().toISOString()} flowswitch: ${signal}: stopping\n`);
      void box.stop().then(() => resolve(0), () => resolve(1));
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    process.on("SIGHUP", () => void box.reload());
  });
}

/** The appliance with its configuration in flash and (optionally) a serial console. */
/** Line speeds a serial console runs at (the usual UART ones). */
const CONSOLE_SPEEDS = [9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];

async function runManaged(configPath: string, flashPath: string, consolePath: string | undefined, statusFile: string | undefined, stateDir: string, baudRate?: number): Promise<number> {
  const { bootBox } = await import("./box.js");
  const { openFlashFile } = await import("../board/flash.js");
  const { openSerial } = await import("./console/serial.js");
  let stop: (() => Promise<void>) | undefined;
  try {
    const factory = await loadConfig(configPath);
    const linux = await openBoard(factory);
    const flash = await openFlashFile(flashPath, { create: true });
    const board: Board = { kind: linux.kind, ports: linux.ports, flash, close: async () => { await linux.close(); await flash.close(); } };
    const serial = consolePath ? await openSerial(consolePath, { baudRate }) : undefined;
    const box = await bootBox({ board, defaultConfigPath: configPath, console: serial, statusFile, stateDir, banner: "Flowswitch serial console" });
    stop = async () => {
      await box.stop();
      await serial?.close();
    };
  } catch (e) {
    process.stderr.write(`flowswitch: ${(e as Error).message}\n`);
    await stop?.();
    return e instanceof ConfigFileError ? 2 : 1;
  }
  return new Promise<number>((resolve) => {
    const end = (signal: string): void => {
      process.stdout.write(`${new Date().toISOString()} flowswitch: ${signal}: stopping\n`);
      void stop!().then(() => resolve(0), () => resolve(1));
    };
    process.once("SIGTERM", () => end("SIGTERM"));
    process.once("SIGINT", () => end("SIGINT"));
  });
}
