// flowswitch-agent as a server runs it: a config file, a child process, and an appliance's-eye view
// of what it sends (a UDP socket decoding with the protocol's own decoder and the shared key).
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { createServer as createTcpServer, createConnection, type Server, type Socket } from "node:net";
import { createServer as createHttpServer } from "node:http";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decode, type Message } from "../../host/discovery/protocol.js";
import { countEstablished } from "../../tools/agent/load.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLI = join(ROOT, "build/tools/flowswitch-agent.js");
const SECRET = "3f".repeat(32);
const KEYS = new Map([[7, new Uint8Array(Buffer.from(SECRET, "hex"))]]);
const INTERVAL_MS = 100;
/** Bound on any single wait in this file. */
const WAIT_MS = 10_000;

interface Heard {
  msg: Message;
  seq: number;
  at: number;
  raw: Buffer;
}

/** An appliance stand-in: every datagram decoded with the shared key; a waiter per condition. */
class Listener {
  readonly heard: Heard[] = [];
  readonly refused: string[] = [];
  private waiters: (() => void)[] = [];
  private constructor(readonly socket: UdpSocket) {
    socket.on("message", (raw) => {
      const r = decode(raw, KEYS);
      if (r.ok) this.heard.push({ msg: r.msg, seq: r.seq, at: Date.now(), raw });
      else this.refused.push(`${r.reason}: ${r.detail}`);
      for (const w of this.waiters) w();
    });
  }
  static async open(): Promise<Listener> {
    const s = createSocket("udp4");
    await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
    return new Listener(s);
  }
  get port(): number {
    return this.socket.address().port;
  }
  of<T extends Message["type"]>(type: T, state?: string): Extract<Message, { type: T }>[] {
    return this.heard.map((h) => h.msg).filter((m): m is Extract<Message, { type: T }> => m.type === type && (state === undefined || (m as { state?: string }).state === state));
  }
  until(what: string, cond: () => boolean): Promise<void> {
    return new Promise((ok, fail) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== check);
        ok();
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== check);
        fail(new Error(`timed out waiting for ${what}; heard ${this.heard.map((h) => h.msg.type + ("state" in h.msg ? `/${h.msg.state}` : "")).join(" ")}`));
      }, WAIT_MS);
      this.waiters.push(check);
      check();
    });
  }
  close(): void {
    this.socket.close();
  }
}

interface Setup {
  dir: string;
  file: string;
  listener: Listener;
  service: Server;
  servicePort: number;
}

async function setup(extra: Record<string, unknown> = {}): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), "fsw-agent-"));
  const listener = await Listener.open();
  const service = createTcpServer((s) => s.on("error", () => {}));
  await new Promise<void>((r) => service.listen(0, "127.0.0.1", () => r()));
  const servicePort = (service.address() as { port: number }).port;
  const file = join(dir, "agent.json");
  const config = {
    id: "web1",
    addresses: ["10.77.3.11", "fd77:3::11"],
    key: { id: 7, secret: SECRET },
    unicast: ["127.0.0.1"],
    port: listener.port,
    intervalMs: INTERVAL_MS,
    controlSocket: join(dir, "agent.sock"),
    services: [
      { vip: "10.77.0.10", protocol: "tcp", port: servicePort, weight: 10, capacity: 500 },
      { vip: "10.77.0.10", protocol: "udp", port: 53 },
    ],
    ...extra,
  };
  await writeFile(file, JSON.stringify(config));
  return { dir, file, listener, service, servicePort };
}

