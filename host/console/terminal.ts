// The terminal layer of the serial console: line editing, history, Tab completion, `?` help and
// paged output over a byte stream, for the command layer above it.
//
// What it trades away, and why:
// - It sends only what a VT100 (or a terminal server, or a pty) understands: CR, LF, BS, BEL and
//   ESC [ K. The cursor moves left with BS and right by re-sending the characters it passes over,
//   so the appliance and the operator's terminal always agree on where the cursor is; nothing is
//   ever asked of the terminal (no cursor position reports, no size query). Each edit is drawn
//   by comparing what is on the screen with what should be there: BS back to the first column
//   that differs, re-send from there, ESC [ K if the line got shorter, BS to the cursor. Typing at
//   the end of the line therefore echoes just the character.
// - The edited line never wraps. The prompt and the visible part of the line fit in `width - 1`
//   columns (the last column is never written, which also sidesteps the VT100's deferred wrap); a
//   longer line scrolls horizontally, IOS-style: a `$` at the left or right edge stands for text
//   scrolled out of view, and the view jumps by half its width when the cursor reaches an edge.
//   BS cannot climb back to a previous row on a dumb terminal, so wrapping would not be safe.
// - The cursor moves by grapheme; a grapheme is 2 columns when it is East Asian wide or an emoji,
//   0 when it starts with a combining mark, 1 otherwise. Terminals disagree at the margins, so this
//   is an approximation that is right for ASCII, Latin, CJK and common emoji. Invalid UTF-8 (line
//   noise, a terminal at the wrong baud rate) is dropped.
// - Keys typed while no line is being read are kept (type-ahead) and edited at the next prompt,
//   except that Ctrl-C with no reader discards them, as a tty does, and calls the interrupt handler.

/**
 * What the command layer plugs in to answer Tab and `?`. Both get the text before the cursor;
 * the text after the cursor stays after the completed line.
 */
export interface LineHelp {
  /** Tab: complete the word at the cursor. Returns the new line (if the word could be extended) and/or candidates to list. */
  complete(line: string): { line?: string; list?: { word: string; help: string }[] };
  /** '?': help for the position at the end of `line` (the '?' is not inserted); lines to print. */
  help(line: string): string[];
}

/**
 * The line handed over whole for a file transfer (Terminal.rawSession): the operator's bytes as
 * they arrive and ours as written; no keys, no echo, no CR/LF translation, no paging.
 */
export interface RawLine {
  write(bytes: Uint8Array): void;
  /** Returns a function that stops the delivery. */
  onData(listener: (bytes: Uint8Array) => void): () => void;
  /** Called once when the line goes away. */
  onClose(listener: () => void): () => void;
}

export interface TerminalIo {
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
}

export interface TerminalOptions {
  /** Columns of the operator's terminal (a serial line cannot tell us); default 80. */
  width?: number;
  /** Rows of the operator's terminal, for --More--; 0 turns paging off; default 24. */
  height?: number;
}

export interface ReadLineOptions {
  /** Echo nothing (passwords); no history, completion or help. */
  secret?: boolean;
  /** Tab completion and `?` help; without it Tab is ignored and `?` is an ordinary character. */
  help?: LineHelp;
  /** The caller's history, oldest first; entered lines are appended to it. */
  history?: string[];
}

/** Lines kept in a history array: enough for a session, small enough for the management CPU. */
export const HISTORY_MAX = 200;
export const DEFAULT_WIDTH = 80;
export const DEFAULT_HEIGHT = 24;
/** Fewest columns left for the line after the prompt; a longer prompt is cut on its left. */
const MIN_EDIT_COLUMNS = 10;
/** Longest control sequence we collect before deciding it is noise. */
const MAX_CSI_LENGTH = 16;
/** Output kept back before it is written, so a paste echoes in one write, not one per byte. */
const FLUSH_BYTES = 4096;

const CRLF = "\r\n";
const BS = "\b";
const BEL = "\x07";
const ERASE_EOL = "\x1b[K";
const MORE = "--More--";
/** Marks text scrolled out of view on a line longer than the screen. */
const SCROLL_MARK = "$";

// ---------------------------------------------------------------------------------------------
// Input: bytes -> keys. Escape sequences and UTF-8 characters may be split across reads, so the
// decoder keeps its state between chunks.

type KeyName =
  | "enter"
  | "backspace"
  | "delete"
  | "tab"
  | "left"
  | "right"
  | "up"
  | "down"
  | "home"
  | "end"
  | "word-left"
  | "word-right"
  | "kill-end"
  | "kill-line"
  | "kill-word"
  | "yank"
  | "redraw"
  | "quote"
  | "ctrl-c"
  | "ctrl-d";

type Key = { kind: "text"; text: string } | { kind: "key"; name: KeyName };

