// A site's load figures: the five aggregate functions, one entry per VIP over the usable members of
// every service on it, one per virtual subnet over every service whose VIP is inside, and members
// that cannot take flows left out of the load.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { aggregate, siteLoadEntries, type ServiceLoad } from "../../host/levels/aggregate.js";
import { parseIP } from "../../host/net/frame.js";
import type { Address, Prefix } from "../../host/config/schema.js";

const addr = (text: string): Address => ({ ...parseIP(text), text });
/** As the configuration holds one: the operator's text kept. */
const prefix = (text: string): Prefix => ({ ...parseIP(text.split("/")[0]!), length: Number(text.split("/")[1]), text });
const up = (load: number, flows = 0) => ({ load, usable: true, flows });
const down = (load: number, flows = 0) => ({ load, usable: false, flows });

describe("levels aggregate: functions", () => {
  const v = [0.2, 0.9, 0.4, 0.1];
  it("mean, max, min, sum and median (even count: the mean of the middle two)", () => {
    assert.equal(aggregate("mean", v), 0.4);
    assert.equal(aggregate("max", v), 0.9);
    assert.equal(aggregate("min", v), 0.1);
    assert.ok(Math.abs(aggregate("sum", v) - 1.6) < 1e-12);
    assert.ok(Math.abs(aggregate("median", v) - 0.3) < 1e-12);
    assert.equal(aggregate("median", [3, 1, 2]), 2);
  });

  it("no values is 0 for every function", () => {
    for (const fn of ["mean", "max", "min", "sum", "median"] as const) assert.equal(aggregate(fn, []), 0);
  });

  it("takes a very long list (no argument-count limit)", () => {
    const many = Array.from({ length: 300_000 }, (_, i) => i);
    assert.equal(aggregate("max", many), 299_999);
    assert.equal(aggregate("min", many), 0);
  });
});

describe("levels aggregate: site load entries", () => {
  const services: ServiceLoad[] = [
    { vip: addr("192.0.2.10"), members: [up(0.5, 10), up(0.7, 20), down(0.99, 5)] }, // web :80
    { vip: addr("192.0.2.10"), members: [up(0.3, 1)] }, // web :443, same VIP
    { vip: addr("192.0.2.20"), members: [down(0.1, 3)] }, // every member draining
    { vip: addr("198.51.100.1"), members: [up(0.2)] },
    { vip: addr("2001:DB8::10"), members: [up(1.5, 2)] },
  ];

  it("one entry per distinct VIP over the usable members of all its services; flows of every member", () => {
    const e = siteLoadEntries(services, [], "mean");
    assert.equal(e.length, 4);
    assert.deepEqual(e[0], { prefix: "192.0.2.10/32", load: 0.5, members: 3, flows: 36 });
    assert.deepEqual(e[2], { prefix: "198.51.100.1/32", load: 0.2, members: 1, flows: 0 });
    assert.deepEqual(e[3], { prefix: "2001:db8::10/128", load: 1.5, members: 1, flows: 2 });
  });

  it("a VIP with no usable member reports members 0 and load 0 (its draining servers' flows still count)", () => {
    assert.deepEqual(siteLoadEntries(services, [], "max")[1], { prefix: "192.0.2.20/32", load: 0, members: 0, flows: 3 });
  });

  it("a subnet aggregates every usable member of every service whose VIP is inside, each once per service", () => {
    const e = siteLoadEntries(services, [prefix("192.0.2.0/24"), prefix("2001:DB8:0::/32"), prefix("203.0.113.0/24")], "sum");
    const sub = e.find((x) => x.prefix === "192.0.2.0/24")!;
    assert.equal(sub.members, 3);
    assert.ok(Math.abs(sub.load - 1.5) < 1e-12);
    assert.equal(sub.flows, 39);
    assert.deepEqual(e.find((x) => x.prefix === "2001:db8::/32"), { prefix: "2001:db8::/32", load: 1.5, members: 1, flows: 2 });
    // a subnet with nothing served inside is reported empty: the system sends it no new flows
    assert.deepEqual(e.find((x) => x.prefix === "203.0.113.0/24"), { prefix: "203.0.113.0/24", load: 0, members: 0, flows: 0 });
  });

  it("reports each prefix once: a /32 subnet equal to a VIP, or a subnet written twice", () => {
    const e = siteLoadEntries(services, [prefix("192.0.2.10/32"), prefix("10.0.0.0/8"), prefix("10.0.0.0/8")], "mean");
    assert.deepEqual(e.map((x) => x.prefix), ["192.0.2.10/32", "192.0.2.20/32", "198.51.100.1/32", "2001:db8::10/128", "10.0.0.0/8"]);
  });

  it("a member load that is not a finite number >= 0 counts as 0, so the update always encodes", () => {
    const e = siteLoadEntries([{ vip: addr("192.0.2.1"), members: [up(Number.NaN), up(-3), up(Infinity), up(0.6, -1)] }], [], "max");
    assert.deepEqual(e, [{ prefix: "192.0.2.1/32", load: 0.6, members: 4, flows: 0 }]);
  });
});
