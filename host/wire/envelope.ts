// The signed envelope shared by Flowswitch's UDP protocols (service advertisements, the redundant
// pair's heartbeats). Each protocol is an EnvelopeFormat: its version, its largest datagram and
// its message checker; the envelope itself is the same for all, and written down in
// docs/advertisement-protocol.md ("Envelope").
//
// A datagram is the CBOR array [version, keyId, sender, seq, timeMs, message, mac], where mac is
// HMAC-SHA256 over the CBOR encoding of the same array without its last element. Since an array's
// elements are concatenated after a one-byte head, the MAC input is the datagram with its head
// 0x87 replaced by 0x86 and the trailing 34-byte mac item cut off. So the receiver reads only the
// head, the version and the key id by hand, checks the MAC over the exact bytes that were sent,
// and only then lets the CBOR decoder see the rest: unauthenticated bytes never reach cbor-x's tag
// extensions. Trade-off: the mac must be the last item and exactly a 32-byte byte string.
//
// Decoding never throws: every way a datagram can be wrong is a result with a reason.

import { createHmac, timingSafeEqual } from "node:crypto";
import { Decoder, Encoder } from "cbor-x";
import { FieldError, id, int, validate } from "./fields.js";

/** Key ids are 16-bit on the wire. */
export const KEY_ID_MAX = 0xffff;

export interface AuthKey {
  id: number;
  secret: Uint8Array;
}

export type EnvelopeFailure = "malformed" | "unknown-key" | "bad-mac" | "unsupported-version" | "bad-field";

export type Opened<M> =
  | { ok: true; msg: M; sender: string; seq: number; time: number; keyId: number }
  | { ok: false; reason: EnvelopeFailure; detail: string };

/** What makes one protocol out of the envelope. */
export interface EnvelopeFormat<M> {
  /** Item 0; a receiver refuses any other as unsupported-version. */
  version: number;
  /** Largest datagram sent or accepted, MAC included. */
  maxBytes: number;
  /** Checks item 5, returning the normalized message or throwing FieldError at `path`. */
  message(v: unknown, path: string): M;
}

const MAC_BYTES = 32;
/** The mac item on the wire: 0x58 (byte string, 1-byte length) 0x20 (32) then the digest. */
const MAC_ITEM_BYTES = 2 + MAC_BYTES;
const HEAD_WITH_MAC = 0x87; // array of 7
const HEAD_WITHOUT_MAC = 0x86; // array of 6

// Plain maps and arrays only: no record extension, no tagged typed arrays, exact float64 for
// integers beyond 32 bits (cbor-x writes those as floats; they round-trip exactly below 2^53).
const encoder = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });
const decoder = new Decoder({ useRecords: false, mapsAsObjects: true });

export class Envelope<M> {
  constructor(readonly format: EnvelopeFormat<M>) {}

  /**
   * Encodes and signs one message. The message is checked first: an invalid message, sender,
   * sequence number, time or key, or a datagram over maxBytes, is the caller's bug and throws a
   * RangeError naming the field, so nothing leaves the box that a peer would refuse.
   */
  encode(msg: M, key: AuthKey, seq: number, now: number, sender: string): Uint8Array {
    const { version, maxBytes } = this.format;
    const checked = validate(() => {
      const keyId = int(key.id, "keyId", 0, KEY_ID_MAX);
      if (!(key.secret instanceof Uint8Array) || key.secret.length === 0) throw new FieldError("key.secret", "must be a non-empty byte array");
      return [keyId, id(sender, "sender"), int(seq, "seq", 0, Number.MAX_SAFE_INTEGER), int(now, "time", 0, Number.MAX_SAFE_INTEGER), this.format.message(msg, "msg")] as const;
    });
    if (!checked.ok) throw new RangeError(`${checked.path}: ${checked.detail}`);
    const [keyId, snd, sq, time, m] = checked.value;

    const signed = encoder.encode([version, keyId, snd, sq, time, m]);
    const out = new Uint8Array(signed.length + MAC_ITEM_BYTES);
    if (signed[0] !== HEAD_WITHOUT_MAC) throw new Error("cbor-x wrote an unexpected array head");
    out.set(signed, 0);
    out[0] = HEAD_WITH_MAC;
    out[signed.length] = 0x58;
    out[signed.length + 1] = MAC_BYTES;
    out.set(mac(key.secret, signed), signed.length + 2);
    if (out.length > maxBytes) throw new RangeError(`msg: encodes to ${out.length} bytes, over the ${maxBytes}-byte limit`);
    return out;
  }

