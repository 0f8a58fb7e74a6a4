// `fallbackctl mcp` without a cluster, through the SDK's own Client over stdio and over
// Streamable HTTP, in both protocol eras: the offline tools are listed with their hints and
// schemas and called on examples/; the cluster and write tools are absent and refused; bad
// input is a clear tool error and the server keeps serving.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXAMPLES_DIR } from "../../support/fixtures.ts";
import { call, httpSession, OFFLINE, stdioSession, type Session } from "../../integration/mcp/harness.ts";
import { fallbackctlBin } from "../../support/paths.ts";

const shop = readFileSync(join(EXAMPLES_DIR, "shop.yaml"), "utf8");
const ai = readFileSync(join(EXAMPLES_DIR, "ai.yaml"), "utf8");
const both = `${shop}\n---\n${ai}`;

const transports = [
  ["stdio", "legacy", () => stdioSession()],
  ["stdio", "auto", () => stdioSession({ negotiation: "auto" })],
  ["Streamable HTTP", "legacy", () => httpSession()],
  ["Streamable HTTP", "auto", () => httpSession({ negotiation: "auto" })],
] as const;

describe.each(transports)("fallbackctl mcp over %s (%s negotiation), offline", (_transport, _mode, open) => {
  let session: Session;
  beforeAll(async () => {
    session = await open();
  });
  afterAll(async () => {
    await session?.close();
  });

  it("lists the offline tools only, read-only, every argument described", async () => {
    const { tools } = await session.client.listTools();
    expect(tools.map((t) => t.name).sort()).toEqual(OFFLINE);
    for (const tool of tools) {
      expect(tool.annotations, tool.name).toMatchObject({ readOnlyHint: true, destructiveHint: false });
      expect(tool.description!.length, tool.name).toBeGreaterThan(80);
      const properties = (tool.inputSchema as { properties: Record<string, { description?: string }> }).properties;
      for (const [name, schema] of Object.entries(properties))
        expect(schema.description, `${tool.name}.${name}`).toBeTruthy();
    }
  });

  it("validate_policies: the lines of fallbackctl validate, and the counts as data", async () => {
    const r = await call(session, "validate_policies", { yaml: both });
    expect(r.isError).toBe(false);
    expect(r.text).toContain("2 valid, 0 invalid FallbackPolicies");
    expect(r.data).toMatchObject({ valid: 2, invalid: 0 });
    const invalid = await call(session, "validate_policies", { yaml: shop.replace("attempts: 2", "attempts: -1") });
    expect(invalid.isError).toBe(false);
    expect(invalid.data.policies[0].errors[0]).toEqual({
      object: "FallbackPolicy shop/products",
      field: "spec.retry.attempts",
      message: "must be >= 0",
    });
    expect(invalid.text).toContain("FallbackPolicy shop/products: spec.retry.attempts: must be >= 0");
  });

  it("render_policies: a summary per policy, the Envoy resources on request", async () => {
    const r = await call(session, "render_policies", { yaml: both });
    expect(r.data.policies.map((p: any) => p.policy)).toEqual(["ai/llm-gateway", "shop/products"]);
    expect(r.data.envoy).toBeUndefined();
    const envoy = await call(session, "render_policies", { yaml: both, policy: "ai/llm-gateway", envoy: true });
    const clusters: string[] = envoy.data.envoy.resources.cluster.map((c: any) => c.name);
    expect(clusters).toEqual(
      expect.arrayContaining(["ai/llm-gateway", "ai/llm-gateway/primary", "ai/llm-gateway/fallback-1"]),
    );
    expect(clusters.every((name) => name.startsWith("ai/llm-gateway"))).toBe(true);
    expect(envoy.text).toContain("static_resources");
  });

  it("explain_policy: words and numbers from the policy", async () => {
    const r = await call(session, "explain_policy", { yaml: both, policy: "shop/products" });
    expect(r.isError).toBe(false);
    expect(r.data.numbers.worstCase).toEqual([
      { backend: "products-cache", whenEarlierSlowMs: 525, whenEarlierRefuseMs: 25 },
    ]);
    expect(r.text).toContain("Worst-case wait: Before products-cache answers, a client waits at most 525 ms");
    const ai = await call(session, "explain_policy", { yaml: both, policy: "ai/llm-gateway" });
    expect(ai.data.numbers).toMatchObject({ perTryTimeoutMs: 30_000, requestTimeoutMs: 90_000 });
  });

  it("simulate_failure: who answers, after how many tries and how long", async () => {
    const r = await call(session, "simulate_failure", { yaml: shop, scenario: { down: ["products"] } });
    expect(r.isError).toBe(false);
    expect(r.data.firstRequests).toMatchObject({ answeredBy: "products-cache", tries: 2, waitMs: { min: 0, max: 25 } });
    expect(r.data.steadyState).toMatchObject({ answeredBy: "products-cache", tries: 1 });
    expect(r.text).toContain("products is ejected after request 3");
    const everything = await call(session, "simulate_failure", {
      yaml: shop,
      scenario: { slow: ["products", "products-cache"] },
    });
    expect(everything.data.firstRequests).toMatchObject({
      answeredBy: "static",
      status: 503,
      tries: 3,
      waitMs: { max: 1575 },
    });
  });

  it("bad input is a tool error naming what is wrong, and the server keeps serving", async () => {
    const broken = await call(session, "validate_policies", { yaml: "apiVersion: v1\nkind: [\n" });
    expect(broken).toMatchObject({ isError: true, text: expect.stringMatching(/^yaml: line \d+, column \d+: /) });
    expect(broken.text).not.toMatch(/\n\s+at /); // no stack trace

    const unknown = await call(session, "explain_policy", { yaml: both, policy: "shop/nope" });
    expect(unknown).toMatchObject({
      isError: true,
      text: "policy: no FallbackPolicy shop/nope in the input; it holds shop/products, ai/llm-gateway",
    });

    const several = await call(session, "simulate_failure", { yaml: both, scenario: {} });
    expect(several.text).toMatch(/^policy: the input holds 2 FallbackPolicies/);

    const missing = await call(session, "simulate_failure", { yaml: shop, scenario: { down: ["products-db"] } });
    expect(missing.isError).toBe(true);
    expect(missing.text).toMatch(
      /^scenario\.down\[0\]: "products-db" is not a backend of FallbackPolicy shop\/products/,
    );
    expect(missing.data.error.problems[0]).toMatchObject({
      object: "FallbackPolicy shop/products",
      field: "scenario.down[0]",
    });

    const schema = await call(session, "simulate_failure", { yaml: shop, scenario: { status: { products: 42 } } });
    expect(schema.isError).toBe(true);

    const invalid = await call(session, "explain_policy", {
      yaml: shop.replace("perTryTimeout: 500ms", "perTryTimeout: soon"),
    });
    expect(invalid.text).toMatch(
      /^FallbackPolicy shop\/products is invalid: FallbackPolicy shop\/products: spec\.retry\.perTryTimeout: must match/,
    );

    // Still serving.
    expect((await call(session, "validate_policies", { yaml: shop })).data.valid).toBe(1);
  });

  it("the cluster and write tools are not there, and a call to one is refused", async () => {
    for (const name of ["list_policies", "get_policy", "set_drain", "apply_policy"]) {
      await expect(
        session.client.callTool({
          name,
          arguments: { namespace: "shop", name: "products", backends: ["products"], reason: "test", yaml: shop },
        }),
      ).rejects.toThrow(new RegExp(`Tool ${name} not found`));
    }
    expect((await call(session, "validate_policies", { yaml: shop })).isError).toBe(false);
  });
});

