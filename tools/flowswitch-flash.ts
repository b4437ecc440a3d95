#!/usr/bin/env node
// flowswitch-flash: writes a firmware image onto a box's flash (a file for the simulated board, a
// file or block device for the Linux board) the safe way (docs/boot.md): verify the image, write
// the slot that is not the active one, read it back and compare, then mark it to be tried once. The
// boot step boots it next; unless it confirms itself healthy, the previous slot boots again.
// `--status` shows what the slots hold instead.
// Exit codes: 0 written (or status shown), 1 refused or failed, 2 usage.
import { parseArgs } from "node:util";
import { readFile, stat } from "node:fs/promises";
import { realpathSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { openFlashFile, type Flash } from "../board/flash.js";
import { BootEnvStore } from "../board/bootenv.js";
import { BOARD_BITS, type BoardKind } from "../host/image/format.js";
import { defaultTrustDirs, loadTrustedKeys, type TrustedKey } from "../host/image/keys.js";
import { installImage, offlineTarget } from "../host/image/slots.js";
import { SoftwareSlots, type SoftwareStatus } from "../host/image/software.js";

const USAGE = `usage: flowswitch-flash --device DEV [--board sim|linux] [--trust DIR]... [--create] IMAGE
       flowswitch-flash --device DEV --status [--board sim|linux] [--trust DIR]... [--json]

Verifies IMAGE (format, digest, signature by a trusted key, board, size), writes it into the slot
that is not the active one, reads it back, and marks it to be tried once on the next boot.
  --device DEV   the flash: a file (simulated board) or a block device
  --board KIND   the board the flash belongs to (default: sim)
  --trust DIR    a directory of trusted public keys (*.pub); repeatable. Default: $FLOWSWITCH_TRUST,
                 else keys/trusted and, on the simulated board, the development key in .keys
  --create       make DEV (a sparse file) when it does not exist
  --status       show what each slot holds and which boots next; write nothing`;

class UsageError extends Error {}

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function say(line: string): void {
  process.stdout.write(`flowswitch-flash: ${line}\n`);
}

function fail(line: string): void {
  process.stderr.write(`flowswitch-flash: ${line}\n`);
}

async function trustedKeys(dirs: string[] | undefined, board: BoardKind): Promise<TrustedKey[]> {
  const { keys, problems } = await loadTrustedKeys(dirs?.length ? dirs.map((d) => resolve(d)) : defaultTrustDirs(board, ROOT));
  for (const p of problems) fail(`warning: ${p}`);
  return keys;
}

export function renderStatus(s: SoftwareStatus): string {
  const rows = s.slots.map((x) => {
    const flags = [x.active ? "active" : "", x.next ? `next (${x.triesLeft} ${x.triesLeft === 1 ? "try" : "tries"})` : "", x.confirmed ? "confirmed" : ""].filter(Boolean).join(", ");
    const what = x.valid ? `${x.version} built ${new Date(x.buildTime ?? 0).toISOString().replace("T", " ").slice(0, 19)}${x.devSigned ? " (development key)" : ""}` : `no bootable image: ${x.reason}`;
    return `  slot ${x.name}: ${what}${flags ? `\n          ${flags}` : ""}${x.note ? `\n          note: ${x.note}` : ""}`;
  });
  return [
    `board ${s.board}; boots from slot ${s.slots.find((x) => x.active)?.name ?? "(none confirmed yet)"}`,
    ...rows,
    ...(s.lastEvent ? [`  last event: ${s.lastEvent}`] : []),
    `  trusted keys: ${s.trustedKeys.length ? s.trustedKeys.map((k) => `${k.fingerprint.slice(0, 23)}... (${k.source}${k.development ? ", development" : ""})`).join("; ") : "none"}`,
  ].join("\n");
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      device: { type: "string" },
      board: { type: "string", default: "sim" },
      trust: { type: "string", multiple: true },
      create: { type: "boolean" },
      status: { type: "boolean" },
      json: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  if (!values.device) throw new UsageError("--device is required");
  const board = values.board as BoardKind;
  if (!(board in BOARD_BITS)) throw new UsageError(`--board ${values.board}: expected ${Object.keys(BOARD_BITS).join(" or ")}`);
  if (!values.status && positionals.length !== 1) throw new UsageError("name exactly one IMAGE file");
  const trusted = await trustedKeys(values.trust, board);

  let flash: Flash;
  try {
    flash = await openFlashFile(values.device, { create: values.create });
  } catch (e) {
    fail((e as Error).message);
    return 1;
  }
  try {
    if (values.status) {
      const s = await new SoftwareSlots(flash, { trusted, board }).status();
      process.stdout.write(values.json ? `${JSON.stringify(s)}\n` : `${renderStatus(s)}\n`);
      return 0;
    }
    const imagePath = positionals[0]!;
    let image: Uint8Array;
    try {
      const st = await stat(imagePath);
      if (!st.isFile()) throw new Error("not a regular file");
      image = new Uint8Array(await readFile(imagePath));
    } catch (e) {
      fail(`cannot read image ${imagePath}: ${(e as Error).message}`);
      return 1;
    }
    if (!trusted.length) fail("warning: no trusted keys: every image will be refused (use --trust DIR)");
    const env = new BootEnvStore(flash.partition("bootenv"));
    const { env: before } = await env.read();
    const target = offlineTarget(before);
    if (!target.ok) {
      fail(target.reason);
      return 1;
    }
    const started = Date.now();
    const r = await installImage(flash, env, image, { target: target.slot, trusted, board, progress: say });
    if (!r.ok) {
      fail(`${imagePath}: ${r.reason}`);
      fail(`nothing was written to the active slot${before.active ? ` (${before.active})` : ""}; it still boots`);
      return 1;
    }
    say(`slot ${r.slot}: ${r.version} written and verified in ${Date.now() - started} ms (${r.bytes} bytes)`);
    say(`slot ${r.slot} boots next, once; unless it confirms itself healthy, ${before.active ? `slot ${before.active}` : "the previous image"} boots again`);
    return 0;
  } finally {
    await flash.close();
  }
}

if (process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url)) {
  run(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (e: unknown) => {
      if (e instanceof UsageError || (e as { code?: string }).code?.startsWith("ERR_PARSE_ARGS")) {
        fail(`${(e as Error).message}\n${USAGE}`);
        process.exitCode = 2;
        return;
      }
      fail(e instanceof Error ? e.stack ?? e.message : String(e));
      process.exitCode = 1;
    },
  );
}
