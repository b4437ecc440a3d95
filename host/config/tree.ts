// The configuration as a tree of paths: every key of ConfigInput, its word on the console
// (kebab-case of the JSON key), a one-line help, and for leaves the type of value it takes.
// set / delete / completion / set form / compare / show configuration all walk this one tree.
//
// Values are checked one at a time here (form and range); rules between values (references,
// uniqueness, mode-specific requirements) stay in validate.ts and are checked at commit, as on a
// Junos box. The forms and ranges come from validate.ts so that the two never disagree.
import { parseIP, parseMac } from "../net/frame.js";
import { isPrime } from "../engine/maglev.js";
import {
  NAME, NAME_FORM, RANGE, TEXT_MAX, PASSWORD_HASH_FORM, TIMEZONE_FORM, HOST_FORM, PREFIX_FORM,
  parsePasswordHash, isTimeZone, timeZones, isHost, parsePrefix,
} from "./validate.js";
import { TELEMETRY_RANGE, MQTT_URL_FORM, MQTT_TEXT_FORM, FILE_PATH_FORM, isMqttUrl, isFilePath } from "./validate.js";
import {
  SNMP_RANGE, SNMP_COMMUNITY_FORM, SNMP_KEY_FORM, SNMP_TEXT_FORM, SNMP_LISTEN_FORM, isSnmpCommunity, isSnmpKey, isSnmpText, isListenAddress,
} from "./validate.js";
import {
  DISCOVERY_RANGE, DISCOVERY_SECRET_FORM, DISCOVERY_GROUP_FORM, DISCOVERY_GROUP6_FORM, parseDiscoverySecret, isMulticastGroup4, isMulticastGroup6,
} from "./validate.js";
import { SUPERVISOR_RANGE, RELAY_TARGET_FORM, UNICAST_FORM, parseUnicast, parseRelayTarget } from "./validate.js";
import { PORT_RANGE_FORM } from "./validate.js";
import { HA_RANGE, LEVELS_RANGE, PARTITION_RANGE } from "./validate.js";
import { HA_DEFAULTS } from "./schema.js";
import { DEFAULT_TIMEOUTS, type ConfigInput } from "./schema.js";

/** A word the console can offer, with its one-line help. */
export interface Completion {
  word: string;
  help: string;
}

/** The kind of value a leaf takes, and how it reads from and prints to one console word. */
export interface ValueType {
  /** Shown in completions in place of a free-form value, e.g. "<address>". */
  placeholder: string;
  /** What the placeholder stands for, e.g. "IPv4 or IPv6 address". */
  help: string;
  /** The form, as error messages say it: "an IPv4 or IPv6 address". */
  expected: string;
  /** The JSON value for a word, or undefined when the word is not of this type. */
  parse(word: string): unknown;
  /** The word for a JSON value. */
  format(value: unknown): string;
  /** Values to offer in completions (enumerations, names of existing things). */
  values?(input: ConfigInput): Completion[];
  /** Only `values` are accepted: no placeholder is offered. */
  closed?: boolean;
  /** Numbers: [min, max]. */
  range?: readonly [number, number];
}

interface NodeBase {
  /** JSON key in ConfigInput. */
  key: string;
  /** Console word: kebab-case of the key. */
  word: string;
  help: string;
}

export interface ContainerNode extends NodeBase {
  kind: "container";
  children: SchemaNode[];
}

/** A JSON array of objects keyed by `name`; the console addresses an entry by its name. */
export interface ListNode extends NodeBase {
  kind: "list";
  /** The type of the key field. */
  keyType: ValueType;
  /** The field entries are keyed by (default `name`; discovery keys: `id`). */
  keyField?: string;
  /** Noun for one entry, used in messages ("service"). */
  noun: string;
  children: SchemaNode[];
  /** Entries may be written as a bare name string (services' backends): read as { name }. */
  shorthand?: boolean;
  /** The key stays present, as [] when empty (ConfigInput requires it). */
  always?: boolean;
  /** One line describing an existing entry, for completion help. */
  summary?(entry: Record<string, unknown>): string;
}

export interface LeafNode extends NodeBase {
  kind: "leaf";
  type: ValueType;
}

/** A JSON array of values; `set` adds one, `delete` removes one or all. */
export interface LeafListNode extends NodeBase {
  kind: "leaf-list";
  type: ValueType;
}

export type SchemaNode = ContainerNode | ListNode | LeafNode | LeafListNode;

// ---- value types -----------------------------------------------------------------------------

const WHOLE = /^-?\d+$/;
const DECIMAL = /^-?\d+(\.\d+)?$/;

export function int(min: number, max: number, placeholder = "<number>", unit = ""): ValueType {
  return {
    placeholder,
    help: `whole number from ${min} to ${max}${unit}`,
    expected: `a whole number from ${min} to ${max}`,
    parse: (w) => (WHOLE.test(w) && Number(w) >= min && Number(w) <= max ? Number(w) : undefined),
    format: String,
    range: [min, max],
  };
}

export function seconds(min: number, max: number): ValueType {
  return {
    placeholder: "<seconds>",
    help: `seconds, from ${min} to ${max}`,
    expected: `seconds, from ${min} to ${max}`,
    parse: (w) => (DECIMAL.test(w) && Number(w) >= min && Number(w) <= max ? Number(w) : undefined),
    format: String,
    range: [min, max],
  };
}