async function teardown(s: Setup, ...children: (ChildProcess | undefined)[]): Promise<void> {
  for (const c of children) if (c && c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  s.listener.close();
  s.service.close();
  await rm(s.dir, { recursive: true, force: true });
}

function start(args: string[]): { child: ChildProcess; stderr: () => string; stdout: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let err = "";
  let out = "";
  child.stderr!.on("data", (d) => (err += d));
  child.stdout!.on("data", (d) => (out += d));
  const exited = new Promise<number | null>((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${args[0]} did not exit within ${WAIT_MS} ms; stderr: ${err}`)), WAIT_MS);
    child.on("exit", (code) => {
      clearTimeout(timer);
      ok(code);
    });
  });
  exited.catch(() => {}); // awaited by the tests that care
  return { child, stderr: () => err, stdout: () => out, exited };
}

function connect(port: number): Promise<Socket> {
  return new Promise((ok, fail) => {
    const c = createConnection(port, "127.0.0.1", () => ok(c));
    c.on("error", fail);
  });
}

test("agent: SERVICE and LOAD every interval, increasing sequence numbers, the configured services, load from the OS", async () => {
  const health = createHttpServer((_, res) => res.end("ok"));
  await new Promise<void>((r) => health.listen(0, "127.0.0.1", () => r()));
  const healthPort = (health.address() as { port: number }).port;
  const s = await setup({ probe: { url: `http://127.0.0.1:${healthPort}/health`, timeoutMs: 1000 } });
  const conn = await connect(s.servicePort);
  const startedAt = Date.now();
  const agent = start(["run", "--config", s.file]);
  try {
    await s.listener.until("5 SERVICE and 5 LOAD", () => s.listener.of("service").length >= 5 && s.listener.of("load").length >= 5);
    const services = s.listener.of("service");
    for (const m of services) {
      assert.equal(m.endSystem, "web1");
      assert.equal(m.state, "up");
      assert.equal(m.intervalMs, INTERVAL_MS);
      assert.deepEqual(m.addresses, ["10.77.3.11", "fd77:3::11"]);
      assert.deepEqual(m.services, [
        { vip: "10.77.0.10", protocol: 6, port: s.servicePort, weight: 10, capacity: 500 },
        { vip: "10.77.0.10", protocol: 17, port: 53, weight: 1, capacity: 0 },
      ]);
    }
    // Sequence numbers start at the clock in ms and go up by one per datagram.
    const seqs = s.listener.heard.map((h) => h.seq);
    assert.ok(seqs[0]! >= startedAt - 1000, `first seq ${seqs[0]} starts at the clock (${startedAt})`);
    for (let i = 1; i < seqs.length; i++) assert.equal(seqs[i], seqs[i - 1]! + 1);
    // Every interval, not in a burst: 5 SERVICE messages span at least 4 intervals (less some timer slack).
    const serviceTimes = s.listener.heard.filter((h) => h.msg.type === "service").map((h) => h.at);
    assert.ok(serviceTimes[4]! - serviceTimes[0]! >= 4 * INTERVAL_MS * 0.8, `SERVICE spacing ${serviceTimes[4]! - serviceTimes[0]!} ms`);
    const load = s.listener.of("load").at(-1)!;
    assert.equal(load.endSystem, "web1");
    assert.ok(load.cpu >= 0 && load.cpu <= 100);
    assert.equal(load.connections, 1, "the one connection to the served TCP port");
    assert.ok(load.responseTimeUs > 0 && load.responseTimeUs < 1_000_000, `probe took ${load.responseTimeUs} us`);
    // A receiver with another secret, or without key 7, refuses the same datagrams.
    const raw = s.listener.heard[0]!.raw;
    const wrongSecret = decode(raw, new Map([[7, new Uint8Array(32).fill(1)]]));
    assert.equal(wrongSecret.ok, false);
    assert.equal(!wrongSecret.ok && wrongSecret.reason, "bad-mac");
    const wrongId = decode(raw, new Map([[8, KEYS.get(7)!]]));
    assert.equal(!wrongId.ok && wrongId.reason, "unknown-key");
    assert.deepEqual(s.listener.refused, []);
  } finally {
    conn.destroy();
    health.close();
    await teardown(s, agent.child);
  }
});

test("agent: drain advertises draining while connections are open, then leaving three times with flow withdraws, and exits", async () => {
  const flow = { pattern: { vip: "10.77.0.10", protocol: 6, dstPorts: { first: 443, last: 443 } }, attributes: { dscp: 46 } };
  const s = await setup({ flows: [flow] });
  const conn = await connect(s.servicePort);
  const agent = start(["run", "--config", s.file]);
  let drain: ReturnType<typeof start> | undefined;
  try {
    await s.listener.until("SERVICE up and FLOW add", () => s.listener.of("service", "up").length >= 1 && s.listener.of("flow").length >= 1);
    assert.deepEqual(s.listener.of("flow")[0], { type: "flow", op: "add", endSystem: "web1", ...flow });
    drain = start(["drain", "--config", s.file, "--timeout", "8"]);
    await s.listener.until("3 SERVICE draining", () => s.listener.of("service", "draining").length >= 3);
    assert.equal(s.listener.of("service", "leaving").length, 0, "no leaving while a connection is open");
    conn.destroy(); // the last client goes away
    await s.listener.until("3 SERVICE leaving", () => s.listener.of("service", "leaving").length >= 3);
    assert.equal(await drain.exited, 0, drain.stderr());
    assert.equal(await agent.exited, 0, agent.stderr());
    assert.match(drain.stdout(), /draining: 1 connection/);
    assert.match(drain.stdout(), /leaving: connections ended\nleft/);
    const types = s.listener.heard.map((h) => (h.msg.type === "service" ? h.msg.state : h.msg.type === "flow" ? `flow-${h.msg.op}` : h.msg.type));
    const firstDrain = types.indexOf("draining");
    const firstLeave = types.indexOf("leaving");
    assert.ok(firstDrain > 0 && firstLeave > firstDrain);
    assert.ok(!types.slice(firstDrain).includes("up") && !types.slice(firstDrain).includes("flow-add"), types.join(" "));
    assert.ok(types.slice(firstLeave).includes("flow-withdraw"));
    assert.equal(types.at(-1), "leaving");
    assert.equal(s.listener.of("service", "leaving").length, 3);
  } finally {
    conn.destroy();
    await teardown(s, agent.child, drain?.child);
  }
});

test("agent: SIGTERM drains too, and leaves when the drain timeout passes with a connection still open", async () => {
  const s = await setup({ drainTimeoutS: 1 });
  const conn = await connect(s.servicePort);
  const agent = start(["run", "--config", s.file]);
  try {
    await s.listener.until("SERVICE up", () => s.listener.of("service", "up").length >= 1);
    agent.child.kill("SIGTERM");
    await s.listener.until("SERVICE leaving x3", () => s.listener.of("service", "leaving").length >= 3);
    assert.equal(await agent.exited, 0, agent.stderr());
    assert.ok(s.listener.of("service", "draining").length >= 1);
    assert.match(agent.stderr(), /leaving \(timeout with 1 connection/);
  } finally {
    conn.destroy();
    await teardown(s, agent.child);
  }
});

test("agent: a bad config file exits 2 naming each bad path; drain with no agent running exits 1", async () => {
  const s = await setup({ intervalMs: 5, services: [{ vip: "10.77.0.10", protocol: "tcp", port: 70000 }] });
  try {
    for (const cmd of ["run", "check", "drain"]) {
      const r = start([cmd, "--config", s.file]);
      assert.equal(await r.exited, 2, cmd);
      assert.match(r.stderr(), /intervalMs: got 5, expected an integer 100-600000/);
      assert.match(r.stderr(), /services\[0\]\.port: got 70000, expected .*0-65535/);
    }
    await writeFile(s.file, JSON.stringify({ id: "web1", addresses: ["10.77.3.11"], key: { id: 1, secret: SECRET }, services: [], controlSocket: join(s.dir, "none.sock") }));
    const d = start(["drain", "--config", s.file, "--timeout", "1"]);
    assert.equal(await d.exited, 1);
    assert.match(d.stderr(), /no agent is running/);
  } finally {
    await teardown(s);
  }
});

test("agent: ESTABLISHED rows of /proc/net/tcp are counted by local port", () => {
  const text = [
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode",
    "   0: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1",
    "   1: 0100007F:0050 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1",
    "   2: 0100007F:C350 0100007F:0050 01 00000000:00000000 00:00000000 00000000     0        0 3 1",
    "   3: 0100007F:0050 0100007F:C351 06 00000000:00000000 00:00000000 00000000     0        0 4 1",
  ].join("\n");
  assert.equal(countEstablished(text, new Set([80])), 1, "listening, client side and TIME_WAIT rows are not counted");
  assert.equal(countEstablished(text, null), 2);
});

