// Load as the OS sees it: CPU from the 1-minute load average per core, established TCP connections
// of the advertised services from /proc/net/tcp{,6}, and the duration of one HTTP GET to a local
// health page. All three are cheap enough to take once per advertisement interval.
//
// Trade-offs: the load average is a smoothed run-queue length, not CPU time, and it counts blocked
// I/O too; it is what operators already read in `uptime`, and it needs no sampling state. Only
// sockets whose local port is a served TCP port are counted, so the agent's own and unrelated
// connections (ssh, database clients) neither inflate the load nor hold up a drain.

import { cpus, loadavg } from "node:os";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import type { ServiceOffer } from "../../host/discovery/protocol.js";

/** /proc/net/tcp state code of an established connection. */
const TCP_ESTABLISHED = "01";
const TCP_FILES = ["/proc/net/tcp", "/proc/net/tcp6"];

/** CPU busy as a percentage 0-100: 1-minute load average over the number of cores. */
export function cpuPercent(): number {
  const cores = Math.max(1, cpus().length);
  return Math.min(100, Math.max(0, Math.round((loadavg()[0]! / cores) * 100)));
}

/** Local TCP ports whose connections count as load; null = every port (a service on port 0). */
export function countedPorts(services: readonly ServiceOffer[]): Set<number> | null {
  const tcp = services.filter((s) => s.protocol === 6);
  if (tcp.some((s) => s.port === 0)) return null;
  return new Set(tcp.map((s) => s.port));
}

/** Established TCP connections with a local port in `ports` (null: any), IPv4 and IPv6. */
export function establishedConnections(ports: ReadonlySet<number> | null, files: readonly string[] = TCP_FILES): number {
  let n = 0;
  for (const f of files) {
    let text: string;
    try {
      text = readFileSync(f, "utf8");
    } catch {
      continue; // no IPv6, or not Linux: nothing to count there
    }
    n += countEstablished(text, ports);
  }
  return n;
}

/** Counts ESTABLISHED rows of a /proc/net/tcp text: "sl local_address rem_address st ...". */
export function countEstablished(text: string, ports: ReadonlySet<number> | null): number {
  let n = 0;
  for (const line of text.split("\n").slice(1)) {
    const cols = line.trim().split(/\s+/);
    if (cols.length < 4 || cols[3] !== TCP_ESTABLISHED) continue;
    const local = cols[1]!;
    const port = parseInt(local.slice(local.lastIndexOf(":") + 1), 16);
    if (ports === null || ports.has(port)) n++;
  }
  return n;
}

export type ProbeOutcome = { ok: true; us: number } | { ok: false; reason: string };

/** One HTTP GET; ok with its duration in microseconds when it answers 2xx or 3xx within the timeout. */
export function probeOnce(url: string, timeoutMs: number): Promise<ProbeOutcome> {
  return new Promise((done) => {
    const start = process.hrtime.bigint();
    let finished = false;
    const finish = (r: ProbeOutcome): void => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      req.destroy();
      done(r);
    };
    const req = request(url, { method: "GET", agent: false, headers: { "user-agent": "flowswitch-agent" } }, (res) => {
      res.resume();
      res.on("end", () => {
        const us = Number((process.hrtime.bigint() - start) / 1000n);
        const code = res.statusCode ?? 0;
        finish(code >= 200 && code < 400 ? { ok: true, us } : { ok: false, reason: `HTTP ${code}` });
      });
      res.on("error", (e) => finish({ ok: false, reason: e.message }));
    });
    const timer = setTimeout(() => finish({ ok: false, reason: `no answer within ${timeoutMs} ms` }), timeoutMs);
    req.on("error", (e) => finish({ ok: false, reason: e.message }));
    req.end();
  });
}