/** One of a fixed set of words, each with its help. */
export function oneOf(options: Record<string, string>): ValueType {
  const words = Object.keys(options);
  return {
    placeholder: `<${words.join("|")}>`,
    help: words.join(" or "),
    expected: `one of ${words.join(", ")}`,
    parse: (w) => (words.includes(w) ? w : undefined),
    format: String,
    values: () => words.map((word) => ({ word, help: options[word] })),
    closed: true,
  };
}

export const boolean: ValueType = {
  placeholder: "<true|false>",
  help: "true or false",
  expected: "true or false",
  parse: (w) => (w === "true" ? true : w === "false" ? false : undefined),
  format: String,
  values: () => [{ word: "true", help: "yes" }, { word: "false", help: "no" }],
  closed: true,
};

function text(placeholder: string, help: string, expected: string, ok: (w: string) => boolean): ValueType {
  return { placeholder, help, expected, parse: (w) => (ok(w) ? w : undefined), format: String };
}

function address(family?: 4 | 6): ValueType {
  const help = family ? `IPv${family} address` : "IPv4 or IPv6 address";
  const expected = family === 4 ? "an IPv4 address" : family === 6 ? "an IPv6 address" : "an IPv4 or IPv6 address";
  return text("<address>", help, expected, (w) => {
    try {
      const a = parseIP(w);
      return (!family || a.family === family) && !a.bytes.every((b) => b === 0);
    } catch {
      return false;
    }
  });
}

export const ipv4 = address(4);
export const ipv6 = address(6);
export const ip = address();

export const mac = text("<mac>", "unicast MAC address like 02:00:00:00:00:01", "a unicast MAC address like 02:00:00:00:00:01", (w) => {
  try {
    return (parseMac(w)[0] & 1) === 0;
  } catch {
    return false;
  }
});

export const name = text("<name>", "1-32 letters, digits, '_', '.', '-', starting with a letter", NAME_FORM, (w) => NAME.test(w));

export const string = text("<text>", `text of at most ${TEXT_MAX} characters`, `a string of at most ${TEXT_MAX} characters`, (w) => w.length <= TEXT_MAX);

/** A password hash. A value that is not one is never printed: it may be a mistyped password. */
export const secret: ValueType = {
  ...text("<hash>", "scrypt$N$r$p$<salt>$<hash> (base64): the hash, never the password", PASSWORD_HASH_FORM, (w) => parsePasswordHash(w) !== undefined),
  format: (v) => (typeof v === "string" && parsePasswordHash(v) ? v : "(hidden: not a password hash)"),
};

export const timezone: ValueType = {
  ...text("<timezone>", "IANA time zone name (UTC, Europe/Paris, ...)", TIMEZONE_FORM, isTimeZone),
  values: () => timeZones().map((word) => ({ word, help: "time zone" })),
};

export const host = text("<server>", "IPv4 or IPv6 address or host name", HOST_FORM, isHost);

/** A name that must be one of a list's entries at commit; completion offers the existing ones. */
function reference(list: keyof typeof summaries, noun: string): ValueType {
  return {
    ...name,
    values: (input) => entries(input[list]).map((e) => ({ word: String(e.name), help: `${noun} ${summaries[list](e)}`.trim() })),
  };
}

/** A type with a further per-value rule. */
function refine(type: ValueType, ok: (value: never) => boolean, expected: string): ValueType {
  return { ...type, expected, parse: (w) => {
    const v = type.parse(w);
    return v !== undefined && ok(v as never) ? v : undefined;
  } };
}

// ---- the tree --------------------------------------------------------------------------------

/** targetPort -> target-port */
export function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

const leaf = (key: string, type: ValueType, help: string): LeafNode => ({ kind: "leaf", key, word: kebab(key), type, help });
const leafList = (key: string, type: ValueType, help: string): LeafListNode => ({ kind: "leaf-list", key, word: kebab(key), type, help });
const container = (key: string, help: string, children: SchemaNode[]): ContainerNode => ({ kind: "container", key, word: kebab(key), help, children });
const list = (key: string, help: string, o: Omit<ListNode, "kind" | "key" | "word" | "help">): ListNode => ({ kind: "list", key, word: kebab(key), help, ...o });

const str = (v: unknown): string => (v === undefined ? "" : String(v));
const summaries = {
  ports: (e: Record<string, unknown>) => [e.mac, e.ipv4, e.ipv6].filter((x) => x !== undefined).join(" "),
  backends: (e: Record<string, unknown>) => `${str(e.address)}${e.via === undefined ? "" : ` via ${str(e.via)}`}`,
  services: (e: Record<string, unknown>) => [e.vip, e.protocol === undefined ? undefined : `${str(e.protocol)}/${str(e.port)}`, e.mode].filter((x) => x !== undefined).join(" "),
  chains: (e: Record<string, unknown>) => `${Array.isArray(e.hops) ? e.hops.length : 0} hops`,
};

const tcpPort = int(...RANGE.port, "<port>");

