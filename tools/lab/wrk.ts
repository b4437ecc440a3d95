// wrk from the client namespace, and its report parsed: requests/s, latency percentiles, errors.
import { nsRun } from "./exec.js";
import { CLIENT_NS } from "./topology.js";

export interface WrkOptions {
  threads?: number;
  connections?: number;
  durationS?: number;
  /** Extra request header lines, e.g. "Connection: close". */
  headers?: string[];
}

export interface WrkResult {
  url: string;
  requests: number;
  durationS: number;
  rps: number;
  /** Latency percentiles in ms: 50, 75, 90, 99. */
  latencyMs: Record<"p50" | "p75" | "p90" | "p99", number>;
  socketErrors: { connect: number; read: number; write: number; timeout: number };
  non2xx: number;
  /** wrk's report as printed. */
  output: string;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function duration(value: string, unit: string, what: string, output: string): number {
  const f = UNIT_MS[unit];
  if (f === undefined) throw new Error(`wrk: unknown unit "${unit}" in ${what}:\n${output}`);
  return Number(value) * f;
}

/** Parses wrk's report (wrk 4, run with --latency). */
export function parseWrk(url: string, output: string): WrkResult {
  const need = (re: RegExp, what: string): RegExpExecArray => {
    const m = re.exec(output);
    if (!m) throw new Error(`wrk: no ${what} in its report:\n${output}`);
    return m;
  };
  const total = need(/(\d+) requests in ([\d.]+)(us|ms|s|m|h)/, "request count");
  const pct = (p: string): number => {
    const m = need(new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m|h)\\s*$`, "m"), `${p}% latency (was --latency given?)`);
    return duration(m[1], m[2], `the ${p}% latency`, output);
  };
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(output);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(output);
  return {
    url,
    requests: Number(total[1]),
    durationS: duration(total[2], total[3], "the run's duration", output) / 1000,
    rps: Number(need(/Requests\/sec:\s+([\d.]+)/, "Requests/sec")[1]),
    latencyMs: { p50: pct("50"), p75: pct("75"), p90: pct("90"), p99: pct("99") },
    socketErrors: sock
      ? { connect: Number(sock[1]), read: Number(sock[2]), write: Number(sock[3]), timeout: Number(sock[4]) }
      : { connect: 0, read: 0, write: 0, timeout: 0 },
    non2xx: non2xx ? Number(non2xx[1]) : 0,
    output,
  };
}

export function wrkArgs(url: string, o: WrkOptions = {}): string[] {
  return [
    "wrk", `-t${o.threads ?? 2}`, `-c${o.connections ?? 50}`, `-d${o.durationS ?? 10}s`, "--latency", "--timeout", "5s",
    ...(o.headers ?? []).flatMap((h) => ["-H", h]), url,
  ];
}

/** Runs wrk in the client namespace to the end (bounded: its duration plus 20 s) and parses its report. */
export async function wrk(url: string, o: WrkOptions = {}): Promise<WrkResult> {
  const { stdout } = await nsRun(CLIENT_NS, wrkArgs(url, o), { timeoutMs: ((o.durationS ?? 10) + 20) * 1000 });
  return parseWrk(url, stdout);
}
