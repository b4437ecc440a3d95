// The lab: network namespaces with a client, a router, the appliance running the real Flowswitch
// process on the Linux board, and three nginx servers (topology.ts), plus an optional fourth one
// made on request, or a second appliance as a redundant pair (pair.ts), or a service-chain segment
// with two firewalls and an IDS (chain.ts); and beside it, in namespaces of its own, the multi-level
// lab (levels.ts: a system appliance, site appliances, their servers). Its public face for the
// end-to-end tests and benchmarks, and its command line:
//
//   npm run lab -- up [--no-appliance] [--keep-on-failure] [--extra s4] [--pair | --chain | --levels]
//   npm run lab -- down
//   npm run lab -- status [--json]
import { realpathSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { down, status, statusText, up } from "./lab.js";
import { assertLabFree } from "./lock.js";
import { downLevels, levelsStatus, levelsStatusText, upLevels } from "./levels.js";
import { EXTRA_SERVER_NAMES, type ExtraServerName } from "./topology.js";

export * from "./topology.js";
export * from "./appliance-config.js";
export * from "./levels-config.js";
export {
  ApplianceError, appliancePaths, appliancePid, applianceLogTail, haReady, interfaceMac, readStatus, reloadAppliance, repoRoot,
  startAppliance, stopAppliance, waitForFreshStatus, waitForStatus, writeApplianceConfig, READY_TIMEOUT_MS,
  type AppliancePaths, type ApplianceStatus, type LabConfigOptions, type DiscoveryStatus, type HealthState, type LabHaStatus,
} from "./appliance.js";
export {
  HA_KEY_ID, activeNode, cutHaLink, haKey, killNode, logSize, nodeError, nodePaths, nodePid, otherNode, pairConfig, pairSummary, readHeartbeats,
  readNodeStatus, restoreHaLink, roleChanges, roleOf, startNode, startPair, stopNode, stopPair, waitForFreshNodeStatus, waitForNode, writePairConfig,
  type CapturedHeartbeat, type HaLinkCut, type NodeGoal, type PairConfigOptions, type RoleChange,
} from "./pair.js";
export {
  gapAround, median, silencesOutside, startEcho, startProbe, startProbeServers, stopEcho, stopProbeServers,
  type Gap, type Probe, type ProbeOptions, type ProbeResult, type ProbeSilence,
} from "./probe.js";
export {
  keepalivedAvailable, keepalivedConf, keepalivedLog, keepalivedState, killKeepalivedNode, prepareKeepalived, reviveKeepalivedNode, startKeepalived,
  stopKeepalived, waitKeepalivedState,
} from "./keepalived.js";
export {
  agentCommand, agentConfig, agentPaths, agentPid, discoveryKey, drainAgent, killAgent, sendDatagram, sendDatagramFrom, startAgent, DISCOVERY_KEY_ID,
  type LabAgentFlow, type LabAgentOptions,
} from "./agent.js";
export { readCapture, startCapture, type Capture } from "./capture.js";
export {
  FIREWALLS, FIREWALL_COUNTERS, IDS, counterDelta, firewallRuleset, killFirewall, readFirewallCounters, reviveFirewall,
  type FirewallCounter, type FirewallCounters,
} from "./chain.js";
export { CommandError, nsRun, nsTry, ipIn, privilege, run, signal, sleep, spawnInNs, stateDir, statePath, stopPids, isAlive, tail } from "./exec.js";
export { accessLogPath, bigFilePath, nginxPid, readAccessLog, startNginx, stopNginx, type AccessLogEntry } from "./nginx.js";
export { curlText, down, namespacePids, status, statusText, up, type LabStatus, type UpOptions } from "./lab.js";
export { acquireLab, assertLabFree, labHolder, releaseLab } from "./lock.js";
export { parseWrk, wrk, type WrkOptions, type WrkResult } from "./wrk.js";
export { HAPROXY_VIP, haproxyConf, startHaproxy, stopHaproxy } from "./haproxy.js";
export {
  downLevels, ecmpNexthops, killLevelsNode, levelsAccessLog, levelsConfig, levelsKey, levelsNginxPid, levelsNodeError, levelsNodeMissing, levelsNodePid,
  levelsPaths, levelsRouterPorts, levelsStatus, levelsStatusText, levelsSummary, readEcmpNexthops, readLevelsConfig, readLevelsStatus, reloadLevelsNode,
  startLevelsCapture, startLevelsNginx, startLevelsNode, stopLevelsNode, upLevels, waitForFreshLevelsStatus, waitForLevelsNode, writeLevelsConfig,
  type LevelsLabStatus, type LevelsNodeGoal, type LevelsNodeStatus, type LevelsUpOptions,
} from "./levels.js";

const USAGE = `usage: npm run lab -- up [--no-appliance] [--keep-on-failure] [--extra s4] [--pair | --chain] [--force]
       npm run lab -- up --levels [--no-appliance] [--keep-on-failure] [--force]
       npm run lab -- down [--force]
       npm run lab -- status [--json]

up      build the lab (tearing down what is left of an earlier one first), start
        nginx in the servers and the appliance in fsl-app, wait until it answers
        --no-appliance     leave the appliance stopped (kernel paths only)
        --keep-on-failure  leave a lab that failed to come up as it is
        --extra s4         also make the optional server s4 (fsl-s4, 10.77.3.14,
                           nginx; in no static config: it joins by advertising)
        --pair             a redundant pair: a second appliance in fsl-app2, an
                           HA link between them, the client-facing segment on a
                           bridge; starts node a (active) then node b (standby)
        --chain            the service-chain segment: fsl-app's port chain, the
                           firewalls fsl-fw1, fsl-fw2 and the IDS fsl-ids, the
                           chained service at 10.77.2.102 (80 -> 8081), its ACL
        --levels           instead: the multi-level lab, beside the main one
                           (fsl-lv-*, 10.88.0.0/16): a system appliance, site
                           A's pair sa1/sa2 behind an ECMP route, site B's sb,
                           servers a1 a2 b1 b2; --no-appliance: network only
down    stop every process in the lab and delete its namespaces (s4, fsl-app2,
        the chain devices, and the multi-level lab's too)
status  what exists: namespaces, interfaces, nginx, the appliance, status.json
        (and the multi-level lab, when it exists)

up and down refuse while a test run or the benchmark holds the lab (--force:
do it anyway).

State (configs, logs, pids): $FSL_DIR, default /tmp/fsl. Needs root, or
unprivileged user namespaces.`;

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        "no-appliance": { type: "boolean", default: false },
        "keep-on-failure": { type: "boolean", default: false },
        extra: { type: "string", multiple: true, default: [] },
        pair: { type: "boolean", default: false },
        chain: { type: "boolean", default: false },
        levels: { type: "boolean", default: false },
        json: { type: "boolean", default: false },
        force: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    process.stderr.write(`lab: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (positionals.length !== 1 || !["up", "down", "status"].includes(positionals[0])) {
    process.stderr.write(`lab: expected one of up, down, status${positionals.length ? `, got: ${positionals.join(" ")}` : ""}\n${USAGE}\n`);
    return 2;
  }
  const log = (m: string): void => void process.stderr.write(`lab: ${m}\n`);
  switch (positionals[0]) {
    case "up": {
      const extra = values.extra ?? [];
      const unknown = extra.filter((x) => !(EXTRA_SERVER_NAMES as readonly string[]).includes(x));
      if (unknown.length) {
        process.stderr.write(`lab: --extra ${unknown.join(", ")}: expected ${EXTRA_SERVER_NAMES.join(" or ")}\n${USAGE}\n`);
        return 2;
      }
      if (!values.force) assertLabFree("build the lab");
      if (values.levels) {
        if (extra.length || values.pair || values.chain) {
          process.stderr.write(`lab: --levels is a lab of its own: not with --extra, --pair or --chain\n${USAGE}\n`);
          return 2;
        }
        const started = Date.now();
        await upLevels({ appliances: !values["no-appliance"], keepOnFailure: values["keep-on-failure"], log });
        log(`levels lab up (${((Date.now() - started) / 1000).toFixed(1)} s)`);
        return 0;
      }
      await up({ appliance: !values["no-appliance"], keepOnFailure: values["keep-on-failure"], extraServers: extra as ExtraServerName[], pair: values.pair, chain: values.chain, log });
      log("up");
      return 0;
    }
    case "down":
      if (!values.force) assertLabFree("take the lab down");
      // the levels lab first: the main lab's down also stops the user-namespace holder both live in
      await downLevels({ log });
      await down({ log });
      log("down");
      return 0;
    default: {
      const levels = await levelsStatus();
      const levelsMade = Object.values(levels.namespaces).some(Boolean);
      if (values.json) process.stdout.write(`${JSON.stringify({ ...(await status()), ...(levelsMade ? { levels } : {}) }, null, 2)}\n`);
      else process.stdout.write(`${await statusText()}${levelsMade ? await levelsStatusText() : ""}`);
      return 0;
    }
  }
}

/** True when this file is the program being run (not imported by a test or the benchmark). */
function isMain(): boolean {
  if (!process.argv[1]) return false;
  try {
    return realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  main(process.argv.slice(2)).then((code) => (process.exitCode = code), (e: Error) => {
    process.stderr.write(`lab: ${e.message}\n`);
    process.exitCode = 1;
  });
}
