// End to end: availability clusters (issue 11). The real Flowswitch process on the Linux board, the
// IPv4 DSR VIP's service (web-dsr, 10.77.2.100) balanced by the two cluster policies in turn, with
// curl, wrk and nginx in the lab's namespaces (tools/lab). Needs root, or unprivileged user
// namespaces; fails with a message saying what is missing when neither is there.
//
// The operator's re-partition goes through the appliance's serial console, as an operator would
// type it: the lab's appliance has none (it runs on a config file, reloaded by SIGHUP), so for that
// test this file starts it the managed way (`--flash FILE --console PTY`, host/appliance.ts
// runManaged) on the same lab config as the factory default, with a socat pty pair (test/lib/pty.ts)
// between its console and the test. The primary-backup test runs the lab's ordinary appliance.
//
// What it proves, as the issue says it:
// 1. source-partition over s1, s2, s3 with the client (10.77.1.2) in the portion 0.0.0.0/2 owned by
//    s1: new connections land on s1. During long rate-limited downloads, wrk on keep-alive
//    connections and curl clients that each keep one connection open, the operator moves the
//    portion to s2 (`request service repartition web-dsr 0.0.0.0/2 s2`): new connections land on
//    s2, every download started before completes in full, wrk sees no socket error and no non-2xx,
//    and every keep-alive connection opened before the move still answers from s1 (the curl
//    clients' X-Server headers; s1's access log shows wrk's connections and theirs serving requests
//    after the move). `request service repartition web-dsr reset` brings new connections back to s1.
// 2. primary-backup over s1, s2, s3: new connections all go to s1 (status.json primaries: s1).
//    s1's nginx is killed: within the health check's fall time (+ slack) the appliance makes s2 the
//    primary (the time of its log line), status.json says so and new connections go to s2; the
//    failover time (the kill to the first new connection s2 serves) is reported. s1 comes back: after its rise
//    time and a few seconds more, the primary is still s2 and new connections still go to s2 (no
//    pre-emption).
// The lab's normal config is restored at the end; a lab this file brought up is torn down again,
// one that was up before (`npm run lab -- up`) is left up with the normal appliance running.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { validate, formatError } from "../../host/config/validate.js";
import type { PortionView } from "../../host/partitions.js";
import {
  APPLIANCE2_NS, APPLIANCE_NS, BIG_FILE_BYTES, CHAIN_DEVICES, CLIENT, CLIENT_NS, CommandError, HEALTH_CHECK, NAMESPACES, READY_TIMEOUT_MS,
  SERVER_NAMES, VIPS, acquireLab, applianceConfig, applianceLogTail, appliancePaths, appliancePid, backendNames, down, isAlive, namespacePids,
  nginxPid, nsRun, privilege, readAccessLog, readStatus, releaseLab, server, sleep, spawnInNs, startAppliance, startNginx, statePath, status,
  stopAppliance, up, urlHost, waitForFreshStatus, waitForStatus, wrk, writeApplianceConfig,
  type AccessLogEntry, type ApplianceConfigOptions, type ApplianceStatus, type LabConfigOptions, type ServerName, type WrkResult,
} from "../../tools/lab/index.js";
import { applianceCommand, waitReady } from "../../tools/lab/appliance.js";
import { openPtyPair, PtyOperator, type PtyPair } from "../lib/pty.js";
import { killAllIn, sequentialRequests, startDownloads, summarize, type Download } from "./clients.js";

const VIP = VIPS.dsr4;
const SERVICE = "web-dsr";
/** The client's portion (10.77.1.2 is in 0.0.0.0/2) and the rest of the IPv4 space, each owned by one member. */
const CLIENT_PORTION = "0.0.0.0/2";
const PORTIONS = [
  { prefix: CLIENT_PORTION, owner: "s1" },
  { prefix: "64.0.0.0/2", owner: "s2" },
  { prefix: "128.0.0.0/2", owner: "s3" },
  { prefix: "192.0.0.0/2", owner: "s2" },
];
/** congestedAt 0: no portion moves for load, only by the operator (the backends state no capacity anyway). */
const PARTITION_CONFIG: LabConfigOptions = { policies: { [SERVICE]: { policy: "source-partition", partitions: { portions: PORTIONS, congestedAt: 0 } } } };
const PRIMARY_CONFIG: LabConfigOptions = { policies: { [SERVICE]: { policy: "primary-backup" } } };