describe("fallbackctl mcp over Streamable HTTP: the endpoint itself", () => {
  let session: Session;
  beforeAll(async () => {
    session = await httpSession();
  });
  afterAll(async () => {
    await session?.close();
  });

  it("binds loopback and refuses a foreign Host or Origin (DNS rebinding)", async () => {
    expect(session.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/mcp$/);
    const init = {
      jsonrpc: "2.0",
      id: 1,
      method: "initialize",
      params: { protocolVersion: "2025-06-18", capabilities: {}, clientInfo: { name: "x", version: "1" } },
    };
    // node:http, as fetch does not let a caller set Host.
    const post = (headers: Record<string, string>) =>
      new Promise<{ status: number }>((ok, fail) => {
        const req = request(
          session.url!,
          {
            method: "POST",
            headers: { "content-type": "application/json", accept: "application/json, text/event-stream", ...headers },
          },
          (res) => {
            res.resume();
            res.once("end", () => ok({ status: res.statusCode ?? 0 }));
          },
        );
        req.once("error", fail);
        req.end(JSON.stringify(init));
      });
    expect((await post({ host: "evil.example" })).status).toBe(403);
    expect((await post({ origin: "http://evil.example" })).status).toBe(403);
    expect((await post({})).status).toBe(200);
    expect((await fetch(session.url!.replace(/\/mcp$/, "/other"))).status).toBe(404);
  });
});

describe("fallbackctl mcp: the command line", () => {
  const run = (...args: string[]) =>
    spawnSync(process.execPath, [fallbackctlBin, "mcp", ...args], { encoding: "utf8", timeout: 30_000, input: "" });

  it("--allow-writes without --kubeconfig, and a malformed --http, are usage errors", () => {
    const writes = run("--allow-writes");
    expect(writes.status).toBe(2);
    expect(writes.stderr).toContain("--allow-writes needs --kubeconfig");
    const http = run("--http", "nowhere");
    expect(http.status).toBe(2);
    expect(http.stderr).toContain('--http must be HOST:PORT or PORT, got "nowhere"');
  });

  it("an unreadable kubeconfig fails at start with its path", () => {
    const r = run("--kubeconfig", "/nonexistent/kubeconfig");
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("fallbackctl mcp: --kubeconfig /nonexistent/kubeconfig:");
  });

  it("exits when the client closes stdin", () => {
    const r = run();
    expect(r.status).toBe(0);
    expect(r.stderr).toContain(
      "serving on stdio; tools: validate_policies, render_policies, explain_policy, simulate_failure",
    );
  });
});
