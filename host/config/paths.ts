// Configuration paths on the console: `set` and `delete` applied to a candidate ConfigInput, and
// what can be typed next (completion and `?` help). Words are those after the command word:
// setPath(c, ["services", "web", "vip", "10.0.0.100"]).
//
// Edits are made in place, and only after the whole command has been read: a command refused at
// any word changes nothing. Each value is checked on its own; references and rules between values
// are checked by validate() at commit, so a candidate may be incomplete while it is edited.
// List entries keep the order they were created in (new ones are appended).
//
// This module is the public face of the path layer: the set form, compare and show configuration
// live in their own files and are exported from here too.
import type { ConfigInput } from "./schema.js";
import {
  CONFIG_TREE, entries, isObj, keyOf, childByWord, secret, emptyConfig, normalizeInput,
  type Completion, type ContainerNode, type ListNode, type Obj, type SchemaNode, type ValueType,
} from "./tree.js";
import { tokenize } from "./set-form.js";

export { toSetCommands, tokenize, quote, formatCommand } from "./set-form.js";
export { compare } from "./diff.js";
export { renderConfig } from "./render.js";
export { CONFIG_TREE, normalizeInput, emptyConfig, kebab, type Completion, type SchemaNode } from "./tree.js";

/** `word` is the index of the offending word (words.length when a word is missing). */
export type PathResult = { ok: true } | { ok: false; word: number; message: string };

/** One step of a parsed path: a node, with the list key or the value that followed it. */
interface Step {
  node: SchemaNode;
  /** Index of the node's own word. */
  at: number;
  /** A list's entry name (or key value, for lists keyed by another field). */
  key?: string | number;
  /** A leaf's or leaf-list's value. */
  value?: unknown;
}

type Parsed = { ok: true; steps: Step[] } | { ok: false; word: number; message: string };

const fail = (word: number, message: string): { ok: false; word: number; message: string } => ({ ok: false, word, message });

function expectedChildren(node: ContainerNode | ListNode): string {
  return `one of ${node.children.map((c) => c.word).join(", ")}`;
}

/** Reads words against the tree (no configuration needed): the nodes, keys and values named. */
function parse(words: readonly string[]): Parsed {
  const steps: Step[] = [];
  let at: ContainerNode | ListNode = CONFIG_TREE;
  for (let i = 0; i < words.length; i++) {
    const node = childByWord(at, words[i]);
    if (!node) return fail(i, `unknown word "${words[i]}": expected ${expectedChildren(at)}`);
    const step: Step = { node, at: i };
    steps.push(step);
    if (node.kind === "container") {
      at = node;
      continue;
    }
    if (++i >= words.length) break;
    if (node.kind === "list") {
      const key = node.keyType.parse(words[i]);
      if (key === undefined) return fail(i, `bad ${node.noun} name "${words[i]}": expected ${node.keyType.expected}`);
      step.key = key as string | number;
      at = node;
      continue;
    }
    const value = node.type.parse(words[i]);
    if (value === undefined) return fail(i, `bad value ${node.type === secret ? "" : `"${words[i]}" `}for ${node.word}: expected ${node.type.expected}`);
    step.value = value;
    if (i + 1 < words.length) return fail(i + 1, `unexpected word "${words[i + 1]}": expected the end of the command (${node.word} takes one value)`);
  }
  return { ok: true, steps };
}

/** Whether a parsed path names something complete enough to set, else what is missing. */
function requireComplete(steps: Step[], words: readonly string[]): PathResult {
  const last = steps[steps.length - 1];
  const end = words.length;
  if (!last) return fail(end, `missing word: expected ${expectedChildren(CONFIG_TREE)}`);
  switch (last.node.kind) {
    case "container":
      return fail(end, `missing word: expected ${expectedChildren(last.node)}`);
    case "list":
      return last.key === undefined ? fail(end, `missing ${last.node.noun} name: expected ${last.node.keyType.expected}`) : { ok: true };
    default:
      return last.value === undefined ? fail(end, `missing value: expected ${last.node.type.expected}`) : { ok: true };
  }
}

/** Checks that words name a place in the tree (a container, list, entry, leaf; values allowed). */
export function checkPath(words: readonly string[]): PathResult {
  const p = parse(words);
  return p.ok ? { ok: true } : p;
}

/**
 * `set <words>`: sets a leaf, adds a value to a leaf-list, or creates a list entry (setting any
 * leaf under an entry creates it too). Containers are created as needed.
 */
