// The console's commands: operational mode (show, clear, request, configure) and configuration
// mode (set, delete, show, commit, rollback, load). Each command is registered with its help text
// where it is defined, as in VPP's cli.c; what a command prints fits 80 columns.
import type { Node, Parsed } from "./cli.js";
import type { CounterSnapshot, FlowFilter, FlowRow } from "../engine/index.js";
import type { ConfigInput } from "../config/schema.js";
import type { ConfigSession } from "../config/session.js";
import { formatError } from "../config/validate.js";
import { completions, compare, renderConfig, toSetCommands, fromSetCommands, setPath, deletePath } from "../config/paths.js";
import { renderSupervisor, type SupervisorView } from "./supervisor-view.js";
import { renderHa, type HaView } from "./ha-view.js";
import type { ChainDeviceView } from "../chains.js";
import type { Appliance } from "../appliance.js";
import type { RawLine } from "./terminal.js";
import { addSoftware, renderSoftware, rollbackSoftware, type SoftwareConsole } from "./software.js";

const NO_SOFTWARE = "error: this box has no firmware slots (no flash with slots A and B)";

/** What the console needs from the appliance. */
export interface ConsoleHost {
  hostname(): string;
  session: ConfigSession;
  counters(): CounterSnapshot;
  flows(filter: FlowFilter): FlowRow[];
  /** Per backend: effective state, MAC, health reason. */
  backends(): Record<string, { state: string; mac: string; health?: string }>;
  ports(): { name: string; device: string; mac: string; mtu: number; addresses: string[]; up: boolean }[];
  system(): Record<string, string>;
  clearCounters(): void;
  reboot(): Promise<void>;
  /** Service discovery's state; undefined when the configuration has no discovery section. */
  discovery(): DiscoveryView | undefined;
  /** The supervisor's state; undefined when none runs. */
  supervisor?(): SupervisorView | undefined;
  /** The redundant pair; undefined without an ha section. */
  ha?(): HaView | undefined;
  /** Service chains: every device of every hop. */
  chains?(): ChainDeviceView[];
  /** ACL tables with their counters. */
  acls?(): ReturnType<Appliance["aclView"]>;
  /** `request service validate NAME`. */
  validateService?(name: string): ReturnType<Appliance["validateService"]>;
  /** Multi-level routing; undefined without a levels section. */
  levels?(): ReturnType<Appliance["levelsView"]>;
  /** Source-partition services' portions (one service, or all); a string is an error. */
  partitions?(service?: string): ReturnType<Appliance["partitionView"]>;
  /** `request service repartition NAME PREFIX BACKEND` / `NAME reset`: an error, or undefined. */
  repartition?(service: string, prefix: string, owner?: string): string | undefined;
  /** `request ha standby` (true) / `release` (false); false when there is no pair. */
  holdStandby?(on: boolean): boolean;
  /** The firmware slots; undefined when the box has none. */
  software?: SoftwareConsole;
}

/** What `show discovery` shows. */
export interface DiscoveryView {
  /** Local clock, ms, that lastSeen is measured against. */
  now: number;
  endSystems: {
    id: string;
    addresses: string[];
    state: string;
    lastSeen: number;
    /** How often it says it repeats its advertisement (ms). */
    intervalMs?: number;
    /** Per service offered: the advertised weight and the one new flows use now (moved by LOAD). */
    services: { service: string; advertised: number; now: number }[];
    /** The last LOAD; `at` is the local clock (ms) it arrived at. */
    load?: { cpu: number; connections: number; responseTimeUs: number; at?: number };
  }[];
  accepted: number;
  ignored: number;
  flowRules: number;
  flowsRefused: number;
  flowsWidened: number;
  rejected: Record<string, number>;
  /** Refusals by source address (at most 256, then "other") and reason. */
  rejectedBy?: Record<string, Partial<Record<string, number>>>;
}

