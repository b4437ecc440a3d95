// The failover benchmark: how long traffic stops when the active appliance of a pair dies, and
// what it costs the clients, in the lab's pair topology (tools/lab `up --pair`), with keepalived
// (VRRP, Debian's package) between the same two namespaces as the reference.
//
//   Flowswitch   node a active, node b a synced standby. A UDP probe (tools/lab/probe-client.ts)
//                sends through the DSR and the NAT VIP every millisecond on 4 flows each; wrk on
//                keep-alive connections and a long download through each VIP run across every
//                kill. SIGKILL node a; node b takes over; node a is started again and pre-empts
//                once synced; again, --runs times. The gap of a kill is the longest silence any
//                probe flow saw around it: from the send time of the last answered probe before
//                it to that of the first answered after (through the old active, then the new).
//                Connections lost: wrk's socket errors plus downloads cut short.
//   soak         --soak seconds at full load (wrk, many connections, both VIPs) and no kill: every
//                role change either node counts (takeovers, handovers, pre-emptions, split
//                brains) is a false takeover. The kill series adds any takeover beyond one per
//                kill and any split brain.
//   keepalived   the Flowswitch processes stopped, keepalived in both namespaces (VRRP version 3 on
//                front, priority 200 and 100) holding a VIP of its own, advert_int 1 and 0.1; the
//                same probe (an echo in each namespace answers for the VIP); the master "dies" as a
//                Flowswitch node does (SIGKILL, and its front down at once).
//
// Targets (issue 7): median gap at most 150 ms, max at most 300 ms, no connection lost, no false
// takeover in a 10-minute soak at full load (--soak 600; the default soak is 60 s).
//
// Figures only, never asserted: the exit status says whether everything could be measured.
import { parseArgs } from "node:util";
import { runLabBenchmark, UsageError } from "./lab/bench-cli.js";
import {
  KEEPALIVED, VIPS, backendNames, down, gapAround, keepalivedAvailable, killKeepalivedNode, killNode, logSize, median, nodePid, nsTry, roleChanges,
  pairSummary, prepareKeepalived, readNodeStatus, releaseLab, reviveKeepalivedNode, sleep, silencesOutside, startKeepalived, startNode,
  startPair, startProbe, startProbeServers, status, stopKeepalived, stopPair, stopProbeServers, up, urlHost, waitForFreshNodeStatus, waitForNode,
  waitKeepalivedState, writePairConfig, wrk, CLIENT_NS, SERVER_NAMES, haReady, BIG_FILE_BYTES,
  type ApplianceStatus, type Gap, type PairNodeName, type ProbeResult, type WrkResult,
} from "./lab/index.js";

const TARGETS = { gapMsMedian: 150, gapMsMax: 300, connectionsLost: 0, falseTakeovers: 0 };
const ADVERT_INTS = [1, 0.1] as const;
/** Clients per kill cycle: wrk for this long, a download per VIP at a rate that makes it last about as long. */
const CYCLE_S = 7;
const DOWNLOAD_RATE = "16M";
/** keepalived: where a kill's gap is looked for, from the kill (plus the master-down time). */
const KILL_WINDOW_MS = 3000;

const USAGE = `usage: npm run bench:failover [-- options]   (or: node build/tools/bench-failover.js [options])

Kills the active node of a Flowswitch pair in the lab again and again and measures the gap a
client sees (a UDP probe every 1 ms through the DSR and NAT VIPs), the connections lost (wrk
keep-alive and long downloads across every kill), then false takeovers in a soak at full load;
then keepalived (VRRP) between the same namespaces, advert_int 1 and 0.1, as the reference.

  --runs N              kills of the active (default 10)
  --soak SECONDS        the false-takeover run at full load, no kill (default 60;
                        600 is the issue's 10-minute run); --duration is the same
  --keepalived-runs N   kills per keepalived advert_int (default 3)
  --no-keepalived       leave the reference out
  --json                print only one JSON object:
                        {"runs", "gapMsMedian", "gapMsMax", "connectionsLost",
                         "falseTakeovers", "keepalived": [{"advertInt", "gapMsMedian"}]}
  --help                this text

Targets: median gap <= ${TARGETS.gapMsMedian} ms, max <= ${TARGETS.gapMsMax} ms, no connection lost, no false takeover.
Needs root or unprivileged user namespaces, and keepalived for the reference
(Debian: apt-get install keepalived). Builds the pair lab (tearing down a single
lab that is up) and takes it down afterwards; a pair lab that was up is left up.
Exit status: 0 when everything was measured, 1 when a part could not be, 2 for a
bad option.`;


