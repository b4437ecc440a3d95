import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import {
  ACK,
  ETHERTYPE_IPV4,
  ETHERTYPE_IPV6,
  ETHERTYPE_VLAN,
  ethernet,
  icmpv4,
  icmpv6,
  IPPROTO_ICMP,
  IPPROTO_ICMPV6,
  ipv4,
  ipv6,
  PSH,
  RST,
  SYN,
  tcp4Frame,
  udp4Frame,
  udp6Frame,
} from "../../host/net/frame.js";
import { writePcap } from "../../tools/lib/pcap.js";
import { requireTool, tsharkFields, validatePcap } from "../lib/tshark.js";

const MAC_A = "02:00:00:00:00:01";
const MAC_B = "02:00:00:00:00:02";
const ETH = 14;
const IP4 = 20;
const IP6 = 40;
const T0 = Date.UTC(2024, 0, 1) * 1000;

const flow = { srcMac: MAC_A, dstMac: MAC_B, src: "10.0.0.1", dst: "10.0.0.2", sport: 40000, dport: 40001 };
const flow6 = { ...flow, src: "2001:db8::1", dst: "2001:db8::2" };
const payload = new TextEncoder().encode("payload");

/** A copy of `frame` with one byte inverted, to break whatever checksum covers it. */
function flipped(frame: Uint8Array, offset: number): Uint8Array {
  const out = frame.slice();
  out[offset] ^= 0xff;
  return out;
}

describe("tshark check: requireTool", () => {
  it("accepts a command on PATH", () => {
    requireTool("tshark", "tshark");
  });

  it("says how to install a missing command", () => {
    assert.throws(() => requireTool("flowswitch-no-such-tool", "no-such-package"), {
      message:
        "flowswitch-no-such-tool is not installed: run `apt-get install -y no-such-package` " +
        "(or `bash tools/ensure-test-deps.sh` as root)",
    });
  });
});

describe("tshark check: validatePcap", () => {
  let dir = "";

  /** Writes `frames` to a new pcap in the temp dir and validates it. */
  async function validate(name: string, frames: Uint8Array[]) {
    const path = join(dir, `${name}.pcap`);
    await writeFile(path, writePcap(frames.map((data, i) => ({ tsUs: T0 + i, data }))));
    return validatePcap(path);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flowswitch-tshark-"));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("counts frames and reports nothing for good ones", async () => {
    const result = await validate("good", [tcp4Frame(flow), udp4Frame({ ...flow, payload }), udp6Frame({ ...flow6, payload })]);
    assert.deepEqual(result, { frames: 3, problems: [] });
  });

  it("ignores TCP sequence analysis: unseen segments, out of order, resets", async () => {
    const result = await validate("sequence", [
      tcp4Frame({ ...flow, flags: ACK | PSH, seq: 1_000_000, ack: 5, payload }),
      tcp4Frame({ ...flow, flags: ACK | PSH, seq: 9_000_000, ack: 5, payload }), // previous segment not captured
      tcp4Frame({ ...flow, flags: ACK | PSH, seq: 2_000_000, ack: 5, payload }), // out of order
      tcp4Frame({ ...flow, flags: ACK | PSH, seq: 2_000_000, ack: 5, payload }), // the same segment again
      tcp4Frame({ ...flow, src: flow.dst, dst: flow.src, sport: flow.dport, dport: flow.sport, ack: 999_999_999 }), // ACKed unseen
      tcp4Frame({ ...flow, flags: SYN }),
      tcp4Frame({ ...flow, flags: RST }),
    ]);
    assert.deepEqual(result, { frames: 7, problems: [] });
  });

  it("reports a broken TCP checksum, naming the frame", async () => {
    const broken = flipped(tcp4Frame({ ...flow, payload }), ETH + IP4 + 16);
    const { problems } = await validate("tcp-checksum", [tcp4Frame(flow), broken]);
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0], /^frame 2: Bad checksum/);
  });

  it("reports broken IPv4, UDP, UDP over IPv6, ICMP and ICMPv6 checksums", async () => {
    const ping = ethernet({
      dst: MAC_B, src: MAC_A, etherType: ETHERTYPE_IPV4,
      payload: ipv4({ src: flow.src, dst: flow.dst, protocol: IPPROTO_ICMP, payload: icmpv4({ type: 8, payload }) }),
    });
    const ping6 = ethernet({
      dst: MAC_B, src: MAC_A, etherType: ETHERTYPE_IPV6,
      payload: ipv6({ src: flow6.src, dst: flow6.dst, nextHeader: IPPROTO_ICMPV6, payload: icmpv6({ src: flow6.src, dst: flow6.dst, type: 128, payload }) }),
    });
    const { frames, problems } = await validate("checksums", [
      flipped(udp4Frame({ ...flow, payload }), ETH + 10), // IPv4 header checksum
      flipped(udp4Frame({ ...flow, payload }), ETH + IP4 + 6), // UDP checksum
      flipped(udp6Frame({ ...flow6, payload }), ETH + IP6 + 6),
      flipped(ping, ETH + IP4 + 2),
      flipped(ping6, ETH + IP6 + 2),
    ]);
    assert.equal(frames, 5);
    for (const frame of [1, 2, 3, 4, 5]) {
      assert.ok(
        problems.some((p) => p.startsWith(`frame ${frame}: Bad checksum`)),
        `no bad checksum reported for frame ${frame}:\n${problems.join("\n")}`,
      );
    }
  });

  it("reports a frame cut inside its TCP header as malformed", async () => {
    const truncated = tcp4Frame({ ...flow, payload }).subarray(0, ETH + IP4 + 10);
    const { frames, problems } = await validate("truncated", [tcp4Frame(flow), truncated]);
    assert.equal(frames, 2);
    assert.ok(problems.length > 0);
    assert.ok(problems.every((p) => p.startsWith("frame 2: ")), problems.join("\n"));
    assert.ok(problems.some((p) => /Malformed Packet/.test(p)), problems.join("\n"));
  });

  it("reports tshark failing on a pcap file cut in the middle of a record", async () => {
    const path = join(dir, "cut.pcap");
    const file = writePcap([{ tsUs: T0, data: tcp4Frame(flow) }, { tsUs: T0 + 1, data: tcp4Frame(flow) }]);
    await writeFile(path, file.subarray(0, file.length - 10));
    const { frames, problems } = await validatePcap(path);
    assert.equal(frames, 1);
    assert.equal(problems.length, 1);
    assert.match(problems[0], /^tshark exited with code \d+: .*cut short in the middle of a packet/);
  });

  it("reports tshark failing on a missing file", async () => {
    const { frames, problems } = await validatePcap(join(dir, "does-not-exist.pcap"));
    assert.equal(frames, 0);
    assert.match(problems.join("\n"), /tshark exited with code \d+: .*doesn't exist/);
  });
});

