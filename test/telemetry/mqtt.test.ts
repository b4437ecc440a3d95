// Telemetry against real peers: a mosquitto broker started here with a password file and a TLS
// listener (a CA and server certificate made by openssl), watched with mosquitto_sub; the
// appliance booted on the simulated board in a child process (helpers/appliance-child.ts) so that
// it can be SIGKILLed. Also: the embedded broker (no URL), and the bounded event queue.
import { freeTcpPort as freePort } from "../lib/ports.js";
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { createServer, connect, type Server } from "node:net";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { decode as cborDecode } from "cbor-x";
import { Aedes } from "aedes";
import { startTelemetry, type MetricsPayload } from "../../host/telemetry/index.js";
import { BoxEvents, type BoxView, type BoxEvent } from "../../host/observe.js";
import { TELEMETRY_DEFAULTS, type ConfigInput, type TelemetryConfig } from "../../host/config/schema.js";
import { CHILD } from "./helpers/appliance-child.js";

const HERE = dirname(fileURLToPath(import.meta.url));
const CHILD_JS = join(HERE, "helpers", "appliance-child.js");
const USER = "fsw-telemetry";
const PASS = "s3cret pass";
const SITE = "lab";
const HOST = "mqtt-box";
const WAIT_MS = 10_000;

const dir = await mkdtemp(join(tmpdir(), "fsw-mqtt-"));
const children = new Set<ChildProcess>();
const servers = new Set<Server>();
after(async () => {
  for (const c of children) c.kill("SIGKILL");
  for (const s of servers) s.close();
  await rm(dir, { recursive: true, force: true });
});

function track(c: ChildProcess): ChildProcess {
  children.add(c);
  c.on("exit", () => children.delete(c));
  return c;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, get: () => T | undefined, ms = WAIT_MS, more = (): string => ""): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = get();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) assert.fail(`no ${what} within ${ms} ms${more()}`);
    await sleep(20);
  }
}


async function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => (s.destroy(), resolve(true)));
    s.once("error", () => resolve(false));
  });
}

// ---- the broker: CA, server certificate, password file, configuration -------------------------

