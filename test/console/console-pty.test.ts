// The serial console as an operator meets it: a pty pair made by socat, the box's console on one
// end, the test typing on the other. The box runs on the simulated board with its configuration in
// a flash file.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { bootBox, type Box } from "../../host/box.js";
import { SimBoard, SimPort } from "../../board/sim/index.js";
import { openFlashFile } from "../../board/flash.js";
import { openSerial, type SerialConsole } from "../../host/console/serial.js";
import { openPtyPair, PtyOperator, Vt100Screen, type PtyPair } from "../lib/pty.js";
import { parseMac } from "../../host/net/frame.js";
import { labConfig, svc } from "../lib/lab-config.js";

const MINUTE_MS = 2000; // commit confirmed 1 rolls back after 2 s here
let dir: string;
let pair: PtyPair;
let serial: SerialConsole;
let op: PtyOperator;
let box: Box;
const logs: string[] = [];
const failedLogins: string[] = [];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), "fsw-console-"));
  const factory = labConfig([svc("dsr", { backends: ["s1", "s2"] })], { system: { hostname: "fs-test" } });
  await writeFile(join(dir, "factory.json"), JSON.stringify(factory));
  pair = await openPtyPair(dir);
  serial = await openSerial(pair.consolePath);
  op = await PtyOperator.open(pair.operatorPath);
  const board = new SimBoard(
    [new SimPort("client", parseMac("02:00:00:00:01:01")), new SimPort("server", parseMac("02:00:00:00:02:01"))],
    await openFlashFile(join(dir, "flash.img"), { create: true }),
  );
  box = await bootBox({
    board, defaultConfigPath: join(dir, "factory.json"), console: serial, minuteMs: MINUTE_MS,
    log: (l) => void logs.push(l), backoffMs: () => 50, shellEvents: { loginFailed: (u) => void failedLogins.push(u) },
  });
});

after(async () => {
  await box?.stop();
  await op?.close();
  await serial?.close();
  await pair?.close();
  await rm(dir, { recursive: true, force: true });
});

const PROMPT = /admin@fs-test> $/;
const EDIT = /admin@fs-test# $/;

test("console: a wrong password is refused and counted; the factory login must be replaced first", async () => {
  await op.expect("fs-test login: ");
  op.send("admin\r");
  await op.expect("Password: ");
  op.send("wrong\r");
  await op.expect("Login incorrect");
  assert.deepEqual(failedLogins, ["admin"]);
  await op.expect("login: ");
  op.send("admin\r");
  await op.expect("Password: ");
  op.send("flowswitch\r");
  await op.expect("factory login");
  await op.expect("New password: ");
  op.send("short\r");
  await op.expect("at least 8 characters");
  await op.expect("New password: ");
  op.send("Tr0ub4dor&3\r");
  await op.expect("Retype new password: ");
  const typed = op.screen();
  op.send("Tr0ub4dor&3\r");
  await op.expect("Password set and committed");
  await op.expect(PROMPT);
  assert.ok(!op.screen().includes("Tr0ub4dor"), "passwords are never echoed");
  assert.ok(!typed.includes("short"), "not even rejected ones");
  const users = box.session.running.system?.users ?? [];
  assert.equal(users.length, 1);
  assert.match(users[0].passwordHash, /^scrypt\$/);
});

test("console: Tab completes, ? lists what may follow, and the command runs", async () => {
  op.send("sh");
  op.sendKeys("tab");
  await op.expect("show ");
  op.sendKeys("?");
  const help = await op.expect(/Possible completions:[\s\S]*services[\s\S]*admin@fs-test> show $/);
  assert.match(help, /backends\s+Backends: state, health, MAC and traffic/);
  op.send("serv");
  op.sendKeys("tab");
  await op.expect("services ");
  assert.equal(new Vt100Screen().write(op.raw()).cursorRow(), "admin@fs-test> show services", "the line as the operator sees it");
  op.send("\r");
  const out = await op.expect(PROMPT);
  assert.match(out, /Service\s+VIP:proto\/port\s+Mode/);
  assert.match(out, /web\s+10\.0\.0\.100:tcp\/80\s+dsr\s+2/);
});

