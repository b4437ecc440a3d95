// The firmware image format: the one implementation, used by the image builder, the flash tool,
// the boot step and the running box (`request system software add`). docs/image-format.md
// describes the same bytes for people.
//
//   header   128 bytes (below)
//   payload  the files: per file u16 name length, name (UTF-8), u32 data length, data
//   digest   32 bytes: SHA-256 of header and payload
//   sig      64 bytes: Ed25519 signature of "FLOWSWITCH-IMAGE-V1\0" followed by the digest
//
// Header, little-endian:
//   0    8 bytes   magic "FSWIMAGE"
//   8    u16       format version (1)
//   10   u16       header size (128)
//   12   u32       flags: bit 0 signed with a development key
//   16   u64       build time, ms since the epoch
//   24   u32       payload length in bytes
//   28   u32       number of files in the payload
//   32   u32       boards it runs on: bit 0 sim, bit 1 linux
//   36   u32       reserved, zero
//   40   32 bytes  image version (printable ASCII, NUL-padded)
//   72   32 bytes  signing key fingerprint: SHA-256 of the raw 32-byte Ed25519 public key
//   104  24 bytes  reserved, zero
//
// The signature covers the digest, and the digest covers every byte before it, so any changed byte
// is refused; signing the 32-byte digest rather than the whole image lets a boot loader hash a slot
// as it streams it and verify one short message at the end. The digest is checked before the key
// and the signature so that a damaged image says "damaged", not "forged".
//
// parseImage never throws on bad input: every refusal is a code and a sentence for the operator.
import { createHash, sign, verify, type KeyObject } from "node:crypto";

export const IMAGE_MAGIC = "FSWIMAGE";
export const IMAGE_FORMAT_VERSION = 1;
export const IMAGE_HEADER_SIZE = 128;
export const IMAGE_DIGEST_SIZE = 32;
export const IMAGE_SIGNATURE_SIZE = 64;
/** Bytes after the payload: digest and signature. */
export const IMAGE_TRAILER_SIZE = IMAGE_DIGEST_SIZE + IMAGE_SIGNATURE_SIZE;
/** What the Ed25519 signature signs, before the digest: a signature for another purpose never fits. */
export const IMAGE_SIGNATURE_CONTEXT = "FLOWSWITCH-IMAGE-V1\0";
/** Longest version string. */
export const IMAGE_VERSION_BYTES = 32;
/** Files every image holds: the entry point the boot step starts. */
export const IMAGE_REQUIRED_FILES = ["main.js", "package.json"] as const;
/**
 * Bytes after the image that are tolerated when they are padding (all 0x1a, 0x00 or 0xff): XMODEM
 * pads its last block with 0x1a, a raw read of a slot or a block device returns what follows.
 */
export const IMAGE_MAX_PADDING = 64 * 1024;

export const FLAG_DEV_SIGNED = 1;
const KNOWN_FLAGS = FLAG_DEV_SIGNED;

export type BoardKind = "sim" | "linux";
export const BOARD_BITS: Readonly<Record<BoardKind, number>> = { sim: 1, linux: 2 };
const KNOWN_BOARDS = BOARD_BITS.sim | BOARD_BITS.linux;

const VERSION_RE = /^[0-9A-Za-z][0-9A-Za-z.+_~-]*$/;
const MAX_NAME_BYTES = 255;

export type RefusalCode =
  | "bad-magic"
  | "unsupported-format"
  | "bad-header"
  | "truncated"
  | "trailing-data"
  | "too-big"
  | "digest-mismatch"
  | "untrusted-key"
  | "bad-signature"
  | "wrong-board"
  | "bad-payload";

export interface ImageFile {
  name: string;
  data: Uint8Array;
}

export interface ParsedImage {
  version: string;
  /** ms since the epoch. */
  buildTime: number;
  devSigned: boolean;
  boards: BoardKind[];
  /** "sha256:" + 64 hex digits. */
  keyFingerprint: string;
  /** Bytes of the image itself (header to signature), without any padding that followed it. */
  size: number;
  /** The payload's files, in image order; data are views into the parsed bytes. */
  files: ImageFile[];
}

export type ParseResult = { ok: true; image: ParsedImage } | { ok: false; code: RefusalCode; reason: string };

/** A public key an image may be signed with, as parseImage needs it. */
export interface VerifyKey {
  /** SHA-256 of the raw public key. */
  fingerprintBytes: Uint8Array;
  fingerprint: string;
  key: KeyObject;
}

export interface ParseOptions {
  /** Largest image accepted (a slot's size). */
  maxSize?: number;
}

