#!/usr/bin/env node
// flowswitch-boot: the boot step and its watchdog (docs/boot.md). Reads the boot environment,
// picks a slot (host/image/boot-select.ts), verifies its image against the trusted keys, unpacks
// it into a run directory, starts it (`node main.js --board ...`), and waits for it to confirm
// itself healthy. An image that exits or stays silent past --confirm-timeout is killed, and the
// boot step runs again: a slot on trial then falls back to the previous confirmed slot. An image
// that exits with status 3 (`request system reboot`) is booted again the same way; status 0 (the
// box was stopped) ends the boot step.
// Exit codes: 0 the box stopped (or, with --once, the image confirmed itself), 1 nothing bootable
// or --max-boots reached, 2 usage.
import { parseArgs } from "node:util";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdir, rm, symlink, writeFile, access } from "node:fs/promises";
import { realpathSync } from "node:fs";
import { delimiter, dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { openFlashFile, type Flash } from "../board/flash.js";
import { BootEnvStore, type SlotName } from "../board/bootenv.js";
import { BOARD_BITS, type BoardKind, type ParsedImage } from "../host/image/format.js";
import { defaultTrustDirs, loadTrustedKeys } from "../host/image/keys.js";
import { slotPartition, verifySlot } from "../host/image/slots.js";
import { decideBoot } from "../host/image/boot-select.js";

const USAGE = `usage: flowswitch-boot --flash DEV [--board sim|linux] [--trust DIR]... [--confirm-timeout S]
                       [--run-dir DIR] [--modules DIR] [--once] [--max-boots N] [-- ARGS...]

Boots the box from its flash: picks the slot (a pending try first, else the active one), verifies
its image, unpacks it into the run directory and starts it; the image must confirm itself healthy
within --confirm-timeout seconds, else it is killed and the previous slot boots.
  --flash DEV            the flash (file or block device)
  --board KIND           sim (default) or linux
  --trust DIR            trusted public keys (*.pub), repeatable; default: $FLOWSWITCH_TRUST, else
                         keys/trusted plus .keys (sim) or /etc/flowswitch/trusted-keys (linux)
  --confirm-timeout S    seconds a started image has to confirm itself (default 60)
  --run-dir DIR          where images are unpacked (default: <flash's directory>/run on sim,
                         /run/flowswitch on linux)
  --modules DIR          node_modules with the native addons the image uses (default: this
                         package's)
  --once                 exit once the started image has confirmed itself (stops it): a boot check
  --max-boots N          give up (status 1) after N boots without a confirmed one
  -- ARGS                passed on to the image (linux: --config FILE [--console TTY] ...)`;

class UsageError extends Error {}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const POLL_MS = 200;
const KILL_GRACE_MS = 5000;
/** Status an image exits with to be booted again (`request system reboot`). */
export const REBOOT_STATUS = 3;

function log(line: string): void {
  process.stderr.write(`flowswitch-boot: ${line}\n`);
}

interface Options {
  flash: string;
  board: BoardKind;
  trustDirs: string[];
  confirmTimeoutMs: number;
  runDir: string;
  modules: string;
  once: boolean;
  maxBoots?: number;
  passthrough: string[];
}

function parseOptions(argv: string[]): Options | "help" {
  const dash = argv.indexOf("--");
  const own = dash >= 0 ? argv.slice(0, dash) : argv;
  const passthrough = dash >= 0 ? argv.slice(dash + 1) : [];
  let values;
  try {
    ({ values } = parseArgs({
      args: own,
      options: {
        flash: { type: "string" },
        board: { type: "string", default: "sim" },
        trust: { type: "string", multiple: true },
        "confirm-timeout": { type: "string", default: "60" },
        "run-dir": { type: "string" },
        modules: { type: "string" },
        once: { type: "boolean" },
        "max-boots": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  if (!values.flash) throw new UsageError("--flash is required");
  const board = values.board as BoardKind;
  if (!(board in BOARD_BITS)) throw new UsageError(`--board ${values.board}: expected ${Object.keys(BOARD_BITS).join(" or ")}`);
  const timeout = Number(values["confirm-timeout"]);
  if (!(timeout > 0) || timeout > 86400) throw new UsageError(`--confirm-timeout ${values["confirm-timeout"]}: seconds, more than 0`);
  let maxBoots: number | undefined;
  if (values["max-boots"] !== undefined) {
    maxBoots = Number(values["max-boots"]);
    if (!Number.isSafeInteger(maxBoots) || maxBoots < 1) throw new UsageError(`--max-boots ${values["max-boots"]}: a whole number, at least 1`);
  }
  if (board === "linux" && !passthrough.includes("--config")) throw new UsageError("the linux board needs the appliance's factory configuration: -- --config FILE");
  const flash = resolve(values.flash);
  return {
    flash,
    board,
    trustDirs: values.trust?.length ? values.trust.map((d) => resolve(d)) : defaultTrustDirs(board, ROOT),
    confirmTimeoutMs: Math.round(timeout * 1000),
    runDir: resolve(values["run-dir"] ?? (board === "sim" ? join(dirname(flash), "run") : "/run/flowswitch")),
    modules: resolve(values.modules ?? join(ROOT, "node_modules")),
    once: values.once ?? false,
    maxBoots,
    passthrough,
  };
}

/** Writes the image's files into `dir` (emptied first) and links the native addons next to them. */
async function unpack(image: ParsedImage, dir: string, modules: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  for (const f of image.files) {
    const path = join(dir, f.name); // names were checked by parseImage: relative, no ".."
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, f.data);
  }
  try {
    await access(modules);
    await symlink(modules, join(dir, "node_modules"), "dir");
  } catch {
    log(`no native addons at ${modules}: the image runs without them`);
  }
}

type Outcome = { kind: "confirmed"; ms: number } | { kind: "exited"; code: number | null; signal: NodeJS.Signals | null } | { kind: "timeout" };

/** Waits for the child to confirm its boot (in the boot environment), exit, or run out of time. */
function watch(child: ChildProcess, env: BootEnvStore, slot: SlotName, bootId: number, timeoutMs: number): Promise<Outcome> {
  const started = Date.now();
  return new Promise((done) => {
    let finished = false;
    const finish = (o: Outcome): void => {
      if (finished) return;
      finished = true;
      clearInterval(poll);
      clearTimeout(limit);
      child.off("exit", onExit);
      done(o);
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      // a confirmation written just before exiting still counts
      void env.read().then(
        ({ env: e }) => finish(e.bootId === bootId && e.booted === slot && e.confirmed ? { kind: "confirmed", ms: Date.now() - started } : { kind: "exited", code, signal }),
        () => finish({ kind: "exited", code, signal }),
      );
    };
    child.once("exit", onExit);
    let reading = false;
    const poll = setInterval(() => {
      if (reading) return;
      reading = true;
      env.read().then(
        ({ env: e }) => {
          reading = false;
          if (e.bootId === bootId && e.booted === slot && e.confirmed) finish({ kind: "confirmed", ms: Date.now() - started });
        },
        () => (reading = false),
      );
    }, POLL_MS);
    const limit = setTimeout(() => finish({ kind: "timeout" }), timeoutMs);
  });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode });
  return new Promise((r) => child.once("exit", (code, signal) => r({ code, signal })));
}

/** SIGTERM, then SIGKILL after a grace period; resolves once it is gone. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const gone = exited(child);
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), KILL_GRACE_MS);
  await gone;
  clearTimeout(timer);
}

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal ? `was killed by ${signal}` : `exited with status ${code}`;
}

async function boot(o: Options, flash: Flash): Promise<number> {
  const env = new BootEnvStore(flash.partition("bootenv"));
  const { keys, problems } = await loadTrustedKeys(o.trustDirs);
  for (const p of problems) log(`warning: trusted key skipped: ${p}`);
  log(`trusted keys: ${keys.length ? keys.map((k) => `${k.fingerprint.slice(0, 23)}...${k.development ? " (development)" : ""}`).join(", ") : "none: no image can boot"}`);

  let child: ChildProcess | undefined;
  let stopping = false;
  const onSignal = (sig: NodeJS.Signals): void => {
    stopping = true;
    log(`${sig}: stopping the box`);
    if (child && child.exitCode === null) child.kill("SIGTERM");
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  let boots = 0;
  let failuresInRow = 0;
  try {
    for (;;) {
      if (stopping) return 0;
      if (o.maxBoots !== undefined && boots >= o.maxBoots) {
        log(`giving up after ${boots} boot${boots === 1 ? "" : "s"} without a healthy image`);
        return 1;
      }
      boots++;
      const { env: current } = await env.read();
      const d = await decideBoot(current, (s) => verifySlot(slotPartition(flash, s), s, keys, o.board));
      for (const e of d.events) log(e);
      const written = await env.write(d.env);
      if (!d.ok) {
        log(d.reason);
        return 1;
      }
      const dir = join(o.runDir, d.slot);
      await unpack(d.image, dir, o.modules);
      const args = [join(dir, "main.js"), "--board", o.board, ...(o.board === "sim" ? ["--box"] : []), "--flash", o.flash, ...o.passthrough];
      const childEnv: NodeJS.ProcessEnv = {
        ...process.env,
        FLOWSWITCH_BOOT_SLOT: d.slot,
        FLOWSWITCH_BOOT_ID: String(written.bootId),
        FLOWSWITCH_TRUST: o.trustDirs.join(delimiter),
        ...(o.board === "sim" ? { FLOWSWITCH_STATE_DIR: dirname(o.flash) } : {}),
      };
      delete childEnv.NODE_TEST_CONTEXT; // started from a test runner: the image is not a test file
      const what = `slot ${d.slot} (${d.image.version})`;
      log(`starting ${what}, boot ${written.bootId}; it has ${o.confirmTimeoutMs / 1000} s to confirm itself healthy`);
      child = spawn(process.execPath, args, { cwd: dir, stdio: "inherit", env: childEnv });
      const outcome = await watch(child, env, d.slot, written.bootId, o.confirmTimeoutMs);

      if (outcome.kind === "confirmed") {
        failuresInRow = 0;
        log(`${what} confirmed itself healthy after ${outcome.ms} ms${d.trial ? `: slot ${d.slot} is now the active slot` : ""}`);
        if (o.once) {
          await stop(child);
          return 0;
        }
        const { code, signal } = await exited(child);
        if (stopping) return 0;
        if (code === REBOOT_STATUS) {
          log(`${what} asked for a reboot`);
          continue;
        }
        if (code === 0) {
          log(`${what} stopped`);
          return 0;
        }
        failuresInRow++;
        log(`${what} ${describeExit(code, signal)}: booting again`);
      } else {
        if (outcome.kind === "timeout") {
          log(`${what} did not confirm itself healthy within ${o.confirmTimeoutMs / 1000} s: stopping it`);
          await stop(child);
        }
        if (stopping) return 0;
        const note = outcome.kind === "timeout" ? `did not confirm within ${o.confirmTimeoutMs / 1000} s` : `${describeExit(outcome.code, outcome.signal)} before confirming`;
        if (outcome.kind === "exited") log(`${what} ${note}`);
        await env.update((e) => {
          e.slots[d.slot] = { ...e.slots[d.slot], state: d.trial ? "failed" : e.slots[d.slot].state, note };
          e.message = `${what} ${note}${d.trial ? ": reverting" : ": booting it again"}`;
        });
        failuresInRow = d.trial ? 0 : failuresInRow + 1;
      }
      if (failuresInRow > 0) {
        const wait = Math.min(30_000, 500 * 2 ** Math.min(6, failuresInRow - 1));
        log(`waiting ${wait} ms before booting again`);
        await new Promise((r) => setTimeout(r, wait));
      }
    }
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
    if (child) await stop(child);
  }
}

async function main(argv: string[]): Promise<number> {
  let o: Options | "help";
  try {
    o = parseOptions(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    log(`${e.message}\n${USAGE}`);
    return 2;
  }
  if (o === "help") {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let flash: Flash;
  try {
    flash = await openFlashFile(o.flash);
  } catch (e) {
    log((e as Error).message);
    return 1;
  }
  try {
    return await boot(o, flash);
  } finally {
    await flash.close();
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      log(e instanceof Error ? e.stack ?? e.message : String(e));
      process.exitCode = 1;
    },
  );
}
