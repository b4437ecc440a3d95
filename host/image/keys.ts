// Image signing keys: Ed25519, PEM files (PKCS#8 private, SPKI public) as `openssl genpkey
// -algorithm ed25519` writes them. A box trusts the public keys in its trust directories (*.pub);
// a key whose file name starts with "dev-" is a development key and is shown as one.
//
// The development key is made on the first image build where no key is given
// (.keys/dev-signing.pem + .pub, git-ignored); the simulated board trusts .keys by default, so a
// developer's images boot there and nowhere else. A production box trusts only its installed keys.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readdir, readFile, writeFile } from "node:fs/promises";
import { basename, dirname, join, delimiter } from "node:path";
import { fileURLToPath } from "node:url";
import { formatFingerprint, type BoardKind, type SigningKey, type VerifyKey } from "./format.js";

export interface TrustedKey extends VerifyKey {
  /** The file it was read from. */
  source: string;
  /** A development key (file name starting with "dev-"). */
  development: boolean;
}

/** Where the development key lives, under the package root. */
export const DEV_KEY_DIR = ".keys";
export const DEV_KEY_NAME = "dev-signing";
/** Release public keys shipped with the firmware's base system, under the package root. */
export const PACKAGE_TRUST_DIR = "keys/trusted";
/** Installed public keys on a Linux box. */
export const SYSTEM_TRUST_DIR = "/etc/flowswitch/trusted-keys";

/** SHA-256 of the raw 32-byte Ed25519 public key. */
export function fingerprintBytesOf(publicKey: KeyObject): Uint8Array {
  if (publicKey.asymmetricKeyType !== "ed25519") throw new Error(`not an Ed25519 key (${publicKey.asymmetricKeyType ?? publicKey.type})`);
  const jwk = publicKey.export({ format: "jwk" }) as { x?: string };
  if (!jwk.x) throw new Error("Ed25519 key without its public part");
  return new Uint8Array(createHash("sha256").update(Buffer.from(jwk.x, "base64url")).digest());
}

export function fingerprintOf(publicKey: KeyObject): string {
  return formatFingerprint(fingerprintBytesOf(publicKey));
}

/** A private signing key from a PEM file. */
export async function loadSigningKey(path: string): Promise<SigningKey & { fingerprint: string }> {
  let pem: string;
  try {
    pem = await readFile(path, "utf8");
  } catch (e) {
    throw new Error(`signing key ${path}: ${(e as Error).message}`);
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(pem);
  } catch (e) {
    throw new Error(`signing key ${path}: not a PEM private key (${(e as Error).message})`);
  }
  if (privateKey.asymmetricKeyType !== "ed25519") throw new Error(`signing key ${path}: an Ed25519 key is needed, this is ${privateKey.asymmetricKeyType}`);
  const fingerprintBytes = fingerprintBytesOf(createPublicKey(privateKey));
  return { privateKey, fingerprintBytes, fingerprint: formatFingerprint(fingerprintBytes) };
}

/** A public key from PEM text. */
export function publicKeyFromPem(pem: string, source: string): TrustedKey {
  const key = createPublicKey(pem);
  const fingerprintBytes = fingerprintBytesOf(key);
  return { key, fingerprintBytes, fingerprint: formatFingerprint(fingerprintBytes), source, development: basename(source).startsWith("dev-") };
}

/** Makes an Ed25519 key pair: `<dir>/<name>.pem` (private, mode 0600) and `<dir>/<name>.pub`. */
export async function createKeyPair(dir: string, name: string): Promise<{ privatePath: string; publicPath: string }> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const privatePath = join(dir, `${name}.pem`);
  const publicPath = join(dir, `${name}.pub`);
  await writeFile(privatePath, privateKey.export({ format: "pem", type: "pkcs8" }), { mode: 0o600, flag: "wx" });
  await writeFile(publicPath, publicKey.export({ format: "pem", type: "spki" }), { flag: "wx" });
  return { privatePath, publicPath };
}

/**
 * The development signing key under `root`, made if missing. `created` says whether this call
 * made it (the builder says so, once).
 */
export async function ensureDevKey(root: string): Promise<{ path: string; publicPath: string; created: boolean }> {
  const dir = join(root, DEV_KEY_DIR);
  const path = join(dir, `${DEV_KEY_NAME}.pem`);
  const publicPath = join(dir, `${DEV_KEY_NAME}.pub`);
  try {
    await readFile(path);
    try {
      await readFile(publicPath);
    } catch {
      // the public half went missing: write it again from the private key
      await writeFile(publicPath, createPublicKey(createPrivateKey(await readFile(path, "utf8"))).export({ format: "pem", type: "spki" }));
    }
    return { path, publicPath, created: false };
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
  }
  await createKeyPair(dir, DEV_KEY_NAME);
  return { path, publicPath, created: true };
}

/**
 * The public keys (*.pub) in `dirs`. A missing directory holds none; a file that is not an Ed25519
 * public key is skipped and reported in `problems`.
 */
export async function loadTrustedKeys(dirs: readonly string[]): Promise<{ keys: TrustedKey[]; problems: string[] }> {
  const keys: TrustedKey[] = [];
  const problems: string[] = [];
  for (const dir of dirs) {
    let names: string[];
    try {
      names = (await readdir(dir)).filter((n) => n.endsWith(".pub")).sort();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") problems.push(`${dir}: ${(e as Error).message}`);
      continue;
    }
    for (const n of names) {
      const source = join(dir, n);
      try {
        const k = publicKeyFromPem(await readFile(source, "utf8"), source);
        if (!keys.some((x) => x.fingerprint === k.fingerprint)) keys.push(k);
      } catch (e) {
        problems.push(`${source}: not an Ed25519 public key (${(e as Error).message})`);
      }
    }
  }
  return { keys, problems };
}

/**
 * The trust directories of a board: $FLOWSWITCH_TRUST (a path list) when set (the boot step passes
 * its own to the image it starts); otherwise the package's release keys, plus the development key
 * directory on the simulated board or the system's installed keys on a Linux board.
 */
export function defaultTrustDirs(board: BoardKind, root: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const fromEnv = env.FLOWSWITCH_TRUST;
  if (fromEnv) return fromEnv.split(delimiter).filter(Boolean);
  return board === "sim" ? [join(root, PACKAGE_TRUST_DIR), join(root, DEV_KEY_DIR)] : [SYSTEM_TRUST_DIR, join(root, PACKAGE_TRUST_DIR)];
}

/**
 * The firmware's root: the nearest directory above this module holding a package.json (the
 * checkout when built, the run directory when started from an image slot); else the working
 * directory.
 */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "package.json"))) return dir;
    const up = dirname(dir);
    if (up === dir) return process.cwd();
    dir = up;
  }
}