/** The header's fields, as far as they can be read without any trust. */
export interface HeaderInfo {
  formatVersion: number;
  flags: number;
  buildTime: number;
  payloadLength: number;
  fileCount: number;
  boardBits: number;
  version: string;
  fingerprintBytes: Uint8Array;
  /** Header + payload + digest + signature. */
  totalSize: number;
}

function refuse(code: RefusalCode, reason: string): { ok: false; code: RefusalCode; reason: string } {
  return { ok: false, code, reason };
}

export function formatFingerprint(bytes: Uint8Array): string {
  return `sha256:${Buffer.from(bytes).toString("hex")}`;
}

function boardsOf(bits: number): BoardKind[] {
  return (Object.keys(BOARD_BITS) as BoardKind[]).filter((b) => (bits & BOARD_BITS[b]) !== 0);
}

function fmtBytes(n: number): string {
  return n >= 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MiB` : n >= 1024 ? `${(n / 1024).toFixed(1)} KiB` : `${n} bytes`;
}

/**
 * Reads the header at the start of `bytes` (at least IMAGE_HEADER_SIZE of them for a full answer):
 * enough to know how long the image is. Nothing here is trusted yet.
 */
export function readHeader(bytes: Uint8Array): { ok: true; header: HeaderInfo } | { ok: false; code: RefusalCode; reason: string } {
  const magic = new TextEncoder().encode(IMAGE_MAGIC);
  const prefix = Math.min(bytes.length, magic.length);
  for (let i = 0; i < prefix; i++) {
    if (bytes[i] !== magic[i]) {
      const empty = bytes.subarray(0, Math.min(bytes.length, IMAGE_HEADER_SIZE));
      if (empty.every((x) => x === 0) || empty.every((x) => x === 0xff)) return refuse("bad-magic", "no image (empty)");
      return refuse("bad-magic", "not a Flowswitch image (bad magic)");
    }
  }
  if (bytes.length === 0) return refuse("truncated", "no image (0 bytes)");
  if (bytes.length < IMAGE_HEADER_SIZE) return refuse("truncated", `truncated: ${bytes.length} bytes, the header alone is ${IMAGE_HEADER_SIZE}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, IMAGE_HEADER_SIZE);
  const formatVersion = dv.getUint16(8, true);
  if (formatVersion !== IMAGE_FORMAT_VERSION) return refuse("unsupported-format", `image format version ${formatVersion}: this firmware reads version ${IMAGE_FORMAT_VERSION}`);
  const headerSize = dv.getUint16(10, true);
  if (headerSize !== IMAGE_HEADER_SIZE) return refuse("bad-header", `header size ${headerSize}, format version 1 has ${IMAGE_HEADER_SIZE}: damaged header`);
  const payloadLength = dv.getUint32(24, true);
  const buildTime = dv.getBigUint64(16, true);
  const versionField = bytes.subarray(40, 40 + IMAGE_VERSION_BYTES);
  const end = versionField.indexOf(0);
  const version = new TextDecoder("utf-8", { fatal: false }).decode(end < 0 ? versionField : versionField.subarray(0, end));
  return {
    ok: true,
    header: {
      formatVersion,
      flags: dv.getUint32(12, true),
      buildTime: buildTime > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(buildTime),
      payloadLength,
      fileCount: dv.getUint32(28, true),
      boardBits: dv.getUint32(32, true),
      version,
      fingerprintBytes: bytes.slice(72, 104),
      totalSize: IMAGE_HEADER_SIZE + payloadLength + IMAGE_TRAILER_SIZE,
    },
  };
}

/**
 * Checks an image completely: format, length, digest, a trusted key, the signature, the board,
 * the payload's file table. Never throws; a refusal says why in words an operator can act on.
 */
export function parseImage(bytes: Uint8Array, trusted: readonly VerifyKey[], board: BoardKind, opts: ParseOptions = {}): ParseResult {
  try {
    return parseUnchecked(bytes, trusted, board, opts);
  } catch (e) {
    // nothing above should throw; if it does, it is still a refusal, never a crash of the box
    return refuse("bad-header", `image could not be read: ${(e as Error).message}`);
  }
}

