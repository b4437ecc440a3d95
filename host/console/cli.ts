// The command-line grammar: a tree of keywords, arguments and options, walked the same way to run
// a command, to complete a word (Tab) and to list what may come next (?). Keywords may be
// abbreviated to any unique prefix, as on Junos and IOS. Errors name the offending word's index so
// that the console can point at it. Configuration paths (`set ...`, `delete ...`) are handed to a
// path grammar that the command tree does not know.

export interface Token {
  text: string;
  start: number;
}

/** Splits a line into words; double quotes keep spaces, backslash escapes inside quotes. */
export function tokenize(line: string): { tokens: Token[]; trailingSpace: boolean; unterminated: boolean } {
  const tokens: Token[] = [];
  let i = 0;
  let unterminated = false;
  while (i < line.length) {
    while (i < line.length && line[i] === " ") i++;
    if (i >= line.length) break;
    const start = i;
    let text = "";
    if (line[i] === "|") {
      tokens.push({ text: "|", start });
      i++;
      continue;
    }
    while (i < line.length && line[i] !== " " && line[i] !== "|") {
      if (line[i] === '"') {
        i++;
        while (i < line.length && line[i] !== '"') {
          if (line[i] === "\\" && i + 1 < line.length) i++;
          text += line[i++];
        }
        if (i >= line.length) unterminated = true;
        else i++;
      } else {
        text += line[i++];
      }
    }
    tokens.push({ text, start });
  }
  return { tokens, trailingSpace: line.length > 0 && line.endsWith(" "), unterminated };
}

export interface ArgSpec {
  name: string; // shown as <name>
  help: string;
  /** Known values, for completion (and checked when strict). */
  values?: () => string[];
  strict?: boolean;
  check?: (v: string) => string | undefined; // undefined: fine; otherwise the expected form
}

export interface Node<C> {
  help: string;
  children?: Record<string, Node<C>>;
  /** One positional argument at this point; parsing continues at `then` (or ends). */
  arg?: ArgSpec;
  then?: Node<C>;
  /** Options in any order after the node's words: a bare flag, or a flag with a value. */
  options?: Record<string, { help: string; arg?: ArgSpec }>;
  /** The remaining words (up to a pipe) are a configuration path. */
  path?: (words: string[], partial: string) => { word: string; help: string }[];
  /** Pipes allowed after this command: name -> help (an argument may follow a pipe name). */
  pipes?: Record<string, { help: string; arg?: ArgSpec }>;
  run?: (p: Parsed) => Promise<void> | void;
}

export interface Parsed {
  args: string[];
  options: Record<string, string | true>;
  path: string[];
  /** Index in the tokens of the first path word. */
  pathStart: number;
  pipes: { name: string; arg?: string }[];
  tokens: Token[];
}

export type ParseResult<C> = { ok: true; node: Node<C>; parsed: Parsed } | { ok: false; word: number; message: string };

function lookup<T>(table: Record<string, T>, word: string): { key: string; value: T } | { ambiguous: string[] } | undefined {
  if (word in table) return { key: word, value: table[word] };
  const hits = Object.keys(table).filter((k) => k.startsWith(word));
  if (hits.length === 1) return { key: hits[0], value: table[hits[0]] };
  if (hits.length > 1) return { ambiguous: hits };
  return undefined;
}

const expectList = (keys: string[]): string => (keys.length <= 12 ? keys.join(", ") : `${keys.slice(0, 12).join(", ")}, ...`);