const check = container("check", "health check probing the backend", [
  leaf("type", oneOf({ tcp: "TCP connect", http: "HTTP request, status checked", https: "HTTPS request, status checked", udp: "UDP datagram, reply checked" }), "how the backend is probed"),
  leaf("port", tcpPort, "port probed (default: the service's port)"),
  leaf("path", refine(string, (p: string) => p.startsWith("/"), "a path starting with /"), "HTTP(S) request path (default /)"),
  leaf("host", string, "HTTP(S) Host header"),
  leaf("expectStatus", int(...RANGE.expectStatus, "<status>"), "HTTP status meaning healthy (default 200)"),
  leaf("send", string, "UDP: payload sent"),
  leaf("expect", string, "UDP: text the reply must contain"),
  leaf("interval", seconds(...RANGE.checkSeconds), "seconds between probes (default 2)"),
  leaf("timeout", seconds(...RANGE.checkSeconds), "seconds a probe may take (default 1)"),
  leaf("rise", int(...RANGE.checkCount), "successes that bring a backend up (default 2)"),
  leaf("fall", int(...RANGE.checkCount), "failures that take a backend down (default 3)"),
]);

const timeoutHelp: Record<keyof typeof DEFAULT_TIMEOUTS, string> = {
  tcp: "established TCP flows",
  tcpSyn: "TCP flows that have seen only a SYN",
  tcpClosing: "TCP flows after FIN or RST",
  udp: "UDP flows",
  icmp: "ICMP flows",
  other: "flows of other protocols",
};

const mqttText = text("<text>", `text of 1 to ${TEXT_MAX} characters`, MQTT_TEXT_FORM, (w) => w.length > 0 && w.length <= TEXT_MAX);
const filePath = text("<file>", "absolute path of a PEM file", FILE_PATH_FORM, isFilePath);

const telemetry = container("telemetry", "MQTT telemetry: state, metrics and events (on by default, to the embedded broker)", [
  leaf("enabled", boolean, "publish telemetry at all (default true)"),
  container("mqtt", "the broker and what is published to it", [
    leaf("url", text("<url>", "mqtt://host[:port] or mqtts://host[:port]", MQTT_URL_FORM, isMqttUrl), "broker to publish to (default: the embedded broker)"),
    leaf("username", mqttText, "login at the broker"),
    leaf("password", mqttText, "password at the broker (sent to it as is)"),
    leaf("ca", filePath, "PEM file of the CA that signed the broker's certificate (mqtts)"),
    leaf("cert", filePath, "PEM file of the client certificate (mqtts)"),
    leaf("key", filePath, "PEM file of the client certificate's key (mqtts)"),
    leaf("site", name, "site level of the topic tree flowswitch/<site>/<host>/ (default default)"),
    leaf("interval", seconds(...TELEMETRY_RANGE.interval), "seconds between metrics messages (default 10)"),
    leaf("format", oneOf({ json: "JSON text (default)", cbor: "CBOR (RFC 8949)" }), "encoding of metrics and events"),
    leaf("eventBuffer", int(...TELEMETRY_RANGE.eventBuffer), "events held while the broker is away (default 1000)"),
  ]),
  container("embeddedBroker", "the broker the appliance runs when no url is set", [
    leaf("address", ip, "address it listens on (default 127.0.0.1)"),
    leaf("port", tcpPort, "TCP port it listens on (default 1883)"),
  ]),
]);

/** What an SNMP key prints as. Refused as a value, so that shown output loaded back fails loudly. */
export const SNMP_KEY_MASK = "(hidden)";

/** An SNMP USM key (a password, unlike passwordHash): taken as typed, never printed. */
export const snmpKey: ValueType = {
  ...text("<key>", `secret of ${SNMP_RANGE.key[0]} to ${SNMP_RANGE.key[1]} characters (never shown)`, SNMP_KEY_FORM, (w) => w !== SNMP_KEY_MASK && isSnmpKey(w)),
  format: () => SNMP_KEY_MASK,
};

const snmpText = text("<text>", SNMP_TEXT_FORM, SNMP_TEXT_FORM, isSnmpText);

/** A list of SNMP users, for references from notify receivers. */
const snmpUserRef: ValueType = {
  ...name,
  values: (input) => entries(input.snmp?.users).map((e) => ({ word: String(e.name), help: `SNMP user, ${str(e.authProtocol ?? "sha256")}/${str(e.privProtocol ?? "aes")}` })),
};

const prefix = text("<prefix>", "address prefix like 192.0.2.0/24 or 2001:db8::/32", PREFIX_FORM, (w) => parsePrefix(w) !== undefined);

