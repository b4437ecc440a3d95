// Service chains and ACLs in the data plane: a chained NAT service's packets go out to the
// firewall's MAC unchanged above L2, come back from it (known by port and source MAC), are tagged
// for a copy to the IDS, and reach the server translated (port 80 -> 8080); replies run the chain
// in reverse and are translated back. A failed device's flows go to its alternate; with none up
// the hop drops. ACL tables judge new flows by port and service, rule by rule, counted.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { Fixture, transmitted, tsharkProblems, hex } from "../lib/fixture.js";
import { labConfig, backends, SERVERS, ROUTER_MAC, CLIENT_PORT_MAC, SERVER_PORT_MAC, VIP, CLIENT } from "../lib/lab-config.js";
import { tcp4Frame, SYN, ACK, formatMac } from "../../host/net/frame.js";
import { DROP_REASON_NAMES } from "../../host/engine/index.js";
import { validateOrThrow } from "../../host/config/validate.js";
import type { ConfigInput, ChainInput } from "../../host/config/schema.js";

const CHAIN_PORT_MAC = "02:00:00:00:04:01";
const FW1 = "02:00:00:00:04:11";
const FW2 = "02:00:00:00:04:12";
const IDS = "02:00:00:00:04:21";
const s1 = SERVERS[0];

const CHAIN: ChainInput = {
  name: "fw-ids",
  hops: [
    { name: "firewall", kind: "inline", devices: [{ name: "fw1", port: "chain", mac: FW1 }], alternates: [{ name: "fw2", port: "chain", mac: FW2 }] },
    { name: "ids", kind: "mirror", devices: [{ name: "ids1", port: "chain", mac: IDS }] },
  ],
};

function config(extra: Partial<ConfigInput> = {}): ConfigInput {
  const base = labConfig([{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "nat", targetPort: 8080, backends: ["s1"], chain: "fw-ids" }], { backends: backends().filter((b) => b.name === "s1") });
  return {
    ...base,
    ports: [...base.ports!, { name: "chain", mac: CHAIN_PORT_MAC, ipv4: "10.0.4.1" }],
    chains: [CHAIN],
    ...extra,
  };
}

interface Out { fate: "tx" | "punt" | "drop"; port?: string; frame?: Uint8Array; reason: string; mirror?: number }

/** One frame in on `port`; what came out, with the tx descriptor's mirror tag (device index + 1). */
function send(fx: Fixture, port: string, frame: Uint8Array): Out {
  const e = fx.engine;
  assert.ok(e.rxPush(fx.portIndex(port), frame));
  e.runAll();
  const out: Out[] = [];
  e.drainTx((x) => {
    out.push({ fate: "tx", port: e.config.ports[x.port]?.name, frame: x.frame.slice(), reason: "", mirror: x.reason });
    transmitted.push({ label: `chains #${transmitted.length}`, frame: x.frame.slice() });
  });
  e.drainPunt((x) => void out.push({ fate: "punt", reason: String(x.reason) }));
  e.drainDropped((x) => void out.push({ fate: "drop", reason: DROP_REASON_NAMES[x.reason] ?? String(x.reason) }));
  assert.equal(out.length, 1, JSON.stringify(out));
  fx.assertIdentity();
  return out[0];
}

const mac = (f: Uint8Array, at: number): string => formatMac(f.subarray(at, at + 6));
/** The frame with new MACs (what a device that forwards it at L2 or routes it back would send). */
const relabel = (f: Uint8Array, dst: string, src: string): Uint8Array => {
  const g = f.slice();
  g.set(dst.split(":").map((x) => parseInt(x, 16)), 0);
  g.set(src.split(":").map((x) => parseInt(x, 16)), 6);
  return g;
};

after(async () => {
  const problems = await tsharkProblems(transmitted);
  assert.deepEqual(problems, [], "every frame the chain fixtures sent passes tshark's checks");
});

test("chains: a client's packet goes to the firewall unchanged above L2, back, then to the server translated, with a copy tagged for the IDS", async () => {
  const fx = await Fixture.create("chain-forward", config());
  const syn = tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40000, dport: 80, flags: SYN, ttl: 60 });
  const toFw = send(fx, "client", syn);
  assert.equal(toFw.port, "chain");
  assert.equal(mac(toFw.frame!, 0), FW1, "to the firewall's MAC");
  assert.equal(mac(toFw.frame!, 6), CHAIN_PORT_MAC, "from the chain port's");
  assert.equal(hex(toFw.frame!.subarray(12)), hex(syn.subarray(12)), "the IP packet untouched (no TTL change either)");
  assert.equal(toFw.mirror, 0, "no copy yet: the IDS comes after the firewall");

  const back = relabel(toFw.frame!, CHAIN_PORT_MAC, FW1);
  const toServer = send(fx, "chain", back);
  assert.equal(toServer.port, "server");
  const expected = tcp4Frame({ srcMac: SERVER_PORT_MAC, dstMac: s1.mac, src: CLIENT, dst: s1.ip, sport: 40000, dport: 8080, flags: SYN, ttl: 59 });
  assert.equal(hex(toServer.frame!), hex(expected), "NAT to the server, port 80 -> 8080");
  const devices = ["fw1", "fw2", "ids1"];
  assert.equal(devices[toServer.mirror! - 1], "ids1", "the frame carries the IDS's tag: the host sends it a copy");

  const c = fx.counters();
  assert.deepEqual(c.chains["fw-ids"].firewall, { toPackets: 1, toBytes: syn.length, fromPackets: 1, fromBytes: syn.length });
  assert.equal(c.chains["fw-ids"].ids.toPackets, 1);
  assert.deepEqual(c.devices.fw1, { sent: 1, returned: 1 });
  assert.equal(c.services.web.packets, 1, "the service counts the packet once, on its way to the server");
});