/** fall x interval, plus one check's timeout: how long a dead server may still look alive. */
const DETECT_MS = (HEALTH_CHECK.fall * HEALTH_CHECK.interval + HEALTH_CHECK.timeout) * 1000;
/** Slack on top: the first failing check can come up to one interval after the death, and the engines need the news. */
const SLACK_MS = HEALTH_CHECK.interval * 1000 + 1000;
const RISE_MS = (HEALTH_CHECK.rise * HEALTH_CHECK.interval + HEALTH_CHECK.timeout) * 1000;
/** An operator's move reaches the engines at once (a reapply 5 ms later); a second covers a busy machine. */
const MOVE_MS = 1000;
/** After s1 is healthy again: how long the primary must stay s2 (the issue: "a few more seconds"). */
const NO_PREEMPT_WAIT_MS = 4000;

const NO_SOCKET_ERRORS = { connect: 0, read: 0, write: 0, timeout: 0 };

/** status.json with the cluster policies' parts (host/appliance.ts statusJson: primaries, partitions). */
type ClusterStatus = ApplianceStatus & { primaries?: Record<string, string>; partitions?: Record<string, PortionView[]> };

const clusterStatus = (s: ApplianceStatus | undefined): ClusterStatus | undefined => s as ClusterStatus | undefined;
const primaryOf = (s: ApplianceStatus | undefined): string | undefined => clusterStatus(s)?.primaries?.[SERVICE];
const clientPortion = (s: ApplianceStatus | undefined): PortionView | undefined => clusterStatus(s)?.partitions?.[SERVICE]?.find((p) => p.prefix === CLIENT_PORTION);
const shown = (x: unknown): string => JSON.stringify(x ?? "(absent)");

function healthyV4(s: ApplianceStatus): boolean {
  return SERVER_NAMES.every((n) => s.health?.[backendNames(n).v4]?.state === "up");
}

function wrkSummary(r: WrkResult): string {
  return `${r.requests} requests, ${r.rps} requests/s, socket errors ${JSON.stringify(r.socketErrors)}, non-2xx ${r.non2xx}\n${r.output}`;
}

/** The appliance log since a byte offset (what it logged during a test). */
function logSince(from: number): string {
  const file = appliancePaths.log();
  return existsSync(file) ? readFileSync(file).subarray(from).toString("utf8") : "";
}
const logSize = (): number => (existsSync(appliancePaths.log()) ? statSync(appliancePaths.log()).size : 0);

/** When the appliance logged a line matching re (its lines start with an ISO time), in ms since the epoch. */
function loggedAt(log: string, re: RegExp): number | undefined {
  const line = log.split("\n").find((l) => re.test(l));
  const t = line ? Date.parse(line.split(" ")[0]) : Number.NaN;
  return Number.isNaN(t) ? undefined : t;
}

/** One new connection to the VIP: "200 s2", or "000 (...)" when nothing answered. */
async function oneRequest(timeoutS = 1): Promise<string> {
  try {
    const { stdout } = await nsRun(CLIENT_NS, ["curl", "-sS", "-H", "Connection: close", "--connect-timeout", String(timeoutS), "--max-time", String(timeoutS * 2),
      "-o", "/dev/null", "-w", "%{http_code} %header{x-server}", `http://${VIP}/`], { timeoutMs: (timeoutS * 2 + 5) * 1000 });
    return stdout.trim();
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    return `${e.stdout.trim() || "000"} (curl: ${e.stderr.trim().split("\n")[0]})`;
  }
}

/**
 * New connections one after the other until one is answered by `want`; returns when that one was
 * started (ms since the epoch), the attempts before it (answer -> count), and -1 when none was
 * within limitMs.
 */
async function firstAnsweredBy(want: ServerName, limitMs: number, gapMs = 100): Promise<{ at: number; answeredAt: number; attempts: Record<string, number> }> {
  const attempts: Record<string, number> = {};
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    const at = Date.now();
    const r = await oneRequest();
    if (r === `200 ${want}`) return { at, answeredAt: Date.now(), attempts };
    const key = r.replace(/\(curl: .*\)/, "(no answer)");
    attempts[key] = (attempts[key] ?? 0) + 1;
    await sleep(gapMs);
  }
  return { at: -1, answeredAt: -1, attempts };
}