interface Options {
  json: boolean;
  runs: number;
  soakS: number;
  keepalivedRuns: number;
  keepalived: boolean;
}

function options(argv: string[]): Options | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        json: { type: "boolean", default: false },
        runs: { type: "string", default: "10" },
        soak: { type: "string" },
        duration: { type: "string" },
        "keepalived-runs": { type: "string", default: "3" },
        "no-keepalived": { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  const int = (name: string, text: string, min: number, max: number): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} ${text}: expected a whole number from ${min} to ${max}`);
    return n;
  };
  if (values.soak !== undefined && values.duration !== undefined && values.soak !== values.duration) throw new UsageError("--soak and --duration are the same option: give one");
  return {
    json: values.json!,
    runs: int("runs", values.runs!, 1, 1000),
    soakS: int(values.soak !== undefined ? "soak" : "duration", values.soak ?? values.duration ?? "60", 0, 86_400),
    keepalivedRuns: int("keepalived-runs", values["keepalived-runs"]!, 1, 100),
    keepalived: !values["no-keepalived"],
  };
}

interface KillRun {
  gapMs: number;
  dsr: Gap;
  nat: Gap;
  handover: { dsr: Gap; nat: Gap };
  lost: number;
  detail: string[];
}

interface Report {
  runs: number;
  gapMsMedian: number | null;
  gapMsMax: number | null;
  connectionsLost: number;
  falseTakeovers: number;
  keepalived: { advertInt: number; gapMsMedian: number | null }[];
}

/** Role changes a node's election has counted. */
function switchCounts(s: ApplianceStatus | undefined): { takeovers: number; handovers: number; preempted: number; splitBrains: number } {
  const e = s?.ha?.election;
  return { takeovers: e?.takeovers ?? 0, handovers: e?.handovers ?? 0, preempted: e?.preempted ?? 0, splitBrains: e?.splitBrains ?? 0 };
}

const allBackendsUp = (s: ApplianceStatus): boolean =>
  SERVER_NAMES.every((n) => s.health?.[backendNames(n).v4]?.state === "up" && s.health?.[backendNames(n).v6]?.state === "up");

async function steadyPair(): Promise<void> {
  if (nodePid("a") === undefined && nodePid("b") === undefined) await startPair();
  for (const n of ["a", "b"] as const) if (nodePid(n) === undefined) await startNode(n, "running");
  await waitForNode("a", "role active", (s) => s.ha?.role === "active", 20_000);
  await waitForNode("a", "every backend healthy", allBackendsUp, 15_000);
  await waitForNode("b", "role standby, holding the flow state", (s) => s.ha?.role === "standby" && haReady(s), 15_000);
}

/** A long download of /big; settles with what went wrong ("" when it came complete). */
function download(vip: string, maxTimeS: number): Promise<string> {
  return nsTry(CLIENT_NS, ["curl", "-sS", "--limit-rate", DOWNLOAD_RATE, "--max-time", String(maxTimeS), "-o", "/dev/null", "-w", "%{http_code} %{size_download}", `http://${urlHost(vip)}/big`],
    { timeoutMs: (maxTimeS + 10) * 1000 }).then((r) => {
    const [code, bytes] = r.stdout.trim().split(/\s+/).map(Number);
    if (r.ok && code === 200 && bytes === BIG_FILE_BYTES) return "";
    return `download via ${vip}: HTTP ${code}, ${bytes} of ${BIG_FILE_BYTES} bytes${r.ok ? "" : `: ${r.stderr.trim().split("\n")[0]}`}`;
  });
}

