// Passwords are stored only as scrypt hashes: `scrypt$N$r$p$salt$hash` (salt and hash base64). The
// cost makes a stolen configuration expensive to attack; verification compares in constant time.
import { scrypt, randomBytes, timingSafeEqual } from "node:crypto";

const N = 1 << 15; // ~50 ms per guess on the management CPU: invisible at login, slow for a cracker
const R = 8;
const P = 1;
const KEYLEN = 32;
const MAXMEM = 64 * 1024 * 1024;

function derive(password: string, salt: Buffer, n: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(password.normalize("NFC"), salt, KEYLEN, { N: n, r, p, maxmem: MAXMEM }, (e, key) => (e ? reject(e) : resolve(key)));
  });
}

export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, N, R, P);
  return `scrypt$${N}$${R}$${P}$${salt.toString("base64")}$${key.toString("base64")}`;
}

/** True when password matches the stored hash; false for a wrong password or a malformed hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parts = stored.split("$");
  if (parts.length !== 6 || parts[0] !== "scrypt") return false;
  const [n, r, p] = parts.slice(1, 4).map(Number);
  if (![n, r, p].every(Number.isInteger) || n > 1 << 20 || r > 32 || p > 16) return false;
  const salt = Buffer.from(parts[4], "base64");
  const want = Buffer.from(parts[5], "base64");
  try {
    const got = await derive(password, salt, n, r, p);
    return got.length === want.length && timingSafeEqual(got, want);
  } catch {
    return false;
  }
}

/** What a new password must be; undefined when it is acceptable. */
export function passwordProblem(password: string, user: string): string | undefined {
  if (password.length < 8) return "at least 8 characters";
  if (password.length > 128) return "at most 128 characters";
  if (password.toLowerCase().includes(user.toLowerCase())) return "not containing the user name";
  if (password === DEFAULT_PASSWORD) return "not the factory default";
  return undefined;
}

/**
 * The factory login, for a box with no users configured: it works once, and only to set a real
 * password for `admin`.
 */
export const DEFAULT_USER = "admin";
export const DEFAULT_PASSWORD = "flowswitch";
