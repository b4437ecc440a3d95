// Field checkers for the messages of the signed wire formats (discovery, HA). Each checker takes an
// unknown decoded value and the path it was found at, and returns a fresh, normalized value (only
// known fields, no undefined) or throws FieldError naming the path ("msg.services[2].port");
// validate() turns that into a result, so nothing else escapes a decoder.

export class FieldError extends Error {
  constructor(
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${path}: ${detail}`);
  }
}

export type Checked<T> = { ok: true; value: T } | { ok: false; path: string; detail: string };

/** Runs checkers; a FieldError becomes a failed result, anything else is a bug and propagates. */
export function validate<T>(f: () => T): Checked<T> {
  try {
    return { ok: true, value: f() };
  } catch (e) {
    if (e instanceof FieldError) return { ok: false, path: e.path, detail: e.detail };
    throw e;
  }
}

export type Fields = Record<string, unknown>;

/** A plain map whose keys are all in `allowed`. */
export function record(v: unknown, path: string, allowed: readonly string[]): Fields {
  if (typeof v !== "object" || v === null || Array.isArray(v) || v instanceof Uint8Array) throw new FieldError(path, "must be a map");
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) throw new FieldError(path, "must be a plain map");
  for (const k of Object.keys(v)) {
    if (!allowed.includes(k)) throw new FieldError(`${path}.${k}`, "unknown field");
  }
  return v as Fields;
}

/** An optional field is present unless absent or CBOR undefined. */
export function present(o: Fields, k: string): boolean {
  return Object.hasOwn(o, k) && o[k] !== undefined;
}

export function need(o: Fields, k: string, path: string): unknown {
  if (!present(o, k)) throw new FieldError(`${path}.${k}`, "missing");
  return o[k];
}

export function int(v: unknown, path: string, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v)) throw new FieldError(path, `must be an integer ${min}-${max}`);
  if (v < min || v > max) throw new FieldError(path, `${v} is outside ${min}-${max}`);
  return v;
}

export function bool(v: unknown, path: string): boolean {
  if (typeof v !== "boolean") throw new FieldError(path, "must be true or false");
  return v;
}

export function oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
  if (typeof v !== "string" || !(values as readonly string[]).includes(v)) throw new FieldError(path, `must be one of ${values.join(", ")}`);
  return v as T;
}

/** Free text of 1-max characters without control characters. */
export function text(v: unknown, path: string, max: number): string {
  if (typeof v !== "string" || v.length === 0 || v.length > max) throw new FieldError(path, `must be a string of 1-${max} characters`);
  if (/[\u0000-\u001f\u007f]/.test(v)) throw new FieldError(path, "must not contain control characters");
  return v;
}

/** Longest id (sender, end system, pool, node, link). */
export const ID_LENGTH = 64;
const ID_SYNTAX = /^[A-Za-z0-9][A-Za-z0-9._:-]*$/;

/** How an id is written, for messages: "an id: ..." */
export const ID_FORM = `1-${ID_LENGTH} letters, digits, '.', '_', ':' or '-', starting with a letter or digit`;

/** Ids: 1-64 of letters, digits and . _ : - starting with a letter or digit. */
export function isId(v: unknown): v is string {
  return typeof v === "string" && v.length > 0 && v.length <= ID_LENGTH && ID_SYNTAX.test(v);
}

export function id(v: unknown, path: string): string {
  if (!isId(v)) throw new FieldError(path, `must be ${ID_FORM}`);
  return v;
}

export function list<T>(v: unknown, path: string, min: number, max: number, item: (x: unknown, p: string) => T): T[] {
  if (!Array.isArray(v)) throw new FieldError(path, "must be a list");
  if (v.length < min || v.length > max) throw new FieldError(path, `must hold ${min}-${max} items, has ${v.length}`);
  return v.map((x, i) => item(x, `${path}[${i}]`));
}