const socketErrors = (r: WrkResult): number => r.socketErrors.connect + r.socketErrors.read + r.socketErrors.write + r.socketErrors.timeout;

async function killSeries(runs: number, say: (m: string) => void): Promise<{ kills: KillRun[]; falseTakeovers: number }> {
  await steadyPair();
  const base = { a: switchCounts(readNodeStatus("a")), b: switchCounts(readNodeStatus("b")) };
  const probeDsr = await startProbe(VIPS.dsr4, { flows: 4, intervalMs: 1, tag: "failover-dsr", durationS: 3600 });
  const probeNat = await startProbe(VIPS.nat4, { flows: 4, intervalMs: 1, tag: "failover-nat", durationS: 3600 });
  const marks: { killAt: number; restartAt: number; backAt: number; activeAt: number | undefined; lost: number; detail: string[] }[] = [];
  let results: [ProbeResult, ProbeResult];
  try {
    for (let i = 1; i <= runs; i++) {
      await steadyPair();
      const victim: PairNodeName = "a";
      const survivor: PairNodeName = "b";
      const wrks = [VIPS.dsr4, VIPS.nat4].map((vip) => wrk(`http://${vip}/`, { threads: 1, connections: 4, durationS: CYCLE_S }));
      const downloads = [VIPS.dsr4, VIPS.nat4].map((vip) => download(vip, CYCLE_S + 20));
      for (const w of wrks) w.catch(() => {});
      await sleep(800);
      const killAt = (await killNode(victim))!;
      await waitForNode(survivor, `role active after node ${victim} was killed`, (s) => s.ha?.role === "active", 5000);
      const restartAt = Date.now();
      const logFrom = logSize(victim);
      await startNode(victim, "running");
      await waitForNode(victim, `node ${victim} active again (pre-empting once synced)`, (s) => s.ha?.role === "active", 20_000);
      const backAt = Date.now();
      let lost = 0;
      const detail: string[] = [];
      for (const [k, w] of wrks.entries()) {
        try {
          const r = await w;
          lost += socketErrors(r);
          if (socketErrors(r) || r.non2xx) detail.push(`wrk ${k ? "NAT" : "DSR"}: socket errors ${JSON.stringify(r.socketErrors)}, non-2xx ${r.non2xx}`);
        } catch (e) {
          lost += 4;
          detail.push(`wrk ${k ? "NAT" : "DSR"}: ${(e as Error).message.split("\n")[0]}`);
        }
      }
      for (const d of await Promise.all(downloads)) {
        if (d) {
          lost++;
          detail.push(d);
        }
      }
      marks.push({ killAt, restartAt, backAt, activeAt: roleChanges(victim, logFrom).find((c) => c.to === "active")?.at, lost, detail });
      say(`kill ${i}/${runs}: node ${survivor} took over, node ${victim} back active after ${((backAt - restartAt) / 1000).toFixed(1)} s; ${lost ? `${lost} connection(s) lost: ${detail.join("; ")}` : "no connection lost"}`);
    }
  } finally {
    results = await Promise.all([probeDsr.stop(), probeNat.stop()]);
  }
  const [rd, rn] = results;
  const kills = marks.map((m): KillRun => {
    // a kill's silence begins at the kill, before the restart; a handover's around the moment the
    // restarted node logged "-> active" (its process start, which loads a 2-core machine for a
    // moment, belongs to neither)
    const dsr = gapAround(rd, m.killAt, m.restartAt - m.killAt);
    const nat = gapAround(rn, m.killAt, m.restartAt - m.killAt);
    const [from, to] = m.activeAt ? [m.activeAt - 300, m.activeAt + 1000] : [m.restartAt, m.backAt + 1000];
    return {
      gapMs: Math.max(dsr.ms, nat.ms), dsr, nat, lost: m.lost, detail: m.detail,
      handover: { dsr: gapAround(rd, from, to - from), nat: gapAround(rn, from, to - from) },
    };
  });
  const end = { a: switchCounts(readNodeStatus("a")), b: switchCounts(readNodeStatus("b")) };
  // node a restarts every run (its counters start again): only node b's are comparable end to end
  const extraTakeovers = Math.max(0, end.b.takeovers - base.b.takeovers - marks.length);
  const splitBrains = end.b.splitBrains - base.b.splitBrains + end.a.splitBrains;
  return { kills, falseTakeovers: extraTakeovers + splitBrains };
}

