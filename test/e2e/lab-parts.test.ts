// The lab's parts that need no namespace: the appliance config it writes is one the appliance
// accepts, the nginx and HAProxy configs say what the tests rely on, and wrk's report is read right.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { formatError, validate } from "../../host/config/validate.js";
import { applianceConfig, haproxyConf, parseWrk, server, HEALTH_CHECK, SERVERS, VIPS } from "../../tools/lab/index.js";
import { nginxConf } from "../../tools/lab/nginx.js";

const MACS = { frontMac: "02:00:00:77:02:02", backMac: "02:00:00:77:03:02" };

function accepted(input: unknown): void {
  const v = validate(input);
  assert.ok(v.ok, v.ok ? "" : `the appliance refuses the lab's config:\n${v.errors.map(formatError).join("\n")}`);
}

describe("lab: the appliance config it writes", () => {
  it("the full lab config (three servers, DSR and NAT, IPv4 and IPv6) passes the appliance's validation", () => {
    const c = applianceConfig(MACS);
    accepted(c);
    assert.deepEqual(c.services.map((s) => [s.name, s.vip, s.mode]), [
      ["web-dsr", VIPS.dsr4, "dsr"], ["web-nat", VIPS.nat4, "nat"], ["web6-dsr", VIPS.dsr6, "dsr"], ["web6-nat", VIPS.nat6, "nat"],
    ]);
    assert.deepEqual(c.services[0].backends, ["s1", "s2", "s3"]);
    assert.deepEqual(c.services[2].backends, ["s1v6", "s2v6", "s3v6"]);
    assert.ok(c.backends.every((b) => b.check === HEALTH_CHECK && b.via === "back"));
  });

  it("a server set to draining drains both of its backends, and still passes validation", () => {
    const c = applianceConfig({ ...MACS, states: { s2: "draining" } });
    accepted(c);
    assert.deepEqual(c.backends.filter((b) => b.state === "draining").map((b) => b.name), ["s2", "s2v6"]);
  });

  it("the benchmark's one-server config has s1 alone in every pool, and passes validation", () => {
    const c = applianceConfig({ ...MACS, servers: ["s1"] });
    accepted(c);
    assert.deepEqual(c.backends.map((b) => b.name), ["s1", "s1v6"]);
    assert.ok(c.services.every((s) => s.backends.length === 1));
  });
});

describe("lab: server and HAProxy configs", () => {
  it("nginx names its server in the body and an X-Server header, answers /health, serves /big, on port 80 and the direct port", () => {
    const text = nginxConf(server("s2"), "/tmp/fsl/s2", "/tmp/fsl/www/big", false);
    assert.match(text, /add_header X-Server s2 always;/);
    assert.match(text, /location = \/ \{\s+return 200 "s2\\n";/);
    assert.match(text, /location = \/health/);
    assert.match(text, /alias \/tmp\/fsl\/www\/big;/);
    for (const l of ["listen 0.0.0.0:80", "listen [::]:80", "listen 0.0.0.0:8080", "listen [::]:8080"]) assert.ok(text.includes(l), l);
  });

  it("HAProxy balances in TCP mode to the servers' port 80, from the appliance's back address", () => {
    const text = haproxyConf(["s1"]);
    assert.match(text, /mode tcp/);
    assert.match(text, new RegExp(`server s1 ${SERVERS[0].ipv4.replace(/\./g, "\\.")}:80 source 10\\.77\\.3\\.2`));
    assert.doesNotMatch(text, /server s2/);
  });
});

describe("lab: wrk's report", () => {
  it("reads requests/s, the latency percentiles in any unit, and no errors when there were none", () => {
    const r = parseWrk("http://10.77.3.11:8080/", `Running 1s test @ http://10.77.3.11:8080/
  2 threads and 10 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   148.16us  263.50us   4.68ms   96.61%
    Req/Sec    40.90k     6.69k   46.75k    90.00%
  Latency Distribution
     50%   97.00us
     75%  140.00us
     90%  194.00us
     99%    1.39ms
  81341 requests in 1.00s, 12.72MB read
Requests/sec:  81288.57
Transfer/sec:     12.71MB
`);
    assert.equal(r.rps, 81288.57);
    assert.equal(r.requests, 81341);
    assert.equal(r.durationS, 1);
    assert.deepEqual(r.latencyMs, { p50: 0.097, p75: 0.14, p90: 0.194, p99: 1.39 });
    assert.deepEqual(r.socketErrors, { connect: 0, read: 0, write: 0, timeout: 0 });
    assert.equal(r.non2xx, 0);
  });

  it("reads socket errors, non-2xx responses, and latencies in seconds", () => {
    const r = parseWrk("http://10.77.2.100/", `Running 10s test @ http://10.77.2.100/
  2 threads and 20 connections
  Latency Distribution
     50%    1.20ms
     75%    2.00ms
     90%    5.10ms
     99%    1.02s
  376862 requests in 10.01s, 59.00MB read
  Socket errors: connect 3, read 10, write 1, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  37649.30
Transfer/sec:      5.89MB
`);
    assert.deepEqual(r.socketErrors, { connect: 3, read: 10, write: 1, timeout: 2 });
    assert.equal(r.non2xx, 7);
    assert.equal(r.latencyMs.p99, 1020);
  });

  it("says what is missing when the report has no latency distribution", () => {
    assert.throws(() => parseWrk("http://x/", "  10 requests in 1.00s, 1KB read\nRequests/sec: 10.00\n"), /50% latency \(was --latency given\?\)/);
  });
});
