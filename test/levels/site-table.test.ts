// The system's table of sites: which sites take a VIP's new flows by cost = F(load, distance), the
// longest prefix answering for a VIP, sites unheard, silent or without servers kept out, pages
// merged per prefix, round trips smoothed, and fail-open when the system cannot see its sites.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { SiteTable, MAX_ENTRIES_PER_SITE } from "../../host/levels/site-table.js";
import { RttProbe } from "../../host/levels/rtt.js";
import type { LoadEntry, LoadMsg } from "../../host/levels/protocol.js";
import type { Address, LevelsSite } from "../../host/config/schema.js";
import { parseIP } from "../../host/net/frame.js";

const addr = (text: string): Address => ({ ...parseIP(text), text });
const site = (name: string, address: string, distance: number | "measured" = 0): LevelsSite => ({
  name, address: addr(address), control: { address: addr(address), port: 7790 }, distance,
});
const SITES = [site("east", "10.0.1.1", 10), site("west", "10.0.2.1", 30), site("north", "10.0.3.1", "measured")];
const OPTS = { deadIntervals: 3, cost: { load: 1, distance: 1, tolerance: 5 } };
const VIP = addr("192.0.2.10");
const ALL = ["east", "west", "north"];
const e = (prefix: string, load: number, members = 2, flows = 0): LoadEntry => ({ prefix, load, members, flows });
const load = (entries: LoadEntry[], intervalMs = 1000, page = 0, pages = 1): LoadMsg => ({ type: "load", intervalMs, page, pages, entries });

describe("levels site table: choosing", () => {
  it("the lowest cost takes new flows; cost = load% x weight + distance x weight", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.2.10/32", 0.5)]), 0); // 50 + 10 = 60
    t.onLoad("west", load([e("192.0.2.10/32", 0.1)]), 0); // 10 + 30 = 40
    t.onLoad("north", load([e("192.0.2.10/32", 0.6)]), 0); // 60 + 0 (measured, no sample) = 60
    const c = t.choose(VIP, ALL, 100);
    assert.deepEqual(c.eligible, ["west"]);
    assert.equal(c.failOpen, false);
    assert.deepEqual(c.sites, [
      { name: "east", state: "costlier", load: 0.5, prefix: "192.0.2.10/32", distance: 10, cost: 60, lastUpdateMs: 0 },
      { name: "west", state: "ok", load: 0.1, prefix: "192.0.2.10/32", distance: 30, cost: 40, lastUpdateMs: 0 },
      { name: "north", state: "costlier", load: 0.6, prefix: "192.0.2.10/32", distance: 0, cost: 60, lastUpdateMs: 0 },
    ]);
  });

  it("every site within the tolerance of the lowest shares new flows, in the candidates' order", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.2.10/32", 0.35)]), 0); // 45
    t.onLoad("west", load([e("192.0.2.10/32", 0.1)]), 0); // 40
    t.onLoad("north", load([e("192.0.2.10/32", 0.46)]), 0); // 46
    assert.deepEqual(t.choose(VIP, ["north", "east", "west"], 0).eligible, ["east", "west"]);
  });

  it("the weights trade load against distance", () => {
    const t = new SiteTable(SITES, { ...OPTS, cost: { load: 1, distance: 0, tolerance: 0 } });
    t.onLoad("east", load([e("192.0.2.10/32", 0.2)]), 0);
    t.onLoad("west", load([e("192.0.2.10/32", 0.3)]), 0);
    assert.deepEqual(t.choose(VIP, ["east", "west"], 0).eligible, ["east"]);
    t.configure(SITES, { ...OPTS, cost: { load: 0, distance: 1, tolerance: 0 } });
    assert.deepEqual(t.choose(VIP, ["east", "west"], 0).eligible, ["east"]); // distance 10 < 30
    t.configure(SITES, { ...OPTS, cost: { load: 1, distance: 2, tolerance: 0 } });
    assert.deepEqual(t.choose(VIP, ["east", "west"], 0).eligible, ["east"]); // 20+20=40 < 30+60
  });

  it("a VIP's own entry wins; else the longest prefix containing it; another family never matches", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.0.0/16", 0.9), e("192.0.2.0/24", 0.4), e("192.0.2.10/32", 0.1), e("::/0", 0)]), 0);
    assert.equal(t.choose(VIP, ["east"], 0).sites[0]!.prefix, "192.0.2.10/32");
    assert.equal(t.choose(addr("192.0.2.99"), ["east"], 0).sites[0]!.prefix, "192.0.2.0/24");
    assert.equal(t.choose(addr("192.0.7.1"), ["east"], 0).sites[0]!.prefix, "192.0.0.0/16");
    assert.deepEqual(t.choose(addr("198.51.100.1"), ["east"], 0).sites[0], { name: "east", state: "no-servers", lastUpdateMs: 0 });
    assert.equal(t.choose(addr("2001:db8::1"), ["east"], 0).sites[0]!.prefix, "::/0");
  });

  it("a site never heard is unknown, one silent for deadIntervals x its interval is silent, one with members 0 is no-servers: none takes flows", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.2.10/32", 0.1)], 200), 0); // dead after 600 ms
    t.onLoad("west", load([e("192.0.2.10/32", 0.1, 0)]), 0);
    t.onLoad("north", load([e("192.0.2.10/32", 0.9)]), 0);
    let c = t.choose(VIP, ALL, 600);
    assert.deepEqual(c.sites.map((s) => s.state), ["ok", "no-servers", "costlier"]);
    assert.deepEqual(c.eligible, ["east"]);
    c = t.choose(VIP, ALL, 601);
    assert.deepEqual(c.sites.map((s) => s.state), ["silent", "no-servers", "ok"]);
    assert.deepEqual(c.eligible, ["north"]); // 90, but the only one left
    assert.deepEqual(c.sites[0], { name: "east", state: "silent", lastUpdateMs: 0 });
    assert.deepEqual(new SiteTable(SITES, OPTS).choose(VIP, ["east"], 0).sites, [{ name: "east", state: "unknown" }]);
    assert.equal(t.choose(VIP, ["nowhere"], 0).sites[0]!.state, "unknown"); // not configured
  });

  it("fail-open: no site eligible and some unknown or silent, every candidate not known to lack servers is eligible", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("west", load([e("192.0.2.10/32", 0.1, 0)]), 4500);
    t.onLoad("north", load([e("192.0.2.10/32", 0.2)]), 0);
    const c = t.choose(VIP, ALL, 5000); // east never heard, west no servers, north silent
    assert.equal(c.failOpen, true);
    assert.deepEqual(c.eligible, ["east", "north"]);
    assert.deepEqual(c.sites.map((s) => s.state), ["unknown", "no-servers", "silent"]);
  });

  it("no fail-open when every site is heard and says it has no servers", () => {
    const t = new SiteTable(SITES, OPTS);
    for (const s of ALL) t.onLoad(s, load([e("192.0.2.0/24", 0, 0)]), 0);
    assert.deepEqual(t.choose(VIP, ALL, 0), { eligible: [], failOpen: false, sites: ALL.map((name) => ({ name, state: "no-servers", prefix: "192.0.2.0/24", lastUpdateMs: 0 })) });
  });
});