async function soak(seconds: number, say: (m: string) => void): Promise<{ falseTakeovers: number; lost: number; detail: string }> {
  await steadyPair();
  const before = { a: await waitForFreshNodeStatus("a", Date.now()), b: await waitForFreshNodeStatus("b", Date.now()) };
  say(`soak: ${seconds} s at full load (wrk -t1 -c50 on each VIP), no kill`);
  const probe = await startProbe(VIPS.nat4, { flows: 4, intervalMs: 1, tag: "failover-soak", durationS: seconds + 60 });
  const started = Date.now();
  const results = await Promise.allSettled([VIPS.dsr4, VIPS.nat4].map((vip) => wrk(`http://${vip}/`, { threads: 1, connections: 50, durationS: seconds })));
  const pr = await probe.stop();
  const after = { a: await waitForFreshNodeStatus("a", Date.now()), b: await waitForFreshNodeStatus("b", Date.now()) };
  let falseTakeovers = 0;
  for (const n of ["a", "b"] as const) {
    const x = switchCounts(before[n]);
    const y = switchCounts(after[n]);
    falseTakeovers += y.takeovers - x.takeovers + y.handovers - x.handovers + y.preempted - x.preempted + y.splitBrains - x.splitBrains;
    if ((after[n].uptimeMs ?? 0) < (before[n].uptimeMs ?? 0)) falseTakeovers++; // restarted meanwhile: a role change the counters lost
  }
  let lost = 0;
  const notes: string[] = [];
  for (const r of results) {
    if (r.status === "fulfilled") {
      lost += socketErrors(r.value);
      notes.push(`${r.value.url}: ${r.value.requests} requests (${r.value.rps.toFixed(0)}/s), socket errors ${socketErrors(r.value)}`);
    } else notes.push(`wrk failed: ${(r.reason as Error).message.split("\n")[0]}`);
  }
  const hiccups = silencesOutside(pr, [], 0, 50);
  notes.push(`probe silences of 50 ms or more: ${hiccups.length}${hiccups.length ? ` (longest ${Math.max(...hiccups.map((h) => h.ms)).toFixed(0)} ms)` : ""}`);
  notes.push(`roles at the end: a ${after.a.ha?.role}, b ${after.b.ha?.role} (${((Date.now() - started) / 1000).toFixed(0)} s)`);
  return { falseTakeovers, lost, detail: notes.join("; ") };
}

