// End to end: the appliance learns its backends from service advertisements alone. The real
// Flowswitch process on the Linux board, the real flowswitch-agent in each server's namespace
// (multicast to 239.255.77.77:7777 on the server segment, signed with the lab's key), real clients
// (curl, wrk) and servers (nginx), in the lab's namespaces (tools/lab), with the optional fourth
// server s4. The appliance's config has the four services with EMPTY backend lists and a discovery
// section: every backend it uses is one a server advertised. Needs root, or unprivileged user
// namespaces.
//
// What it proves, as the spec says it (agents advertise every INTERVAL_MS; an end system silent for
// 3 intervals is down: docs/advertisement-protocol.md):
// 1. three servers advertising, no static backend: connections to the DSR and NAT VIPs (IPv4 and
//    IPv6) all succeed, all three servers answer, and the appliance's newFlows per advertised
//    backend say the same as the X-Server headers.
// 2. s4 starts its agent: new connections reach it within two intervals, and the downloads (DSR) and
//    keep-alive connections (wrk, NAT) open before it joined all complete without an error.
// 3. `flowswitch-agent drain` on a server during long downloads: its downloads complete in full, no
//    new connection reaches it once the appliance has seen it draining (X-Server, its access log),
//    and the agent then leaves and exits by itself.
// 4. a server's agent killed (SIGKILL; nginx keeps running): the appliance marks it down after three
//    intervals (not before two; at most one status period and a little late), and new connections
//    avoid it although it would still answer.
// 5. a forged advertisement (right key id, wrong secret) and a replayed one (a datagram signed with
//    the lab's key, sent twice) are refused and counted by reason and source address, and change
//    nothing: the forged "s1 is draining" leaves s1 up, the replayed SERVICE does not bring its
//    silent end system back.
// 6. a FLOW advertisement (DSR VIP, source the client's /32, to a named server, DSCP 46): every new
//    connection from the client lands on that server, and a capture in its namespace shows the
//    client's packets to the VIP arriving with DSCP 46 (those to the NAT VIP, not matched, with 0).
//
// The cases run in this order on one lab and build on each other (s4 joins in 2 and stays; the
// server killed in 4 comes back with a FLOW in 6).
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import { encode, type ServiceMsg } from "../../host/discovery/protocol.js";
import {
  ALL_NAMESPACES, ALL_SERVER_NAMES, BIG_FILE_BYTES, CLIENT, SERVER_NAMES, VIPS, DISCOVERY_KEY_ID,
  acquireLab, agentPid, appliancePaths, appliancePid, discoveryKey, down, drainAgent, isAlive, killAgent, namespacePids,
  nginxPid, privilege, readAccessLog, readCapture, readStatus, releaseLab, sendDatagram, server, sleep, startAgent,
  startAppliance, startCapture, status, up, waitForFreshStatus, waitForStatus, wrk, writeApplianceConfig,
  type ApplianceStatus, type Capture, type LabAgentOptions, type LabServerName, type WrkResult,
} from "../../tools/lab/index.js";
import { sequentialRequests, startDownloads, summarize, type Download, type RequestRun } from "./clients.js";

/** How often the agents advertise. */
const INTERVAL_MS = 1000;
/** Silent intervals before the appliance marks an end system down (the discovery default). */
const MISSED_INTERVALS = 3;
/** The appliance writes status.json once a second: what it knew is seen up to this late. */
const STATUS_PERIOD_MS = 1000;
/** On top of that: timers, the status write itself, a busy 2-core machine. */
const SLACK_MS = 500;

const AGENT: LabAgentOptions = { intervalMs: INTERVAL_MS };
const FIRST_THREE = SERVER_NAMES;
const ALL_VIPS = [VIPS.dsr4, VIPS.nat4, VIPS.dsr6, VIPS.nat6] as const;
const NO_SOCKET_ERRORS = { connect: 0, read: 0, write: 0, timeout: 0 };

type Disc = NonNullable<ApplianceStatus["discovery"]>;
type EndSystemView = Disc["endSystems"][number];

const endSystem = (s: ApplianceStatus, id: string): EndSystemView | undefined => s.discovery?.endSystems.find((e) => e.id === id);
const stateOf = (s: ApplianceStatus, id: string): string => endSystem(s, id)?.state ?? "unknown";
/** The advertised backends of a server, IPv4 and IPv6 (host/discovery/registry.ts backends()). */
const backendsOf = (name: LabServerName): [string, string] => [`es-${name}`, `es-${name}-v6`];
const newFlows = (s: ApplianceStatus, backend: string): number => s.counters.backends?.[backend]?.newFlows ?? 0;