const flowRules = list("flowRules", "flows sent to a named backend ahead of Maglev, with QoS actions (first match wins)", {
  noun: "flow rule",
  keyType: name,
  summary: (e) => [e.source ?? "any", "->", e.vip, e.protocol === undefined ? undefined : `${str(e.protocol)}/${str(e.port ?? 0)}`, "to", e.backend].filter((x) => x !== undefined).map(str).join(" "),
  children: [
    leaf("source", prefix, "client prefix matched (default: any client)"),
    leaf("protocol", oneOf({ tcp: "TCP", udp: "UDP" }), "transport protocol matched (default: any)"),
    leaf("vip", ip, "VIP matched: the VIP of a service, whose counters and mode the flows take"),
    leaf("port", int(...RANGE.servicePort, "<port>", ", 0: any"), "destination port matched (default 0: any)"),
    leaf("backend", reference("backends", "backend"), "backend the flows go to (while it takes new flows)"),
    leaf("dscp", int(...RANGE.dscp, "<dscp>"), "DSCP written into IPv4 TOS / IPv6 traffic class (ECN kept)"),
    leaf("pcp", int(...RANGE.pcp, "<priority>"), "802.1p priority of the outermost VLAN tag"),
    leaf("vlanPush", int(...RANGE.vlanId, "<vlan-id>"), "VLAN id of an 802.1Q tag pushed on the frame"),
    leaf("vlanPop", boolean, "remove the outermost VLAN tag (before a push)"),
    container("mplsPush", "an MPLS label pushed on the frame", [
      leaf("label", int(...RANGE.mplsLabel, "<label>"), "the label"),
      leaf("tc", int(...RANGE.mplsTc), "traffic class (default 0)"),
      leaf("ttl", int(...RANGE.mplsTtl), "TTL of the label (default 64)"),
    ]),
    leaf("mplsPop", boolean, "remove the top MPLS label (before a push)"),
    leaf("idleTimeout", int(...RANGE.idleTimeout, "<seconds>", " seconds"), "idle timeout of established flows (default: the protocol's)"),
  ],
});

const chainDevice = (what: string): { noun: string; keyType: ValueType; summary: (e: Record<string, unknown>) => string; children: ReturnType<typeof leaf>[] } => ({
  noun: what,
  keyType: name,
  summary: (e) => `on ${str(e.port)} ${str(e.mac ?? e.address)}`,
  children: [
    leaf("port", reference("ports", "port"), "port the device is on (out and back)"),
    leaf("mac", mac, "the device's MAC (or give its address)"),
    leaf("address", ip, "the device's address, resolved by ARP / ND on its port"),
  ],
});

const chains = list("chains", "service chains: devices a service's packets pass before its servers", {
  noun: "chain",
  keyType: name,
  summary: (e) => `${Array.isArray(e.hops) ? e.hops.length : 0} hops`,
  children: [
    list("hops", "the hops in order (replies pass them in reverse)", {
      noun: "hop",
      keyType: name,
      summary: (e) => str(e.kind),
      children: [
        leaf("kind", oneOf({ inline: "out to the device and back", mirror: "a copy goes to the device" }), "what the hop does"),
        list("devices", "devices that take flows (each flow keeps its own)", chainDevice("device")),
        list("alternates", "devices that stand in for a failed one, in order", chainDevice("alternate")),
      ],
    }),
  ],
});

const portRangeType = text("<ports>", 'a port or a range "first-last"', PORT_RANGE_FORM, (w) => /^\d{1,5}(-\d{1,5})?$/.test(w));

const acls = list("acls", "ACL tables: new flows entering a port, per service", {
  noun: "ACL table",
  keyType: name,
  summary: (e) => `${str(e.port)}${e.service === undefined ? "" : `/${str(e.service)}`}, default ${str(e.default ?? "allow")}`,
  children: [
    leaf("port", reference("ports", "port"), "port whose incoming new flows the table judges"),
    leaf("service", reference("services", "service"), "only this service's flows (default: every service)"),
    leaf("default", oneOf({ allow: "what no rule matches passes (default)", deny: "what no rule matches is dropped" }), "the verdict when no rule matches"),
    list("rules", "rules in order: the first that matches decides", {
      noun: "ACL rule",
      keyType: name,
      summary: (e) => [e.action, e.protocol, e.source, e.destinationPorts].filter((x) => x !== undefined).map(str).join(" "),
      children: [
        leaf("action", oneOf({ allow: "let the flow pass", deny: "drop it (counted)" }), "what a match does"),
        leaf("protocol", oneOf({ tcp: "TCP", udp: "UDP", icmp: "ICMP", icmpv6: "ICMPv6" }), "IP protocol matched (default any)"),
        leaf("source", prefix, "client prefix matched (default any)"),
        leaf("sourcePorts", portRangeType, "source ports matched (TCP, UDP)"),
        leaf("destinationPorts", portRangeType, "destination ports matched (TCP, UDP)"),
      ],
    }),
  ],
});

