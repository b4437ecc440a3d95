// The advertisement wire format as docs/advertisement-protocol.md writes it down: every message
// round-trips, nothing unauthenticated or out of range gets through, and no datagram makes decode
// throw. ReplayGuard accepts each fresh datagram once and keeps bounded state.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { Encoder } from "cbor-x";
import { decode, encode, MAX_DATAGRAM_BYTES, type DecodeResult, type Message } from "../../host/discovery/protocol.js";
import { ReplayGuard } from "../../host/discovery/replay.js";

const KEY = { id: 7, secret: Buffer.from("correct horse battery staple") };
const OTHER = { id: 7, secret: Buffer.from("a different secret") };
const KEYS: ReadonlyMap<number, Uint8Array> = new Map([[KEY.id, KEY.secret]]);
const NOW = 1_700_000_000_123;

const SAMPLES: Message[] = [
  {
    type: "service",
    endSystem: "web-01",
    addresses: ["10.0.0.11", "2001:db8::11"],
    state: "up",
    intervalMs: 1000,
    services: [
      { vip: "192.0.2.10", protocol: 6, port: 443, weight: 100, capacity: 20_000 },
      { vip: "2001:db8:1::10", protocol: 17, port: 0, weight: 0, capacity: 0 },
    ],
  },
  { type: "load", endSystem: "web-01", cpu: 37, connections: 1234, responseTimeUs: 4_200 },
  {
    type: "flow",
    op: "add",
    pattern: { source: "198.51.100.0/24", protocol: 6, vip: "192.0.2.10", srcPorts: { first: 1024, last: 65535 }, dstPorts: { first: 443, last: 443 } },
    endSystem: "web-02",
    attributes: { dscp: 46, pcp: 5, vlanPush: { vid: 100, pcp: 3 }, vlanPop: true, mplsPush: { label: 1_048_575, tc: 7, ttl: 255 }, mplsPop: false, idleTimeoutS: 300 },
  },
  { type: "flow", op: "withdraw", pattern: { vip: "2001:db8::10", source: "::/0" }, endSystem: "web-02", attributes: {} },
  {
    type: "register",
    requestId: 42,
    endSystem: "db-3.rack_2",
    addresses: ["::ffff:10.0.0.3"],
    services: [{ vip: "192.0.2.20", protocol: 132, port: 3868, weight: 1, capacity: 5 }],
  },
  { type: "register-reply", requestId: 42, endSystem: "db-3.rack_2", status: "accepted", intervalMs: 2000 },
  { type: "register-reply", requestId: 43, endSystem: "db-4", status: "refused", reason: "unknown end system", intervalMs: 2000 },
  { type: "server-list-request", requestId: 4_294_967_295, service: { vip: "192.0.2.10", protocol: 6, port: 80 }, offset: 0 },
  {
    type: "server-list-reply",
    requestId: 9,
    service: { vip: "192.0.2.10", protocol: 6, port: 80 },
    total: 3,
    offset: 1,
    servers: [
      { endSystem: "web-02", addresses: ["10.0.0.12"], state: "draining", weight: 50, capacity: 100 },
      { endSystem: "web-03", addresses: ["10.0.0.13"], state: "leaving", weight: 0, capacity: 0 },
    ],
  },
  { type: "number-request", requestId: 1, endSystem: "web-01", pool: "vip10-src-ports", op: "lease", count: 1024, leaseS: 600 },
  { type: "number-request", requestId: 2, endSystem: "web-01", pool: "vip10-src-ports", op: "renew", leaseId: 77, leaseS: 600 },
  { type: "number-request", requestId: 3, endSystem: "web-01", pool: "vip10-src-ports", op: "release", leaseId: 77 },
  { type: "number-grant", requestId: 1, endSystem: "web-01", pool: "vip10-src-ports", status: "granted", leaseId: 77, first: 40_000, count: 1024, leaseS: 300 },
  { type: "number-grant", requestId: 2, endSystem: "web-01", pool: "vip10-src-ports", status: "renewed", leaseId: 77, first: 40_000, count: 1024, leaseS: 300 },
  { type: "number-grant", requestId: 3, endSystem: "web-01", pool: "vip10-src-ports", status: "released", leaseId: 77 },
  { type: "number-grant", requestId: 4, endSystem: "web-01", pool: "vip10-src-ports", status: "refused", reason: "pool exhausted" },
];

