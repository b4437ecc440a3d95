// Running commands for the lab: every command is checked, and a failure names the command, its exit
// status and its stderr. Commands in a lab namespace go through `ip netns exec`.
//
// Privilege: as root, commands run as they are. As an ordinary user the lab lives inside a user
// namespace (root there, nobody outside): a small holder process (`unshare --user --map-root-user
// --mount --net`, then `sleep`) owns a private mount namespace with its own /run (where `ip netns`
// keeps its namespace files) and a network namespace to return to (`ip netns add` switches back to
// where it started, which must belong to the same user namespace), and every command enters them
// with nsenter. The holder's pid is kept in the
// state directory so that later commands (`lab status`, `lab down`) find the same lab.
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, readdirSync, writeFileSync, renameSync } from "node:fs";
import { join } from "node:path";

/** ip, sysctl, nginx and haproxy live in sbin, which an ordinary user's PATH may lack. */
const PATH = [...(process.env.PATH ?? "").split(":").filter(Boolean), "/usr/local/sbin", "/usr/sbin", "/sbin"].join(":");
export const ENV: NodeJS.ProcessEnv = { ...process.env, PATH, LC_ALL: "C" };

const DEFAULT_TIMEOUT_MS = 30_000;
const MAX_BUFFER = 64 * 1024 * 1024;

export class CommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly code: number | string | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    const err = stderr.trim() || stdout.trim();
    super(`command failed (${typeof code === "number" ? `exit status ${code}` : code ?? "killed"}): ${argv.join(" ")}${err ? `\n${indent(err)}` : ""}`);
  }
}

const indent = (s: string): string => s.split("\n").map((l) => `  ${l}`).join("\n");

// ---------------------------------------------------------------------------------------------
// State directory and privilege

/** Where the lab keeps its configs, logs and pids: $FSL_DIR, or /tmp/fsl (/tmp/fsl-UID for a user). */
export function stateDir(): string {
  if (process.env.FSL_DIR) return process.env.FSL_DIR;
  const uid = process.getuid?.() ?? 0;
  return uid === 0 ? "/tmp/fsl" : `/tmp/fsl-${uid}`;
}

export function statePath(...parts: string[]): string {
  return join(stateDir(), ...parts);
}

export function ensureStateDir(): void {
  mkdirSync(stateDir(), { recursive: true, mode: 0o755 });
}

/** Writes a file by rename, so that a reader (the appliance, on SIGHUP) never sees half of it. */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, text);
  renameSync(tmp, path);
}

export type Privilege = { kind: "root" } | { kind: "userns" };

let privilegeCache: Privilege | undefined;

/**
 * root, or a user namespace if this user may make one; otherwise an error that says what to do.
 */
export async function privilege(): Promise<Privilege> {
  if (privilegeCache) return privilegeCache;
  if (process.getuid?.() === 0) return (privilegeCache = { kind: "root" });
  try {
    await runRaw(["unshare", "--user", "--map-root-user", "--mount", "--net", "true"], { timeoutMs: 10_000 });
    return (privilegeCache = { kind: "userns" });
  } catch (e) {
    throw new Error(
      "the Flowswitch lab needs root, or an unprivileged user namespace, and neither is available here.\n" +
        "  Run as root (sudo npm test, sudo npm run lab -- up), or allow user namespaces\n" +
        "  (sysctl -w kernel.unprivileged_userns_clone=1 on Debian, user.max_user_namespaces > 0).\n" +
        `  The user-namespace probe said: ${(e as Error).message.split("\n").join(" ")}`,
    );
  }
}

const HOLDER_FILE = "holder.pid";