const snmp = container("snmp", "SNMP agent (v2c read-only, v3 authPriv) and notifications (absent: no agent)", [
  container("listen", "where the agent takes requests", [
    leaf("address", text("<address>", "IPv4 or IPv6 address, 0.0.0.0 or :: for all", SNMP_LISTEN_FORM, isListenAddress), "address it listens on (default 0.0.0.0)"),
    leaf("port", tcpPort, "UDP port it listens on (default 161)"),
  ]),
  leaf("enterprise", int(...SNMP_RANGE.enterprise), "enterprise number the appliance's MIB lives under (default 32473)"),
  leaf("location", snmpText, "sysLocation: where the appliance stands"),
  leaf("contact", snmpText, "sysContact: who looks after it"),
  list("communities", "SNMPv2c read-only communities", {
    noun: "community",
    keyType: text("<community>", "community string, 1-32 printable characters", SNMP_COMMUNITY_FORM, isSnmpCommunity),
    summary: () => "read-only",
    children: [],
  }),
  list("users", "SNMPv3 users (authPriv)", {
    noun: "SNMP user",
    keyType: name,
    summary: (e) => `${str(e.authProtocol ?? "sha256")}/${str(e.privProtocol ?? "aes")}`,
    children: [
      leaf("authProtocol", oneOf({ sha256: "HMAC-SHA-256 (default)", sha512: "HMAC-SHA-512", sha384: "HMAC-SHA-384", sha224: "HMAC-SHA-224", sha: "HMAC-SHA-1 (old managers)" }), "authentication protocol"),
      leaf("authKey", snmpKey, "authentication passphrase"),
      leaf("privProtocol", oneOf({ aes: "AES-128 (default)", aes256b: "AES-256, Blumenthal key extension", aes256r: "AES-256, Reeder key extension (Cisco)" }), "privacy (encryption) protocol"),
      leaf("privKey", snmpKey, "privacy passphrase"),
    ],
  }),
  list("notify", "receivers of notifications (v2c traps, v3 informs)", {
    noun: "receiver",
    keyType: name,
    summary: (e) => `${str(e.version)} ${str(e.address)}:${str(e.port ?? 162)}`,
    children: [
      leaf("address", ip, "the receiver's address"),
      leaf("port", tcpPort, "its UDP port (default 162)"),
      leaf("version", oneOf({ v2c: "v2c traps with a community", v3: "v3 informs as an SNMP user" }), "how notifications are sent"),
      leaf("community", text("<community>", "community string", SNMP_COMMUNITY_FORM, isSnmpCommunity), "v2c: community sent (default: the first one)"),
      leaf("user", snmpUserRef, "v3: the SNMP user whose keys protect the informs"),
    ],
  }),
  leaf("flowTableThreshold", int(...SNMP_RANGE.threshold, "<percent>", " percent"), "flow-table use that raises a notification (default 90)"),
]);

/** A discovery key's secret: taken as typed, never printed (like an SNMP key). */
export const discoverySecret: ValueType = {
  ...text("<secret>", "secret of 16 bytes or more in hex or base64 (never shown)", DISCOVERY_SECRET_FORM, (w) => w !== SNMP_KEY_MASK && parseDiscoverySecret(w) !== undefined),
  format: () => SNMP_KEY_MASK,
};

const unicast = text("<address>", "unicast IPv4 or IPv6 address", UNICAST_FORM, (w) => parseUnicast(w) !== undefined);

const supervisor = container("supervisor", "the supervisor: registrations, server lists, number authority, relay (absent: none)", [
  leaf("address", unicast, "management address its UDP socket binds (default management ipv4)"),
  leaf("port", tcpPort, "UDP port it listens on (default: the discovery port)"),
  leaf("intervalMs", int(...SUPERVISOR_RANGE.intervalMs, "<ms>", " ms"), "advertisement interval end systems are told (default 1000)"),
  leaf("maxEndSystems", int(...SUPERVISOR_RANGE.maxEndSystems), "live registrations at most (default 1024)"),
  list("pools", "number pools the number authority leases from", {
    noun: "number pool",
    keyType: name,
    summary: (e) => `${str(e.first)}-${str(e.last)}`,
    children: [
      leaf("first", int(...SUPERVISOR_RANGE.number), "first number of the pool"),
      leaf("last", int(...SUPERVISOR_RANGE.number), "last number of the pool"),
      leaf("maxLeaseS", int(...SUPERVISOR_RANGE.maxLeaseS, "<seconds>", " s"), "longest lease granted (default 3600)"),
    ],
  }),
  leafList("relay", text("<target>", "address or address:port ([v6]:port) of an appliance", RELAY_TARGET_FORM, (w) => parseRelayTarget(w, 1) !== undefined), "appliance on another segment that advertisements are relayed to"),
  leafList("peers", unicast, "another supervisor, whose datagrams are never relayed"),
]);

const discovery = container("discovery", "backends learnt from service advertisements (absent: none)", [
  list("keys", "keys advertisements are signed with (every one is accepted)", {
    noun: "discovery key",
    keyType: int(...DISCOVERY_RANGE.keyId, "<key-id>"),
    keyField: "id",
    summary: () => "HMAC-SHA256 key",
    children: [leaf("secret", discoverySecret, "the key's secret")],
  }),
  leaf("group", text("<group>", "IPv4 multicast group", DISCOVERY_GROUP_FORM, isMulticastGroup4), "group the end systems advertise to (default 239.255.77.77)"),
  leaf("group6", text("<group>", "IPv6 multicast group", DISCOVERY_GROUP6_FORM, isMulticastGroup6), "IPv6 group the end systems advertise to (default ff02::77)"),
  leaf("port", tcpPort, "UDP port of advertisements (default 7777)"),
  leaf("missedIntervals", int(...DISCOVERY_RANGE.missedIntervals), "silent intervals before an end system is down (default 3)"),
  leaf("leaveTimeoutS", int(...DISCOVERY_RANGE.leaveTimeoutS, "<seconds>", " s"), "how long a leaving end system's flows are waited for (default 300)"),
  leaf("via", reference("ports", "port"), "port the end systems are on (default: the first port with backends)"),
  supervisor,
]);