/** Each download's end: HTTP status and bytes received, and when it ended (to know it spanned the move). */
function watchDownloads(downloads: Download[]): Map<number, number> {
  const endedAt = new Map<number, number>();
  for (const d of downloads) d.done.then(() => endedAt.set(d.index, Date.now()), () => endedAt.set(d.index, Date.now()));
  return endedAt;
}

async function assertDownloadsComplete(downloads: Download[], what: string): Promise<void> {
  const results = await Promise.allSettled(downloads.map((d) => d.done));
  results.forEach((res, i) => {
    assert.equal(res.status, "fulfilled", `download ${i} (from ${downloads[i].server}) ${what} failed: ${res.status === "rejected" ? (res.reason as Error).message : ""}`);
    assert.deepEqual((res as PromiseFulfilledResult<{ code: number; bytes: number }>).value, { code: 200, bytes: BIG_FILE_BYTES },
      `download ${i} from ${downloads[i].server} ${what}: HTTP status and bytes received (every byte of /big)`);
  });
}

interface KeepAliveRun {
  /** One line per request: http code, connections curl opened for it (0: reused), its local port, X-Server. */
  responses: { code: string; connects: number; port: number; server: string }[];
  stderr: string;
}

/**
 * A client that keeps one connection open: one curl process fetching n URLs at `perSecond`
 * (curl --rate), reusing its connection (HTTP/1.1 keep-alive; nginx keeps it 75 s).
 */
async function keepAliveClient(n: number, perSecond: number, tag: string): Promise<KeepAliveRun> {
  const cfg = statePath(`curl-${tag}.cfg`);
  const lines = ['write-out = "%{http_code} %{num_connects} %{local_port} %header{x-server}\\n"', "silent", "show-error", `rate = "${perSecond}/s"`, "connect-timeout = 2", "max-time = 4"];
  for (let i = 0; i < n; i++) lines.push(`url = "http://${urlHost(VIP)}/"`, 'output = "/dev/null"');
  writeFileSync(cfg, `${lines.join("\n")}\n`);
  let stdout: string;
  let stderr = "";
  try {
    ({ stdout, stderr } = await nsRun(CLIENT_NS, ["curl", "-K", cfg], { timeoutMs: (n / perSecond + 30) * 1000 }));
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    ({ stdout, stderr } = e);
  }
  const responses = stdout.split("\n").filter((l) => l.trim()).map((l) => {
    const [code, connects, port, who] = l.trim().split(/\s+/);
    return { code, connects: Number(connects), port: Number(port), server: who ?? "(no X-Server header)" };
  });
  return { responses, stderr: stderr.trim() };
}

/** Connections (client port and nginx's connection number) with requests both before and after t in a server's access log, from the client. */
function connectionsSpanning(entries: readonly AccessLogEntry[], from: number, t: number): Map<string, { before: number; after: number; port: number }> {
  const by = new Map<string, { before: number; after: number; port: number }>();
  for (const e of entries) {
    if (e.client !== CLIENT.ipv4 || e.timeMs < from) continue;
    const key = `${e.clientPort}/${e.connection}`;
    const c = by.get(key) ?? { before: 0, after: 0, port: e.clientPort };
    if (e.timeMs < t) c.before++;
    else c.after++;
    by.set(key, c);
  }
  return new Map([...by].filter(([, c]) => c.before > 0 && c.after > 0));
}

/**
 * The appliance the managed way (configuration in flash, serial console on a pty), as the lab
 * starts its own otherwise: in fsl-app, on appliance.json (here the factory default), with the
 * lab's status file, log and pid file (so that waitForStatus, stopAppliance and `down` see it).
 */
class ConsoleAppliance {
  private constructor(readonly pair: PtyPair, readonly op: PtyOperator, readonly pid: number) {}

  static async start(): Promise<ConsoleAppliance> {
    await stopAppliance();
    const dir = statePath("clusters-console");
    mkdirSync(dir, { recursive: true, mode: 0o755 });
    const flash = statePath("clusters-flash.img");
    rmSync(flash, { force: true }); // an empty flash: the box boots on the factory default, appliance.json
    const pair = await openPtyPair(dir);
    try {
      rmSync(appliancePaths.status(), { force: true });
      const argv = [...applianceCommand(), "--flash", flash, "--console", pair.consolePath, "--console-speed", "115200"];
      appendFileSync(appliancePaths.log(), `--- lab (clusters.test): ${new Date().toISOString()}: ip netns exec ${APPLIANCE_NS} ${argv.join(" ")}\n`);
      const pid = await spawnInNs(APPLIANCE_NS, argv, appliancePaths.log());
      writeFileSync(appliancePaths.pid(), `${pid}\n`);
      await waitReady(pid, READY_TIMEOUT_MS);
      const op = await PtyOperator.open(pair.operatorPath, { width: 200 });
      const box = new ConsoleAppliance(pair, op, pid);
      await box.login();
      return box;
    } catch (e) {
      await stopAppliance();
      await pair.close();
      throw e;
    }
  }

