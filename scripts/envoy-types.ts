// Writes operator/src/compile/envoy/api.gen.ts: TypeScript interfaces for the Envoy
// messages the compiler writes, in the JSON shape it writes them (proto field names, enums
// by name, Durations as "1.5s", wrappers as their bare value, Any as "@type" plus the
// message's fields), read from the same descriptor set the xDS server encodes with.
//
//   make envoy-types        (or: node scripts/envoy-types.ts [descriptor set])
//
// Only what the compiler can reach is written: the messages of the type URLs it uses
// (compile/envoy/types.ts TYPE) and the bootstrap, and every message their fields lead to
// (some 400, a few thousand lines: small enough to keep whole, so nothing under them goes
// unchecked). An Any leads only to the messages of those type URLs: the compiler puts no
// others in one. test/unit/envoy-types.test.ts writes the file anew in memory and fails
// when the committed one differs.
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  ScalarType,
  createFileRegistry,
  fromBinary,
  type DescEnum,
  type DescField,
  type DescMessage,
} from "@bufbuild/protobuf";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { TYPE } from "../operator/src/compile/envoy/types.ts";

const ROOT = join(import.meta.dirname, "..");
export const OUTPUT = join(ROOT, "operator/src/compile/envoy/api.gen.ts");
export const DESCRIPTORS = join(ROOT, ".local/share/envoy-api.binpb");

/** What the compiler writes that has no type URL of its own: Envoy's bootstrap. */
const EXTRA_ROOTS = ["envoy.config.bootstrap.v3.Bootstrap"];

/** The well-known types, as proto3 JSON has them. */
const JSON_VALUE = "JsonValue";
const NO_FIELDS = "{ [field: string]: never }";
const WELL_KNOWN: Record<string, string> = {
  "google.protobuf.Any": "Any",
  "google.protobuf.Duration": "string",
  "google.protobuf.Timestamp": "string",
  "google.protobuf.FieldMask": "string",
  "google.protobuf.Empty": NO_FIELDS,
  "google.protobuf.Struct": `{ [key: string]: ${JSON_VALUE} }`,
  "google.protobuf.Value": JSON_VALUE,
  "google.protobuf.ListValue": `${JSON_VALUE}[]`,
  "google.protobuf.DoubleValue": "number",
  "google.protobuf.FloatValue": "number",
  "google.protobuf.Int32Value": "number",
  "google.protobuf.UInt32Value": "number",
  "google.protobuf.Int64Value": "number | string",
  "google.protobuf.UInt64Value": "number | string",
  "google.protobuf.BoolValue": "boolean",
  "google.protobuf.StringValue": "string",
  "google.protobuf.BytesValue": "string",
};

function scalarType(scalar: ScalarType): string {
  switch (scalar) {
    case ScalarType.BOOL:
      return "boolean";
    case ScalarType.STRING:
    case ScalarType.BYTES: // base64
      return "string";
    // proto3 JSON writes 64-bit integers as strings, and reads numbers too.
    case ScalarType.INT64:
    case ScalarType.UINT64:
    case ScalarType.FIXED64:
    case ScalarType.SFIXED64:
    case ScalarType.SINT64:
      return "number | string";
    default:
      return "number";
  }
}

/** The type URLs the compiler uses, each with its message's full name, in URL order. */
function typeUrls(): [url: string, typeName: string][] {
  const urls = [...new Set(Object.values(TYPE))].sort();
  return urls.map((url) => [url, url.slice(url.lastIndexOf("/") + 1)]);
}