const CONTROL_KEYS: ReadonlyMap<number, KeyName> = new Map<number, KeyName>([
  [0x01, "home"], // Ctrl-A
  [0x02, "left"], // Ctrl-B
  [0x03, "ctrl-c"],
  [0x04, "ctrl-d"],
  [0x05, "end"], // Ctrl-E
  [0x06, "right"], // Ctrl-F
  [0x08, "backspace"], // Ctrl-H
  [0x09, "tab"],
  [0x0b, "kill-end"], // Ctrl-K
  [0x0c, "redraw"], // Ctrl-L
  [0x0e, "down"], // Ctrl-N
  [0x10, "up"], // Ctrl-P
  [0x15, "kill-line"], // Ctrl-U
  [0x16, "quote"], // Ctrl-V: the next character is inserted as is (a literal `?`)
  [0x17, "kill-word"], // Ctrl-W
  [0x19, "yank"], // Ctrl-Y
  [0x7f, "backspace"], // DEL, what most terminals send for Backspace
]);

const key = (name: KeyName): Key => ({ kind: "key", name });

/** ESC [ <params> <final>: arrows, Home/End/Delete in the xterm, VT220 and rxvt spellings. */
function csiKey(params: string, final: string): KeyName | undefined {
  const ctrl = params.endsWith(";5"); // xterm Ctrl-arrow: move by word
  switch (final) {
    case "A":
      return "up";
    case "B":
      return "down";
    case "C":
      return ctrl ? "word-right" : "right";
    case "D":
      return ctrl ? "word-left" : "left";
    case "H":
      return "home";
    case "F":
      return "end";
    case "~":
      if (params === "1" || params === "7") return "home";
      if (params === "4" || params === "8") return "end";
      if (params === "3") return "delete";
      return undefined;
    default:
      return undefined;
  }
}

/** ESC O <final>: the same keys in the terminal's "application" mode. */
function ss3Key(final: string): KeyName | undefined {
  return ({ A: "up", B: "down", C: "right", D: "left", H: "home", F: "end" } as const)[
    final as "A" | "B" | "C" | "D" | "H" | "F"
  ];
}

class KeyDecoder {
  private state: "ground" | "esc" | "csi" | "ss3" = "ground";
  private csiParams = "";
  private utf8CodePoint = 0;
  private utf8Need = 0;
  private utf8Have = 0;
  /** CR LF and CR NUL are one Enter; remembered across chunks. */
  private afterCr = false;

  decode(chunk: Uint8Array, out: Key[]): void {
    for (const byte of chunk) this.byte(byte, out);
  }

  private byte(b: number, out: Key[]): void {
    if (this.utf8Need > 0) {
      if ((b & 0xc0) === 0x80) {
        this.utf8CodePoint = (this.utf8CodePoint << 6) | (b & 0x3f);
        if (++this.utf8Have === this.utf8Need) this.endUtf8(out);
        return;
      }
      this.utf8Need = 0; // truncated sequence: drop it, then read this byte afresh
    }
    switch (this.state) {
      case "esc":
        this.state = "ground";
        if (b === 0x5b) {
          this.state = "csi";
          this.csiParams = "";
          return;
        }
        if (b === 0x4f) {
          this.state = "ss3";
          return;
        }
        if (b === 0x1b) {
          this.state = "esc";
          return;
        }
        // Meta (ESC-prefixed) keys of emacs and readline.
        if (b === 0x62) return void out.push(key("word-left")); // ESC b
        if (b === 0x66) return void out.push(key("word-right")); // ESC f
        if (b === 0x7f || b === 0x08) return void out.push(key("kill-word")); // ESC Backspace
        break; // any other byte: the ESC was a stray key press; the byte counts on its own
      case "csi":
        if (b >= 0x20 && b <= 0x3f) {
          if (this.csiParams.length < MAX_CSI_LENGTH) this.csiParams += String.fromCharCode(b);
          else this.state = "ground";
          return;
        }
        this.state = "ground";
        if (b >= 0x40 && b <= 0x7e) {
          const name = csiKey(this.csiParams, String.fromCharCode(b));
          if (name) out.push(key(name));
          return;
        }
        break; // a control byte inside a sequence: abandon the sequence, act on the byte
      case "ss3":
        this.state = "ground";
        if (b >= 0x40 && b <= 0x7e) {
          const name = ss3Key(String.fromCharCode(b));
          if (name) out.push(key(name));
          return;
        }
        break;
      case "ground":
        break;
    }
    const afterCr = this.afterCr;
    this.afterCr = false;
    if (b === 0x0d) {
      this.afterCr = true;
      out.push(key("enter"));
    } else if (b === 0x0a) {
      if (!afterCr) out.push(key("enter"));
    } else if (b === 0x1b) {
      this.state = "esc";
    } else if (b < 0x20 || b === 0x7f) {
      const name = CONTROL_KEYS.get(b);
      if (name) out.push(key(name));
    } else if (b < 0x80) {
      out.push({ kind: "text", text: String.fromCharCode(b) });
    } else if (b >= 0xc2 && b <= 0xdf) {
      this.startUtf8(b & 0x1f, 2);
    } else if (b >= 0xe0 && b <= 0xef) {
      this.startUtf8(b & 0x0f, 3);
    } else if (b >= 0xf0 && b <= 0xf4) {
      this.startUtf8(b & 0x07, 4);
    } // else: a stray continuation byte or an invalid lead byte
  }