const pem = (name: string): string => join(dir, name);
const ssl = (...args: string[]): void => void execFileSync("openssl", args, { stdio: "pipe" });
ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=flowswitch test CA", "-keyout", pem("ca.key"), "-out", pem("ca.pem"));
ssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", pem("server.key"), "-out", pem("server.csr"));
await writeFile(pem("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
ssl("x509", "-req", "-in", pem("server.csr"), "-CA", pem("ca.pem"), "-CAkey", pem("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", pem("ext.cnf"), "-out", pem("server.pem"));
execFileSync("mosquitto_passwd", ["-b", "-c", pem("passwd"), USER, PASS], { stdio: "pipe" });

const brokerPort = await freePort();
await writeFile(pem("mosquitto.conf"), [
  ...(process.getuid?.() === 0 ? ["user root"] : []), // as root it would drop to a user that cannot read the temp dir
  "persistence true", // a watcher's session (and what it missed) survives the broker's restart
  `persistence_location ${dir}/`,
  "per_listener_settings false",
  "allow_anonymous false",
  `password_file ${pem("passwd")}`,
  `listener ${brokerPort} 127.0.0.1`,
  `cafile ${pem("ca.pem")}`,
  `certfile ${pem("server.pem")}`,
  `keyfile ${pem("server.key")}`,
  "",
].join("\n"));

let brokerLog = "";
async function startBroker(): Promise<ChildProcess> {
  const p = track(spawn("mosquitto", ["-c", pem("mosquitto.conf")], { stdio: ["ignore", "pipe", "pipe"] }));
  p.stdout!.on("data", (d: Buffer) => void (brokerLog += d.toString()));
  p.stderr!.on("data", (d: Buffer) => void (brokerLog += d.toString()));
  const deadline = Date.now() + WAIT_MS;
  while (!(await accepts(brokerPort))) {
    if (p.exitCode !== null || Date.now() > deadline) assert.fail(`mosquitto did not start:\n${brokerLog}`);
    await sleep(30);
  }
  return p;
}

async function stopProcess(p: ChildProcess, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill(signal);
  await Promise.race([exited, sleep(5000)]);
  if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
}

// ---- mosquitto_sub ---------------------------------------------------------------------------

interface Message { retained: boolean; topic: string; payload: Buffer }

class Watcher {
  readonly messages: Message[] = [];
  private subscribed = false;
  private out = "";
  private readonly proc: ChildProcess;

  /** With a session name: a persistent session (-c), so QoS 1 messages wait for it while it is away. */
  constructor(port: number, tls: boolean, session?: string) {
    const auth = tls ? ["--cafile", pem("ca.pem"), "-u", USER, "-P", PASS] : [];
    const keep = session ? ["-c", "-i", session] : [];
    this.proc = track(spawn("mosquitto_sub", ["-h", "127.0.0.1", "-p", String(port), ...auth, ...keep, "-q", "1", "-t", "flowswitch/#", "-d", "-F", "%r %t %x"], { stdio: ["ignore", "pipe", "pipe"] }));
    let partial = "";
    this.proc.stdout!.on("data", (d: Buffer) => {
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop()!;
      for (const line of lines) {
        this.out += `${line}\n`;
        if (line.startsWith("Subscribed (mid")) this.subscribed = true;
        const m = /^([01]) (\S+) ([0-9a-f]*)$/.exec(line);
        if (m) this.messages.push({ retained: m[1] === "1", topic: m[2], payload: Buffer.from(m[3], "hex") });
      }
    });
    this.proc.stderr!.on("data", (d: Buffer) => void (this.out += d.toString()));
  }

  async ready(): Promise<this> {
    await until("SUBACK from mosquitto_sub", () => this.subscribed, WAIT_MS, () => `\n${this.out}`);
    return this;
  }

  find(pred: (m: Message) => boolean, from = 0): Message | undefined {
    return this.messages.slice(from).find(pred);
  }

  wait(what: string, pred: (m: Message) => boolean, from = 0): Promise<Message> {
    return until(what, () => this.find(pred, from), WAIT_MS, () => `\nmosquitto_sub saw:\n${this.messages.map((m) => `${m.retained ? "retained " : ""}${m.topic} ${m.payload.toString().slice(0, 300)}`).join("\n")}`);
  }

  async close(): Promise<void> {
    await stopProcess(this.proc);
  }
}

const topic = (site: string, host: string, leaf: string): string => `flowswitch/${site}/${host}/${leaf}`;
const json = (m: Message): unknown => JSON.parse(m.payload.toString());

// ---- the appliance child ---------------------------------------------------------------------

class Box {
  readonly lines: string[] = [];
  readonly proc: ChildProcess;
  counters?: { ports: { name: string; rxPackets: number; txPackets: number }[]; services: { name: string; packets: number; newFlows: number }[]; totals: Record<string, number> };

  constructor(configPath: string) {
    this.proc = track(spawn(process.execPath, [CHILD_JS, configPath], { stdio: ["ignore", "pipe", "pipe"] }));
    let partial = "";
    const take = (d: Buffer): void => {
      const lines = (partial + d.toString()).split("\n");
      partial = lines.pop()!;
      for (const l of lines) {
        this.lines.push(l);
        if (l.startsWith("counters ")) this.counters = JSON.parse(l.slice(9)) as Box["counters"];
      }
    };
    this.proc.stdout!.on("data", take);
    this.proc.stderr!.on("data", take);
  }

  log = (): string => `\nappliance said:\n${this.lines.join("\n")}\nmosquitto said:\n${brokerLog}`;

  has(re: RegExp, from = 0): boolean {
    return this.lines.slice(from).some((l) => re.test(l));
  }
}

async function listen(): Promise<Server> {
  const s = createServer((c) => c.destroy());
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  servers.add(s);
  return s;
}

async function applianceConfig(name: string, healthPort: number): Promise<string> {
  const config: ConfigInput = {
    system: { hostname: HOST },
    ports: [{ name: "client", mac: CHILD.clientMac, gatewayMac: CHILD.routerMac }, { name: "server", mac: CHILD.serverMac }],
    dataplane: { flows: { ipv4: 4096, ipv6: 256 }, limits: { services: 2, backends: 4 }, buffers: { count: 512 }, engines: 1, noVip: "drop" },
    backends: [{ name: "a", address: "127.0.0.1", mac: CHILD.backendMac, via: "server", check: { type: "tcp", port: healthPort, interval: 0.1, timeout: 0.08, rise: 1, fall: 2 } }],
    services: [{ name: "web", vip: CHILD.vip, protocol: "tcp", port: 80, mode: "dsr", backends: ["a"] }],
    telemetry: { mqtt: { url: `mqtts://127.0.0.1:${brokerPort}`, username: USER, password: PASS, ca: pem("ca.pem"), site: SITE, interval: 0.3 } },
  };
  const path = join(dir, `${name}.json`);
  await writeFile(path, JSON.stringify(config));
  return path;
}

let broker = await startBroker();

test("mqtt: retained online, metrics that match the counters, a backend-down event, and offline as the last will after SIGKILL", async () => {
  const health = await listen();
  const box = new Box(await applianceConfig("kill", (health.address() as { port: number }).port));
  await until("telemetry connected over TLS with username and password", () => box.has(/telemetry: connected to mqtts:/), WAIT_MS, box.log);
  await until("the appliance's counters", () => box.counters, WAIT_MS, box.log);
  const counters = box.counters!;
  assert.ok(counters.totals.rx >= CHILD.frames, `frames went through: ${JSON.stringify(counters.totals)}`);

  const w = await new Watcher(brokerPort, true).ready();
  const state = await w.wait("retained state", (m) => m.topic === topic(SITE, HOST, "state"));
  assert.equal(state.payload.toString(), "online");
  assert.ok(state.retained, "state is retained: a late subscriber learns it at once");

  const metrics = await w.wait("metrics matching the appliance's counters", (m) => {
    if (m.topic !== topic(SITE, HOST, "metrics")) return false;
    const p = json(m) as MetricsPayload;
    return p.ports.every((port) => {
      const k = counters.ports.find((x) => x.name === port.name);
      return k !== undefined && k.rxPackets === port.rxPackets && k.txPackets === port.txPackets;
    }) && p.services[0]?.packets === counters.services[0].packets && p.totals.rx === counters.totals.rx;
  });
  const p = json(metrics) as MetricsPayload;
  assert.equal(p.hostname, HOST);
  assert.equal(p.site, SITE);
  assert.equal(p.ha, "standalone");
  assert.deepEqual(p.ports.map((x) => x.name), ["client", "server"]);
  assert.equal(p.services[0].name, "web");
  assert.equal(p.services[0].newFlows, counters.services[0].newFlows);
  assert.equal(p.backends[0].name, "a");
  assert.equal(p.engines.length, 1);
  assert.ok(p.flowTable.ipv4Capacity >= 4096 && p.flowTable.ipv4Used > 0, JSON.stringify(p.flowTable));
  assert.ok(Math.abs(p.time - Date.now()) < 60_000);

  const mark = w.messages.length;
  await new Promise((r) => health.close(r));
  const ev = await w.wait("a backend-down event", (m) => m.topic === topic(SITE, HOST, "events") && (json(m) as BoxEvent).type === "backend-down", mark);
  const e = json(ev) as { backend: string; reason: string };
  assert.equal(e.backend, "a");
  assert.match(e.reason, /refused/);
  const down = await w.wait("metrics showing the backend down", (m) => m.topic === topic(SITE, HOST, "metrics") && (json(m) as MetricsPayload).backends[0].health === "down", mark);
  assert.ok(down);

  const before = w.messages.length;
  await stopProcess(box.proc, "SIGKILL");
  const will = await w.wait("offline (the last will)", (m) => m.topic === topic(SITE, HOST, "state") && m.payload.toString() === "offline", before);
  assert.ok(will);
  await w.close();
  const late = await new Watcher(brokerPort, true).ready();
  const retained = await late.wait("retained offline for a late subscriber", (m) => m.topic === topic(SITE, HOST, "state"));
  assert.equal(retained.payload.toString(), "offline");
  assert.ok(retained.retained);
  await late.close();
});

test("mqtt: the broker restarted mid-run: the appliance reconnects with backoff, metrics resume, events held meanwhile arrive; SIGTERM publishes offline", async () => {
  const health = await listen();
  const box = new Box(await applianceConfig("restart", (health.address() as { port: number }).port));
  await until("telemetry connected", () => box.has(/telemetry: connected to mqtts:/), WAIT_MS, box.log);
  // a persistent session: what the box publishes at QoS 1 before w2 is back is kept for it
  const w1 = await new Watcher(brokerPort, true, "fsw-watch-restart").ready();
  await w1.wait("metrics before the restart", (m) => m.topic === topic(SITE, HOST, "metrics"));
  await w1.close();

  const mark = box.lines.length;
  await stopProcess(broker);
  await until("the appliance noticing the broker gone", () => box.has(/telemetry: lost the broker/, mark), WAIT_MS, box.log);
  await new Promise((r) => health.close(r)); // backend-down while the broker is away: held in the queue
  await until("backend a down", () => box.has(/backend a down/, mark), WAIT_MS, box.log);
  await sleep(500);

  broker = await startBroker();
  const restartedAt = Date.now();
  await until("telemetry reconnected", () => box.has(/telemetry: connected to mqtts:/, mark), 40_000, box.log);
  // only now does the watcher come back: the held event reached the broker before it did
  const w2 = await new Watcher(brokerPort, true, "fsw-watch-restart").ready();
  const online = await w2.wait("online again after the restart", (m) => m.topic === topic(SITE, HOST, "state") && m.payload.toString() === "online");
  assert.ok(online);
  await w2.wait("metrics resumed", (m) => m.topic === topic(SITE, HOST, "metrics") && (json(m) as MetricsPayload).time >= restartedAt);
  const held = await w2.wait("the backend-down event held during the outage", (m) => m.topic === topic(SITE, HOST, "events") && (json(m) as BoxEvent).type === "backend-down");
  assert.ok((json(held) as BoxEvent).at < restartedAt, "it happened while the broker was away");

  const before = w2.messages.length;
  await stopProcess(box.proc, "SIGTERM");
  assert.ok(box.has(/^stopped$/), `clean stop${box.log()}`);
  const off = await w2.wait("offline on a clean stop", (m) => m.topic === topic(SITE, HOST, "state") && m.payload.toString() === "offline", before);
  assert.ok(off);
  await w2.close();
});

// ---- in-process: the embedded broker and the bounded queue -----------------------------------

function stubView(events: BoxEvents): BoxView {
  return {
    hostname: () => "stub", uptimeMs: () => 1234, version: () => "test",
    ports: () => [{ index: 0, name: "p0", device: "p0", mac: "02:00:00:00:00:01", mtu: 1500, up: true, rxPackets: 7, rxBytes: 700, txPackets: 5, txBytes: 500, drops: 2 }],
    services: () => [], backends: () => [], engines: () => [],
    flowTable: () => ({ ipv4Used: 1, ipv4Capacity: 16, ipv6Used: 0, ipv6Capacity: 16 }),
    ha: () => "standalone",
    counters: () => ({ rx: 7, tx: 5, punt: 0, drop: 2 }) as ReturnType<BoxView["counters"]>,
    discovery: () => undefined,
    events,
  };
}

function telemetryConfig(mqtt: Partial<TelemetryConfig["mqtt"]>, port: number): TelemetryConfig {
  return {
    enabled: true,
    mqtt: { site: "default", intervalMs: 200, format: TELEMETRY_DEFAULTS.format, eventBuffer: TELEMETRY_DEFAULTS.eventBuffer, ...mqtt },
    embeddedBroker: { address: "127.0.0.1", port },
  };
}

test("mqtt: no URL: the appliance runs its own broker, which mosquitto_sub can watch (CBOR payloads when asked)", async () => {
  const port = await freePort();
  const events = new BoxEvents();
  const logs: string[] = [];
  const t = await startTelemetry(telemetryConfig({ format: "cbor" }, port), stubView(events), (l) => void logs.push(l));
  try {
    await until("connected to the embedded broker", () => t.stats().connected, WAIT_MS, () => logs.join("\n"));
    const w = await new Watcher(port, false).ready();
    const state = await w.wait("retained online", (m) => m.topic === "flowswitch/default/stub/state");
    assert.equal(state.payload.toString(), "online");
    assert.ok(state.retained);
    const m = await w.wait("metrics", (x) => x.topic === "flowswitch/default/stub/metrics");
    const p = cborDecode(m.payload) as MetricsPayload;
    assert.equal(p.hostname, "stub");
    assert.equal(p.ports[0].rxPackets, 7);
    assert.deepEqual(p.totals, { rx: 7, tx: 5, punt: 0, drop: 2 });
    assert.ok(!("discovery" in p), "no discovery configured: no discovery key");
    events.emit({ type: "login-failure", user: "root", failures: 3, at: 42 });
    const ev = await w.wait("an event", (x) => x.topic === "flowswitch/default/stub/events");
    assert.deepEqual(cborDecode(ev.payload), { type: "login-failure", user: "root", failures: 3, at: 42 });
    await w.close();
  } finally {
    await t.stop();
  }
  assert.equal(await accepts(port), false, "the embedded broker is closed by stop()");
});

test("mqtt: while the broker is away, events queue up to eventBuffer, the rest are dropped and counted; nothing blocks", async () => {
  const port = await freePort();
  const events = new BoxEvents();
  const logs: string[] = [];
  const t = await startTelemetry(telemetryConfig({ url: `mqtt://127.0.0.1:${port}`, eventBuffer: 5 }, port), stubView(events), (l) => void logs.push(l));
  try {
    const t0 = performance.now();
    for (let i = 0; i < 12; i++) events.emit({ type: "commit", seq: i, user: "admin", at: i });
    assert.ok(performance.now() - t0 < 100, "emitting never waits for the broker");
    assert.deepEqual(t.stats(), { connected: false, published: 0, eventsDropped: 7 });

    // a broker appears; it subscribes before it listens, so it sees everything the box sends
    const broker = await Aedes.createBroker();
    const got: BoxEvent[] = [];
    await new Promise<void>((r) => broker.subscribe("flowswitch/default/stub/events", (pkt, cb) => {
      got.push(JSON.parse(pkt.payload.toString()) as BoxEvent);
      cb();
    }, r));
    const server = createServer(broker.handle);
    await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
    try {
      await until("the five held events delivered after reconnecting", () => got.length >= 5, 15_000, () => logs.join("\n"));
      assert.deepEqual(got.map((e) => (e as { seq: number }).seq), [0, 1, 2, 3, 4], "in order, the first five kept");
      assert.equal(t.stats().eventsDropped, 7);
      // the broker has them; the publisher counts each once its acknowledgement is back
      await until("the five counted as published", () => t.stats().published >= 5, 5000, () => JSON.stringify(t.stats()));
    } finally {
      await t.stop();
      await new Promise<void>((r) => broker.close(() => r()));
      server.close();
    }
  } finally {
    await t.stop();
  }
});