/** Up in the registry, and both advertised backends active with their MAC resolved: new flows can go there. */
function serving(s: ApplianceStatus, name: LabServerName): boolean {
  return stateOf(s, name) === "up" && backendsOf(name).every((b) => s.backends?.[b]?.state === "active" && s.backends?.[b]?.mac !== "unresolved");
}

function discoverySummary(s: ApplianceStatus | undefined): string {
  if (!s?.discovery) return "(no discovery in status.json)";
  const d = s.discovery;
  return JSON.stringify({
    endSystems: d.endSystems.map((e) => ({ id: e.id, state: e.state, from: e.from, lastSeen: e.lastSeen })),
    backends: s.backends,
    flows: d.flows.map((f) => ({ name: f.name, endSystem: f.endSystem, dscp: f.rule.dscp })),
    stats: { accepted: d.stats.accepted, rejected: d.stats.rejected, rejectedBy: d.stats.rejectedBy },
  });
}

function wrkSummary(r: WrkResult): string {
  return `${r.requests} requests, socket errors ${JSON.stringify(r.socketErrors)}, non-2xx ${r.non2xx}\n${r.output}`;
}

/** Requests to the server's nginx for "/" (new connections of sequentialRequests) logged after `from` (ms). */
const pagesAfter = (name: LabServerName, from: number): number => readAccessLog(name).filter((e) => e.uri === "/" && e.timeMs > from).length;

/** The appliance log's lines written after byte `from`. */
function applianceLogSince(from: number): string[] {
  return readFileSync(appliancePaths.log()).subarray(from).toString("utf8").split("\n");
}
const applianceLogSize = (): number => statSync(appliancePaths.log()).size;

/** Sequential new connections in batches until `until()` says stop (bounded by maxMs): the runs, in order. */
async function requestsUntil(vip: string, tag: string, until: () => boolean, maxMs: number): Promise<RequestRun<LabServerName>[]> {
  const runs: RequestRun<LabServerName>[] = [];
  const deadline = Date.now() + maxMs;
  while (!until() && Date.now() < deadline) runs.push(await sequentialRequests(vip, 25, tag, 30_000, ALL_SERVER_NAMES));
  return runs;
}

function total(runs: readonly RequestRun<LabServerName>[]): { n: number; ok: number; counts: Record<string, number>; failures: string[] } {
  const counts: Record<string, number> = Object.fromEntries(ALL_SERVER_NAMES.map((s) => [s, 0]));
  for (const r of runs) for (const s of ALL_SERVER_NAMES) counts[s] += r.counts[s];
  return { n: runs.reduce((a, r) => a + r.ok + r.failures.length, 0), ok: runs.reduce((a, r) => a + r.ok, 0), counts, failures: runs.flatMap((r) => r.failures) };
}

async function assertDownloadsComplete(downloads: readonly Download[], what: string): Promise<void> {
  const results = await Promise.allSettled(downloads.map((d) => d.done));
  results.forEach((res, i) => {
    const d = downloads[i];
    assert.equal(res.status, "fulfilled", `${what}: download ${i} (from ${d.server}) failed: ${res.status === "rejected" ? (res.reason as Error).message : ""}`);
    const v = (res as PromiseFulfilledResult<{ code: number; bytes: number }>).value;
    assert.deepEqual(v, { code: 200, bytes: BIG_FILE_BYTES }, `${what}: download ${i} from ${d.server}: HTTP status and bytes received`);
  });
}