  private startUtf8(bits: number, length: number): void {
    this.utf8CodePoint = bits;
    this.utf8Need = length;
    this.utf8Have = 1;
  }

  private endUtf8(out: Key[]): void {
    const cp = this.utf8CodePoint;
    const length = this.utf8Need;
    this.utf8Need = 0;
    const overlong = (length === 3 && cp < 0x800) || (length === 4 && cp < 0x10000);
    const invalid = cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) || (cp >= 0x80 && cp <= 0x9f);
    if (!overlong && !invalid) out.push({ kind: "text", text: String.fromCodePoint(cp) });
  }
}

// ---------------------------------------------------------------------------------------------
// Display widths

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });
const ZERO_WIDTH = /^[\p{Mn}\p{Me}\p{Cf}]/u;
const EMOJI = /^\p{Emoji_Presentation}/u;
/** East Asian Wide and Fullwidth blocks (the bulk of them; see the note at the top). */
const WIDE_RANGES: readonly (readonly [number, number])[] = [
  [0x1100, 0x115f],
  [0x2e80, 0x303e],
  [0x3041, 0x33ff],
  [0x3400, 0x4dbf],
  [0x4e00, 0x9fff],
  [0xa000, 0xa4cf],
  [0xac00, 0xd7a3],
  [0xf900, 0xfaff],
  [0xfe30, 0xfe4f],
  [0xff00, 0xff60],
  [0xffe0, 0xffe6],
  [0x20000, 0x2fffd],
  [0x30000, 0x3fffd],
];

function graphemeColumns(g: string): number {
  if (ZERO_WIDTH.test(g)) return 0;
  const cp = g.codePointAt(0) ?? 0;
  if (EMOJI.test(g) || g.includes("\ufe0f")) return 2;
  for (const [lo, hi] of WIDE_RANGES) if (cp >= lo && cp <= hi) return 2;
  return 1;
}

interface Grapheme {
  /** UTF-16 offset in the line. */
  index: number;
  text: string;
  cols: number;
}

function graphemes(text: string): Grapheme[] {
  const out: Grapheme[] = [];
  for (const { index, segment } of segmenter.segment(text)) {
    out.push({ index, text: segment, cols: graphemeColumns(segment) });
  }
  return out;
}

function columns(text: string): number {
  let cols = 0;
  for (const g of graphemes(text)) cols = g.text === "\t" ? (Math.floor(cols / 8) + 1) * 8 : cols + g.cols;
  return cols;
}

/** Keeps what can be displayed: completions come from code we do not own. */
function printable(text: string): string {
  return text.replace(/\p{Cc}/gu, "");
}

function isSpace(ch: string): boolean {
  return ch === " ";
}

// ---------------------------------------------------------------------------------------------
// The line being edited, and what the terminal shows of it

interface Cell {
  text: string;
  cols: number;
}

interface Edit {
  /** Prompt lines above the editing row ("[edit]" in configuration mode). */
  promptAbove: string[];
  /** The prompt on the editing row, cut to leave room for the line. */
  prompt: string;
  promptCols: number;
  secret: boolean;
  text: string;
  /** UTF-16 offset, always on a grapheme boundary. */
  cursor: number;
  /** First grapheme in view when the line is scrolled. */
  first: number;
  /** What the terminal shows after the prompt, and where its cursor is (columns after the prompt). */
  shown: Cell[];
  col: number;
  history: string[] | undefined;
  /** Where up/down has walked to: history.length is the line being typed. */
  historyIndex: number;
  /** The line being typed, kept while the operator looks at history. */
  draft: string;
  /** Ctrl-V was pressed: insert the next character as is. */
  quoted: boolean;
  /** Help or a completion list is being printed below the line. */
  suspended: boolean;
}

type PagerAnswer = "page" | "line" | "stop";

export class Terminal {
  /** Columns of the operator's terminal; may be changed at any time (`set cli screen-width`). */
  width: number;
  /** Rows for --More--, 0 for no paging; may be changed at any time (`set cli screen-length`). */
  height: number;

