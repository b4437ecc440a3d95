// The end-to-end benchmark: wrk from the lab's client through each way of reaching the servers, in
// one run and on one topology (tools/lab):
//
//   flowswitch-dsr  Flowswitch, DSR VIP      (the appliance process on the Linux board, in fsl-app)
//   flowswitch-nat  Flowswitch, NAT VIP
//   kernel-direct   no balancer: the router routes the client straight to the server (the ceiling)
//   haproxy-tcp     HAProxy in TCP mode in fsl-app (the balancer a user would otherwise pick)
//
// Every run goes to one server (s1), so that each figure is one path to the same nginx: a fair
// comparison of the paths, not of how much a pool can serve. kernel-direct uses the servers' direct
// port (the lab routes replies from port 80 back through the appliance, for NAT).
//
// Figures only, never asserted. A figure made of errors is shown as such: socket errors and non-2xx
// responses are reported next to it. Packets per second per engine come from the appliance's
// status.json (frames received, between two reports inside the run, divided by the engine count).
//
// Usage: npm run bench:e2e [-- --json] [-- --duration S --connections N --threads N]
// Needs root or unprivileged user namespaces; brings the lab up if it is not (and down again after).
import { parseArgs } from "node:util";
import { runLabBenchmark, UsageError } from "./lab/bench-cli.js";
import {
  APPLIANCE_NS, DIRECT_PORT, VIPS, appliancePid, releaseLab, down, readStatus, server, sleep, startAppliance, status,
  stopAppliance, up, urlHost, waitForFreshStatus, writeApplianceConfig, HAPROXY_VIP, startHaproxy, stopHaproxy, wrk,
  type ApplianceStatus, type WrkOptions, type WrkResult,
} from "./lab/index.js";

type EngineName = "flowswitch-dsr" | "flowswitch-nat" | "kernel-direct" | "haproxy-tcp";

interface Result {
  name: EngineName;
  rps: number;
  p99ms: number;
  p50ms: number;
  requests: number;
  socketErrors: number;
  non2xx: number;
  /** Flowswitch only: frames received per second per packet engine. */
  ppsPerEngine?: number;
  engines?: number;
}

interface Failure {
  name: EngineName;
  error: string;
}

const USAGE = `usage: npm run bench:e2e [-- options]     (or: node build/tools/bench-e2e.js [options])

wrk through the lab (tools/lab): Flowswitch DSR and NAT, the kernel with no
balancer, HAProxy in TCP mode; requests/s, p99 latency, ratios, packets/s.

  --json               print only one JSON object: {"results": [...]}
  --duration SECONDS   each wrk run (default 10)
  --connections N      wrk connections (default 50)
  --threads N          wrk threads (default 2)
  --help               this text

Needs root or unprivileged user namespaces. Exit status: 0 when every engine
was measured, 1 when one could not be (the others are still reported), 2 for a
bad option.`;


function options(argv: string[]): { json: boolean; wrk: Required<Pick<WrkOptions, "durationS" | "connections" | "threads">> } | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        json: { type: "boolean", default: false },
        duration: { type: "string", default: "10" },
        connections: { type: "string", default: "50" },
        threads: { type: "string", default: "2" },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  const int = (name: string, text: string, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`--${name} ${text}: expected a whole number from 1 to ${max}`);
    return n;
  };
  const threads = int("threads", values.threads!, 64);
  const connections = int("connections", values.connections!, 10_000);
  if (connections < threads) throw new UsageError(`--connections ${connections}: expected at least as many as --threads (${threads})`);
  return { json: values.json!, wrk: { durationS: int("duration", values.duration!, 3600), connections, threads } };
}

function result(name: EngineName, r: WrkResult): Result {
  const e = r.socketErrors;
  return {
    name, rps: round(r.rps, 1), p99ms: round(r.latencyMs.p99, 3), p50ms: round(r.latencyMs.p50, 3), requests: r.requests,
    socketErrors: e.connect + e.read + e.write + e.timeout, non2xx: r.non2xx,
  };
}

/**
 * wrk against a Flowswitch VIP, with the engines' receive rate taken from two status reports
 * written while wrk runs (so idle time before and after does not dilute it).
 */
async function flowswitchRun(name: EngineName, url: string, o: WrkOptions): Promise<Result> {
  const durationMs = (o.durationS ?? 10) * 1000;
  const started = Date.now();
  const running = wrk(url, o);
  let first: ApplianceStatus | undefined;
  let last: ApplianceStatus | undefined;
  try {
    await sleep(Math.min(1000, durationMs / 4));
    first = await waitForFreshStatus(Date.now(), 3000);
    while (Date.now() < started + durationMs - 1200) {
      await sleep(250);
      const s = readStatus();
      if (s && s.time > (last?.time ?? first.time) && s.time < started + durationMs) last = s;
    }
  } catch {
    // no figures for the engines; wrk's still count
  }
  const r = result(name, await running);
  if (first && last && last.time > first.time) {
    const engines = Math.max(1, last.engines || 1);
    r.ppsPerEngine = Math.round((last.counters.rx - first.counters.rx) / ((last.time - first.time) / 1000) / engines);
    r.engines = engines;
  }
  return r;
}


