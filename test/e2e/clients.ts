// Real clients for the end-to-end tests, run in the lab's client namespace: a run of sequential
// curl requests (one new connection each) that notes which server answered each, and long
// downloads of /big that report which server serves them as soon as the headers arrive.
// Every one is bounded in time.
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import {
  ALL_SERVER_NAMES, CLIENT_NS, CommandError, SERVER_NAMES, nsRun, run, sleep, statePath, urlHost, type LabServerName, type ServerName,
} from "../../tools/lab/index.js";

export interface RequestRun<N extends LabServerName = ServerName> {
  /** Responses per server (by their X-Server header). */
  counts: Record<N, number>;
  ok: number;
  /** What went wrong with the others: "000 (no response)", "502", a missing X-Server ... */
  failures: string[];
  /** curl's complaints, if any. */
  stderr: string;
}

/**
 * n requests to http://address/, one after the other, each on a new connection (Connection: close,
 * so curl cannot reuse one): one curl process reading n URLs from a config file. A response from a
 * server not in `servers` (default: the three of the static config) counts as a failure.
 */
export async function sequentialRequests<N extends LabServerName = ServerName>(
  address: string, n: number, tag: string, timeoutMs = 90_000, servers: readonly N[] = SERVER_NAMES as readonly LabServerName[] as readonly N[],
): Promise<RequestRun<N>> {
  const cfg = statePath(`curl-${tag}.cfg`);
  const lines = [
    'header = "Connection: close"',
    'write-out = "%{http_code} %header{x-server}\\n"',
    "silent", "show-error",
    "connect-timeout = 2",
    "max-time = 4",
  ];
  for (let i = 0; i < n; i++) lines.push(`url = "http://${urlHost(address)}/"`, 'output = "/dev/null"');
  writeFileSync(cfg, `${lines.join("\n")}\n`);
  let stdout: string;
  let stderr = "";
  try {
    ({ stdout, stderr } = await nsRun(CLIENT_NS, ["curl", "-K", cfg], { timeoutMs }));
  } catch (e) {
    // a failed transfer makes curl exit non-zero; its output still says how every request went
    if (!(e instanceof CommandError)) throw e;
    stdout = e.stdout;
    stderr = e.stderr;
  }
  const counts = Object.fromEntries(servers.map((s) => [s, 0])) as Record<N, number>;
  const failures: string[] = [];
  let ok = 0;
  const results = stdout.split("\n").filter((l) => l.trim() !== "");
  for (const line of results) {
    const [code, who] = line.trim().split(/\s+/);
    if (code === "200" && (servers as readonly string[]).includes(who)) {
      counts[who as N]++;
      ok++;
    } else {
      failures.push(code === "000" ? "000 (no response)" : `${code} from ${who ?? "(no X-Server header)"}`);
    }
  }
  for (let i = results.length; i < n; i++) failures.push("not attempted (curl stopped early or timed out)");
  return { counts, ok, failures, stderr: stderr.trim() };
}

/** A short summary of failures: "3 x 000 (no response), 1 x 502 from s2". */
export function summarize(failures: string[]): string {
  const by = new Map<string, number>();
  for (const f of failures) by.set(f, (by.get(f) ?? 0) + 1);
  return [...by].map(([f, k]) => `${k} x ${f}`).join(", ");
}

export interface Download {
  index: number;
  /** Which server serves it (from the response headers), once known. */
  server?: LabServerName;
  /** Settles when curl ends: HTTP status and bytes received, or the error. */
  done: Promise<{ code: number; bytes: number }>;
}

/**
 * Starts n downloads of /big at a limited rate (each its own connection), and waits (at most 5 s)
 * until each has its response headers, so that every download knows its server. `tag` names the
 * header files, so that two sets of downloads can run at once.
 */
export async function startDownloads(address: string, n: number, rate: string, maxTimeS: number, tag = ""): Promise<Download[]> {
  const headersFile = (i: number): string => statePath(`download-${tag ? `${tag}-` : ""}${i}.headers`);
  const downloads: Download[] = [];
  for (let i = 0; i < n; i++) {
    const headers = headersFile(i);
    rmSync(headers, { force: true });
    const done = nsRun(CLIENT_NS, [
      "curl", "-sS", "--limit-rate", rate, "--max-time", String(maxTimeS), "-o", "/dev/null", "-D", headers,
      "-w", "%{http_code} %{size_download}", `http://${urlHost(address)}/big`,
    ], { timeoutMs: (maxTimeS + 10) * 1000 }).then(({ stdout }) => {
      const [code, bytes] = stdout.trim().split(/\s+/).map(Number);
      return { code, bytes };
    });
    done.catch(() => {}); // looked at by the test; not an unhandled rejection meanwhile
    downloads.push({ index: i, done });
  }
  const deadline = Date.now() + 5000;
  for (;;) {
    for (const d of downloads) {
      if (d.server) continue;
      const file = headersFile(d.index);
      if (!existsSync(file)) continue;
      const m = /^x-server:\s*(\S+)/im.exec(readFileSync(file, "utf8"));
      if (m && (ALL_SERVER_NAMES as readonly string[]).includes(m[1])) d.server = m[1] as LabServerName;
    }
    if (downloads.every((d) => d.server)) return downloads;
    if (Date.now() > deadline) {
      throw new Error(`downloads of http://${urlHost(address)}/big: no response headers after 5 s for download(s) ${downloads.filter((d) => !d.server).map((d) => d.index).join(", ")}`);
    }
    await sleep(50);
  }
}

/** Kills every process in a namespace at once (SIGKILL): a server that dies, not one that stops. */
export async function killAllIn(ns: string): Promise<number[]> {
  const { stdout } = await run(["ip", "netns", "pids", ns]);
  const pids = stdout.split("\n").map(Number).filter((p) => Number.isInteger(p) && p > 0);
  for (const p of pids) {
    try {
      process.kill(p, "SIGKILL");
    } catch {
      // already gone
    }
  }
  return pids;
}