  /** The factory login, which must be replaced at once by a password of our own. */
  private async login(): Promise<void> {
    this.op.send("\r"); // the prompt may have gone out before the operator's end was open: ask again
    await this.op.expect("fsl-app login: ", 10_000);
    this.op.send("admin\r");
    await this.op.expect("Password: ");
    this.op.send("flowswitch\r");
    await this.op.expect("New password: ", 10_000);
    this.op.send("clusters-e2e-pw\r");
    await this.op.expect("Retype new password: ");
    this.op.send("clusters-e2e-pw\r");
    await this.op.expect("Password set and committed", 15_000);
    await this.op.expect(/admin@fsl-app> $/, 10_000);
  }

  /** Types a command at the operational prompt; resolves to what it printed. */
  async command(line: string, timeoutMs = 10_000): Promise<string> {
    this.op.send(`${line}\r`);
    const out = await this.op.expect(/admin@fsl-app> $/, timeoutMs);
    return out.slice(out.indexOf(line) + line.length).replace(/admin@fsl-app> $/, "").trim();
  }

  async stop(): Promise<void> {
    await stopAppliance();
    await this.op.close();
    await this.pair.close();
    rmSync(statePath("clusters-flash.img"), { force: true });
  }
}

/** The plain lab (no pair, no chain segment) is up with nginx everywhere: this file may use it as it is. */
async function plainLabUp(): Promise<boolean> {
  const st = await status();
  const extras = [APPLIANCE2_NS, ...CHAIN_DEVICES.map((d) => d.ns)];
  return st.networkUp && extras.every((ns) => !st.namespaces[ns]);
}

describe("lab: the cluster configs this file writes", () => {
  const MACS: Pick<ApplianceConfigOptions, "frontMac" | "backMac"> = { frontMac: "02:00:00:77:02:02", backMac: "02:00:00:77:03:02" };
  for (const [label, o] of [["source-partition", PARTITION_CONFIG], ["primary-backup", PRIMARY_CONFIG]] as const) {
    it(`web-dsr as ${label} passes the appliance's validation, and only web-dsr changes`, () => {
      const c = applianceConfig({ ...MACS, ...o });
      const v = validate(c);
      assert.ok(v.ok, v.ok ? "" : `the appliance refuses the ${label} config:\n${v.errors.map(formatError).join("\n")}`);
      assert.deepEqual(c.services.map((s) => s.policy ?? "maglev"), [label, "maglev", "maglev", "maglev"]);
    });
  }
  it("the client's address is in the portion s1 owns", () => {
    const first = Number(CLIENT.ipv4.split(".")[0]);
    assert.ok(first < 64, `${CLIENT.ipv4} is not in ${CLIENT_PORTION}`);
    assert.equal(PORTIONS.find((p) => p.prefix === CLIENT_PORTION)?.owner, "s1");
  });
  it("a stated capacity is written on both of a server's backends, and passes validation", () => {
    const c = applianceConfig({ ...MACS, ...PARTITION_CONFIG, capacity: { s2: 500 } });
    const v = validate(c);
    assert.ok(v.ok, v.ok ? "" : v.errors.map(formatError).join("\n"));
    assert.deepEqual(c.backends.map((b) => [b.name, b.capacity]), [["s1", undefined], ["s1v6", undefined], ["s2", 500], ["s2v6", 500], ["s3", undefined], ["s3v6", undefined]]);
  });
  it("policies for a service the lab does not have are refused", () => {
    assert.throws(() => applianceConfig({ ...MACS, policies: { "web-nope": { policy: "primary-backup" } } }), /web-nope: no such service/);
  });
});