/** The user-namespace holder's pid, if one is alive. */
export function holderPid(): number | undefined {
  const file = statePath(HOLDER_FILE);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

/** Starts the user-namespace holder (userns mode only); returns its pid. */
export async function startHolder(): Promise<number> {
  const existing = holderPid();
  if (existing) return existing;
  ensureStateDir();
  // /run is replaced inside the holder's mount namespace only, so `ip netns` can keep its files there.
  const script = "mount -t tmpfs -o mode=0755 fsl-run /run && mkdir -p /run/netns && echo ready && exec sleep infinity";
  const child = spawn("unshare", ["--user", "--map-root-user", "--mount", "--propagation", "private", "--net", "sh", "-c", script], {
    env: ENV, detached: true, stdio: ["ignore", "pipe", "pipe"],
  });
  const pid = child.pid;
  if (pid === undefined) throw new Error("cannot start the user-namespace holder (unshare): no pid");
  let err = "";
  child.stderr.on("data", (d: Buffer) => (err += d.toString()));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the user-namespace holder did not start within 5 s: ${err.trim()}`)), 5000);
    child.stdout.once("data", () => { clearTimeout(timer); resolve(); });
    child.once("exit", (code) => { clearTimeout(timer); reject(new Error(`the user-namespace holder (unshare ... sh -c '${script}') exited with status ${code}: ${err.trim()}`)); });
  });
  child.stdout.destroy();
  child.stderr.destroy();
  child.unref();
  writeFileSync(statePath(HOLDER_FILE), `${pid}\n`);
  return pid;
}

/** The words to put in front of a command so that it runs in the lab's world (nothing as root). */
async function prefix(): Promise<string[]> {
  const p = await privilege();
  if (p.kind === "root") return [];
  const pid = holderPid();
  if (!pid) throw new Error("the lab is not up (no user-namespace holder process; run: npm run lab -- up)");
  return ["nsenter", `--target=${pid}`, "--user", "--mount", "--net", "--preserve-credentials", "--"];
}

// ---------------------------------------------------------------------------------------------
// Running commands

export interface RunOptions {
  timeoutMs?: number;
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs argv as it is (no namespace, no holder); throws a CommandError unless it exits 0. */
export function runRaw(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0], argv.slice(1), { env: ENV, timeout: opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, maxBuffer: MAX_BUFFER, encoding: "utf8" },
      (error, stdout, stderr) => {
        if (!error) return resolve({ stdout, stderr });
        const e = error as NodeJS.ErrnoException & { code?: number | string; killed?: boolean; signal?: string };
        const code = e.killed ? `killed after ${opts.timeoutMs ?? DEFAULT_TIMEOUT_MS} ms` : e.code === "ENOENT" ? `not found: ${argv[0]} (is it installed? see tools/ensure-test-deps.sh)` : e.signal ? `signal ${e.signal}` : e.code ?? null;
        reject(new CommandError(argv, code, stdout, stderr));
      });
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs a command in the lab's world (the host as root; the holder's namespaces otherwise). */
export async function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return runRaw([...(await prefix()), ...argv], opts);
}

/** Like run, but a failure is returned rather than thrown. */
export async function tryRun(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult & { ok: boolean; error?: CommandError }> {
  try {
    return { ...(await run(argv, opts)), ok: true };
  } catch (e) {
    if (!(e instanceof CommandError)) throw e;
    return { stdout: e.stdout, stderr: e.stderr, ok: false, error: e };
  }
}

/** Runs a command inside a lab namespace. */
export function nsRun(ns: string, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  return run(["ip", "netns", "exec", ns, ...argv], opts);
}

export function nsTry(ns: string, argv: readonly string[], opts: RunOptions = {}): Promise<RunResult & { ok: boolean; error?: CommandError }> {
  return tryRun(["ip", "netns", "exec", ns, ...argv], opts);
}

/** `ip -n NS ...` */
export function ipIn(ns: string, ...args: string[]): Promise<RunResult> {
  return run(["ip", "-n", ns, ...args]);
}

/**
 * Starts a long-running command inside a lab namespace, detached from this process (it outlives a
 * `lab up` command), output appended to logFile. Returns its pid: `ip netns exec` and nsenter exec
 * the command in place, so the pid is the command's own.
 */
export async function spawnInNs(ns: string, argv: readonly string[], logFile: string): Promise<number> {
  const full = [...(await prefix()), "ip", "netns", "exec", ns, ...argv];
  const fd = openSync(logFile, "a");
  try {
    const child = spawn(full[0], full.slice(1), { env: ENV, detached: true, stdio: ["ignore", fd, fd] });
    if (child.pid === undefined) throw new Error(`cannot start: ${full.join(" ")}`);
    child.unref();
    return child.pid;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// Processes

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
  // a zombie (exited, not yet reaped by its parent) counts as gone
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
  }
}

/** SIGTERM, then SIGKILL after graceMs for whatever still lives; waits until all are gone (bounded). */
export async function stopPids(pids: readonly number[], graceMs = 3000): Promise<void> {
  for (const p of pids) signal(p, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(50);
  const left = pids.filter(isAlive);
  for (const p of left) signal(p, "SIGKILL");
  const killDeadline = Date.now() + 2000;
  while (left.some(isAlive) && Date.now() < killDeadline) await sleep(20);
}

/** A process and all its descendants (from /proc), the process first. */
export function withDescendants(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      parentOf.set(Number(entry), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // gone meanwhile
    }
  }
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    for (const [child, parent] of parentOf) if (parent === out[i]) out.push(child);
  }
  return out;
}

/** The pid in a pid file, if the file exists and names a live process. */
export function pidFromFile(file: string): number | undefined {
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, "utf8").trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

/** The last lines of a text file, or a note that it is missing. */
export function tail(file: string, lines = 30): string {
  if (!existsSync(file)) return `(${file} does not exist)`;
  const text = readFileSync(file, "utf8").trimEnd();
  if (!text) return `(${file} is empty)`;
  return text.split("\n").slice(-lines).join("\n");
}
