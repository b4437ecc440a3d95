#!/usr/bin/env node
// flowswitch-agent: run by each server to advertise its services, load and flows to the Flowswitch
// appliances, and to leave gracefully. Exit codes: 0 done, 1 runtime failure, 2 usage or config error.
import { parseArgs } from "node:util";
import { loadConfig, formatConfigError, type AgentConfig } from "./agent/config.js";
import { Sender } from "./agent/sender.js";
import { listenControl, requestDrain, requestStatus, type AgentStatus } from "./agent/control.js";
import { SupervisorClient } from "./agent/supervisor-client.js";
import { Agent, flowMsgs, loadMsg, measure, serviceMsg, LEAVING_REPEATS } from "./agent/run.js";
import { countedPorts } from "./agent/load.js";

const USAGE = `usage: flowswitch-agent run    --config FILE
       flowswitch-agent drain  --config FILE [--timeout SECONDS]
       flowswitch-agent status --config FILE
       flowswitch-agent check  --config FILE

run    advertise the services of FILE (SERVICE, LOAD and FLOW every intervalMs) to the multicast
       group and the unicast appliances; with a supervisor, register with it and lease the
       configured numbers (released on leave); on SIGTERM or SIGINT drain, leave and exit.
drain  tell the agent running with FILE to drain: advertise "draining" until no connection to a
       served port is left or SECONDS pass (default: drainTimeoutS of FILE), then "leaving"; waits
       until it has exited.
status show the running agent's state, interval, registration and leases.
check  validate FILE and print what the agent would advertise.`;

class UsageError extends Error {}

/** How long releasing the leases on leave may take before the agent exits anyway. */
const RELEASE_WAIT_MS = 2000;

const log = (line: string): void => {
  process.stderr.write(`flowswitch-agent: ${line}\n`);
};

function config(file: string | undefined): AgentConfig {
  if (!file) throw new UsageError("--config FILE is required");
  const r = loadConfig(file);
  if (!r.ok) throw new UsageError(`invalid config ${file}:\n  ${r.errors.map(formatConfigError).join("\n  ")}`);
  return r.config;
}

async function run(cfg: AgentConfig): Promise<number> {
  const sender = await Sender.open(cfg, log);
  const ports = countedPorts(cfg.services);
  const agent = new Agent(cfg, { send: (m) => sender.send(m), log, measure: () => measure(cfg, ports), now: Date.now });
  const client = cfg.supervisor
    ? new SupervisorClient(cfg, { send: (m, to) => sender.sendTo(m, to.address, to.port), log, now: Date.now, onInterval: (ms) => agent.setIntervalMs(ms) })
    : undefined;
  if (client) sender.onDatagram((bytes) => client.handle(bytes));
  const control = await listenControl(cfg.controlSocket, {
    drain: (t, notify) => agent.drain(t, notify),
    status: () => ({ id: cfg.id, state: agent.currentState, intervalMs: agent.intervalMs, ...(client && { supervisor: client.status() }) }),
  });
  let signals = 0;
  const onSignal = (sig: string): void => {
    // First signal: graceful drain. Second: leave without waiting for connections.
    if (signals++ === 0) {
      log(`${sig}: draining`);
      agent.drain(undefined);
    } else {
      log(`${sig} again: leaving now`);
      agent.leaveNow();
    }
  };
  process.on("SIGTERM", () => onSignal("SIGTERM"));
  process.on("SIGINT", () => onSignal("SIGINT"));
  agent.start();
  client?.start();
  await agent.finished;
  await client?.releaseAll(RELEASE_WAIT_MS); // it has left: its numbers go back
  // Let the "done" event reach a waiting drain client before the socket goes.
  await new Promise((r) => setTimeout(r, 50));
  await new Promise<void>((r) => control.close(() => r()));
  sender.close();
  return 0;
}

