// `npm start` as a newcomer meets it: the box on the simulated board with its console on the
// terminal (a real pty, made by util-linux's `script`), traffic moving, and a reboot that keeps
// what was committed.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { requireTool } from "../lib/tshark.js";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const dir = await mkdtemp(join(tmpdir(), "fsw-start-"));
let child: ChildProcessWithoutNullStreams | undefined;
after(async () => {
  // the appliance runs under `script`: end it first, or it outlives its terminal
  if (child?.pid && child.exitCode === null) spawnSync("pkill", ["-KILL", "-P", String(child.pid)]);
  child?.kill("SIGKILL");
  await rm(dir, { recursive: true, force: true });
});

/** The terminal's side: what was typed and what appeared, escape sequences removed. */
class Typist {
  private seen = "";
  private from = 0;
  constructor(private readonly p: ChildProcessWithoutNullStreams) {
    p.stdout.on("data", (d: Buffer) => (this.seen += d.toString("utf8").replace(/\x1b\[[0-9;]*[A-Za-z]/g, "")));
    p.stderr.on("data", (d: Buffer) => (this.seen += `[stderr] ${d.toString("utf8")}`));
  }
  send(text: string): void {
    this.p.stdin.write(text);
  }
  async expect(pattern: RegExp | string, ms = 5000): Promise<string> {
    const deadline = Date.now() + ms;
    for (;;) {
      const tail = this.seen.slice(this.from);
      const m = typeof pattern === "string" ? (tail.includes(pattern) ? { index: tail.indexOf(pattern), 0: pattern } : null) : pattern.exec(tail);
      if (m) {
        this.from += m.index + m[0].length;
        return tail.slice(0, m.index + m[0].length);
      }
      if (Date.now() > deadline) assert.fail(`${String(pattern)} not seen within ${ms} ms; got: ${JSON.stringify(tail.slice(-400))}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

test("npm start: banner, factory login, traffic in show services, and a reboot that keeps the new password", { timeout: 90_000 }, async () => {
  requireTool("script", "util-linux");
  child = spawn("script", ["-qfec", `node ${join(ROOT, "build/host/main.js")}`, "/dev/null"], {
    // node --test marks its children with NODE_TEST_CONTEXT; the appliance is not a test file
    env: { ...Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== "NODE_TEST_CONTEXT")), FLOWSWITCH_STATE_DIR: join(dir, "state") },
  });
  const op = new Typist(child);
  await op.expect("Flowswitch on the simulated board", 15_000);
  await op.expect("First login: admin / flowswitch");
  await op.expect(/-demo login: $/);
  op.send("admin\r");
  await op.expect("Password: ");
  op.send("flowswitch\r");
  await op.expect("New password: ");
  op.send("Corr3ct-horse\r");
  await op.expect("Retype new password: ");
  op.send("Corr3ct-horse\r");
  await op.expect(/admin@[\w-]+> $/);
  await new Promise((r) => setTimeout(r, 1500)); // the virtual clients have been busy
  op.send("show services\r");
  const table = await op.expect(/admin@[\w-]+> $/);
  const web = /web\s+10\.0\.0\.100:tcp\/80\s+dsr\s+\d+\s+([\d,]+)\s+([\d,]+)/.exec(table);
  assert.ok(web, table);
  assert.ok(Number(web[1].replace(/,/g, "")) > 0, `new flows reach the web service: ${web[0]}`);
  op.send("request system reboot\r");
  await op.expect("Reboot the system? [yes,no]");
  op.send("yes\r");
  await op.expect("rebooting", 10_000);
  await op.expect(/-demo login: $/, 15_000);
  op.send("admin\r");
  await op.expect("Password: ");
  op.send("Corr3ct-horse\r");
  await op.expect(/admin@[\w-]+> $/, 10_000);
  op.send("exit\r");
  await op.expect(/-demo login: $/);
  op.send("\x04"); // Ctrl-D
  const exited = await new Promise<boolean>((resolve) => {
    const t = setTimeout(() => resolve(false), 10_000);
    child!.once("exit", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
  assert.ok(exited, "Ctrl-D at the login prompt ends it");
});