describe("e2e: availability clusters (issue 11): a source partition moved under load, primary-backup failover without pre-emption", () => {
  let holding = false;
  /** This file brought the lab up (and takes it down); false: it was up before, and stays up. */
  let broughtUp = false;
  let labError: Error | undefined;
  let managed: ConsoleAppliance | undefined;

  const labUp = (): void => {
    if (labError) throw new Error(`the lab did not come up: ${labError.message}`);
  };

  before(async () => {
    try {
      await privilege(); // the message says what is missing: root or user namespaces
      await acquireLab();
      holding = true;
      if (!(await plainLabUp())) {
        await up({ appliance: false });
        broughtUp = true;
      }
    } catch (e) {
      labError = e as Error;
    }
  }, { timeout: 1_000_000 });

  after(async () => {
    await managed?.stop().catch(() => {});
    if (!holding) return;
    try {
      for (const s of SERVER_NAMES) if (nginxPid(s) === undefined) await startNginx(s).catch(() => {});
      // the lab's normal config, which the other end-to-end tests expect
      await writeApplianceConfig({}).catch(() => {});
      if (broughtUp) {
        const labPids = (await Promise.all(NAMESPACES.map(namespacePids))).flat();
        await down();
        const st = await status();
        const leftNs = Object.entries(st.namespaces).filter(([ns, present]) => present && NAMESPACES.includes(ns)).map(([ns]) => ns);
        assert.deepEqual({ namespaces: leftNs, processes: labPids.filter(isAlive) }, { namespaces: [], processes: [] }, "lab down leaves no namespace and no process behind");
      } else if (!labError) {
        await startAppliance();
        await waitForStatus("s1..s3 (IPv4) healthy again on the normal config", healthyV4, RISE_MS + 8000);
      }
    } finally {
      releaseLab();
    }
  }, { timeout: 60_000 });

  it("the lab comes up: namespaces, links, nginx in every server (needs root or unprivileged user namespaces)", () => {
    labUp();
  });

  describe("1. source-partition: the operator moves the client's portion from s1 to s2 under load", () => {
    let notReady: Error | undefined;
    const ready = (): void => {
      labUp();
      if (notReady) throw notReady;
    };

    before(async () => {
      if (labError) return;
      try {
        await writeApplianceConfig(PARTITION_CONFIG);
        managed = await ConsoleAppliance.start();
        await waitForStatus("s1..s3 (IPv4) healthy", healthyV4, RISE_MS + 8000);
        await waitForStatus(`status.json partitions: ${SERVICE}'s portion ${CLIENT_PORTION} owned by s1`, (s) => clientPortion(s)?.owner === "s1", 5000);
      } catch (e) {
        notReady = e as Error;
      }
    }, { timeout: 90_000 });

    after(async () => {
      await managed?.stop().catch(() => {});
      managed = undefined;
    }, { timeout: 30_000 });

    it(`the console shows the plan: ${CLIENT_PORTION} (the client's) is s1's; new connections all land on s1`, { timeout: 60_000 }, async (t) => {
      ready();
      const shownPlan = await managed!.command(`show partitions service ${SERVICE}`);
      t.diagnostic(`show partitions service ${SERVICE}:\n${shownPlan}`);
      assert.match(shownPlan, new RegExp(`${CLIENT_PORTION.replace(/[./]/g, "\\$&")}\\s+s1\\s+s1\\s+configured`), `the console's show partitions for ${SERVICE}`);
      const r = await sequentialRequests(VIP, 30, "clusters-1-plan");
      assert.equal(r.ok, 30, `new connections to ${VIP}: ${summarize(r.failures)}`);
      assert.deepEqual(r.counts, { s1: 30, s2: 0, s3: 0 }, `new connections from ${CLIENT.ipv4} (in ${CLIENT_PORTION}, owned by s1)`);
    });

    it(`request service repartition ${SERVICE} ${CLIENT_PORTION} s2 during downloads, wrk and keep-alive clients: new connections land on s2, nothing started before is lost, and the connections opened before still answer from s1`, { timeout: 150_000 }, async (t) => {
      ready();
      const from = Date.now();
      const logFrom = logSize();
      // /big (100 MiB) at 8 MiB/s: about 12.5 s each, long enough to move the portion and test meanwhile
      const downloads = await startDownloads(VIP, 3, "8M", 90, "clusters-1");
      const endedAt = watchDownloads(downloads);
      assert.deepEqual(downloads.map((d) => d.server), ["s1", "s1", "s1"], "the downloads (new connections before the move) are served by s1");
      const wrkRun = wrk(`http://${VIP}/`, { threads: 1, connections: 8, durationS: 14 });
      wrkRun.catch(() => {});
      // 4 clients, one connection each, a request every 250 ms for 12 s
      const keepAlive = [0, 1, 2, 3].map((i) => keepAliveClient(48, 4, `clusters-1-keepalive-${i}`));
      for (const k of keepAlive) k.catch(() => {});
      let movedAt = 0;
      try {
        await sleep(2500);
        movedAt = Date.now();
        const said = await managed!.command(`request service repartition ${SERVICE} ${CLIENT_PORTION} s2`);
        t.diagnostic(`the console said: ${said}`);
        assert.match(said, /new flows from 0\.0\.0\.0\/2 go to s2/, "the console's answer to the re-partition");
        const first = await firstAnsweredBy("s2", MOVE_MS + 4000, 50);
        t.diagnostic(`re-partition: the first new connection answered by s2 started ${first.at - movedAt} ms after the command was typed (${first.answeredAt - movedAt} ms to its answer); before it: ${JSON.stringify(first.attempts)}`);
        assert.ok(first.at >= 0, `no new connection reached s2 within ${(MOVE_MS + 4000) / 1000} s of the move: ${JSON.stringify(first.attempts)}\n--- appliance log ---\n${applianceLogTail(20)}`);
        assert.ok(first.at - movedAt <= MOVE_MS, `new connections reached s2 only ${first.at - movedAt} ms after the move (allowed ${MOVE_MS} ms)`);

        const st = await waitForStatus(`status.json: ${CLIENT_PORTION} owned by s2 (operator)`, (s) => clientPortion(s)?.owner === "s2", 5000);
        assert.deepEqual(clientPortion(st), { prefix: CLIENT_PORTION, configured: "s1", owner: "s2", why: "operator" }, "status.json partitions: the moved portion");
        const others = clusterStatus(st)?.partitions?.[SERVICE]?.filter((p) => p.prefix !== CLIENT_PORTION).map((p) => [p.prefix, p.owner, p.why]);
        assert.deepEqual(others, PORTIONS.filter((p) => p.prefix !== CLIENT_PORTION).map((p) => [p.prefix, p.owner, "configured"]), "the other portions stay where they were");

        const r = await sequentialRequests(VIP, 50, "clusters-1-moved");
        assert.equal(r.ok, 50, `new connections after the move: ${summarize(r.failures)}`);
        assert.deepEqual(r.counts, { s1: 0, s2: 50, s3: 0 }, "new connections after the move");
        const stillRunning = downloads.filter((d) => !endedAt.has(d.index)).length;
        assert.equal(stillRunning, downloads.length, `only ${stillRunning} of ${downloads.length} downloads were still running once new connections went to s2 (else the test proves little)`);
      } finally {
        await Promise.allSettled([...downloads.map((d) => d.done), wrkRun, ...keepAlive]);
      }

      await assertDownloadsComplete(downloads, "across the move");
      for (const d of downloads) assert.ok((endedAt.get(d.index) ?? 0) > movedAt, `download ${d.index} ended before the move`);

      const w = await wrkRun;
      t.diagnostic(`wrk across the move: ${w.requests} requests, ${w.rps} requests/s, socket errors ${JSON.stringify(w.socketErrors)}, non-2xx ${w.non2xx}`);
      assert.ok(w.requests > 0, `wrk made no request:\n${w.output}`);
      assert.deepEqual(w.socketErrors, NO_SOCKET_ERRORS, `wrk's socket errors across the move: ${wrkSummary(w)}`);
      assert.equal(w.non2xx, 0, `wrk's non-2xx responses across the move: ${wrkSummary(w)}`);

      const runs = await Promise.all(keepAlive);
      runs.forEach((k, i) => {
        const bad = k.responses.filter((x) => x.code !== "200" || x.server !== "s1").map((x) => `${x.code} from ${x.server}`);
        const ports = new Set(k.responses.map((x) => x.port));
        const connects = k.responses.reduce((n, x) => n + x.connects, 0);
        assert.equal(k.responses.length, 48, `keep-alive client ${i}: ${k.responses.length} of 48 responses${k.stderr ? ` (curl: ${k.stderr.split("\n")[0]})` : ""}`);
        assert.deepEqual(bad, [], `keep-alive client ${i}: every response on its connection (opened before the move) comes from s1`);
        assert.equal(connects, 1, `keep-alive client ${i} opened ${connects} connections (ports ${[...ports].join(", ")}): its one connection did not last`);
      });

      // s1's access log: connections with requests before and after the move are wrk's and the keep-alive clients'
      const spanning = connectionsSpanning(readAccessLog("s1"), from, movedAt + MOVE_MS);
      const keepAlivePorts = runs.map((k) => k.responses[0]?.port);
      const missing = keepAlivePorts.filter((p) => ![...spanning.values()].some((c) => c.port === p));
      t.diagnostic(`s1's access log: ${spanning.size} connections served requests both before the move and more than ${MOVE_MS} ms after it (wrk: 8, keep-alive clients: 4)`);
      assert.deepEqual(missing, [], "keep-alive clients' connections (by local port) missing from s1's access log after the move");
      assert.ok(spanning.size >= 8 + 4, `only ${spanning.size} connections served requests on s1 both before and after the move; wrk had 8 and the keep-alive clients 4`);
      const log = logSince(logFrom);
      assert.match(log, new RegExp(`service ${SERVICE}: portion 0\\.0\\.0\\.0/2 moves from s1 to s2 \\(operator\\)`), `the appliance's log during the move:\n${log}`);
    });

    it(`request service repartition ${SERVICE} reset: the portion is s1's again, and new connections land on s1`, { timeout: 60_000 }, async (t) => {
      ready();
      const said = await managed!.command(`request service repartition ${SERVICE} reset`);
      const resetAt = Date.now();
      assert.match(said, /every portion back to its configured owner/, "the console's answer to the reset");
      const first = await firstAnsweredBy("s1", MOVE_MS + 4000, 50);
      t.diagnostic(`after the reset: the first new connection answered by s1 started ${first.at - resetAt} ms after it; before it: ${JSON.stringify(first.attempts)}`);
      assert.ok(first.at >= 0, `no new connection reached s1 within ${(MOVE_MS + 4000) / 1000} s of the reset: ${JSON.stringify(first.attempts)}`);
      const st = await waitForStatus(`status.json: ${CLIENT_PORTION} owned by s1 again`, (s) => clientPortion(s)?.owner === "s1", 5000);
      assert.deepEqual(clientPortion(st), { prefix: CLIENT_PORTION, configured: "s1", owner: "s1", why: "configured" });
      const r = await sequentialRequests(VIP, 30, "clusters-1-reset");
      assert.deepEqual(r.counts, { s1: 30, s2: 0, s3: 0 }, `new connections after the reset: ${summarize(r.failures)}`);
    });
  });

  describe("2. primary-backup: s1 fails, s2 takes over, and keeps it when s1 recovers", () => {
    let notReady: Error | undefined;
    const ready = (): void => {
      labUp();
      if (notReady) throw notReady;
    };

    before(async () => {
      if (labError) return;
      try {
        await managed?.stop();
        managed = undefined;
        await writeApplianceConfig(PRIMARY_CONFIG);
        await startAppliance();
        await waitForStatus("s1..s3 (IPv4) healthy", healthyV4, RISE_MS + 8000);
      } catch (e) {
        notReady = e as Error;
      }
    }, { timeout: 90_000 });

    it("new connections all go to s1, the primary; s1 dies: within fall time s2 is primary and takes new connections; s1 recovers: s2 stays primary (no pre-emption)", { timeout: 120_000 }, async (t) => {
      ready();
      await waitForStatus(`status.json primaries: ${SERVICE} -> s1`, (s) => primaryOf(s) === "s1", 5000).catch((e: Error) => {
        throw new Error(`${e.message.split("\n")[0]}; primaries: ${shown(clusterStatus(readStatus())?.primaries)}`);
      });
      const before = await sequentialRequests(VIP, 30, "clusters-2-before");
      assert.equal(before.ok, 30, `new connections to ${VIP}: ${summarize(before.failures)}`);
      assert.deepEqual(before.counts, { s1: 30, s2: 0, s3: 0 }, "new connections with every member up: all to the primary s1");

      const logFrom = logSize();
      const victim = server("s1");
      let killedAt = 0;
      try {
        killedAt = Date.now();
        const killed = await killAllIn(victim.ns);
        assert.ok(killed.length > 0, `no process to kill in ${victim.ns}`);
        const gone = Date.now() + 2000;
        while (nginxPid("s1") !== undefined && Date.now() < gone) await sleep(20);
        assert.equal(nginxPid("s1"), undefined, `nginx in ${victim.ns} still runs 2 s after SIGKILL`);

        const first = await firstAnsweredBy("s2", DETECT_MS + SLACK_MS + 5000);
        const failoverMs = first.at - killedAt;
        t.diagnostic(`failover: the first new connection served by s2 started ${failoverMs} ms after s1 was killed (answered ${first.answeredAt - killedAt} ms after); attempts before it: ${JSON.stringify(first.attempts)}; fall x interval + timeout = ${DETECT_MS} ms`);
        assert.ok(first.at >= 0, `no new connection served by s2 within ${(DETECT_MS + SLACK_MS + 5000) / 1000} s of killing s1: ${JSON.stringify(first.attempts)}; primaries ${shown(clusterStatus(readStatus())?.primaries)}\n--- appliance log ---\n${applianceLogTail(20)}`);
        assert.ok(failoverMs <= DETECT_MS + SLACK_MS, `failover took ${failoverMs} ms, more than fall x interval + timeout (${DETECT_MS} ms) + ${SLACK_MS} ms slack`);
        const strays = Object.keys(first.attempts).filter((k) => k.startsWith("200 ") && k !== "200 s1");
        assert.deepEqual(strays, [], "new connections answered by a member other than s1 (dead) or s2 (its backup) during the failover");

        // status.json is written every second: it may say so up to a second after the engines knew
        const st = await waitForStatus(`status.json primaries: ${SERVICE} -> s2`, (s) => primaryOf(s) === "s2", 3000);
        const switched = loggedAt(logSince(logFrom), new RegExp(`service ${SERVICE}: primary s2 \\(was s1\\)`));
        t.diagnostic(`the appliance logged "primary s2 (was s1)" ${switched === undefined ? "(no such line)" : `${switched - killedAt} ms`} after the kill; status.json said primary s2 by ${Date.now() - killedAt} ms; s1's health: ${shown(st.health?.s1)}`);
        assert.ok(switched !== undefined && switched - killedAt <= DETECT_MS + SLACK_MS, `the appliance switched the primary ${switched === undefined ? "(no log line)" : `${switched - killedAt} ms`} after the kill, allowed ${DETECT_MS + SLACK_MS} ms`);
        const during = await sequentialRequests(VIP, 30, "clusters-2-failed");
        assert.equal(during.ok, 30, `new connections with s1 dead: ${summarize(during.failures)}`);
        assert.deepEqual(during.counts, { s1: 0, s2: 30, s3: 0 }, "new connections with s1 dead: all to the new primary s2");
        const log = logSince(logFrom);
        assert.match(log, new RegExp(`service ${SERVICE}: primary s2 \\(was s1\\)`), `the appliance's log after the failover:\n${log}`);
      } finally {
        if (nginxPid("s1") === undefined) {
          const restartedAt = Date.now();
          await startNginx("s1");
          await waitForStatus("s1 healthy again", (s) => s.health?.s1?.state === "up", RISE_MS + 8000).then(
            () => t.diagnostic(`s1 healthy again ${Date.now() - restartedAt} ms after its nginx restarted (rise x interval = ${RISE_MS} ms)`),
            (e: Error) => t.diagnostic(`s1 not healthy again: ${e.message.split("\n")[0]}`));
        }
      }

      const logFrom2 = logSize();
      assert.equal(readStatus()?.health?.s1?.state, "up", "s1 is healthy again");
      await sleep(NO_PREEMPT_WAIT_MS);
      const st = await waitForFreshStatus(Date.now());
      assert.equal(primaryOf(st), "s2", `${NO_PREEMPT_WAIT_MS / 1000} s after s1 recovered: primaries ${shown(clusterStatus(st)?.primaries)} (a recovered member must not pre-empt)`);
      const recovered = await sequentialRequests(VIP, 30, "clusters-2-recovered");
      assert.equal(recovered.ok, 30, `new connections after s1 recovered: ${summarize(recovered.failures)}`);
      assert.deepEqual(recovered.counts, { s1: 0, s2: 30, s3: 0 }, "new connections after s1 recovered: still all to s2 (no pre-emption)");
      const log = logSince(logFrom2);
      assert.doesNotMatch(log, new RegExp(`service ${SERVICE}: primary s1`), `the appliance's log after s1 recovered:\n${log}`);
    });

    it("the appliance is still running after all of it", () => {
      ready();
      assert.ok(appliancePid() !== undefined, "the appliance process is gone");
    });
  });
});