function parseUnchecked(bytes: Uint8Array, trusted: readonly VerifyKey[], board: BoardKind, opts: ParseOptions): ParseResult {
  const h = readHeader(bytes);
  if (!h.ok) return h;
  const { header } = h;
  const total = header.totalSize;
  if (opts.maxSize !== undefined && total > opts.maxSize) {
    return refuse("too-big", `image of ${fmtBytes(total)} does not fit a slot of ${fmtBytes(opts.maxSize)}`);
  }
  if (bytes.length < total) return refuse("truncated", `truncated: ${bytes.length} of ${total} bytes`);
  if (bytes.length > total) {
    const extra = bytes.subarray(total);
    const pad = extra[0]!;
    if (extra.length > IMAGE_MAX_PADDING || (pad !== 0x1a && pad !== 0x00 && pad !== 0xff) || !extra.every((x) => x === pad)) {
      return refuse("trailing-data", `${bytes.length - total} bytes follow the ${total}-byte image: not an image as built (or a damaged length)`);
    }
  }
  const signedEnd = IMAGE_HEADER_SIZE + header.payloadLength;
  const digest = createHash("sha256").update(bytes.subarray(0, signedEnd)).digest();
  if (!digest.equals(bytes.subarray(signedEnd, signedEnd + IMAGE_DIGEST_SIZE))) {
    return refuse("digest-mismatch", "digest mismatch: the image is damaged (a changed byte or an interrupted transfer)");
  }
  const fingerprint = formatFingerprint(header.fingerprintBytes);
  const key = trusted.find((k) => Buffer.from(k.fingerprintBytes).equals(header.fingerprintBytes));
  if (!key) {
    return refuse("untrusted-key", `signed by key ${fingerprint}, which this box does not trust${trusted.length ? ` (trusted: ${trusted.map((k) => k.fingerprint.slice(0, 23)).join(", ")})` : " (no trusted keys)"}`);
  }
  const sig = bytes.subarray(signedEnd + IMAGE_DIGEST_SIZE, total);
  let good = false;
  try {
    good = verify(null, signedMessage(digest), key.key, sig);
  } catch {
    good = false;
  }
  if (!good) return refuse("bad-signature", `bad signature: not signed by the key it names (${fingerprint})`);

  // authentic from here on: what is still wrong was built wrong
  if (header.flags & ~KNOWN_FLAGS) return refuse("bad-header", `unknown flags 0x${header.flags.toString(16)}: built by a newer image builder`);
  if (header.boardBits === 0 || header.boardBits & ~KNOWN_BOARDS) return refuse("bad-header", `unknown board bits 0x${header.boardBits.toString(16)}`);
  if (!VERSION_RE.test(header.version)) return refuse("bad-header", `version ${JSON.stringify(header.version)} is not a version string`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, IMAGE_HEADER_SIZE);
  if (dv.getUint32(36, true) !== 0 || !bytes.subarray(104, 128).every((x) => x === 0)) return refuse("bad-header", "reserved header bytes are not zero: built by a newer image builder");
  const boards = boardsOf(header.boardBits);
  if (!boards.includes(board)) {
    return refuse("wrong-board", `image ${header.version} is for the ${boards.join(" and ")} board${boards.length > 1 ? "s" : ""}, this is the ${board} board`);
  }
  const files = parseFiles(bytes.subarray(IMAGE_HEADER_SIZE, signedEnd), header.fileCount);
  if (typeof files === "string") return refuse("bad-payload", `bad payload: ${files}`);
  for (const required of IMAGE_REQUIRED_FILES) {
    if (!files.some((f) => f.name === required)) return refuse("bad-payload", `bad payload: no ${required}`);
  }
  return {
    ok: true,
    image: {
      version: header.version,
      buildTime: header.buildTime,
      devSigned: (header.flags & FLAG_DEV_SIGNED) !== 0,
      boards,
      keyFingerprint: fingerprint,
      size: total,
      files,
    },
  };
}

/** A payload-relative file name that is safe to unpack: relative, no "..", no odd characters. */
export function fileNameProblem(name: string): string | undefined {
  if (!name) return "empty file name";
  if (new TextEncoder().encode(name).length > MAX_NAME_BYTES) return `file name longer than ${MAX_NAME_BYTES} bytes`;
  if (name.startsWith("/") || name.includes("\\") || name.includes("\0")) return `file name ${JSON.stringify(name)} is not a relative path`;
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return `file name ${JSON.stringify(name)} holds control characters`;
  if (name.split("/").some((part) => part === "" || part === "." || part === "..")) return `file name ${JSON.stringify(name)} has an empty, "." or ".." part`;
  return undefined;
}

