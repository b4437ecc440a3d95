// One user of the lab at a time. The namespace names are fixed, so two test runs (or a test run and
// the benchmark) would tear down each other's lab. A run takes the lock (a file holding its pid,
// created exclusively); a lock whose process is gone is stale and taken over. The lab command line
// (`lab up`, `lab down`) refuses to touch a lab that a live run holds.
import { openSync, closeSync, writeSync, readFileSync, rmSync } from "node:fs";
import { ensureStateDir, isAlive, sleep, statePath } from "./exec.js";

const lockPath = (): string => statePath("lab.lock");

/** The pid and command line of the live process holding the lab, if another one does. */
export function labHolder(): { pid: number; command: string } | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(lockPath(), "utf8").trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || !isAlive(pid)) return undefined;
  let command = "";
  try {
    command = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean).join(" ");
  } catch {
    // gone meanwhile, or not ours to read
  }
  return { pid, command };
}

/**
 * Takes the lab for this process, waiting (at most waitMs) while another live process holds it.
 * Six lab suites queue for it in one test run (two at a time): the last may wait for the other
 * five, about 6 minutes on a 2-core machine, so the default wait covers 15.
 */
export async function acquireLab(waitMs = 900_000): Promise<void> {
  ensureStateDir();
  const deadline = Date.now() + waitMs;
  for (;;) {
    try {
      const fd = openSync(lockPath(), "wx");
      writeSync(fd, `${process.pid}\n`);
      closeSync(fd);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
    }
    const holder = labHolder();
    if (!holder) {
      let mine = false;
      try {
        mine = Number(readFileSync(lockPath(), "utf8").trim()) === process.pid;
      } catch {
        // removed meanwhile: try again
      }
      if (mine) return;
      rmSync(lockPath(), { force: true }); // stale: its process is gone
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`the lab is in use by pid ${holder.pid} (${holder.command || "unknown command"}) for more than ${waitMs / 1000} s; only one test run or benchmark can use it at a time`);
    }
    await sleep(500);
  }
}

export function releaseLab(): void {
  try {
    if (Number(readFileSync(lockPath(), "utf8").trim()) === process.pid) rmSync(lockPath(), { force: true });
  } catch {
    // not held
  }
}

/** For the command line: refuses (throws) when a live run holds the lab. */
export function assertLabFree(action: string): void {
  const holder = labHolder();
  if (holder) {
    throw new Error(`refusing to ${action}: the lab is in use by pid ${holder.pid} (${holder.command || "unknown command"}). Wait for it to finish, or add --force.`);
  }
}
