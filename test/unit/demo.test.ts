// `npm start` as a newcomer runs it: the built appliance on the simulated board's demo traffic,
// watched through its --json reports.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

import { fateIdentityHolds, type CounterSnapshot } from "../../host/engine/counters.js";
import type { ConfigInput } from "../../host/config/schema.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url)); // from build/test/unit/
const MAIN = join(ROOT, "build", "host", "main.js");
const DEMO_CONFIG = join(ROOT, "board", "sim", "demo-config.json");

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function runMain(args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, [MAIN, ...args], { timeout: 60_000, maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : null) : 0;
      done({ code, stdout, stderr });
    });
  });
}

interface Report {
  t: number;
  final: boolean;
  fateIdentity: boolean;
  counters: CounterSnapshot;
}

describe("demo: npm start on the simulated board", () => {
  let run: Run;
  let reports: Report[];
  let demo: ConfigInput;

  before(async () => {
    demo = JSON.parse(await readFile(DEMO_CONFIG, "utf8")) as ConfigInput;
    run = await runMain(["--duration", "3", "--json"]);
    reports = run.stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as Report);
  });

  it("stops by itself after --duration with exit status 0", () => {
    assert.equal(run.code, 0, `stderr:\n${run.stderr}`);
    assert.equal(reports.at(-1)?.final, true, "the last report is marked final");
  });

  it("prints one JSON report per second, at least two", () => {
    assert.ok(reports.length >= 2, `${reports.length} reports:\n${run.stdout}`);
  });

  it("moves every fate: frames are received, transmitted, punted and dropped all the time", () => {
    const first = reports[0].counters;
    const last = reports.at(-1)!.counters;
    for (const k of ["rx", "tx", "punt", "drop"] as const) {
      assert.ok(last[k] > first[k], `${k}: ${first[k]} in the first report, ${last[k]} in the last`);
    }
  });

  it("gives every service of the demo config new flows", () => {
    const last = reports.at(-1)!.counters;
    for (const s of demo.services ?? []) {
      assert.ok((last.services[s.name]?.newFlows ?? 0) > 0, `service ${s.name}: ${JSON.stringify(last.services[s.name])}`);
    }
  });

  it("translates the NAT service's return traffic back to the clients", () => {
    // DSR and tunnel replies bypass the appliance; all that leaves on the client port is NAT return
    const nat = (demo.services ?? []).filter((s) => s.mode === "nat");
    assert.ok(nat.length > 0, "the demo config has a NAT service");
    const clientPort = demo.ports.find((p) => p.gatewayMac)!.name;
    const last = reports.at(-1)!.counters;
    assert.ok(last.ports[clientPort].txPackets > 0, `port ${clientPort}: ${JSON.stringify(last.ports[clientPort])}`);
    assert.equal(last.drops.no_neighbor ?? 0, 0, "NAT replies found the router");
  });

  it("keeps the fate identity: every frame taken in ended exactly once", () => {
    const last = reports.at(-1)!;
    assert.ok(last.fateIdentity, "the report says so");
    assert.ok(fateIdentityHolds(last.counters), `counters: ${JSON.stringify(last.counters)}`);
    assert.doesNotMatch(run.stderr, /FATE IDENTITY/);
  });
});

describe("demo: --config with an invalid file", () => {
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flowswitch-demo-"));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("exits 2 and names the path of the bad value", async () => {
    const config = JSON.parse(await readFile(DEMO_CONFIG, "utf8")) as ConfigInput;
    config.ports[1].mac = "02:f5:00:00:00:zz";
    const file = join(dir, "bad-mac.json");
    await writeFile(file, JSON.stringify(config, null, 2));
    const r = await runMain(["--config", file, "--duration", "1"]);
    assert.equal(r.code, 2, `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    assert.match(r.stderr, /ports\[1\]\.mac: "02:f5:00:00:00:zz": expected a MAC address/);
    assert.equal(r.stdout, "", "nothing runs");
  });

  it("exits 2 for a file that is not there, saying so", async () => {
    const r = await runMain(["--config", join(dir, "missing.json"), "--duration", "1"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing\.json.*\n.*cannot read it/);
  });
});
