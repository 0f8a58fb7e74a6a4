// JSON-like data -> YAML 1.1 text: the block-style documents people read (bootstrap.yaml,
// fallbackctl's output, the golden cases), and the JSON text that the config files hold,
// made safe for a YAML reader.
import { stringify } from "yaml";

// Envoy reads YAML 1.1, where a bare yes, no, on, off, y or n is a boolean, 0x1f or 1:30 a
// number, and so on: every string that could be read as anything but itself is quoted.
//
// The `yaml` package writes the same text, but builds a node tree first and is far slower
// at the sizes a large install renders (docs/benchmarks.md, "Why the code is so"). What we emit is plain JSON data
// (objects, arrays, strings, numbers, booleans, null), so a small block-style emitter does,
// and writes what `yaml` would for it (version 1.1, lineWidth 0), except that it quotes some
// strings `yaml` would leave plain (and writes multi-line strings double-quoted, not as
// block scalars). Anything else (Dates, Maps, BigInts, keys over 1024 characters, cycles...)
// goes to the `yaml` package instead. test/unit/yaml.test.ts parses the output back as
// YAML 1.1 and checks it equals the input.

/** Writes a JSON-like value as a YAML 1.1 document in block style, ending in a newline. */
export function toYaml(document: object): string {
  try {
    return emitDocument(document).join("");
  } catch (error) {
    if (!(error instanceof NotPlainData)) throw error;
    return stringify(document, { version: "1.1", lineWidth: 0, aliasDuplicateObjects: false });
  } finally {
    parts = [];
    chunks = [];
  }
}

class NotPlainData extends Error {}

// The text is collected as pieces, joined into one string every few thousand pieces: one
// array of millions of pieces, or one string grown by +=, keeps every piece alive until
// the end, and the garbage collector then takes longer than the writing.
let parts: string[] = [];
let chunks: string[] = [];
const CHUNK = 4096;
const flush = () => {
  chunks.push(parts.join(""));
  parts = [];
};

function emitDocument(document: unknown): string[] {
  if (isCollection(document) && !isEmpty(document)) {
    if (Array.isArray(document)) sequence(document, 0, false);
    else mapping(document as Record<string, unknown>, 0, false);
  } else {
    parts.push(`${inline(document)}\n`);
  }
  flush();
  return chunks;
}

// Deeper than this is a cycle, or no configuration of ours: `yaml` handles it.
const MAX_COLUMN = 400;
const INDENTS: string[] = [];
const pad = (n: number) => (INDENTS[n] ??= " ".repeat(n));

const isCollection = (v: unknown): v is object => v !== null && typeof v === "object";
/** What JSON (and `yaml`) leave out of a mapping, and write as null in a sequence. */
const isAbsent = (v: unknown) => v === undefined || typeof v === "function" || typeof v === "symbol";

function isEmpty(v: object): boolean {
  if (Array.isArray(v)) return v.length === 0;
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) throw new NotPlainData(); // Date, Map, ...
  for (const key in v) if (!isAbsent((v as Record<string, unknown>)[key])) return false;
  return true;
}

/**
 * Writes `value` after "key:" or "-" on the current line: a scalar or an empty collection
 * on the same line, a mapping or sequence on the lines below, at column `col`.
 */
function value(v: unknown, col: number): void {
  if (isCollection(v) && !isEmpty(v)) {
    parts.push("\n");
    if (Array.isArray(v)) sequence(v, col, false);
    else mapping(v as Record<string, unknown>, col, false);
  } else {
    parts.push(` ${inline(v)}\n`);
  }
}

/** The pairs of a mapping at column `col`; with `continued`, the first goes on the current line. */
function mapping(object: Record<string, unknown>, col: number, continued: boolean): void {
  if (col > MAX_COLUMN) throw new NotPlainData();
  const indent = pad(col);
  for (const key in object) {
    const v = object[key];
    if (isAbsent(v)) continue;
    if (continued) continued = false;
    else parts.push(indent);
    parts.push(keyText(key));
    value(v, col + 2);
    if (parts.length > CHUNK) flush();
  }
}

/**
 * The items of a sequence at column `col`; with `continued`, the first goes on the current
 * line. A mapping item starts on its dash's line ("- name: x") and goes on two columns
 * right; a sequence in a sequence likewise ("- - a").
 */
function sequence(items: unknown[], col: number, continued: boolean): void {
  if (col > MAX_COLUMN) throw new NotPlainData();
  const indent = pad(col);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    if (continued) continued = false;
    else parts.push(indent);
    if (isCollection(item) && !isEmpty(item)) {
      parts.push("- ");
      if (Array.isArray(item)) sequence(item, col + 2, true);
      else mapping(item as Record<string, unknown>, col + 2, true);
    } else {
      parts.push(`- ${inline(isAbsent(item) ? null : item)}\n`);
    }
    if (parts.length > CHUNK) flush();
  }
}

// Keys repeat (name, address, port_value...): remember how each is written.
const KEYS = new Map<string, string>();
function keyText(key: string): string {
  let written = KEYS.get(key);
  if (written === undefined) {
    written = `${str(key)}:`;
    // An implicit key is at most 1024 characters; leave the rare longer one to `yaml`.
    if (written.length > 1000) throw new NotPlainData();
    if (KEYS.size < 10_000) KEYS.set(key, written);
  }
  return written;
}