async function keepalivedReference(runs: number, say: (m: string) => void): Promise<{ advertInt: number; gapMsMedian: number | null; gaps: number[]; error?: string }[]> {
  if (!(await keepalivedAvailable())) {
    const error = "keepalived is not installed (Debian: apt-get install keepalived; tools/ensure-test-deps.sh installs it)";
    say(`keepalived: ${error}`);
    return ADVERT_INTS.map((advertInt) => ({ advertInt, gapMsMedian: null, gaps: [], error }));
  }
  say("keepalived: stopping Flowswitch, VRRP on the same namespaces' front ports");
  await stopPair();
  const out: { advertInt: number; gapMsMedian: number | null; gaps: number[]; error?: string }[] = [];
  try {
    for (const adv of ADVERT_INTS) {
      try {
        await stopKeepalived();
        await prepareKeepalived();
        await startKeepalived("a", adv);
        await startKeepalived("b", adv);
        const settle = Math.max(5000, adv * 6000);
        await waitKeepalivedState("a", "MASTER", settle);
        await waitKeepalivedState("b", "BACKUP", settle);
        const probe = await startProbe(KEEPALIVED.vip, { flows: 4, intervalMs: 1, tag: `keepalived-${adv}`, durationS: 3600 });
        const kills: number[] = [];
        let r: ProbeResult;
        try {
          for (let i = 1; i <= runs; i++) {
            await sleep(500);
            kills.push(await killKeepalivedNode("a"));
            await waitKeepalivedState("b", "MASTER", settle);
            await sleep(300 + adv * 1000);
            await reviveKeepalivedNode("a", adv);
            await waitKeepalivedState("a", "MASTER", settle);
            await waitKeepalivedState("b", "BACKUP", settle);
            say(`keepalived advert_int ${adv}: kill ${i}/${runs} done`);
          }
        } finally {
          r = await probe.stop();
        }
        const gaps = kills.map((k) => gapAround(r, k, KILL_WINDOW_MS + adv * 4000).ms);
        out.push({ advertInt: adv, gapMsMedian: round(median(gaps)), gaps: gaps.map(round) });
        say(`keepalived advert_int ${adv}: gaps ${gaps.map((g) => g.toFixed(0)).join(", ")} ms`);
      } catch (e) {
        const error = (e as Error).message;
        say(`keepalived advert_int ${adv}: FAILED: ${error}`);
        out.push({ advertInt: adv, gapMsMedian: null, gaps: [], error });
      }
    }
  } finally {
    await stopKeepalived();
  }
  return out;
}

const round = (x: number): number => Math.round(x * 10) / 10;


async function measure(opts: Options, say: (m: string) => void): Promise<number> {
  const failed: string[] = [];
  const st = await status();
  const pairWasUp = st.networkUp && st.namespaces["fsl-app2"] === true;
  if (!pairWasUp) {
    if (st.networkUp) say("a single-appliance lab is up: rebuilding it as the pair (it is taken down afterwards)");
    say("bringing the pair lab up (network and servers)");
    await up({ pair: true, appliance: false, log: (m) => say(`lab: ${m}`) });
  }
  let cleaning = false;
  const restore = async (): Promise<void> => {
    await stopKeepalived().catch(() => {});
    await stopProbeServers().catch(() => {});
    if (!pairWasUp) {
      say("taking the lab down");
      await down();
    } else {
      say("leaving the pair as it was found: both nodes running");
      await writePairConfig();
      await stopPair();
      await startPair().catch((e: Error) => say(`restarting the pair failed: ${e.message.split("\n")[0]}`));
    }
  };
  const onSignal = (sig: NodeJS.Signals): void => {
    if (cleaning) return;
    cleaning = true;
    say(`${sig}: cleaning up`);
    void restore().finally(() => {
      releaseLab();
      process.exit(130);
    });
  };
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);

  let kills: KillRun[] = [];
  let falseTakeovers = 0;
  let lost = 0;
  let soakDetail = "";
  let keepalived: Awaited<ReturnType<typeof keepalivedReference>> = [];
  try {
    say(`Flowswitch: starting the pair (node a active, node b standby), the probe's echo on the servers`);
    await writePairConfig();
    await startProbeServers();
    await stopPair();
    await startPair();
    try {
      say(`Flowswitch: ${opts.runs} kill(s) of the active, wrk and a download through each VIP across each`);
      const k = await killSeries(opts.runs, say);
      kills = k.kills;
      falseTakeovers += k.falseTakeovers;
      lost += kills.reduce((a, x) => a + x.lost, 0);
    } catch (e) {
      failed.push(`kill series: ${(e as Error).message}`);
      say(`kill series FAILED: ${(e as Error).message}\n${pairSummary()}`);
    }
    if (opts.soakS > 0) {
      try {
        const s = await soak(opts.soakS, say);
        falseTakeovers += s.falseTakeovers;
        lost += s.lost;
        soakDetail = s.detail;
        say(`soak: ${s.falseTakeovers} false takeover(s); ${s.detail}`);
      } catch (e) {
        failed.push(`soak: ${(e as Error).message}`);
        say(`soak FAILED: ${(e as Error).message}`);
      }
    }
    if (opts.keepalived) {
      keepalived = await keepalivedReference(opts.keepalivedRuns, say);
      for (const k of keepalived) if (k.error) failed.push(`keepalived advert_int ${k.advertInt}: ${k.error}`);
    }
  } finally {
    if (!cleaning) {
      cleaning = true;
      await restore();
    }
  }

  const gaps = kills.map((k) => k.gapMs);
  const report: Report = {
    runs: kills.length,
    gapMsMedian: gaps.length ? round(median(gaps)) : null,
    gapMsMax: gaps.length ? round(Math.max(...gaps)) : null,
    connectionsLost: lost,
    falseTakeovers,
    keepalived: keepalived.map((k) => ({ advertInt: k.advertInt, gapMsMedian: k.gapMsMedian })),
  };
  if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(table(report, kills, keepalived, soakDetail, opts, failed));
  return failed.length ? 1 : 0;
}