  private readonly input: NodeJS.ReadableStream;
  private readonly output: NodeJS.WritableStream;
  private decoder = new KeyDecoder(); // replaced after a raw session: no half sequence survives it
  private readonly keys: Key[] = [];
  private waiter: ((key: Key | null) => void) | undefined;
  private drainWaiters = new Set<() => void>();
  private pending = "";
  private inputEnded = false;
  private closed = false;
  /** Set while a readLine or a --More-- prompt takes keys from the operator. */
  private consuming = false;
  /** A readLine waits for a print to finish before it starts. */
  private lineWanted = false;
  /** Counts Ctrl-C pressed while nothing read keys: a print in progress stops when it changes. */
  private interrupts = 0;
  /** The operator answered q at --More--: output is dropped until the next readLine. */
  private outputStopped = false;
  private edit: Edit | undefined;
  /** Rows that may still be printed before --More--; reset whenever the operator types a line. */
  private pageRows = 0;
  private printQueue: Promise<void> = Promise.resolve();
  private killed = "";
  private interruptHandler: (() => void) | undefined;

  /** During a raw session: who gets the input instead of the key decoder. */
  private raw: { data: Set<(bytes: Uint8Array) => void>; close: Set<() => void> } | undefined;

  private readonly onData = (chunk: Buffer | string): void => {
    const bytes = typeof chunk === "string" ? Buffer.from(chunk, "utf8") : chunk;
    if (this.raw) return void [...this.raw.data].forEach((l) => l(bytes));
    const before = this.keys.length;
    this.decoder.decode(bytes, this.keys);
    if (!this.consuming && !this.lineWanted) this.interruptTypeAhead(before);
    this.wake();
  };
  private readonly onEnd = (): void => {
    this.inputEnded = true;
    this.wake();
    this.endRaw();
  };
  private readonly onOutputGone = (): void => {
    this.inputEnded = true;
    this.closed = true;
    this.wake();
    this.endRaw();
    this.wakeDrainWaiters();
  };
  private readonly onDrain = (): void => this.wakeDrainWaiters();

  constructor(io: TerminalIo, opts: TerminalOptions = {}) {
    this.input = io.input;
    this.output = io.output;
    this.width = opts.width ?? DEFAULT_WIDTH;
    this.height = opts.height ?? DEFAULT_HEIGHT;
    this.pageRows = this.pageSize();
    this.input.on("data", this.onData);
    this.input.on("end", this.onEnd);
    this.input.on("close", this.onEnd);
    this.input.on("error", this.onEnd);
    this.input.resume(); // a terminal closed earlier on the same stream (a reboot) paused it
    this.output.on("error", this.onOutputGone);
    this.output.on("drain", this.onDrain);
  }

  /**
   * Reads one line. Resolves to the line on Enter, "" on Ctrl-C, and null at the end of input,
   * on Ctrl-D on an empty line, or when the terminal is closed. One readLine at a time; it waits
   * for prints started before it.
   */
  async readLine(prompt: string, opts: ReadLineOptions = {}): Promise<string | null> {
    if (this.edit || this.lineWanted) throw new Error("Terminal.readLine: a line is already being read");
    this.lineWanted = true; // from now on Ctrl-C is a key for this line, not an interrupt
    try {
      await this.printQueue; // a print still paging keeps the keys until it is done
    } finally {
      this.lineWanted = false;
    }
    if (this.closed) return null;
    const secret = opts.secret === true;
    const history = secret ? undefined : opts.history;
    const e = this.startEdit(prompt, secret, history);
    this.edit = e;
    this.consuming = true;
    this.pageRows = this.pageSize();
    this.outputStopped = false;
    try {
      this.showPrompt(e);
      for (;;) {
        const k = await this.nextKey();
        if (k === null) {
          this.finishRow(e);
          return null;
        }
        const line = await this.handleKey(e, k, opts.help);
        if (line !== undefined) return line;
      }
    } finally {
      this.edit = undefined;
      this.consuming = false;
      this.flush();
    }
  }

