// The image format (host/image/format.ts): what is built parses back the same, every refusal
// reason is reachable and worded for an operator, and no change to a built image gets through:
// every single byte flipped, every truncation, random damage, never a throw.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  buildImage, parseImage, readHeader, IMAGE_HEADER_SIZE, IMAGE_TRAILER_SIZE, IMAGE_SIGNATURE_CONTEXT, FLAG_DEV_SIGNED, type RefusalCode,
} from "../../host/image/format.js";
import { sign } from "node:crypto";
import { makeKey, prng, smallImage } from "./helpers.js";

const key = makeKey();
const other = makeKey("other-key");
const trusted = [key.trusted];
const enc = new TextEncoder();

function refusal(bytes: Uint8Array, keys = trusted, board: "sim" | "linux" = "sim", maxSize?: number): { code: RefusalCode; reason: string } {
  const r = parseImage(bytes, keys, board, maxSize === undefined ? {} : { maxSize });
  assert.equal(r.ok, false, "expected a refusal");
  return r as { ok: false; code: RefusalCode; reason: string };
}

/** Re-signs `bytes` after an edit of the header or payload, so that only the edit is judged. */
function resign(bytes: Uint8Array, k = key): Uint8Array {
  const end = bytes.length - IMAGE_TRAILER_SIZE;
  const digest = createHash("sha256").update(bytes.subarray(0, end)).digest();
  const out = bytes.slice();
  out.set(digest, end);
  out.set(sign(null, Buffer.concat([Buffer.from(IMAGE_SIGNATURE_CONTEXT, "latin1"), digest]), k.privateKey), end + 32);
  return out;
}

