// `npm start` at a terminal: the appliance on the simulated board, as an operator meets a real
// box. Its configuration lives in a flash file (commits persist across runs); virtual clients
// behind a router send traffic to the VIPs, virtual servers answer; the serial console is this
// terminal. `request system reboot` boots the box again from its flash.
import { dirname, join, resolve } from "node:path";
import { mkdir, rm } from "node:fs/promises";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import { openFlashFile } from "../../board/flash.js";
import { bootBox, type Box } from "../box.js";
import { validateOrThrow } from "../config/validate.js";
import { readFile } from "node:fs/promises";
import { parseMac, formatMac } from "../net/frame.js";
import { DemoTraffic } from "./traffic.js";
import { buildWorld, packageRoot } from "./demo.js";
import type { Config } from "../config/schema.js";
import { bootedFromEnv } from "../image/software.js";

const TICK_MS = 10;

export async function runSimBox(argv: string[]): Promise<number> {
  const root = await packageRoot();
  const configPath = join(root, "board/sim/demo-config.json");
  const state = process.env.FLOWSWITCH_STATE_DIR ?? join(root, ".flowswitch"); // tests use their own
  const flashAt = argv.indexOf("--flash"); // the boot step names the flash it booted this image from
  const flashPath = flashAt >= 0 && argv[flashAt + 1] ? resolve(argv[flashAt + 1]!) : join(state, "sim-flash.img");
  await mkdir(state, { recursive: true });
  if (argv.includes("--factory-reset")) await rm(flashPath, { force: true });
  const stdin = process.stdin;
  if (stdin.isTTY) stdin.setRawMode(true);
  // Started from an image slot by the boot step: a reboot goes back to it (status 3), so that the
  // boot step picks the slot again (a newly installed image, a rollback).
  const fromSlot = bootedFromEnv() !== undefined;
  let rebootToBootStep = false;
  try {
    while (await bootOnce(configPath, flashPath)) {
      process.stdout.write("\r\n*** rebooting ***\r\n\r\n");
      if (fromSlot) {
        rebootToBootStep = true;
        break;
      }
    }
  } finally {
    if (stdin.isTTY) stdin.setRawMode(false);
    stdin.pause(); // only now: a paused stdin would not wake for the next boot's console
  }
  if (rebootToBootStep) process.exit(3);
  return 0;
}

/** One boot of the box; true when the operator asked for a reboot. */
async function bootOnce(configPath: string, flashPath: string): Promise<boolean> {
  const factory = validateOrThrow(JSON.parse(await readFile(configPath, "utf8")));
  const ports = factory.ports.map((p) => new SimPort(p.name, p.mac));
  const board = new SimBoard(ports, await openFlashFile(flashPath, { create: true }));
  let reboot = false;
  let box: Box | undefined;
  const hosts = new VirtualHosts(factory, ports);
  let wake!: () => void;
  const rebootRequested = new Promise<void>((r) => (wake = r));
  box = await bootBox({
    board,
    defaultConfigPath: configPath,
    console: { input: process.stdin, output: process.stdout },
    banner: banner(factory, flashPath),
    log: (line) => hosts.log(line),
    stateDir: dirname(flashPath), // the supervisor's leases live next to the flash image
    reboot: async () => {
      reboot = true;
      wake();
    },
  });
  hosts.start();
  await Promise.race([box.consoleDone, rebootRequested]);
  hosts.stop();
  await box.stop();
  return reboot;
}

/** The world around the box: a router with clients on one port, servers on the other. */
class VirtualHosts {
  private timer?: NodeJS.Timeout;
  private readonly traffic: DemoTraffic;
  private readonly wires: SimPort[];
  private readonly started = Date.now();
  private readonly logs: string[] = [];

  constructor(config: Config, boxPorts: SimPort[]) {
    const world = buildWorld(config, 100);
    this.traffic = new DemoTraffic(world.traffic);
    this.wires = boxPorts.map((p, i) => {
      const w = new SimPort(`${p.name}-peer`, parseMac(i === world.clientPort ? world.routerMac : "02:00:00:00:ff:fe"));
      SimPort.wire(w, p);
      w.start((frames) => {
        for (const data of frames) this.traffic.observe({ tsUs: this.nowUs(), port: i, data });
      });
      return w;
    });
  }

  private nowUs(): number {
    return (Date.now() - this.started) * 1000;
  }

  start(): void {
    this.timer = setInterval(() => {
      for (const f of this.traffic.next()) this.wires[f.port]?.send([f.data]);
    }, TICK_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** The box's log goes to a buffer, not over the operator's console. */
  log(line: string): void {
    this.logs.push(line);
    if (this.logs.length > 1000) this.logs.shift();
  }
}

function banner(c: Config, flashPath: string): string {
  const svc = c.services.map((s) => `  ${s.name.padEnd(8)} ${`${s.vip.text}:${s.protocol}/${s.port || "*"}`.padEnd(26)} ${s.mode}`).join("\n");
  return [
    "Flowswitch on the simulated board",
    "",
    "Virtual clients behind a router send traffic to these services; virtual servers",
    "answer. The packet engines forward it; this terminal is the box's serial console.",
    svc,
    "",
    `The configuration lives in ${flashPath}`,
    "(commits persist; npm start -- --factory-reset starts from the factory default).",
    "",
    "First login: admin / flowswitch, then choose a password.",
    "Try: show services, show backends, show flows, show counters, configure, ?, Tab.",
    "Watch it from another terminal:",
    `  mosquitto_sub -h 127.0.0.1 -p ${c.telemetry.embeddedBroker.port} -t 'flowswitch/#' -v`,
    ...(c.snmp ? [`  snmpwalk -v2c -c ${c.snmp.communities[0] ?? "public"} ${c.snmp.listen.address}:${c.snmp.listen.port} 1.3.6.1.2.1.1`] : []),
    `Ports: ${c.ports.map((p) => `${p.name} ${formatMac(p.mac)}`).join(", ")}`,
    "",
  ].join("\n");
}
