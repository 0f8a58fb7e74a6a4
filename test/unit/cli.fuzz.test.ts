// No input crashes fallbackctl: mutations of every object kind a snapshot holds (missing and
// mistyped fields, nulls, huge and negative numbers, long and non-ASCII strings, list items
// duplicated and dropped) -> validate and render exit 0 or 1, with an error that names the
// object and the field, and never a stack trace; a sample of the renders it accepts passes
// the real Envoy's `--mode validate`. A failure prints fast-check's seed and path: set
// FUZZ_SEED to run that very sequence again.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../operator/src/cli/main.ts";
import { envoyValidate } from "../support/envoy.ts";

const BASE: Record<string, unknown>[] = [
  {
    apiVersion: "fallback.dev/v1alpha1",
    kind: "FallbackPolicy",
    metadata: { name: "products", namespace: "shop" },
    spec: {
      targetRef: { name: "products", port: 8080 },
      fallbacks: [
        { service: { name: "cache", port: 8080 } },
        { external: { host: "api.example", port: 443, auth: { secretRef: { name: "key", key: "k" } } } },
        { staticResponse: { status: 503 } },
      ],
    },
  },
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "products", namespace: "shop" },
    spec: { ports: [{ name: "http", port: 8080, targetPort: 8080 }] },
  },
  {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: "cache", namespace: "shop" },
    spec: { ports: [{ port: 8080 }], clusterIP: "None" },
  },
  {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: "products-a", namespace: "shop", labels: { "kubernetes.io/service-name": "products" } },
    addressType: "IPv4",
    ports: [{ name: "http", port: 8080, protocol: "TCP" }],
    endpoints: [{ addresses: ["10.0.0.1"], conditions: { ready: true } }, { addresses: ["10.0.0.2"] }],
  },
  {
    apiVersion: "v1",
    kind: "Secret",
    metadata: { name: "key", namespace: "shop", labels: { "fallback.dev/credential": "true" } },
    stringData: { k: "secret" },
  },
];

const oddValue = fc.oneof(
  fc.constant(null),
  fc.constant(undefined),
  fc.integer(),
  fc.constantFrom(-1, 0, 65536, 2 ** 40, -(2 ** 40), Number.MAX_SAFE_INTEGER),
  fc.double({ noNaN: false }),
  fc.boolean(),
  fc.string({ maxLength: 4 }),
  fc.string({ unit: "binary", minLength: 200, maxLength: 600 }),
  fc.constant("ünïcödé/пример/例"),
  fc.constant([]),
  fc.constant({}),
  fc.array(fc.integer(), { maxLength: 3 }),
);

type Mutation = { object: number; path: number[]; kind: "set" | "drop" | "duplicate"; value: unknown };
const mutation = fc.record({
  object: fc.nat({ max: BASE.length - 1 }),
  path: fc.array(fc.nat({ max: 20 }), { minLength: 1, maxLength: 5 }),
  kind: fc.constantFrom("set", "drop", "duplicate") as fc.Arbitrary<Mutation["kind"]>,
  value: oddValue,
});

/** Applies a mutation at the path, each number picking a key (or item) of what is there. */
function mutate(objects: Record<string, unknown>[], m: Mutation): void {
  let parent: any = objects;
  let key: string | number = m.object;
  for (const step of m.path) {
    const here: unknown = parent[key];
    if (typeof here !== "object" || here === null) break;
    const keys: (string | number)[] = Array.isArray(here) ? here.map((_, i) => i) : Object.keys(here);
    if (!keys.length) break;
    parent = here;
    key = keys[step % keys.length]!;
  }
  if (m.kind === "set") parent[key] = m.value;
  else if (m.kind === "drop") Array.isArray(parent) ? parent.splice(Number(key), 1) : delete parent[key];
  else if (Array.isArray(parent)) parent.splice(Number(key), 0, structuredClone(parent[Number(key)]));
  else parent[key] = m.value;
}

const dir = mkdtempSync(join(tmpdir(), "fallbackctl-fuzz-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// Chosen here rather than by fast-check, so that a failure after its run (Envoy's verdict)
// names the seed too.
const seed = process.env["FUZZ_SEED"] ? Number(process.env["FUZZ_SEED"]) : (Math.random() * 2 ** 31) | 0;
/** How many of the accepted renders go to Envoy (each takes it about a second). */
const VALIDATED = 8;

describe("fallbackctl on mutated input of every object kind", () => {
  it("exits 0 or 1 with errors naming the object and field, never a stack trace; Envoy accepts what it renders", () => {
    let run = 0;
    const accepted = new Map<string, string>(); // render -> the input file it came from
    fc.assert(
      fc.property(fc.array(mutation, { minLength: 1, maxLength: 4 }), (mutations) => {
        const objects = structuredClone(BASE);
        for (const m of mutations) mutate(objects, m);
        const file = join(dir, `input-${run++}.json`);
        // JSON is YAML: the file holds the mutated objects as a List-like multi-document stream.
        writeFileSync(file, objects.map((o) => JSON.stringify(o ?? null)).join("\n---\n"));
        for (const command of [
          ["validate", "-f", file],
          ["render", "-f", file],
        ]) {
          let err = "";
          let code: number | undefined;
          let out = "";
          expect(() => (code = main(command, { stdout: (s) => (out += s), stderr: (s) => (err += s) }))).not.toThrow();
          expect([0, 1]).toContain(code);
          expect(err).not.toMatch(/\n\s+at .+:\d+:\d+/);
          expect(err).not.toMatch(/TypeError|RangeError|ReferenceError/);
          if (command[0] === "render" && out && !accepted.has(out)) accepted.set(out, file);
        }
      }),
      { numRuns: 400, seed },
    );
    // Spread over the runs (every nth distinct render), not the first few alike.
    const renders = [...accepted];
    const step = Math.max(1, Math.floor(renders.length / VALIDATED));
    const sample = renders.filter((_, i) => i % step === 0).slice(0, VALIDATED);
    expect(sample.length).toBeGreaterThan(0);
    for (const [render, file] of sample)
      expect(envoyValidate(render), `render of ${file} (FUZZ_SEED=${seed})`).toBe("");
  });
});
