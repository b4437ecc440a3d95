// The console's terminal layer over in-memory streams: every editing key, history, Tab and `?`,
// secret input, input split anywhere, paging. Output is played on a virtual VT100 to check that
// what the operator sees is the line the appliance holds, with the cursor where it should be.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { PassThrough } from "node:stream";

import { HISTORY_MAX, Terminal, type LineHelp, type TerminalOptions } from "../../host/console/terminal.js";
import { KEYS, Vt100Screen, renderScreen } from "../lib/pty.js";

const PROMPT = "fs> ";

interface Harness {
  term: Terminal;
  input: PassThrough;
  /** Types text (a string is sent as UTF-8). */
  type(...chunks: (string | Buffer)[]): void;
  /** Everything the terminal wrote. */
  out(): string;
  /** What the terminal wrote since the last call. */
  take(): string;
  screen(): string;
  vt(): Vt100Screen;
}

function harness(opts: TerminalOptions = {}): Harness {
  const input = new PassThrough();
  const output = new PassThrough();
  let out = "";
  let taken = 0;
  output.setEncoding("utf8");
  output.on("data", (d: string) => (out += d));
  const term = new Terminal({ input, output }, opts);
  const width = opts.width ?? 80;
  return {
    term,
    input,
    type: (...chunks) => chunks.forEach((c) => input.write(c)),
    out: () => out,
    take: () => {
      const t = out.slice(taken);
      taken = out.length;
      return t;
    },
    screen: () => renderScreen(out, width),
    vt: () => new Vt100Screen(width).write(out),
  };
}

