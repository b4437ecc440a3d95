// Backend health checks against real servers on 127.0.0.1 and ::1: a backend starts up, `fall`
// failed probes take it down and `rise` good ones bring it back, each with the reason an operator
// reads in the log. Timing is asserted by counting probes and states, never by milliseconds.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from "node:net";
import { createServer as createHttpServer, type IncomingHttpHeaders } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import { createSocket, type Socket as UdpSocket } from "node:dgram";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AddressInfo } from "node:net";
import {
  HealthMonitor,
  CHECK_DEFAULTS,
  INITIAL_REASON,
  JITTER_FRACTION,
  checkSpecErrors,
  nextProbe,
  probeDue,
  type CheckSpecInput,
  type HealthChange,
  type HealthStatus,
} from "../../host/health/index.js";

/** Short timings so the file runs in a few seconds; rise and fall as shipped. */
const FAST = { intervalMs: 50, timeoutMs: 300, rise: 2, fall: 3 } as const;

// ---------------------------------------------------------------------------------------------
// Harness

interface Watch {
  monitor: HealthMonitor;
  lines: string[];
  changes: HealthChange[];
  status(name?: string): HealthStatus;
}

/** A monitor for the test, stopped when the test ends whatever happens. */
function watch(t: TestContext, checks: Record<string, CheckSpecInput>): Watch {
  const lines: string[] = [];
  const changes: HealthChange[] = [];
  const monitor = new HealthMonitor({ log: (l) => lines.push(l) });
  monitor.onChange((c) => changes.push(c));
  t.after(() => monitor.stop());
  monitor.set(new Map(Object.entries(checks)));
  const first = Object.keys(checks)[0];
  return {
    monitor,
    lines,
    changes,
    status: (name = first) => {
      const s = monitor.status(name);
      assert.ok(s, `no status for ${name}`);
      return s;
    },
  };
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) assert.fail(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until `n` probes in a row have the given outcome (and so the state has settled). */
async function settled(w: Watch, ok: boolean, n: number, name?: string): Promise<HealthStatus> {
  await waitFor(`${n} ${ok ? "successes" : "failures"} in a row`, () => {
    const s = w.status(name);
    return s.lastProbe?.ok === ok && s.consecutive >= n;
  });
  return w.status(name);
}

function listen(server: TcpServer, host: string, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** Stops a server and every connection it holds, when the test ends. */
function closeAfter(t: TestContext, server: TcpServer, sockets: Set<Socket>): void {
  t.after(() => closeServer(server, sockets));
}

function closeServer(server: TcpServer, sockets: Set<Socket>): Promise<void> {
  for (const s of sockets) s.destroy();
  return new Promise((r) => (server.listening ? server.close(() => r()) : r()));
}

function track(server: TcpServer): { sockets: Set<Socket>; accepted: () => number; peers: string[] } {
  const sockets = new Set<Socket>();
  const peers: string[] = [];
  let accepted = 0;
  server.on("connection", (s: Socket) => {
    accepted++;
    peers.push(s.remoteAddress ?? "");
    sockets.add(s);
    s.on("error", () => {}); // a probe may close with a reset: not this server's problem
    s.on("close", () => sockets.delete(s));
  });
  return { sockets, accepted: () => accepted, peers };
}

/** A TCP server that accepts and holds connections (and never says anything). */
async function tcpServer(t: TestContext, host: string, port = 0) {
  const server = createTcpServer();
  const tracked = track(server);
  closeAfter(t, server, tracked.sockets);
  return { server, ...tracked, port: await listen(server, host, port), close: () => closeServer(server, tracked.sockets) };
}

/** A port nothing listens on (bound, then released). */
async function freePort(host: string, type: "tcp" | "udp"): Promise<number> {
  if (type === "tcp") {
    const s = createTcpServer();
    const port = await listen(s, host);
    await new Promise((r) => s.close(r));
    return port;
  }
  const u = createSocket(host.includes(":") ? "udp6" : "udp4");
  await new Promise<void>((r) => u.bind(0, host, () => r()));
  const port = u.address().port;
  await new Promise<void>((r) => u.close(() => r()));
  return port;
}

/** An HTTP server answering every request with `status.code`; remembers the requests. */
async function httpServer(t: TestContext, host: string, code = 200) {
  const requests: { url: string; headers: IncomingHttpHeaders }[] = [];
  const status = { code };
  const server = createHttpServer((req, res) => {
    requests.push({ url: req.url ?? "", headers: req.headers });
    res.statusCode = status.code;
    if (status.code >= 300 && status.code < 400) res.setHeader("Location", "/elsewhere");
    res.end("body\n");
  });
  const tracked = track(server);
  closeAfter(t, server, tracked.sockets);
  return { status, requests, port: await listen(server, host) };
}

/** A self-signed certificate made with the openssl CLI in a temp dir, once per run. */
let cert: { key: Buffer; cert: Buffer } | undefined;
function selfSigned(): { key: Buffer; cert: Buffer } {
  if (cert) return cert;
  const dir = mkdtempSync(join(tmpdir(), "flowswitch-health-"));
  try {
    const r = spawnSync(
      "openssl",
      ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
        "-subj", "/CN=backend.test", "-keyout", join(dir, "key.pem"), "-out", join(dir, "cert.pem")],
      { encoding: "utf8" },
    );
    if (r.error && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
      assert.fail("the openssl CLI is needed to make a self-signed certificate for the https tests: install it (apt-get install openssl)");
    }
    assert.equal(r.status, 0, `openssl req failed: ${r.stderr}`);
    cert = { key: readFileSync(join(dir, "key.pem")), cert: readFileSync(join(dir, "cert.pem")) };
    return cert;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function httpsServer(t: TestContext, host: string, code = 200) {
  const seen: { servername: string | false | null; headers: IncomingHttpHeaders }[] = [];
  const server = createHttpsServer(selfSigned(), (req, res) => {
    seen.push({ servername: (req.socket as import("node:tls").TLSSocket).servername, headers: req.headers });
    res.statusCode = code;
    res.end("secure body\n");
  });
  server.on("tlsClientError", () => {}); // a probe that refuses our certificate hangs up
  const tracked = track(server);
  closeAfter(t, server, tracked.sockets);
  return { seen, port: await listen(server, host) };
}

/** A UDP server: "echo" sends each datagram back, a string replies with it, "silent" never replies. */
async function udpServer(t: TestContext, host: string, mode: "echo" | "silent" | { reply: string }) {
  const socket: UdpSocket = createSocket(host.includes(":") ? "udp6" : "udp4");
  const received: { data: string; from: string }[] = [];
  socket.on("message", (msg, rinfo) => {
    received.push({ data: msg.toString(), from: rinfo.address });
    if (mode === "silent") return;
    socket.send(mode === "echo" ? msg : Buffer.from(mode.reply), rinfo.port, rinfo.address);
  });
  await new Promise<void>((r) => socket.bind(0, host, () => r()));
  t.after(() => new Promise<void>((r) => socket.close(() => r())));
  return { received, port: socket.address().port };
}

// ---------------------------------------------------------------------------------------------
// tcp

test("health: tcp: a listening backend starts up, is probed at once and confirmed 'ok'", async (t) => {
  const srv = await tcpServer(t, "127.0.0.1");
  // A long interval: only the immediate first probe can happen within the wait.
  const w = watch(t, { web1: { type: "tcp", address: "127.0.0.1", port: srv.port, intervalMs: 60_000, timeoutMs: 1000, rise: 1, fall: 3 } });
  const before = w.status();
  assert.equal(before.state, "up", "a backend serves from the start, before any probe");
  assert.equal(before.reason, INITIAL_REASON);
  assert.equal(before.consecutive, 0);
  const s = await settled(w, true, 1);
  assert.equal(s.state, "up");
  assert.equal(s.reason, "ok", "the first full run of successes says why the backend is up");
  assert.equal(s.lastProbe?.reason, "ok");
  assert.equal(srv.accepted(), 1, "one probe, one connection");
  assert.deepEqual(w.changes, [], "starting up and staying up is not a change");
});

test("health: tcp: a refused port goes down after exactly `fall` probes, 'connection refused'", async (t) => {
  const port = await freePort("127.0.0.1", "tcp");
  const w = watch(t, { web1: { type: "tcp", address: "127.0.0.1", port, ...FAST } });
  const seenAtChange: number[] = [];
  w.monitor.onChange(() => seenAtChange.push(w.status().consecutive));
  await waitFor("down", () => w.changes.length > 0);
  const c = w.changes[0];
  assert.deepEqual([c.backend, c.from, c.to, c.reason], ["web1", "up", "down", "connection refused"]);
  assert.deepEqual(seenAtChange, [3], "the third failure in a row, not before and not after");
  assert.deepEqual(w.lines, ["health: backend web1 down (connection refused, 3 failures)"]);
  const s = w.status();
  assert.equal(s.state, "down");
  assert.equal(s.reason, "connection refused");
  assert.equal(s.since, c.at);
});

test("health: tcp: a down backend comes back after exactly `rise` successes", async (t) => {
  const port = await freePort("127.0.0.1", "tcp");
  const w = watch(t, { web1: { type: "tcp", address: "127.0.0.1", port, ...FAST } });
  await waitFor("down", () => w.status().state === "down");
  const seenAtChange: number[] = [];
  w.monitor.onChange(() => seenAtChange.push(w.status().consecutive));
  await tcpServer(t, "127.0.0.1", port);
  await waitFor("up again", () => w.status().state === "up");
  assert.deepEqual(seenAtChange, [2]);
  assert.deepEqual(w.changes.map((c) => `${c.from}->${c.to} ${c.reason}`), ["up->down connection refused", "down->up ok"]);
  assert.equal(w.lines[1], "health: backend web1 up (ok, 2 successes)");
});

test("health: tcp over IPv6 (::1): up when listening, 'connection refused' when not", async (t) => {
  const srv = await tcpServer(t, "::1");
  const closed = await freePort("::1", "tcp");
  const w = watch(t, {
    v6up: { type: "tcp", address: "::1", port: srv.port, ...FAST },
    v6down: { type: "tcp", address: "::1", port: closed, ...FAST },
  });
  await settled(w, true, 2, "v6up");
  await waitFor("v6down down", () => w.status("v6down").state === "down");
  assert.equal(w.status("v6up").state, "up");
  assert.equal(w.status("v6down").reason, "connection refused");
  assert.deepEqual(w.lines, ["health: backend v6down down (connection refused, 3 failures)"]);
});

test("health: probes leave from sourceAddress (tcp, http and udp)", async (t) => {
  const tcp = await tcpServer(t, "127.0.0.1");
  const web = await httpServer(t, "127.0.0.1");
  const udp = await udpServer(t, "127.0.0.1", "echo");
  const src = "127.0.0.2"; // any 127/8 address is local on Linux
  const w = watch(t, {
    t: { type: "tcp", address: "127.0.0.1", port: tcp.port, sourceAddress: src, ...FAST },
    h: { type: "http", address: "127.0.0.1", port: web.port, sourceAddress: src, ...FAST },
    u: { type: "udp", address: "127.0.0.1", port: udp.port, sourceAddress: src, send: "ping", ...FAST },
  });
  for (const name of ["t", "h", "u"]) await settled(w, true, 2, name);
  assert.ok(tcp.peers.length > 0 && tcp.peers.every((p) => p === src), `tcp peers: ${tcp.peers}`);
  assert.ok(udp.received.length > 0 && udp.received.every((r) => r.from === src), `udp peers: ${udp.received.map((r) => r.from)}`);
  assert.ok(web.requests.length > 0);
});

// ---------------------------------------------------------------------------------------------
// http and https

test("health: http: 200 is up ('status 200'), 503 goes down ('bad status 503') and back", async (t) => {
  const web = await httpServer(t, "127.0.0.1", 200);
  const w = watch(t, { web1: { type: "http", address: "127.0.0.1", port: web.port, path: "/healthz?full=1", ...FAST } });
  const up = await settled(w, true, 2);
  assert.equal(up.state, "up");
  assert.equal(up.reason, "status 200");
  const req = web.requests[0];
  assert.equal(req.url, "/healthz?full=1");
  assert.equal(req.headers.host, `127.0.0.1:${web.port}`, "Host defaults to the address (with the port, as HTTP wants)");
  assert.equal(req.headers.connection, "close");

  web.status.code = 503;
  await waitFor("down", () => w.status().state === "down");
  assert.equal(w.status().reason, "bad status 503");
  web.status.code = 200;
  await waitFor("up", () => w.status().state === "up");
  assert.deepEqual(w.lines, [
    "health: backend web1 down (bad status 503, 3 failures)",
    "health: backend web1 up (status 200, 2 successes)",
  ]);
});

test("health: http: any 2xx passes unless expectStatus names one; redirects are not followed", async (t) => {
  const noContent = await httpServer(t, "127.0.0.1", 204);
  const redirect = await httpServer(t, "127.0.0.1", 301);
  const w = watch(t, {
    any2xx: { type: "http", address: "127.0.0.1", port: noContent.port, ...FAST },
    exact: { type: "http", address: "127.0.0.1", port: noContent.port, expectStatus: 200, ...FAST },
    moved: { type: "http", address: "127.0.0.1", port: redirect.port, ...FAST },
    wants301: { type: "http", address: "127.0.0.1", port: redirect.port, expectStatus: 301, ...FAST },
  });
  await settled(w, true, 2, "any2xx");
  await settled(w, true, 2, "wants301");
  await waitFor("exact and moved down", () => w.status("exact").state === "down" && w.status("moved").state === "down");
  assert.equal(w.status("any2xx").reason, "status 204");
  assert.equal(w.status("wants301").reason, "status 301");
  assert.equal(w.status("exact").reason, "bad status 204");
  assert.equal(w.status("moved").reason, "bad status 301");
  assert.ok(redirect.requests.every((r) => r.url === "/"), "the Location was never fetched");
});

test("health: http over IPv6 (::1) with a bracketed Host header, or the configured one", async (t) => {
  const web = await httpServer(t, "::1");
  const w = watch(t, {
    plain: { type: "http", address: "::1", port: web.port, ...FAST },
    named: { type: "http", address: "::1", port: web.port, host: "www.example.com", ...FAST },
  });
  await settled(w, true, 2, "plain");
  await settled(w, true, 2, "named");
  const hosts = new Set(web.requests.map((r) => r.headers.host));
  assert.deepEqual([...hosts].sort(), [`[::1]:${web.port}`, "www.example.com"]);
});

test("health: http: a backend that closes, resets or talks nonsense says so", async (t) => {
  const rude = async (act: (s: Socket) => void) => {
    const server = createTcpServer(act);
    const tracked = track(server);
    closeAfter(t, server, tracked.sockets);
    return listen(server, "127.0.0.1");
  };
  const closes = await rude((s) => s.end());
  const resets = await rude((s) => s.on("data", () => s.resetAndDestroy()));
  const nonsense = await rude((s) => s.on("data", () => s.end("SSH-2.0-OpenSSH_9.6\r\n")));
  const early = await rude((s) => s.on("data", () => s.end("HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\n\r\n")));
  const w = watch(t, {
    closes: { type: "http", address: "127.0.0.1", port: closes, ...FAST },
    resets: { type: "http", address: "127.0.0.1", port: resets, ...FAST },
    nonsense: { type: "http", address: "127.0.0.1", port: nonsense, ...FAST },
    early: { type: "http", address: "127.0.0.1", port: early, ...FAST },
  });
  await settled(w, true, 2, "early");
  const down = ["closes", "resets", "nonsense"];
  await waitFor("all down", () => down.every((n) => w.status(n).state === "down"));
  assert.deepEqual(
    down.map((n) => w.status(n).reason),
    ["connection closed", "connection reset", "unexpected reply"],
  );
  assert.equal(w.status("early").reason, "status 200", "an interim 103 is skipped");
});

test("health: https: a self-signed backend is up; certificates are verified only with verifyTls", async (t) => {
  const secure = await httpsServer(t, "127.0.0.1");
  const secure6 = await httpsServer(t, "::1");
  const plain = await httpServer(t, "127.0.0.1");
  const w = watch(t, {
    selfSigned: { type: "https", address: "127.0.0.1", port: secure.port, host: "app.example", ...FAST },
    selfSigned6: { type: "https", address: "::1", port: secure6.port, ...FAST },
    verified: { type: "https", address: "127.0.0.1", port: secure.port, verifyTls: true, ...FAST },
    notTls: { type: "https", address: "127.0.0.1", port: plain.port, ...FAST },
  });
  const up = await settled(w, true, 2, "selfSigned");
  assert.equal(up.reason, "status 200");
  await settled(w, true, 2, "selfSigned6");
  await waitFor("verified and notTls down", () => w.status("verified").state === "down" && w.status("notTls").state === "down");
  assert.equal(w.status("verified").reason, "tls error: self-signed certificate");
  assert.equal(w.status("notTls").reason, "tls error: wrong version number");
  const named = secure.seen.find((s) => s.headers.host === "app.example");
  assert.ok(named, "the configured Host header was sent");
  assert.equal(named.servername, "app.example", "and its name went in SNI");
  assert.ok(secure6.seen.length > 0);
});

test("health: a backend that accepts but never answers times out, one probe at a time", async (t) => {
  const hole = await tcpServer(t, "127.0.0.1");
  // The timeout is four intervals long: overlapping probes would pile up connections.
  const w = watch(t, { stuck: { type: "http", address: "127.0.0.1", port: hole.port, intervalMs: 50, timeoutMs: 200, rise: 2, fall: 3 } });
  let acceptedAtDown = -1;
  w.monitor.onChange(() => (acceptedAtDown = hole.accepted()));
  await waitFor("down", () => w.status().state === "down");
  assert.equal(w.status().reason, "timeout");
  assert.equal(acceptedAtDown, 3, "three probes, one after the other, one connection each");
  assert.deepEqual(w.lines, ["health: backend stuck down (timeout, 3 failures)"]);
  const ms = w.status().lastProbe?.ms ?? 0;
  assert.ok(ms >= 150, `a timed-out probe lasted its timeout (${ms} ms)`);
});

// ---------------------------------------------------------------------------------------------
// udp

test("health: udp: an echo server is up; a closed port is 'connection refused'; silence is 'no reply'", async (t) => {
  const echo4 = await udpServer(t, "127.0.0.1", "echo");
  const echo6 = await udpServer(t, "::1", "echo");
  const silent = await udpServer(t, "127.0.0.1", "silent");
  const wrong = await udpServer(t, "127.0.0.1", { reply: "NOPE" });
  const closed4 = await freePort("127.0.0.1", "udp");
  const closed6 = await freePort("::1", "udp");
  const fast = { ...FAST, timeoutMs: 150 };
  const w = watch(t, {
    echo4: { type: "udp", address: "127.0.0.1", port: echo4.port, send: "PING", expect: "PING", ...fast },
    echo6: { type: "udp", address: "::1", port: echo6.port, send: "PING", ...fast },
    closed4: { type: "udp", address: "127.0.0.1", port: closed4, send: "PING", ...fast },
    closed6: { type: "udp", address: "::1", port: closed6, send: "PING", ...fast },
    silent: { type: "udp", address: "127.0.0.1", port: silent.port, send: "PING", ...fast },
    wrong: { type: "udp", address: "127.0.0.1", port: wrong.port, send: "PING", expect: "PONG", ...fast },
  });
  await settled(w, true, 2, "echo4");
  await settled(w, true, 2, "echo6");
  const down = ["closed4", "closed6", "silent", "wrong"];
  await waitFor("all of " + down.join(", ") + " down", () => down.every((n) => w.status(n).state === "down"));
  assert.equal(w.status("echo4").reason, "ok");
  assert.equal(w.status("closed4").reason, "connection refused");
  assert.equal(w.status("closed6").reason, "connection refused");
  assert.equal(w.status("silent").reason, "no reply");
  assert.equal(w.status("wrong").reason, "unexpected reply");
  assert.ok(silent.received.every((r) => r.data === "PING"), "the payload was sent");
  assert.deepEqual(
    w.lines.slice().sort(),
    [
      "health: backend closed4 down (connection refused, 3 failures)",
      "health: backend closed6 down (connection refused, 3 failures)",
      "health: backend silent down (no reply, 3 failures)",
      "health: backend wrong down (unexpected reply, 3 failures)",
    ],
  );
});

// ---------------------------------------------------------------------------------------------
// set(), stop() and robustness

test("health: set(): a changed check restarts keeping its state; an unchanged one runs on; a missing one stops", async (t) => {
  const srv = await tcpServer(t, "127.0.0.1");
  const closed = await freePort("127.0.0.1", "tcp");
  const other = await tcpServer(t, "127.0.0.1");
  const goneSrv = await tcpServer(t, "127.0.0.1");
  const steady: CheckSpecInput = { type: "tcp", address: "127.0.0.1", port: other.port, intervalMs: 50, timeoutMs: 300 };
  const w = watch(t, {
    moved: { type: "tcp", address: "127.0.0.1", port: closed, ...FAST },
    steady,
    gone: { type: "tcp", address: "127.0.0.1", port: goneSrv.port, ...FAST },
  });
  await waitFor("moved down", () => w.status("moved").state === "down");
  await settled(w, true, 3, "steady");
  const downSince = w.status("moved").since;

  // The same steady spec, written with its defaults spelled out: not a change.
  const steadyAgain: CheckSpecInput = { ...steady, rise: CHECK_DEFAULTS.rise, fall: CHECK_DEFAULTS.fall };
  const runBefore = w.status("steady").consecutive;
  w.monitor.set(new Map([
    ["moved", { type: "tcp", address: "127.0.0.1", port: srv.port, ...FAST }],
    ["steady", steadyAgain],
  ]));
  const moved = w.status("moved");
  assert.equal(moved.state, "down", "a changed check keeps its state until `rise` probes say otherwise");
  assert.equal(moved.since, downSince);
  assert.equal(moved.reason, "connection refused");
  assert.equal(moved.consecutive, 0, "results against the old target do not count toward the new one");
  assert.ok(w.status("steady").consecutive >= runBefore, "an unchanged check is not restarted");
  assert.equal(w.monitor.status("gone"), undefined);
  assert.deepEqual([...w.monitor.all().keys()].sort(), ["moved", "steady"]);

  await waitFor("moved up", () => w.status("moved").state === "up");
  assert.equal(w.lines.at(-1), "health: backend moved up (ok, 2 successes)");
  assert.ok(srv.accepted() >= 2);

  const goneAccepted = goneSrv.accepted();
  const steadyAccepted = other.accepted();
  await sleep(250);
  assert.equal(goneSrv.accepted(), goneAccepted, "a removed check probes no more");
  assert.ok(other.accepted() > steadyAccepted, "an unchanged check still runs");
});

test("health: set() with defaults left out uses CHECK_DEFAULTS; bad specs are refused whole", (t) => {
  assert.deepEqual(CHECK_DEFAULTS, { intervalMs: 2000, timeoutMs: 1000, rise: 2, fall: 3 });
  const monitor = new HealthMonitor();
  t.after(() => monitor.stop());
  assert.deepEqual(checkSpecErrors({ type: "tcp", address: "10.0.0.1", port: 80 }), []);
  assert.throws(
    () =>
      monitor.set(new Map<string, CheckSpecInput>([
        ["ok", { type: "tcp", address: "127.0.0.1", port: 9 }],
        ["vip", { type: "http", address: "web.example", port: 0, path: "health check" }],
        ["mixed", { type: "udp", address: "::1", port: 53, sourceAddress: "127.0.0.1", fall: 0 }],
      ])),
    (err: Error) => {
      assert.deepEqual(err.message.split("\n"), [
        'health check for backend vip: address: "web.example": expected an IPv4 or IPv6 address',
        "health check for backend vip: port: 0: expected a whole number from 1 to 65535",
        'health check for backend vip: path: "health check": expected a path starting with "/", without spaces or control characters',
        "health check for backend mixed: fall: 0: expected a whole number from 1 to 1000",
        "health check for backend mixed: sourceAddress: 127.0.0.1: expected an IPv6 address, like the backend's address",
      ]);
      return true;
    },
  );
  assert.equal(monitor.all().size, 0, "nothing was started");
});

test("health: a throwing change listener or logger does not stop the checks", async (t) => {
  const closed = await freePort("127.0.0.1", "tcp");
  const monitor = new HealthMonitor({
    log: () => {
      throw new Error("log is broken");
    },
  });
  t.after(() => monitor.stop());
  const seen: HealthChange[] = [];
  monitor.onChange(() => {
    throw new Error("listener is broken");
  });
  monitor.onChange((c) => seen.push(c));
  monitor.set(new Map([["web1", { type: "tcp", address: "127.0.0.1", port: closed, ...FAST }]]));
  await waitFor("down", () => seen.length === 1);
  const probes = monitor.status("web1")?.consecutive ?? 0;
  await waitFor("more probes", () => (monitor.status("web1")?.consecutive ?? 0) > probes + 1);
});

test("health: timestamps come from opts.now", async (t) => {
  const closed = await freePort("127.0.0.1", "tcp");
  let clock = 1_000;
  const monitor = new HealthMonitor({ now: () => clock });
  t.after(() => monitor.stop());
  const changes: HealthChange[] = [];
  monitor.onChange((c) => changes.push(c));
  monitor.set(new Map([["web1", { type: "tcp", address: "127.0.0.1", port: closed, ...FAST }]]));
  assert.equal(monitor.status("web1")?.since, 1_000);
  clock = 5_000;
  await waitFor("down", () => changes.length === 1);
  assert.equal(changes[0].at, 5_000);
  assert.equal(monitor.status("web1")?.since, 5_000);
  assert.equal(monitor.status("web1")?.lastProbe?.at, 5_000);
});

test("health: stop() halts probing; statuses stay readable", async (t) => {
  const srv = await tcpServer(t, "127.0.0.1");
  const w = watch(t, { web1: { type: "tcp", address: "127.0.0.1", port: srv.port, ...FAST } });
  await settled(w, true, 2);
  w.monitor.stop();
  const accepted = srv.accepted();
  await sleep(250);
  assert.equal(srv.accepted(), accepted, "no probe after stop()");
  assert.equal(w.status().state, "up");
});

test("health: stop() leaves no timer or socket behind: a process with probes in flight exits", async (t) => {
  const hole = await tcpServer(t, "127.0.0.1");
  const web = await httpServer(t, "::1");
  const secure = await httpsServer(t, "127.0.0.1");
  const silent = await udpServer(t, "127.0.0.1", "silent");
  const closed = await freePort("127.0.0.1", "udp");
  const checks: Record<string, CheckSpecInput> = {
    stuck: { type: "http", address: "127.0.0.1", port: hole.port, intervalMs: 50, timeoutMs: 60_000, rise: 2, fall: 3 },
    web: { type: "http", address: "::1", port: web.port, ...FAST },
    secure: { type: "https", address: "127.0.0.1", port: secure.port, ...FAST },
    quiet: { type: "udp", address: "127.0.0.1", port: silent.port, intervalMs: 50, timeoutMs: 60_000, rise: 2, fall: 3 },
    refused: { type: "udp", address: "127.0.0.1", port: closed, ...FAST },
  };
  const moduleUrl = new URL("../../host/health/index.js", import.meta.url).href;
  const script = `
    import { HealthMonitor } from ${JSON.stringify(moduleUrl)};
    const m = new HealthMonitor({ log: (l) => console.log(l) });
    m.set(new Map(Object.entries(JSON.parse(process.argv[1]))));
    setTimeout(() => {
      m.stop();
      console.log("stopped");
      // Only printed if the process fails to exit: what is still holding it.
      setTimeout(() => console.log("still alive:", process.getActiveResourcesInfo().join(" ")), 3000).unref();
    }, 400);
  `;
  const child = spawn(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(checks)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const killer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((r) => child.on("exit", (c, s) => r([c, s])));
  clearTimeout(killer);
  assert.equal(signal, null, `the process had to be killed; its output:\n${out}`);
  assert.equal(code, 0, `output:\n${out}`);
  assert.match(out, /^stopped$/m);
  assert.ok(hole.accepted() >= 1, "a probe was in flight to the silent server when stop() ran");
});

// ---------------------------------------------------------------------------------------------
// Schedule

test("health: probes are jittered per backend, deterministically, and accurate on average", () => {
  const interval = 2000;
  assert.equal(probeDue("web1", 0, interval), 0, "the first probe runs at once");
  const gaps: number[] = [];
  for (let k = 1; k <= 1000; k++) {
    const due = probeDue("web1", k, interval);
    assert.ok(Math.abs(due - k * interval) <= JITTER_FRACTION * interval, `probe ${k} at ${due}`);
    assert.equal(due, probeDue("web1", k, interval), "the same name gives the same schedule");
    gaps.push(due - probeDue("web1", k - 1, interval));
  }
  // On a grid the mean gap is exact up to the last probe's jitter.
  const mean = gaps.reduce((a, b) => a + b, 0) / gaps.length;
  assert.ok(Math.abs(mean - interval) < 1, `mean interval ${mean}`);
  assert.ok(Math.min(...gaps) < interval * 0.95 && Math.max(...gaps) > interval * 1.05, "the gaps do vary");
  // Many backends configured at once do not probe in lockstep.
  const seconds = new Set(Array.from({ length: 50 }, (_, i) => Math.round(probeDue(`web${i}`, 1, interval))));
  assert.ok(seconds.size > 40, `50 backends' second probes fall at ${seconds.size} distinct ms`);
});

test("health: after a slow probe the next one waits for the next slot ahead, not a burst", () => {
  const interval = 100;
  // Probe 0 took 450 ms (a timeout longer than the interval): slots 1-3 have passed.
  const next = nextProbe("web1", 0, interval, 450);
  assert.ok(next.k >= 4 && next.k <= 5, `next slot ${next.k}`);
  assert.ok(probeDue("web1", next.k, interval) >= 450);
  assert.ok(probeDue("web1", next.k - 1, interval) < 450, "no slot ahead was skipped");
  assert.equal(next.delayMs, probeDue("web1", next.k, interval) - 450);
  // A quick probe waits for the next slot.
  const quick = nextProbe("web1", 3, interval, 301);
  assert.equal(quick.k, 4);
});
