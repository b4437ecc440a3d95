// A serial line for tests: socat joins two ptys back to back, the console opens one end as its
// serial device, and a PtyOperator types into the other end like an operator at a terminal. Both
// ends are real ttys, so the bytes cross the kernel's tty layer as they would on the appliance.

import { spawn } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join } from "node:path";
import { StringDecoder } from "node:string_decoder";
import { SerialPort } from "serialport";

const LINKS_TIMEOUT_MS = 5000;

export interface PtyPair {
  /** The end the appliance's console opens. */
  consolePath: string;
  /** The end the operator types into. */
  operatorPath: string;
  close(): Promise<void>;
}

/** Starts socat with two linked ptys `<dir>/console` and `<dir>/operator`; resolves once both exist. */
export async function openPtyPair(dir: string): Promise<PtyPair> {
  if (/[,:!"'\s]/.test(dir)) throw new Error(`openPtyPair: socat cannot take ${JSON.stringify(dir)} in an address`);
  const consolePath = join(dir, "console");
  const operatorPath = join(dir, "operator");
  rmSync(consolePath, { force: true }); // stale links would look ready at once
  rmSync(operatorPath, { force: true });
  const child = spawn(
    "socat",
    ["-d", "-d", `pty,raw,echo=0,link=${consolePath}`, `pty,raw,echo=0,link=${operatorPath}`],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  let log = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (d: string) => (log = (log + d).slice(-4000)));
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  // A socat left behind would keep the ptys (and the test runner) alive.
  const killOnExit = (): void => void child.kill("SIGKILL");
  process.once("exit", killOnExit);

  try {
    await new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + LINKS_TIMEOUT_MS;
      let timer: NodeJS.Timeout | undefined;
      const done = (err?: Error): void => {
        clearTimeout(timer);
        child.off("error", onError);
        child.off("exit", onExit);
        if (err) reject(err);
        else resolve();
      };
      const onError = (err: NodeJS.ErrnoException): void =>
        done(err.code === "ENOENT" ? new Error("socat is not installed: apt-get install -y socat") : err);
      const onExit = (code: number | null, signal: string | null): void =>
        done(new Error(`socat exited (${code ?? signal}) before making the ptys: ${log.trim()}`));
      child.once("error", onError);
      child.once("exit", onExit);
      const poll = (): void => {
        if (existsSync(consolePath) && existsSync(operatorPath)) done();
        else if (Date.now() > deadline) done(new Error(`socat made no ptys in ${dir} within ${LINKS_TIMEOUT_MS} ms: ${log.trim()}`));
        else timer = setTimeout(poll, 10);
      };
      poll();
    });
  } catch (err) {
    process.off("exit", killOnExit);
    child.kill("SIGKILL");
    throw err;
  }

  return {
    consolePath,
    operatorPath,
    async close() {
      process.off("exit", killOnExit);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      await exited;
      rmSync(consolePath, { force: true });
      rmSync(operatorPath, { force: true });
    },
  };
}

/** Keys as a VT100 sends them. */
export const KEYS = {
  tab: "\t",
  enter: "\r",
  up: "\x1b[A",
  down: "\x1b[B",
  right: "\x1b[C",
  left: "\x1b[D",
  home: "\x1b[H",
  end: "\x1b[F",
  delete: "\x1b[3~",
  backspace: "\x7f",
  space: " ",
  "?": "?",
  "ctrl-a": "\x01",
  "ctrl-b": "\x02",
  "ctrl-c": "\x03",
  "ctrl-d": "\x04",
  "ctrl-e": "\x05",
  "ctrl-f": "\x06",
  "ctrl-k": "\x0b",
  "ctrl-n": "\x0e",
  "ctrl-p": "\x10",
  "ctrl-u": "\x15",
  "ctrl-v": "\x16",
  "ctrl-w": "\x17",
  "ctrl-y": "\x19",
} as const;

export type KeyName = keyof typeof KEYS;

