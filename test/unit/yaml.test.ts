// The hand-written YAML emitter (toYaml in operator/src/compile/yaml.ts): whatever it
// writes, a YAML 1.1 reader reads back as exactly the data it was given. Tricky strings by
// name, then arbitrary strings and nested structures; and the real Envoy on some of them.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parse, stringify } from "yaml";
import { compile } from "../../operator/src/compile/compile.ts";
import { renderBootstrap, renderConfigFiles } from "../../operator/src/compile/config-files.ts";
import { staticBootstrap } from "../../operator/src/compile/envoy/bootstrap.ts";
import { defaultOptions } from "../../operator/src/compile/snapshot.ts";
import { toYaml } from "../../operator/src/compile/yaml.ts";
import { envoyValidate } from "../support/envoy.ts";

const read = (text: string) => parse(text, { version: "1.1" });
const roundTrips = (value: unknown) => expect(read(toYaml(value as object))).toEqual(value);

// Strings a careless emitter would leave plain, and YAML 1.1 would read as something else,
// or as a different string, or not at all.
const TRICKY = [
  // booleans and null of YAML 1.1, in every case
  ...["y", "n", "yes", "no", "on", "off", "true", "false", "null"].flatMap((w) => [
    w,
    w.toUpperCase(),
    w[0]!.toUpperCase() + w.slice(1),
  ]),
  "~",
  "",
  " ",
  "  ",
  "=",
  "<<",
  // numbers: ints, octal, hex, binary, base 60, floats, exponents, infinities
  "0",
  "7",
  "012",
  "0o12",
  "0x1F",
  "0b101",
  "1_000",
  "-1",
  "+1",
  "190:20:30",
  "1:30",
  "-1:30",
  "1.5",
  "1.",
  ".5",
  "+.5",
  "1e5",
  "1E+5",
  "1.5e-3",
  "6.8523015e+5",
  "685.230_15e+03",
  "190:20:30.15",
  ".inf",
  "-.Inf",
  "+.INF",
  ".nan",
  ".NaN",
  "inf",
  "nan",
  "Infinity",
  "-Infinity",
  "NaN",
  // timestamps
  "2001-12-14",
  "2001-12-14t21:59:43.10-05:00",
  "2001-12-14 21:59:43.10 -5",
  "2026-01-01T00:00:00Z",
  // indicators, comments, mappings
  "a: b",
  "a:b",
  "a:",
  ":a",
  "a :b",
  "#a",
  "a #b",
  "a#b",
  "- a",
  "-",
  "-a",
  "--",
  "---",
  "--- a",
  "...",
  "... a",
  "?",
  "? a",
  "?a",
  "[a]",
  "{a}",
  "a, b",
  "a,b",
  ",a",
  "*a",
  "&a",
  "!a",
  "!!str",
  "|",
  "|-",
  ">",
  ">-",
  "%a",
  "@a",
  "`a",
  "E5",
  "e012",
  "E+5",
  "e",
  "E",
  "_",
  "_1",
  "'a'",
  '"a"',
  "a'b",
  'a"b',
  `a"b'c`,
  "'",
  '"',
  "''",
  "a\\b",
  "\\",
  "\\n",
  // whitespace and line breaks
  " a",
  "a ",
  "a  b",
  "a\tb",
  "\t",
  "a\nb",
  "a\n",
  "\n",
  "\na",
  "a\n\nb",
  "a\r\nb",
  "\r",
  "a \n b",
  // characters YAML must not see raw, line breaks it knows, and plain Unicode
  "\u0000",
  "\u0007",
  "\u001b",
  "\u007f",
  "\u0080",
  "\u0085",
  "\u009f",
  "\u00a0",
  "\u2028",
  "\u2029",
  "\ufeff",
  "\ufffe",
  "\uffff",
  "\ud800",
  "\udfff",
  "a\ud800b",
  "😀",
  "é",
  "日本語",
  "a é b",
  // what the compiler writes: these should stay plain
  "10.0.0.1",
  "5xx",
  "1s",
  "0.25s",
  "3600s",
  "products.shop:8080",
  "shop/products/fallback-1",
  "type.googleapis.com/envoy.config.cluster.v3.Cluster",
  "5xx,gateway-error,reset",
  "The policy is valid and owns its target.",
  '{"degraded":true}',
  "application/json",
  "@type",
];