export function setPath(input: ConfigInput, words: readonly string[]): PathResult {
  const p = parse(words);
  if (!p.ok) return p;
  const complete = requireComplete(p.steps, words);
  if (!complete.ok) return complete;

  let obj = input as unknown as Obj;
  for (const step of p.steps) {
    const { node } = step;
    if (node.kind === "container") {
      if (!isObj(obj[node.key])) obj[node.key] = {};
      obj = obj[node.key] as Obj;
    } else if (node.kind === "list") {
      obj = entryFor(obj, node, step.key as string);
    } else if (node.kind === "leaf") {
      obj[node.key] = step.value;
    } else {
      if (!Array.isArray(obj[node.key])) obj[node.key] = [];
      const values = obj[node.key] as unknown[];
      if (!values.includes(step.value)) values.push(step.value);
    }
  }
  return { ok: true };
}

/** The entry named `key` of a list (created at the end if missing, a bare-name entry made an object). */
function entryFor(parent: Obj, node: ListNode, key: string | number): Obj {
  if (!Array.isArray(parent[node.key])) parent[node.key] = [];
  const list = parent[node.key] as unknown[];
  const i = list.findIndex((e) => (typeof e === "string" ? e : isObj(e) ? keyOf(node, e) : undefined) === key);
  if (i < 0) {
    const entry = { [node.keyField ?? "name"]: key };
    list.push(entry);
    return entry;
  }
  if (typeof list[i] === "string") list[i] = { name: key };
  return list[i] as Obj;
}

/**
 * `delete <words>`: removes a container, a whole list, one entry, a leaf (if a value is given it
 * must be the current one), all of a leaf-list or one of its values. Deleting what is not there
 * is refused with what is there. Containers and lists left empty are removed.
 */
export function deletePath(input: ConfigInput, words: readonly string[]): PathResult {
  const p = parse(words);
  if (!p.ok) return p;
  if (p.steps.length === 0) return fail(0, `missing word: expected ${expectedChildren(CONFIG_TREE)}`);

  // Find the thing first; remember the way down so that emptied parents can be removed.
  const trail: { parent: Obj; node: SchemaNode }[] = [];
  let obj = input as unknown as Obj;
  for (const [n, step] of p.steps.entries()) {
    const { node } = step;
    const last = n === p.steps.length - 1;
    const v = obj[node.key];
    const absent = v === undefined || (Array.isArray(v) && v.length === 0);
    if (absent) return fail(step.at, `nothing to delete: ${node.word} is not set`);
    trail.push({ parent: obj, node });
    if (node.kind === "container") {
      obj = v as Obj;
      if (!isObj(obj)) return fail(step.at, `nothing to delete: ${node.word} is not set`);
      continue;
    }
    if (node.kind === "list") {
      if (step.key === undefined) break;
      const list = v as unknown[];
      const i = list.findIndex((e) => (typeof e === "string" ? e : isObj(e) ? keyOf(node, e) : undefined) === step.key);
      if (i < 0) {
        const names = entries(list).map((e) => String(keyOf(node, e)));
        return fail(step.at + 1, `no ${node.noun} "${step.key}": expected one of ${names.join(", ")}`);
      }
      if (last) {
        list.splice(i, 1);
        return prune(trail);
      }
      // a bare-name entry has nothing under it: deeper words then find nothing, and change nothing
      obj = typeof list[i] === "string" ? { name: step.key } : (list[i] as Obj);
      continue;
    }
    if (node.kind === "leaf") {
      if (step.value !== undefined && v !== step.value) {
        return fail(step.at + 1, `no such value: expected the current value, ${node.type.format(v)}`);
      }
      break;
    }
    // leaf-list
    if (step.value !== undefined) {
      const values = v as unknown[];
      const i = values.indexOf(step.value);
      if (i < 0) return fail(step.at + 1, `no such value: expected one of ${values.map((x) => node.type.format(x)).join(", ")}`);
      values.splice(i, 1);
      return prune(trail);
    }
    break;
  }
  const { parent, node } = trail[trail.length - 1];
  delete parent[node.key];
  return prune(trail);
}

/** Removes containers, lists and leaf-lists left empty along the way (list entries stay). */
function prune(trail: { parent: Obj; node: SchemaNode }[]): PathResult {
  for (let i = trail.length - 1; i >= 0; i--) {
    const { parent, node } = trail[i];
    const v = parent[node.key];
    const empty = v === undefined || (Array.isArray(v) ? v.length === 0 : isObj(v) && Object.keys(v).length === 0);
    if (!empty) continue;
    if (node.kind === "list" && node.always) parent[node.key] = [];
    else delete parent[node.key];
  }
  return { ok: true };
}