/** ESC sequences (CSI, SS3, two-byte) and BEL; an unfinished sequence at the end is left alone. */
const ESCAPES = /\x1b(?:\[[\x20-\x3f]*[\x40-\x7e]|O[\x40-\x7e]|[^[O])|\x07/y;

/**
 * Removes escape sequences from `raw`; `ends[i]` is the offset in `raw` just after the i-th kept
 * character, so a match in the stripped text maps back to how much raw output it used.
 */
function strip(raw: string): { text: string; ends: number[] } {
  let text = "";
  const ends: number[] = [];
  let i = 0;
  while (i < raw.length) {
    ESCAPES.lastIndex = i;
    if (ESCAPES.test(raw)) {
      i = ESCAPES.lastIndex;
      continue;
    }
    if (raw[i] === "\x1b") break; // the rest of a sequence has not arrived yet
    text += raw[i++];
    ends.push(i);
  }
  return { text, ends };
}

/** The operator's terminal: types keys, waits for output, and shows the screen as a VT100 would. */
export class PtyOperator {
  private received = "";
  /** Offset in `received` up to which expect() has matched. */
  private consumed = 0;
  private ended = false;
  private readonly decoder = new StringDecoder("utf8");
  private readonly watchers = new Set<() => void>();

  private constructor(
    private readonly port: SerialPort,
    private readonly width: number,
  ) {
    port.on("data", (chunk: Buffer) => {
      this.received += this.decoder.write(chunk);
      for (const w of [...this.watchers]) w();
    });
    const end = (): void => {
      this.ended = true;
      for (const w of [...this.watchers]) w();
    };
    port.on("close", end);
    port.on("error", end);
  }

  /** Opens the operator's end of a pty pair; `width` is used by screen(). */
  static async open(path: string, opts: { width?: number } = {}): Promise<PtyOperator> {
    const port = new SerialPort({ path, baudRate: 115200, autoOpen: false });
    await new Promise<void>((resolve, reject) =>
      port.open((err) => (err ? reject(new Error(`cannot open operator pty ${path}: ${err.message}`)) : resolve())),
    );
    return new PtyOperator(port, opts.width ?? 80);
  }

  send(text: string): void {
    this.port.write(text);
  }

  sendKeys(...keys: KeyName[]): void {
    this.port.write(keys.map((k) => KEYS[k]).join(""));
  }

  /**
   * Waits for `pattern` in the output received since the previous match, with escape sequences
   * removed (CR, LF and BS are kept: use screen() for what the operator sees). Resolves to that
   * output up to the end of the match; what follows the match is left for the next expect.
   */
  expect(pattern: RegExp | string, timeoutMs = 5000): Promise<string> {
    const re = typeof pattern === "string" ? undefined : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, ""));
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const finish = (err: Error | undefined, text = ""): void => {
        clearTimeout(timer);
        this.watchers.delete(check);
        if (err) reject(err);
        else resolve(text);
      };
      const check = (): void => {
        const { text, ends } = strip(this.received.slice(this.consumed));
        let end = -1;
        if (re) {
          const m = re.exec(text);
          if (m) end = m.index + m[0].length;
        } else {
          const at = text.indexOf(pattern as string);
          if (at >= 0) end = at + (pattern as string).length;
        }
        if (end >= 0) {
          this.consumed += end > 0 ? ends[end - 1] : 0;
          return finish(undefined, text.slice(0, end));
        }
        if (this.ended) finish(this.failure(pattern, "the pty closed", text));
      };
      timer = setTimeout(() => {
        finish(this.failure(pattern, `not seen within ${timeoutMs} ms`, strip(this.received.slice(this.consumed)).text));
      }, timeoutMs);
      this.watchers.add(check);
      check();
    });
  }

  /**
   * Waits until the screen shows `pattern` (a string it contains, or a RegExp it matches) and
   * resolves to the screen: for checks after the console has finished a line, whose last bytes may
   * still be crossing the pty.
   */
  expectScreen(pattern: RegExp | string, timeoutMs = 5000): Promise<string> {
    const shows = (screen: string): boolean =>
      typeof pattern === "string" ? screen.includes(pattern) : new RegExp(pattern.source, pattern.flags.replace(/[gy]/g, "")).test(screen);
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const check = (): void => {
        const screen = this.screen();
        if (shows(screen)) {
          clearTimeout(timer);
          this.watchers.delete(check);
          resolve(screen);
        }
      };
      timer = setTimeout(() => {
        this.watchers.delete(check);
        const screen = this.screen();
        const tail = screen.length > 600 ? "..." + screen.slice(-600) : screen;
        reject(new Error(`expectScreen ${String(pattern)}: not shown within ${timeoutMs} ms; the screen:\n${tail}`));
      }, timeoutMs);
      this.watchers.add(check);
      check();
    });
  }

  /** Everything received, drawn on a virtual VT100 `width` columns wide: what the operator sees. */
  screen(): string {
    return renderScreen(this.received, this.width);
  }

  /** Everything received, as sent. */
  raw(): string {
    return this.received;
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.port.isOpen) return resolve();
      this.port.close(() => resolve());
    });
  }

  private failure(pattern: RegExp | string, why: string, text: string): Error {
    const tail = text.length > 600 ? "..." + text.slice(-600) : text;
    return new Error(`expect ${String(pattern)}: ${why}; received since the last match: ${JSON.stringify(tail)}`);
  }
}

