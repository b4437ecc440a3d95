// flowswitch-supervisor as an operator runs it, with a real flowswitch-agent: child processes and
// UDP sockets on 127.0.0.1. The agent registers, adopts the supervisor's interval and leases
// numbers; the supervisor relays the agent's advertisements unchanged to a relay target; a bad
// config on SIGHUP changes nothing; the leases survive a restart in the state file, and a corrupt
// state file stops the supervisor from starting.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { decode, encode, type Message, type NumberGrantMsg, type ServerListReplyMsg } from "../../host/discovery/protocol.js";
import { parseLeaseState } from "../../host/discovery/lease-store.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const SUPERVISOR = join(ROOT, "build/tools/flowswitch-supervisor.js");
const AGENT = join(ROOT, "build/tools/flowswitch-agent.js");
const SECRET = "5e".repeat(32);
const KEY = { id: 3, secret: new Uint8Array(Buffer.from(SECRET, "hex")) };
const KEYS = new Map([[KEY.id, KEY.secret]]);
/** Bound on any single wait in this file. */
const WAIT_MS = 10_000;

const dir = await mkdtemp(join(tmpdir(), "fsw-supervisor-"));
const children: ChildProcess[] = [];
const sockets: UdpSocket[] = [];
after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  for (const s of sockets) s.close();
  await rm(dir, { recursive: true, force: true });
});

interface Heard {
  raw: Buffer;
  msg?: Message;
  seq?: number;
  from: { address: string; port: number };
}

/** A UDP socket that records what it hears; a waiter per condition, bounded in time. */
class Ear {
  readonly heard: Heard[] = [];
  private waiters: (() => void)[] = [];
  constructor(readonly socket: UdpSocket) {
    sockets.push(socket);
    socket.on("message", (raw, rinfo) => {
      const r = decode(raw, KEYS);
      this.heard.push({ raw, msg: r.ok ? r.msg : undefined, seq: r.ok ? r.seq : undefined, from: { address: rinfo.address, port: rinfo.port } });
      for (const w of [...this.waiters]) w();
    });
  }
  static async open(address = "127.0.0.1", port = 0): Promise<Ear> {
    const s = createSocket("udp4");
    await new Promise<void>((ok, fail) => {
      s.once("error", fail);
      s.bind(port, address, () => ok());
    });
    return new Ear(s);
  }
  get port(): number {
    return this.socket.address().port;
  }
  of<T extends Message["type"]>(type: T): (Heard & { msg: Extract<Message, { type: T }> })[] {
    return this.heard.filter((h): h is Heard & { msg: Extract<Message, { type: T }> } => h.msg?.type === type);
  }
  until(what: string, cond: () => boolean): Promise<void> {
    return waitFor(what, cond, (w) => this.waiters.push(w), (w) => (this.waiters = this.waiters.filter((x) => x !== w)));
  }
}

function waitFor(what: string, cond: () => boolean, add: (w: () => void) => void, remove: (w: () => void) => void, extra = (): string => ""): Promise<void> {
  return new Promise((ok, fail) => {
    const check = (): void => {
      if (!cond()) return;
      clearTimeout(timer);
      remove(check);
      ok();
    };
    const timer = setTimeout(() => {
      remove(check);
      fail(new Error(`timed out waiting for ${what}${extra()}`));
    }, WAIT_MS);
    add(check);
    check();
  });
}

interface Proc {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  /** Resolves with the exit code; fails if the process has not exited within WAIT_MS from now. */
  readonly exited: Promise<number | null>;
  /** Resolves once stderr matches. */
  says(re: RegExp): Promise<void>;
}