/** A scalar, or an empty collection, as written on one line. */
function inline(v: unknown): string {
  switch (typeof v) {
    case "string":
      return str(v);
    case "number":
      // As `yaml` writes numbers.
      if (!Number.isFinite(v)) return Number.isNaN(v) ? ".nan" : v < 0 ? "-.inf" : ".inf";
      return Object.is(v, -0) ? "-0" : String(v); // as JSON.stringify would
    case "boolean":
      return v ? "true" : "false";
    case "object":
      if (v === null) return "null";
      return Array.isArray(v) ? "[]" : "{}"; // empty, or value() would not ask
  }
  throw new NotPlainData(); // bigint, or anything else `yaml` knows better
}

// A string goes plain only if it is made of harmless characters AND cannot be read as
// another type. The harmless shape: it starts with a letter, a digit, _ . or /; then
// letters, digits, _ . / @ , ; = + ( ) < > ' " - and single spaces and colons, but never
// ": " (a mapping) and no trailing space or colon. No # at all (" #" starts a comment).
// Tabs, line breaks, non-ASCII and everything else are quoted. (This is what
// /^[A-Za-z0-9_./](?:[A-Za-z0-9_./@,;=+()<>'"-]|:(?=[^ ])| (?=[^ ]))*$/ matches, in a loop
// that is several times faster than that regular expression.)
const FIRST = 1;
const NEXT = 2;
const CHARS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const ch = String.fromCharCode(c);
  if (/[A-Za-z0-9_./]/.test(ch)) CHARS[c] = FIRST | NEXT;
  else if (/[@,;=+()<>'"-]/.test(ch)) CHARS[c] = NEXT;
}
const SPACE = 32;
const COLON = 58;

function plainShape(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  let c = s.charCodeAt(0);
  if (c >= 128 || !(CHARS[c]! & FIRST)) return false;
  for (let i = 1; i < n; i++) {
    c = s.charCodeAt(i);
    if (c < 128 && CHARS[c]! & NEXT) continue;
    if (c !== SPACE && c !== COLON) return false;
    // A space or colon needs something after it, and not a space.
    if (i + 1 === n || s.charCodeAt(i + 1) === SPACE) return false;
  }
  return true;
}

// What YAML 1.1 (and yaml-cpp, Envoy's parser) could read as something else. Deliberately
// broader than the spec: any case of the keywords, and anything number-like.
const NOT_A_STRING = new RegExp(
  [
    /^(?:y|n|yes|no|true|false|on|off|null|~|=|<<)$/, // booleans, null, value and merge keys
    /^[-+]?(?:[0-9][0-9_]*)?(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?$/, // ints, decimals, exponents
    /^[-+]?0[bBoOxX][0-9a-fA-F_]*$/, // binary, octal, hex
    /^[-+]?[0-9][0-9_]*(?::[0-9_]+)+(?:\.[0-9_]*)?$/, // base 60: 1:30 is 90
    /^[-+]?\.?(?:inf|infinity|nan)$/, // .inf, .nan
    /^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}/, // timestamps
    /^(?:---|\.\.\.)/, // document markers (harmful at a line start, as a top-level key)
  ]
    .map((r) => `(?:${r.source})`)
    .join("|"),
  "i",
);
// Only strings that start with a digit, a dot, e (E5 is a float to `yaml`), or y n t f o i
// (yes no true false on off inf nan) can match NOT_A_STRING: the plain shape rules out the
// other first characters it could start with.
const MAY_NOT_BE_STRING = new Uint8Array(128);
for (const ch of "0123456789.eEyYnNtTfFoOiI") MAY_NOT_BE_STRING[ch.charCodeAt(0)] = 1;

// YAML 1.1's printable characters, less line breaks (NEL, LS, PS) and the byte-order mark.
// JSON.stringify escapes C0 controls, quotes, backslashes and lone surrogates; these others
// it leaves as they are, but YAML must not see them raw.
const NOT_YAML_PRINTABLE = /[\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff]/;
const NOT_YAML_PRINTABLE_ALL = new RegExp(NOT_YAML_PRINTABLE.source, "g");
// Single quotes keep everything but ' as is, on one line; `yaml` prefers them for strings
// with a " and no ', so use them then, when the string needs no escapes at all.
const SINGLE_QUOTABLE = /^[^\u0000-\u001f\u007f-\u009f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff']*$/;

function str(s: string): string {
  if (plainShape(s) && !(MAY_NOT_BE_STRING[s.charCodeAt(0)] && NOT_A_STRING.test(s))) return s;
  if (s.includes('"') && SINGLE_QUOTABLE.test(s)) return `'${s}'`;
  return yamlSafeJson(JSON.stringify(s));
}

/** JSON text with the characters YAML must not see raw (see NOT_YAML_PRINTABLE) escaped. */
function yamlSafeJson(json: string): string {
  if (!NOT_YAML_PRINTABLE.test(json)) return json;
  return json.replace(NOT_YAML_PRINTABLE_ALL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** JSON.stringify's text of `value`, which a YAML 1.1 reader reads back as the same value. */
export const jsonText = (value: unknown): string => yamlSafeJson(JSON.stringify(value));
