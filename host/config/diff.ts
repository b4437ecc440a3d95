// `show | compare` in set form: the lines that take one configuration to the other, "- set ..."
// for what goes, "+ set ..." for what comes, in the order of the schema tree. A changed leaf shows
// its old line then its new one; an entry added or removed shows all its lines.
//
// List entries and leaf-list values keep an order (ports are numbered by it) but `set` can only
// append. When two configurations hold the same entries in another order, the entries that are
// out of the longest common order show as removed and added again: applying the lines still
// gives the new order, and the output is empty only when the two are the same.
import type { ConfigInput } from "./schema.js";
import { CONFIG_TREE, entries, keyOf, isObj, normalizeInput, type SchemaNode } from "./tree.js";
import { entryWords, formatCommand, setWords } from "./set-form.js";

export function compare(a: ConfigInput, b: ConfigInput): string[] {
  const out: string[] = [];
  diffNode(CONFIG_TREE, normalizeInput(a), normalizeInput(b), [], out);
  return out;
}

const removed = (out: string[], words: string[][]): void => words.forEach((w) => out.push(`- ${formatCommand("set", w)}`));
const added = (out: string[], words: string[][]): void => words.forEach((w) => out.push(`+ ${formatCommand("set", w)}`));

function diffNode(node: SchemaNode, a: unknown, b: unknown, prefix: string[], out: string[]): void {
  switch (node.kind) {
    case "leaf":
      if (a === b) return;
      removed(out, setWords(node, a, prefix));
      added(out, setWords(node, b, prefix));
      return;
    case "container": {
      const ao = isObj(a) ? a : {};
      const bo = isObj(b) ? b : {};
      const here = node === CONFIG_TREE ? prefix : [...prefix, node.word];
      for (const c of node.children) diffNode(c, ao[c.key], bo[c.key], here, out);
      return;
    }
    case "leaf-list": {
      const av = Array.isArray(a) ? a : [];
      const bv = Array.isArray(b) ? b : [];
      const line = (v: unknown): string[][] => [[...prefix, node.word, node.type.format(v)]];
      merge(av.map((v) => node.type.format(v)), bv.map((v) => node.type.format(v)), {
        onlyA: (i) => removed(out, line(av[i])),
        onlyB: (j) => added(out, line(bv[j])),
        both: () => {},
      });
      return;
    }
    case "list": {
      const ae = entries(a);
      const be = entries(b);
      merge(ae.map((e) => String(keyOf(node, e))), be.map((e) => String(keyOf(node, e))), {
        onlyA: (i) => removed(out, entryWords(node, ae[i], prefix)),
        onlyB: (j) => added(out, entryWords(node, be[j], prefix)),
        both: (i, j) => {
          const at = [...prefix, node.word, node.keyType.format(keyOf(node, ae[i]))];
          for (const c of node.children) diffNode(c, ae[i][c.key], be[j][c.key], at, out);
        },
      });
    }
  }
}

/**
 * Walks two sequences of distinct keys in step: keys in the longest common order are `both`;
 * every other key of `a` is `onlyA`, of `b` `onlyB`, each reported just before the next common
 * key that follows it on its side.
 */
function merge(a: string[], b: string[], on: { onlyA(i: number): void; onlyB(j: number): void; both(i: number, j: number): void }): void {
  const common = longestCommonOrder(a, b);
  let i = 0;
  let j = 0;
  for (const k of [...common, undefined]) {
    while (i < a.length && a[i] !== k) on.onlyA(i++);
    while (j < b.length && b[j] !== k) on.onlyB(j++);
    if (k !== undefined) on.both(i++, j++);
  }
}

/** The longest subsequence of `a` that is also one of `b` (keys distinct): a longest increasing
 *  subsequence of the positions in `b`, O(n log n). */
function longestCommonOrder(a: string[], b: string[]): string[] {
  const posB = new Map(b.map((k, j) => [k, j]));
  const seq = a.filter((k) => posB.has(k)).map((k) => posB.get(k) as number);
  const tails: number[] = []; // tails[l]: index in seq of the smallest tail of an increasing run of length l+1
  const prev: number[] = new Array<number>(seq.length).fill(-1);
  for (let x = 0; x < seq.length; x++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (seq[tails[mid]] < seq[x]) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[x] = tails[lo - 1];
    tails[lo] = x;
  }
  const out: string[] = [];
  for (let x = tails.length ? tails[tails.length - 1] : -1; x >= 0; x = prev[x]) out.push(b[seq[x]]);
  return out.reverse();
}
