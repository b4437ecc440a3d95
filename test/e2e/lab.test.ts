// End to end: the real Flowswitch process on the Linux board, between real clients (curl, wrk) and
// real servers (nginx), in the lab's network namespaces (tools/lab). Needs root, or unprivileged
// user namespaces; fails with a message saying so when neither is there.
//
// All of it in this one file: the lab's namespace names are fixed, so only one lab can exist at a
// time, and test files run in parallel.
//
// What it proves, as the spec says it:
// - 1000 sequential connections to each VIP (DSR and NAT, IPv4 and IPv6) all succeed, spread over
//   the three servers (equal weights: a third each; Maglev over 1000 flows is not exact, so 20-47%),
//   and the appliance's per-backend newFlows say the same as the X-Server headers curl saw.
// - wrk on keep-alive connections for 10 s: no socket error, every response 2xx.
// - a server drained by configuration (appliance.json + SIGHUP) during long downloads: the
//   downloads it serves complete in full, and no new connection reaches it.
// - a server killed during a wrk run: once fall x interval (+ slack) has passed, no new connection
//   reaches it; the others carry on, and a new wrk run sees no errors at all.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import {
  APPLIANCE, APPLIANCE_NS, acquireLab, releaseLab, BIG_FILE_BYTES, CLIENT_NS, DIRECT_PORT, HEALTH_CHECK, NAMESPACES, SERVERS, SERVER_NAMES, VIPS,
  appliancePid, backendNames, curlText, down, isAlive, namespacePids, nginxPid, privilege, readAccessLog, reloadAppliance,
  server, sleep, startAppliance, startNginx, status, up, urlHost, waitForFreshStatus, waitForStatus,
  wrk, type ApplianceStatus, type ServerName, type WrkResult,
} from "../../tools/lab/index.js";
import { killAllIn, sequentialRequests, startDownloads, summarize } from "./clients.js";

const REQUESTS = 1000;
const SHARE_MIN = 0.2;
const SHARE_MAX = 0.47;
/** fall x interval, plus one check's timeout: how long a dead server may still look alive. */
const DETECT_MS = (HEALTH_CHECK.fall * HEALTH_CHECK.interval + HEALTH_CHECK.timeout) * 1000;
/** Slack on top: the first failing check can come up to one interval after the death, and the engines need the news. */
const SLACK_MS = HEALTH_CHECK.interval * 1000 + 1000;
const RISE_MS = (HEALTH_CHECK.rise * HEALTH_CHECK.interval + HEALTH_CHECK.timeout) * 1000;

const NO_SOCKET_ERRORS = { connect: 0, read: 0, write: 0, timeout: 0 };

function allBackendsUp(s: ApplianceStatus): boolean {
  return SERVER_NAMES.every((n) => {
    const b = backendNames(n);
    return s.health?.[b.v4]?.state === "up" && s.health?.[b.v6]?.state === "up";
  });
}

const newFlows = (s: ApplianceStatus, backend: string): number => s.counters.backends?.[backend]?.newFlows ?? 0;

function wrkSummary(r: WrkResult): string {
  return `${r.requests} requests, ${r.rps} requests/s, socket errors ${JSON.stringify(r.socketErrors)}, non-2xx ${r.non2xx}\n${r.output}`;
}