/** The text of `show discovery`: end systems, then the counters (refusals by reason and by source). */
export function renderDiscovery(d: DiscoveryView | undefined): string {
  if (!d) return "Service discovery is not configured.";
  const ago = (t: number): string => `${Math.max(0, Math.round((d.now - t) / 1000))}s ago`;
  const rows = d.endSystems.flatMap((e) => {
    const svc = e.services.length ? e.services : [undefined];
    return svc.map((s, i) => i === 0
      ? [e.id, e.addresses.join(" "), e.state, s?.service ?? "-", s ? (s.now === s.advertised ? String(s.now) : `${s.now} (${s.advertised})`) : "-", ago(e.lastSeen), e.load ? `${e.load.cpu}% ${(e.load.responseTimeUs / 1000).toFixed(1)}ms` : "-"]
      : ["", "", "", s!.service, s!.now === s!.advertised ? String(s!.now) : `${s!.now} (${s!.advertised})`, "", ""]);
  });
  const lines = [
    rows.length ? table(["End system", "Addresses", "State", "Service", "Weight", "Last seen", "Load"], rows) : "No end systems have advertised themselves.",
    "",
    `Datagrams accepted ${fmt(d.accepted)}, not acted on ${fmt(d.ignored)}`,
    `Flow rules ${fmt(d.flowRules)}, refused ${fmt(d.flowsRefused)}, widened ${fmt(d.flowsWidened)}`,
    "Refused datagrams by reason:",
    ...Object.entries(d.rejected).map(([k, v]) => `  ${k.padEnd(20)} ${fmt(v).padStart(14)}`),
  ];
  // the noisiest source first: a mis-keyed server or an attack shows at the top
  const bySource = Object.entries(d.rejectedBy ?? {})
    .map(([from, r]) => ({ from, r: Object.entries(r).filter((x): x is [string, number] => !!x[1]) }))
    .map((x) => ({ ...x, total: x.r.reduce((n, [, v]) => n + v, 0) }))
    .filter((x) => x.total > 0)
    .sort((a, b) => b.total - a.total);
  if (bySource.length) lines.push("Refused datagrams by source:", ...bySource.map((x) => `  ${x.from.padEnd(20)} ${x.r.map(([k, v]) => `${k} ${fmt(v)}`).join(", ")}`));
  return lines.join("\n");
}