// An independent signer written from the document, not from protocol.ts: the MAC is HMAC-SHA256
// over the CBOR array [version, keyId, sender, seq, time, msg], then the mac is appended as a 7th item.
const cbor = new Encoder({ useRecords: false, mapsAsObjects: true, tagUint8Array: false, pack: false });
function sign(envelope: unknown[], secret: Uint8Array = KEY.secret): Uint8Array {
  const mac = createHmac("sha256", secret).update(cbor.encode(envelope)).digest();
  return cbor.encode([...envelope, mac]);
}
function raw(msg: unknown, over: Partial<{ version: unknown; keyId: unknown; sender: unknown; seq: unknown; time: unknown }> = {}): Uint8Array {
  return sign([over.version ?? 1, over.keyId ?? KEY.id, over.sender ?? "web-01", over.seq ?? 1, over.time ?? NOW, msg]);
}

function failure(r: DecodeResult): { reason: string; detail: string } {
  assert.equal(r.ok, false, "decode refused the datagram");
  return r as { reason: string; detail: string };
}

function mulberry32(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe("advertisement protocol: round trip", () => {
  for (const msg of SAMPLES) {
    const label = `${msg.type}${"op" in msg ? ` ${msg.op}` : ""}${"status" in msg ? ` ${msg.status}` : ""}`;
    it(`${label} decodes to the message, sender, sequence number, time and key id that were sent`, () => {
      const bytes = encode(msg, KEY, 123_456_789_012, NOW, "web-01");
      assert.ok(bytes.length <= MAX_DATAGRAM_BYTES);
      const r = decode(bytes, KEYS);
      assert.deepEqual(r, { ok: true, msg, sender: "web-01", seq: 123_456_789_012, time: NOW, keyId: KEY.id });
    });
  }

  it("every message type is covered", () => {
    assert.equal(new Set(SAMPLES.map((m) => m.type)).size, 9);
  });

  it("the datagram is exactly the document's envelope, signed the document's way", () => {
    const msg = SAMPLES[1]!;
    assert.deepEqual(Buffer.from(encode(msg, KEY, 5, NOW, "web-01")), Buffer.from(raw(msg, { seq: 5 })));
  });

  it("undefined optional fields are left out, not sent", () => {
    const msg = { type: "register-reply", requestId: 1, endSystem: "a", status: "accepted", intervalMs: 1000, reason: undefined } as Message;
    const r = decode(encode(msg, KEY, 1, NOW, "a"), KEYS);
    assert.ok(r.ok);
    assert.equal(Object.hasOwn(r.msg, "reason"), false);
  });

  it("encode refuses an invalid message, naming the field, rather than send what peers refuse", () => {
    assert.throws(() => encode({ ...SAMPLES[1], cpu: 101 } as Message, KEY, 1, NOW, "web-01"), /msg\.cpu/);
    assert.throws(() => encode(SAMPLES[1]!, KEY, -1, NOW, "web-01"), /seq/);
    assert.throws(() => encode(SAMPLES[1]!, KEY, 1, NOW, "bad sender"), /sender/);
    assert.throws(() => encode(SAMPLES[1]!, { id: 70_000, secret: KEY.secret }, 1, NOW, "web-01"), /keyId/);
  });
});

describe("advertisement protocol: authentication", () => {
  const valid = encode(SAMPLES[2]!, KEY, 99, NOW, "web-01");

  it("a datagram with any one byte changed is refused", () => {
    for (let i = 0; i < valid.length; i++) {
      for (const x of [0x01, 0x80, 0xff]) {
        const b = Uint8Array.from(valid);
        b[i]! ^= x;
        const r = failure(decode(b, KEYS));
        // Bytes the receiver reads before the MAC (head, version, key id) fail as what they became.
        assert.ok(["bad-mac", "malformed", "unsupported-version", "unknown-key"].includes(r.reason), `byte ${i} ^ ${x}: ${r.reason}`);
        if (i > 3) assert.ok(["bad-mac", "malformed"].includes(r.reason), `byte ${i} ^ ${x}: ${r.reason}`);
      }
    }
  });

  it("a datagram signed with another secret under the same key id is bad-mac", () => {
    assert.equal(failure(decode(encode(SAMPLES[0]!, OTHER, 1, NOW, "web-01"), KEYS)).reason, "bad-mac");
  });

  it("a key id that is not configured is unknown-key, naming the id", () => {
    const r = failure(decode(encode(SAMPLES[0]!, { id: 8, secret: KEY.secret }, 1, NOW, "web-01"), KEYS));
    assert.equal(r.reason, "unknown-key");
    assert.match(r.detail, /\b8\b/);
  });

  it("during rotation both key ids verify, each with its own secret", () => {
    const next = { id: 8, secret: Buffer.from("next secret") };
    const both = new Map([[KEY.id, KEY.secret], [next.id, next.secret]]);
    const a = decode(encode(SAMPLES[1]!, KEY, 1, NOW, "web-01"), both);
    const b = decode(encode(SAMPLES[1]!, next, 2, NOW, "web-01"), both);
    assert.ok(a.ok && a.keyId === 7);
    assert.ok(b.ok && b.keyId === 8);
  });

  it("another version is unsupported-version", () => {
    assert.equal(failure(decode(raw(SAMPLES[1], { version: 2 }), KEYS)).reason, "unsupported-version");
  });

  it("a datagram over 8 KiB is refused before anything else is read", () => {
    const big = new Uint8Array(MAX_DATAGRAM_BYTES + 1);
    big.set(valid);
    const r = failure(decode(big, KEYS));
    assert.equal(r.reason, "malformed");
    assert.match(r.detail, /8192/);
  });

  it("a message too large to fit a datagram is refused by encode", () => {
    const msg = { ...SAMPLES[0], services: [] } as Message;
    assert.doesNotThrow(() => encode(msg, KEY, 1, NOW, "web-01"));
    const fat = { type: "register-reply", requestId: 1, endSystem: "a", status: "refused", reason: "x".repeat(200), intervalMs: 1000 } as Message;
    assert.doesNotThrow(() => encode(fat, KEY, 1, NOW, "a"));
    const servers = Array.from({ length: 64 }, (_, i) => ({
      endSystem: `server-${i}-${"x".repeat(50)}`,
      addresses: Array.from({ length: 16 }, () => "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff"),
      state: "up" as const,
      weight: 1,
      capacity: 1,
    }));
    const huge: Message = { type: "server-list-reply", requestId: 1, service: { vip: "192.0.2.1", protocol: 6, port: 80 }, total: 64, offset: 0, servers };
    assert.throws(() => encode(huge, KEY, 1, NOW, "a"), /8192/);
  });
});

describe("advertisement protocol: every field is checked, and a bad one is named by its path", () => {
  const service = SAMPLES[0] as Extract<Message, { type: "service" }>;
  const flow = SAMPLES[2] as Extract<Message, { type: "flow" }>;
  const base = <T extends Message>(m: T) => structuredClone(m) as unknown as Record<string, any>;

  // [what is wrong, path expected in the detail, the message]
  const cases: [string, string, unknown][] = [
    ["unknown message type", "msg.type", { ...base(SAMPLES[1]!), type: "hello" }],
    ["message is not a map", "msg", [1, 2, 3]],
    ["unknown field", "msg.extra", { ...base(SAMPLES[1]!), extra: 1 }],
    ["missing field", "msg.cpu", (() => { const m = base(SAMPLES[1]!); delete m.cpu; return m; })()],
    ["cpu over 100", "msg.cpu", { ...base(SAMPLES[1]!), cpu: 101 }],
    ["cpu fractional", "msg.cpu", { ...base(SAMPLES[1]!), cpu: 1.5 }],
    ["connections negative", "msg.connections", { ...base(SAMPLES[1]!), connections: -1 }],
    ["connections over 32 bits", "msg.connections", { ...base(SAMPLES[1]!), connections: 2 ** 32 }],
    ["response time a string", "msg.responseTimeUs", { ...base(SAMPLES[1]!), responseTimeUs: "5" }],
    ["end-system id with a space", "msg.endSystem", { ...base(SAMPLES[1]!), endSystem: "web 01" }],
    ["end-system id too long", "msg.endSystem", { ...base(SAMPLES[1]!), endSystem: "a".repeat(65) }],
    ["end-system id empty", "msg.endSystem", { ...base(SAMPLES[1]!), endSystem: "" }],
    ["state unknown", "msg.state", { ...base(service), state: "down" }],
    ["interval too short", "msg.intervalMs", { ...base(service), intervalMs: 99 }],
    ["interval too long", "msg.intervalMs", { ...base(service), intervalMs: 600_001 }],
    ["no addresses", "msg.addresses", { ...base(service), addresses: [] }],
    ["17 addresses", "msg.addresses", { ...base(service), addresses: Array.from({ length: 17 }, (_, i) => `10.0.0.${i + 1}`) }],
    ["address does not parse", "msg.addresses[1]", { ...base(service), addresses: ["10.0.0.1", "10.0.0.256"] }],
    ["address with a zone", "msg.addresses[0]", { ...base(service), addresses: ["fe80::1%eth0"] }],
    ["address multicast", "msg.addresses[0]", { ...base(service), addresses: ["224.0.0.1"] }],
    ["address unspecified", "msg.addresses[0]", { ...base(service), addresses: ["::"] }],
    ["address a number", "msg.addresses[0]", { ...base(service), addresses: [167772161] }],
    ["65 services", "msg.services", { ...base(service), services: Array.from({ length: 65 }, (_, i) => ({ ...service.services[0], port: i })) }],
    ["service twice", "msg.services[1]", { ...base(service), services: [service.services[0], service.services[0]] }],
    ["service port over 65535", "msg.services[0].port", { ...base(service), services: [{ ...service.services[0], port: 65536 }] }],
    ["service protocol not port-carrying", "msg.services[0].protocol", { ...base(service), services: [{ ...service.services[0], protocol: 1 }] }],
    ["service weight over 65535", "msg.services[0].weight", { ...base(service), services: [{ ...service.services[0], weight: 65536 }] }],
    ["service capacity negative", "msg.services[0].capacity", { ...base(service), services: [{ ...service.services[0], capacity: -5 }] }],
    ["service vip bad", "msg.services[0].vip", { ...base(service), services: [{ ...service.services[0], vip: "192.0.2" }] }],
    ["service unknown field", "msg.services[0].name", { ...base(service), services: [{ ...service.services[0], name: "x" }] }],
    ["flow op unknown", "msg.op", { ...base(flow), op: "replace" }],
    ["flow source not a prefix", "msg.pattern.source", { ...base(flow), pattern: { ...flow.pattern, source: "198.51.100.0" } }],
    ["flow source length over 32", "msg.pattern.source", { ...base(flow), pattern: { ...flow.pattern, source: "198.51.100.0/33" } }],
    ["flow source length over 128", "msg.pattern.source", { ...base(flow), pattern: { vip: "2001:db8::1", source: "2001:db8::/129" } }],
    ["flow source host bits set", "msg.pattern.source", { ...base(flow), pattern: { ...flow.pattern, source: "198.51.100.1/24" } }],
    ["flow source IPv6 host bits set", "msg.pattern.source", { ...base(flow), pattern: { vip: "2001:db8::1", source: "2001:db8::1/64" } }],
    ["flow source of the other family", "msg.pattern.source", { ...base(flow), pattern: { ...flow.pattern, source: "2001:db8::/32" } }],
    ["flow protocol over 255", "msg.pattern.protocol", { ...base(flow), pattern: { ...flow.pattern, protocol: 256 } }],
    ["flow ports without a port protocol", "msg.pattern.protocol", { ...base(flow), pattern: { ...flow.pattern, protocol: 1 } }],
    ["flow ports without a protocol", "msg.pattern.protocol", { ...base(flow), pattern: { vip: "192.0.2.10", dstPorts: { first: 1, last: 2 } } }],
    ["flow port range reversed", "msg.pattern.dstPorts.last", { ...base(flow), pattern: { ...flow.pattern, dstPorts: { first: 443, last: 80 } } }],
    ["flow port over 65535", "msg.pattern.srcPorts.last", { ...base(flow), pattern: { ...flow.pattern, srcPorts: { first: 1, last: 65536 } } }],
    ["flow vip missing", "msg.pattern.vip", { ...base(flow), pattern: { protocol: 6 } }],
    ["dscp 64", "msg.attributes.dscp", { ...base(flow), attributes: { dscp: 64 } }],
    ["dscp negative", "msg.attributes.dscp", { ...base(flow), attributes: { dscp: -1 } }],
    ["pcp 8", "msg.attributes.pcp", { ...base(flow), attributes: { pcp: 8 } }],
    ["vlan id 0", "msg.attributes.vlanPush.vid", { ...base(flow), attributes: { vlanPush: { vid: 0 } } }],
    ["vlan id 4095", "msg.attributes.vlanPush.vid", { ...base(flow), attributes: { vlanPush: { vid: 4095 } } }],
    ["vlan pcp 8", "msg.attributes.vlanPush.pcp", { ...base(flow), attributes: { vlanPush: { vid: 1, pcp: 8 } } }],
    ["vlan pop not a boolean", "msg.attributes.vlanPop", { ...base(flow), attributes: { vlanPop: 1 } }],
    ["mpls label over 20 bits", "msg.attributes.mplsPush.label", { ...base(flow), attributes: { mplsPush: { label: 1_048_576 } } }],
    ["mpls tc 8", "msg.attributes.mplsPush.tc", { ...base(flow), attributes: { mplsPush: { label: 16, tc: 8 } } }],
    ["mpls ttl 0", "msg.attributes.mplsPush.ttl", { ...base(flow), attributes: { mplsPush: { label: 16, ttl: 0 } } }],
    ["mpls ttl 256", "msg.attributes.mplsPush.ttl", { ...base(flow), attributes: { mplsPush: { label: 16, ttl: 256 } } }],
    ["mpls pop a string", "msg.attributes.mplsPop", { ...base(flow), attributes: { mplsPop: "yes" } }],
    ["idle timeout 0", "msg.attributes.idleTimeoutS", { ...base(flow), attributes: { idleTimeoutS: 0 } }],
    ["idle timeout over a day", "msg.attributes.idleTimeoutS", { ...base(flow), attributes: { idleTimeoutS: 86_401 } }],
    ["unknown attribute", "msg.attributes.ttl", { ...base(flow), attributes: { ttl: 3 } }],
    ["request id over 32 bits", "msg.requestId", { ...base(SAMPLES[4]!), requestId: 2 ** 32 }],
    ["register without services", "msg.services", (() => { const m = base(SAMPLES[4]!); delete m.services; return m; })()],
    ["refusal without a reason", "msg.reason", { ...base(SAMPLES[6]!), reason: undefined }],
    ["acceptance with a reason", "msg.reason", { ...base(SAMPLES[5]!), reason: "why" }],
    ["reason too long", "msg.reason", { ...base(SAMPLES[6]!), reason: "x".repeat(201) }],
    ["reason with a control character", "msg.reason", { ...base(SAMPLES[6]!), reason: "a\nb" }],
    ["server list offset negative", "msg.offset", { ...base(SAMPLES[7]!), offset: -1 }],
    ["server list service port bad", "msg.service.port", { ...base(SAMPLES[7]!), service: { vip: "192.0.2.10", protocol: 6, port: -1 } }],
    ["server list total too small", "msg.total", { ...base(SAMPLES[8]!), total: 2 }],
    ["server list 65 servers", "msg.servers", { ...base(SAMPLES[8]!), total: 65, offset: 0, servers: Array.from({ length: 65 }, (_, i) => ({ endSystem: `s${i}`, addresses: ["10.0.0.1"], state: "up", weight: 1, capacity: 1 })) }],
    ["server entry state bad", "msg.servers[1].state", { ...base(SAMPLES[8]!), servers: [(SAMPLES[8] as any).servers[0], { ...(SAMPLES[8] as any).servers[1], state: "gone" }] }],
    ["number lease without count", "msg.count", (() => { const m = base(SAMPLES[9]!); delete m.count; return m; })()],
    ["number lease count 0", "msg.count", { ...base(SAMPLES[9]!), count: 0 }],
    ["number lease count over 65536", "msg.count", { ...base(SAMPLES[9]!), count: 65_537 }],
    ["number lease with a lease id", "msg.leaseId", { ...base(SAMPLES[9]!), leaseId: 1 }],
    ["number lease seconds 0", "msg.leaseS", { ...base(SAMPLES[9]!), leaseS: 0 }],
    ["number renew without lease id", "msg.leaseId", (() => { const m = base(SAMPLES[10]!); delete m.leaseId; return m; })()],
    ["number release with seconds", "msg.leaseS", { ...base(SAMPLES[11]!), leaseS: 5 }],
    ["number pool name bad", "msg.pool", { ...base(SAMPLES[9]!), pool: "a/b" }],
    ["number op unknown", "msg.op", { ...base(SAMPLES[9]!), op: "steal" }],
    ["grant lease id 0", "msg.leaseId", { ...base(SAMPLES[12]!), leaseId: 0 }],
    ["grant first over 32 bits", "msg.first", { ...base(SAMPLES[12]!), first: 2 ** 32 }],
    ["grant range past 2^32", "msg.count", { ...base(SAMPLES[12]!), first: 2 ** 32 - 10, count: 11 }],
    ["grant without first", "msg.first", (() => { const m = base(SAMPLES[12]!); delete m.first; return m; })()],
    ["refusal with numbers", "msg.first", { ...base(SAMPLES[15]!), first: 1 }],
    ["released with a reason", "msg.reason", { ...base(SAMPLES[14]!), reason: "x" }],
    ["grant status unknown", "msg.status", { ...base(SAMPLES[12]!), status: "maybe" }],
  ];

  for (const [what, path, msg] of cases) {
    it(`${what}: bad-field at ${path}`, () => {
      const r = failure(decode(raw(msg), KEYS));
      assert.equal(r.reason, "bad-field", r.detail);
      assert.ok(r.detail.startsWith(`${path}:`), `detail ${JSON.stringify(r.detail)} starts with ${path}`);
    });
  }

  const envelopeCases: [string, string, Parameters<typeof raw>[1]][] = [
    ["sender with a slash", "sender", { sender: "a/b" }],
    ["sender a number", "sender", { sender: 5 }],
    ["sequence number negative", "seq", { seq: -1 }],
    ["sequence number fractional", "seq", { seq: 1.5 }],
    ["sequence number past 2^53", "seq", { seq: 2 ** 60 }],
    ["time a string", "time", { time: "now" }],
  ];
  for (const [what, path, over] of envelopeCases) {
    it(`${what}: bad-field at ${path}`, () => {
      const r = failure(decode(raw(SAMPLES[1], over), KEYS));
      assert.equal(r.reason, "bad-field", r.detail);
      assert.ok(r.detail.startsWith(`${path}:`), r.detail);
    });
  }

  it("an envelope of the wrong length, correctly signed, is malformed", () => {
    const b = sign([1, KEY.id, "web-01", 1, NOW]);
    assert.equal(failure(decode(b, KEYS)).reason, "malformed");
  });

  it("CBOR tags inside a signed message are refused, not acted on", () => {
    const withSet = cbor.encode(new Set([1, 2]));
    assert.equal(withSet[0], 0xd9, "cbor-x wrote a tagged Set");
    const r = failure(decode(raw({ ...structuredClone(SAMPLES[1]!), cpu: new Set([1]) }), KEYS));
    assert.equal(r.reason, "bad-field");
    assert.match(r.detail, /^msg\.cpu:/);
  });
});

describe("advertisement protocol: garbage never throws", () => {
  const valid = SAMPLES.map((m, i) => encode(m, KEY, i, NOW, "web-01"));

  it("10 000 random buffers are each refused with a reason", () => {
    const rnd = mulberry32(1);
    for (let n = 0; n < 10_000; n++) {
      const len = Math.floor(rnd() * 300);
      const b = new Uint8Array(len);
      for (let i = 0; i < len; i++) b[i] = Math.floor(rnd() * 256);
      if (n % 4 === 0 && len > 0) b[0] = 0x87; // get past the first check often
      const r = decode(b, KEYS);
      assert.equal(r.ok, false);
    }
  });

  it("10 000 mutations of valid datagrams are each refused or decode to a valid message", () => {
    const rnd = mulberry32(2);
    for (let n = 0; n < 10_000; n++) {
      const b = Array.from(valid[n % valid.length]!);
      const edits = 1 + Math.floor(rnd() * 4);
      for (let e = 0; e < edits; e++) {
        const at = Math.floor(rnd() * b.length);
        const kind = Math.floor(rnd() * 4);
        if (kind === 0) b[at] = Math.floor(rnd() * 256);
        else if (kind === 1) b.splice(at, 1);
        else if (kind === 2) b.splice(at, 0, Math.floor(rnd() * 256));
        else b.length = at;
      }
      const original = valid[n % valid.length]!;
      const r = decode(Uint8Array.from(b), KEYS);
      const unchanged = b.length === original.length && b.every((x, i) => x === original[i]);
      assert.equal(r.ok, unchanged, unchanged ? "edits that cancel out leave a valid datagram" : "a changed datagram never carries a valid MAC");
    }
  });

  it("10 000 random CBOR values, correctly signed, are refused as bad-field or malformed without throwing", () => {
    const rnd = mulberry32(3);
    const atoms = [0, -1, 1.5, 2 ** 40, NaN, Infinity, "", "up", "service", "10.0.0.1", "x".repeat(300), true, false, null, undefined, new Uint8Array(3), new Date(0), new Set([1]), new Map([[1, 2]])];
    const value = (depth: number): unknown => {
      const k = Math.floor(rnd() * (depth > 3 ? 1 : 4));
      if (k === 0) return atoms[Math.floor(rnd() * atoms.length)];
      if (k === 1) return Array.from({ length: Math.floor(rnd() * 4) }, () => value(depth + 1));
      const proto = SAMPLES[Math.floor(rnd() * SAMPLES.length)] as unknown as Record<string, unknown>;
      const keys = [...Object.keys(proto), "__proto__", "constructor", "other"];
      const o: Record<string, unknown> = {};
      for (const key of keys) if (rnd() < 0.7) Object.defineProperty(o, key, { value: rnd() < 0.5 && Object.hasOwn(proto, key) ? proto[key] : value(depth + 1), enumerable: true, writable: true, configurable: true });
      return o;
    };
    let badField = 0;
    for (let n = 0; n < 10_000; n++) {
      const over = rnd() < 0.2 ? { sender: value(3), seq: value(3), time: value(3) } : {};
      const r = decode(raw(value(0), over), KEYS);
      if (!r.ok) {
        assert.ok(["bad-field", "malformed"].includes(r.reason), r.reason);
        if (r.reason === "bad-field") badField++;
      }
    }
    assert.ok(badField > 9_000, `most reach the field checks (${badField})`);
  });
});

describe("ReplayGuard", () => {
  const clock = (start = NOW) => {
    const c = { t: start, now: () => c.t };
    return c;
  };

  it("accepts a new sequence number once and refuses the duplicate", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    assert.equal(g.check("a", 10, NOW), "ok");
    assert.equal(g.check("a", 10, NOW), "replayed");
    assert.equal(g.check("a", 11, NOW), "ok");
    assert.equal(g.check("a", 11, NOW), "replayed");
  });

  it("keeps senders apart", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    assert.equal(g.check("a", 1, NOW), "ok");
    assert.equal(g.check("b", 1, NOW), "ok");
  });

  it("accepts datagrams reordered within the 64-wide window once each", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    assert.equal(g.check("a", 100, NOW), "ok");
    for (const s of [99, 37, 90, 60]) assert.equal(g.check("a", s, NOW), "ok", `seq ${s}`);
    for (const s of [99, 37, 90, 60, 100]) assert.equal(g.check("a", s, NOW), "replayed", `seq ${s} again`);
    assert.equal(g.check("a", 110, NOW), "ok");
    assert.equal(g.check("a", 47, NOW), "ok", "110 - 63 is the oldest in the window");
    assert.equal(g.check("a", 46, NOW), "replayed", "110 - 64 is outside the window");
    assert.equal(g.check("a", 100, NOW), "replayed", "seen before the window moved");
  });

  it("refuses sequence numbers that fell out of the window, even if never seen", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    assert.equal(g.check("a", 1_000, NOW), "ok");
    assert.equal(g.check("a", 936, NOW), "replayed");
    assert.equal(g.check("a", 1, NOW), "replayed");
    assert.equal(g.check("a", 937, NOW), "ok");
  });

  it("a jump beyond the window clears it", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    assert.equal(g.check("a", 5, NOW), "ok");
    assert.equal(g.check("a", 5 + 1_000_000_000, NOW), "ok");
    assert.equal(g.check("a", 1_000_000_004, NOW), "ok");
    assert.equal(g.check("a", 5, NOW), "replayed");
  });

  it("works at sequence numbers near 2^53", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    const top = Number.MAX_SAFE_INTEGER;
    assert.equal(g.check("a", top - 1, NOW), "ok");
    assert.equal(g.check("a", top, NOW), "ok");
    assert.equal(g.check("a", top - 1, NOW), "replayed");
    assert.equal(g.check("a", top - 2, NOW), "ok");
  });

  it("refuses timestamps older than now - window as stale and newer than now + window as future", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    assert.equal(g.check("a", 1, NOW - 30_001), "stale");
    assert.equal(g.check("a", 2, NOW + 30_001), "future");
    assert.equal(g.check("a", 3, NOW - 30_000), "ok");
    assert.equal(g.check("a", 4, NOW + 30_000), "ok");
  });

  it("a refused datagram does not use up its sequence number", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    assert.equal(g.check("a", 1, NOW + 60_000), "future");
    assert.equal(g.check("a", 1, NOW), "ok");
  });

  it("defaults to a 30 s window", () => {
    const g = new ReplayGuard({ now: () => NOW });
    assert.equal(g.windowMs, 30_000);
    assert.equal(g.check("a", 1, NOW - 30_001), "stale");
  });

  it("forgets a sender once everything it sent is stale, and only then", () => {
    const c = clock();
    const g = new ReplayGuard({ windowMs: 30_000, now: c.now });
    assert.equal(g.check("quiet", 500, c.t), "ok");
    assert.equal(g.check("quiet", 499, c.t + 20_000), "ok", "timestamped 20 s ahead");
    c.t += 40_000;
    assert.equal(g.check("busy", 1, c.t), "ok");
    assert.equal(g.size, 2, "the message stamped +20 s is still fresh at +40 s");
    assert.equal(g.check("quiet", 499, NOW + 20_000), "replayed");
    c.t += 11_000;
    g.sweep();
    assert.equal(g.size, 1, "quiet is gone: its newest message is stale");
    assert.equal(g.check("quiet", 499, NOW + 20_000), "stale", "and a replay of it is refused anyway");
    assert.equal(g.check("quiet", 1, c.t), "ok", "a restarted sender starts afresh");
  });

  it("sweeps silent senders by itself as time passes", () => {
    const c = clock();
    const g = new ReplayGuard({ windowMs: 1_000, now: c.now });
    for (let i = 0; i < 1_000; i++) assert.equal(g.check(`s${i}`, 1, c.t), "ok");
    for (let step = 0; step < 3; step++) {
      c.t += 1_000;
      assert.equal(g.check("live", step + 1, c.t), "ok");
    }
    assert.equal(g.size, 1);
  });

  it("holds at most maxSenders, dropping the least recently heard", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW, maxSenders: 3 });
    for (const s of ["a", "b", "c"]) assert.equal(g.check(s, 1, NOW), "ok");
    assert.equal(g.check("a", 2, NOW), "ok"); // b is now the least recently heard
    assert.equal(g.check("d", 1, NOW), "ok");
    assert.equal(g.size, 3);
    assert.equal(g.forcedEvictions, 1);
    assert.equal(g.check("a", 2, NOW), "replayed", "a kept its state");
    assert.equal(g.check("b", 1, NOW), "ok", "b was dropped");
  });

  it("fed with the decoder's output, refuses a replayed datagram", () => {
    const g = new ReplayGuard({ windowMs: 30_000, now: () => NOW });
    const bytes = encode(SAMPLES[1]!, KEY, 1, NOW, "web-01");
    for (const expected of ["ok", "replayed"]) {
      const r = decode(bytes, KEYS);
      assert.ok(r.ok);
      assert.equal(g.check(r.sender, r.seq, r.time), expected);
    }
  });
});
