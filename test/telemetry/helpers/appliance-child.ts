// The appliance side of the MQTT test, in its own process so that the test can SIGKILL it (the
// broker then publishes the last will). Boots the Appliance on the simulated board with the
// configuration file it is given, starts telemetry on it, pushes TCP SYNs through so the
// counters move, and says on stdout, one line each:
//
//   log <text>          the appliance's and telemetry's log lines
//   counters <json>     { ports, services, totals } once the frames have gone through
//   stopped             after SIGTERM: telemetry and the appliance stopped cleanly
//
// Usage: appliance-child.js CONFIG.json. Without arguments (as `node --test` finds it among the
// tests) it does nothing.
import { writeSync } from "node:fs";
import { Appliance } from "../../../host/appliance.js";
import { SimBoard, SimPort } from "../../../board/sim/index.js";
import { startTelemetry } from "../../../host/telemetry/index.js";
import { tcp4Frame, parseMac, SYN } from "../../../host/net/frame.js";

export const CHILD = { clientMac: "02:00:00:00:01:01", serverMac: "02:00:00:00:02:01", routerMac: "02:00:00:00:01:fe", backendMac: "02:00:00:00:02:11", vip: "10.0.0.100", frames: 40 };
const MAX_LIFE_MS = 120_000; // an orphan (its test gone) ends by itself

const say = (line: string): void => void writeSync(1, `${line.replace(/\n/g, " ")}\n`);

async function main(configPath: string): Promise<void> {
  setTimeout(() => process.exit(4), MAX_LIFE_MS).unref();
  const clientPort = new SimPort("client", parseMac(CHILD.clientMac));
  const serverPort = new SimPort("server", parseMac(CHILD.serverMac));
  const router = new SimPort("router", parseMac(CHILD.routerMac));
  const servers = new SimPort("servers", parseMac(CHILD.backendMac));
  SimPort.wire(router, clientPort);
  SimPort.wire(servers, serverPort);
  let atServers = 0;
  servers.start((f) => void (atServers += f.length));
  router.start(() => undefined);
  const log = (l: string): void => say(`log ${l}`);
  const box = await Appliance.boot({ configPath, board: new SimBoard([clientPort, serverPort]), log });
  const telemetry = await startTelemetry(box.running.telemetry, box.view(), log);

  let stopping = false;
  process.on("SIGTERM", () => {
    if (stopping) return;
    stopping = true;
    void (async () => {
      await telemetry.stop();
      await box.stop();
      say("stopped");
      process.exit(0);
    })();
  });

  router.send(Array.from({ length: CHILD.frames }, (_, i) =>
    tcp4Frame({ srcMac: CHILD.routerMac, dstMac: CHILD.clientMac, src: "198.51.100.1", dst: CHILD.vip, sport: 2000 + i, dport: 80, flags: SYN })));
  const deadline = Date.now() + 5000;
  while (atServers < CHILD.frames && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
  const v = box.view();
  const c = v.counters();
  say(`counters ${JSON.stringify({ ports: v.ports(), services: v.services(), totals: { rx: c.rx, tx: c.tx, punt: c.punt, drop: c.drop } })}`);
}

if (process.argv[2]) {
  main(process.argv[2]).catch((e: Error) => {
    say(`log child failed: ${e.stack ?? e.message}`);
    process.exit(1);
  });
}