function parseFiles(payload: Uint8Array, count: number): ImageFile[] | string {
  const dv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  const files: ImageFile[] = [];
  const names = new Set<string>();
  const dirs = new Set<string>();
  let at = 0;
  const decoder = new TextDecoder("utf-8", { fatal: true });
  for (let i = 0; i < count; i++) {
    if (at + 2 > payload.length) return `file ${i + 1} of ${count} starts past the payload's end`;
    const nameLen = dv.getUint16(at, true);
    at += 2;
    if (at + nameLen + 4 > payload.length) return `file ${i + 1} of ${count}: name runs past the payload's end`;
    let name: string;
    try {
      name = decoder.decode(payload.subarray(at, at + nameLen));
    } catch {
      return `file ${i + 1} of ${count}: name is not UTF-8`;
    }
    at += nameLen;
    const problem = fileNameProblem(name);
    if (problem) return problem;
    if (names.has(name) || dirs.has(name)) return `file ${name} appears twice`;
    const parts = name.split("/");
    for (let p = 1; p < parts.length; p++) {
      const dir = parts.slice(0, p).join("/");
      if (names.has(dir)) return `${dir} is both a file and a directory`;
      dirs.add(dir);
    }
    names.add(name);
    const size = dv.getUint32(at, true);
    at += 4;
    if (at + size > payload.length) return `file ${name}: ${size} bytes run past the payload's end`;
    files.push({ name, data: payload.subarray(at, at + size) });
    at += size;
  }
  if (at !== payload.length) return `${payload.length - at} bytes after the last of ${count} files`;
  return files;
}

function signedMessage(digest: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(IMAGE_SIGNATURE_CONTEXT, "latin1"), digest]);
}

export interface BuildImageInput {
  version: string;
  /** ms since the epoch (default: now). */
  buildTime?: number;
  boards: BoardKind[];
  devSigned: boolean;
  files: ImageFile[];
}

/** A signing key: the private key and the fingerprint of its public half. */
export interface SigningKey {
  privateKey: KeyObject;
  fingerprintBytes: Uint8Array;
}

/** The image bytes for `input`, signed with `key`. Throws on input no image may hold (a builder's mistake). */
export function buildImage(input: BuildImageInput, key: SigningKey): Uint8Array {
  const versionBytes = new TextEncoder().encode(input.version);
  if (!VERSION_RE.test(input.version) || versionBytes.length > IMAGE_VERSION_BYTES) throw new Error(`image version ${JSON.stringify(input.version)}: letters, digits and . + _ ~ - only, at most ${IMAGE_VERSION_BYTES} bytes`);
  if (!input.boards.length) throw new Error("an image must name at least one board");
  if (key.fingerprintBytes.length !== 32) throw new Error("key fingerprint must be 32 bytes");
  const seen = new Set<string>();
  const parts: Uint8Array[] = [];
  for (const f of input.files) {
    const problem = fileNameProblem(f.name);
    if (problem) throw new Error(problem);
    if (seen.has(f.name)) throw new Error(`file ${f.name} given twice`);
    seen.add(f.name);
    const name = new TextEncoder().encode(f.name);
    const head = new Uint8Array(2 + name.length + 4);
    const dv = new DataView(head.buffer);
    dv.setUint16(0, name.length, true);
    head.set(name, 2);
    dv.setUint32(2 + name.length, f.data.length, true);
    parts.push(head, f.data);
  }
  const payloadLength = parts.reduce((n, p) => n + p.length, 0);
  if (payloadLength > 0xffffffff - IMAGE_HEADER_SIZE - IMAGE_TRAILER_SIZE) throw new Error("payload too large for the format (4 GiB)");
  const out = new Uint8Array(IMAGE_HEADER_SIZE + payloadLength + IMAGE_TRAILER_SIZE);
  const dv = new DataView(out.buffer);
  out.set(new TextEncoder().encode(IMAGE_MAGIC), 0);
  dv.setUint16(8, IMAGE_FORMAT_VERSION, true);
  dv.setUint16(10, IMAGE_HEADER_SIZE, true);
  dv.setUint32(12, input.devSigned ? FLAG_DEV_SIGNED : 0, true);
  dv.setBigUint64(16, BigInt(Math.floor(input.buildTime ?? Date.now())), true);
  dv.setUint32(24, payloadLength, true);
  dv.setUint32(28, input.files.length, true);
  dv.setUint32(32, input.boards.reduce((bits, b) => bits | BOARD_BITS[b], 0), true);
  out.set(versionBytes, 40);
  out.set(key.fingerprintBytes, 72);
  let at = IMAGE_HEADER_SIZE;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  const digest = createHash("sha256").update(out.subarray(0, at)).digest();
  out.set(digest, at);
  out.set(sign(null, signedMessage(digest), key.privateKey), at + IMAGE_DIGEST_SIZE);
  return out;
}