/** With no partial word typed, open types list at most this many candidates besides the placeholder
 *  (time zones, names of a thousand backends): the operator types a few letters first. */
const MAX_LISTED = 50;

/**
 * What can follow `words` (the words after `set` or `delete`), filtered by the partial word being
 * typed: child words, existing entry names, enumeration values, and `<placeholder>` entries for
 * free-form values. `delete` offers only what exists. Words that do not parse: nothing.
 */
export function completions(input: ConfigInput, words: readonly string[], partial: string, command: "set" | "delete" = "set"): Completion[] {
  const p = parse(words);
  if (!p.ok) return [];
  const del = command === "delete";

  // Walk the configuration alongside (read-only); `here` is undefined once past what exists.
  let here: unknown = input;
  for (const step of p.steps) {
    const v = isObj(here) ? here[step.node.key] : undefined;
    const n = step.node;
    here = n.kind === "list" && step.key !== undefined ? entries(v).find((e) => keyOf(n, e) === step.key) : v;
  }
  const last = p.steps[p.steps.length - 1];
  const out: Completion[] = [];
  const offer = (c: Completion): void => {
    if (c.word.startsWith("<") || c.word.startsWith(partial)) out.push(c);
  };

  const children = (node: ContainerNode | ListNode, at: unknown): void => {
    for (const c of node.children) {
      if (del && !(isObj(at) && at[c.key] !== undefined)) continue;
      offer({ word: c.word, help: c.help });
    }
  };

  if (!last) children(CONFIG_TREE, here);
  else if (last.node.kind === "container") children(last.node, here);
  else if (last.node.kind === "list") {
    const node = last.node;
    if (last.key !== undefined) children(node, here);
    else {
      const existing = entries(here);
      for (const e of existing) offer({ word: node.keyType.format(keyOf(node, e)), help: node.summary?.(e) || `existing ${node.noun}` });
      if (!del) {
        const names = new Set(existing.map((e) => node.keyType.format(keyOf(node, e))));
        typeValues(node.keyType, input, partial).filter((c) => !names.has(c.word)).forEach(offer);
        if (!node.keyType.closed) offer({ word: node.keyType.placeholder, help: `new ${node.noun}: ${node.keyType.help}` });
      }
    }
  } else if (last.value === undefined) {
    const node = last.node;
    const current = node.kind === "leaf" ? (here === undefined ? [] : [here]) : Array.isArray(here) ? here : [];
    if (del) for (const v of current) offer({ word: node.type.format(v), help: "current value" });
    else {
      const taken = node.kind === "leaf-list" ? new Set(current.map((v) => node.type.format(v))) : new Set<string>();
      typeValues(node.type, input, partial).filter((c) => !taken.has(c.word)).forEach(offer);
      if (!node.type.closed) offer({ word: node.type.placeholder, help: node.type.help });
    }
  }
  return out;
}

function typeValues(type: ValueType, input: ConfigInput, partial: string): Completion[] {
  const all = type.values?.(input) ?? [];
  if (!type.closed && partial === "" && all.length > MAX_LISTED) return [];
  return all;
}

export type SetFormResult =
  | { ok: true; config: ConfigInput }
  | { ok: false; errors: { line: number; word: number; message: string }[] };

/**
 * Builds a configuration from nothing by `set` and `delete` lines (blank lines and `#` comments
 * skipped). Every bad line is reported: `line` counts from 1, `word` from 0 with the command word
 * as word 0. The configuration comes back normalised (normalizeInput).
 */
export function fromSetCommands(lines: readonly string[]): SetFormResult {
  const config = emptyConfig();
  const errors: { line: number; word: number; message: string }[] = [];
  lines.forEach((text, i) => {
    const line = i + 1;
    const trimmed = text.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const t = tokenize(trimmed);
    if (!t.ok) return errors.push({ line, word: t.word, message: t.message });
    const [command, ...words] = t.words;
    if (command !== "set" && command !== "delete") {
      return errors.push({ line, word: 0, message: `unknown command "${command}": expected set or delete` });
    }
    const r = command === "set" ? setPath(config, words) : deletePath(config, words);
    if (!r.ok) errors.push({ line, word: r.word + 1, message: r.message });
  });
  return errors.length ? { ok: false, errors } : { ok: true, config: normalizeInput(config) };
}