  /** Verifies and decodes one datagram. Never throws. */
  decode(bytes: Uint8Array, keys: ReadonlyMap<number, Uint8Array>): Opened<M> {
    try {
      return this.decodeUnsafe(bytes, keys);
    } catch (e) {
      // Only cbor-x can throw here, on bytes that carried a valid MAC.
      return fail("malformed", `CBOR: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private decodeUnsafe(bytes: Uint8Array, keys: ReadonlyMap<number, Uint8Array>): Opened<M> {
    const { version: expectedVersion, maxBytes } = this.format;
    if (!(bytes instanceof Uint8Array)) return fail("malformed", "not a byte array");
    if (bytes.length > maxBytes) return fail("malformed", `datagram of ${bytes.length} bytes is over the ${maxBytes}-byte limit`);
    if (bytes.length < 3 + MAC_ITEM_BYTES || bytes[0] !== HEAD_WITH_MAC) return fail("malformed", "not an envelope (array of 7 ending in a 32-byte MAC)");
    const macAt = bytes.length - MAC_ITEM_BYTES;
    if (bytes[macAt] !== 0x58 || bytes[macAt + 1] !== MAC_BYTES) return fail("malformed", "last item is not a 32-byte MAC");

    const version = readUint(bytes, 1);
    if (version === null || version.end > macAt) return fail("malformed", "version is not an unsigned integer");
    if (version.value !== expectedVersion) return fail("unsupported-version", `version ${version.value}, this end speaks ${expectedVersion}`);
    const keyId = readUint(bytes, version.end);
    if (keyId === null || keyId.end > macAt) return fail("malformed", "key id is not an unsigned integer");
    const secret = keys.get(keyId.value);
    if (secret === undefined) return fail("unknown-key", `key id ${keyId.value} is not configured`);

    const signed = Uint8Array.from(bytes.subarray(0, macAt));
    signed[0] = HEAD_WITHOUT_MAC;
    const expected = mac(secret, signed);
    if (!timingSafeEqual(expected, bytes.subarray(macAt + 2))) return fail("bad-mac", `MAC does not verify with key id ${keyId.value}`);

    const envelope: unknown = decoder.decode(signed);
    if (!Array.isArray(envelope) || envelope.length !== 6) return fail("malformed", "envelope is not an array of 6 before the MAC");
    const checked = validate(() => ({
      sender: id(envelope[2], "sender"),
      seq: int(envelope[3], "seq", 0, Number.MAX_SAFE_INTEGER),
      time: int(envelope[4], "time", 0, Number.MAX_SAFE_INTEGER),
      msg: this.format.message(envelope[5], "msg"),
    }));
    if (!checked.ok) return fail("bad-field", `${checked.path}: ${checked.detail}`);
    return { ok: true, ...checked.value, keyId: keyId.value };
  }
}

function fail(reason: EnvelopeFailure, detail: string): { ok: false; reason: EnvelopeFailure; detail: string } {
  return { ok: false, reason, detail };
}

function mac(secret: Uint8Array, data: Uint8Array): Buffer {
  return createHmac("sha256", secret).update(data).digest();
}

/** A CBOR unsigned integer (major type 0) of up to 4 bytes at `at`; null if it is anything else. */
export function readUint(b: Uint8Array, at: number): { value: number; end: number } | null {
  if (at >= b.length) return null;
  const head = b[at]!;
  if (head >> 5 !== 0) return null;
  const info = head & 0x1f;
  if (info < 24) return { value: info, end: at + 1 };
  const size = info === 24 ? 1 : info === 25 ? 2 : info === 26 ? 4 : 0;
  if (size === 0 || at + 1 + size > b.length) return null;
  let value = 0;
  for (let i = 1; i <= size; i++) value = value * 256 + b[at + i]!;
  return { value, end: at + 1 + size };
}