/** Lets streams and the terminal's promises run. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

async function typeLine(h: Harness, keys: string, prompt = PROMPT, opts = {}): Promise<string | null> {
  const line = h.term.readLine(prompt, opts);
  h.type(keys);
  return line;
}

/** Only what a VT100 understands: printable text, CR, LF, BS, BEL and ESC [ K. */
function assertBasicVt100(output: string): void {
  const other = output.replace(/\x1b\[K/g, "").match(/[\x00-\x06\x09\x0b\x0c\x0e-\x1f\x7f]/g);
  assert.equal(other, null, `unexpected control bytes ${JSON.stringify(other)} in ${JSON.stringify(output)}`);
}

const COMMANDS = ["show", "set", "configure", "commit", "exit"];
/** A small command layer: completes the first word from COMMANDS, helps with the candidates. */
function commandHelp(calls: string[] = []): LineHelp {
  return {
    complete(line) {
      calls.push(`complete:${line}`);
      const word = line.split(" ").pop() ?? "";
      const head = line.slice(0, line.length - word.length);
      const matches = COMMANDS.filter((c) => c.startsWith(word));
      if (matches.length === 1) return { line: head + matches[0] + " " };
      let common = matches[0] ?? word;
      for (const m of matches) while (!m.startsWith(common)) common = common.slice(0, -1);
      return {
        ...(common.length > word.length ? { line: head + common } : {}),
        list: matches.map((m) => ({ word: m, help: `the ${m} command` })),
      };
    },
    help(line) {
      calls.push(`help:${line}`);
      return ["Possible completions:", ...COMMANDS.filter((c) => c.startsWith(line)).map((c) => `  ${c}`)];
    },
  };
}

describe("line editing", () => {
  it("returns the typed line on Enter, echoing it after the prompt", async () => {
    const h = harness();
    assert.equal(await typeLine(h, "show version\r"), "show version");
    assert.equal(h.screen(), "fs> show version");
    assert.equal(h.vt().row, 1);
    assertBasicVt100(h.out());
  });

  it("takes CR, LF and CR LF each as one Enter", async () => {
    const h = harness();
    h.type("a\r\nb\nc\r", "\n", "d\r");
    // The LF after a CR is not a second, empty line, even when it comes in the next read.
    assert.equal(await h.term.readLine(PROMPT), "a");
    assert.equal(await h.term.readLine(PROMPT), "b");
    assert.equal(await h.term.readLine(PROMPT), "c");
    assert.equal(await h.term.readLine(PROMPT), "d");
  });

  it("inserts printable characters at the cursor", async () => {
    const h = harness();
    assert.equal(await typeLine(h, `shw${KEYS.left}o${KEYS.end} ver\r`), "show ver");
    assert.equal(h.screen(), "fs> show ver");
  });

  it("deletes left with Backspace, both DEL (0x7f) and BS (0x08)", async () => {
    const h = harness();
    assert.equal(await typeLine(h, "shoxx\x7f\x08w\r"), "show");
    assert.equal(h.screen(), "fs> show");
    assert.equal(await typeLine(h, "\x7fa\r"), "a", "Backspace on an empty line does nothing");
  });

  it("moves home and end with Ctrl-A and Ctrl-E", async () => {
    const h = harness();
    assert.equal(await typeLine(h, `ow ver${KEYS["ctrl-a"]}sh${KEYS["ctrl-e"]}sion\r`), "show version");
    assert.equal(h.screen(), "fs> show version");
  });

  it("moves by character with Ctrl-B, Ctrl-F and the arrow keys", async () => {
    const h = harness();
    const keys = `sow${KEYS.left}${KEYS.left}h${KEYS.right}${KEYS.right} vrsion${KEYS["ctrl-b"].repeat(5)}e${KEYS["ctrl-f"]}X\r`;
    assert.equal(await typeLine(h, keys), "show verXsion");
    assert.equal(h.screen(), "fs> show verXsion");
  });

  it("moves with Home, End and Delete in their VT220 and xterm spellings", async () => {
    const h = harness();
    assert.equal(await typeLine(h, "bcx\x1b[1~a\x1b[4~\x7f\x1b[H\x1b[3~A\x1bOF!\r"), "Abc!");
  });

  it("kills to the end with Ctrl-K, the whole line with Ctrl-U, a word with Ctrl-W; Ctrl-Y yanks", async () => {
    const h = harness();
    assert.equal(await typeLine(h, `show version${KEYS.left.repeat(7)}${KEYS["ctrl-k"]}\r`), "show ");
    assert.equal(await typeLine(h, `show version${KEYS["ctrl-u"]}exit\r`), "exit");
    assert.equal(await typeLine(h, `set system  host${KEYS["ctrl-w"]}\r`), "set system  ");
    assert.equal(await typeLine(h, `set system host${KEYS["ctrl-w"]}${KEYS["ctrl-w"]}${KEYS["ctrl-w"]}\r`), "");
    assert.equal(await typeLine(h, `a b${KEYS["ctrl-w"]}${KEYS["ctrl-a"]}${KEYS["ctrl-y"]} \r`), "b a ");
    const rows = h.screen().split("\n");
    assert.deepEqual(rows, ["fs> show", "fs> exit", "fs> set system", "fs>", "fs> b a"]);
  });

  it("deletes the character under the cursor with Ctrl-D, and reads end of input on an empty line", async () => {
    const h = harness();
    assert.equal(await typeLine(h, `shoxw${KEYS.left.repeat(2)}${KEYS["ctrl-d"]}\r`), "show");
    assert.equal(await typeLine(h, `x${KEYS["ctrl-d"]}\r`), "x", "Ctrl-D at the end of a line does nothing");
    assert.equal(await typeLine(h, KEYS["ctrl-d"]), null);
    assert.equal(await typeLine(h, `ab${KEYS["ctrl-u"]}${KEYS["ctrl-d"]}`), null);
  });

  it("abandons the line on Ctrl-C, printing ^C", async () => {
    const h = harness();
    assert.equal(await typeLine(h, `show ver${KEYS.left.repeat(3)}${KEYS["ctrl-c"]}`), "");
    assert.equal(await typeLine(h, "exit\r"), "exit");
    assert.equal(h.screen(), "fs> show ver^C\nfs> exit");
  });

  it("returns null when the input ends or the terminal is closed", async () => {
    const h = harness();
    const line = h.term.readLine(PROMPT);
    h.type("half a line");
    h.input.end();
    assert.equal(await line, null);
    const h2 = harness();
    const line2 = h2.term.readLine(PROMPT);
    h2.term.close();
    assert.equal(await line2, null);
    assert.equal(await h2.term.readLine(PROMPT), null);
  });

  it("keeps keys typed before the prompt and edits them at the next readLine", async () => {
    const h = harness();
    h.type("show\rexit\r");
    await settle();
    assert.equal(await h.term.readLine(PROMPT), "show");
    assert.equal(await h.term.readLine(PROMPT), "exit");
    assert.equal(h.screen(), "fs> show\nfs> exit");
  });

  it("shows the line as held, cursor in place, through a long run of random edits", async () => {
    // A deterministic walk over every editing key, checked against a model after each key.
    const h = harness({ width: 40 });
    const line = h.term.readLine(PROMPT);
    let text = "";
    let cursor = 0;
    let seed = 7;
    const rand = (n: number): number => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return (seed >>> 8) % n;
    };
    let scrolledSteps = 0;
    const ops = ["insert", "insert", "insert", "insert", "insert", "insert", "space", "bs", "left", "right", "home", "end", "kill-end", "kill-word", "delete"];
    for (let step = 0; step < 600; step++) {
      const op = ops[rand(ops.length)];
      let keys = "";
      if (op === "insert" || op === "space") {
        const ch = op === "space" ? " " : "abcdefghijklmnopqrstuvwxyz0123456789-/."[rand(39)];
        keys = ch;
        text = text.slice(0, cursor) + ch + text.slice(cursor);
        cursor++;
      } else if (op === "bs") {
        keys = KEYS.backspace;
        if (cursor > 0) (text = text.slice(0, cursor - 1) + text.slice(cursor)), cursor--;
      } else if (op === "left") {
        keys = KEYS.left;
        cursor = Math.max(0, cursor - 1);
      } else if (op === "right") {
        keys = KEYS.right;
        cursor = Math.min(text.length, cursor + 1);
      } else if (op === "home") {
        keys = KEYS["ctrl-a"];
        cursor = 0;
      } else if (op === "end") {
        keys = KEYS["ctrl-e"];
        cursor = text.length;
      } else if (op === "kill-end" && rand(4) === 0) {
        keys = KEYS["ctrl-k"];
        text = text.slice(0, cursor);
      } else if (op === "kill-word" && rand(4) === 0) {
        keys = KEYS["ctrl-w"];
        let i = cursor;
        while (i > 0 && text[i - 1] === " ") i--;
        while (i > 0 && text[i - 1] !== " ") i--;
        text = text.slice(0, i) + text.slice(cursor);
        cursor = i;
      } else if (op === "delete") {
        keys = KEYS.delete;
        text = text.slice(0, cursor) + text.slice(cursor + 1);
      }
      h.type(keys);
      await settle();
      const vt = h.vt();
      const row = vt.cursorRow();
      assert.equal(vt.row, 0, "the line never wraps");
      assert.ok(row.length <= 39, `row fits in width - 1: ${JSON.stringify(row)}`);
      assert.ok(row.startsWith(PROMPT.trimEnd()));
      const visible = row.slice(PROMPT.length);
      if (PROMPT.length + text.length <= 39) {
        assert.equal(visible, text.trimEnd(), `step ${step} (${op})`);
        assert.equal(vt.col, PROMPT.length + cursor, `cursor at step ${step} (${op})`);
      } else {
        // Scrolled: "$" marks hidden text; the rest is a window onto the line around the cursor.
        scrolledSteps++;
        const left = visible.startsWith("$") ? 1 : 0;
        const body = visible.slice(left).replace(/\$$/, "");
        const start = cursor - (vt.col - PROMPT.length - left);
        assert.ok(start >= 0 && start <= cursor, `cursor in view at step ${step}`);
        assert.equal(text.slice(start, start + body.length).trimEnd(), body.trimEnd(), `window at step ${step}`);
        assert.equal(left === 1, start > 0, `left marker at step ${step}`);
      }
    }
    h.type("\r");
    assert.equal(await line, text);
    assertBasicVt100(h.out());
    assert.ok(scrolledSteps > 50, `the walk went past the width (${scrolledSteps} steps scrolled)`);
  });
});