describe("image format", () => {
  it("round trip: version, build time, boards, dev flag, key fingerprint and files come back as built", () => {
    const files = [
      { name: "main.js", data: enc.encode("export {};\n") },
      { name: "package.json", data: enc.encode("{}") },
      { name: "board/sim/demo-config.json", data: enc.encode('{"ports":[]}') },
      { name: "empty.bin", data: new Uint8Array(0) },
      { name: "dataplane.wasm", data: new Uint8Array(5000).map((_, i) => i * 7) },
    ];
    const bytes = buildImage({ version: "2.3.4-rc.1+g1234", buildTime: 1_712_345_678_901, boards: ["sim", "linux"], devSigned: true, files }, key);
    const r = parseImage(bytes, trusted, "linux");
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.image.version, "2.3.4-rc.1+g1234");
    assert.equal(r.image.buildTime, 1_712_345_678_901);
    assert.deepEqual(r.image.boards, ["sim", "linux"]);
    assert.equal(r.image.devSigned, true);
    assert.equal(r.image.keyFingerprint, key.trusted.fingerprint);
    assert.equal(r.image.size, bytes.length);
    assert.deepEqual(r.image.files.map((f) => f.name), files.map((f) => f.name));
    for (const [i, f] of files.entries()) assert.deepEqual(Buffer.from(r.image.files[i]!.data), Buffer.from(f.data));
    assert.equal(bytes.length, IMAGE_HEADER_SIZE + files.reduce((n, f) => n + 2 + enc.encode(f.name).length + 4 + f.data.length, 0) + IMAGE_TRAILER_SIZE);
  });

  it("an image signed with a production key is not marked dev-signed", () => {
    const r = parseImage(smallImage(key), trusted, "sim");
    assert.ok(r.ok);
    assert.equal(r.image.devSigned, false);
  });

  it("padding after the image (XMODEM's 0x1a, zeros, erased flash) is tolerated; other trailing bytes are not", () => {
    const bytes = smallImage(key);
    for (const pad of [0x1a, 0x00, 0xff]) {
      const padded = new Uint8Array(bytes.length + 100).fill(pad);
      padded.set(bytes);
      const r = parseImage(padded, trusted, "sim");
      assert.ok(r.ok, `padding 0x${pad.toString(16)}`);
      assert.equal(r.image.size, bytes.length);
    }
    const junk = new Uint8Array(bytes.length + 3);
    junk.set(bytes);
    junk.set([1, 2, 3], bytes.length);
    assert.equal(refusal(junk).code, "trailing-data");
  });

  describe("refuses, with a reason an operator can act on", () => {
    const good = smallImage(key, { version: "1.2.3" });

    it("bad magic: not an image at all, or an empty slot", () => {
      const r = refusal(enc.encode("#!/bin/sh\necho this is not an image\n".padEnd(300, "x")));
      assert.equal(r.code, "bad-magic");
      assert.match(r.reason, /not a Flowswitch image/);
      assert.match(refusal(new Uint8Array(4096)).reason, /no image \(empty\)/);
      assert.match(refusal(new Uint8Array(4096).fill(0xff)).reason, /no image \(empty\)/);
    });

    it("unsupported format version", () => {
      const b = good.slice();
      b[8] = 2;
      const r = refusal(b);
      assert.equal(r.code, "unsupported-format");
      assert.match(r.reason, /format version 2: this firmware reads version 1/);
    });

    it("truncated: at every length short of the whole image", () => {
      for (let n = 0; n < good.length; n++) {
        const r = refusal(good.subarray(0, n));
        assert.equal(r.code, "truncated", `cut at ${n}: ${r.reason}`);
      }
      assert.match(refusal(good.subarray(0, 200)).reason, new RegExp(`truncated: 200 of ${good.length} bytes`));
    });

    it("digest mismatch: a changed payload byte", () => {
      const b = good.slice();
      b[IMAGE_HEADER_SIZE + 10]! ^= 0x01;
      const r = refusal(b);
      assert.equal(r.code, "digest-mismatch");
      assert.match(r.reason, /damaged/);
    });

    it("untrusted key: intact, but signed by a key this box does not trust", () => {
      const r = refusal(smallImage(other));
      assert.equal(r.code, "untrusted-key");
      assert.ok(r.reason.includes(other.trusted.fingerprint), r.reason);
      assert.match(refusal(good, []).reason, /no trusted keys/);
    });

    it("bad signature: names a trusted key, signed by another", () => {
      const forged = resign(good, other); // digest right, signature by `other`, header names `key`
      const r = refusal(forged);
      assert.equal(r.code, "bad-signature");
      assert.match(r.reason, /not signed by the key it names/);
    });

    it("wrong board: a Linux-only image on the simulated board, and the other way round", () => {
      const r = refusal(smallImage(key, { boards: ["linux"] }), trusted, "sim");
      assert.equal(r.code, "wrong-board");
      assert.match(r.reason, /is for the linux board, this is the sim board/);
      assert.equal(refusal(smallImage(key, { boards: ["sim"] }), trusted, "linux").code, "wrong-board");
    });

    it("too big for a slot", () => {
      const r = refusal(good, trusted, "sim", good.length - 1);
      assert.equal(r.code, "too-big");
      assert.match(r.reason, /does not fit a slot/);
      assert.ok(parseImage(good, trusted, "sim", { maxSize: good.length }).ok);
    });

    it("bad payload: signed, but without main.js, or with a name that would escape the run directory", () => {
      const noMain = buildImage({ version: "1.0.0", boards: ["sim"], devSigned: false, files: [{ name: "package.json", data: enc.encode("{}") }] }, key);
      assert.match(refusal(noMain).reason, /bad payload: no main.js/);
      // a builder that did not check names: patch "main.js" into "../a.js" (same length) and re-sign
      const b = smallImage(key);
      const at = Buffer.from(b).indexOf("main.js");
      b.set(enc.encode("../a.js"), at);
      const r = refusal(resign(b));
      assert.equal(r.code, "bad-payload");
      assert.match(r.reason, /"\.\." part/);
    });

    it("bad header: unknown flags in a signed image (a newer builder)", () => {
      const b = good.slice();
      b[12] = FLAG_DEV_SIGNED | 0x80;
      const r = refusal(resign(b));
      assert.equal(r.code, "bad-header");
      assert.match(r.reason, /unknown flags/);
    });
  });

  it("mutation: every single byte of an image, flipped, is refused", () => {
    const bytes = smallImage(key, { extra: [{ name: "data.bin", data: new Uint8Array(300).map((_, i) => i) }] });
    const rand = prng(0x5eed);
    for (let i = 0; i < bytes.length; i++) {
      const b = bytes.slice();
      b[i]! ^= 1 << Math.floor(rand() * 8);
      const r = parseImage(b, trusted, "sim");
      assert.equal(r.ok, false, `byte ${i} flipped was accepted`);
    }
  });

  it("mutation: random damage to a 1 MiB image (bytes changed, inserted, removed) is refused and never throws", () => {
    const big = smallImage(key, { extra: [{ name: "blob", data: new Uint8Array(1 << 20).map((_, i) => (i * 2654435761) >>> 24) }] });
    const rand = prng(0xbadc0de);
    const counts = new Map<string, number>();
    for (let n = 0; n < 300; n++) {
      let b: Uint8Array = big.slice();
      const what = n % 3;
      const at = Math.floor(rand() * big.length);
      if (what === 0) b[at] = (b[at]! + 1 + Math.floor(rand() * 255)) & 0xff;
      else if (what === 1) b = Buffer.concat([b.subarray(0, at), Buffer.from([Math.floor(rand() * 256)]), b.subarray(at)]);
      else b = Buffer.concat([b.subarray(0, at), b.subarray(at + 1)]);
      const r = parseImage(b, trusted, "sim");
      assert.equal(r.ok, false, `damage ${what} at ${at} accepted`);
      if (!r.ok) counts.set(r.code, (counts.get(r.code) ?? 0) + 1);
    }
    assert.ok(counts.get("digest-mismatch")! > 0, JSON.stringify([...counts]));
  });

  it("random bytes, and headers with random fields, never throw", () => {
    const rand = prng(42);
    const good = smallImage(key);
    for (let n = 0; n < 2000; n++) {
      const len = Math.floor(rand() * 400);
      const b = n % 2 ? new Uint8Array(len).map(() => Math.floor(rand() * 256)) : good.slice(0, Math.max(len, IMAGE_HEADER_SIZE));
      if (n % 2 === 0) for (let i = 8; i < IMAGE_HEADER_SIZE; i++) if (rand() < 0.1) b[i] = Math.floor(rand() * 256);
      assert.doesNotThrow(() => parseImage(b, trusted, "sim"));
      assert.doesNotThrow(() => readHeader(b));
    }
  });

  it("the builder refuses what no image may hold", () => {
    assert.throws(() => smallImage(key, { version: "1.0 beta" }), /image version/);
    assert.throws(() => smallImage(key, { extra: [{ name: "/etc/passwd", data: new Uint8Array(1) }] }), /not a relative path/);
    assert.throws(() => smallImage(key, { extra: [{ name: "main.js", data: new Uint8Array(1) }] }), /given twice/);
  });
});
