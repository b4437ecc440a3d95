// A workshop for the image tests on the simulated board: a temporary directory with a release
// key pair (and its trust directory), a quiet factory configuration (no SNMP, no MQTT: tests run
// side by side), and the three tools run as commands, each bounded in time.
import { mkdtemp, readFile, rm, writeFile, open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BootEnvStore, type BootEnv } from "../../board/bootenv.js";
import { FLASH_LAYOUT, openFlashFile } from "../../board/flash.js";
import { createKeyPair } from "../../host/image/keys.js";
import { ROOT, TOOL, runNode, type RunResult } from "./helpers.js";

export interface Workshop {
  dir: string;
  /** The release signing key (private) and the directory trusting its public half. */
  key: string;
  trust: string;
  /** Another key pair, trusted by nobody. */
  strangerKey: string;
  config: string;
  cleanup(): Promise<void>;
}

export async function workshop(prefix: string): Promise<Workshop> {
  const dir = await mkdtemp(join(tmpdir(), `fsw-${prefix}-`));
  const { privatePath: key } = await createKeyPair(join(dir, "keys"), "release");
  const { privatePath: strangerKey } = await createKeyPair(join(dir, "stranger"), "stranger");
  const demo = JSON.parse(await readFile(join(ROOT, "board/sim/demo-config.json"), "utf8")) as Record<string, unknown>;
  delete demo.snmp;
  demo.telemetry = { enabled: false };
  const config = join(dir, "quiet-config.json");
  await writeFile(config, JSON.stringify(demo, null, 2));
  return { dir, key, trust: join(dir, "keys"), strangerKey, config, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export interface Built extends RunResult {
  path: string;
  summary: { bytes: number; buildMs: number; devSigned: boolean; keyFingerprint: string; files: { name: string; bytes: number }[] };
}

/** Runs the image builder; `args` are added to --out and --json. */
export async function buildWith(w: Workshop, name: string, args: string[]): Promise<Built> {
  const path = join(w.dir, `${name}.img`);
  const r = await runNode(TOOL("flowswitch-image"), ["--out", path, "--json", ...args], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`image builder failed (${r.code}): ${r.stderr}`);
  return { ...r, path, summary: JSON.parse(r.stdout) as Built["summary"] };
}

export function flashTool(w: Workshop, device: string, image: string, extra: string[] = []): Promise<RunResult> {
  return runNode(TOOL("flowswitch-flash"), ["--device", device, "--trust", w.trust, "--create", ...extra, image], { timeoutMs: 60_000 });
}

/** The boot step with --once: boots, waits for the confirmation, stops the box. */
export function bootOnce(w: Workshop, device: string, extra: string[] = [], timeoutMs = 120_000): Promise<RunResult> {
  return runNode(TOOL("flowswitch-boot"), ["--flash", device, "--trust", w.trust, "--once", ...extra], { timeoutMs });
}

export async function readEnv(device: string): Promise<BootEnv> {
  const flash = await openFlashFile(device);
  try {
    return (await new BootEnvStore(flash.partition("bootenv")).read()).env;
  } finally {
    await flash.close();
  }
}

/** The first `length` bytes of a slot, read straight from the flash file. */
export async function slotBytes(device: string, slot: "A" | "B", length: number): Promise<Buffer> {
  const fh = await open(device, "r");
  try {
    const buf = Buffer.alloc(length);
    await fh.read(buf, 0, length, FLASH_LAYOUT[slot === "A" ? "slotA" : "slotB"].offset);
    return buf;
  } finally {
    await fh.close();
  }
}

/** Changes one byte of a slot on the flash file (damage after the write). */
export async function damageSlot(device: string, slot: "A" | "B", at: number): Promise<void> {
  const fh = await open(device, "r+");
  try {
    const pos = FLASH_LAYOUT[slot === "A" ? "slotA" : "slotB"].offset + at;
    const b = Buffer.alloc(1);
    await fh.read(b, 0, 1, pos);
    b[0]! ^= 0x10;
    await fh.write(b, 0, 1, pos);
  } finally {
    await fh.close();
  }
}
