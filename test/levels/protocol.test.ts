// The levels wire format as docs/levels-protocol.md writes it: version 2001 of the shared envelope,
// every message round-trips, every field is checked with its path, other protocols' datagrams are
// refused as another version, and a site's update is cut into pages that each fit 1400 bytes.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Encoder } from "cbor-x";
import * as L from "../../assembly/layout.js";
import {
  LEVELS_MAX_DATAGRAM_BYTES, LEVELS_PROTOCOL_VERSION, decodeLevels, encodeLevels, loadPages,
  type LevelsMessage, type LoadEntry,
} from "../../host/levels/protocol.js";
import { parseWirePrefix } from "../../host/levels/prefix.js";
import { encodeHa, type HeartbeatMsg } from "../../host/ha/protocol.js";
import { encode as encodeDiscovery } from "../../host/discovery/protocol.js";

const KEY = { id: 7, secret: Buffer.from("levels secret, sixteen bytes or more") };
const KEYS: ReadonlyMap<number, Uint8Array> = new Map([[KEY.id, KEY.secret]]);
const NOW = 1_700_000_000_123;

const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });
/** A datagram signed the document's way, with any message at all. */
function raw(msg: unknown, version = 2001): Uint8Array {
  const env = [version, KEY.id, "site-east", 5, NOW, msg];
  return cbor.encode([...env, createHmac("sha256", KEY.secret).update(cbor.encode(env)).digest()]);
}
function refused(msg: unknown): string {
  const r = decodeLevels(raw(msg), KEYS);
  assert.equal(r.ok, false, JSON.stringify(msg));
  assert.ok(!r.ok);
  assert.equal(r.reason, "bad-field");
  return r.detail;
}
function roundTrip(msg: LevelsMessage): LevelsMessage {
  const r = decodeLevels(encodeLevels(msg, KEY, 9, NOW, "site-east"), KEYS);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.sender, "site-east");
  assert.equal(r.seq, 9);
  assert.equal(r.time, NOW);
  return r.msg;
}

const key4 = Uint8Array.from({ length: L.FLOW4_KEY }, (_, i) => i);
const key6 = Uint8Array.from({ length: L.FLOW6_KEY }, (_, i) => 255 - i);

