// validate_policies and render_policies say what fallbackctl validate and render say, on
// the same code path: the same lines for the examples and every invalid fixture, and each
// error also as (object, field, message).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { main } from "../../../operator/src/cli/main.ts";
import { ToolError } from "../../../operator/src/mcp/errors.ts";
import { parseManifests } from "../../../operator/src/mcp/manifests.ts";
import { renderManifests, validateManifests } from "../../../operator/src/mcp/offline.ts";
import { EXAMPLES_DIR, invalidFixtures } from "../../support/fixtures.ts";

/** What fallbackctl prints for `text` written to a file: stderr's lines, then stdout's. */
function fallbackctl(command: "validate" | "render", text: string): { lines: string[]; stdout: string } {
  const dir = mkdtempSync(join(tmpdir(), "mcp-offline-"));
  const file = join(dir, "input.yaml");
  writeFileSync(file, text);
  let [out, err] = ["", ""];
  try {
    main([command, "-f", file], { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  return { lines: [...err.split("\n"), ...out.split("\n")].filter(Boolean), stdout: out };
}
const fallbackctlValidate = (text: string) => fallbackctl("validate", text).lines;

const examples = ["shop.yaml", "ai.yaml"].map((f) => readFileSync(join(EXAMPLES_DIR, f), "utf8")).join("\n---\n");

describe("validate_policies", () => {
  it("says what fallbackctl validate says for the examples", () => {
    const report = validateManifests(examples);
    expect(report.lines).toEqual(fallbackctlValidate(examples));
    expect(report).toMatchObject({ valid: 2, invalid: 0, ignored: [] });
    expect(report.policies.map((p) => p.policy)).toEqual(["ai/llm-gateway", "shop/products"]);
  });

  it.each(invalidFixtures().map((f) => [f.name, f] as const))(
    "%s: the same lines as fallbackctl validate, the field as data",
    (_name, fixture) => {
      const report = validateManifests(fixture.text);
      expect(report.lines).toEqual(fallbackctlValidate(fixture.text));
      expect(report.invalid).toBe(1);
      const [policy] = report.policies;
      expect(policy!.errors[0]).toMatchObject({
        object: expect.stringMatching(/^FallbackPolicy /),
        field: fixture.field,
      });
    },
  );

  it("warns about a Service not in the input, and names what it does not read", () => {
    const text = `${readFileSync(join(EXAMPLES_DIR, "shop.yaml"), "utf8").split("---").slice(2).join("---")}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: shop}\n`;
    const report = validateManifests(text);
    expect(report.policies[0]!.warnings).toEqual([
      expect.objectContaining({
        condition: "ResolvedRefs",
        reason: "ServiceNotFound",
        message: expect.stringContaining("Service shop/products not found"),
      }),
    ]);
    expect(report.ignored).toEqual(["v1/ConfigMap shop/x"]);
    expect(report.lines).toEqual(fallbackctlValidate(text));
  });

  it("broken YAML: a tool error with the line and column", () => {
    expect(() => validateManifests("kind: FallbackPolicy\nspec: {targetRef: [\n")).toThrow(ToolError);
    expect(() => validateManifests("kind: FallbackPolicy\nspec: {targetRef: [\n")).toThrow(
      /^yaml: line \d+, column \d+: /,
    );
    expect(() => parseManifests("just a string")).toThrow(
      /yaml: document 1 is the string "just a string", not a Kubernetes object/,
    );
    expect(() => parseManifests("  \n")).toThrow(/yaml: empty/);
  });
});

describe("render_policies", () => {
  it("summarises each policy with the numbers of its spec", () => {
    const { policies, envoy } = renderManifests(examples);
    expect(envoy).toBeUndefined();
    const shop = policies.find((p) => p.policy === "shop/products")!;
    expect(shop.chain.map((b) => [b.name, b.kind, b.cluster])).toEqual([
      ["products", "Service", "shop/products/primary"],
      ["products-cache", "Service", "shop/products/fallback-1"],
      ["static", "StaticResponse", undefined],
    ]);
    expect(shop.retry).toMatchObject({
      attempts: 2,
      triesPerRequest: 3,
      perTryTimeout: "500ms",
      retriableStatusCodes: [429],
      fallbackOnRetry: true,
    });
    expect(shop.outlierDetection).toMatchObject({ consecutive5xx: 3, baseEjectionTime: "5s", interval: "1s" });
    expect(shop.ready).toMatchObject({ status: "True" });
  });

  it("with envoy: the resources and the bootstrap fallbackctl render prints", () => {
    const { envoy } = renderManifests(examples, { envoy: true });
    const { stdout } = fallbackctl("render", examples);
    expect(envoy!.bootstrap).toBe(stdout);
    expect(envoy!.resources.cluster!.map((c) => c.name)).toContain("shop/products/fallback-1");
  });

  it("never shows a credential: the SDS secrets are named, their values withheld", () => {
    const r = renderManifests(examples, { envoy: true });
    expect(r.envoy!.resources.secret!.length).toBeGreaterThan(0);
    expect(JSON.stringify(r)).not.toContain("REPLACE-ME");
  });

  it("one policy on request; an invalid policy renders nothing and says why", () => {
    expect(renderManifests(examples, { policy: "ai/llm-gateway" }).policies.map((p) => p.policy)).toEqual([
      "ai/llm-gateway",
    ]);
    expect(() => renderManifests(examples, { policy: "shop/nope" })).toThrow(
      /policy: no FallbackPolicy shop\/nope in the input; it holds shop\/products, ai\/llm-gateway/,
    );
    const bad = invalidFixtures().find((f) => f.name === "attempts-negative")!;
    expect(() => renderManifests(bad.text)).toThrow(
      /1 invalid FallbackPolicy, nothing rendered:\nFallbackPolicy default\/attempts-negative: spec\.retry\.attempts: /,
    );
  });
});