describe("tshark check: tsharkFields", () => {
  let dir = "";
  let path = "";

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "flowswitch-tshark-"));
    path = join(dir, "fields.pcap");
    const frames = [
      // Two 802.1Q tags (no 802.1ad): tshark shows both as vlan.id.
      ethernet({
        dst: MAC_B, src: MAC_A, vlans: [10, 20], vlanTpids: [ETHERTYPE_VLAN, ETHERTYPE_VLAN], etherType: ETHERTYPE_IPV4,
        payload: ipv4({ src: flow.src, dst: flow.dst, protocol: IPPROTO_ICMP, payload: icmpv4({ type: 8 }) }),
      }),
      udp4Frame({ ...flow, sport: 1111, payload }),
      udp6Frame({ ...flow6, sport: 2222, payload }),
    ];
    await writeFile(path, writePcap(frames.map((data, i) => ({ tsUs: T0 + i, data }))));
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("returns one row per frame, empty strings for absent fields, repeated values joined by commas", async () => {
    assert.deepEqual(await tsharkFields(path, ["frame.number", "vlan.id", "udp.srcport"]), [
      ["1", "10,20", ""],
      ["2", "", "1111"],
      ["3", "", "2222"],
    ]);
    assert.deepEqual(await tsharkFields(path, ["ip.src", "icmp.type"], "frame.number == 1"), [["10.0.0.1", "8"]]);
  });

  it("applies the display filter", async () => {
    assert.deepEqual(await tsharkFields(path, ["ipv6.src", "udp.srcport"], "ipv6"), [["2001:db8::1", "2222"]]);
    assert.deepEqual(await tsharkFields(path, ["frame.number"], "sctp"), []);
  });

  it("throws with tshark's message on a bad filter", async () => {
    await assert.rejects(tsharkFields(path, ["frame.number"], "no.such.field == 1"), /tshark exited with code \d+: .*no\.such\.field/);
  });
});