describe("levels protocol: messages", () => {
  it("uses version 2001, apart from discovery (1), HA (1) and HA sync (1001)", () => {
    assert.equal(LEVELS_PROTOCOL_VERSION, 2001);
    assert.equal(LEVELS_MAX_DATAGRAM_BYTES, 1400);
  });

  it("is exactly the document's envelope, signed the document's way", () => {
    const ping: LevelsMessage = { type: "ping", nonce: 42 };
    assert.deepEqual(Buffer.from(encodeLevels(ping, KEY, 5, NOW, "site-east")), Buffer.from(raw(ping)));
  });

  it("round-trips load, ping, pong, whohas (both families), have and none", () => {
    const load: LevelsMessage = {
      type: "load", intervalMs: 1000, page: 0, pages: 2,
      entries: [
        { prefix: "192.0.2.10/32", load: 0.42, members: 3, flows: 1200 },
        { prefix: "2001:db8::/32", load: 0, members: 0, flows: 0 },
      ],
    };
    assert.deepEqual(roundTrip(load), load);
    assert.deepEqual(roundTrip({ type: "ping", nonce: 0xffffffff }), { type: "ping", nonce: 0xffffffff });
    assert.deepEqual(roundTrip({ type: "pong", nonce: 0 }), { type: "pong", nonce: 0 });
    const w4: LevelsMessage = { type: "whohas", id: 17, family: 4, key: key4 };
    const w6: LevelsMessage = { type: "whohas", id: 18, family: 6, key: key6 };
    assert.deepEqual(roundTrip(w4), w4);
    assert.deepEqual(roundTrip(w6), w6);
    const have: LevelsMessage = { type: "have", id: 17, flow: { service: "web", backend: "srv-2", rule: "pin-a", flags: 9, port: 1, leftMs: 290_000 } };
    assert.deepEqual(roundTrip(have), have);
    const noRule: LevelsMessage = { type: "have", id: 3, flow: { service: "web", backend: "srv-2", flags: 1, port: 0, leftMs: 1 } };
    assert.deepEqual(roundTrip(noRule), noRule);
    assert.deepEqual(roundTrip({ type: "none", id: 17 }), { type: "none", id: 17 });
  });

  it("writes prefixes in canonical form, so two spellings are one key", () => {
    const m = roundTrip({ type: "load", intervalMs: 1000, page: 0, pages: 1, entries: [{ prefix: "2001:DB8:0:0::/64", load: 1, members: 1, flows: 0 }] });
    assert.equal(m.type === "load" && m.entries[0]!.prefix, "2001:db8::/64");
  });

  it("refuses a heartbeat, an advertisement and a sync frame as another version, before the MAC", () => {
    const hb: HeartbeatMsg = {
      type: "heartbeat", node: "fs-a", bootId: "b1", state: "active", priority: 100, ready: true, maintenance: false,
      configVersion: 1, configDigest: "0".repeat(64), intervalMs: 50, link: "direct", keyIds: [7],
    };
    for (const bytes of [
      encodeHa(hb, KEY, 1, NOW),
      encodeDiscovery({ type: "load", endSystem: "web-01", cpu: 1, connections: 2, responseTimeUs: 3 }, KEY, 1, NOW, "web-01"),
      raw({ type: "ack", seq: 1 }, 1001),
    ]) {
      const r = decodeLevels(bytes, KEYS);
      assert.ok(!r.ok && r.reason === "unsupported-version", JSON.stringify(r));
    }
  });

  it("refuses each bad field by its path", () => {
    const entry = { prefix: "192.0.2.0/24", load: 0.5, members: 2, flows: 10 };
    const load = (o: object) => ({ type: "load", intervalMs: 1000, page: 0, pages: 1, entries: [entry], ...o });
    assert.match(refused({ type: "hello" }), /^msg\.type: must be one of load, ping/);
    assert.match(refused(load({ extra: 1 })), /^msg\.extra: unknown field/);
    assert.match(refused(load({ intervalMs: 5 })), /^msg\.intervalMs: 5 is outside 10-600000/);
    assert.match(refused(load({ page: 1, pages: 1 })), /^msg\.page: 1 is not below pages 1/);
    assert.match(refused(load({ pages: 0 })), /^msg\.pages:/);
    assert.match(refused(load({ entries: [{ ...entry, prefix: "192.0.2.1/24" }] })), /^msg\.entries\[0\]\.prefix: host bits are set beyond \/24/);
    assert.match(refused(load({ entries: [{ ...entry, prefix: "192.0.2.1" }] })), /^msg\.entries\[0\]\.prefix: must be a prefix/);
    assert.match(refused(load({ entries: [{ ...entry, prefix: "192.0.2.0/33" }] })), /^msg\.entries\[0\]\.prefix: prefix length 33 is over 32/);
    assert.match(refused(load({ entries: [{ ...entry, load: -0.1 }] })), /^msg\.entries\[0\]\.load: -0\.1 is outside/);
    assert.match(refused(load({ entries: [{ ...entry, load: Number.NaN }] })), /^msg\.entries\[0\]\.load: must be a number/);
    assert.match(refused(load({ entries: [{ ...entry, members: 1.5 }] })), /^msg\.entries\[0\]\.members: must be an integer/);
    assert.match(refused(load({ entries: [{ ...entry, flows: -1 }] })), /^msg\.entries\[0\]\.flows:/);
    assert.match(refused(load({ entries: [entry, { ...entry, prefix: "192.0.2.0/24" }] })), /^msg\.entries\[1\]\.prefix: 192\.0\.2\.0\/24 appears twice/);
    assert.match(refused({ type: "ping" }), /^msg\.nonce: missing/);
    assert.match(refused({ type: "pong", nonce: 2 ** 32 }), /^msg\.nonce:/);
    assert.match(refused({ type: "whohas", id: 1, family: 5, key: key4 }), /^msg\.family: must be 4 or 6/);
    assert.match(refused({ type: "whohas", id: 1, family: 6, key: key4 }), new RegExp(`^msg\\.key: must be a byte string of ${L.FLOW6_KEY} bytes`));
    assert.match(refused({ type: "whohas", id: 1, family: 4, key: "0011" }), /^msg\.key:/);
    const flow = { service: "web", backend: "srv-2", flags: 1, port: 0, leftMs: 10 };
    assert.match(refused({ type: "have", id: 1, flow: { ...flow, leftMs: 0 } }), /^msg\.flow\.leftMs: 0 is outside 1-/);
    assert.match(refused({ type: "have", id: 1, flow: { ...flow, flags: 256 } }), /^msg\.flow\.flags:/);
    assert.match(refused({ type: "have", id: 1, flow: { ...flow, service: "" } }), /^msg\.flow\.service:/);
    assert.match(refused({ type: "have", id: 1, flow: { ...flow, rule: "a\nb" } }), /^msg\.flow\.rule: must not contain control characters/);
    assert.match(refused({ type: "have", id: 1 }), /^msg\.flow: missing/);
    assert.match(refused({ type: "none", id: -1 }), /^msg\.id:/);
  });

  it("never throws on garbage, truncation or flipped bytes", () => {
    const good = encodeLevels({ type: "whohas", id: 1, family: 6, key: key6 }, KEY, 1, NOW, "sys-1");
    const inputs: Uint8Array[] = [new Uint8Array(0), Uint8Array.of(0x87), Buffer.from("hello world, not cbor at all, not even close"), good.subarray(0, good.length - 1)];
    for (let i = 0; i < good.length; i++) {
      const b = Uint8Array.from(good);
      b[i]! ^= 0x41;
      inputs.push(b);
    }
    for (const b of inputs) assert.equal(decodeLevels(b, KEYS).ok, false);
  });

  it("refuses a datagram over 1400 bytes unread", () => {
    const r = decodeLevels(new Uint8Array(1401).fill(0x87), KEYS);
    assert.ok(!r.ok && r.reason === "malformed" && /1400/.test(r.detail));
  });

  it("an encoder's bad message is a RangeError naming the field", () => {
    assert.throws(() => encodeLevels({ type: "none", id: -1 }, KEY, 1, NOW, "s"), /msg\.id/);
  });
});