function table(r: Report, kills: KillRun[], ka: Awaited<ReturnType<typeof keepalivedReference>>, soakDetail: string, o: Options, failed: string[]): string {
  const mark = (ok: boolean): string => (ok ? "ok" : "MISSED");
  const ms = (x: number | null): string => (x === null ? "-" : `${x.toFixed(0)} ms`);
  const out = [
    `Flowswitch pair, ${r.runs} kill(s) of the active (SIGKILL), heartbeats every 30 ms, dead after 3 (tools/lab pair)`,
    `  gap per kill (longest probe silence, DSR/NAT): ${kills.map((k) => `${k.gapMs.toFixed(0)}${k.dsr.open || k.nat.open ? "(open)" : ""}`).join(" ")} ms`,
    `  gap at each handover back (restarted node pre-empting): ${kills.map((k) => Math.max(k.handover.dsr.ms, k.handover.nat.ms).toFixed(0)).join(" ")} ms`,
    `  median gap        ${ms(r.gapMsMedian).padStart(8)}   target <= ${TARGETS.gapMsMedian} ms   ${r.gapMsMedian === null ? "-" : mark(r.gapMsMedian <= TARGETS.gapMsMedian)}`,
    `  max gap           ${ms(r.gapMsMax).padStart(8)}   target <= ${TARGETS.gapMsMax} ms   ${r.gapMsMax === null ? "-" : mark(r.gapMsMax <= TARGETS.gapMsMax)}`,
    `  connections lost  ${String(r.connectionsLost).padStart(8)}   target 0        ${mark(r.connectionsLost === 0)}`,
    `  false takeovers   ${String(r.falseTakeovers).padStart(8)}   target 0        ${mark(r.falseTakeovers === 0)}${o.soakS ? ` (soak ${o.soakS} s at full load${o.soakS < 600 ? "; the target is for 600 s: --soak 600" : ""})` : " (no soak: --soak 0)"}`,
  ];
  if (soakDetail) out.push(`  soak: ${soakDetail}`);
  for (const k of kills.filter((x) => x.detail.length)) out.push(`  lost in a kill: ${k.detail.join("; ")}`);
  if (ka.length) {
    out.push("", "keepalived (VRRP v3, Debian) between the same namespaces, the master killed (SIGKILL, front down):");
    for (const k of ka) out.push(`  advert_int ${String(k.advertInt).padEnd(4)} median gap ${ms(k.gapMsMedian).padStart(8)}${k.gaps.length ? `  (${k.gaps.map((g) => g.toFixed(0)).join(" ")} ms)` : ""}${k.error ? `  not measured: ${k.error.split("\n")[0]}` : ""}`);
  }
  for (const f of failed) out.push(`not measured: ${f.split("\n")[0]}`);
  return `${out.join("\n")}\n`;
}

runLabBenchmark("bench:failover", USAGE, options, measure);