const ha = container("ha", "the redundant pair: heartbeats and election (absent: a single appliance)", [
  leaf("node", name, "this appliance's id in the pair (the peer's differs; ties go to the lower)"),
  leaf("priority", int(...HA_RANGE.priority, "<priority>"), "preference for being active, higher wins (default 100)"),
  leaf("preempt", boolean, "take over from a lower-priority active peer once holding the flow state (default true)"),
  leaf("preemptDelayMs", int(...HA_RANGE.preemptDelayMs, "<ms>", " ms"), "how long preempting is held back (default 0)"),
  leaf("intervalMs", int(...HA_RANGE.intervalMs, "<ms>", " ms"), "heartbeat interval (default 50)"),
  leaf("deadCount", int(...HA_RANGE.deadCount), "silent intervals on every link before the peer is dead (default 3)"),
  list("keys", "keys heartbeats are signed with (every one is accepted)", {
    noun: "HA key",
    keyType: int(...DISCOVERY_RANGE.keyId, "<key-id>"),
    keyField: "id",
    summary: () => "HMAC-SHA256 key",
    children: [leaf("secret", discoverySecret, "the key's secret")],
  }),
  list("links", "paths to the peer that heartbeats take (1-4)", {
    noun: "HA link",
    keyType: name,
    summary: (e) => `${str(e.local)} -> ${str(e.peer)} port ${str(e.port ?? HA_DEFAULTS.port)}`,
    children: [
      leaf("local", unicast, "address of this appliance the link's socket binds"),
      leaf("peer", unicast, "the peer's address on this link"),
      leaf("port", tcpPort, `UDP port, the same on both ends (default ${HA_DEFAULTS.port})`),
    ],
  }),
  container("garp", "gratuitous ARP bursts sent on becoming active", [
    leaf("count", int(...HA_RANGE.garpCount), "gratuitous ARPs per VIP in a burst (default 3)"),
    leaf("intervalMs", int(...HA_RANGE.garpIntervalMs, "<ms>", " ms"), "time between them (default 20)"),
  ]),
]);

/** A number with a fraction, from min to max. */
function decimal(min: number, max: number, placeholder = "<number>"): ValueType {
  return {
    placeholder,
    help: `a number from ${min} to ${max}`,
    expected: `a number from ${min} to ${max}`,
    parse: (w) => (DECIMAL.test(w) && Number(w) >= min && Number(w) <= max ? Number(w) : undefined),
    format: String,
    range: [min, max],
  };
}

const levelsTarget = text("<target>", "address or address:port ([v6]:port) of an appliance", RELAY_TARGET_FORM, (w) => parseRelayTarget(w, 1) !== undefined);
const distance: ValueType = {
  placeholder: "<distance|measured>",
  help: `measured (round trips, ms) or a number from ${LEVELS_RANGE.distance[0]} to ${LEVELS_RANGE.distance[1]}`,
  expected: `"measured" or a number from ${LEVELS_RANGE.distance[0]} to ${LEVELS_RANGE.distance[1]}`,
  parse: (w) => (w === "measured" ? w : DECIMAL.test(w) && Number(w) >= LEVELS_RANGE.distance[0] && Number(w) <= LEVELS_RANGE.distance[1] ? Number(w) : undefined),
  format: String,
};

const levels = container("levels", "multi-level routing and flow recovery between appliances (absent: a lone site)", [
  leaf("role", oneOf({ site: "selects servers (default)", system: "selects sites, through IP-in-IP tunnels" }), "this appliance's level"),
  leaf("name", name, "its id in updates and queries (default: the hostname)"),
  list("keys", "keys updates and queries are signed with (the first signs, every one is accepted)", {
    noun: "levels key",
    keyType: int(...DISCOVERY_RANGE.keyId, "<key-id>"),
    keyField: "id",
    summary: () => "HMAC-SHA256 key",
    children: [leaf("secret", discoverySecret, "the key's secret")],
  }),
  leaf("local", unicast, "management address the levels socket binds (default management ipv4)"),
  leaf("port", tcpPort, "UDP port of the levels socket, the same on every appliance (default 7790)"),
  leafList("uplinks", levelsTarget, "system appliance load updates go to"),
  leaf("intervalMs", int(...LEVELS_RANGE.intervalMs, "<ms>", " ms"), "time between load updates and pings (default 1000)"),
  leaf("aggregate", oneOf({ mean: "the mean of the servers' loads (default)", max: "the highest", min: "the lowest", sum: "the sum", median: "the median" }), "how a VIP's servers' loads make one figure"),
  leafList("subnets", prefix, "virtual subnet reported as a whole, besides each VIP"),
  leaf("decapsulate", boolean, "site: take IP-in-IP to a port address whose inner destination is a VIP (default true)"),
  list("sites", "system: the sites, each a backend by its name", {
    noun: "site",
    keyType: name,
    summary: (e) => `${str(e.address)} via ${str(e.via)}`,
    children: [
      leaf("address", unicast, "the site appliance's data-port address: the tunnels' outer destination"),
      leaf("via", reference("ports", "port"), "port the site is reached through"),
      leaf("mac", mac, "the next hop's MAC (default: resolved by ARP / ND)"),
      leaf("control", levelsTarget, "the site appliance's levels socket (default: address at the levels port)"),
      leaf("distance", distance, "fixed distance, or measured round trips in ms (default measured)"),
    ],
  }),
  leaf("deadIntervals", int(...LEVELS_RANGE.deadIntervals), "missed update intervals before a site takes no new flows (default 3)"),
  container("cost", "system: cost = load% x load + distance x distance", [
    leaf("load", decimal(...LEVELS_RANGE.costWeight), "weight of the load, in percent (default 1)"),
    leaf("distance", decimal(...LEVELS_RANGE.costWeight), "weight of the distance (default 1)"),
    leaf("tolerance", decimal(...LEVELS_RANGE.costWeight), "sites this close to the lowest cost share new flows (default 5)"),
  ]),
  container("recovery", "asking other appliances about a mid-flow packet without a flow entry", [
    leaf("enabled", boolean, "on (default: on a system, or with peers)"),
    leafList("peers", levelsTarget, "appliance asked (the others of an ECMP set)"),
    leaf("timeoutMs", int(...LEVELS_RANGE.recoveryTimeoutMs, "<ms>", " ms"), "how long a query holds its packets (default 20)"),
    leaf("maxPending", int(...LEVELS_RANGE.recoveryMaxPending), "queries in flight at most (default 4096)"),
  ]),
]);

