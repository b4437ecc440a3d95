// The pcap runner as an operator uses it: a config, an input pcap, an output directory.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { mkdtemp, readFile, writeFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { readPcap, writePcap, type PcapPacket } from "../../tools/lib/pcap.js";
import { tcp4Frame, tcp6Frame, ethernet, arp, SYN, ACK, ARP_REQUEST, ETHERTYPE_ARP, formatIPv4 } from "../../host/net/frame.js";
import { validatePcap, tsharkFields } from "../lib/tshark.js";

const run = promisify(execFile);
const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const CLI = join(ROOT, "build/tools/flowswitch-pcap.js");
const CONFIGS = join(ROOT, "test/fixtures/configs");
const ROUTER = "02:00:00:00:01:fe";
const PORT_MAC = "02:00:00:00:01:01";

async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run("node", [CLI, ...args], { timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (e) {
    const x = e as { code: number; stdout: string; stderr: string };
    return { code: x.code, stdout: x.stdout, stderr: x.stderr };
  }
}

function clientTraffic(): PcapPacket[] {
  const out: PcapPacket[] = [];
  let t = 1_700_000_000_000_000;
  for (let i = 0; i < 50; i++) {
    const o = { srcMac: ROUTER, dstMac: PORT_MAC, src: `198.51.100.${i + 1}`, dst: "10.0.0.100", sport: 30000 + i, dport: 80 };
    out.push({ tsUs: (t += 1000), data: tcp4Frame({ ...o, flags: SYN }) });
    out.push({ tsUs: (t += 1000), data: tcp4Frame({ ...o, flags: ACK, seq: 1, payload: new Uint8Array(100) }) });
  }
  for (let i = 0; i < 10; i++) {
    out.push({ tsUs: (t += 1000), data: tcp6Frame({ srcMac: ROUTER, dstMac: PORT_MAC, src: `2001:db8:c::${i + 1}`, dst: "2001:db8::100", sport: 31000 + i, dport: 80, flags: SYN }) });
  }
  out.push({ tsUs: (t += 1000), data: ethernet({ dst: "ff:ff:ff:ff:ff:ff", src: ROUTER, etherType: ETHERTYPE_ARP, payload: arp({ op: ARP_REQUEST, sha: ROUTER, spa: "192.0.2.254", tpa: "10.0.0.100" }) }) });
  out.push({ tsUs: (t += 1000), data: new Uint8Array(9) });
  return out;
}

test("flowswitch-pcap: DSR example config: a pcap per port, punt and drop files, counters that add up", async () => {
  const dir = await mkdtemp(join(tmpdir(), "fsw-pcap-"));
  try {
    await writeFile(join(dir, "in.pcap"), writePcap(clientTraffic()));
    const r = await cli(["--config", join(CONFIGS, "dsr.json"), "--in", join(dir, "in.pcap"), "--out-dir", join(dir, "out")]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /112 frames in: 110 transmitted \(client 0, server 110\), 1 punted, 1 dropped/);
    const report = JSON.parse(await readFile(join(dir, "out/counters.json"), "utf8"));
    assert.equal(report.everyFrameEndedOnce, true);
    assert.deepEqual(report.dropped, [{ frame: 1, reason: "trunc_ethernet" }]);
    assert.equal(report.counters.flows.ipv4, 50);
    assert.equal(report.counters.flows.ipv6, 10);
    assert.equal(readPcap(await readFile(join(dir, "out/punt.pcap"))).length, 1);
    const v = await validatePcap(join(dir, "out/server.pcap"));
    assert.deepEqual(v.problems, []);
    assert.equal(v.frames, 110);
    const macs = new Set((await tsharkFields(join(dir, "out/server.pcap"), ["eth.dst"])).map((row) => row[0]));
    assert.deepEqual([...macs].sort(), ["02:00:00:00:02:11", "02:00:00:00:02:12", "02:00:00:00:02:13"]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("flowswitch-pcap: NAT example config: requests reach backends on port 8080 and replies given on the server port come back from the VIP", async () => {
  const dir = await mkdtemp(join(tmpdir(), "fsw-pcap-"));
  try {
    const requests = clientTraffic().slice(0, 100);
    await writeFile(join(dir, "client.pcap"), writePcap(requests));
    const first = await cli(["--config", join(CONFIGS, "nat.json"), "--in", `client=${join(dir, "client.pcap")}`, "--out-dir", join(dir, "out1")]);
    assert.equal(first.code, 0, first.stderr);
    const toServers = readPcap(await readFile(join(dir, "out1/server.pcap")));
    const rows = await tsharkFields(join(dir, "out1/server.pcap"), ["ip.dst", "tcp.dstport", "tcp.srcport", "ip.src"]);
    for (const [dst, dport] of rows) {
      assert.ok(["10.0.2.11", "10.0.2.12", "10.0.2.13"].includes(dst), dst);
      assert.equal(dport, "8080");
    }
    // each backend answers the SYN it got, from its own address and port
    const replies: PcapPacket[] = toServers.filter((_, i) => i % 2 === 0).map((p, i) => {
      const d = p.data;
      return {
        tsUs: requests[requests.length - 1].tsUs + 1000 * (i + 1),
        data: tcp4Frame({
          srcMac: "02:00:00:00:02:11", dstMac: "02:00:00:00:02:01", src: formatIPv4(d, 30), dst: formatIPv4(d, 26),
          sport: 8080, dport: (d[34] << 8) | d[35], flags: SYN | ACK,
        }),
      };
    });
    await writeFile(join(dir, "server.pcap"), writePcap(replies));
    const second = await cli(["--config", join(CONFIGS, "nat.json"), "--in", `client=${join(dir, "client.pcap")}`, "--in", `server=${join(dir, "server.pcap")}`, "--out-dir", join(dir, "out2")]);
    assert.equal(second.code, 0, second.stderr);
    const back = await tsharkFields(join(dir, "out2/client.pcap"), ["ip.src", "tcp.srcport", "eth.dst"]);
    assert.equal(back.length, 50);
    for (const [src, sport, mac] of back) assert.deepEqual([src, sport, mac], ["10.0.0.100", "80", ROUTER]);
    assert.deepEqual((await validatePcap(join(dir, "out2/client.pcap"))).problems, []);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("flowswitch-pcap: bad input gets a clear message and exit code 2", async () => {
  const dir = await mkdtemp(join(tmpdir(), "fsw-pcap-"));
  try {
    await writeFile(join(dir, "in.pcap"), writePcap(clientTraffic()));
    await writeFile(join(dir, "bad.json"), JSON.stringify({ ports: [{ name: "p0", mac: "not-a-mac" }] }));
    let r = await cli(["--config", join(dir, "bad.json"), "--in", join(dir, "in.pcap"), "--out-dir", join(dir, "out")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /ports\[0\]\.mac: "not-a-mac": expected a MAC address/);
    await writeFile(join(dir, "ng.pcap"), Uint8Array.of(0x0a, 0x0d, 0x0d, 0x0a, 0, 0, 0, 28, 0x4d, 0x3c, 0x2b, 0x1a));
    r = await cli(["--config", join(CONFIGS, "dsr.json"), "--in", join(dir, "ng.pcap"), "--out-dir", join(dir, "out")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /pcapng is not supported/);
    r = await cli(["--config", join(CONFIGS, "dsr.json"), "--in", `nosuchport=${join(dir, "in.pcap")}`, "--out-dir", join(dir, "out")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /no port nosuchport in the config \(client, server\)/);
    r = await cli(["--config", join(CONFIGS, "dsr.json")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /required/);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