/** Walks tokens through the tree. */
export function parse<C>(root: Node<C>, tokens: Token[]): ParseResult<C> {
  let node = root;
  const parsed: Parsed = { args: [], options: {}, path: [], pathStart: -1, pipes: [], tokens };
  let i = 0;
  const pipeAt = tokens.findIndex((t) => t.text === "|");
  const end = pipeAt < 0 ? tokens.length : pipeAt;
  for (; i < end; i++) {
    const w = tokens[i].text;
    if (node.path) {
      parsed.path = tokens.slice(i, end).map((t) => t.text);
      parsed.pathStart = i;
      i = end;
      break;
    }
    if (node.children) {
      const hit = lookup(node.children, w);
      if (hit && "key" in hit) {
        node = hit.value;
        continue;
      }
      if (hit && "ambiguous" in hit) return { ok: false, word: i, message: `"${w}" is ambiguous: ${hit.ambiguous.join(", ")}` };
      if (!node.arg && !node.options) return { ok: false, word: i, message: `unknown word "${w}": expected one of ${expectList(Object.keys(node.children))}` };
    }
    if (node.arg && !(node.options && lookup(node.options, w))) {
      const problem = checkArg(node.arg, w);
      if (problem) return { ok: false, word: i, message: problem };
      parsed.args.push(w);
      if (node.then) node = node.then;
      else if (!node.options) return i + 1 < end ? { ok: false, word: i + 1, message: `unexpected "${tokens[i + 1].text}": nothing may follow here` } : finishPipes(node, parsed, tokens, end);
      continue;
    }
    if (node.options) {
      const hit = lookup(node.options, w);
      if (!hit) return { ok: false, word: i, message: `unknown option "${w}": expected one of ${expectList(Object.keys(node.options))}` };
      if ("ambiguous" in hit) return { ok: false, word: i, message: `"${w}" is ambiguous: ${hit.ambiguous.join(", ")}` };
      if (hit.value.arg) {
        if (i + 1 >= end) return { ok: false, word: i + 1, message: `missing value after "${hit.key}": expected <${hit.value.arg.name}> (${hit.value.arg.help})` };
        const problem = checkArg(hit.value.arg, tokens[i + 1].text);
        if (problem) return { ok: false, word: i + 1, message: problem };
        parsed.options[hit.key] = tokens[++i].text;
      } else {
        parsed.options[hit.key] = true;
      }
      continue;
    }
    return { ok: false, word: i, message: `unexpected "${w}": nothing may follow here` };
  }
  if (!node.run && !node.path) {
    const next = node.children ? `one of ${expectList(Object.keys(node.children))}` : node.arg ? `<${node.arg.name}> (${node.arg.help})` : "more";
    return { ok: false, word: end, message: `incomplete command: expected ${next}` };
  }
  if (node.arg && !node.then && parsed.args.length === 0 && !node.options) {
    return { ok: false, word: end, message: `missing <${node.arg.name}>: expected ${node.arg.help}` };
  }
  return finishPipes(node, parsed, tokens, end);
}

function checkArg(a: ArgSpec, w: string): string | undefined {
  if (a.strict && a.values && !a.values().includes(w)) return `"${w}": expected one of ${expectList(a.values())}`;
  const p = a.check?.(w);
  return p ? `"${w}": expected ${p}` : undefined;
}

function finishPipes<C>(node: Node<C>, parsed: Parsed, tokens: Token[], at: number): ParseResult<C> {
  for (let i = at; i < tokens.length; i++) {
    if (tokens[i].text !== "|") return { ok: false, word: i, message: `unexpected "${tokens[i].text}": expected |` };
    const name = tokens[i + 1];
    if (!node.pipes) return { ok: false, word: i, message: "this command takes no | filters" };
    if (!name) return { ok: false, word: i + 1, message: `missing filter after |: expected one of ${Object.keys(node.pipes).join(", ")}` };
    const hit = lookup(node.pipes, name.text);
    if (!hit || "ambiguous" in hit) return { ok: false, word: i + 1, message: `unknown filter "${name.text}": expected one of ${Object.keys(node.pipes).join(", ")}` };
    i++;
    let arg: string | undefined;
    if (hit.value.arg) {
      const v = tokens[i + 1];
      if (!v || v.text === "|") return { ok: false, word: i + 1, message: `missing <${hit.value.arg.name}> after "${hit.key}": expected ${hit.value.arg.help}` };
      const problem = checkArg(hit.value.arg, v.text);
      if (problem) return { ok: false, word: i + 1, message: problem };
      arg = v.text;
      i++;
    }
    parsed.pipes.push({ name: hit.key, arg });
  }
  return { ok: true, node, parsed };
}

export interface Choice {
  word: string;
  help: string;
}