/** The root: every path of ConfigInput, in the order of the schema. */
export const CONFIG_TREE: ContainerNode = container("", "the configuration", [
  container("system", "identity, time and logins of the appliance", [
    leaf("hostname", name, "name of the appliance (prompt, logs)"),
    leaf("timezone", timezone, "time zone of the console and logs (default UTC)"),
    leafList("ntp", host, "NTP server, by address or host name (one per set)"),
    list("users", "console and management logins", {
      noun: "user",
      keyType: name,
      summary: (e) => str(e.class ?? "operator"),
      children: [
        leaf("class", oneOf({ admin: "may change the configuration", operator: "may look, not change (default)" }), "what the user may do"),
        leaf("passwordHash", secret, "scrypt hash of the password"),
      ],
    }),
  ]),
  container("management", "the appliance's own management addresses (health checks come from them)", [
    leaf("ipv4", ipv4, "IPv4 management address"),
    leaf("ipv6", ipv6, "IPv6 management address"),
  ]),
  list("ports", "network ports of the appliance", {
    noun: "port",
    keyType: name,
    always: true,
    summary: summaries.ports,
    children: [
      leaf("mac", mac, "MAC address the port sends from"),
      leaf("mtu", int(...RANGE.mtu), "largest IP packet on the port (default 1500)"),
      leaf("ipv4", ipv4, "the port's IPv4 address"),
      leaf("ipv6", ipv6, "the port's IPv6 address"),
      leaf("peer", reference("ports", "port"), "port that traffic for no VIP crosses to"),
      leaf("device", name, "network interface on the Linux board (default: the port's name)"),
      leaf("gateway", ipv4, "IPv4 next hop for traffic sent out of this port"),
      leaf("gateway6", ipv6, "IPv6 next hop for traffic sent out of this port"),
      leaf("gatewayMac", mac, "next hop's MAC, when not resolved"),
    ],
  }),
  container("dataplane", "packet engines: table sizes, timeouts, limits (sizes need an engine restart)", [
    container("flows", "flow-table capacity per family (a NAT connection takes two)", [
      leaf("ipv4", int(...RANGE.flows), "IPv4 flow entries"),
      leaf("ipv6", int(...RANGE.flows), "IPv6 flow entries"),
    ]),
    container("timeouts", "idle timeouts of flows, in seconds", (Object.keys(DEFAULT_TIMEOUTS) as (keyof typeof DEFAULT_TIMEOUTS)[]).map((k) =>
      leaf(k, int(...RANGE.idleTimeout, "<seconds>", " seconds"), `${timeoutHelp[k]} (default ${DEFAULT_TIMEOUTS[k]} s)`))),
    leaf("noVip", oneOf({ forward: "cross at L2 to the peer port (default)", drop: "drop it" }), "traffic for no VIP"),
    leaf("maglevSize", refine(int(...RANGE.maglevSize), isPrime, "a prime number, such as 65537"), "Maglev table entries per service (prime)"),
    leaf("engines", int(...RANGE.engines), "packet engines (0: cores minus one)"),
    container("limits", "table sizes", [
      leaf("services", int(...RANGE.maxServices), "most services"),
      leaf("backends", int(...RANGE.maxBackends), "most backends"),
    ]),
    container("buffers", "packet buffers", [
      leaf("count", int(...RANGE.bufferCount), "buffers per engine"),
      leaf("size", refine(int(...RANGE.bufferSize), (n: number) => n % 64 === 0, "a multiple of 64"), "bytes per buffer (multiple of 64)"),
    ]),
  ]),
  list("backends", "servers that services send flows to", {
    noun: "backend",
    keyType: name,
    summary: summaries.backends,
    children: [
      leaf("address", ip, "the server's address"),
      leaf("mac", mac, "the server's MAC (default: resolved by ARP / ND)"),
      leaf("via", reference("ports", "port"), "port the server is reached through"),
      leaf("natPort", tcpPort, "NAT: the server's own port, over the service's target port"),
      leaf("state", oneOf({ active: "takes new flows (default)", draining: "keeps its flows, takes no new ones", down: "takes no flows" }), "administrative state"),
      leaf("capacity", int(0, 100_000_000), "connections it carries at full load (its load: flows / capacity)"),
      check,
    ],
  }),
  list("services", "virtual services (VIP, protocol, port)", {
    noun: "service",
    keyType: name,
    summary: summaries.services,
    children: [
      leaf("vip", ip, "virtual address of the service"),
      leaf("protocol", oneOf({ tcp: "TCP", udp: "UDP" }), "transport protocol"),
      leaf("port", int(...RANGE.servicePort, "<port>", ", 0: every port"), "destination port (0: every port)"),
      leaf("mode", oneOf({ dsr: "direct server return: rewrite the MAC only", nat: "rewrite address and port", tunnel: "encapsulate (IP-in-IP or GUE)" }), "forwarding mode"),
      leaf("targetPort", tcpPort, "NAT: port the backends listen on"),
      list("backends", "backends serving this service", {
        noun: "service backend",
        keyType: reference("backends", "backend"),
        shorthand: true,
        summary: (e) => `member, weight ${str(e.weight ?? 1)}`,
        children: [leaf("weight", int(...RANGE.weight), "relative share of new flows (default 1)")],
      }),
      leaf("onBackendDown", oneOf({ reselect: "move its flows to another backend (default)", reset: "reset its TCP flows" }), "flows of a backend that goes down"),
      leaf("policy", oneOf({ maglev: "consistent hashing over the members (default)", "primary-backup": "all flows to one primary; the next takes over, no pre-emption", "source-partition": "each portion of the client space to its owner" }), "how new flows choose a backend"),
      container("partitions", "source-partition: the portions of the client space and their owners", [
        list("portions", "portions written out (no overlap, no hole)", {
          noun: "portion",
          keyType: prefix,
          keyField: "prefix",
          summary: (e) => `owned by ${str(e.owner)}`,
          children: [leaf("owner", reference("backends", "backend"), "the member that owns it")],
        }),
        leaf("split", int(...PARTITION_RANGE.split), "or: 2^split equal portions dealt to the members"),
        leaf("interleave", boolean, "deal them round robin (default true), else in blocks"),
        leaf("congestedAt", decimal(0, 100), "load at which an owner sheds portions (default 0.9; 0: never)"),
        leaf("holdS", int(...PARTITION_RANGE.holdS, "<seconds>", " s"), "seconds between two portions shed by one member (default 10)"),
      ]),
      leaf("arp", boolean, "answer ARP / ND for the VIP (default true)"),
      leaf("chain", reference("chains", "chain"), "chain its packets pass before the server (NAT services)"),
      container("tunnel", "tunnel mode encapsulation", [
        leaf("encap", oneOf({ ipip: "IP-in-IP (default)", gue: "GUE over UDP" }), "encapsulation"),
        leaf("source4", ipv4, "outer IPv4 source address"),
        leaf("source6", ipv6, "outer IPv6 source address"),
        leaf("guePort", tcpPort, "GUE destination UDP port (default 6080)"),
      ]),
    ],
  }),
  flowRules,
  telemetry,
  snmp,
  discovery,
  ha,
  chains,
  acls,
  levels,
]);

