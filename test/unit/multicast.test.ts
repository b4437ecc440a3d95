// IGMPv3 and MLDv2 membership reports as the appliance sends them for the advertisement groups,
// dissected by tshark: message types, record types, groups, TTL/hop limit 1, Router Alert, checksums.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { igmpReport, mldReport, groupMac, linkLocal, GroupReporter, CHANGE_TO_EXCLUDE, CHANGE_TO_INCLUDE, MODE_IS_EXCLUDE } from "../../host/net/multicast.js";
import { writePcap } from "../../tools/lib/pcap.js";
import { tsharkFields, validatePcap } from "../lib/tshark.js";

const MAC = "02:00:00:00:02:01";

test("multicast: group MACs and the EUI-64 link-local address follow RFC 1112, RFC 2464 and RFC 4291", () => {
  assert.equal(groupMac("239.255.77.77"), "01:00:5e:7f:4d:4d");
  assert.equal(groupMac("224.128.0.22"), "01:00:5e:00:00:16", "the top bit of the second byte is not mapped");
  assert.equal(groupMac("ff02::77"), "33:33:00:00:00:77");
  assert.equal(linkLocal("02:00:00:00:02:01"), "fe80::ff:fe00:201");
  assert.equal(linkLocal("00:1b:21:aa:bb:cc"), "fe80::21b:21ff:feaa:bbcc");
});

test("multicast: IGMPv3 and MLDv2 reports are what tshark reads as such, with good checksums", async () => {
  const dir = await mkdtemp(join(tmpdir(), "fsw-mc-"));
  try {
    const frames = [
      igmpReport({ mac: MAC, ipv4: "10.0.2.1" }, ["239.255.77.77"], CHANGE_TO_EXCLUDE),
      igmpReport({ mac: MAC }, ["239.255.77.77", "239.1.2.3"], MODE_IS_EXCLUDE),
      mldReport({ mac: MAC }, ["ff02::77"], CHANGE_TO_EXCLUDE),
      mldReport({ mac: MAC }, ["ff02::77", "ff05::1:3"], CHANGE_TO_INCLUDE),
    ];
    const path = join(dir, "reports.pcap");
    await writeFile(path, writePcap(frames.map((data, i) => ({ tsUs: i, data }))));
    const v = await validatePcap(path);
    assert.deepEqual(v.problems, []);
    assert.equal(v.frames, 4);
    const igmp = await tsharkFields(path, ["eth.dst", "ip.src", "ip.dst", "ip.ttl", "ip.opt.ra", "igmp.version", "igmp.type", "igmp.num_grp_recs", "igmp.record_type", "igmp.maddr", "igmp.checksum.status"], "igmp");
    assert.deepEqual(igmp, [
      ["01:00:5e:00:00:16", "10.0.2.1", "224.0.0.22", "1", "0", "3", "0x22", "1", "4", "239.255.77.77", "1"],
      ["01:00:5e:00:00:16", "0.0.0.0", "224.0.0.22", "1", "0", "3", "0x22", "2", "2,2", "239.255.77.77,239.1.2.3", "1"],
    ]);
    const mld = await tsharkFields(path, ["eth.dst", "ipv6.src", "ipv6.dst", "ipv6.hlim", "ipv6.opt.router_alert", "icmpv6.type", "icmpv6.mldr.nb_mcast_records", "icmpv6.mldr.mar.record_type", "icmpv6.mldr.mar.multicast_address", "icmpv6.checksum.status"], "icmpv6");
    assert.deepEqual(mld, [
      ["33:33:00:00:00:16", "fe80::ff:fe00:201", "ff02::16", "1", "0", "143", "1", "4", "ff02::77", "1"],
      ["33:33:00:00:00:16", "fe80::ff:fe00:201", "ff02::16", "1", "0", "143", "2", "3,3", "ff02::77,ff05::1:3", "1"],
    ]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("multicast: the reporter joins at once and again after a second, leaves what is no longer wanted, and leaves all on stop", async () => {
  const sent: { port: number; frame: Uint8Array }[] = [];
  const r = new GroupReporter((port, frame) => void sent.push({ port, frame }));
  const recordType = (f: Uint8Array): number => (f[12] === 0x08 ? f[14 + 24 + 8] : f[14 + 40 + 8 + 8]);
  r.set([{ port: 1, source: { mac: MAC, ipv4: "10.0.2.1" }, groups: ["239.255.77.77", "ff02::77"] }]);
  assert.equal(sent.length, 2, "one IGMP and one MLD report at once");
  assert.deepEqual(sent.map((s) => [s.port, recordType(s.frame)]), [[1, CHANGE_TO_EXCLUDE], [1, CHANGE_TO_EXCLUDE]]);
  await new Promise((res) => setTimeout(res, 1100));
  assert.equal(sent.length, 4, "repeated once for robustness");
  r.set([{ port: 1, source: { mac: MAC, ipv4: "10.0.2.1" }, groups: ["239.255.77.77", "ff02::77"] }]);
  assert.equal(sent.length, 4, "the same memberships again: nothing new to report");
  r.set([{ port: 1, source: { mac: MAC, ipv4: "10.0.2.1" }, groups: ["239.255.77.77"] }]);
  assert.equal(sent.length, 5);
  assert.equal(sent[4].frame[12], 0x86, "an MLD report");
  assert.equal(recordType(sent[4].frame), CHANGE_TO_INCLUDE, "leaving ff02::77");
  r.stop();
  assert.equal(recordType(sent[sent.length - 1].frame), CHANGE_TO_INCLUDE, "stop leaves the IPv4 group");
  const n = sent.length;
  await new Promise((res) => setTimeout(res, 1100));
  assert.equal(sent.length, n, "nothing after stop");
});