describe("long lines", () => {
  it("scrolls a line longer than the width horizontally, marking hidden text with $", async () => {
    const h = harness({ width: 30 });
    const long = "set services web virtual-address 192.0.2.10 port 443";
    const line = h.term.readLine(PROMPT);
    h.type(long);
    await settle();
    let row = h.vt().cursorRow();
    assert.ok(row.length <= 29, row);
    assert.match(row, /^fs> \$/);
    assert.ok(row.endsWith("port 443"), row);
    h.type(KEYS["ctrl-a"]);
    await settle();
    row = h.vt().cursorRow();
    assert.equal(row, "fs> set services web virtual$", "25 columns: the screen's 30, less the last and the prompt");
    assert.equal(h.vt().col, PROMPT.length);
    h.type("\r");
    assert.equal(await line, long);
    assertBasicVt100(h.out());
  });

  it("cuts a prompt too long for the screen on its left", async () => {
    const h = harness({ width: 30 });
    const line = h.term.readLine("operator@a-very-long-hostname-indeed# ");
    h.type("exit\r");
    assert.equal(await line, "exit");
    const row = h.screen();
    assert.ok(row.length <= 29 && row.endsWith("indeed# exit"), row);
  });
});

describe("history", () => {
  it("walks the caller's history with up/down and Ctrl-P/Ctrl-N, keeping the line being typed", async () => {
    const h = harness();
    const history = ["show version", "show interfaces"];
    const line = h.term.readLine(PROMPT, { history });
    h.type(`conf${KEYS.up}`);
    await settle();
    assert.equal(h.vt().cursorRow(), "fs> show interfaces");
    h.type(`${KEYS["ctrl-p"]}${KEYS.up}`); // the second up rings the bell at the oldest entry
    await settle();
    assert.equal(h.vt().cursorRow(), "fs> show version");
    h.type(`${KEYS.down}${KEYS["ctrl-n"]}`);
    await settle();
    assert.equal(h.vt().cursorRow(), "fs> conf", "back to the line being typed");
    h.type(`${KEYS.up}${KEYS.up} detail\r`);
    assert.equal(await line, "show version detail");
    assert.deepEqual(history, ["show version", "show interfaces", "show version detail"]);
    assert.ok(h.out().includes("\x07"));
  });

  it("appends non-empty lines, skips a repeat of the last one, and keeps the last 200", async () => {
    const h = harness();
    const history: string[] = [];
    for (const l of ["a", "a", "", "   ", "b", "a"]) await typeLine(h, l + "\r", PROMPT, { history });
    assert.deepEqual(history, ["a", "b", "a"]);
    const full = Array.from({ length: HISTORY_MAX }, (_, i) => `cmd ${i}`);
    await typeLine(h, "newest\r", PROMPT, { history: full });
    assert.equal(full.length, HISTORY_MAX);
    assert.equal(full[0], "cmd 1");
    assert.equal(full[HISTORY_MAX - 1], "newest");
  });

  it("keeps secret lines out of history and does not walk it", async () => {
    const h = harness();
    const history = ["show version"];
    assert.equal(await typeLine(h, `pw${KEYS.up}\r`, "Password: ", { secret: true, history }), "pw");
    assert.deepEqual(history, ["show version"]);
  });
});