/** The text of `show discovery end-systems`: one line per end system with its last LOAD. */
export function renderEndSystems(d: DiscoveryView | undefined): string {
  if (!d) return "Service discovery is not configured.";
  if (!d.endSystems.length) return "No end systems have advertised themselves.";
  const secs = (ms: number): string => `${Math.max(0, ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;
  const rows = d.endSystems.map((e) => [
    e.id, e.state, e.addresses[0] ?? "-", e.intervalMs === undefined ? "-" : secs(e.intervalMs), secs(d.now - e.lastSeen),
    e.load ? `${e.load.cpu}%` : "-", e.load ? fmt(e.load.connections) : "-", e.load ? `${(e.load.responseTimeUs / 1000).toFixed(1)}ms` : "-",
    e.load?.at === undefined ? "-" : secs(d.now - e.load.at),
  ]);
  return table(["End system", "State", "Address", "Interval", "Heard", "CPU", "Conns", "Resp", "Load age"], rows);
}

/** What a command may do to the console session it runs in. */
export interface ShellIO {
  user: string;
  admin: boolean;
  print(text: string): Promise<void>;
  /** Reads lines until a line with only Ctrl-D (or "."), for `load ... terminal`. */
  readBlock(prompt: string): Promise<string | null>;
  /** Hands the serial line over whole (a file transfer); see Terminal.rawSession. */
  rawSession<T>(fn: (line: RawLine) => Promise<T>): Promise<T>;
  confirm(question: string): Promise<boolean>;
  enterConfig(): void;
  leaveConfig(): void;
  logout(): void;
  /** `run ...` in configuration mode: an operational command. */
  runOperational(words: string[]): Promise<void>;
}

const fmt = (n: number): string => n.toLocaleString("en-US");

/** Fits rows into columns of at most `width` characters, the last column taking what is left. */
export function table(head: string[], rows: string[][], width = 80): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const fixed = widths.slice(0, -1).reduce((a, b) => a + b + 2, 0);
  widths[widths.length - 1] = Math.max(4, Math.min(widths[widths.length - 1], width - fixed));
  const line = (r: string[]): string => r.map((c, i) => {
    const w = widths[i];
    const cell = c.length > w ? `${c.slice(0, w - 1)}~` : c;
    return /^[\d,.%]+$/.test(c) && i > 0 ? cell.padStart(w) : cell.padEnd(w);
  }).join("  ").trimEnd();
  return [line(head), ...rows.map(line)].join("\n");
}

/** Output filters after a pipe: `| match RE`, `| count`, `| display set|json`, `| compare`, `| no-more`. */
function filterOutput(text: string, p: Parsed): string {
  let out = text;
  for (const f of p.pipes) {
    if (f.name === "match") {
      const re = new RegExp(f.arg ?? "", "i");
      out = out.split("\n").filter((l) => re.test(l)).join("\n");
    } else if (f.name === "except") {
      const re = new RegExp(f.arg ?? "", "i");
      out = out.split("\n").filter((l) => !re.test(l)).join("\n");
    } else if (f.name === "count") {
      out = `Count: ${out.split("\n").filter(Boolean).length} lines`;
    }
  }
  return out;
}

const reCheck = (v: string): string | undefined => {
  try {
    new RegExp(v);
    return undefined;
  } catch {
    return "a regular expression";
  }
};
const TEXT_PIPES = {
  match: { help: "Show only lines that match a pattern", arg: { name: "pattern", help: "regular expression", check: reCheck } },
  except: { help: "Show only lines that do not match a pattern", arg: { name: "pattern", help: "regular expression", check: reCheck } },
  count: { help: "Count the lines" },
  "no-more": { help: "Do not page the output" },
};
const isInt = (min: number, max: number) => (v: string): string | undefined =>
  /^\d+$/.test(v) && Number(v) >= min && Number(v) <= max ? undefined : `a whole number from ${min} to ${max}`;

/** Values shown as (hidden) everywhere: keys and passwords that are stored as written. */
const SECRET_KEYS = new Set(["authKey", "privKey", "password"]);

function configText(c: ConfigInput, p: Parsed, path: string[]): string {
  const display = p.pipes.find((x) => x.name === "display")?.arg;
  if (display === "set") return toSetCommands(c).filter((l) => path.length === 0 || l.startsWith(`set ${path.join(" ")} `) || l === `set ${path.join(" ")}`).join("\n");
  if (display === "json") return JSON.stringify(c, (k, v) => (SECRET_KEYS.has(k) && typeof v === "string" ? "(hidden)" : v), 2);
  return renderConfig(c, path);
}

function showTables(host: ConsoleHost, io: ShellIO): Record<string, Node<void>> {
  const out = (text: (p: Parsed) => string) => async (p: Parsed): Promise<void> => io.print(filterOutput(text(p), p));
  const counters = (): CounterSnapshot => host.counters();
  return {
    interfaces: {
      help: "Ports: addresses, state and traffic",
      pipes: TEXT_PIPES,
      run: out(() => {
        const c = counters();
        const rows = host.ports().map((p) => {
          const k = c.ports[p.name];
          return [p.name, p.device, p.up ? "up" : "down", p.mac, fmt(k?.rxPackets ?? 0), fmt(k?.txPackets ?? 0), fmt((k?.drops ?? 0))];
        });
        const addr = host.ports().flatMap((p) => p.addresses.map((a) => `  ${p.name}: ${a}`));
        return `${table(["Port", "Device", "Link", "MAC", "Rx pkts", "Tx pkts", "Drops"], rows)}${addr.length ? `\nAddresses:\n${addr.join("\n")}` : ""}`;
      }),
    },
    services: {
      help: "Services: VIP, mode, backends and traffic",
      pipes: TEXT_PIPES,
      run: out(() => {
        const c = counters();
        const running = host.session.running;
        const rows = (running.services ?? []).map((s) => {
          const k = c.services[s.name];
          return [s.name, `${s.vip}:${s.protocol}/${s.port || "*"}`, s.mode, String(s.backends.length), fmt(k?.newFlows ?? 0), fmt(k?.packets ?? 0)];
        });
        return rows.length ? table(["Service", "VIP:proto/port", "Mode", "Backends", "New flows", "Packets"], rows) : "No services are configured.";
      }),
    },
    backends: {
      help: "Backends: state, health, MAC and traffic",
      pipes: TEXT_PIPES,
      run: out(() => {
        const c = counters();
        const eff = host.backends();
        const rows = (host.session.running.backends ?? []).map((b) => {
          const e = eff[b.name];
          const k = c.backends[b.name];
          return [b.name, b.address, e?.state ?? b.state ?? "active", e?.mac ?? "", fmt(k?.newFlows ?? 0), fmt(k?.packets ?? 0), e?.health ?? "-"];
        });
        return rows.length ? table(["Backend", "Address", "State", "MAC", "New flows", "Packets", "Health"], rows) : "No backends are configured.";
      }),
    },
    flows: {
      help: "Flows in the flow tables, by service, backend or address",
      options: {
        service: { help: "Only this service's flows", arg: { name: "name", help: "service name", values: () => (host.session.running.services ?? []).map((s) => s.name) } },
        backend: { help: "Only flows on this backend", arg: { name: "name", help: "backend name", values: () => (host.session.running.backends ?? []).map((b) => b.name) } },
        address: { help: "Only flows from or to this address", arg: { name: "address", help: "IPv4 or IPv6 address" } },
        limit: { help: "At most this many flows (default 1000)", arg: { name: "count", help: "a number of flows", check: isInt(1, 1_000_000) } },
      },
      pipes: TEXT_PIPES,
      run: out((p) => {
        const o = p.options;
        const limit = typeof o.limit === "string" ? Number(o.limit) : 1000;
        const rows = host.flows({ service: o.service as string | undefined, backend: o.backend as string | undefined, address: o.address as string | undefined, limit });
        const proto = (n: number): string => (n === 6 ? "tcp" : n === 17 ? "udp" : String(n));
        const ep = (a: string, port: number): string => (a.includes(":") ? `[${a}]:${port}` : `${a}:${port}`);
        const lines = rows.map((f) => [`${ep(f.src, f.sport)}${f.reverse ? " <" : " >"}`, ep(f.dst, f.dport), proto(f.protocol), f.service, f.backend, fmt(f.packets), `${f.idleLeft}s${f.closing ? " fin" : ""}`]);
        const head = `${rows.length} flow${rows.length === 1 ? "" : "s"}${rows.length >= limit ? ` (limit ${limit})` : ""}; "<" marks NAT return entries`;
        return rows.length ? `${head}\n${table(["Source", "Destination", "Proto", "Service", "Backend", "Packets", "Idle"], lines)}` : "No flows match.";
      }),
    },
    counters: {
      help: "Data-plane counters: frames, drops by reason, flows",
      pipes: TEXT_PIPES,
      run: out(() => {
        const c = counters();
        const lines = [
          `Frames in        ${fmt(c.rx).padStart(14)}`,
          `  transmitted    ${fmt(c.tx).padStart(14)}`,
          `  to the host    ${fmt(c.punt).padStart(14)}`,
          `  dropped        ${fmt(c.drop).padStart(14)}`,
          `Flow entries     ${fmt(c.flows.ipv4 + c.flows.ipv6).padStart(14)}  (IPv4 ${fmt(c.flows.ipv4)}, IPv6 ${fmt(c.flows.ipv6)})`,
          `Flow inserts     ${fmt(c.flows.inserts).padStart(14)}  failed ${fmt(c.flows.insertFailed)}, expired ${fmt(c.flows.expired)}`,
          `ICMP errors sent ${fmt(c.icmpSent).padStart(14)}  TCP resets sent ${fmt(c.tcpResetsSent)}`,
        ];
        const drops = Object.entries(c.drops).sort((a, b) => b[1] - a[1]);
        if (drops.length) lines.push("Drops by reason:", ...drops.map(([k, v]) => `  ${k.padEnd(20)} ${fmt(v).padStart(14)}`));
        const punts = Object.entries(c.punts);
        if (punts.length) lines.push("To the host by reason:", ...punts.map(([k, v]) => `  ${k.padEnd(20)} ${fmt(v).padStart(14)}`));
        return lines.join("\n");
      }),
    },
    discovery: {
      help: "Advertised end systems (weight now: after LOAD; advertised in brackets) and refusals",
      pipes: TEXT_PIPES,
      run: out(() => renderDiscovery(host.discovery())),
      children: {
        "end-systems": {
          help: "Per end system: state, address, interval, seconds since heard, last LOAD and its age",
          pipes: TEXT_PIPES,
          run: out(() => renderEndSystems(host.discovery())),
        },
        supervisor: {
          help: "The supervisor: registrations, number pools and leases, counters",
          pipes: TEXT_PIPES,
          run: out(() => renderSupervisor(host.supervisor?.())),
        },
      },
    },
    chains: {
      help: "Service chains: per hop and device, state and packets sent / returned",
      pipes: TEXT_PIPES,
      run: out(() => {
        const v = host.chains?.() ?? [];
        if (!v.length) return "No service chains are configured.";
        return table(["Chain", "Hop", "Kind", "Device", "Role", "Port", "MAC", "State", "Sent", "Returned"],
          v.map((d) => [d.chain, d.hop, d.kind, d.device, d.role, d.port, d.mac ?? "(resolving)", d.reason ? `${d.state}: ${d.reason}` : d.state, fmt(d.sent), d.kind === "mirror" ? "-" : fmt(d.returned)]));
      }),
    },
    acls: {
      help: "ACL tables: rules in order with the new flows each decided",
      pipes: TEXT_PIPES,
      run: out(() => {
        const v = host.acls?.() ?? [];
        if (!v.length) return "No ACL tables are configured.";
        return v.map((t) => [`Table ${t.table} on ${t.port}${t.service ? ` for ${t.service}` : ""}:`,
          table(["Rule", "Action", "New flows"], [...t.rules.map((r) => [r.name, r.action, fmt(r.hits)]), ["(default)", t.default, fmt(t.defaultHits)]])].join("\n")).join("\n\n");
      }),
    },
    levels: {
      help: "Multi-level routing: sites and their costs (system), load updates (site), flow recovery",
      pipes: TEXT_PIPES,
      run: out(() => renderLevels(host.levels?.())),
    },
    partitions: {
      help: "Source-partition services: each portion of the client space and its owner now",
      options: { service: { help: "Only this service", arg: { name: "name", help: "service name", values: () => (host.session.running.services ?? []).filter((s) => s.policy === "source-partition").map((s) => s.name) } } },
      pipes: TEXT_PIPES,
      run: out((p) => {
        const v = host.partitions?.(typeof p.options.service === "string" ? p.options.service : undefined) ?? [];
        if (typeof v === "string") return `error: ${v}`;
        if (!v.length) return "No source-partition services are configured.";
        return v.map((x) => [`Service ${x.service}:`, table(["Portion", "Owner", "Configured", "Why"], x.portions.map((q) => [q.prefix, q.owner, q.configured, q.why]))].join("\n")).join("\n\n");
      }),
    },
    ha: {
      help: "The redundant pair: role, peer, links, flow-state sync, refusals",
      pipes: TEXT_PIPES,
      run: out(() => renderHa(host.ha?.())),
    },
    system: {
      help: "System: version, uptime, engines, board",
      pipes: TEXT_PIPES,
      run: out(() => Object.entries(host.system()).map(([k, v]) => `${`${k}:`.padEnd(18)}${v}`).join("\n")),
      children: {
        commit: {
          help: "Commit history (rollback numbers)",
          pipes: TEXT_PIPES,
          run: out(() => {
            const h = host.session.history();
            return table(["#", "Time", "User", "Comment"], h.map((e, i) => [String(i), new Date(e.time).toISOString().replace("T", " ").slice(0, 19), e.user, e.comment ?? ""]));
          }),
        },
        software: {
          help: "Firmware slots A and B: versions, which runs, which boots next",
          pipes: TEXT_PIPES,
          run: async (p) => io.print(host.software ? filterOutput(renderSoftware(await host.software.slots.status()), p) : NO_SOFTWARE),
        },
      },
    },
  };
}

const DISPLAY = { help: "Show the configuration as set commands or JSON", arg: { name: "format", help: "set or json", values: () => ["set", "json"], strict: true } };

export function operationalTree(host: ConsoleHost, io: ShellIO): Node<void> {
  const repartition = async (p: Parsed): Promise<void> => {
    if (!io.admin) return io.print("error: permission denied: needs the admin class");
    const [service, portion, owner] = p.args.map(String);
    if (portion !== "reset" && owner === undefined) return io.print("error: name the member that is to own the portion (or `reset`)");
    const err = host.repartition ? host.repartition(service, portion, owner) : "this console cannot re-partition";
    if (err) return io.print(`error: ${err}`);
    await io.print(portion === "reset" ? `Service ${service}: every portion back to its configured owner (new flows only).` : `Service ${service}: new flows from ${portion} go to ${owner}; existing ones stay where they are.`);
  };
  return {
    help: "",
    children: {
      show: {
        help: "Show information about the system",
        children: {
          ...showTables(host, io),
          configuration: {
            help: "The running configuration",
            path: (words, partial) => completions(host.session.running, words, partial),
            pipes: { ...TEXT_PIPES, display: DISPLAY },
            run: async (p) => io.print(filterOutput(configText(host.session.running, p, p.path), p)),
          },
        },
      },
      clear: {
        help: "Clear information",
        children: {
          counters: {
            help: "Start the counters shown from zero",
            run: async () => {
              host.clearCounters();
              await io.print("Counters cleared.");
            },
          },
        },
      },
      request: {
        help: "Make system-level requests",
        children: {
          service: {
            help: "Service operations",
            children: {
              repartition: {
                help: "Move a portion of a source-partition service to a member (new flows only), or reset every move",
                arg: { name: "service", help: "the service's name", values: () => (host.session.running.services ?? []).filter((s) => s.policy === "source-partition").map((s) => s.name) },
                then: {
                  help: "The portion (its prefix, as `show partitions` shows it), or reset",
                  arg: { name: "portion", help: "a portion's prefix, or reset" },
                  run: async (p) => repartition(p),
                  then: {
                    help: "The member that owns it from now on",
                    arg: { name: "backend", help: "a member of the service" },
                    run: async (p) => repartition(p),
                  },
                },
              },
              validate: {
                help: "Send a probe through every hop of the service's chain and report each",
                arg: { name: "service", help: "the service's name" },
                run: async (p) => {
                  const name = String(p.args[0] ?? "");
                  if (!name) return io.print("error: name a service");
                  const r = await host.validateService?.(name);
                  if (r === undefined) return io.print("error: this console cannot validate services");
                  if (typeof r === "string") return io.print(`error: ${r}`);
                  await io.print(table(["Hop", "Kind", "Device", "Result", "ms"], r.map((x) => [x.hop, x.kind, x.device, x.result, x.ms === undefined ? "-" : String(x.ms)])));
                },
              },
            },
          },
          ha: {
            help: "The redundant pair",
            children: {
              standby: {
                help: "Hand over to the peer now and stay standby (maintenance)",
                run: async () => {
                  if (!io.admin) return io.print("error: permission denied: needs the admin class");
                  if (!host.holdStandby?.(true)) return io.print("error: high availability is not configured");
                  await io.print("This node steps down and stays standby until `request ha release`.");
                },
              },
              release: {
                help: "End `request ha standby`: this node may become active again",
                run: async () => {
                  if (!io.admin) return io.print("error: permission denied: needs the admin class");
                  if (!host.holdStandby?.(false)) return io.print("error: high availability is not configured");
                  await io.print("Released: the election decides this node's role again.");
                },
              },
            },
          },
          system: {
            help: "System operations",
            children: {
              software: {
                help: "Firmware: install an image, roll back",
                children: {
                  add: {
                    help: "Receive an image over this console (YMODEM, XMODEM-1K) and install it in the other slot",
                    run: async () => {
                      if (!io.admin) return io.print("error: permission denied: installing software needs the admin class");
                      if (!host.software) return io.print(NO_SOFTWARE);
                      await addSoftware(io, host.software);
                    },
                  },
                  rollback: {
                    help: "Boot the other slot once at the next reboot",
                    run: async () => {
                      if (!io.admin) return io.print("error: permission denied: rolling back needs the admin class");
                      if (!host.software) return io.print(NO_SOFTWARE);
                      await rollbackSoftware(io, host.software);
                    },
                  },
                },
              },
              reboot: {
                help: "Reboot the appliance",
                run: async () => {
                  if (!io.admin) return io.print("error: permission denied: rebooting needs the admin class");
                  if (!(await io.confirm("Reboot the system?"))) return io.print("Reboot cancelled.");
                  await io.print("Rebooting...");
                  await host.reboot();
                },
              },
            },
          },
        },
      },
      configure: {
        help: "Enter configuration mode",
        run: async () => {
          if (!io.admin) return io.print("error: permission denied: configuration mode needs the admin class");
          io.enterConfig();
          if (host.session.dirty) await io.print("The candidate configuration has uncommitted changes.");
        },
      },
      exit: { help: "Log out", run: () => io.logout() },
      quit: { help: "Log out", run: () => io.logout() },
    },
  };
}

export function configurationTree(host: ConsoleHost, io: ShellIO): Node<void> {
  const s = host.session;
  const pathHelp = (words: string[], partial: string) => completions(s.candidate, words, partial);
  const setLike = (verb: "set" | "delete") => async (p: Parsed): Promise<void> => {
    let problem: { word: number; message: string } | undefined;
    s.edit((c) => {
      const r = verb === "set" ? setPath(c, p.path) : deletePath(c, p.path);
      if (!r.ok) problem = { word: r.word, message: r.message };
    });
    if (problem) throw new WordError(p.pathStart + problem.word, problem.message);
  };
  return {
    help: "",
    children: {
      set: { help: "Set a configuration value", path: pathHelp, run: setLike("set") },
      delete: { help: "Delete a configuration value or subtree", path: (w, p) => completions(s.candidate, w, p, "delete"), run: setLike("delete") },
      show: {
        help: "Show the candidate configuration (| compare: what commit would change)",
        path: pathHelp,
        pipes: { ...TEXT_PIPES, display: DISPLAY, compare: { help: "Compare with the running configuration" } },
        run: async (p) => {
          if (p.pipes.some((x) => x.name === "compare")) {
            const diff = compare(s.running, s.candidate);
            return io.print(diff.length ? diff.join("\n") : "No changes.");
          }
          await io.print(filterOutput(configText(s.candidate, p, p.path), p));
        },
      },
      compare: {
        help: "What commit would change (like show | compare)",
        run: async () => {
          const diff = compare(s.running, s.candidate);
          await io.print(diff.length ? diff.join("\n") : "No changes.");
        },
      },
      commit: {
        help: "Validate and activate the candidate configuration",
        options: {
          check: { help: "Only validate; change nothing" },
          confirmed: { help: "Roll back by itself unless confirmed within N minutes", arg: { name: "minutes", help: "minutes until the automatic rollback (1-60)", check: isInt(1, 60) } },
          comment: { help: "A comment for the commit history", arg: { name: "text", help: "comment text (quote it if it has spaces)" } },
          "and-quit": { help: "Commit, then leave configuration mode" },
        },
        run: async (p) => {
          const o = p.options;
          if (o.check) {
            const r = s.check();
            return io.print(r.ok ? "configuration check succeeds" : `error: configuration check fails:\n  ${r.errors.map(formatError).join("\n  ")}`);
          }
          const r = await s.commit({ user: io.user, comment: typeof o.comment === "string" ? o.comment : undefined, confirmMinutes: typeof o.confirmed === "string" ? Number(o.confirmed) : undefined });
          await io.print(commitMessage(r, typeof o.confirmed === "string" ? Number(o.confirmed) : undefined));
          if (r.ok && o["and-quit"]) io.leaveConfig();
        },
      },
      rollback: {
        help: "Load an earlier configuration into the candidate (0: the running one)",
        arg: { name: "number", help: "how many commits back (show system commit)", check: isInt(0, 49) },
        run: async (p) => {
          const n = p.args.length ? Number(p.args[0]) : 0;
          s.rollback(n);
          await io.print(`load complete: candidate is commit ${n} back; "show | compare" shows the change, "commit" activates it`);
        },
      },
      load: {
        help: "Replace the candidate with a configuration typed or pasted in",
        children: {
          set: { help: "set/delete commands, one per line", children: { terminal: { help: "Type or paste; end with Ctrl-D", run: async () => loadBlock(io, s, "set") } } },
          json: { help: "A whole configuration as JSON", children: { terminal: { help: "Type or paste; end with Ctrl-D", run: async () => loadBlock(io, s, "json") } } },
        },
      },
      run: { help: "Run an operational-mode command", path: () => [], run: async (p) => io.runOperational(p.path) },
      exit: {
        help: "Leave configuration mode",
        run: async () => {
          if (s.dirty) await io.print("warning: the candidate has uncommitted changes (they stay for the next configure)");
          io.leaveConfig();
        },
      },
      quit: { help: "Leave configuration mode", run: () => io.leaveConfig() },
    },
  };
}

/** An error located at a word of the command line. */
export class WordError extends Error {
  constructor(readonly word: number, message: string) {
    super(message);
  }
}

function commitMessage(r: Awaited<ReturnType<ConfigSession["commit"]>>, confirmed?: number): string {
  if (!r.ok) {
    if ("errors" in r && r.errors) return `error: configuration check fails; nothing was changed:\n  ${r.errors.map(formatError).join("\n  ")}`;
    if (r.stage === "refused") return `error: commit refused; nothing was changed: ${r.message}`;
    return `error: commit failed; nothing was changed: ${"message" in r ? r.message : "unknown error"}`;
  }
  return confirmed ? `commit confirmed will be automatically rolled back in ${confirmed} minutes unless confirmed\ncommit complete` : "commit complete";
}

async function loadBlock(io: ShellIO, s: ConfigSession, kind: "set" | "json"): Promise<void> {
  const text = await io.readBlock(kind === "set" ? "[Type set commands; end with Ctrl-D]" : "[Type or paste JSON; end with Ctrl-D]");
  if (text === null) return io.print("load cancelled");
  if (kind === "json") {
    try {
      s.importJson(text);
    } catch (e) {
      return io.print(`error: ${(e as Error).message}; the candidate is unchanged`);
    }
    return io.print('load complete: "show | compare" shows the change, "commit" activates it');
  }
  const r = fromSetCommands(text.split(/\r?\n/));
  if (!r.ok) return io.print(`error: the candidate is unchanged:\n  ${r.errors.map((e) => `line ${e.line}, word ${e.word + 1}: ${e.message}`).join("\n  ")}`);
  s.edit((c) => {
    for (const k of Object.keys(c)) delete (c as unknown as Record<string, unknown>)[k];
    Object.assign(c, r.config);
  });
  await io.print('load complete: "show | compare" shows the change, "commit" activates it');
}

/** `show levels`. */
function renderLevels(v: ReturnType<Appliance["levelsView"]>): string {
  if (!v) return "Multi-level routing is not configured (no levels section).";
  const out = [`Role ${v.role}, name ${v.name}, socket ${v.socket}`];
  if (v.sites) {
    out.push("Sites:", table(["Site", "Address", "Control", "State", "Last update", "Distance"], v.sites.map((x) => [
      x.name, x.address, x.control, x.state, x.lastUpdateAgeMs === undefined ? "never" : `${x.lastUpdateAgeMs} ms ago`,
      `${Math.round(x.distance * 100) / 100}${x.distanceMode === "measured" ? ` ms (measured, ${x.rttSamples} samples)` : ""}`,
    ])));
    for (const [service, c] of Object.entries(v.choices ?? {})) {
      out.push(`Service ${service}: new flows to ${c.eligible.join(", ") || "no site"}${c.failOpen ? " (fail open: no site's state is known)" : ""}`,
        table(["Site", "State", "Load", "Distance", "Cost"], c.sites.map((x) => [x.name, x.state, x.load === undefined ? "-" : `${Math.round(x.load * 1000) / 10}%`, x.distance === undefined ? "-" : String(Math.round(x.distance * 100) / 100), x.cost === undefined ? "-" : String(Math.round(x.cost * 100) / 100)])));
    }
  } else {
    out.push(`Uplinks: ${v.uplinks?.join(", ") || "none"}`);
    if (v.lastReport) out.push(`Last update (${Date.now() - v.lastReport.at} ms ago):`, table(["Prefix", "Load", "Servers", "Flows"], v.lastReport.entries.map((e) => [e.prefix, `${Math.round(e.load * 1000) / 10}%`, String(e.members), fmt(e.flows)])));
  }
  const r = v.recovery;
  out.push(`Flow recovery: ${r.enabled ? `on, peers ${r.peers.join(", ") || "none"}` : "off"}; asked ${fmt(r.queries)}, answered ${fmt(r.answered)}, none ${fmt(r.none)}, timed out ${fmt(r.timeouts)}, overflow ${fmt(r.overflow)}, pending ${r.pending}; answered peers ${fmt(v.answered.had)} of ${fmt(v.answered.asked)}`);
  const refused = Object.entries(v.refused);
  if (refused.length) out.push("Refused messages:", table(["Source", "Reasons"], refused.map(([src, rs]) => [src, Object.entries(rs).map(([k, n]) => `${k} ${n}`).join(", ")])));
  return out.join("\n");
}