async function measure(opts: Exclude<ReturnType<typeof options>, "help">, say: (m: string) => void): Promise<number> {
  const results: Result[] = [];
  const failed: Failure[] = [];
  const fail = (name: EngineName, e: unknown): void => {
    const error = (e as Error).message ?? String(e);
    failed.push({ name, error });
    say(`${name}: FAILED: ${error}`);
  };

  const before = await status();
  const broughtUp = !before.networkUp;
  const applianceWasRunning = !broughtUp && appliancePid() !== undefined;
  if (broughtUp) {
    say("bringing the lab up (network and servers)");
    await up({ appliance: false, log: (m) => say(`lab: ${m}`) });
  }
  const s1 = server("s1");
  // Ctrl-C or SIGTERM mid-run: undo what the run changed before leaving (HAProxy's addresses, the lab)
  let cleaning = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    if (cleaning) return;
    cleaning = true;
    say(`${sig}: cleaning up`);
    void restore().finally(() => {
      releaseLab();
      process.exit(130);
    });
  };
  const restore = async (): Promise<void> => {
    await stopHaproxy(["s1"]).catch(() => {});
    if (broughtUp) {
      say("taking the lab down");
      await down();
    } else {
      // leave the lab as it was found: the full config, and the appliance running if it was
      await writeApplianceConfig();
      if (applianceWasRunning) {
        say("restarting Flowswitch with the lab's full config");
        await startAppliance().catch((e: Error) => say(`restarting Flowswitch failed: ${e.message}`));
      }
    }
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    // Flowswitch with s1 only
    say("Flowswitch: one backend (s1), starting the appliance");
    await writeApplianceConfig({ servers: ["s1"] });
    let flowswitchUp = false;
    try {
      await startAppliance();
      flowswitchUp = true;
    } catch (e) {
      fail("flowswitch-dsr", e);
      failed.push({ name: "flowswitch-nat", error: "the appliance did not start (see flowswitch-dsr)" });
    }
    if (flowswitchUp) {
      for (const [name, vip] of [["flowswitch-dsr", VIPS.dsr4], ["flowswitch-nat", VIPS.nat4]] as const) {
        say(`${name}: wrk -t${opts.wrk.threads} -c${opts.wrk.connections} -d${opts.wrk.durationS}s http://${vip}/`);
        try {
          results.push(await flowswitchRun(name, `http://${vip}/`, opts.wrk));
        } catch (e) {
          fail(name, e);
        }
      }
    }

    say(`kernel-direct: wrk to ${s1.ipv4}:${DIRECT_PORT}, routed by the router, no balancer`);
    try {
      results.push(result("kernel-direct", await wrk(`http://${urlHost(s1.ipv4)}:${DIRECT_PORT}/`, opts.wrk)));
    } catch (e) {
      fail("kernel-direct", e);
    }

    say(`haproxy-tcp: stopping Flowswitch, HAProxy in ${APPLIANCE_NS} on ${HAPROXY_VIP}`);
    await stopAppliance();
    try {
      await startHaproxy(["s1"]);
      results.push(result("haproxy-tcp", await wrk(`http://${HAPROXY_VIP}/`, opts.wrk)));
    } catch (e) {
      fail("haproxy-tcp", e);
    } finally {
      await stopHaproxy(["s1"]);
    }
  } finally {
    if (!cleaning) {
      cleaning = true;
      await restore();
    }
  }

  const order: EngineName[] = ["flowswitch-dsr", "flowswitch-nat", "kernel-direct", "haproxy-tcp"];
  results.sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ results, ...(failed.length ? { failed } : {}) }, null, 2)}\n`);
  } else {
    process.stdout.write(table(results, failed, opts.wrk));
  }
  return failed.length ? 1 : 0;
}

function table(results: Result[], failed: Failure[], o: WrkOptions): string {
  const by = (n: EngineName): Result | undefined => results.find((r) => r.name === n);
  const haproxy = by("haproxy-tcp");
  const kernel = by("kernel-direct");
  const ratio = (x: number, base: Result | undefined): string => (base && base.rps > 0 ? `${(x / base.rps).toFixed(2)}x` : "-");
  const rows = [
    ["engine", "requests/s", "p50 ms", "p99 ms", "vs haproxy-tcp", "vs kernel-direct", "pps/engine", "errors"],
    ...results.map((r) => [
      r.name, r.rps.toFixed(0), r.p50ms.toFixed(2), r.p99ms.toFixed(2), ratio(r.rps, haproxy), ratio(r.rps, kernel),
      r.ppsPerEngine !== undefined ? `${r.ppsPerEngine} (${r.engines} engine${r.engines === 1 ? "" : "s"})` : "-",
      r.socketErrors || r.non2xx ? `${r.socketErrors} socket, ${r.non2xx} non-2xx` : "0",
    ]),
  ];
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join("  ");
  const out = [
    `wrk -t${o.threads} -c${o.connections} -d${o.durationS}s --latency from fsl-cli, one server (s1), one run each`,
    "",
    line(rows[0]),
    ...rows.slice(1).map(line),
  ];
  for (const f of failed) out.push(`${f.name}: not measured: ${f.error.split("\n")[0]}`);
  return `${out.join("\n")}\n`;
}

const round = (x: number, digits: number): number => Number(x.toFixed(digits));

runLabBenchmark("bench:e2e", USAGE, options, measure);
