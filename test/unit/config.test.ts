// Configuration validation: every error names the path, the value and the expected form; a
// config with any error yields nothing to apply.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import { validate, formatError } from "../../host/config/validate.js";
import type { ConfigInput } from "../../host/config/schema.js";
import { labConfig, svc } from "../lib/lab-config.js";

function errors(input: unknown): string[] {
  const v = validate(input);
  assert.equal(v.ok, false, "expected the config to be refused");
  return v.ok ? [] : v.errors.map(formatError);
}

const base = (): ConfigInput => labConfig([svc("dsr")]);

test("config: the shipped example configs are valid", async () => {
  for (const name of ["dsr", "nat", "tunnel"]) {
    const path = fileURLToPath(new URL(`../../../test/fixtures/configs/${name}.json`, import.meta.url));
    const v = validate(JSON.parse(await readFile(path, "utf8")));
    assert.ok(v.ok, `${name}.json: ${v.ok ? "" : v.errors.map(formatError).join("; ")}`);
  }
});

test("config: defaults are filled in and two ports become each other's peer", () => {
  const v = validate(base());
  assert.ok(v.ok);
  if (!v.ok) return;
  assert.equal(v.config.hostname, "flowswitch");
  assert.equal(v.config.timeouts.tcp, 900);
  assert.equal(v.config.noVip, "forward");
  assert.deepEqual(v.config.ports.map((p) => p.peer), [1, 0]);
  assert.equal(v.config.services[0].backends[0].weight, 1);
  assert.equal(v.config.services[0].onBackendDown, "reselect");
});

test("config: bad values name their path, the value found and the form expected", () => {
  const c = base();
  c.ports[0].mac = "02:00:00:00:01";
  c.ports[1].mtu = 12;
  c.backends![0].address = "10.0.2.300";
  c.services![0].vip = "not-an-ip";
  c.services![0].port = 70000;
  c.services![0].mode = "magic" as never;
  assert.deepEqual(errors(c), [
    'ports[0].mac: "02:00:00:00:01": expected a MAC address like 02:00:00:00:00:01',
    "ports[1].mtu: 12: expected a whole number from 576 to 9000",
    'backends[0].address: "10.0.2.300": expected an IPv4 or IPv6 address',
    'services[0].vip: "not-an-ip": expected an IPv4 or IPv6 address',
    "services[0].port: 70000: expected a whole number from 0 to 65535",
    'services[0].mode: "magic": expected one of dsr, nat, tunnel',
  ]);
});

test("config: references must exist and names must be unique", () => {
  const c = base();
  c.backends![1].name = "s1";
  c.backends![2].via = "nowhere";
  c.services!.push(svc("dsr", { backends: ["s9"] }));
  const e = errors(c);
  assert.ok(e.includes('backends[1].name: "s1": expected a name no other backend has'), e.join("\n"));
  assert.ok(e.some((m) => m.startsWith('backends[2].via: "nowhere": expected the name of a port (client, server)')), e.join("\n"));
  assert.ok(e.includes('services[1].name: "web": expected a name no other service has'), e.join("\n"));
  assert.ok(e.some((m) => m.startsWith("services[1].port: 80: expected a VIP, protocol and port no other service has")), e.join("\n"));
  assert.ok(e.some((m) => m.startsWith('services[1].backends[0].name: "s9": expected the name of a backend')), e.join("\n"));
});

test("config: unknown keys are refused rather than ignored", () => {
  const c = base() as unknown as Record<string, unknown>;
  (c.services as Record<string, unknown>[])[0].backend = ["s1"];
  assert.ok(errors(c).some((m) => m.startsWith('services[0].backend: ["s1"]: expected one of the keys name, vip,')));
});

test("config: mode-specific rules: NAT backends of the VIP's family, tunnel sources for each family, port 0 has no target port", () => {
  assert.ok(errors(labConfig([svc("nat", { backends: ["s1v6"] })])).some((m) => m.includes("a backend of the VIP's family (IPv4) for NAT")));
  assert.ok(errors(labConfig([svc("tunnel", { backends: ["s1v6"], tunnel: { source4: "10.0.2.1" } })])).some((m) => m.startsWith("services[0].tunnel.source6: missing: expected an IPv6 source address")));
  assert.ok(errors(labConfig([svc("nat", { port: 0, targetPort: 80 })])).some((m) => m.startsWith("services[0].targetPort: 80: expected no targetPort on an every-port service")));
});

test("config: sizes are checked: a non-prime Maglev size, too many services, flow tables too big", () => {
  assert.ok(errors(labConfig([svc("dsr")], { dataplane: { maglevSize: 65536 } })).includes("dataplane.maglevSize: 65536: expected a prime number, such as 65537"));
  assert.ok(errors(labConfig([svc("dsr"), svc("dsr", { name: "b", port: 81 })], { dataplane: { limits: { services: 1 } } })).includes("services: 2: expected at most 1 services (dataplane.limits.services)"));
  assert.ok(errors(labConfig([svc("dsr")], { dataplane: { flows: { ipv4: 1 << 30 } } })).some((m) => m.startsWith("dataplane.flows.ipv4: 1073741824: expected a whole number")));
});

test("config: not an object at all is refused with a message, not an exception", () => {
  assert.deepEqual(errors(null), ["config: null: expected an object"]);
  assert.deepEqual(errors([]), ["config: []: expected an object"]);
  assert.ok(errors({}).includes("ports: missing: expected at least one port"));
});

test("config: flow rules are validated against backends and services, with path, value and form", () => {
  const ok = validate({ ...labConfig([svc("dsr")]), flowRules: [{ name: "gold", source: "198.51.100.0/24", vip: "10.0.0.100", backend: "s2", mplsPush: { label: 16 } }] });
  assert.ok(ok.ok, ok.ok ? "" : JSON.stringify(ok.errors));
  if (!ok.ok) return;
  assert.deepEqual(ok.config.flowRules[0].mplsPush, { label: 16, tc: 0, ttl: 64 });
  assert.equal(ok.config.flowRules[0].source?.length, 24);
  assert.equal(ok.config.flowRules[0].port, 0);

  const bad = validate({
    ...labConfig([svc("nat")]),
    flowRules: [
      { name: "a", vip: "10.0.0.100", backend: "nope" },
      { name: "b", vip: "10.0.0.99", backend: "s1" },
      { name: "c", vip: "10.0.0.100", source: "2001:db8::/32", backend: "s1" },
      { name: "d", vip: "10.0.0.100", source: "198.51.100.1/24", backend: "s1" },
      { name: "e", vip: "10.0.0.100", backend: "s1v6" },
      { name: "f", vip: "10.0.0.100", port: 443, backend: "s1", dscp: 64, vlanPush: 4095 },
    ],
  });
  assert.ok(!bad.ok);
  if (bad.ok) return;
  const paths = bad.errors.map((e) => e.path);
  for (const p of ["flowRules[0].backend", "flowRules[1].vip", "flowRules[2].source", "flowRules[3].source", "flowRules[4].backend", "flowRules[5].vip", "flowRules[5].dscp", "flowRules[5].vlanPush"]) {
    assert.ok(paths.includes(p), `${p} refused: ${paths.join(", ")}`);
  }
  const many = Array.from({ length: 256 }, (_, i) => ({ name: `r${i}`, vip: "10.0.0.100", backend: "s1" }));
  const tooMany = validate({ ...labConfig([svc("dsr")]), flowRules: many });
  assert.ok(!tooMany.ok && tooMany.errors.some((e) => e.path === "flowRules" && e.expected === "at most 255 flow rules"));
});
