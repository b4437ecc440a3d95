#!/usr/bin/env node
// flowswitch-supervisor: the supervisor of the service advertisement protocol on its own, on any
// host of the server segment (docs/supervisor.md): registrations, server lists, the number
// authority with its lease store, and the relay of advertisements to appliances on other
// segments. SIGHUP re-reads the config file (a bad file changes nothing); SIGTERM or SIGINT stops.
// Exit codes: 0 stopped, 1 runtime failure (socket, lease store), 2 usage or config error.
import { parseArgs } from "node:util";
import { FileLeaseStore } from "../host/discovery/lease-store.js";
import { Supervisor } from "../host/discovery/supervisor.js";
import { SupervisorSocket, hostPort, type Endpoint } from "../host/discovery/supervisor-socket.js";
import { loadStandaloneConfig, formatConfigError, type StandaloneConfig } from "./supervisor/config.js";

const USAGE = `usage: flowswitch-supervisor --config FILE
       flowswitch-supervisor --check --config FILE

Runs the supervisor of FILE: answers REGISTER, SERVER-LIST and NUMBER requests on the listen
address, hears SERVICE/LOAD/FLOW there and on the groups it joins, relays those to the relay
targets, and keeps the leases of its number pools in stateFile (saved before every grant).
SIGHUP re-reads FILE (a bad file changes nothing); SIGTERM or SIGINT stops.
--check  validate FILE, print what would run, and exit.`;

class UsageError extends Error {}

const log = (line: string): void => {
  process.stderr.write(`flowswitch-supervisor: ${line.replace(/^supervisor: /, "")}\n`);
};

function load(file: string): StandaloneConfig {
  const r = loadStandaloneConfig(file);
  if (!r.ok) throw new UsageError(`invalid config ${file}:\n  ${r.errors.map(formatConfigError).join("\n  ")}`);
  return r.config;
}

function describe(c: StandaloneConfig): string {
  const s = c.supervisor;
  return [
    `supervisor ${s.id} on ${hostPort(c.endpoint.address, c.endpoint.port)}${c.endpoint.groups.length ? `, groups ${c.endpoint.groups.map((g) => g.address).join(", ")}` : ""}`,
    `keys ${s.keys.map((k) => k.id).join(", ")}; interval ${s.intervalMs} ms; at most ${s.maxEndSystems} registrations`,
    `pools: ${s.pools.length ? s.pools.map((p) => `${p.name} ${p.first}-${p.last} (leases up to ${p.maxLeaseS} s)`).join("; ") : "none"}${c.stateFile ? `; leases in ${c.stateFile}` : ""}`,
    `relay to: ${s.relay.length ? s.relay.map((r) => hostPort(r.address, r.port)).join(", ") : "nobody"}${s.peers.length ? `; peers ${s.peers.join(", ")}` : ""}`,
  ].join("\n");
}

const sameEndpoint = (a: Endpoint, b: Endpoint): boolean => JSON.stringify(a) === JSON.stringify(b);

async function run(file: string): Promise<number> {
  let cfg = load(file);
  // A SIGHUP while starting must not kill the process (its default action): it is taken once running.
  let earlyHup = false;
  const onEarlyHup = (): void => void (earlyHup = true);
  process.on("SIGHUP", onEarlyHup);
  let socket: SupervisorSocket | undefined;
  const sup = new Supervisor(cfg.supervisor, {
    send: (bytes, to) => (socket ? socket.send(bytes, to) : Promise.reject(new Error("not listening"))),
    store: cfg.stateFile ? new FileLeaseStore(cfg.stateFile) : undefined,
    log,
  });
  await sup.start();
  if (sup.authorityProblem) {
    log(`cannot start: ${sup.authorityProblem}`);
    log("move the lease store aside only when no lease in it can still be in use (wait its longest lease time twice)");
    await sup.stop();
    return 1;
  }
  const handler = (bytes: Uint8Array, from: { address: string; port: number }): void => void sup.handle(bytes, from);
  try {
    socket = await SupervisorSocket.open(cfg.endpoint, handler, log);
  } catch (e) {
    log((e as Error).message);
    await sup.stop();
    return 1;
  }
  log(`running: ${describe({ ...cfg, endpoint: { ...cfg.endpoint, port: socket.port } }).replace(/\n/g, "; ")}`);

  let reloading = Promise.resolve();
  const reload = async (): Promise<void> => {
    const r = loadStandaloneConfig(file);
    if (!r.ok) return log(`reload refused, still running the previous configuration: ${r.errors.map(formatConfigError).join("; ")}`);
    const next = r.config;
    if (next.stateFile !== cfg.stateFile) return log(`reload refused: stateFile changes only at a restart (running with ${cfg.stateFile ?? "none"})`);
    if (!sameEndpoint(next.endpoint, cfg.endpoint)) {
      try {
        const fresh = await SupervisorSocket.open(next.endpoint, handler, log);
        await socket?.close();
        socket = fresh;
      } catch (e) {
        return log(`reload refused: ${(e as Error).message}`);
      }
    }
    await sup.update(next.supervisor);
    cfg = next;
    log(`configuration reloaded: ${describe(cfg).replace(/\n/g, "; ")}`);
  };

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      log(`${signal}: stopping`);
      void reloading.then(async () => {
        await sup.stop();
        await socket?.close();
        resolve(0);
      });
    };
    process.on("SIGTERM", () => stop("SIGTERM"));
    process.on("SIGINT", () => stop("SIGINT"));
    const onHup = (): void => {
      log("SIGHUP: reloading");
      reloading = reloading.then(reload).catch((e: Error) => log(`reload failed: ${e.message}`));
    };
    process.off("SIGHUP", onEarlyHup);
    process.on("SIGHUP", onHup);
    if (earlyHup) onHup();
  });
}

async function main(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({ args: argv, options: { config: { type: "string", short: "c" }, check: { type: "boolean" }, help: { type: "boolean", short: "h" } }, strict: true }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.config) throw new UsageError("--config FILE is required");
  if (values.check) {
    console.log(`config OK: ${describe(load(values.config))}`);
    return 0;
  }
  return run(values.config);
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