/** The TypeScript text of api.gen.ts for the descriptor set `descriptors` (its bytes). */
export function generateEnvoyTypes(descriptors: Uint8Array): string {
  const registry = createFileRegistry(fromBinary(FileDescriptorSetSchema, descriptors));
  const lookup = (typeName: string) => {
    const message = registry.getMessage(typeName);
    if (!message) throw new Error(`${typeName} is not a message of the descriptor set`);
    return message;
  };
  const urls = typeUrls();

  // The closure of the roots: every message and enum a field leads to.
  const messages = new Map<string, DescMessage>();
  const enums = new Map<string, DescEnum>();
  const queue = [...urls.map(([, name]) => name), ...EXTRA_ROOTS].map(lookup);
  for (const root of queue) messages.set(root.typeName, root);
  for (let i = 0; i < queue.length; i++) {
    for (const field of queue[i]!.fields) {
      const target = fieldTarget(field);
      if (target?.kind === "enum") enums.set(target.desc.typeName, target.desc);
      else if (target && !(target.desc.typeName in WELL_KNOWN) && !messages.has(target.desc.typeName)) {
        messages.set(target.desc.typeName, target.desc);
        queue.push(target.desc);
      }
    }
  }

  const names = tsNames([...messages.keys(), ...enums.keys()]);
  const ref = (typeName: string) => WELL_KNOWN[typeName] ?? names.get(typeName)!;

  const fieldType = (field: DescField): string => {
    switch (field.fieldKind) {
      case "scalar":
        return scalarType(field.scalar);
      case "enum":
        return ref(field.enum.typeName);
      case "message":
        return ref(field.message.typeName);
      case "list": {
        const item =
          field.listKind === "scalar"
            ? scalarType(field.scalar)
            : ref((field.listKind === "enum" ? field.enum : field.message).typeName);
        return /[ |{]/.test(item) ? `(${item})[]` : `${item}[]`;
      }
      case "map": {
        const value =
          field.mapKind === "scalar"
            ? scalarType(field.scalar)
            : ref((field.mapKind === "enum" ? field.enum : field.message).typeName);
        return `{ [key: string]: ${value} }`;
      }
    }
  };

  // An Any of a message without fields is its "@type" alone (see NO_FIELDS below).
  const anyOf = urls.map(([url, name]) => {
    const tag = `{ "@type": ${JSON.stringify(url)} }`;
    return lookup(name).fields.length ? `(${tag} & ${ref(name)})` : tag;
  });
  const out: string[] = [
    HEADER,
    "/** A value of a google.protobuf.Value, Struct or ListValue. */",
    `export type ${JSON_VALUE} = string | number | boolean | null | ${JSON_VALUE}[] | { [key: string]: ${JSON_VALUE} };`,
    "",
    "/**",
    ' * google.protobuf.Any in proto3 JSON: "@type" and the fields of the message it names, one',
    " * of those whose type URL the compiler uses (compile/envoy/types.ts TYPE).",
    " */",
    `export type Any =\n${anyOf.map((member) => `  | ${member}`).join("\n")};`,
    "",
  ];
  for (const message of [...messages.values()].sort(byName)) {
    out.push(`/** ${message.typeName}${message.deprecated ? " @deprecated" : ""} */`);
    const body = message.fields.map((field) => {
      const tags = [field.oneof ? `oneof ${field.oneof.name}` : "", field.deprecated ? "@deprecated" : ""]
        .filter(Boolean)
        .join(" ");
      return `${tags ? `  /** ${tags} */\n` : ""}  ${field.name}?: ${fieldType(field)};`;
    });
    // A message without fields takes none: an empty interface would take anything.
    out.push(
      body.length
        ? `export interface ${ref(message.typeName)} {\n${body.join("\n")}\n}`
        : `export type ${ref(message.typeName)} = ${NO_FIELDS};`,
      "",
    );
  }
  for (const e of [...enums.values()].sort(byName)) {
    out.push(
      `/** ${e.typeName} */`,
      `export type ${ref(e.typeName)} = ${e.values.map((v) => JSON.stringify(v.name)).join(" | ")};`,
      "",
    );
  }
  return out.join("\n");
}

const HEADER = `// Generated by scripts/envoy-types.ts from the Envoy API descriptor set: do not edit.
// Regenerate with \`make envoy-types\` after changing the Envoy API or TYPE in types.ts.
//
// The Envoy messages the compiler writes, in the JSON shape it writes them: proto field
// names, every field optional, enums by name, Durations as "1.5s", wrappers as their bare
// value, Any as "@type" and the fields of a message whose type URL the compiler uses.
// Oneofs are not enforced: each of their fields is optional, marked with the oneof's name.
//
// TypeScript checks an object literal for unknown fields only where it meets its type: a
// part spread into one (...(x ? { field } : {})) or kept in a variable first is checked
// only when it says its type itself (satisfies, or an annotation).
`;

type Target = { kind: "message"; desc: DescMessage } | { kind: "enum"; desc: DescEnum } | undefined;

function fieldTarget(field: DescField): Target {
  switch (field.fieldKind) {
    case "message":
      return { kind: "message", desc: field.message };
    case "enum":
      return { kind: "enum", desc: field.enum };
    case "list":
      return field.listKind === "message"
        ? { kind: "message", desc: field.message }
        : field.listKind === "enum"
          ? { kind: "enum", desc: field.enum }
          : undefined;
    case "map":
      return field.mapKind === "message"
        ? { kind: "message", desc: field.message }
        : field.mapKind === "enum"
          ? { kind: "enum", desc: field.enum }
          : undefined;
    default:
      return undefined;
  }
}

const byName = (a: { typeName: string }, b: { typeName: string }) =>
  a.typeName < b.typeName ? -1 : a.typeName > b.typeName ? 1 : 0;

/**
 * TypeScript names for full proto names: the name within its package, nesting joined by _
 * (Cluster_OutlierDetection); where two packages share one, each is prefixed with its
 * package, version left out (ConfigCore_HttpProtocolOptions).
 */
function tsNames(typeNames: string[]): Map<string, string> {
  const local = new Map<string, string>();
  const packageOf = (typeName: string) => {
    const segments = typeName.split(".");
    // The package is the leading lower-case segments.
    const i = segments.findIndex((s) => /^[A-Z]/.test(s));
    return { pkg: segments.slice(0, i), name: segments.slice(i).join("_") };
  };
  const byLocal = new Map<string, string[]>();
  for (const typeName of typeNames) {
    const { name } = packageOf(typeName);
    byLocal.set(name, [...(byLocal.get(name) ?? []), typeName]);
  }
  for (const [name, group] of byLocal) {
    for (const typeName of group) {
      if (group.length === 1) {
        local.set(typeName, name);
        continue;
      }
      const pkg = packageOf(typeName)
        .pkg.filter((s, i) => !(i === 0 && s === "envoy") && !/^v\d+(alpha\d*|beta\d*)?$/.test(s))
        .map((s) =>
          s
            .split("_")
            .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
            .join(""),
        )
        .join("");
      local.set(typeName, `${pkg}_${name}`);
    }
  }
  const seen = new Set<string>();
  for (const [typeName, name] of local) {
    if (seen.has(name)) throw new Error(`two messages would be named ${name} (one is ${typeName})`);
    seen.add(name);
  }
  return local;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const from = process.argv[2] ?? DESCRIPTORS;
  if (!existsSync(from)) {
    console.error(`no Envoy API descriptor set at ${from}: run \`make setup\``);
    process.exit(1);
  }
  writeFileSync(OUTPUT, generateEnvoyTypes(readFileSync(from)));
  console.log(`wrote ${OUTPUT} from ${from}`);
}