function start(cli: string, args: string[]): Proc {
  const child = spawn(process.execPath, [cli, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let err = "";
  let out = "";
  let waiters: (() => void)[] = [];
  child.stderr!.on("data", (d) => {
    err += d;
    for (const w of [...waiters]) w();
  });
  child.stdout!.on("data", (d) => (out += d));
  const exit = new Promise<number | null>((ok) => child.on("exit", (code) => {
    for (const w of [...waiters]) w();
    ok(code);
  }));
  const bounded = (): Promise<number | null> => new Promise((ok, fail) => {
    const timer = setTimeout(() => fail(new Error(`${cli} ${args.join(" ")} did not exit within ${WAIT_MS} ms; stderr: ${err}`)), WAIT_MS);
    void exit.then((code) => {
      clearTimeout(timer);
      ok(code);
    });
  });
  const says = (re: RegExp): Promise<void> =>
    waitFor(`${re} from ${cli.split("/").pop()}`, () => re.test(err), (w) => waiters.push(w), (w) => (waiters = waiters.filter((x) => x !== w)), () => `; stderr:\n${err}`);
  return { child, stderr: () => err, stdout: () => out, get exited() { return bounded(); }, says };
}

/** A UDP port free now on 127.0.0.1 (and 127.0.0.2, for the witness). */
async function freePort(): Promise<number> {
  for (;;) {
    const a = await Ear.open("127.0.0.1");
    const port = a.port;
    a.socket.close();
    sockets.splice(sockets.indexOf(a.socket), 1);
    try {
      const b = await Ear.open("127.0.0.2", port);
      b.socket.close();
      sockets.splice(sockets.indexOf(b.socket), 1);
      return port;
    } catch {
      // taken there: another one
    }
  }
}

let seq = Date.now();
/** A request from the test, as an end system would send it; resolves with the answer. */
async function ask(ear: Ear, port: number, msg: Message, sender = "tester"): Promise<Message> {
  const before = ear.heard.length;
  const bytes = encode(msg, KEY, seq++, Date.now(), sender);
  ear.socket.send(bytes, port, "127.0.0.1");
  await ear.until(`an answer to ${msg.type}`, () => ear.heard.length > before);
  const h = ear.heard.at(-1)!;
  assert.ok(h.msg, "the answer verifies");
  return h.msg;
}

const stateFile = join(dir, "state", "leases.json");
const supervisorFile = join(dir, "supervisor.json");
const port = await freePort();
const relayTarget = await Ear.open("127.0.0.3"); // not the agent's address: what comes from a relay target is never relayed
const witness = await Ear.open("127.0.0.2", port);
const tester = await Ear.open();

function supervisorConfig(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    id: "sup1",
    keys: [{ id: KEY.id, secretFile: "key.hex" }],
    listen: { address: "127.0.0.1", port },
    intervalMs: 200,
    pools: [{ name: "ports", first: 40000, last: 40009, maxLeaseS: 4 }],
    relay: [`127.0.0.3:${relayTarget.port}`],
    stateFile: "state/leases.json",
    ...extra,
  };
}
await writeFile(join(dir, "key.hex"), `${SECRET}\n`);
await writeFile(supervisorFile, JSON.stringify(supervisorConfig()));

const agentFile = join(dir, "agent.json");
await writeFile(agentFile, JSON.stringify({
  id: "web1",
  addresses: ["10.77.3.11"],
  key: { id: KEY.id, secret: SECRET },
  port,
  // the supervisor hears the advertisements by unicast (no multicast on loopback); the witness sees the very bytes sent
  unicast: ["127.0.0.1", "127.0.0.2"],
  intervalMs: 100,
  drainTimeoutS: 0,
  controlSocket: join(dir, "agent.sock"),
  services: [{ vip: "10.77.0.10", protocol: "tcp", port: 80, weight: 5 }],
  supervisor: `127.0.0.1:${port}`,
  numbers: [{ pool: "ports", count: 4, leaseS: 60 }],
}));

let sup: Proc | undefined;
let agent: Proc | undefined;
let leased: { leaseId: number; first: number; count: number } | undefined;

test("flowswitch-supervisor starts from its config file and says what it runs", async () => {
  sup = start(SUPERVISOR, ["--config", supervisorFile]);
  await sup.says(/running: supervisor sup1 on 127\.0\.0\.1:\d+; keys 3; interval 200 ms.*pools: ports 40000-40009 \(leases up to 4 s\); leases in .*leases\.json.*relay to: 127\.0\.0\.3:\d+/);
  await sup.says(/number authority started from .*leases\.json: no saved state \(first start\)/);
});

test("a real agent registers, adopts the supervisor's interval, leases its numbers, and shows them in its status", async () => {
  agent = start(AGENT, ["run", "--config", agentFile]);
  await agent.says(/registered with the supervisor 127\.0\.0\.1:\d+: advertising every 200 ms/);
  await agent.says(/advertising every 200 ms \(the supervisor's interval; was 100 ms\)/);
  await agent.says(/lease 1 of pool ports: numbers 40000-40003 for 4 s/);
  await sup!.says(/registered web1 \(10\.77\.3\.11, 1 service\(s\)\) from 127\.0\.0\.1:\d+/);
  await sup!.says(/lease 1 of pool ports: 40000-40003 to web1 for 4 s/);
  leased = { leaseId: 1, first: 40000, count: 4 };
  // renewed at half the (capped) lease
  await sup!.says(/lease 1 of pool ports \(40000-40003\) renewed by web1 for 4 s/);
  const status = start(AGENT, ["status", "--config", agentFile]);
  assert.equal(await status.exited, 0, status.stderr());
  assert.match(status.stdout(), /end system web1: up, advertising every 200 ms/);
  assert.match(status.stdout(), /supervisor 127\.0\.0\.1:\d+: registration accepted/);
  assert.match(status.stdout(), /lease 1 of pool ports: 40000-40003, [0-4] s left/);
  // SERVER-LIST from anyone holding the key: web1 as it advertises
  const list = (await ask(tester, port, { type: "server-list-request", requestId: 1, service: { vip: "10.77.0.10", protocol: 6, port: 80 }, offset: 0 })) as ServerListReplyMsg;
  assert.deepEqual(list.servers, [{ endSystem: "web1", addresses: ["10.77.3.11"], state: "up", weight: 5, capacity: 0 }]);
});

test("the supervisor relays the agent's SERVICE, LOAD and FLOW to the relay target byte for byte", async () => {
  await relayTarget.until("SERVICE and LOAD relayed", () => relayTarget.of("service").length >= 2 && relayTarget.of("load").length >= 1);
  for (const h of relayTarget.heard) {
    assert.ok(h.msg, "the relayed datagram verifies with the end system's key");
    const sent = witness.heard.find((w) => w.seq === h.seq);
    assert.ok(sent, `the witness heard seq ${h.seq} too`);
    assert.ok(sent.raw.equals(h.raw), "unchanged");
    assert.notEqual(h.msg.type, "register");
    assert.notEqual(h.msg.type, "number-request");
  }
  assert.equal(relayTarget.of("service").at(-1)!.msg.intervalMs, 200, "advertising at the adopted interval");
});

test("SIGHUP with a bad file changes nothing; with a good one the change applies", async () => {
  await writeFile(supervisorFile, JSON.stringify(supervisorConfig({ intervalMs: 5, pools: [{ name: "ports", first: 9, last: 1 }] })));
  sup!.child.kill("SIGHUP");
  await sup!.says(/reload refused, still running the previous configuration: intervalMs: got 5, expected an integer 100-600000; pools\[0\]\.last: got 1, expected a number of 9 \(first\) or more/);
  const before = relayTarget.heard.length;
  await relayTarget.until("relays going on", () => relayTarget.heard.length >= before + 3);
  const g = (await ask(tester, port, { type: "number-request", requestId: 1, endSystem: "tester", pool: "ports", op: "lease", count: 1, leaseS: 60 })) as NumberGrantMsg;
  assert.deepEqual([g.status, g.first, g.leaseS], ["granted", 40004, 4], "the pool and its lease limit as before");
  // a good file: a new pool
  await writeFile(supervisorFile, JSON.stringify(supervisorConfig({ pools: [{ name: "ports", first: 40000, last: 40009, maxLeaseS: 4 }, { name: "ids", first: 1, last: 9 }] })));
  sup!.child.kill("SIGHUP");
  await sup!.says(/configuration reloaded: .*pools: ports 40000-40009 \(leases up to 4 s\); ids 1-9/);
  const id = (await ask(tester, port, { type: "number-request", requestId: 2, endSystem: "tester", pool: "ids", op: "lease", count: 2, leaseS: 5 })) as NumberGrantMsg;
  assert.deepEqual([id.status, id.first, id.count], ["granted", 1, 2]);
});

test("the agent releases its lease when it leaves; a restarted supervisor keeps the leases of its state file and holds released numbers back", async () => {
  agent!.child.kill("SIGTERM");
  assert.equal(await agent!.exited, 0, agent!.stderr());
  assert.match(agent!.stderr(), /lease 1 of pool ports released \(40000-40003\)/);
  await sup!.says(/lease 1 of pool ports \(40000-40003\) released by web1, held back 4 s/);
  const saved = parseLeaseState(await readFile(stateFile, "utf8"));
  assert.deepEqual(saved.leases.find((l) => l.leaseId === 1)!, { ...saved.leases.find((l) => l.leaseId === 1)!, pool: "ports", first: 40000, count: 4, released: true, endSystem: "web1" });
  assert.equal(saved.nextLeaseId, 4, "saved before the release was answered");
  sup!.child.kill("SIGTERM");
  assert.equal(await sup!.exited, 0, sup!.stderr());
  const restarted = start(SUPERVISOR, ["--config", supervisorFile]);
  sup = restarted;
  await restarted.says(/number authority started from .*leases\.json: \d lease\(s\), next lease id 4/);
  await restarted.says(/running: /);
  const askedAt = Date.now();
  const g = (await ask(tester, port, { type: "number-request", requestId: 3, endSystem: "tester2", pool: "ports", op: "lease", count: 4, leaseS: 4 }, "tester2")) as NumberGrantMsg;
  assert.equal(g.status, "granted");
  assert.equal(g.leaseId, 4, "lease ids go on from the state file");
  // nothing the state file still holds (active, or held back after its end) is granted again
  for (const l of saved.leases) {
    if (l.pool !== "ports" || l.endsAt + l.holdS * 1000 <= askedAt) continue;
    assert.ok(g.first! > l.first + l.count - 1 || g.first! + g.count! - 1 < l.first, `granted ${g.first}+${g.count} over lease ${l.leaseId} (${l.first}+${l.count}) still held`);
  }
  assert.ok(leased && saved.leases.some((l) => l.leaseId === leased!.leaseId && l.endsAt + l.holdS * 1000 > askedAt), "the released lease was still held back when asked (the check above meant something)");
});

test("a corrupt state file: the supervisor refuses to start and says why; a bad config exits 2 naming each path", async () => {
  sup!.child.kill("SIGTERM");
  assert.equal(await sup!.exited, 0);
  const good = await readFile(stateFile, "utf8");
  await writeFile(stateFile, good.slice(0, good.length / 2));
  const broken = start(SUPERVISOR, ["--config", supervisorFile]);
  assert.equal(await broken.exited, 1, broken.stderr());
  assert.match(broken.stderr(), /cannot start: lease store unusable, refusing to grant numbers: .*leases\.json is not JSON/);
  assert.equal(await readFile(stateFile, "utf8"), good.slice(0, good.length / 2), "left as it was for the operator");
  const badFile = join(dir, "bad.json");
  await writeFile(badFile, JSON.stringify({ id: "sup 1", keys: [{ id: 1, secret: "abc" }], listen: { port: 0 }, pools: [{ name: "p", first: 1, last: 2 }], relay: ["nowhere"], extra: 1 }));
  const bad = start(SUPERVISOR, ["--config", badFile]);
  assert.equal(await bad.exited, 2);
  for (const re of [/id: got "sup 1"/, /keys\[0\]\.secret: got "\(hidden\)", expected hex/, /listen\.port: got 0, expected an integer 1-65535/, /relay\[0\]: got "nowhere"/, /extra: got 1, expected one of the known fields/, /stateFile: got nothing, expected a path for the lease store file/]) {
    assert.match(bad.stderr(), re);
  }
  const check = start(SUPERVISOR, ["--check", "--config", join(ROOT, "tools/supervisor/example-config.json")]);
  assert.equal(await check.exited, 2, "the example names a secret file that is not here");
  assert.match(check.stderr(), /keys\[0\]\.secretFile: got "\/etc\/flowswitch\/agent\.key"/);
});
