// Shared by the image tests: an in-memory flash, throwaway signing keys, small images, and child
// processes bounded in time.
import { generateKeyPairSync } from "node:crypto";
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import type { Flash, Partition, PartitionName } from "../../board/flash.js";
import { buildImage, type BoardKind, type ImageFile, type SigningKey } from "../../host/image/format.js";
import { fingerprintBytesOf, publicKeyFromPem, type TrustedKey } from "../../host/image/keys.js";

export const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const TOOL = (name: string): string => fileURLToPath(new URL(`../../tools/${name}.js`, import.meta.url));

/** A partition in memory; `cut` (bytes still allowed to land) simulates a power cut mid-write. */
export class MemoryPartition implements Partition {
  readonly bytes: Uint8Array;
  writes = 0;
  constructor(readonly name: string, readonly size: number) {
    this.bytes = new Uint8Array(size);
  }
  async read(offset: number, length: number): Promise<Uint8Array> {
    if (offset < 0 || offset + length > this.size) throw new RangeError(`read outside ${this.name}`);
    return this.bytes.slice(offset, offset + length);
  }
  async write(offset: number, data: Uint8Array): Promise<void> {
    if (offset < 0 || offset + data.length > this.size) throw new RangeError(`write outside ${this.name}`);
    this.writes++;
    this.bytes.set(data, offset);
  }
  async sync(): Promise<void> {}
}

export class PowerCut extends Error {}

/** A flash in memory with small slots (tests need no 64 MiB). */
export class MemoryFlash implements Flash {
  readonly parts: Record<PartitionName, MemoryPartition>;
  /** When set: bytes that may still be written before the power goes (PowerCut thrown after). */
  budget?: number;
  constructor(slotSize = 256 * 1024) {
    this.parts = {
      bootenv: new MemoryPartition("bootenv", 64 * 1024),
      slotA: new MemoryPartition("slotA", slotSize),
      slotB: new MemoryPartition("slotB", slotSize),
      config: new MemoryPartition("config", 64 * 1024),
    };
  }
  partition(name: PartitionName): Partition {
    const p = this.parts[name];
    return {
      name: p.name,
      size: p.size,
      read: (o, l) => p.read(o, l),
      write: async (o, data) => {
        if (this.budget !== undefined) {
          if (this.budget < data.length) {
            await p.write(o, data.subarray(0, this.budget)); // a torn write: the first bytes landed
            this.budget = 0;
            throw new PowerCut("power cut");
          }
          this.budget -= data.length;
        }
        await p.write(o, data);
      },
      sync: () => p.sync(),
    };
  }
  async close(): Promise<void> {}
  /** A copy of the whole flash, as after a power cut. */
  clone(): MemoryFlash {
    const c = new MemoryFlash(this.parts.slotA.size);
    for (const n of Object.keys(this.parts) as PartitionName[]) c.parts[n].bytes.set(this.parts[n].bytes);
    return c;
  }
}

export interface TestKey extends SigningKey {
  trusted: TrustedKey;
}

export function makeKey(name = "test-key"): TestKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return { privateKey, fingerprintBytes: fingerprintBytesOf(publicKey), trusted: publicKeyFromPem(publicKey.export({ format: "pem", type: "spki" }) as string, `${name}.pub`) };
}

/** A small image: a main.js (given or a stub), package.json, and `extra` files. */
export function smallImage(key: TestKey, o: { version?: string; boards?: BoardKind[]; devSigned?: boolean; mainJs?: string; extra?: ImageFile[]; buildTime?: number } = {}): Uint8Array {
  const version = o.version ?? "1.0.0";
  const enc = new TextEncoder();
  return buildImage(
    {
      version,
      buildTime: o.buildTime ?? 1_700_000_000_000,
      boards: o.boards ?? ["sim"],
      devSigned: o.devSigned ?? false,
      files: [
        { name: "main.js", data: enc.encode(o.mainJs ?? "console.log('hello');\n") },
        { name: "package.json", data: enc.encode(JSON.stringify({ name: "flowswitch", version, type: "module" })) },
        ...(o.extra ?? []),
      ],
    },
    key,
  );
}

/** Deterministic random numbers (mulberry32) so that a failing run can be repeated with its seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The environment for a child node process: not a test file itself. */
export function childEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  delete env.FLOWSWITCH_SIGNING_KEY;
  delete env.FLOWSWITCH_TRUST;
  delete env.FLOWSWITCH_BOOT_SLOT;
  delete env.FLOWSWITCH_BOOT_ID;
  return env;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `node script args` to completion, killed (SIGKILL) after `timeoutMs`. */
export function runNode(script: string, args: string[], o: { timeoutMs?: number; env?: NodeJS.ProcessEnv; stdin?: "pipe" | "ignore" } = {}): Promise<RunResult> {
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, ...args], { env: childEnv(o.env), stdio: [o.stdin ?? "pipe", "pipe", "pipe"], cwd: ROOT });
    let stdout = "";
    let stderr = "";
    child.stdout!.on("data", (d: Buffer) => (stdout += d.toString("utf8")));
    child.stderr!.on("data", (d: Buffer) => (stderr += d.toString("utf8")));
    const timer = setTimeout(() => {
      stderr += `\n[test: killed after ${o.timeoutMs ?? 60_000} ms]`;
      child.kill("SIGKILL");
    }, o.timeoutMs ?? 60_000);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - started });
    });
  });
}
