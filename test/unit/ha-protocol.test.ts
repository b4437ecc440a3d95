// The heartbeat wire format as docs/ha-protocol.md writes it: the advertisements' envelope with
// the HEARTBEAT message, checked field by field; advertisements and heartbeats never pass for each
// other; the signing key is the highest both ends hold.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Encoder } from "cbor-x";
import { decodeHa, encodeHa, pickKey, HA_MAX_DATAGRAM_BYTES, type HeartbeatMsg } from "../../host/ha/protocol.js";
import { decode as decodeDiscovery, encode as encodeDiscovery, type Message } from "../../host/discovery/protocol.js";

const KEY = { id: 3, secret: Buffer.from("pair secret, at least sixteen bytes") };
const KEYS: ReadonlyMap<number, Uint8Array> = new Map([[KEY.id, KEY.secret]]);
const NOW = 1_700_000_000_123;

const HB: HeartbeatMsg = {
  type: "heartbeat",
  node: "fs-a",
  bootId: "9f8e7d6c5b4a3921",
  state: "active",
  priority: 200,
  ready: true,
  maintenance: false,
  configVersion: 42,
  configDigest: "ab".repeat(32),
  intervalMs: 50,
  link: "direct",
  keyIds: [3, 4],
};

// Written from the document: HMAC-SHA256 over the CBOR array [1, keyId, sender, seq, time, msg], appended as a 7th item.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });
function sign(envelope: unknown[]): Uint8Array {
  return cbor.encode([...envelope, createHmac("sha256", KEY.secret).update(cbor.encode(envelope)).digest()]);
}
function raw(msg: unknown, sender = "fs-a"): Uint8Array {
  return sign([1, KEY.id, sender, 77, NOW, msg]);
}
function refused(bytes: Uint8Array): { reason: string; detail: string } {
  const r = decodeHa(bytes, KEYS);
  assert.equal(r.ok, false);
  return r as { reason: string; detail: string };
}