describe("levels protocol: loadPages", () => {
  const v6 = (i: number): LoadEntry => ({
    prefix: `2001:db8:${(i >> 16).toString(16)}:${(i & 0xffff).toString(16)}:ffff:ffff:ffff:ff${(i & 0xff).toString(16).padStart(2, "0")}/128`,
    load: 0.123456789 + i, members: 0xffffffff, flows: Number.MAX_SAFE_INTEGER,
  });

  it("one page with no entries when there is nothing to report (the site is still alive)", () => {
    assert.deepEqual(loadPages([], 1000), [{ type: "load", intervalMs: 1000, page: 0, pages: 1, entries: [] }]);
  });

  it("cuts many large entries into numbered pages that each fit 1400 bytes, whatever sender and sequence number", () => {
    const entries = Array.from({ length: 500 }, (_, i) => v6(i));
    const pages = loadPages(entries, 1000);
    assert.ok(pages.length > 1);
    pages.forEach((p, i) => {
      assert.equal(p.page, i);
      assert.equal(p.pages, pages.length);
      const bytes = encodeLevels(p, { id: 65535, secret: KEY.secret }, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, "s".repeat(64));
      assert.ok(bytes.length <= 1400, `page ${i}: ${bytes.length} bytes`);
    });
    // the same entries in the same order, prefixes in canonical text
    assert.deepEqual(pages.flatMap((p) => p.entries), entries.map((e) => ({ ...e, prefix: (parseWirePrefix(e.prefix) as { text: string }).text })));
    // no waste: one more entry would not have fitted the fullest page
    const fullest = Math.max(...pages.map((p) => encodeLevels(p, KEY, 1, NOW, "s").length));
    assert.ok(fullest > 1400 - 150, `fullest page only ${fullest} bytes`);
  });

  it("keeps small entries within the 64-per-page bound", () => {
    const entries = Array.from({ length: 200 }, (_, i) => ({ prefix: `10.0.${i}.0/24`, load: 0, members: 1, flows: 0 }));
    const pages = loadPages(entries, 500);
    for (const p of pages) assert.ok(p.entries.length <= 64);
    assert.equal(pages.flatMap((p) => p.entries).length, 200);
  });

  it("a bad entry is the caller's bug", () => {
    assert.throws(() => loadPages([{ prefix: "10.0.0.1/8", load: 0, members: 0, flows: 0 }], 1000), RangeError);
  });
});