describe("e2e: the appliance learns its backends from the servers' advertisements (flowswitch-agent), in the lab", () => {
  let holding = false;
  let labError: Error | undefined;
  /** tshark captures still running: stopped in `after` whatever happened. */
  const captures: Capture[] = [];

  const ready = (): void => {
    if (labError) throw new Error(`the lab with discovery did not come up: ${labError.message}`);
  };
  /** Waits until every named server is up in the registry with both backends usable. */
  const waitServing = (names: readonly LabServerName[], ms = 2 * INTERVAL_MS + 5000): Promise<ApplianceStatus> =>
    waitForStatus(`${names.join(", ")} up and serving (advertised backends active, MAC resolved)`, (s) => names.every((n) => serving(s, n)), ms);

  before(async () => {
    try {
      await privilege();
      await acquireLab();
      holding = true;
      await up({ appliance: false, extraServers: ["s4"] });
      // no static backend at all: the services' pools are empty, discovery fills them
      await writeApplianceConfig({ servers: [], discovery: { keys: [discoveryKey()], missedIntervals: MISSED_INTERVALS } });
      await startAppliance();
      for (const s of FIRST_THREE) await startAgent(s, AGENT);
      await waitServing(FIRST_THREE);
    } catch (e) {
      labError = e as Error;
    }
  }, { timeout: 1_000_000 });

  after(async () => {
    if (!holding) return;
    for (const c of captures) await c.stop().catch(() => {});
    for (const s of ALL_SERVER_NAMES) await killAgent(s).catch(() => {});
    const labPids = (await Promise.all(ALL_NAMESPACES.map(namespacePids))).flat();
    try {
      await down();
    } finally {
      releaseLab();
    }
    const st = await status();
    const leftNs = Object.entries(st.namespaces).filter(([, present]) => present).map(([ns]) => ns);
    assert.deepEqual({ namespaces: leftNs, processes: labPids.filter(isAlive) }, { namespaces: [], processes: [] }, "lab down leaves no namespace and no process (agents, tshark included) behind");
  }, { timeout: 60_000 });

  it("the lab comes up with s4, the appliance runs with empty pools and a discovery section, and the three agents are heard (needs root or unprivileged user namespaces)", () => {
    if (labError) throw labError;
    const st = readStatus();
    assert.ok(st?.discovery, "status.json has a discovery section");
    assert.deepEqual(st.health, {}, "no configured backend, so no health check");
    assert.deepEqual(Object.keys(st.backends ?? {}).sort(), FIRST_THREE.flatMap(backendsOf).sort(), "every backend the engines run is an advertised one (s4 has not advertised)");
    assert.ok(nginxPid("s4") !== undefined, "s4's nginx runs (it only lacks an agent)");
  });

  it("1. three servers advertising, no static backends: connections to the DSR and NAT VIPs (IPv4, IPv6) all succeed, reach all three servers, and newFlows per advertised backend agree", { timeout: 90_000 }, async (t) => {
    ready();
    for (const vip of ALL_VIPS) {
      const n = 60;
      const v6 = vip.includes(":");
      const before = await waitForFreshStatus(Date.now());
      const r = await sequentialRequests(vip, n, `disc-1-${vip.replace(/\W+/g, "-")}`);
      const afterStatus = await waitForFreshStatus(Date.now());
      assert.equal(r.ok, n, `${n - r.ok} of ${n} connections to ${vip} failed: ${summarize(r.failures)}${r.stderr ? `\ncurl: ${r.stderr.split("\n").slice(0, 3).join("\n")}` : ""}\n${discoverySummary(afterStatus)}`);
      for (const s of FIRST_THREE) assert.ok(r.counts[s] > 0, `${s} answered none of ${n} connections to ${vip}: ${JSON.stringify(r.counts)}`);
      const flows = Object.fromEntries(FIRST_THREE.map((s) => {
        const b = backendsOf(s)[v6 ? 1 : 0];
        return [s, newFlows(afterStatus, b) - newFlows(before, b)];
      }));
      assert.deepEqual(flows, r.counts, `status.json newFlows per advertised backend (es-sN${v6 ? "-v6" : ""}) vs the X-Server headers, ${vip}`);
      t.diagnostic(`${vip}: ${JSON.stringify(r.counts)}`);
    }
  });

  it(`2. s4 starts its agent: new connections reach it within 2 intervals (${2 * INTERVAL_MS} ms); downloads (DSR) and keep-alive connections (wrk, NAT) open before it joined all complete`, { timeout: 90_000 }, async (t) => {
    ready();
    const testStart = Date.now();
    await waitServing(FIRST_THREE);
    assert.equal(endSystem(readStatus()!, "s4"), undefined, "s4 is not known before its agent starts");
    // 100 MiB at 20 MiB/s: about 5 s each
    const downloads = await startDownloads(VIPS.dsr4, 3, "20M", 40, "join");
    const finishedAt = new Map<number, number>();
    for (const d of downloads) d.done.then(() => finishedAt.set(d.index, Date.now()), () => {});
    const keepAlive = wrk(`http://${VIPS.nat4}/`, { threads: 1, connections: 10, durationS: 6 });
    keepAlive.catch(() => {});
    let joinAt = Infinity;
    let stopAt = Infinity;
    const probing = requestsUntil(VIPS.dsr4, "disc-2", () => Date.now() > stopAt, 30_000);
    probing.catch(() => {});
    try {
      await sleep(1000); // wrk's connections are open, the probe runs
      const logFrom = applianceLogSize();
      joinAt = Date.now();
      await startAgent("s4", AGENT);
      stopAt = joinAt + 2 * INTERVAL_MS + 2000;
      const runs = await probing;
      const first = readAccessLog("s4").filter((e) => e.uri === "/" && e.timeMs >= joinAt).map((e) => e.timeMs).sort((a, b) => a - b)[0];
      const sum = total(runs);
      const heard = applianceLogSince(logFrom).find((l) => l.includes("discovery: end system s4 is up"));
      const heardAt = heard ? Date.parse(heard.split(" ")[0]) : NaN;
      t.diagnostic(`the appliance heard s4 ${heard ? `${heardAt - joinAt} ms` : "(no log line)"} and s4's first new connection ${first === undefined ? "never came" : `came ${first - joinAt} ms`} after its agent started; new connections meanwhile: ${JSON.stringify(sum.counts)}`);
      assert.equal(sum.ok, sum.n, `new connections while s4 joined: ${summarize(sum.failures)}`);
      assert.ok(first !== undefined, `no new connection reached s4 within ${stopAt - joinAt} ms of its agent starting: ${JSON.stringify(sum.counts)}\n${discoverySummary(readStatus())}`);
      assert.ok(first - joinAt <= 2 * INTERVAL_MS, `s4's first new connection came ${first - joinAt} ms after its agent started: more than 2 intervals (${2 * INTERVAL_MS} ms)`);
      assert.equal(readAccessLog("s4").filter((e) => e.uri === "/" && e.timeMs > testStart && e.timeMs < joinAt).length, 0, "s4 got new connections before its agent started");

      const k = await keepAlive;
      assert.ok(k.requests > 0, `wrk made no request:\n${k.output}`);
      assert.deepEqual(k.socketErrors, NO_SOCKET_ERRORS, `keep-alive connections through ${VIPS.nat4} while s4 joined: ${wrkSummary(k)}`);
      assert.equal(k.non2xx, 0, `keep-alive connections through ${VIPS.nat4} while s4 joined: ${wrkSummary(k)}`);
      await assertDownloadsComplete(downloads, "a download open while s4 joined");
      for (const d of downloads) assert.ok((finishedAt.get(d.index) ?? 0) > joinAt, `download ${d.index} ended before s4 joined (else the test proves nothing)`);
      t.diagnostic(`downloads from ${downloads.map((d) => d.server).join(", ")}; wrk ${k.requests} requests on 10 keep-alive connections`);
    } finally {
      stopAt = 0;
      await Promise.allSettled([probing, keepAlive, ...downloads.map((d) => d.done)]);
    }
    await waitServing(ALL_SERVER_NAMES);
  });

  it("3. `flowswitch-agent drain` during long downloads: they complete in full, no new connection reaches the server once the appliance has seen it draining, then the agent leaves", { timeout: 120_000 }, async (t) => {
    ready();
    await waitServing(ALL_SERVER_NAMES);
    // 100 MiB at 16 MiB/s: about 6.5 s each
    const downloads = await startDownloads(VIPS.dsr4, 4, "16M", 40, "drain");
    const finishedAt = new Map<number, number>();
    for (const d of downloads) d.done.then(() => finishedAt.set(d.index, Date.now()), () => {});
    const per = Object.fromEntries(ALL_SERVER_NAMES.map((s) => [s, downloads.filter((d) => d.server === s).length])) as Record<LabServerName, number>;
    const drained = ALL_SERVER_NAMES.reduce((a, b) => (per[b] > per[a] ? b : a));
    t.diagnostic(`downloads per server: ${JSON.stringify(per)}; draining ${drained}`);
    let allDone = false;
    void Promise.allSettled(downloads.map((d) => d.done)).then(() => (allDone = true));
    const drainAskedAt = Date.now();
    const draining = drainAgent(drained, 90_000);
    try {
      const seen = await waitForStatus(`${drained} draining`, (s) => stateOf(s, drained) === "draining", 2 * INTERVAL_MS + 3000);
      const seenAt = seen.time;
      t.diagnostic(`status.json says ${drained} is draining ${seenAt - drainAskedAt} ms after the drain was asked for`);
      assert.ok(!allDone, "the downloads ended before the drain was seen (else the test proves nothing)");
      const runs = await requestsUntil(VIPS.dsr4, "disc-3", () => allDone, 60_000);
      const nat = await sequentialRequests(VIPS.nat4, 30, "disc-3-nat", 30_000, ALL_SERVER_NAMES);
      const sum = total([...runs, nat]);
      assert.equal(sum.ok, sum.n, `new connections while ${drained} drained: ${summarize(sum.failures)}`);
      assert.equal(sum.counts[drained], 0, `${sum.counts[drained]} of ${sum.n} new connections reached ${drained}, which is draining: ${JSON.stringify(sum.counts)}`);
      assert.ok(sum.n >= 50, `only ${sum.n} new connections tried during the drain`);
      await assertDownloadsComplete(downloads, `a download while ${drained} drained`);
      for (const d of downloads.filter((x) => x.server === drained)) {
        assert.ok((finishedAt.get(d.index) ?? 0) > seenAt, `download ${d.index} from ${drained} ended before the appliance saw the drain (else the test proves nothing)`);
      }
      // nginx's own record: after the drain was seen, only the downloads that were open then
      const log = readAccessLog(drained).filter((e) => e.timeMs > seenAt);
      assert.deepEqual(log.filter((e) => e.uri !== "/big"), [], `${drained}'s access log: requests other than the open downloads after the drain was seen`);
      assert.equal(log.filter((e) => e.uri === "/big").length, per[drained], `${drained}'s access log: /big requests after the drain was seen (only the ${per[drained]} open ones)`);
      assert.ok(log.every((e) => e.status === 200 && e.bytes === BIG_FILE_BYTES), `${drained}'s access log: every open download sent in full: ${JSON.stringify(log)}`);
      t.diagnostic(`new connections during the drain: ${JSON.stringify(sum.counts)}`);

      const d = await draining;
      assert.ok(d.ok, `flowswitch-agent drain did not finish: ${d.output}`);
      assert.match(d.output, /left/, `flowswitch-agent drain's output: ${d.output}`);
      const exitBy = Date.now() + 2000;
      while (agentPid(drained) !== undefined && Date.now() < exitBy) await sleep(20);
      assert.equal(agentPid(drained), undefined, `${drained}'s agent still runs 2 s after it said it left`);
      const gone = await waitForStatus(`${drained} leaving (or gone)`, (s) => ["leaving", "down", "unknown"].includes(stateOf(s, drained)), 3 * INTERVAL_MS + 3000);
      t.diagnostic(`${drained} after the drain: ${stateOf(gone, drained)}; drain took ${((Date.now() - drainAskedAt) / 1000).toFixed(1)} s`);
    } finally {
      await Promise.allSettled([draining, ...downloads.map((d) => d.done)]);
      // back in service for the cases below
      await startAgent(drained, AGENT);
    }
    await waitServing(ALL_SERVER_NAMES);
  });

  it(`4. a server's agent killed (SIGKILL): down after ${MISSED_INTERVALS} intervals (not before 2; seen within ${MISSED_INTERVALS} intervals + ${(STATUS_PERIOD_MS + SLACK_MS) / 1000} s), and new connections avoid it although its nginx still answers`, { timeout: 60_000 }, async (t) => {
    ready();
    const victim: LabServerName = "s2";
    await waitServing(ALL_SERVER_NAMES);
    const logFrom = applianceLogSize();
    await killAgent(victim, "SIGKILL");
    const killedAt = Date.now();
    assert.ok(nginxPid(victim) !== undefined, `${victim}'s nginx must keep running: only its agent dies`);

    // every status.json written meanwhile, so that "not before" is checked too
    const seen: { time: number; state: string; lastSeen: number }[] = [];
    const deadline = killedAt + MISSED_INTERVALS * INTERVAL_MS + STATUS_PERIOD_MS + SLACK_MS + 3000;
    let down: { time: number; state: string; lastSeen: number } | undefined;
    while (!down && Date.now() < deadline) {
      const s = readStatus();
      if (s && s.time > killedAt && seen.at(-1)?.time !== s.time) {
        const e = { time: s.time, state: stateOf(s, victim), lastSeen: endSystem(s, victim)?.lastSeen ?? 0 };
        seen.push(e);
        if (e.state === "down") down = e;
      }
      await sleep(25);
    }
    t.diagnostic(`status.json after the kill: ${seen.map((e) => `+${e.time - killedAt} ms ${e.state}`).join(", ")}`);
    assert.ok(down, `${victim} not down in status.json ${deadline - killedAt} ms after its agent was killed\n${discoverySummary(readStatus())}`);
    const lastHeard = down.lastSeen;
    assert.ok(lastHeard <= killedAt && killedAt - lastHeard <= INTERVAL_MS + SLACK_MS, `the last advertisement from ${victim} was heard ${killedAt - lastHeard} ms before the kill: expected within one interval (${INTERVAL_MS} ms)`);
    assert.ok(down.time - killedAt <= MISSED_INTERVALS * INTERVAL_MS + STATUS_PERIOD_MS + SLACK_MS,
      `${victim} first seen down ${down.time - killedAt} ms after the kill: expected within ${MISSED_INTERVALS} intervals + ${STATUS_PERIOD_MS + SLACK_MS} ms`);
    const early = seen.filter((e) => e.time < killedAt + 2 * INTERVAL_MS - SLACK_MS / 5);
    assert.ok(early.length > 0, "no status.json was written in the first 2 intervals after the kill: cannot tell whether it was down too early");
    assert.deepEqual(early.filter((e) => e.state === "down").map((e) => e.time - killedAt), [], `${victim} was down less than 2 intervals after the kill (ms after the kill)`);
    // the appliance's own account: the moment it decided, and the silence it measured
    const line = applianceLogSince(logFrom).find((l) => l.includes(`discovery: end system ${victim} is down`));
    assert.ok(line, `the appliance logged no "end system ${victim} is down"`);
    const silent = Number(/silent for (\d+) ms/.exec(line)?.[1]);
    const decidedAt = Date.parse(line.split(" ")[0]);
    assert.ok(silent >= MISSED_INTERVALS * INTERVAL_MS && silent <= MISSED_INTERVALS * INTERVAL_MS + SLACK_MS, `the appliance declared ${victim} down after ${silent} ms of silence: expected ${MISSED_INTERVALS} intervals (${MISSED_INTERVALS * INTERVAL_MS} ms) + at most ${SLACK_MS} ms: ${line}`);
    assert.ok(decidedAt - killedAt >= 2 * INTERVAL_MS - SLACK_MS / 5 && decidedAt - killedAt <= MISSED_INTERVALS * INTERVAL_MS + SLACK_MS, `the appliance declared ${victim} down ${decidedAt - killedAt} ms after the kill: expected between 2 and ${MISSED_INTERVALS} intervals: ${line}`);
    t.diagnostic(`the appliance declared ${victim} down ${decidedAt - killedAt} ms after the kill, after ${silent} ms of silence; status.json said so ${down.time - killedAt} ms after the kill`);

    const downStatus = readStatus()!;
    for (const b of backendsOf(victim)) assert.equal(downStatus.backends?.[b]?.state, "down", `backend ${b} in status.json`);
    const from = down.time;
    const runs = [
      await sequentialRequests(VIPS.dsr4, 80, "disc-4-dsr", 30_000, ALL_SERVER_NAMES),
      await sequentialRequests(VIPS.nat4, 40, "disc-4-nat", 30_000, ALL_SERVER_NAMES),
      await sequentialRequests(VIPS.dsr6, 40, "disc-4-dsr6", 30_000, ALL_SERVER_NAMES),
    ];
    const sum = total(runs);
    assert.equal(sum.ok, sum.n, `new connections with ${victim} down: ${summarize(sum.failures)}`);
    assert.equal(sum.counts[victim], 0, `new connections reached ${victim}, which is down: ${JSON.stringify(sum.counts)}`);
    assert.equal(pagesAfter(victim, from), 0, `${victim}'s access log: new connections after it was seen down`);
    t.diagnostic(`new connections with ${victim} down: ${JSON.stringify(sum.counts)}`);
  });

  it("5. a forged advertisement (wrong secret) and a replayed one (the same signed datagram twice) are refused, counted by reason and source address, and change nothing", { timeout: 60_000 }, async (t) => {
    ready();
    const forger: LabServerName = "s4";
    const replayer: LabServerName = "s3";
    const forgerIp = server(forger).ipv4;
    const replayerIp = server(replayer).ipv4;
    const base = await waitForFreshStatus(Date.now());
    const rejected = (s: ApplianceStatus, reason: string): number => (s.discovery!.stats.rejected as Record<string, number>)[reason] ?? 0;
    const rejectedBy = (s: ApplianceStatus, from: string, reason: string): number => (s.discovery!.stats.rejectedBy[from] as Record<string, number> | undefined)?.[reason] ?? 0;
    const states = (s: ApplianceStatus): Record<string, string> => Object.fromEntries(s.discovery!.endSystems.map((e) => [e.id, e.state]));
    assert.equal(stateOf(base, "s1"), "up", "s1 up before the forgery");

    // Forged: "s1 is draining", with the lab's key id but not its secret. Accepted, s1 would take no new flows.
    const s1 = server("s1");
    const forgedMsg: ServiceMsg = {
      type: "service", endSystem: "s1", addresses: [s1.ipv4, s1.ipv6], state: "draining", intervalMs: INTERVAL_MS,
      services: [VIPS.dsr4, VIPS.nat4].map((vip) => ({ vip, protocol: 6, port: 80, weight: 1, capacity: 0 })),
    };
    const wrongKey = { id: DISCOVERY_KEY_ID, secret: new Uint8Array(randomBytes(32)) };
    await sendDatagram(forger, encode(forgedMsg, wrongKey, Date.now() + 1_000_000, Date.now(), "s1"));

    // Replayed: a genuine SERVICE of a new end system, signed with the lab's key, sent once; once the
    // appliance has marked it down (silent), the very same bytes again. Accepted, they would bring it back up.
    const key = discoveryKey();
    const ghost: ServiceMsg = { type: "service", endSystem: "ghost", addresses: [replayerIp], state: "up", intervalMs: INTERVAL_MS, services: [] };
    const genuine = encode(ghost, { id: key.id, secret: new Uint8Array(Buffer.from(key.secret, "hex")) }, Date.now(), Date.now(), "ghost");
    await sendDatagram(replayer, genuine);
    const heard = await waitForStatus("the genuine datagram accepted (ghost up)", (s) => stateOf(s, "ghost") === "up", 5000);
    const ghostLastSeen = endSystem(heard, "ghost")!.lastSeen;
    const ghostDown = await waitForStatus("ghost down after 3 silent intervals", (s) => stateOf(s, "ghost") === "down", MISSED_INTERVALS * INTERVAL_MS + STATUS_PERIOD_MS + 3000);
    const sentAgainAt = Date.now();
    await sendDatagram(replayer, genuine);

    const afterStatus = await waitForStatus("both refusals counted", (s) => s.time > sentAgainAt + 200 && rejected(s, "replayed") > rejected(base, "replayed"), 5000)
      .catch(() => waitForFreshStatus(sentAgainAt + 200));
    t.diagnostic(`refusals: ${JSON.stringify(afterStatus.discovery!.stats.rejected)}, by source: ${JSON.stringify(afterStatus.discovery!.stats.rejectedBy)}`);
    assert.equal(rejected(afterStatus, "bad-mac") - rejected(base, "bad-mac"), 1, "rejected['bad-mac']: the forged datagram");
    assert.equal(rejectedBy(afterStatus, forgerIp, "bad-mac") - rejectedBy(base, forgerIp, "bad-mac"), 1, `rejectedBy['${forgerIp}']['bad-mac']: the forger's address`);
    assert.equal(rejected(afterStatus, "replayed") - rejected(base, "replayed"), 1, "rejected.replayed: the second copy");
    assert.equal(rejectedBy(afterStatus, replayerIp, "replayed") - rejectedBy(base, replayerIp, "replayed"), 1, `rejectedBy['${replayerIp}'].replayed: the replayer's address`);

    // nothing changed: s1 is up and serves; the ghost stays down, not heard since its one genuine datagram
    assert.equal(stateOf(afterStatus, "s1"), "up", "s1 after the forged 'draining'");
    assert.equal(stateOf(afterStatus, "ghost"), "down", "ghost after its replayed SERVICE");
    assert.equal(endSystem(afterStatus, "ghost")?.lastSeen, ghostLastSeen, "ghost's last accepted advertisement is still the genuine one");
    const { ghost: _g, ...others } = states(afterStatus);
    const { ghost: _h, ...othersBefore } = states(ghostDown);
    assert.deepEqual(others, othersBefore, "the other end systems' states");
    const r = await sequentialRequests(VIPS.dsr4, 60, "disc-5", 30_000, ALL_SERVER_NAMES);
    assert.equal(r.ok, 60, `new connections after the forgery: ${summarize(r.failures)}`);
    assert.ok(r.counts.s1 > 0, `s1 took no new connection after the forged "s1 is draining": ${JSON.stringify(r.counts)}`);
  });

  it("6. a FLOW advertisement (DSR VIP, the client's /32, to a named server, DSCP 46) steers every new connection of the client there, with DSCP 46 on the wire in that server's namespace", { timeout: 90_000 }, async (t) => {
    ready();
    const target: LabServerName = "s2";
    const others = ALL_SERVER_NAMES.filter((s) => s !== target);
    await waitServing(others);
    // target's agent (killed in 4) comes back advertising the flow
    await startAgent(target, {
      ...AGENT,
      flows: [{ pattern: { vip: VIPS.dsr4, source: `${CLIENT.ipv4}/32` }, endSystem: target, attributes: { dscp: 46 } }],
    });
    const withRule = await waitForStatus(`${target} up with its advertised flow rule installed`,
      (s) => serving(s, target) && (s.discovery?.flows ?? []).some((f) => f.endSystem === target && f.rule.dscp === 46), 2 * INTERVAL_MS + 5000);
    t.diagnostic(`advertised flow rules: ${JSON.stringify(withRule.discovery!.flows.map((f) => ({ name: f.name, endSystem: f.endSystem, dscp: f.rule.dscp, port: f.rule.port })))}`);

    const s = server(target);
    const capture = await startCapture(s.ns, "eth0", `ip src host ${CLIENT.ipv4} and tcp port 80`, "disc-6-dscp", 60);
    captures.push(capture);
    let dsr: RequestRun<LabServerName>;
    let nat: RequestRun<LabServerName>;
    try {
      dsr = await sequentialRequests(VIPS.dsr4, 60, "disc-6-dsr", 30_000, ALL_SERVER_NAMES);
      nat = await sequentialRequests(VIPS.nat4, 40, "disc-6-nat", 30_000, ALL_SERVER_NAMES);
      await sleep(300);
    } finally {
      await capture.stop();
    }
    t.diagnostic(`DSR VIP (steered): ${JSON.stringify(dsr.counts)}; NAT VIP (not matched): ${JSON.stringify(nat.counts)}`);
    assert.equal(dsr.ok, 60, `connections to ${VIPS.dsr4}: ${summarize(dsr.failures)}`);
    assert.equal(dsr.counts[target], 60, `every new connection of ${CLIENT.ipv4} to ${VIPS.dsr4} must land on ${target}: ${JSON.stringify(dsr.counts)}`);
    assert.equal(nat.ok, 40, `connections to ${VIPS.nat4}: ${summarize(nat.failures)}`);
    assert.ok(others.some((o) => nat.counts[o] > 0), `the rule names ${VIPS.dsr4} only: connections to ${VIPS.nat4} go by the weights: ${JSON.stringify(nat.counts)}`);

    const rows = await readCapture(capture.file, ["ip.dst", "ip.dsfield.dscp", "tcp.flags.syn"], `ip.src == ${CLIENT.ipv4}`);
    const toVip = rows.filter((r) => r[0] === VIPS.dsr4);
    const toNat = rows.filter((r) => r[0] === s.ipv4);
    const dscpCount = (list: string[][]): Record<string, number> => list.reduce<Record<string, number>>((a, r) => ((a[r[1]] = (a[r[1]] ?? 0) + 1), a), {});
    t.diagnostic(`captured in ${s.ns} (${capture.file}): to ${VIPS.dsr4} DSCP ${JSON.stringify(dscpCount(toVip))}; to ${s.ipv4} (NAT) DSCP ${JSON.stringify(dscpCount(toNat))}`);
    assert.ok(toVip.filter((r) => r[2] === "1" || r[2] === "True").length >= 60, `the capture has fewer SYNs to ${VIPS.dsr4} than the 60 connections (${toVip.length} packets)`);
    assert.deepEqual(dscpCount(toVip), { "46": toVip.length }, `DSCP of the client's packets to ${VIPS.dsr4} as they reach ${target} (ip.dsfield.dscp)`);
    if (toNat.length) assert.deepEqual(dscpCount(toNat), { "0": toNat.length }, `DSCP of the client's packets to the NAT VIP (not matched by the rule) as they reach ${target}`);
  });

  it("7. an agent advertising to the IPv6 group ff02::77 instead is heard as well: its datagrams arrive from its link-local address, and it keeps serving", { timeout: 60_000 }, async () => {
    ready();
    const name: LabServerName = "s3";
    await startAgent(name, { ...AGENT, group: "ff02::77" });
    const st = await waitForStatus(`${name} heard over IPv6 multicast`,
      (x) => serving(x, name) && (x.discovery?.endSystems ?? []).some((e) => e.id === name && e.from.startsWith("fe80:")), 3 * INTERVAL_MS + 5000);
    const e = st.discovery!.endSystems.find((x) => x.id === name)!;
    assert.match(e.from, /^fe80:/, "the source of its last SERVICE: the link-local address ff02::77 is sent from");
    const r = await sequentialRequests(VIPS.nat6, 40, "disc-7", 30_000, ALL_SERVER_NAMES);
    assert.equal(r.ok, 40, summarize(r.failures));
    assert.ok(r.counts[name] > 0, `${name} still takes new connections: ${JSON.stringify(r.counts)}`);
  });

  it("the appliance is still running after all of it", () => {
    ready();
    assert.ok(appliancePid() !== undefined, "the appliance process is gone");
  });
});
