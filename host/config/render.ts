// `show configuration` in the Junos curly-brace style: containers and list entries as blocks,
// leaves as `word value;`, indented four spaces. A leaf-list is one `word [ a b ];` line when that
// fits 80 columns, else one line per value. Values are quoted as in the set form; a secret that
// is not a hash is never printed (see tree.ts).
import type { ConfigInput } from "./schema.js";
import { CONFIG_TREE, childByWord, entries, keyOf, isObj, normalizeInput, type ContainerNode, type ListNode, type SchemaNode } from "./tree.js";
import { quote } from "./set-form.js";

const INDENT = "    ";
const WIDTH = 80;

/**
 * The configuration, or the part of it under `path` (words as for `set`, e.g. ["services", "web"]
 * or ["services", "web", "vip"]). Empty when nothing is set there or the path does not parse
 * (checkPath says why).
 */
export function renderConfig(input: ConfigInput, path: readonly string[] = []): string {
  let node: SchemaNode = CONFIG_TREE;
  let value: unknown = normalizeInput(input);
  let entryOf: ListNode | undefined; // set while `value` is one entry of this list
  for (let i = 0; i < path.length; i++) {
    const w = path[i];
    if (node.kind === "list" && !entryOf) {
      const list: ListNode = node;
      value = entries(value).find((e) => list.keyType.format(keyOf(list, e)) === w);
      if (value === undefined) return "";
      entryOf = node;
      continue;
    }
    if (node.kind === "leaf" || node.kind === "leaf-list") {
      // a last word after a leaf is a value: show the leaf if it holds it
      const type = node.type;
      const held = (node.kind === "leaf" ? [value] : (value as unknown[])).filter((v) => type.format(v) === w);
      if (i !== path.length - 1 || !held.length) return "";
      return lines(node, node.kind === "leaf" ? held[0] : held, "").join("\n");
    }
    const child = childByWord(node, w);
    if (!child || !isObj(value) || value[child.key] === undefined) return "";
    node = child;
    value = value[child.key];
    entryOf = undefined;
  }
  if (entryOf) return children(entryOf, value as Record<string, unknown>, "").join("\n");
  return body(node, value, "").join("\n");
}

/** The inside of a node: a container's or entry's children, a list's entries. */
function body(node: SchemaNode, v: unknown, indent: string): string[] {
  if (node.kind === "list") return entries(v).flatMap((e) => entry(node, e, indent));
  if (node.kind === "container") return isObj(v) ? children(node, v, indent) : [];
  return lines(node, v, indent);
}

function children(node: ContainerNode | ListNode, v: Record<string, unknown>, indent: string): string[] {
  return node.children.flatMap((c) => (v[c.key] === undefined ? [] : lines(c, v[c.key], indent)));
}

function entry(node: ListNode, e: Record<string, unknown>, indent: string): string[] {
  const inner = children(node, e, indent + INDENT);
  const key = quote(node.keyType.format(keyOf(node, e)));
  return inner.length ? [`${indent}${key} {`, ...inner, `${indent}}`] : [`${indent}${key};`];
}

/** A node as it appears inside its parent's block. */
function lines(node: SchemaNode, v: unknown, indent: string): string[] {
  switch (node.kind) {
    case "leaf":
      return [`${indent}${node.word} ${quote(node.type.format(v))};`];
    case "leaf-list": {
      const values = (Array.isArray(v) ? v : [v]).map((x) => quote(node.type.format(x)));
      if (values.length === 1) return [`${indent}${node.word} ${values[0]};`];
      const one = `${indent}${node.word} [ ${values.join(" ")} ];`;
      return one.length <= WIDTH ? [one] : values.map((x) => `${indent}${node.word} ${x};`);
    }
    case "container":
    case "list": {
      const inner = body(node, v, indent + INDENT);
      return inner.length ? [`${indent}${node.word} {`, ...inner, `${indent}}`] : [];
    }
  }
}