  /**
   * Prints text, each "\n" sent as CRLF; the output always ends at the start of a new row
   * (print("") prints an empty row). Long output stops at --More-- every `height - 1` rows
   * counted since the operator last entered a line: space shows the next page, Enter one more
   * line, q or Ctrl-C drops the rest and all output until the next readLine (the rest of the
   * command's prints). Ctrl-C typed while nothing reads keys stops the print being written.
   * Called while a line is being read (a notice arriving asynchronously), it prints above the
   * line, unpaged, and redraws the prompt and the line.
   */
  print(text: string): Promise<void> {
    const lines = text.split("\n").map((l) => (l.endsWith("\r") ? l.slice(0, -1) : l));
    if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
    if (this.edit) {
      this.notice(this.edit, lines);
      return Promise.resolve();
    }
    const run = this.printQueue.then(async () => {
      if (this.edit) return this.notice(this.edit, lines);
      if (this.outputStopped) return;
      if (!(await this.pageOut(lines))) this.outputStopped = true;
    });
    this.printQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * Hands the line to `fn` whole, for a file transfer (XMODEM, YMODEM): bytes go to and from it
   * untouched until it resolves. Prints started before it finish first; prints started during it
   * wait until it is over. Afterwards keys are decoded afresh. Not during a readLine.
   */
  rawSession<T>(fn: (line: RawLine) => Promise<T>): Promise<T> {
    if (this.edit || this.lineWanted || this.raw) return Promise.reject(new Error("Terminal.rawSession: the line is in use"));
    const session = this.printQueue.then(async () => {
      await this.flushAndDrain();
      const raw = { data: new Set<(bytes: Uint8Array) => void>(), close: new Set<() => void>() };
      this.raw = raw;
      const line: RawLine = {
        write: (bytes) => {
          if (this.raw === raw && !this.closed) this.output.write(bytes);
        },
        onData: (l) => {
          raw.data.add(l);
          return () => void raw.data.delete(l);
        },
        onClose: (l) => {
          if (this.inputEnded || this.closed) queueMicrotask(l);
          else raw.close.add(l);
          return () => void raw.close.delete(l);
        },
      };
      try {
        return await fn(line);
      } finally {
        this.raw = undefined;
        this.decoder = new KeyDecoder();
        this.pageRows = this.pageSize();
      }
    });
    this.printQueue = session.then(() => undefined, () => undefined);
    return session;
  }

  private endRaw(): void {
    const listeners = [...(this.raw?.close ?? [])];
    this.raw?.close.clear();
    for (const l of listeners) l();
  }

  /** Writes text as is: no CRLF translation, no paging. */
  write(text: string): void {
    if (this.closed) return;
    this.emit(text);
    this.flush();
  }

  /**
   * Called when Ctrl-C arrives while nothing reads from the operator (a command is running); the
   * keys typed ahead until then are discarded and a print being written stops.
   */
  onInterrupt(handler: (() => void) | undefined): void {
    this.interruptHandler = handler;
  }

  /** Stops reading the streams (which stay open: the caller owns them); pending reads get null. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.input.off("data", this.onData);
    this.input.off("end", this.onEnd);
    this.input.off("close", this.onEnd);
    this.input.off("error", this.onEnd);
    this.output.off("error", this.onOutputGone);
    this.output.off("drain", this.onDrain);
    this.input.pause();
    this.wake();
    this.wakeDrainWaiters();
    this.endRaw();
  }

  // -------------------------------------------------------------------------------------------
  // Keys

  private wake(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    const k = this.keys.shift();
    if (k) {
      this.waiter = undefined;
      waiter(k);
    } else if (this.inputEnded || this.closed) {
      this.waiter = undefined;
      waiter(null);
    }
  }

  private nextKey(): Promise<Key | null> {
    const k = this.keys.shift();
    if (k) return Promise.resolve(k);
    if (this.inputEnded || this.closed) return Promise.resolve(null);
    this.flush();
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** Ctrl-C with no reader: drop everything typed ahead up to it, as a tty's ISIG does. */
  private interruptTypeAhead(from: number): void {
    let last = -1;
    for (let i = from; i < this.keys.length; i++) {
      const k = this.keys[i];
      if (k.kind === "key" && k.name === "ctrl-c") last = i;
    }
    if (last < 0) return;
    this.keys.splice(0, last + 1);
    this.interrupts++;
    this.interruptHandler?.();
  }

  /** Acts on one key; returns the finished line, null for end of input, undefined to go on. */
  private async handleKey(e: Edit, k: Key, help: LineHelp | undefined): Promise<string | null | undefined> {
    if (k.kind === "text") {
      const insertHelp = k.text === "?" && help && !e.secret && !e.quoted && !inQuotes(before(e));
      e.quoted = false;
      if (insertHelp) await this.showHelp(e, help);
      else this.insert(e, k.text);
      return undefined;
    }
    if (e.quoted && k.name !== "quote") e.quoted = false;
    switch (k.name) {
      case "enter":
        return this.enter(e);
      case "ctrl-c":
        this.moveTo(e, e.shown, cellColumns(e.shown));
        if (e.promptCols + e.col + 2 > this.width) this.emit(CRLF);
        this.emit("^C" + CRLF);
        return "";
      case "ctrl-d":
        if (e.text === "") {
          this.finishRow(e);
          return null;
        }
        this.deleteForward(e);
        return undefined;
      case "delete":
        this.deleteForward(e);
        return undefined;
      case "backspace":
        if (e.cursor === 0) return this.bell();
        this.replace(e, prevBoundary(e.text, e.cursor), e.cursor, "");
        return undefined;
      case "left":
        return this.moveCursor(e, e.cursor === 0 ? -1 : prevBoundary(e.text, e.cursor));
      case "right":
        return this.moveCursor(e, e.cursor === e.text.length ? -1 : nextBoundary(e.text, e.cursor));
      case "home":
        return this.moveCursor(e, 0);
      case "end":
        return this.moveCursor(e, e.text.length);
      case "word-left":
        return this.moveCursor(e, wordStart(e.text, e.cursor));
      case "word-right":
        return this.moveCursor(e, wordEnd(e.text, e.cursor));
      case "kill-end":
        this.kill(e, e.text.slice(e.cursor));
        this.replace(e, e.cursor, e.text.length, "");
        return undefined;
      case "kill-line":
        this.kill(e, e.text);
        this.replace(e, 0, e.text.length, "");
        return undefined;
      case "kill-word": {
        const start = wordStart(e.text, e.cursor);
        this.kill(e, e.text.slice(start, e.cursor));
        this.replace(e, start, e.cursor, "");
        return undefined;
      }
      case "yank":
        if (!e.secret && this.killed) this.insert(e, this.killed);
        return undefined;
      case "up":
      case "down":
        this.walkHistory(e, k.name === "up" ? -1 : 1);
        return undefined;
      case "tab":
        if (help && !e.secret) await this.complete(e, help);
        return undefined;
      case "redraw":
        this.finishRow(e);
        this.showPrompt(e);
        return undefined;
      case "quote":
        e.quoted = true;
        return undefined;
    }
  }

  private enter(e: Edit): string {
    this.finishRow(e);
    const line = e.text;
    const h = e.history;
    if (h && line.trim() !== "" && h[h.length - 1] !== line) {
      h.push(line);
      if (h.length > HISTORY_MAX) h.splice(0, h.length - HISTORY_MAX);
    }
    return line;
  }

  private insert(e: Edit, text: string): void {
    this.replace(e, e.cursor, e.cursor, text);
  }

  private deleteForward(e: Edit): void {
    if (e.cursor === e.text.length) return void this.bell();
    this.replace(e, e.cursor, nextBoundary(e.text, e.cursor), "");
  }

  /** Replaces text[from, to) and leaves the cursor after the new text. */
  private replace(e: Edit, from: number, to: number, text: string): void {
    e.text = e.text.slice(0, from) + text + e.text.slice(to);
    e.cursor = snapToBoundary(e.text, from + text.length);
    this.update(e);
  }

  private moveCursor(e: Edit, to: number): undefined {
    if (to < 0) return this.bell();
    e.cursor = to;
    this.update(e);
    return undefined;
  }

  private kill(e: Edit, text: string): void {
    if (!e.secret && text) this.killed = text; // never keep a password for Ctrl-Y
  }

  private walkHistory(e: Edit, step: -1 | 1): void {
    const h = e.history;
    if (!h) return;
    if (e.historyIndex > h.length) e.historyIndex = h.length; // the caller trimmed its array
    const to = e.historyIndex + step;
    if (to < 0 || to > h.length) return void this.bell();
    if (e.historyIndex === h.length) e.draft = e.text;
    e.historyIndex = to;
    e.text = to === h.length ? e.draft : printable(h[to]);
    e.cursor = e.text.length;
    this.update(e);
  }

  private async complete(e: Edit, help: LineHelp): Promise<void> {
    const head = before(e);
    let result: ReturnType<LineHelp["complete"]>;
    try {
      result = help.complete(head);
    } catch (err) {
      return this.helpOutput(e, [`% completion failed: ${errorMessage(err)}`]);
    }
    const extended = result.line !== undefined ? printable(result.line) : undefined;
    if (extended !== undefined && extended !== head) this.replace(e, 0, e.cursor, extended);
    const list = result.list ?? [];
    if (list.length > 0) return this.helpOutput(e, this.formatCompletions(list));
    if (extended === undefined || extended === head) this.bell();
  }

  private async showHelp(e: Edit, help: LineHelp): Promise<void> {
    let lines: string[];
    try {
      lines = help.help(before(e));
    } catch (err) {
      lines = [`% help failed: ${errorMessage(err)}`];
    }
    return this.helpOutput(e, lines, "?");
  }

  /** Prints lines below the line being edited, then the prompt and the line again, cursor in place. */
  private async helpOutput(e: Edit, lines: string[], echo = ""): Promise<void> {
    this.moveTo(e, e.shown, cellColumns(e.shown));
    this.emit(echo + CRLF); // the row has room for one more character: see areaColumns
    e.suspended = true;
    this.pageRows = this.pageSize();
    try {
      await this.pageOut(lines);
    } finally {
      e.suspended = false;
    }
    this.pageRows = this.pageSize();
    this.showPrompt(e);
  }

  private formatCompletions(list: { word: string; help: string }[]): string[] {
    const words = list.map((c) => printable(c.word));
    const wordCols = Math.max(...words.map(columns));
    if (list.every((c) => c.help === "")) {
      // Words only: as many columns as fit, like a shell.
      const cell = wordCols + 2;
      const perRow = Math.max(1, Math.floor((this.width - 1 - 2) / cell));
      const rows: string[] = [];
      for (let i = 0; i < words.length; i += perRow) {
        const row = words.slice(i, i + perRow).map((w, j, all) => (j < all.length - 1 ? pad(w, cell) : w));
        rows.push("  " + row.join(""));
      }
      return ["Possible completions:", ...rows];
    }
    return [
      "Possible completions:",
      ...list.map((c, i) => `  ${pad(words[i], wordCols + 2)}${printable(c.help)}`.trimEnd()),
    ];
  }

  private bell(): undefined {
    this.emit(BEL);
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Drawing the line

  private startEdit(prompt: string, secret: boolean, history: string[] | undefined): Edit {
    const rows = prompt.split("\n").map((r) => printable(r));
    const last = rows.pop() ?? "";
    const room = Math.max(0, this.width - 1 - MIN_EDIT_COLUMNS);
    let shown = last;
    if (columns(last) > room) {
      // Keep the end of the prompt: it holds the mode marker (">" or "#").
      const gs = graphemes(last);
      let cols = 0;
      let i = gs.length;
      while (i > 0 && cols + gs[i - 1].cols <= room) cols += gs[--i].cols;
      shown = i < gs.length ? last.slice(gs[i].index) : "";
    }
    return {
      promptAbove: rows,
      prompt: shown,
      promptCols: columns(shown),
      secret,
      text: "",
      cursor: 0,
      first: 0,
      shown: [],
      col: 0,
      history,
      historyIndex: history ? history.length : 0,
      draft: "",
      quoted: false,
      suspended: false,
    };
  }

  /** Columns for the line after the prompt: the prompt and the line never reach the last column. */
  private areaColumns(e: Edit): number {
    return Math.max(MIN_EDIT_COLUMNS, this.width - 1 - e.promptCols);
  }

  private showPrompt(e: Edit): void {
    for (const row of e.promptAbove) this.emit(row + CRLF);
    this.emit(e.prompt);
    e.shown = [];
    e.col = 0;
    this.update(e);
  }

  /** Leaves the line as shown, cursor after it, and starts a new row. */
  private finishRow(e: Edit): void {
    this.moveTo(e, e.shown, cellColumns(e.shown));
    this.emit(CRLF);
  }

  /** Brings the screen from what it shows to the current line: rewrite from the first difference. */
  private update(e: Edit): void {
    const { cells, cursorCol } = this.layout(e);
    const old = e.shown;
    let p = 0;
    let colP = 0;
    while (p < old.length && p < cells.length && old[p].text === cells[p].text) colP += cells[p++].cols;
    if (p < old.length || p < cells.length) {
      this.moveTo(e, old, colP);
      let out = "";
      let col = colP;
      for (let i = p; i < cells.length; i++) {
        out += cells[i].text;
        col += cells[i].cols;
      }
      this.emit(out);
      if (cellColumns(old) > col) this.emit(ERASE_EOL);
      e.col = col;
      e.shown = cells;
    }
    this.moveTo(e, cells, cursorCol);
  }

  /** Moves the terminal's cursor within the shown cells: BS to the left, re-sent cells to the right. */
  private moveTo(e: Edit, cells: Cell[], target: number): void {
    if (target < e.col) {
      this.emit(BS.repeat(e.col - target));
    } else if (target > e.col) {
      let col = 0;
      let out = "";
      for (const c of cells) {
        if (col >= target) break;
        if (col >= e.col) out += c.text;
        col += c.cols;
      }
      this.emit(out);
    }
    e.col = target;
  }

  /** What the area after the prompt should show, scrolled so the cursor is in view. */
  private layout(e: Edit): { cells: Cell[]; cursorCol: number } {
    if (e.secret) return { cells: [], cursorCol: 0 };
    const gs = graphemes(e.text);
    let cur = gs.findIndex((g) => g.index >= e.cursor);
    if (cur < 0) cur = gs.length;
    const area = this.areaColumns(e);
    const total = gs.reduce((n, g) => n + g.cols, 0);
    if (total <= area) {
      e.first = 0;
      return { cells: gs, cursorCol: colsOf(gs, 0, cur) };
    }
    let first = Math.min(e.first, gs.length);
    let view = scrolledView(gs, first, area);
    if (cur < first || cur > view.last) {
      // Out of view: put the cursor in the middle, so the view moves by half a screen at a time.
      first = cur;
      let cols = 0;
      while (first > 0 && cols + gs[first - 1].cols <= Math.floor(area / 2)) cols += gs[--first].cols;
      view = scrolledView(gs, first, area);
    }
    e.first = first;
    return { cells: view.cells, cursorCol: (first > 0 ? 1 : 0) + colsOf(gs, first, cur) };
  }

  /** Prints a notice above the line being read, then redraws the prompt and the line. */
  private notice(e: Edit, lines: string[]): void {
    const text = lines.map((l) => l + CRLF).join("");
    if (e.suspended) {
      this.emit(text);
    } else {
      this.emit("\r" + ERASE_EOL + text);
      this.showPrompt(e);
    }
    this.flush();
  }

  // -------------------------------------------------------------------------------------------
  // Output

  private pageSize(): number {
    return this.height > 0 ? this.height - 1 : Infinity;
  }

  /** Prints lines, paging; false when the operator stopped it at --More--. */
  private async pageOut(lines: string[]): Promise<boolean> {
    const interrupts = this.interrupts;
    for (const line of lines) {
      if (this.closed || this.interrupts !== interrupts) break;
      const rows = Math.max(1, Math.ceil(columns(line) / Math.max(1, this.width)));
      if (rows > this.pageRows) {
        const answer = await this.more();
        if (answer === "stop") {
          this.flush();
          return false;
        }
        this.pageRows = answer === "page" ? this.pageSize() : rows;
      }
      this.emit(line + CRLF);
      this.pageRows -= rows;
      if (this.pending.length >= FLUSH_BYTES) await this.flushAndDrain();
    }
    await this.flushAndDrain();
    return true;
  }

  private async more(): Promise<PagerAnswer> {
    this.emit(MORE);
    const consuming = this.consuming;
    this.consuming = true;
    try {
      return await this.moreAnswer();
    } finally {
      this.consuming = consuming;
    }
  }

  private async moreAnswer(): Promise<PagerAnswer> {
    for (;;) {
      const k = await this.nextKey();
      let answer: PagerAnswer | undefined;
      if (k === null) answer = "stop";
      else if (k.kind === "text") answer = k.text === " " ? "page" : k.text === "q" || k.text === "Q" ? "stop" : undefined;
      else if (k.name === "enter") answer = "line";
      else if (k.name === "ctrl-c") answer = "stop";
      if (answer) {
        this.emit(BS.repeat(MORE.length) + ERASE_EOL);
        return answer;
      }
    }
  }

  private emit(text: string): void {
    if (!this.closed) this.pending += text;
  }

  /** Writes what is pending; false when the output asks us to wait for 'drain'. */
  private flush(): boolean {
    if (!this.pending || this.closed) return true;
    const text = this.pending;
    this.pending = "";
    return this.output.write(text);
  }

  private async flushAndDrain(): Promise<void> {
    if (this.flush() || this.closed) return;
    await new Promise<void>((resolve) => this.drainWaiters.add(resolve));
  }

  private wakeDrainWaiters(): void {
    const waiters = [...this.drainWaiters];
    this.drainWaiters.clear();
    for (const w of waiters) w();
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers on the line

function before(e: Edit): string {
  return e.text.slice(0, e.cursor);
}

/** Inside an unclosed double quote `?` is text (a description may ask a question). */
function inQuotes(text: string): boolean {
  let open = false;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "\\") i++;
    else if (text[i] === '"') open = !open;
  }
  return open;
}

function prevBoundary(text: string, at: number): number {
  let prev = 0;
  for (const g of graphemes(text)) {
    if (g.index >= at) break;
    prev = g.index;
  }
  return prev;
}

function nextBoundary(text: string, at: number): number {
  for (const g of graphemes(text)) if (g.index > at) return g.index;
  return text.length;
}

/** The first boundary at or after `at` (text inserted before a combining mark joins its grapheme). */
function snapToBoundary(text: string, at: number): number {
  for (const g of graphemes(text)) if (g.index >= at) return g.index;
  return text.length;
}

function wordStart(text: string, at: number): number {
  let i = at;
  while (i > 0 && isSpace(text[i - 1])) i--;
  while (i > 0 && !isSpace(text[i - 1])) i--;
  return snapToBoundary(text, i);
}

function wordEnd(text: string, at: number): number {
  let i = at;
  while (i < text.length && isSpace(text[i])) i++;
  while (i < text.length && !isSpace(text[i])) i++;
  return snapToBoundary(text, i);
}

function colsOf(gs: Grapheme[], from: number, to: number): number {
  let cols = 0;
  for (let i = from; i < to; i++) cols += gs[i].cols;
  return cols;
}

function cellColumns(cells: Cell[]): number {
  return cells.reduce((n, c) => n + c.cols, 0);
}

/**
 * The view of a line too long for `area` columns, starting at grapheme `first`: a `$` on the left
 * when text is hidden there, on the right likewise. `last` is the furthest cursor position (a
 * grapheme index) that is in view.
 */
function scrolledView(gs: Grapheme[], first: number, area: number): { cells: Cell[]; last: number } {
  const cells: Cell[] = [];
  let col = 0;
  if (first > 0) {
    cells.push({ text: SCROLL_MARK, cols: 1 });
    col = 1;
  }
  if (col + colsOf(gs, first, gs.length) <= area) {
    cells.push(...gs.slice(first));
    return { cells, last: gs.length };
  }
  let i = first;
  while (i < gs.length && col + gs[i].cols <= area - 1) {
    cells.push(gs[i]);
    col += gs[i++].cols;
  }
  cells.push({ text: SCROLL_MARK, cols: 1 });
  return { cells, last: i - 1 };
}

function pad(text: string, cols: number): string {
  return text + " ".repeat(Math.max(1, cols - columns(text)));
}

function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
