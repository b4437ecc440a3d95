// The console's side of software upgrades: `show system software` (both slots), `request system
// software add` (an image received over this serial line by YMODEM or XMODEM-1K, then handed to
// the slots to check and install) and `request system software rollback`. The slots themselves
// (verification, flash, boot environment) are host/image; this file only talks to the operator.
//
// During a transfer the console prints nothing: the line belongs to the sender until it ends, so
// progress is reported after it, with the transfer's statistics.
import type { ShellIO } from "./commands.js";
import { receiveFile, type ReceiveOptions, type ReceiveResult } from "./xmodem.js";

export type SlotName = "A" | "B";

/** One slot as `show system software` shows it (host/image's SlotStatus has these and more). */
export interface SlotView {
  name: SlotName;
  version?: string;
  /** ms since the epoch */
  buildTime?: number;
  devSigned?: boolean;
  valid: boolean;
  /** Why not valid. */
  reason?: string;
  /** Boots by default: the last slot confirmed healthy. */
  active: boolean;
  confirmed: boolean;
  /** Marked to be tried on the next boot. */
  next: boolean;
  triesLeft: number;
  /** What the boot environment last noted of the slot. */
  note?: string;
}

export type SoftwareResult = { ok: true; slot: SlotName; version: string } | { ok: false; reason: string };

/** What the console needs of the slots: host/image's SoftwareSlots. */
export interface SoftwareHost {
  status(): Promise<{ running: SlotName; slots: SlotView[]; lastEvent?: string; runningFromSlot?: boolean }>;
  /** Verifies, writes the slot that is not running, reads back, marks it to be tried once. */
  install(image: Uint8Array): Promise<SoftwareResult>;
  /** Marks the other slot to boot next, once. */
  rollback(): Promise<SoftwareResult>;
  confirm(): Promise<void>;
}

/** The slots and what the console may receive for them. */
export interface SoftwareConsole {
  slots: SoftwareHost;
  /** The largest image a slot holds: a bigger transfer is refused as soon as that is known. */
  maxImageBytes: number;
  /** Transfer timings (tests shorten them); defaults below. */
  transfer?: Partial<Omit<ReceiveOptions, "maxBytes">>;
}

/**
 * Timings of a console upload. An operator needs time to start the send in the terminal
 * program (a menu, a file dialog), so the receiver asks for CRC for the first 30 s and waits
 * 2 min in all; the overall limit only stops a sender that trickles forever: at 115200 baud a
 * 64 MiB slot fills in about 100 min, at 9600 baud in 20 h (raise the console's speed first).
 */
export const CONSOLE_TRANSFER = {
  startTimeoutMs: 120_000,
  requestIntervalMs: 3_000,
  crcTries: 10,
  overallTimeoutMs: 24 * 3600_000,
} as const;

/**
 * After the last ACK the sender is still reading the line until it exits, and the terminal program
 * reads it again only then: what the console printed at once would be lost. A second's silence
 * (anything arriving is dropped) lets the line go back first.
 */
export const HAND_BACK_MS = 1_000;

export const START_HINT = "Start the YMODEM or XMODEM-1K send now (e.g. sz --ymodem --1k FILE); Ctrl-X twice cancels.";

const fmt = (n: number): string => n.toLocaleString("en-US");

function fmtTime(ms: number): string {
  return `${new Date(ms).toISOString().replace("T", " ").slice(0, 19)} UTC`;
}

/** Columns of `show system software`: the row names, then one per slot (80 columns in all). */
const LABEL_COLS = 13;
const SLOT_COLS = 32;

/** The text of `show system software`: which slot runs, then both slots side by side. */
export function renderSoftware(s: Awaited<ReturnType<SoftwareHost["status"]>>): string {
  const head =
    s.runningFromSlot === false
      ? `Running a build not started from a slot (development); slot ${s.running} counts as running.`
      : `Running from slot ${s.running}.`;
  const cell = (slot: SlotView, row: string): string => {
    switch (row) {
      case "":
        return `Slot ${slot.name}${slot.name === s.running ? " (running)" : ""}`;
      case "Version":
        return slot.version ?? "-";
      case "Built":
        return slot.buildTime ? fmtTime(slot.buildTime) : "-";
      case "Signed":
        return slot.devSigned === undefined ? "-" : slot.devSigned ? "development key" : "release key";
      case "Image":
        return slot.valid ? "valid" : `not valid: ${slot.reason ?? "unknown reason"}`;
      case "Active":
        return slot.active ? "yes (boots by default)" : "no";
      case "Confirmed":
        return slot.confirmed ? "yes" : "no";
      case "Next boot":
        return slot.next ? `yes, ${slot.triesLeft} ${slot.triesLeft === 1 ? "try" : "tries"} left` : "no";
      default:
        return slot.note ?? "-";
    }
  };
  const rows = ["", "Version", "Built", "Signed", "Image", "Active", "Confirmed", "Next boot"];
  if (s.slots.some((x) => x.note)) rows.push("Note");
  const lines = [head, ""];
  for (const row of rows) {
    const cells = s.slots.map((slot) => wrap(cell(slot, row), SLOT_COLS));
    const height = Math.max(...cells.map((c) => c.length));
    for (let i = 0; i < height; i++) {
      const label = i === 0 ? row : "";
      lines.push((label.padEnd(LABEL_COLS) + cells.map((c) => (c[i] ?? "").padEnd(SLOT_COLS + 1)).join("")).trimEnd());
    }
  }
  if (s.lastEvent) lines.push("", ...wrap(`Last boot event: ${s.lastEvent}`, LABEL_COLS + 2 * SLOT_COLS + 1));
  return lines.join("\n");
}

