#!/usr/bin/env node
// flowswitch-pcap: runs recorded frames through the same data-plane wasm the appliance runs and
// writes what came out: one pcap per egress port, the punted and dropped frames, and the counters.
import { parseArgs } from "node:util";
import { readFile, writeFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import { Engine, runFrames, fateIdentityHolds, DROP_REASON_NAMES, type TimedFrame } from "../host/engine/index.js";
import { validate, formatError } from "../host/config/validate.js";
import { readPcap, writePcap } from "./lib/pcap.js";

const USAGE = `usage: flowswitch-pcap --config CFG.json --in [PORT=]IN.pcap [--in ...] --out-dir DIR

Runs the frames of IN.pcap through the Flowswitch data plane as if they arrived on PORT (default:
the first port of the config); several --in files are merged by timestamp. Writes to DIR:
  <port>.pcap     frames transmitted on each port of the config
  punt.pcap       frames handed to the host (ARP, neighbour discovery, the appliance's own traffic)
  dropped.pcap    frames dropped (the reason of each is in counters.json's "dropped" list)
  counters.json   the data plane's counters, and whether every frame ended exactly once`;

class UsageError extends Error {}

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        config: { type: "string" },
        in: { type: "string", multiple: true },
        "out-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
    }).values;
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (!args.config || !args.in?.length || !args["out-dir"]) throw new UsageError("--config, --in and --out-dir are required");

  let input: unknown;
  try {
    input = JSON.parse(await readFile(args.config, "utf8"));
  } catch (e) {
    throw new UsageError(`cannot read the config ${args.config}: ${(e as Error).message}`);
  }
  const v = validate(input);
  if (!v.ok) throw new UsageError(`invalid configuration ${args.config}:\n  ${v.errors.map(formatError).join("\n  ")}`);
  const config = v.config;

  const frames: TimedFrame[] = [];
  for (const spec of args.in) {
    const eq = spec.indexOf("=");
    const portName = eq > 0 ? spec.slice(0, eq) : config.ports[0].name;
    const file = eq > 0 ? spec.slice(eq + 1) : spec;
    const port = config.ports.find((p) => p.name === portName);
    if (!port) throw new UsageError(`--in ${spec}: no port ${portName} in the config (${config.ports.map((p) => p.name).join(", ")})`);
    let packets;
    try {
      packets = readPcap(await readFile(file));
    } catch (e) {
      throw new UsageError(`${file}: ${(e as Error).message}`);
    }
    for (const p of packets) frames.push({ tsUs: p.tsUs, port: port.index, data: p.data });
  }
  frames.sort((a, b) => a.tsUs - b.tsUs); // stable: same-time frames keep their file order

  const engine = await Engine.create(config);
  const result = runFrames(engine, frames);
  const counters = engine.counters();

  const out = args["out-dir"];
  await mkdir(out, { recursive: true });
  const byPort = new Map(config.ports.map((p) => [p.index, [] as { tsUs: number; data: Uint8Array }[]]));
  for (const f of result.tx) byPort.get(f.port)?.push(f);
  const outputs: Record<string, number> = {};
  for (const p of config.ports) {
    const list = byPort.get(p.index) ?? [];
    outputs[p.name] = list.length;
    await writeFile(join(out, `${p.name}.pcap`), writePcap(list));
  }
  await writeFile(join(out, "punt.pcap"), writePcap(result.punted));
  await writeFile(join(out, "dropped.pcap"), writePcap(result.dropped));
  const report = {
    input: { frames: frames.length, rejectedTooBig: result.rejected.length },
    outputs,
    punted: result.punted.length,
    dropped: result.dropped.map((f, i) => ({ frame: i + 1, reason: DROP_REASON_NAMES[f.reason] ?? f.reason })),
    everyFrameEndedOnce: fateIdentityHolds(counters) && counters.rx === frames.length - result.rejected.length,
    counters,
  };
  await writeFile(join(out, "counters.json"), JSON.stringify(report, null, 2) + "\n");
  console.log(`${frames.length} frames in: ${counters.tx} transmitted (${Object.entries(outputs).map(([k, n]) => `${k} ${n}`).join(", ")}), ${counters.punt} punted, ${counters.drop} dropped${result.rejected.length ? `, ${result.rejected.length} too big for a buffer` : ""}; results in ${out}`);
  return report.everyFrameEndedOnce ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: Error) => {
    if (e instanceof UsageError) {
      console.error(`flowswitch-pcap: ${e.message}`);
      if (!e.message.includes("\n")) console.error(USAGE.split("\n")[0]);
      process.exit(2);
    }
    console.error(e);
    process.exit(1);
  },
);