describe("Tab completion", () => {
  it("extends the word at the cursor when there is one candidate", async () => {
    const h = harness();
    const calls: string[] = [];
    assert.equal(await typeLine(h, "sh\tversion\r", PROMPT, { help: commandHelp(calls) }), "show version");
    assert.deepEqual(calls, ["complete:sh"]);
    assert.equal(h.screen(), "fs> show version");
  });

  it("completes the text before the cursor and keeps what follows it", async () => {
    const h = harness();
    const calls: string[] = [];
    const keys = `sh version${KEYS.left.repeat(8)}\tX\r`;
    assert.equal(await typeLine(h, keys, PROMPT, { help: commandHelp(calls) }), "show X version");
    assert.deepEqual(calls, ["complete:sh"]);
    assert.equal(h.screen(), "fs> show X version");
  });

  it("lists several candidates with their help, then redraws the prompt and the line", async () => {
    const h = harness();
    const line = h.term.readLine(PROMPT, { help: commandHelp() });
    h.type("s\t");
    await settle();
    assert.equal(
      h.screen(),
      ["fs> s", "Possible completions:", "  show  the show command", "  set   the set command", "fs> s"].join("\n"),
    );
    h.type("et\r");
    assert.equal(await line, "set");
  });

  it("extends to the common prefix and lists when that is still ambiguous", async () => {
    const h = harness();
    const line = h.term.readLine(PROMPT, { help: commandHelp() });
    h.type("c\t");
    await settle();
    assert.match(h.screen(), /^fs> co\nPossible completions:\n  configure .*\n  commit .*\nfs> co$/);
    h.type("mm\t\r");
    assert.equal(await line, "commit ");
  });

  it("rings the bell when nothing completes, and ignores Tab without a LineHelp", async () => {
    const h = harness();
    assert.equal(await typeLine(h, "xyz\t\r", PROMPT, { help: commandHelp() }), "xyz");
    assert.ok(h.out().includes("\x07"));
    assert.equal(await typeLine(h, "a\tb\r"), "ab");
  });

  it("lays out candidates without help in columns", async () => {
    const h = harness({ width: 40 });
    const help: LineHelp = {
      complete: () => ({ list: ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot"].map((word) => ({ word, help: "" })) }),
      help: () => [],
    };
    const line = h.term.readLine(PROMPT, { help });
    h.type("\t\r");
    await line;
    assert.equal(
      h.screen(),
      ["fs>", "Possible completions:", "  alpha    bravo    charlie  delta", "  echo     foxtrot", "fs>"].join("\n"),
    );
  });
});

describe("? help", () => {
  it("prints help for the text before the cursor and redraws the line as it was", async () => {
    const h = harness();
    const calls: string[] = [];
    const line = h.term.readLine(PROMPT, { help: commandHelp(calls) });
    h.type(`sx${KEYS.left}?`);
    await settle();
    assert.deepEqual(calls, ["help:s"]);
    assert.equal(h.screen(), ["fs> sx?", "Possible completions:", "  show", "  set", "fs> sx"].join("\n"));
    assert.equal(h.vt().col, PROMPT.length + 1, "cursor back where it was");
    h.type("et\r");
    assert.equal(await line, "setx", "the ? itself is not inserted");
  });

  it("inserts ? as text without a LineHelp, inside quotes, after Ctrl-V, and in secret mode", async () => {
    const h = harness();
    const calls: string[] = [];
    const help = commandHelp(calls);
    assert.equal(await typeLine(h, "why?\r"), "why?");
    assert.equal(await typeLine(h, 'set description "why?"\r', PROMPT, { help }), 'set description "why?"');
    assert.equal(await typeLine(h, `a${KEYS["ctrl-v"]}?\r`, PROMPT, { help }), "a?");
    assert.equal(await typeLine(h, "p?w\r", "Password: ", { secret: true, help }), "p?w");
    assert.deepEqual(calls, []);
  });

  it("survives a help function that throws", async () => {
    const h = harness();
    const help: LineHelp = {
      complete: () => {
        throw new Error("no tree");
      },
      help: () => {
        throw new Error("no tree");
      },
    };
    assert.equal(await typeLine(h, "a?\tb\r", PROMPT, { help }), "ab");
    assert.match(h.screen(), /% help failed: no tree/);
    assert.match(h.screen(), /% completion failed: no tree/);
  });
});

describe("secret input", () => {
  it("echoes nothing but the prompt and the end of the row", async () => {
    const h = harness();
    assert.equal(await typeLine(h, `hunter2x${KEYS.backspace}${KEYS["ctrl-a"]}!\r`, "Password: ", { secret: true }), "!hunter2");
    assert.equal(h.out(), "Password: \r\n");
  });

  it("does not offer a secret to Ctrl-Y", async () => {
    const h = harness();
    assert.equal(await typeLine(h, `secret${KEYS["ctrl-u"]}\r`, "Password: ", { secret: true }), "");
    assert.equal(await typeLine(h, `${KEYS["ctrl-y"]}x\r`), "x");
  });
});

describe("input in pieces", () => {
  it("decodes escape sequences split across reads", async () => {
    const h = harness();
    const line = h.term.readLine(PROMPT);
    h.type("ac", "\x1b", "[", "D", "b\x1b", "[D\x1b[", "Dx\x1bO", "F!\r");
    assert.equal(await line, "xabc!");
  });

  it("decodes UTF-8 split across reads, and moves by character", async () => {
    const h = harness();
    const e = Buffer.from("é", "utf8");
    const line = h.term.readLine(PROMPT);
    h.type("caf", e.subarray(0, 1), e.subarray(1), KEYS.left, Buffer.from([0xe2, 0x82]), Buffer.from([0xac]), "\r");
    assert.equal(await line, "caf€é");
    assert.equal(h.screen(), "fs> caf€é");
  });

  it("feeds one byte at a time as well as all at once", async () => {
    const keys = Buffer.from(`shw${KEYS.left}o${KEYS.end} vers${KEYS["ctrl-w"]}version ☃\r`, "utf8");
    for (const pieces of [[keys], Array.from(keys, (b) => Buffer.from([b]))]) {
      const h = harness();
      const line = h.term.readLine(PROMPT);
      for (const p of pieces) {
        h.type(p);
        await new Promise((r) => setImmediate(r));
      }
      assert.equal(await line, "show version ☃");
    }
  });

  it("moves over wide characters by two columns and drops invalid UTF-8", async () => {
    const h = harness();
    const line = h.term.readLine(PROMPT);
    h.type("日本", Buffer.from([0xff, 0xc3]), "(");
    await settle();
    assert.equal(h.take(), "fs> 日本(");
    h.type(KEYS.left, KEYS.left);
    await settle();
    assert.equal(h.take(), "\b\b\b", "one column for (, two for 本");
    h.type(KEYS.backspace);
    await settle();
    assert.equal(h.take(), "\b\b本(\x1b[K\b\b\b");
    h.type("\r");
    assert.equal(await line, "本(");
  });

  it("discards type-ahead on Ctrl-C when nothing reads, and tells the interrupt handler", async () => {
    const h = harness();
    let interrupts = 0;
    h.term.onInterrupt(() => interrupts++);
    h.type("show config", KEYS["ctrl-c"], "exit\r");
    await settle();
    assert.equal(interrupts, 1);
    assert.equal(await h.term.readLine(PROMPT), "exit");
  });
});

describe("output", () => {
  it("prints with CRLF and ends on a new row", async () => {
    const h = harness();
    await h.term.print("one\ntwo");
    await h.term.print("three\n");
    await h.term.print("");
    h.term.write("raw\n");
    assert.equal(h.out(), "one\r\ntwo\r\nthree\r\n\r\nraw\n");
  });

  it("pages long output with --More--: space for a page, Enter for a line, q to stop", async () => {
    const h = harness({ height: 5 });
    const lines = Array.from({ length: 20 }, (_, i) => `line ${i + 1}`);
    const done = h.term.print(lines.join("\n"));
    await settle();
    assert.equal(h.take(), "line 1\r\nline 2\r\nline 3\r\nline 4\r\n--More--");
    h.type(" ");
    await settle();
    assert.equal(h.take(), "\b".repeat(8) + "\x1b[Kline 5\r\nline 6\r\nline 7\r\nline 8\r\n--More--");
    h.type("\r");
    await settle();
    assert.equal(h.take(), "\b".repeat(8) + "\x1b[Kline 9\r\n--More--");
    h.type("x"); // not an answer: still waiting
    await settle();
    assert.equal(h.take(), "");
    h.type("q");
    await done;
    assert.equal(h.take(), "\b".repeat(8) + "\x1b[K");
    assert.equal(h.screen().split("\n").at(-1), "line 9");
  });

  it("counts rows since the operator last entered a line, across prints, and wrapped rows", async () => {
    const h = harness({ height: 4, width: 20 });
    await h.term.print("a");
    await h.term.print("b");
    const third = h.term.print("x".repeat(30)); // two rows: does not fit in the one left
    await settle();
    assert.ok(h.take().endsWith("b\r\n--More--"));
    h.type(" ");
    await third;
    await typeLine(h, "\r");
    h.take();
    await h.term.print("c\nd\ne"); // a new command: a full page again
    assert.equal(h.take(), "c\r\nd\r\ne\r\n");
  });

  it("does not page with height 0", async () => {
    const h = harness({ height: 0 });
    await h.term.print(Array.from({ length: 100 }, (_, i) => String(i)).join("\n"));
    assert.ok(!h.out().includes("--More--"));
  });

  it("drops the rest of a command's output after q or Ctrl-C, until the next line is read", async () => {
    const h = harness({ height: 3 });
    const first = h.term.print("1\n2\n3\n4");
    await settle();
    h.type(KEYS["ctrl-c"]);
    await first;
    await h.term.print("more of the same command");
    await typeLine(h, "next\r");
    await h.term.print("5");
    assert.equal(h.screen(), "1\n2\nfs> next\n5");
  });

  it("stops paging at the end of input", async () => {
    const h = harness({ height: 3 });
    const printed = h.term.print("1\n2\n3\n4");
    await settle();
    h.input.end();
    await printed;
    assert.equal(h.screen(), "1\n2");
  });

  it("stops a print being written when Ctrl-C arrives with nothing reading", async () => {
    const input = new PassThrough();
    const output = new PassThrough({ highWaterMark: 64 }); // a slow line: writes wait for drain
    const term = new Terminal({ input, output }, { height: 0 });
    const printed = term.print(Array.from({ length: 2000 }, (_, i) => `row ${i}`).join("\n"));
    let out = "";
    output.on("data", (d: Buffer) => {
      if (out === "") input.write(KEYS["ctrl-c"]); // as soon as output starts
      out += d.toString();
    });
    await printed;
    assert.ok(out.startsWith("row 0\r\n"));
    assert.ok(!out.includes("row 1999"), "the rest was not printed");
  });

  it("prints a notice that arrives while a line is read above it, then redraws the line", async () => {
    const h = harness();
    const line = h.term.readLine(PROMPT);
    h.type(`show ver${KEYS.left}`);
    await settle();
    await h.term.print("commit confirmed will be rolled back in 1 minute");
    const vt = h.vt();
    assert.equal(vt.text(), "commit confirmed will be rolled back in 1 minute\nfs> show ver");
    assert.equal(vt.col, PROMPT.length + 7);
    h.type("\r");
    assert.equal(await line, "show ver");
  });

  it("waits for a print still paging before reading a line", async () => {
    const h = harness({ height: 3 });
    const printed = h.term.print("1\n2\n3");
    const line = h.term.readLine(PROMPT);
    await settle();
    h.type(" exit\r");
    await printed;
    assert.equal(await line, "exit");
    assert.equal(h.screen(), "1\n2\n3\nfs> exit");
  });

  it("refuses a second readLine while one is in progress", async () => {
    const h = harness();
    const first = h.term.readLine(PROMPT);
    await settle();
    await assert.rejects(h.term.readLine(PROMPT), /already being read/);
    h.type("x\r");
    assert.equal(await first, "x");
  });
});