/** What may follow the complete words of tokens (the partial word filters). */
export function choices<C>(root: Node<C>, tokens: Token[], partial: string): Choice[] {
  let node = root;
  const pipeAt = tokens.findIndex((t) => t.text === "|");
  if (pipeAt >= 0) {
    const r = parse(root, tokens.slice(0, pipeAt));
    if (!r.ok || !r.node.pipes) return [];
    const after = tokens.slice(pipeAt + 1);
    if (after.length === 0) return filter(Object.entries(r.node.pipes).map(([word, v]) => ({ word, help: v.help })), partial);
    const pipe = lookup(r.node.pipes, after[0].text);
    if (pipe && "key" in pipe && pipe.value.arg && after.length === 1) return argChoices(pipe.value.arg, partial);
    return [];
  }
  const seenOptions = new Set<string>();
  for (let i = 0; i < tokens.length; i++) {
    const w = tokens[i].text;
    if (node.path) return filter(node.path(tokens.slice(i).map((t) => t.text), partial), partial, true);
    const kid = node.children && lookup(node.children, w);
    if (kid && "key" in kid) {
      node = kid.value;
      continue;
    }
    const opt = node.options && lookup(node.options, w);
    if (opt && "key" in opt) {
      seenOptions.add(opt.key);
      if (opt.value.arg) {
        if (i + 1 >= tokens.length) return argChoices(opt.value.arg, partial);
        i++;
      }
      continue;
    }
    if (node.arg) {
      if (node.then) node = node.then;
      continue;
    }
    return [];
  }
  if (node.path) return filter(node.path([], partial), partial, true);
  const out: Choice[] = [];
  for (const [word, n] of Object.entries(node.children ?? {})) out.push({ word, help: n.help });
  if (node.arg) out.push(...argChoices(node.arg, partial));
  for (const [word, o] of Object.entries(node.options ?? {})) if (!seenOptions.has(word)) out.push({ word, help: o.help });
  if (node.run && !partial) out.push({ word: "<[Enter]>", help: "Execute this command" });
  if (node.pipes && node.run && !partial) out.push({ word: "|", help: "Pipe through a command" });
  return filter(out, partial);
}

function argChoices(a: ArgSpec, partial: string): Choice[] {
  const known = a.values?.() ?? [];
  const list = known.map((v) => ({ word: v, help: a.help }));
  if (!a.strict) list.unshift({ word: `<${a.name}>`, help: a.help });
  return filter(list, partial);
}

function filter(list: Choice[], partial: string, pathsDone = false): Choice[] {
  if (!partial) return list;
  return list.filter((c) => c.word.startsWith(partial) || (c.word.startsWith("<") && !pathsDone));
}

/** Tab: extends the last word to the longest common prefix of the choices; lists them if several. */
export function completeLine<C>(root: Node<C>, line: string): { line?: string; list?: Choice[] } {
  const { tokens, trailingSpace } = tokenize(line);
  const partial = trailingSpace || tokens.length === 0 ? "" : tokens[tokens.length - 1].text;
  const before = trailingSpace || tokens.length === 0 ? tokens : tokens.slice(0, -1);
  const all = choices(root, before, partial);
  const words = all.filter((c) => !c.word.startsWith("<") && c.word !== "|");
  if (words.length === 1 && words[0].word !== partial) {
    const base = line.slice(0, line.length - partial.length);
    return { line: `${base}${quote(words[0].word)} ` };
  }
  if (words.length > 1) {
    const common = commonPrefix(words.map((c) => c.word));
    if (common.length > partial.length) return { line: `${line.slice(0, line.length - partial.length)}${common}` };
  }
  return all.length ? { list: all } : {};
}

function quote(w: string): string {
  return /[\s"|]/.test(w) ? `"${w.replace(/"/g, '\\"')}"` : w;
}

function commonPrefix(words: string[]): string {
  let p = words[0] ?? "";
  for (const w of words) while (!w.startsWith(p)) p = p.slice(0, -1);
  return p;
}

/** '?': the choices at the end of line, formatted in two columns within width. */
export function helpLines<C>(root: Node<C>, line: string, width = 80): string[] {
  const { tokens, trailingSpace } = tokenize(line);
  const partial = trailingSpace || tokens.length === 0 ? "" : tokens[tokens.length - 1].text;
  const before = trailingSpace || tokens.length === 0 ? tokens : tokens.slice(0, -1);
  const list = choices(root, before, partial);
  if (!list.length) return ["No completions: the words so far do not lead anywhere (Enter shows why)"];
  const left = Math.min(24, Math.max(...list.map((c) => c.word.length)) + 2);
  return ["Possible completions:", ...list.map((c) => `  ${c.word.padEnd(left)}${c.help}`.slice(0, width))];
}
