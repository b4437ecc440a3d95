// The configuration as `set` lines: one line per leaf value, in the order of the schema tree,
// list entries in their own order (an entry with nothing set under it gets a line of its own).
// Words holding spaces, quotes or control characters are written as JSON strings, which the
// tokenizer reads back, so any value survives the trip through text.
import type { ConfigInput } from "./schema.js";
import { CONFIG_TREE, entries, isObj, keyOf, type SchemaNode } from "./tree.js";

const PLAIN = /^[^\s"'\\;{}[\]#\x00-\x1f\x7f]+$/;

/** A word as typed: bare when it can be, else a double-quoted JSON string. */
export function quote(word: string): string {
  return PLAIN.test(word) ? word : JSON.stringify(word);
}

/** "set" plus the words, quoted where needed. */
export function formatCommand(command: string, words: readonly string[]): string {
  return [command, ...words.map(quote)].join(" ");
}

export type Tokens = { ok: true; words: string[] } | { ok: false; word: number; message: string };

/** Splits a line into words: blanks separate, "double quotes" hold blanks (JSON escapes inside). */
export function tokenize(line: string): Tokens {
  const words: string[] = [];
  let i = 0;
  for (;;) {
    while (i < line.length && /\s/.test(line[i])) i++;
    if (i >= line.length) return { ok: true, words };
    if (line[i] === '"') {
      let j = i + 1;
      while (j < line.length && line[j] !== '"') j += line[j] === "\\" ? 2 : 1;
      if (j >= line.length) return { ok: false, word: words.length, message: "unterminated quote: expected a closing \"" };
      try {
        words.push(JSON.parse(line.slice(i, j + 1)) as string);
      } catch {
        return { ok: false, word: words.length, message: 'bad escape in quoted word: expected \\" \\\\ \\n \\t \\uXXXX' };
      }
      i = j + 1;
      if (i < line.length && !/\s/.test(line[i])) return { ok: false, word: words.length, message: "expected a blank after the closing quote" };
    } else {
      const start = i;
      while (i < line.length && !/\s/.test(line[i])) i++;
      words.push(line.slice(start, i));
    }
  }
}

/** The word paths (without "set") of every value under a node, prefixed by `prefix`. */
export function setWords(node: SchemaNode, v: unknown, prefix: string[]): string[][] {
  switch (node.kind) {
    case "leaf":
      return v === undefined ? [] : [[...prefix, node.word, node.type.format(v)]];
    case "leaf-list":
      return Array.isArray(v) ? v.map((x) => [...prefix, node.word, node.type.format(x)]) : [];
    case "container": {
      if (!isObj(v)) return [];
      const here = node === CONFIG_TREE ? prefix : [...prefix, node.word];
      return node.children.flatMap((c) => setWords(c, v[c.key], here));
    }
    case "list":
      return entries(v).flatMap((e) => entryWords(node, e, prefix));
  }
}

/** The word paths of one list entry: its leaves, or the bare entry when nothing is set under it. */
export function entryWords(node: SchemaNode & { kind: "list" }, e: Record<string, unknown>, prefix: string[]): string[][] {
  const at = [...prefix, node.word, node.keyType.format(keyOf(node, e))];
  const lines = node.children.flatMap((c) => setWords(c, e[c.key], at));
  return lines.length ? lines : [at];
}

/** The configuration as `set` commands that rebuild it from nothing. */
export function toSetCommands(input: ConfigInput): string[] {
  return setWords(CONFIG_TREE, input, []).map((w) => formatCommand("set", w));
}
