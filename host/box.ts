// A managed box: the appliance whose configuration lives in the board's flash (committed through
// a configuration session, saved atomically, with rollbacks), and a console on a byte stream.
// The configuration file is only the factory default, used when the flash holds none.
import type { Board } from "../board/types.js";
import { openConfigStore } from "./config/store.js";
import { ConfigSession } from "./config/session.js";
import { validate, formatError } from "./config/validate.js";
import type { ConfigInput } from "./config/schema.js";
import { Appliance } from "./appliance.js";
import { Terminal, type TerminalIo } from "./console/terminal.js";
import { Shell, type ShellEvents } from "./console/shell.js";
import type { ConsoleHost, DiscoveryView } from "./console/commands.js";
import type { SoftwareConsole } from "./console/software.js";
import { readFile } from "node:fs/promises";
import { supervisorView } from "./console/supervisor-view.js";
import { openSoftwareSlots, confirmBoot, type SoftwareSlots } from "./image/index.js";

export interface BoxOptions {
  /** A board with flash. */
  board: Board;
  /** The factory configuration (JSON file), for a flash that holds none. */
  defaultConfigPath: string;
  console?: TerminalIo;
  banner?: string;
  statusFile?: string;
  log?: (line: string) => void;
  /** The length of a minute for commit confirmed (tests shorten it). */
  minuteMs?: number;
  /** `request system reboot`: what the board does to restart (default: stop the process with status 3). */
  reboot?: () => Promise<void>;
  shellEvents?: ShellEvents;
  backoffMs?: (failures: number) => number;
  /** Where state that outlives a restart is kept (the supervisor's leases); the simulated box uses its flash folder. */
  stateDir?: string;
  /** What the console's software commands use instead of the board's slots, slot size and timings (tests). */
  consoleSoftware?: Partial<SoftwareConsole>;
}

export interface Box {
  appliance: Appliance;
  session: ConfigSession;
  shell?: Shell;
  /** Resolves when the console's line closes (never without a console). */
  consoleDone: Promise<void>;
  /** The firmware slots (host/image): `show system software`, installs, rollback. */
  software?: SoftwareSlots;
  stop(): Promise<void>;
}

export async function bootBox(o: BoxOptions): Promise<Box> {
  if (!o.board.flash) throw new Error(`the ${o.board.kind} board has no flash: the configuration has nowhere to live`);
  let factory: ConfigInput;
  try {
    factory = JSON.parse(await readFile(o.defaultConfigPath, "utf8")) as ConfigInput;
  } catch (e) {
    throw new Error(`cannot read the factory configuration ${o.defaultConfigPath}: ${(e as Error).message}`);
  }
  const v = validate(factory);
  if (!v.ok) throw new Error(`the factory configuration ${o.defaultConfigPath} is not valid:\n  ${v.errors.map(formatError).join("\n  ")}`);
  const appliance = await Appliance.prepare({ configPath: o.defaultConfigPath, board: o.board, statusFile: o.statusFile, log: o.log, stateDir: o.stateDir }, v.config);
  const session = await ConfigSession.open({
    store: openConfigStore(o.board.flash),
    apply: (c, input) => appliance.applyConfig(c, input),
    guard: (candidate) => appliance.refuseLocalChange(candidate),
    defaultConfig: factory,
    log: o.log,
    minuteMs: o.minuteMs,
  });
  appliance.configAdopter = (input) => session.adopt(input, "ha-peer", "replicated from the active node of the pair");
  const events = appliance.events;
  session.onCommit((c) => events.emit({ type: "commit", seq: c.seq, user: c.user, comment: c.comment, reverted: c.reverted, at: Date.now() }));
  const software = await openSoftwareSlots(o.board, o.log); // before the console: it shows and installs software
  let shell: Shell | undefined;
  let consoleDone: Promise<void> = new Promise(() => undefined);
  if (o.console) {
    const flash = o.board.flash;
    const slots = o.consoleSoftware?.slots ?? software;
    const softwareConsole: SoftwareConsole | undefined = slots && {
      slots,
      maxImageBytes: o.consoleSoftware?.maxImageBytes ?? Math.min(flash.partition("slotA").size, flash.partition("slotB").size),
      ...(o.consoleSoftware?.transfer ? { transfer: o.consoleSoftware.transfer } : {}),
    };
    const host = consoleHost(appliance, session, o.reboot ?? (async () => process.exit(3)), softwareConsole);
    const shellEvents: ShellEvents = {
      ...o.shellEvents,
      loginFailed: (user, failures) => {
        events.emit({ type: "login-failure", user, failures, at: Date.now() });
        o.shellEvents?.loginFailed?.(user, failures);
      },
    };
    shell = new Shell(new Terminal(o.console), host, shellEvents, { banner: o.banner, backoffMs: o.backoffMs });
    consoleDone = shell.run();
  }
  // Boot confirmation (docs/boot.md): engines and console are up, so an image the boot step
  // started tells its watchdog it is healthy. Nothing happens when not started from a slot.
  await confirmBoot(software, o.log);
  return {
    appliance,
    session,
    shell,
    consoleDone,
    software,
    async stop() {
      shell?.close();
      session.close();
      await appliance.stop();
    },
  };
}

export function consoleHost(box: Appliance, session: ConfigSession, reboot: () => Promise<void>, software?: SoftwareConsole): ConsoleHost {
  return {
    hostname: () => box.running.hostname,
    session,
    counters: () => box.counters(),
    flows: (f) => box.flows(f),
    backends: () => box.backendStates(),
    ports: () => box.portInfo(),
    system: () => ({ ...box.systemInfo(), "last commit": describeLast(session) }),
    clearCounters: () => box.clearCounters(),
    reboot,
    discovery: () => discoveryView(box),
    supervisor: () => supervisorView(box.supervisor()),
    ha: () => box.haStatus(),
    chains: () => box.chainView(),
    acls: () => box.aclView(),
    validateService: (name) => box.validateService(name),
    partitions: (service) => box.partitionView(service),
    levels: () => box.levelsView(),
    repartition: (service, prefix, owner) => box.repartition(service, prefix, owner),
    holdStandby: (on) => box.holdStandby(on),
    ...(software ? { software } : {}),
  };
}

/** `show discovery`'s data, from the appliance's discovery(). */
export function discoveryView(box: Appliance): DiscoveryView | undefined {
  const d = box.discovery();
  if (!d) return undefined;
  return {
    now: Date.now(),
    endSystems: d.endSystems.map((e) => ({
      id: e.id, addresses: e.addresses, state: e.state, lastSeen: e.lastSeen, intervalMs: e.intervalMs, services: d.weights[e.id] ?? [],
      load: e.load && { cpu: e.load.cpu, connections: e.load.connections, responseTimeUs: e.load.responseTimeUs, at: e.load.at },
    })),
    accepted: d.stats.accepted,
    ignored: d.stats.ignored,
    flowRules: d.stats.flowRules,
    flowsRefused: d.stats.flowsRefused,
    flowsWidened: d.stats.flowsWidened,
    rejected: d.stats.rejected,
    rejectedBy: d.stats.rejectedBy,
  };
}

function describeLast(session: ConfigSession): string {
  const h = session.history()[0];
  if (!h) return "none";
  return `${new Date(h.time).toISOString().replace("T", " ").slice(0, 19)} by ${h.user}${h.comment ? ` (${h.comment})` : ""}`;
}