describe("e2e: Flowswitch in the lab, between curl/wrk and nginx", () => {
  /** Every process the lab ran, noted before `down`, so that the teardown can be checked. */
  let labPids: number[] = [];
  /** Set once this run holds the lab: never tear down a lab that another run is using. */
  let holding = false;

  /** Why the lab did not come up (no root and no user namespaces, a tool missing ...), if it did not. */
  let labError: Error | undefined;
  const labUp = (): void => {
    if (labError) throw new Error(`the lab did not come up: ${labError.message.split("\n")[0]}`);
  };

  before(async () => {
    try {
      await privilege(); // the message says what is missing: root or user namespaces
      await acquireLab(); // another test run or the benchmark may be using it: wait for it
      holding = true;
      await up({ appliance: false });
    } catch (e) {
      labError = e as Error;
    }
  }, { timeout: 1_000_000 });

  after(async () => {
    if (!holding) return;
    labPids = (await Promise.all(NAMESPACES.map(namespacePids))).flat();
    try {
      await down();
    } finally {
      releaseLab();
    }
    const st = await status();
    const leftNs = Object.entries(st.namespaces).filter(([, present]) => present).map(([ns]) => ns);
    const leftPids = labPids.filter(isAlive);
    assert.deepEqual({ namespaces: leftNs, processes: leftPids }, { namespaces: [], processes: [] }, "lab down leaves no namespace and no process behind");
  }, { timeout: 30_000 });

  it("the lab comes up: namespaces, links, nginx in every server (needs root or unprivileged user namespaces)", () => {
    if (labError) throw labError;
  });

  it("without a balancer, the client reaches every server through the router, and the appliance's management port reaches every server's /health", { timeout: 30_000 }, async () => {
    labUp();
    for (const s of SERVERS) {
      for (const a of [s.ipv4, s.ipv6]) {
        assert.equal((await curlText(CLIENT_NS, `http://${urlHost(a)}:${DIRECT_PORT}/`)).trim(), s.name, `client -> ${a}:${DIRECT_PORT}`);
      }
      assert.equal((await curlText(APPLIANCE_NS, `http://${s.ipv4}/health`, ["--interface", APPLIANCE.mgmt.ipv4])).trim(), "ok");
      assert.equal((await curlText(APPLIANCE_NS, `http://[${s.ipv6}]/health`, ["--interface", APPLIANCE.mgmt.ipv6])).trim(), "ok");
    }
  });

  describe("through the appliance", () => {
    /** Why the appliance is not usable (with its log's tail), if it is not: every test below reports it. */
    let notReady: Error | undefined;
    const ready = (): void => {
      labUp();
      if (notReady) throw notReady;
    };

    before(async () => {
      if (labError) return;
      try {
        await startAppliance();
        await waitForStatus("every backend (s1..s3, IPv4 and IPv6) healthy", allBackendsUp, RISE_MS + 8000);
      } catch (e) {
        notReady = e as Error;
      }
    }, { timeout: 60_000 });

    const vips = [
      { label: "DSR, IPv4", vip: VIPS.dsr4, family: 4 },
      { label: "NAT, IPv4", vip: VIPS.nat4, family: 4 },
      { label: "DSR, IPv6", vip: VIPS.dsr6, family: 6 },
      { label: "NAT, IPv6", vip: VIPS.nat6, family: 6 },
    ] as const;

    for (const { label, vip, family } of vips) {
      it(`${REQUESTS} sequential connections to ${vip} (${label}) all succeed, each server gets ${SHARE_MIN * 100}-${SHARE_MAX * 100}%, and the appliance's newFlows per backend say the same`, { timeout: 120_000 }, async (t) => {
        ready();
        const backend = (s: ServerName): string => (family === 4 ? backendNames(s).v4 : backendNames(s).v6);
        const before = await waitForFreshStatus(Date.now());
        const r = await sequentialRequests(vip, REQUESTS, `${label.replace(/\W+/g, "-")}`);
        assert.equal(r.ok, REQUESTS, `${REQUESTS - r.ok} of ${REQUESTS} requests to ${vip} failed: ${summarize(r.failures)}${r.stderr ? `\ncurl said: ${r.stderr.split("\n").slice(0, 5).join("\n")}` : ""}`);
        for (const s of SERVER_NAMES) {
          const share = r.counts[s] / REQUESTS;
          assert.ok(share >= SHARE_MIN && share <= SHARE_MAX, `${s} answered ${r.counts[s]} of ${REQUESTS} (${(share * 100).toFixed(1)}%), expected ${SHARE_MIN * 100}-${SHARE_MAX * 100}%: ${JSON.stringify(r.counts)}`);
        }
        const afterStatus = await waitForFreshStatus(Date.now());
        const flows = Object.fromEntries(SERVER_NAMES.map((s) => [s, newFlows(afterStatus, backend(s)) - newFlows(before, backend(s))]));
        assert.deepEqual(flows, r.counts, `status.json newFlows per backend (${SERVER_NAMES.map(backend).join(", ")}) during the run vs the X-Server headers curl saw`);
        t.diagnostic(`responses per server: ${JSON.stringify(r.counts)}`);
      });
    }

    for (const { label, vip } of [{ label: "DSR", vip: VIPS.dsr4 }, { label: "NAT", vip: VIPS.nat4 }]) {
      it(`wrk with 20 keep-alive connections for 10 s through ${vip} (${label}): no socket errors, every response 2xx`, { timeout: 60_000 }, async (t) => {
        ready();
        const r = await wrk(`http://${vip}/`, { threads: 2, connections: 20, durationS: 10 });
        assert.ok(r.requests > 0, `wrk made no request:\n${r.output}`);
        assert.deepEqual(r.socketErrors, NO_SOCKET_ERRORS, `socket errors through ${vip}: ${wrkSummary(r)}`);
        assert.equal(r.non2xx, 0, `non-2xx responses through ${vip}: ${wrkSummary(r)}`);
        t.diagnostic(`${r.requests} requests, ${r.rps} requests/s, p99 ${r.latencyMs.p99} ms`);
      });
    }

    it("a server drained by configuration during long downloads: its downloads complete in full, and no new connection reaches it", { timeout: 90_000 }, async (t) => {
      ready();
      await waitForStatus("every backend healthy", allBackendsUp, RISE_MS + 8000);
      const vip = VIPS.dsr4;
      // 100 MiB at 10 MiB/s: about 10 s each, long enough to drain and test meanwhile
      const downloads = await startDownloads(vip, 4, "10M", 45);
      const finishedAt = new Map<number, number>();
      for (const d of downloads) d.done.then(() => finishedAt.set(d.index, Date.now()), () => {});
      const per = Object.fromEntries(SERVER_NAMES.map((s) => [s, downloads.filter((d) => d.server === s).length])) as Record<ServerName, number>;
      const drained = SERVER_NAMES.reduce((a, b) => (per[b] > per[a] ? b : a));
      t.diagnostic(`downloads per server: ${JSON.stringify(per)}; draining ${drained}`);
      let drainedAt = 0;
      try {
        await reloadAppliance({ states: { [drained]: "draining" } });
        drainedAt = Date.now();
        const before = await waitForFreshStatus(Date.now());
        const r = await sequentialRequests(vip, 150, "drain");
        const afterStatus = await waitForFreshStatus(Date.now());
        assert.equal(r.ok, 150, `new connections while ${drained} drains: ${summarize(r.failures)}`);
        assert.equal(r.counts[drained], 0, `${r.counts[drained]} of 150 new connections reached ${drained}, which is draining: ${JSON.stringify(r.counts)}`);
        assert.equal(newFlows(afterStatus, drained) - newFlows(before, drained), 0, `status.json: new flows for the draining ${drained}`);

        const results = await Promise.allSettled(downloads.map((d) => d.done));
        results.forEach((res, i) => {
          const d = downloads[i];
          assert.equal(res.status, "fulfilled", `download ${i} (from ${d.server}) failed: ${res.status === "rejected" ? (res.reason as Error).message : ""}`);
          const v = (res as PromiseFulfilledResult<{ code: number; bytes: number }>).value;
          assert.deepEqual(v, { code: 200, bytes: BIG_FILE_BYTES }, `download ${i} from ${d.server}: HTTP status and bytes received`);
        });
        for (const d of downloads.filter((x) => x.server === drained)) {
          assert.ok((finishedAt.get(d.index) ?? 0) > drainedAt, `download ${d.index} from ${drained} was still running when ${drained} was set to draining (else the test proves nothing)`);
        }
      } finally {
        await Promise.allSettled(downloads.map((d) => d.done));
        await reloadAppliance({});
      }
    });

    it(`a server killed during wrk: after fall x interval (${DETECT_MS / 1000} s, + ${SLACK_MS / 1000} s slack) no new connection reaches it, the others carry on`, { timeout: 90_000 }, async (t) => {
      ready();
      await waitForStatus("every backend healthy", allBackendsUp, RISE_MS + 8000);
      const victim: ServerName = "s2";
      const others = SERVER_NAMES.filter((s) => s !== victim);
      const url = `http://${VIPS.dsr4}/`;
      const running = wrk(url, { threads: 2, connections: 20, durationS: 10 });
      running.catch(() => {});
      try {
        await sleep(3000);
        const killedAt = Date.now();
        const killed = await killAllIn(server(victim).ns);
        assert.ok(killed.length > 0, `no process to kill in ${server(victim).ns}`);
        const gone = Date.now() + 2000;
        while (nginxPid(victim) !== undefined && Date.now() < gone) await sleep(20);
        assert.equal(nginxPid(victim), undefined, `nginx in ${server(victim).ns} still runs 2 s after SIGKILL`);

        await waitForStatus(`${victim} reported down`, (s) => s.health?.[victim]?.state === "down", DETECT_MS + SLACK_MS + 2000);
        t.diagnostic(`${victim} reported down ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill`);
        const quietFrom = killedAt + DETECT_MS + SLACK_MS;
        await sleep(Math.max(0, quietFrom - Date.now()));
        const base = newFlows(await waitForFreshStatus(Date.now()), victim);
        const baseAt = Date.now();

        const r = await running;
        const end = await waitForFreshStatus(Date.now());
        assert.equal(newFlows(end, victim) - base, 0, `new flows went to the killed ${victim} more than ${(DETECT_MS + SLACK_MS) / 1000} s after the kill`);
        t.diagnostic(`wrk during the kill: ${r.requests} requests, socket errors ${JSON.stringify(r.socketErrors)}`);
        assert.equal(r.non2xx, 0, `non-2xx responses (a dead server answers none; errors are socket errors): ${wrkSummary(r)}`);
        for (const s of others) {
          const served = readAccessLog(s).filter((e) => e.timeMs > baseAt && e.status === 200 && e.uri === "/").length;
          assert.ok(served > 0, `${s} served no request after ${victim} was down: the others must carry on (wrk: ${wrkSummary(r)})`);
        }
        // the errors belonged to the connections the dead server had: a new run has none
        const again = await wrk(url, { threads: 2, connections: 20, durationS: 3 });
        assert.deepEqual(again.socketErrors, NO_SOCKET_ERRORS, `a new wrk run with ${victim} dead: ${wrkSummary(again)}`);
        assert.equal(again.non2xx, 0, `a new wrk run with ${victim} dead: ${wrkSummary(again)}`);
        const stillQuiet = newFlows(await waitForFreshStatus(Date.now()), victim);
        assert.equal(stillQuiet - base, 0, `new flows went to the killed ${victim} during the second wrk run`);
      } finally {
        await running.catch(() => {});
        const restartedAt = Date.now();
        await startNginx(victim);
        await waitForStatus(`${victim} healthy again`, allBackendsUp, RISE_MS + 8000).then(
          () => t.diagnostic(`${victim} healthy again ${((Date.now() - restartedAt) / 1000).toFixed(1)} s after nginx restarted`),
          (e: Error) => t.diagnostic(`${victim} not healthy again: ${e.message.split("\n")[0]}`));
      }
    });

    it("the appliance is still running after all of it", () => {
      ready();
      assert.ok(appliancePid() !== undefined, "the appliance process is gone");
    });
  });
});