// ---- reading ConfigInput through the tree ----------------------------------------------------

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The entries of a list value as objects (bare-name shorthand read as { name }). */
export function entries(v: unknown): Obj[] {
  if (!Array.isArray(v)) return [];
  return v.flatMap((e): Obj[] => (typeof e === "string" ? [{ name: e }] : isObj(e) ? [e] : []));
}

/** The value an entry of a list is addressed by (its `name`, or the list's keyField). */
export function keyOf(node: ListNode, e: Obj): unknown {
  return e[node.keyField ?? "name"];
}

export function childByWord(node: ContainerNode | ListNode, word: string): SchemaNode | undefined {
  return node.children.find((c) => c.word === word);
}

/** The value of a node, cleaned: keys in schema order, shorthand entries as objects, nothing
 *  the tree does not describe, no undefined, no empty containers or lists (except `always` ones). */
export function normalizeNode(node: SchemaNode, v: unknown): unknown {
  switch (node.kind) {
    case "leaf":
      return v;
    case "leaf-list":
      return Array.isArray(v) && v.length ? [...v] : undefined;
    case "container": {
      if (!isObj(v)) return undefined;
      const out = normalizeChildren(node.children, v);
      return Object.keys(out).length ? out : undefined;
    }
    case "list": {
      const out = entries(v).map((e) => ({ [node.keyField ?? "name"]: keyOf(node, e), ...normalizeChildren(node.children, e) }));
      return out.length || node.always ? out : undefined;
    }
  }
}

function normalizeChildren(children: SchemaNode[], v: Obj): Obj {
  const out: Obj = {};
  for (const c of children) {
    const x = normalizeNode(c, v[c.key]);
    if (x !== undefined) out[c.key] = x;
  }
  return out;
}

/** A copy of a configuration in its normal form (what the set form reads back). */
export function normalizeInput(input: ConfigInput): ConfigInput {
  return (normalizeNode(CONFIG_TREE, input) ?? { ports: [] }) as ConfigInput;
}

/** The configuration with nothing set. */
export function emptyConfig(): ConfigInput {
  return { ports: [] };
}