async function drain(cfg: AgentConfig, timeoutS: number | undefined): Promise<number> {
  const t = timeoutS ?? cfg.drainTimeoutS;
  // Bound the wait: the drain itself, the leaving repeats, plus a probe and some slack per interval.
  const limitMs = t * 1000 + (LEAVING_REPEATS + 3) * cfg.intervalMs + (cfg.probe?.timeoutMs ?? 0) * 2 + 5000;
  const r = await requestDrain(cfg.controlSocket, timeoutS, limitMs, (e) => {
    if (e.event === "draining") console.log(`draining: ${e.connections} connection(s) open`);
    else if (e.event === "leaving") console.log(`leaving: ${e.reason}`);
    else if (e.event === "done") console.log("left");
    else if (e.event === "error") console.log(`agent refused: ${e.message}`);
  });
  if (r === "done") return 0;
  if (r === "no-agent") log(`no agent is running on ${cfg.controlSocket}`);
  else if (r === "lost") log("the agent went away before it had left");
  else log(`the agent had not left after ${Math.round(limitMs / 1000)} s`);
  return 1;
}

async function status(cfg: AgentConfig): Promise<number> {
  const s = await requestStatus(cfg.controlSocket, 5000);
  if (!s) {
    log(`no agent is running on ${cfg.controlSocket}`);
    return 1;
  }
  console.log(formatStatus(s));
  return 0;
}

function formatStatus(s: AgentStatus): string {
  const lines = [`end system ${s.id}: ${s.state}, advertising every ${s.intervalMs} ms`];
  const sup = s.supervisor;
  if (!sup) return [...lines, "no supervisor configured"].join("\n");
  const reg = sup.registration;
  lines.push(`supervisor ${sup.supervisor}: registration ${reg.state}${reg.reason ? ` (${reg.reason})` : ""}`);
  for (const l of sup.leases) lines.push(`lease ${l.leaseId} of pool ${l.pool}: ${l.count === 1 ? l.first : `${l.first}-${l.first + l.count - 1}`}, ${l.remainingS} s left`);
  for (const p of sup.waiting) lines.push(`pool ${p}: no lease yet`);
  return lines.join("\n");
}

async function check(cfg: AgentConfig): Promise<number> {
  const m = await measure(cfg);
  const dest = [`${cfg.group}:${cfg.port} (multicast, TTL 1)`, ...cfg.unicast.map((u) => `${u}:${cfg.port}`)];
  console.log(`config OK: end system ${cfg.id}, key id ${cfg.key.id}, every ${cfg.intervalMs} ms to ${dest.join(", ")}`);
  console.log(`drain: control socket ${cfg.controlSocket}, timeout ${cfg.drainTimeoutS} s`);
  if (cfg.supervisor) console.log(`supervisor ${cfg.supervisor.address}:${cfg.supervisor.port}${cfg.numbers.length ? `, numbers: ${cfg.numbers.map((n) => `${n.count} of pool ${n.pool} for ${n.leaseS} s`).join(", ")}` : ""}`);
  if (m.probeError) console.log(`probe ${cfg.probe!.url} failed now: ${m.probeError}`);
  for (const msg of [serviceMsg(cfg, "up"), loadMsg(cfg, m), ...flowMsgs(cfg, "add")]) console.log(JSON.stringify(msg));
  return 0;
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { config: { type: "string", short: "c" }, timeout: { type: "string" }, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (positionals.length !== 1) throw new UsageError("one command is required: run, drain, status or check");
  const cmd = positionals[0];
  let timeoutS: number | undefined;
  if (values.timeout !== undefined) {
    if (cmd !== "drain") throw new UsageError("--timeout is for drain only");
    if (!/^\d{1,5}$/.test(values.timeout) || Number(values.timeout) > 86_400) throw new UsageError(`--timeout ${values.timeout}: expected whole seconds 0-86400`);
    timeoutS = Number(values.timeout);
  }
  switch (cmd) {
    case "run":
      return run(config(values.config));
    case "drain":
      return drain(config(values.config), timeoutS);
    case "status":
      return status(config(values.config));
    case "check":
      return check(config(values.config));
    default:
      throw new UsageError(`unknown command ${cmd}: expected run, drain, status or check`);
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    if (e instanceof UsageError) {
      log(e.message);
      if (!e.message.startsWith("invalid config")) process.stderr.write(`${USAGE}\n`);
      process.exit(2);
    }
    log(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