describe("ha protocol: heartbeat", () => {
  it("round-trips with its sender (the node), sequence number, time and key id", () => {
    const bytes = encodeHa(HB, KEY, 1_700_000_000_000, NOW);
    assert.ok(bytes.length <= 300, `${bytes.length} bytes`);
    assert.deepEqual(decodeHa(bytes, KEYS), { ok: true, msg: HB, sender: "fs-a", seq: 1_700_000_000_000, time: NOW, keyId: 3 });
  });

  it("is exactly the document's envelope, signed the document's way", () => {
    assert.deepEqual(Buffer.from(encodeHa(HB, KEY, 77, NOW)), Buffer.from(raw(HB)));
  });

  it("refuses an advertisement, and an advertisement decoder refuses a heartbeat, even under a shared key", () => {
    const load: Message = { type: "load", endSystem: "web-01", cpu: 1, connections: 2, responseTimeUs: 3 };
    const adv = encodeDiscovery(load, KEY, 1, NOW, "web-01");
    const r1 = refused(adv);
    assert.equal(r1.reason, "bad-field");
    assert.match(r1.detail, /^msg\.type: must be one of heartbeat/);
    const r2 = decodeDiscovery(encodeHa(HB, KEY, 1, NOW), KEYS);
    assert.ok(!r2.ok && r2.reason === "bad-field" && r2.detail.startsWith("msg.type:"), JSON.stringify(r2));
  });

  it("a node other than the envelope's sender is a bad field", () => {
    const r = refused(raw(HB, "fs-b"));
    assert.equal(r.reason, "bad-field");
    assert.match(r.detail, /^msg\.node: fs-a is not the envelope's sender fs-b/);
  });

  it("a datagram over 1024 bytes is refused unread", () => {
    const r = refused(new Uint8Array(HA_MAX_DATAGRAM_BYTES + 1).fill(0x87));
    assert.equal(r.reason, "malformed");
    assert.match(r.detail, /1024/);
  });

  it("another key is bad-mac, an unknown key id unknown-key", () => {
    assert.equal(refused(encodeHa(HB, { id: 3, secret: Buffer.from("another secret of sixteen bytes") }, 1, NOW)).reason, "bad-mac");
    assert.equal(refused(encodeHa(HB, { id: 9, secret: KEY.secret }, 1, NOW)).reason, "unknown-key");
  });

  const cases: [string, string, Record<string, unknown>][] = [
    ["unknown field", "msg.extra", { extra: 1 }],
    ["missing field", "msg.ready", { ready: undefined }],
    ["state unknown", "msg.state", { state: "master" }],
    ["priority 0", "msg.priority", { priority: 0 }],
    ["priority 255", "msg.priority", { priority: 255 }],
    ["ready not a boolean", "msg.ready", { ready: 1 }],
    ["maintenance not a boolean", "msg.maintenance", { maintenance: "no" }],
    ["config version negative", "msg.configVersion", { configVersion: -1 }],
    ["config digest upper case", "msg.configDigest", { configDigest: "AB".repeat(32) }],
    ["config digest short", "msg.configDigest", { configDigest: "ab".repeat(31) }],
    ["interval 9 ms", "msg.intervalMs", { intervalMs: 9 }],
    ["interval 10001 ms", "msg.intervalMs", { intervalMs: 10_001 }],
    ["link name with a space", "msg.link", { link: "a b" }],
    ["boot id empty", "msg.bootId", { bootId: "" }],
    ["no key ids", "msg.keyIds", { keyIds: [] }],
    ["17 key ids", "msg.keyIds", { keyIds: Array.from({ length: 17 }, (_, i) => i) }],
    ["key ids descending", "msg.keyIds[1]", { keyIds: [4, 3] }],
    ["key id twice", "msg.keyIds[1]", { keyIds: [3, 3] }],
    ["key id over 16 bits", "msg.keyIds[0]", { keyIds: [65_536] }],
  ];
  for (const [what, path, over] of cases) {
    it(`${what}: bad-field at ${path}`, () => {
      const r = refused(raw({ ...HB, ...over }));
      assert.equal(r.reason, "bad-field", r.detail);
      assert.ok(r.detail.startsWith(`${path}:`), r.detail);
    });
  }

  it("encode refuses what a peer would refuse, naming the field", () => {
    assert.throws(() => encodeHa({ ...HB, priority: 0 }, KEY, 1, NOW), /msg\.priority/);
    assert.throws(() => encodeHa({ ...HB, node: "a/b" }, KEY, 1, NOW), /sender/);
  });

  it("10 000 random buffers and mutations never throw and never pass", () => {
    let seed = 7;
    const rnd = (): number => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
    const valid = encodeHa(HB, KEY, 1, NOW);
    for (let n = 0; n < 10_000; n++) {
      const b = n % 2 ? Uint8Array.from(valid) : new Uint8Array(Math.floor(rnd() * 400));
      if (n % 2) b[Math.floor(rnd() * b.length)] ^= 1 + Math.floor(rnd() * 255);
      else for (let i = 0; i < b.length; i++) b[i] = Math.floor(rnd() * 256);
      assert.equal(decodeHa(b, KEYS).ok, false);
    }
  });
});

describe("ha protocol: which key signs", () => {
  const k = (id: number) => ({ id, secret: new Uint8Array([id]) });
  it("the highest id both ends hold; before the peer is heard, this node's highest", () => {
    assert.equal(pickKey([k(1), k(2)], undefined)?.id, 2);
    assert.equal(pickKey([k(1), k(2)], [1])?.id, 1, "a key added here first is not used until the peer has it");
    assert.equal(pickKey([k(1), k(2)], [1, 2, 5])?.id, 2);
    assert.equal(pickKey([k(2)], [1, 2])?.id, 2, "a key removed here: the peer follows");
    assert.equal(pickKey([k(7)], [1, 2])?.id, 7, "nothing in common: this node's own (the peer counts unknown-key)");
    assert.equal(pickKey([], [1]), undefined);
  });
});
