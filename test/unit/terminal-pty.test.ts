// The terminal over a real serial line: socat joins two ptys, the console opens one with
// openSerial as it opens /dev/ttyS0 on the appliance, and an operator types into the other. What
// the console reads and what the operator's screen shows are checked end to end.
import { describe, it, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { openSerial } from "../../host/console/serial.js";
import { Terminal, type LineHelp } from "../../host/console/terminal.js";
import { PtyOperator, openPtyPair } from "../lib/pty.js";

const PROMPT = "operator@fs> ";

interface Line {
  term: Terminal;
  op: PtyOperator;
}

/** A console Terminal and an operator at the two ends of a fresh pty pair; torn down after the test. */
async function serialLine(t: TestContext, opts: { height?: number } = {}): Promise<Line> {
  const dir = mkdtempSync(join(tmpdir(), "flowswitch-pty-"));
  const pair = await openPtyPair(dir);
  const serial = await openSerial(pair.consolePath, { baudRate: 115200 });
  const term = new Terminal(serial, { width: 80, ...opts });
  const op = await PtyOperator.open(pair.operatorPath);
  t.after(async () => {
    term.close();
    await op.close();
    await serial.close();
    await pair.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { term, op };
}

const WORDS: Record<string, string> = {
  show: "Show information about the appliance",
  set: "Set a configuration value",
  version: "Software version",
  interfaces: "Interface status and counters",
};

/** Completes and helps from WORDS, like a command layer with a one-level tree. */
const help: LineHelp = {
  complete(line) {
    const word = line.split(" ").pop() ?? "";
    const head = line.slice(0, line.length - word.length);
    const matches = Object.keys(WORDS).filter((w) => w.startsWith(word));
    if (matches.length === 1) return { line: head + matches[0] + " " };
    return { list: matches.map((w) => ({ word: w, help: WORDS[w] })) };
  },
  help(line) {
    const word = line.split(" ").pop() ?? "";
    return ["Possible completions:", ...Object.keys(WORDS).filter((w) => w.startsWith(word)).map((w) => `  ${w}`)];
  },
};

describe("console over a pty pair", () => {
  it("delivers a line typed with editing keys as the operator sees it", async (t) => {
    const { term, op } = await serialLine(t);
    const history = ["show interfaces"];
    const line = term.readLine(PROMPT, { history });
    await op.expect(PROMPT);
    op.send("sw versoin");
    op.sendKeys("ctrl-a", "right");
    op.send("ho");
    op.sendKeys("ctrl-e", "backspace", "backspace", "backspace");
    op.send("ion");
    await op.expect("ion");
    op.sendKeys("enter");
    assert.equal(await line, "show version");
    assert.deepEqual(history, ["show interfaces", "show version"]);

    const next = term.readLine(PROMPT, { history });
    await op.expect(PROMPT);
    op.sendKeys("up", "up", "down", "ctrl-a");
    op.send("no-");
    op.sendKeys("enter");
    assert.equal(await next, "no-show version");
    const screen = await op.expectScreen("no-show version");
    assert.deepEqual(screen.split("\n"), [`${PROMPT}show version`, `${PROMPT}no-show version`]);

    const abandoned = term.readLine(PROMPT);
    op.send("commit");
    op.sendKeys("ctrl-c");
    assert.equal(await abandoned, "");
    assert.equal((await op.expectScreen("^C")).split("\n")[2], `${PROMPT}commit^C`);
  });

  it("completes with Tab across the pty: one candidate extends, several are listed", async (t) => {
    const { term, op } = await serialLine(t);
    const line = term.readLine(PROMPT, { help });
    await op.expect(PROMPT);
    op.send("sh");
    op.sendKeys("tab");
    await op.expect("show ");
    op.send("ver");
    op.sendKeys("tab");
    await op.expect("sion ");
    op.sendKeys("enter");
    assert.equal(await line, "show version ");

    const listed = term.readLine(PROMPT, { help });
    await op.expect(PROMPT);
    op.send("s");
    op.sendKeys("tab");
    await op.expect(/Possible completions:[^]*set +Set a configuration value\r\n/);
    await op.expect(`${PROMPT}s`);
    op.send("et");
    op.sendKeys("enter");
    assert.equal(await listed, "set");
    const rows = (await op.expectScreen(`${PROMPT}set`)).split("\n");
    assert.deepEqual(rows.slice(1), [
      `${PROMPT}s`,
      "Possible completions:",
      "  show  Show information about the appliance",
      "  set   Set a configuration value",
      `${PROMPT}set`,
    ]);
  });

  it("answers ? with help and puts the line back as it was", async (t) => {
    const { term, op } = await serialLine(t);
    const line = term.readLine(PROMPT, { help });
    await op.expect(PROMPT);
    op.send("show ");
    op.sendKeys("?");
    await op.expect("interfaces");
    await op.expect(`${PROMPT}show `);
    op.send("i");
    op.sendKeys("tab", "enter");
    assert.equal(await line, "show interfaces ");
    assert.deepEqual((await op.expectScreen(`${PROMPT}show interfaces`)).split("\n"), [
      `${PROMPT}show ?`,
      "Possible completions:",
      "  show",
      "  set",
      "  version",
      "  interfaces",
      `${PROMPT}show interfaces`,
    ]);
  });

  it("echoes nothing of a secret", async (t) => {
    const { term, op } = await serialLine(t);
    const password = term.readLine("Password: ", { secret: true });
    await op.expect("Password: ");
    op.send("hunter2");
    op.sendKeys("backspace", "enter");
    assert.equal(await password, "hunter");
    const after = term.readLine(PROMPT);
    await op.expect(PROMPT);
    op.sendKeys("ctrl-d");
    assert.equal(await after, null);
    await op.expect(/\r\n$/);
    assert.equal(op.raw(), `Password: \r\n${PROMPT}\r\n`);
  });

  it("pages long output with --More-- and stops at q", async (t) => {
    const { term, op } = await serialLine(t, { height: 10 });
    const printed = term.print(Array.from({ length: 50 }, (_, i) => `flow ${i}`).join("\n"));
    await op.expect("--More--");
    op.send(" ");
    await op.expect("flow 17\r\n--More--");
    op.send("q");
    await printed;
    assert.equal((await op.expectScreen(/flow 17$/)).split("\n").length, 18);
  });

  it("names the device it cannot open", async () => {
    await assert.rejects(openSerial("/dev/flowswitch-no-such-tty"), /cannot open serial console \/dev\/flowswitch-no-such-tty: /);
  });
});
