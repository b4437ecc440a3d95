// The levels socket on real UDP sockets (127.0.0.1): a signed round trip between two appliances,
// and every bad datagram (forged MAC, unknown key, replay, garbage, another protocol, our own
// name) refused, counted by reason and by source, with nothing thrown.
import { describe, it, after } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import { LevelsSocket, type LevelsReceived } from "../../host/levels/socket.js";
import { encodeLevels, type LevelsMessage } from "../../host/levels/protocol.js";
import { encodeHa } from "../../host/ha/protocol.js";

const K1 = { id: 1, secret: Buffer.from("first levels key, sixteen+ bytes") };
const K2 = { id: 2, secret: Buffer.from("second levels key, also 16 bytes") };
const WRONG = { id: 1, secret: Buffer.from("not the key the others hold at all") };

/** Waits until `cond` holds (datagrams on loopback take a moment), at most 2 s. */
async function until(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 10));
  assert.ok(cond(), "timed out");
}

describe("levels socket", async () => {
  const gotSystem: LevelsReceived[] = [];
  const gotSite: LevelsReceived[] = [];
  const logs: string[] = [];
  const system = await LevelsSocket.open({ address: "127.0.0.1", port: 0, name: "sys-1", keys: [K1, K2], onMessage: (m) => gotSystem.push(m), log: (l) => logs.push(l) });
  // the site signs with key 2 (its first) and also accepts key 1
  const site = await LevelsSocket.open({
    address: "127.0.0.1", port: 0, name: "site-east", keys: [K2, K1], log: (l) => logs.push(l),
    onMessage: (m) => {
      gotSite.push(m);
      if (m.msg.type === "ping") void site.send(m.from, { type: "pong", nonce: m.msg.nonce });
    },
  });
  const raw = createSocket("udp4");
  await new Promise<void>((r) => raw.bind(0, "127.0.0.1", () => r()));
  const rawPort = raw.address().port;
  const sendRaw = (bytes: Uint8Array, port = system.port) => new Promise<void>((r) => raw.send(bytes, port, "127.0.0.1", () => r()));
  after(async () => {
    await system.close();
    await site.close();
    await new Promise<void>((r) => raw.close(() => r()));
  });

  it("carries a ping to the site and its pong back, each with its sender and source", async () => {
    assert.equal(await system.send({ address: "127.0.0.1", port: site.port }, { type: "ping", nonce: 77 }), true);
    await until(() => gotSystem.length === 1);
    assert.equal(gotSite[0]!.sender, "sys-1");
    assert.equal(gotSite[0]!.keyId, 1);
    assert.deepEqual(gotSite[0]!.from, { address: "127.0.0.1", port: system.port });
    assert.deepEqual(gotSystem[0]!.msg, { type: "pong", nonce: 77 });
    assert.equal(gotSystem[0]!.sender, "site-east");
    assert.equal(gotSystem[0]!.keyId, 2);
    assert.equal(system.stats().accepted, 1);
    assert.equal(system.stats().sent, 1);
  });

  it("takes an endpoint as the configuration holds it (an Address)", async () => {
    const load: LevelsMessage = { type: "load", intervalMs: 1000, page: 0, pages: 1, entries: [{ prefix: "192.0.2.10/32", load: 0.25, members: 2, flows: 7 }] };
    await site.send({ address: { family: 4, bytes: Uint8Array.of(127, 0, 0, 1), text: "127.0.0.1" }, port: system.port }, load);
    await until(() => gotSystem.length === 2);
    assert.deepEqual(gotSystem[1]!.msg, load);
  });

  it("refuses a forged MAC, an unknown key, a replay, garbage, another protocol and its own name, counted by source", async () => {
    const before = gotSystem.length;
    const now = Date.now();
    const ping: LevelsMessage = { type: "ping", nonce: 1 };
    const good = encodeLevels(ping, K1, now, now, "site-west");
    await sendRaw(good); // accepted once
    await sendRaw(good); // replayed
    await sendRaw(encodeLevels(ping, WRONG, now + 1, now, "site-west")); // bad-mac
    await sendRaw(encodeLevels(ping, { id: 9, secret: K1.secret }, now + 2, now, "site-west")); // unknown-key
    await sendRaw(Buffer.from("GET / HTTP/1.0\r\n\r\n")); // malformed
    await sendRaw(new Uint8Array([0x87, 0xff, 0x00])); // malformed
    await sendRaw(encodeHa({ type: "heartbeat", node: "fs-a", bootId: "b", state: "active", priority: 1, ready: true, maintenance: false, configVersion: 0, configDigest: "0".repeat(64), intervalMs: 50, link: "l", keyIds: [1] }, K1, 1, now)); // unsupported-version
    await sendRaw(encodeLevels(ping, K1, now + 3, now, "sys-1")); // own-name
    await sendRaw(encodeLevels(ping, K1, now + 4, now - 3_600_000, "site-west")); // stale
    await until(() => system.stats().received >= 11);
    const s = system.stats();
    assert.equal(gotSystem.length, before + 1);
    assert.deepEqual(s.rejected, { malformed: 2, "unknown-key": 1, "bad-mac": 1, "unsupported-version": 1, "bad-field": 0, replayed: 1, stale: 1, future: 0, "own-name": 1 });
    assert.deepEqual(s.rejectedBy[`127.0.0.1:${rawPort}`], { replayed: 1, "bad-mac": 1, "unknown-key": 1, malformed: 2, "unsupported-version": 1, "own-name": 1, stale: 1 });
    assert.equal(s.handlerErrors, 0);
  });

  it("admit tells why, without a socket round trip", () => {
    const r = system.admit(Uint8Array.of(1, 2, 3), { address: "192.0.2.1", port: 9 });
    assert.ok(!r.ok && r.reason === "malformed");
    assert.deepEqual(system.stats().rejectedBy["192.0.2.1:9"], { malformed: 1 });
  });

  it("a handler that throws is counted and logged; the socket goes on", async () => {
    let calls = 0;
    const s = await LevelsSocket.open({ address: "127.0.0.1", port: 0, name: "x", keys: [K1], onMessage: () => { calls++; throw new Error("bug"); }, log: (l) => logs.push(l) });
    try {
      const now = Date.now();
      await sendRaw(encodeLevels({ type: "none", id: 1 }, K1, now, now, "y"), s.port);
      await sendRaw(encodeLevels({ type: "none", id: 2 }, K1, now + 1, now, "y"), s.port);
      await until(() => s.stats().handlerErrors === 2);
      assert.equal(calls, 2);
      assert.ok(logs.some((l) => l.includes("handler failed on none from y: bug")));
    } finally {
      await s.close();
    }
  });

  it("a peer of the other address family is a counted send error, not a throw", async () => {
    assert.equal(await system.send({ address: "::1", port: 7790 }, { type: "none", id: 1 }), false);
    assert.equal(system.stats().sendErrors, 1);
  });

  it("sending on a closed socket is a counted error, not a throw", async () => {
    const s = await LevelsSocket.open({ address: "127.0.0.1", port: 0, name: "z", keys: [K1], onMessage: () => {} });
    await s.close();
    assert.equal(await s.send({ address: "127.0.0.1", port: system.port }, { type: "none", id: 1 }), false);
    assert.equal(s.stats().sendErrors, 1);
  });

  it("a second socket on a port in use is an error naming the address", async () => {
    await assert.rejects(LevelsSocket.open({ address: "127.0.0.1", port: system.port, name: "z", keys: [K1], onMessage: () => {} }), /levels: cannot bind 127\.0\.0\.1:\d+/);
  });

  it("refuses to open without a key to sign with", async () => {
    await assert.rejects(LevelsSocket.open({ address: "127.0.0.1", port: 0, name: "z", keys: [], onMessage: () => {} }), /no key to sign with/);
  });
});
