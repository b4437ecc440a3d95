// The snmp configuration section: validation (path, value, expected form; secrets never echoed),
// and the console tree (set, masked keys in every output).
import { test } from "node:test";
import assert from "node:assert/strict";
import type { ConfigInput } from "../../host/config/schema.js";
import { validate, formatError } from "../../host/config/validate.js";
import { setPath, toSetCommands, compare, renderConfig } from "../../host/config/paths.js";

const base = (): ConfigInput => ({ ports: [{ name: "p1", mac: "02:00:00:00:00:01" }] });
const errors = (snmp: unknown): string[] => {
  const v = validate({ ...base(), snmp });
  return v.ok ? [] : v.errors.map(formatError);
};

test("snmp config: no section, no agent; an empty section takes every default", () => {
  const none = validate(base());
  assert.ok(none.ok && none.config.snmp === undefined);
  const v = validate({ ...base(), snmp: {} });
  assert.ok(v.ok);
  assert.deepEqual(v.config.snmp, {
    listen: { address: "0.0.0.0", port: 161 }, enterprise: 32473, location: "", contact: "",
    communities: [], users: [], notify: [], flowTableThreshold: 90,
  });
});

test("snmp config: users default to SHA-256 and AES, notify receivers resolve their user and community", () => {
  const v = validate({ ...base(), snmp: {
    listen: { address: "::", port: 1161 },
    communities: [{ name: "ro-1" }],
    users: [{ name: "mon", authKey: "12345678", privKey: "abcdefgh" }],
    notify: [{ name: "a", address: "192.0.2.9", version: "v2c" }, { name: "b", address: "2001:db8::9", port: 1162, version: "v3", user: "mon" }],
  } });
  assert.ok(v.ok, v.ok ? "" : v.errors.map(formatError).join("\n"));
  const s = v.config.snmp!;
  assert.deepEqual(s.users, [{ name: "mon", authProtocol: "sha256", authKey: "12345678", privProtocol: "aes", privKey: "abcdefgh" }]);
  assert.deepEqual(s.notify[0], { name: "a", address: "192.0.2.9", port: 162, version: "v2c", community: "ro-1" });
  assert.equal(s.notify[1].version === "v3" && s.notify[1].user.name, "mon");
});

test("snmp config: bad values name the path and the form, and never show a key or community", () => {
  const e = errors({
    listen: { address: "nowhere", port: 0 },
    enterprise: -1,
    communities: [{ name: "has space" }],
    users: [{ name: "u", authProtocol: "md5", authKey: "short-1", privProtocol: "des", privKey: "x" }],
    notify: [{ name: "n", address: "192.0.2.1", version: "v3", user: "nobody" }, { name: "m", address: "192.0.2.1", version: "v1" }],
    flowTableThreshold: 101,
  });
  const has = (prefix: string): void => assert.ok(e.some((l) => l.startsWith(prefix)), `${prefix} in\n${e.join("\n")}`);
  has('snmp.listen.address: "nowhere": expected an IPv4 or IPv6 address');
  has("snmp.listen.port: 0: expected a whole number from 1 to 65535");
  has("snmp.enterprise: -1: expected a whole number from 1 to 4294967295");
  has('snmp.communities[0].name: "(hidden)": expected a community string');
  has('snmp.users[0].authProtocol: "md5": expected one of sha256, sha512');
  has('snmp.users[0].authKey: "(hidden)": expected a key of 8 to 64');
  has('snmp.users[0].privProtocol: "des": expected one of aes, aes256b, aes256r');
  has('snmp.users[0].privKey: "(hidden)"');
  has('snmp.notify[0].user: "nobody": expected the name of an SNMP user');
  has('snmp.notify[1].version: "v1": expected one of v2c, v3');
  has("snmp.flowTableThreshold: 101: expected a whole number from 1 to 100");
  assert.ok(!e.join("\n").includes("short-1") && !e.join("\n").includes("has space"), "secrets never echoed");
  assert.ok(errors({ notify: [{ name: "n", address: "192.0.2.1", version: "v2c" }] }).some((l) => l.startsWith("snmp.notify[0].community: missing")));
});

test("snmp config: the console sets every part, and shows keys only as (hidden)", () => {
  const c = base();
  const set = (...w: string[]): void => assert.deepEqual(setPath(c, w), { ok: true }, w.join(" "));
  set("snmp", "listen", "port", "1161");
  set("snmp", "location", "rack 1");
  set("snmp", "communities", "ro-1");
  set("snmp", "users", "mon", "auth-key", "secret-auth-1");
  set("snmp", "users", "mon", "priv-key", "secret-priv-1");
  set("snmp", "users", "mon", "priv-protocol", "aes256b");
  set("snmp", "notify", "nms", "address", "192.0.2.9");
  set("snmp", "notify", "nms", "version", "v3");
  set("snmp", "notify", "nms", "user", "mon");
  set("snmp", "flow-table-threshold", "80");
  assert.ok(validate(c).ok);
  const shown = [...toSetCommands(c), renderConfig(c), ...compare(base(), c)].join("\n");
  assert.ok(!shown.includes("secret-auth-1") && !shown.includes("secret-priv-1"), shown);
  assert.ok(toSetCommands(c).includes("set snmp users mon auth-key (hidden)"), toSetCommands(c).join("\n"));
  const r = setPath(c, ["snmp", "users", "mon", "auth-key", "(hidden)"]);
  assert.equal(r.ok, false, "the mask is not a key: shown output loaded back fails loudly");
  const changed = structuredClone(c);
  changed.snmp!.users![0].authKey = "another-key-2";
  assert.deepEqual(compare(c, changed), ["- set snmp users mon auth-key (hidden)", "+ set snmp users mon auth-key (hidden)"]);
});
