// Checks pcaps with Wireshark's tshark: an independent dissector is the referee for every frame
// our builders and the data plane emit. We read tshark's expert info instead of its text output:
// it is the part that says "malformed" and "bad checksum" in a machine-readable way.

import { execFile } from "node:child_process";
import { accessSync, constants, statSync } from "node:fs";
import { delimiter, join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

const TSHARK_TIMEOUT_MS = 60_000;
const TSHARK_MAX_OUTPUT_BYTES = 256 * 1024 * 1024;
/** Joins repeated values of one field; a control character, because messages contain commas. */
const AGGREGATOR = "\x1f";

/** Protocols whose checksum check we turn on when this tshark has the preference for it. */
const CHECKSUM_PROTOCOLS = ["ip", "tcp", "udp", "icmp", "icmpv6"];

// Expert severities and groups as tshark prints them with -T fields (epan/proto.h PI_* values).
// Newer versions may print names instead, so both are accepted.
const SEVERITY_NAMES = new Map([
  [0x00100000, "comment"],
  [0x00200000, "chat"],
  [0x00400000, "note"],
  [0x00600000, "warning"],
  [0x00800000, "error"],
]);
const GROUP_NAMES = new Map([
  [0x01000000, "checksum"],
  [0x02000000, "sequence"],
  [0x03000000, "response code"],
  [0x04000000, "request code"],
  [0x05000000, "undecoded"],
  [0x06000000, "reassemble"],
  [0x07000000, "malformed"],
  [0x08000000, "debug"],
  [0x09000000, "protocol"],
  [0x0a000000, "security"],
  [0x0b000000, "comment"],
  [0x0c000000, "decryption"],
  [0x0d000000, "assumption"],
  [0x0e000000, "deprecated"],
]);

export interface PcapValidation {
  frames: number;
  /** "frame N: message" for each malformed packet or bad checksum, plus tshark failures. */
  problems: string[];
}

/** Throws an Error that says how to install `cmd` when it is not on PATH. */
export function requireTool(cmd: string, debianPackage: string): void {
  if (!onPath(cmd)) {
    throw new Error(
      `${cmd} is not installed: run \`apt-get install -y ${debianPackage}\` ` +
        "(or `bash tools/ensure-test-deps.sh` as root)",
    );
  }
}

/**
 * Dissects a pcap with checksum validation on and lists every malformed packet and bad checksum.
 * Sequence analysis ("previous segment not captured", "ACKed unseen segment", ...) is ignored:
 * crafted fixtures are single segments out of connections that were never captured.
 * With quotedErrors, for pcaps of ICMP error messages, quoted transport checksums are not judged.
 */
export async function validatePcap(path: string, opts: { quotedErrors?: boolean } = {}): Promise<PcapValidation> {
  requireTool("tshark", "tshark");
  const fields = ["frame.number", "_ws.expert.message", "_ws.expert.severity", "_ws.expert.group", "_ws.malformed"];
  let prefs = await checksumPreferences();
  if (opts.quotedErrors) {
    // ICMP errors quote a packet cut short (RFC 792, 1812, 4443): the quoted TCP/UDP checksum
    // cannot match its truncated segment, so only the IP and ICMP checksums are judged.
    prefs = prefs.filter((p, i) => !/^(tcp|udp)\./.test(p) && !/^(tcp|udp)\./.test(prefs[i + 1] ?? ""));
  }
  const args = ["-r", path, "-n", ...prefs];
  args.push("-T", "fields", "-E", "separator=/t", "-E", "occurrence=a", "-E", `aggregator=${AGGREGATOR}`);
  for (const f of fields) args.push("-e", f);

  const problems: string[] = [];
  const { stdout, failure } = await runTshark(args);
  const lines = outputLines(stdout);
  for (const line of lines) {
    const [frame, messages, severities, groups, malformed] = line.split("\t");
    const entries = splitValues(messages).map((message, i) => ({
      message,
      severity: expertName(splitValues(severities)[i], SEVERITY_NAMES),
      group: expertName(splitValues(groups)[i], GROUP_NAMES),
    }));
    const reported = entries.filter((e) => isProblem(e.severity, e.group));
    for (const e of reported) problems.push(`frame ${frame}: ${e.message}`);
    if (malformed && !reported.some((e) => e.group === "malformed")) {
      problems.push(`frame ${frame}: malformed packet`);
    }
  }
  if (failure) problems.push(failure);
  return { frames: lines.length, problems };
}

/**
 * Values of `fields` for each frame (that matches `displayFilter`), in frame order; a repeated
 * field's values are joined with ",". Checksums are verified, so "*.checksum.status" is 1 (good)
 * or 0 (bad) rather than 2 (unverified).
 */
export async function tsharkFields(path: string, fields: string[], displayFilter?: string): Promise<string[][]> {
  requireTool("tshark", "tshark");
  const args = ["-r", path, "-n", ...(await checksumPreferences()), "-T", "fields", "-E", "separator=/t"];
  for (const f of fields) args.push("-e", f);
  if (displayFilter !== undefined) args.push("-Y", displayFilter);
  const { stdout, failure } = await runTshark(args);
  if (failure) throw new Error(failure);
  return outputLines(stdout).map((line) => line.split("\t"));
}

/**
 * An error, or a warning of the checksum or malformed group. Errors of the sequence group are
 * TCP analysis, which judges the capture rather than the packet.
 */
function isProblem(severity: string, group: string): boolean {
  if (group === "sequence") return false;
  if (severity === "error") return true;
  return severity === "warning" && (group === "checksum" || group === "malformed");
}

function expertName(value: string | undefined, names: Map<number, string>): string {
  // A missing value (never seen, but cheap to survive) counts as the most severe.
  if (value === undefined || value === "") return "error";
  const numeric = Number(value);
  if (Number.isInteger(numeric)) return names.get(numeric) ?? `unknown ${value}`;
  const name = value.trim().toLowerCase();
  return name === "warn" ? "warning" : name;
}

let cachedPreferences: Promise<string[]> | undefined;

/** "-o proto.check_checksum:TRUE" for each protocol of CHECKSUM_PROTOCOLS this tshark knows. */
function checksumPreferences(): Promise<string[]> {
  cachedPreferences ??= (async () => {
    const { stdout, failure } = await runTshark(["-G", "defaultprefs"]);
    if (failure) throw new Error(failure);
    const known = new Set(stdout.split("\n").map((line) => line.replace(/^#/, "").split(":")[0].trim()));
    return CHECKSUM_PROTOCOLS.map((p) => `${p}.check_checksum`)
      .filter((pref) => known.has(pref))
      .flatMap((pref) => ["-o", `${pref}:TRUE`]);
  })();
  return cachedPreferences;
}

interface TsharkRun {
  stdout: string;
  /** Why tshark failed (non-zero exit, timeout), or undefined when it succeeded. */
  failure?: string;
}

async function runTshark(args: string[]): Promise<TsharkRun> {
  try {
    const { stdout } = await run("tshark", args, { timeout: TSHARK_TIMEOUT_MS, maxBuffer: TSHARK_MAX_OUTPUT_BYTES });
    return { stdout };
  } catch (err) {
    const e = err as { code?: number | string | null; signal?: string | null; killed?: boolean; stdout?: string; stderr?: string };
    if (typeof e.code === "string") throw err; // tshark did not start (ENOENT, ...) or flooded us
    const stderr = (e.stderr ?? "")
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.startsWith("Running as user"))
      .join(" ");
    const failure = e.killed
      ? `tshark timed out after ${TSHARK_TIMEOUT_MS / 1000} s`
      : `tshark exited with ${typeof e.code === "number" ? `code ${e.code}` : `signal ${e.signal}`}: ${stderr || "(no message)"}`;
    return { stdout: e.stdout ?? "", failure };
  }
}

function outputLines(stdout: string): string[] {
  const text = stdout.endsWith("\n") ? stdout.slice(0, -1) : stdout;
  return text === "" ? [] : text.split("\n");
}

function splitValues(field: string | undefined): string[] {
  return field ? field.split(AGGREGATOR) : [];
}

function onPath(cmd: string): boolean {
  const dirs = cmd.includes("/") ? [""] : (process.env.PATH ?? "").split(delimiter).filter((d) => d !== "");
  return dirs.some((dir) => {
    try {
      const file = dir === "" ? cmd : join(dir, cmd);
      accessSync(file, constants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}