describe("levels site table: updates", () => {
  it("pages merge per prefix: a page refreshes what it carries and leaves the rest", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.2.10/32", 0.1)], 1000, 0, 2), 0);
    t.onLoad("east", load([e("192.0.2.20/32", 0.2)], 1000, 1, 2), 10);
    t.onLoad("east", load([e("192.0.2.10/32", 0.3)], 1000, 0, 2), 1000); // page 1 of this interval lost
    const v = t.view(1500).find((s) => s.name === "east")!;
    assert.deepEqual(v.entries, [
      { prefix: "192.0.2.10/32", load: 0.3, members: 2, flows: 0, ageMs: 500 },
      { prefix: "192.0.2.20/32", load: 0.2, members: 2, flows: 0, ageMs: 1490 },
    ]);
    assert.equal(t.choose(addr("192.0.2.20"), ["east"], 1500).sites[0]!.state, "ok");
  });

  it("an entry not refreshed for the dead time counts as absent (the site stopped serving that VIP)", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.2.10/32", 0.1), e("192.0.2.0/24", 0.8)]), 0);
    for (let now = 1000; now <= 4000; now += 1000) t.onLoad("east", load([e("192.0.2.0/24", 0.8)]), now);
    const s = t.choose(VIP, ["east"], 4000).sites[0]!;
    assert.equal(s.prefix, "192.0.2.0/24");
    assert.deepEqual(t.view(4000)[0]!.entries.map((x) => x.prefix), ["192.0.2.0/24"]);
  });

  it("an update from a site not configured is counted and changes nothing", () => {
    const t = new SiteTable(SITES, OPTS);
    assert.equal(t.onLoad("south", load([e("192.0.2.10/32", 0)]), 0), false);
    assert.equal(t.onRtt("south", 5, 0), false);
    assert.equal(t.counters().unknownSite, 2);
  });

  it("keeps at most MAX_ENTRIES_PER_SITE prefixes per site, counting the rest", () => {
    const t = new SiteTable(SITES, OPTS);
    const entries: LoadEntry[] = [];
    for (let i = 0; i < MAX_ENTRIES_PER_SITE + 3; i++) entries.push(e(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`, 0));
    for (let i = 0; i < entries.length; i += 64) t.onLoad("east", load(entries.slice(i, i + 64)), 0);
    assert.equal(t.counters().refusedEntries, 3);
    assert.equal(t.view(0)[0]!.entries.length, MAX_ENTRIES_PER_SITE);
  });

  it("a new configuration keeps what the remaining sites said", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.2.10/32", 0.1)]), 0);
    t.configure([site("east", "10.0.1.1", 99)], OPTS);
    assert.deepEqual(t.choose(VIP, ["east", "west"], 0).sites.map((s) => [s.name, s.state, s.cost]), [["east", "ok", 109], ["west", "unknown", undefined]]);
  });
});

describe("levels site table: measured distance", () => {
  it("smooths round trips (EWMA, alpha 0.3; the first taken as is) and uses them in the cost", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("north", load([e("192.0.2.10/32", 0.1)]), 0);
    assert.equal(t.choose(VIP, ["north"], 0).sites[0]!.distance, 0); // no sample yet: as near as can be
    t.onRtt("north", 20, 0);
    t.onRtt("north", 10, 0);
    const v = t.view(0).find((s) => s.name === "north")!;
    assert.ok(Math.abs(v.rttMs! - 17) < 1e-9);
    assert.equal(v.rttSamples, 2);
    assert.ok(Math.abs(t.choose(VIP, ["north"], 0).sites[0]!.cost! - 27) < 1e-9);
    assert.equal(t.onRtt("north", -1, 0), false);
  });

  it("a probe turns a pong of the same nonce, from the same site, into a round trip", () => {
    const p = new RttProbe({ firstNonce: 0xffffffff, timeoutMs: 1000 });
    const a = p.ping("north", 100);
    const b = p.ping("east", 100);
    assert.deepEqual([a.nonce, b.nonce], [0xffffffff, 0]);
    assert.equal(p.pong("east", { type: "pong", nonce: a.nonce }, 110), undefined); // not east's ping
    assert.equal(p.pong("north", { type: "pong", nonce: a.nonce }, 112), 12);
    assert.equal(p.pong("north", { type: "pong", nonce: a.nonce }, 113), undefined); // answered already
    assert.equal(p.pong("east", { type: "pong", nonce: b.nonce }, 1200), undefined); // expired
    assert.deepEqual(p.counters(), { pings: 2, pongs: 1, unmatched: 3, expired: 1 });
  });

  it("bounds the pings awaiting an answer", () => {
    const p = new RttProbe({ maxOutstanding: 2, firstNonce: 1 });
    p.ping("a", 0);
    p.ping("b", 0);
    p.ping("c", 0);
    assert.equal(p.pong("a", { type: "pong", nonce: 1 }, 1), undefined);
    assert.equal(p.pong("c", { type: "pong", nonce: 3 }, 1), 1);
  });
});

describe("levels site table: view", () => {
  it("shows each site's state, interval, age, distance and live entries", () => {
    const t = new SiteTable(SITES, OPTS);
    t.onLoad("east", load([e("192.0.2.10/32", 0.25, 4, 99)], 500, 0, 1), 1000);
    t.onRtt("north", 3, 1000);
    const [east, west, north] = t.view(1200);
    assert.deepEqual(east, {
      name: "east", address: "10.0.1.1", control: "10.0.1.1:7790", distanceMode: 10, distance: 10, rttSamples: 0,
      state: "live", updates: 1, intervalMs: 500, lastUpdateAgeMs: 200, pages: 1,
      entries: [{ prefix: "192.0.2.10/32", load: 0.25, members: 4, flows: 99, ageMs: 200 }],
    });
    assert.equal(west!.state, "unknown");
    assert.equal(north!.distance, 3);
    assert.equal(north!.rttAgeMs, 200);
    assert.equal(t.view(2501)[0]!.state, "silent");
  });
});