test("chains: the server's reply runs the chain in reverse (copy to the IDS, firewall, back) and is translated back to the VIP", async () => {
  const fx = await Fixture.create("chain-reverse", config());
  const toFw = send(fx, "client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40001, dport: 80, flags: SYN }));
  send(fx, "chain", relabel(toFw.frame!, CHAIN_PORT_MAC, FW1));
  const reply = tcp4Frame({ srcMac: s1.mac, dstMac: SERVER_PORT_MAC, src: s1.ip, dst: CLIENT, sport: 8080, dport: 40001, flags: SYN | ACK, ttl: 64 });
  const r1 = send(fx, "server", reply);
  assert.equal(r1.port, "chain");
  assert.equal(mac(r1.frame!, 0), FW1);
  assert.equal(hex(r1.frame!.subarray(12)), hex(reply.subarray(12)), "untranslated on its way through the chain");
  assert.equal(r1.mirror, 3, "the IDS's copy: the mirror comes first on the way back");
  const r2 = send(fx, "chain", relabel(r1.frame!, CHAIN_PORT_MAC, FW1));
  assert.equal(r2.port, "client");
  const expected = tcp4Frame({ srcMac: CLIENT_PORT_MAC, dstMac: ROUTER_MAC, src: VIP, dst: CLIENT, sport: 80, dport: 40001, flags: SYN | ACK, ttl: 63 });
  assert.equal(hex(r2.frame!), hex(expected), "translated back: from VIP:80");
  assert.equal(r2.mirror, 0);
  assert.deepEqual(fx.counters().devices.fw1, { sent: 2, returned: 2 });
});

test("chains: a failed device's flows go to its alternate; with none up the hop drops, counted", async () => {
  const fx = await Fixture.create("chain-alternate", config());
  const down = (names: string[]): void => {
    const c = validateOrThrow(config());
    for (const ch of c.chains) for (const h of ch.hops) for (const d of [...h.devices, ...h.alternates]) if (names.includes(d.name)) d.up = false;
    fx.engine.apply(c);
  };
  down(["fw1"]);
  const o = send(fx, "client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40002, dport: 80, flags: SYN }));
  assert.equal(mac(o.frame!, 0), FW2, "the alternate takes the flow");
  const back = send(fx, "chain", relabel(o.frame!, CHAIN_PORT_MAC, FW2));
  assert.equal(back.port, "server", "and its returns are known as the firewall hop's");
  down(["fw1", "fw2"]);
  const d = send(fx, "client", tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src: CLIENT, dst: VIP, sport: 40002, dport: 80, flags: ACK }));
  assert.deepEqual({ fate: d.fate, reason: d.reason }, { fate: "drop", reason: "chain_down" });
});

test("acls: a table on the client port for the service denies what its rules name, first match wins, counted per rule and default", async () => {
  const fx = await Fixture.create("acl", config({
    chains: [],
    services: [{ name: "web", vip: VIP, protocol: "tcp", port: 80, mode: "nat", targetPort: 8080, backends: ["s1"] }],
    acls: [{
      name: "client-in", port: "client", service: "web", default: "deny",
      rules: [
        { name: "bad-host", action: "deny", source: "192.0.2.99/32" },
        { name: "clients", action: "allow", protocol: "tcp", source: "192.0.2.0/24", sourcePorts: "1024-65535", destinationPorts: 80 },
      ],
    }],
  }));
  const syn = (src: string, sport: number) => tcp4Frame({ srcMac: ROUTER_MAC, dstMac: CLIENT_PORT_MAC, src, dst: VIP, sport, dport: 80, flags: SYN });
  assert.deepEqual(send(fx, "client", syn("192.0.2.99", 40000)).reason, "acl_deny", "the first rule denies .99");
  assert.equal(send(fx, "client", syn("192.0.2.10", 40000)).fate, "tx", "the second allows the rest of the /24");
  assert.equal(send(fx, "client", syn("192.0.2.10", 1000)).reason, "acl_deny", "a source port outside the range: the default denies");
  assert.equal(send(fx, "client", syn("198.51.100.7", 40000)).reason, "acl_deny", "another prefix: the default denies");
  assert.equal(send(fx, "client", syn("192.0.2.10", 40000)).fate, "tx", "an established flow is not judged again");
  const c = fx.counters();
  assert.deepEqual(c.acls["client-in"], { rules: { "bad-host": 1, clients: 1 }, default: 2 });
  assert.equal(c.drops.acl_deny, 3);
  // a reply from the server is not a new flow entering the client port: not judged
  const reply = tcp4Frame({ srcMac: s1.mac, dstMac: SERVER_PORT_MAC, src: s1.ip, dst: "192.0.2.10", sport: 8080, dport: 40000, flags: SYN | ACK });
  assert.equal(send(fx, "server", reply).port, "client");
});