describe("toYaml", () => {
  it("reads back every tricky string, as a value, a key and a sequence item", () => {
    for (const s of TRICKY) {
      roundTrips({ value: s });
      roundTrips({ [s]: "value" });
      roundTrips([s]);
      roundTrips({ nested: { list: [s, { [s]: [s] }] } });
    }
  });

  it("reads back every tricky string when it is the whole document", () => {
    // toYaml takes objects; a bare scalar still makes a valid document.
    for (const s of TRICKY) expect(read(toYaml(s as unknown as object))).toEqual(s);
  });

  it("leaves what the compiler writes plain, and quotes what YAML 1.1 would misread", () => {
    expect(toYaml({ a: "10.0.0.1", b: "5xx", c: "1s", d: "products.shop:8080", e: "The policy is valid." })).toBe(
      "a: 10.0.0.1\nb: 5xx\nc: 1s\nd: products.shop:8080\ne: The policy is valid.\n",
    );
    expect(
      toYaml({ a: "yes", b: "Off", c: "503", d: "1:30", e: "0x1F", f: "", g: "a: b", h: "#x", i: '{"x":1}' }),
    ).toBe('a: "yes"\nb: "Off"\nc: "503"\nd: "1:30"\ne: "0x1F"\nf: ""\ng: "a: b"\nh: "#x"\ni: \'{"x":1}\'\n');
  });

  it("lays out collections as the yaml package does", () => {
    const value = {
      empty: {},
      none: [],
      scalars: [1, -0, 1.5, true, false, null, "x"],
      nested: [[1, [2, []], {}], { a: [], b: { c: 1 } }, [{ d: 1, e: [1, 2] }]],
      deep: { a: { b: { c: [{ x: null, y: [{ z: 1 }] }] } } },
    };
    const expected = stringify(value, { version: "1.1", lineWidth: 0, aliasDuplicateObjects: false });
    expect(toYaml(value)).toBe(expected);
    expect(toYaml({})).toBe("{}\n");
    expect(toYaml([])).toBe("[]\n");
  });

  it("leaves out undefined values, and writes them as null in sequences, like JSON", () => {
    expect(read(toYaml({ a: undefined, b: 1, c: [undefined, 2] }))).toEqual(
      JSON.parse(JSON.stringify({ a: undefined, b: 1, c: [undefined, 2] })),
    );
    expect(toYaml({ a: undefined })).toBe("{}\n");
  });

  it("writes numbers as the yaml package does, and reads them back", () => {
    for (const n of [
      0,
      -0,
      1,
      -1,
      0.1,
      1e21,
      1e-7,
      5e-324,
      Number.MAX_SAFE_INTEGER,
      Number.MAX_VALUE,
      Infinity,
      -Infinity,
      NaN,
    ]) {
      expect(toYaml({ n })).toBe(stringify({ n }, { version: "1.1" }));
      expect(read(toYaml({ n }))).toEqual({ n });
    }
  });

  it("hands what is not plain JSON data to the yaml package", () => {
    const long = "k".repeat(2000);
    expect(read(toYaml({ [long]: 1 }))).toEqual({ [long]: 1 });
    const date = new Date("2026-01-01T00:00:00Z");
    expect(toYaml({ date })).toBe(stringify({ date }, { version: "1.1", lineWidth: 0, aliasDuplicateObjects: false }));
  });

  // Units that make YAML-significant strings likely, plus any UTF-16 code unit (lone
  // surrogates included) and any code point.
  const tricky = fc.constantFrom(..."yYnNtTfFoO0123456789.+-_eExXbB:# ?'\"\\\n\r\t{}[],&*!|>%@`~=<");
  const codeUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
  const unit = fc.oneof(
    tricky,
    codeUnit,
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
    fc.constantFrom(...TRICKY),
  );
  const text = fc.oneof(fc.string({ unit, maxLength: 12 }), fc.constantFrom(...TRICKY));
  const scalar = fc.oneof(text, fc.double(), fc.integer(), fc.boolean(), fc.constant(null));
  const { value } = fc.letrec((tie) => ({
    value: fc.oneof({ depthSize: "small", withCrossShrink: true }, scalar, tie("array"), tie("object")),
    array: fc.array(tie("value"), { maxLength: 4 }),
    object: fc.dictionary(text, tie("value"), { maxKeys: 4, noNullPrototype: true }),
  }));

  it("reads back arbitrary strings", () => {
    fc.assert(
      fc.property(text, (s) => {
        roundTrips({ [s]: s, list: [s] });
      }),
      { numRuns: 5000 },
    );
  });

  it("reads back arbitrary nested structures", () => {
    fc.assert(
      fc.property(fc.oneof(fc.array(value), fc.dictionary(text, value, { noNullPrototype: true })), (v) => {
        roundTrips(v);
      }),
      { numRuns: 2000 },
    );
  });
});

describe("Envoy reads the emitter's strings", () => {
  it("accepts a static response whose body and headers are tricky strings", () => {
    const values = [
      "yes",
      "No",
      "on",
      "~",
      "null",
      "0x1F",
      "1:30",
      "1e5",
      ".inf",
      "",
      "a: b",
      "#x",
      '{"x":1}',
      "a'b",
      "a\nb",
      "é😀",
      "\u2028",
    ];
    const policy = {
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "products", namespace: "shop" },
      spec: {
        targetRef: { name: "products", port: 8080 },
        fallbacks: [
          {
            staticResponse: {
              status: 503,
              body: values.join(" | "),
              headers: Object.fromEntries(values.slice(0, 16).map((v, i) => [`x-h${i}`, v.replace(/\n/g, " ")])),
            },
          },
        ],
      },
    };
    const service = {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "products", namespace: "shop" },
      spec: { ports: [{ port: 8080 }] },
    };
    const { resources, results } = compile(
      { policies: [policy], services: [service], endpointSlices: [] },
      defaultOptions,
    );
    expect(results[0]!.errors).toEqual([]);
    const bootstrap = renderBootstrap(resources, defaultOptions);
    expect(envoyValidate(bootstrap)).toBe("");
    // And the text holds exactly the values, for a YAML 1.1 reader.
    expect(read(bootstrap)).toEqual(JSON.parse(JSON.stringify(staticBootstrap(resources, defaultOptions))));
    const [listener] = (staticBootstrap(resources, defaultOptions) as any).static_resources.listeners;
    expect(read(renderConfigFiles(resources, defaultOptions).files["lds.yaml"]!).resources[0]).toEqual(
      JSON.parse(JSON.stringify({ "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", ...listener })),
    );
  });
});