/**
 * A screen of `width` columns and unbounded height that plays terminal output: printable
 * characters (one column each), CR, LF, BS, TAB, autowrap (deferred, as on a VT100), ESC [ K,
 * ESC [ J and cursor moves ESC [ n A/B/C/D. Other sequences are skipped. Feed it whole sequences.
 */
export class Vt100Screen {
  private readonly rows: string[][] = [[]];
  /** Cursor row and column, from 0. */
  row = 0;
  col = 0;
  private wrapPending = false;

  constructor(readonly width = 80) {}

  write(output: string): this {
    const chars = Array.from(output);
    for (let i = 0; i < chars.length; i++) {
      const ch = chars[i];
      if (ch === "\x1b") {
        const j = i + 1;
        if (chars[j] !== "[") {
          i = chars[j] === "O" ? j + 1 : j; // a two-byte sequence or SS3: skip it
          continue;
        }
        let k = j + 1;
        let params = "";
        while (k < chars.length && /[\x20-\x3f]/.test(chars[k])) params += chars[k++];
        i = k;
        this.control(params, chars[k] ?? "");
        continue;
      }
      this.put(ch);
    }
    return this;
  }

  /** The rows with trailing blanks trimmed, trailing empty rows dropped. */
  text(): string {
    const lines = this.rows.map((cells) => cells.join("").trimEnd());
    while (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    return lines.join("\n");
  }

  /** The row the cursor is on, trailing blanks trimmed. */
  cursorRow(): string {
    return this.cells().join("").trimEnd();
  }

  private cells(): string[] {
    while (this.rows.length <= this.row) this.rows.push([]);
    return this.rows[this.row];
  }

  private control(params: string, final: string): void {
    const n = Math.max(1, Number.parseInt(params, 10) || 1);
    this.wrapPending = false;
    if (final === "K") this.cells().splice(this.col);
    else if (final === "J") {
      this.cells().splice(this.col);
      this.rows.splice(this.row + 1);
    } else if (final === "A") this.row = Math.max(0, this.row - n);
    else if (final === "B") this.row += n;
    else if (final === "C") this.col = Math.min(this.width - 1, this.col + n);
    else if (final === "D") this.col = Math.max(0, this.col - n);
  }

  private put(ch: string): void {
    if (ch === "\r") {
      this.col = 0;
      this.wrapPending = false;
    } else if (ch === "\n") {
      this.row++;
      this.cells();
    } else if (ch === "\b") {
      this.wrapPending = false;
      if (this.col > 0) this.col--;
    } else if (ch === "\t") {
      this.col = Math.min(this.width - 1, (Math.floor(this.col / 8) + 1) * 8);
    } else if (ch >= " " && ch !== "\x7f") {
      if (this.wrapPending) {
        this.row++;
        this.col = 0;
        this.wrapPending = false;
      }
      const cells = this.cells();
      while (cells.length < this.col) cells.push(" ");
      cells[this.col] = ch;
      if (this.col === this.width - 1) this.wrapPending = true;
      else this.col++;
    }
  }
}

/** What `output` looks like on a `width`-column VT100. */
export function renderScreen(output: string, width = 80): string {
  return new Vt100Screen(width).write(output).text();
}