/** Breaks text at spaces into lines of at most `width` (a longer word is cut). */
function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let line = "";
  for (let word of text.split(" ")) {
    while (word.length > width) {
      if (line) out.push(line);
      line = "";
      out.push(word.slice(0, width));
      word = word.slice(width);
    }
    if (line && line.length + 1 + word.length > width) {
      out.push(line);
      line = word;
    } else {
      line = line ? `${line} ${word}` : word;
    }
  }
  out.push(line);
  return out;
}

/** `request system software add`: receive an image over the console, then install it. */
export async function addSoftware(io: ShellIO, sw: SoftwareConsole): Promise<void> {
  const before = await sw.slots.status();
  const target: SlotName = before.running === "A" ? "B" : "A";
  await io.print(
    `Receiving an image for slot ${target} (slot ${before.running} is running and is not touched); ` +
      `at most ${fmt(sw.maxImageBytes)} bytes.\n${START_HINT}`,
  );
  const r = await io.rawSession(async (line) => {
    const received = await receiveFile(line, { ...CONSOLE_TRANSFER, ...sw.transfer, maxBytes: sw.maxImageBytes });
    if (received.ok) await new Promise((resolve) => setTimeout(resolve, HAND_BACK_MS));
    return received;
  });
  await io.print(transferSummary(r));
  if (!r.ok) return io.print(`error: the transfer failed: ${r.reason}. Nothing was installed.`);
  await io.print(`Checking the image and writing it to slot ${target}...`);
  const result = await sw.slots.install(r.data);
  if (!result.ok) {
    return io.print(`error: the image is refused: ${result.reason}. Slot ${before.running} keeps running; what boots next is unchanged.`);
  }
  await io.print(
    `Installed ${result.version} in slot ${result.slot}. It boots once at the next \`request system reboot\`;\n` +
      `unless it confirms itself healthy then, the box returns to slot ${before.running}.`,
  );
}

/** One line on what crossed the line: size, time, speed, protocol, blocks, retries. */
export function transferSummary(r: ReceiveResult): string {
  const s = r.stats;
  if (!s.protocol) return "No file was received.";
  const proto = `${{ xmodem: "XMODEM", "xmodem-1k": "XMODEM-1K", ymodem: "YMODEM" }[s.protocol]} with ${s.check === "crc16" ? "CRC-16" : "checksum"}`;
  const counts = `${fmt(s.blocks)} blocks, ${fmt(s.retries)} ${s.retries === 1 ? "retry" : "retries"}${s.duplicates ? `, ${fmt(s.duplicates)} repeated` : ""}`;
  if (!r.ok) return `Transfer stopped after ${fmt(s.blocks)} blocks (${proto}, ${counts}).`;
  const secs = s.elapsedMs / 1000;
  const rate = secs > 0 ? `, ${fmt(Math.round(s.bytes / secs))} bytes/s` : "";
  return `Received ${r.name ? `${r.name}: ` : ""}${fmt(s.bytes)} bytes in ${secs.toFixed(1)} s${rate} (${proto}, ${counts}).`;
}

/** `request system software rollback`: the other slot boots next, once, after a confirmation. */
export async function rollbackSoftware(io: ShellIO, sw: SoftwareConsole): Promise<void> {
  const s = await sw.slots.status();
  const other = s.slots.find((x) => x.name !== s.running);
  if (!other?.valid) {
    return io.print(`error: slot ${other?.name ?? "?"} holds no image this box can boot${other?.reason ? `: ${other.reason}` : ""}. Nothing changed.`);
  }
  if (!(await io.confirm(`Boot slot ${other.name} (${other.version ?? "unknown version"}) once at the next reboot?`))) {
    return io.print("Rollback cancelled.");
  }
  const r = await sw.slots.rollback();
  if (!r.ok) return io.print(`error: rollback refused: ${r.reason}. Nothing changed.`);
  await io.print(`Slot ${r.slot} (${r.version}) boots once at the next \`request system reboot\`.`);
}