test("console: a bad word gets a caret under it and says what was expected", async () => {
  op.send("show servces\r");
  const out = await op.expect(PROMPT);
  const lines = out.split(/\r?\n/);
  const caret = lines.findIndex((l) => /^\s*\^$/.test(l));
  assert.ok(caret >= 0, out);
  assert.equal(lines[caret].indexOf("^"), "admin@fs-test> show ".length, "the caret sits under the bad word");
  assert.match(lines[caret + 1], /unknown word "servces": expected one of interfaces, services, backends/);
});

test("console: show discovery answers through the shell (this box has no discovery section)", async () => {
  op.send("show discovery\r");
  const out = await op.expect(PROMPT);
  assert.match(out, /Service discovery is not configured\./);
});

test("console: configuration mode: set, show | compare, commit with a comment, bad values pointed at", async () => {
  op.send("configure\r");
  await op.expect(EDIT);
  op.send("set services web port 70000\r");
  const bad = await op.expect(EDIT);
  assert.match(bad, /\^\r?\n.*bad value "70000" for port: expected a whole number from 0 to 65535/);
  op.send("set services web port 8081\r");
  await op.expect(EDIT);
  op.send("show | compare\r");
  const diff = await op.expect(EDIT);
  assert.match(diff, /- set services web port 80\r?\n\+ set services web port 8081/);
  op.send('commit comment "web moves to 8081"\r');
  await op.expect(/commit complete[\s\S]*# $/);
  assert.equal(box.session.running.services?.[0].port, 8081);
  assert.equal(box.appliance.running.services[0].port, 8081, "the engines run it");
});

test("console: rollback 1 and commit bring the previous configuration back", async () => {
  op.send("rollback 1\r");
  await op.expect(/load complete[\s\S]*# $/);
  op.send("show | compare\r");
  const diff = await op.expect(EDIT);
  assert.match(diff, /- set services web port 8081\r?\n\+ set services web port 80/);
  op.send("commit\r");
  await op.expect(/commit complete[\s\S]*# $/);
  assert.equal(box.session.running.services?.[0].port, 80);
});

test("console: commit confirmed that nobody confirms rolls itself back", async () => {
  op.send("set services web port 8082\r");
  await op.expect(EDIT);
  op.send("commit confirmed 1\r");
  await op.expect(/automatically rolled back in 1 minutes[\s\S]*commit complete[\s\S]*# $/);
  assert.equal(box.appliance.running.services[0].port, 8082);
  const deadline = Date.now() + 10 * MINUTE_MS;
  while (box.session.running.services?.[0].port !== 80 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  await box.session.idle(); // the rollback also saves, logs and resets the candidate
  assert.equal(box.session.running.services?.[0].port, 80, "rolled back");
  assert.equal(box.appliance.running.services[0].port, 80, "and applied");
  assert.ok(logs.some((l) => l.includes("not confirmed within 1 minutes")), logs.join("\n"));
});

test("console: commit check reports every error and changes nothing", async () => {
  op.send("set services web backends s9\r");
  await op.expect(EDIT);
  op.send("commit check\r");
  const out = await op.expect(EDIT);
  assert.match(out, /configuration check fails/);
  assert.match(out, /services\[0\]\.backends\[2\]\.name: "s9": expected the name of a backend/);
  op.send("commit\r");
  await op.expect(/nothing was changed[\s\S]*# $/);
  op.send("rollback 0\r");
  await op.expect(EDIT);
  op.send("exit\r");
  await op.expect(PROMPT);
});

test("console: show configuration as set commands, and history and logout", async () => {
  op.send("show configuration | display set | match port\r");
  const out = await op.expect(PROMPT);
  assert.match(out, /set services web port 80/);
  op.sendKeys("up");
  await op.expect("show configuration | display set | match port");
  op.sendKeys("ctrl-c");
  await op.expect(PROMPT);
  op.send("exit\r");
  await op.expect("fs-test login: ");
  op.send("admin\r");
  await op.expect("Password: ");
  op.send("Tr0ub4dor&3\r");
  await op.expect(PROMPT);
});
