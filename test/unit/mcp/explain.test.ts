// explain_policy says what the policy says, with its own numbers: change a number in the
// spec and the words and the worst-case waits change with it.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { describeExplanation, explain } from "../../../operator/src/mcp/explain.ts";
import { parseManifests } from "../../../operator/src/mcp/manifests.ts";
import { pickPolicy } from "../../../operator/src/mcp/model.ts";
import { EXAMPLES_DIR } from "../../support/fixtures.ts";

const policy = (spec: Record<string, unknown>) => ({
  apiVersion: "fallback.dev/v1alpha1",
  kind: "FallbackPolicy",
  metadata: { name: "products", namespace: "shop" },
  spec: {
    targetRef: { name: "products", port: 8080 },
    fallbacks: [
      { service: { name: "cache", port: 8080 } },
      { external: { host: "api.backup.example", port: 443 } },
      { staticResponse: { status: 503, body: "sorry" } },
    ],
    ...spec,
  },
});

const explained = (spec: Record<string, unknown>) => explain(pickPolicy([policy(spec)], undefined, { offline: true }));
const section = (x: ReturnType<typeof explain>, topic: string) => x.sections.find((s) => s.topic === topic)!.text;

describe("explain_policy", () => {
  it("the example: order, tries, worst-case waits and ejection from its numbers", () => {
    const x = explain(
      pickPolicy(parseManifests(readFileSync(join(EXAMPLES_DIR, "shop.yaml"), "utf8")), undefined, { offline: true }),
    );
    expect(x.order.map((b) => b.name)).toEqual(["products", "products-cache", "static"]);
    expect(x.numbers).toMatchObject({
      triesPerRequest: 3,
      perTryTimeoutMs: 500,
      requestTimeoutMs: 15_000,
      backoffMaxMs: [25, 50],
      // products slow: one per-try timeout and the first back-off; refusing: the back-off only.
      worstCase: [{ backend: "products-cache", whenEarlierSlowMs: 525, whenEarlierRefuseMs: 25 }],
      // both slow: 3 tries x 500 ms + 25 + 50 ms of back-off.
      staticAnswer: { whenAllSlowMs: 1575, whenAllRefuseMs: 75 },
      ejection: { consecutive5xx: 3, firstEjectionMs: 5000, intervalMs: 1000, backWithinMs: 6000 },
    });
    const text = describeExplanation(x);
    expect(text).toContain("429 is retried");
    expect(text).toContain("at most 525 ms");
    expect(text).toContain("for 5 s the first time");
  });

  it("external backends: their own credential, rewrites, and the client's credentials kept back (examples/ai.yaml)", () => {
    const x = explain(
      pickPolicy(parseManifests(readFileSync(join(EXAMPLES_DIR, "ai.yaml"), "utf8")), undefined, { offline: true }),
    );
    const text = section(x, "external backends");
    expect(text).toContain("api.openai.example sends its own credential (Secret openai, key api-key) in Authorization");
    expect(text).toContain('sets the "model" of JSON request bodies to gpt-4o-mini');
    expect(text).toContain("never gets the client's Authorization, Proxy-Authorization or Cookie headers");
    expect(JSON.stringify(x)).not.toContain("REPLACE-ME");
  });

  it("every number follows the spec", () => {
    const x = explained({
      retry: { attempts: 3, perTryTimeout: "700ms", backoff: { baseInterval: "40ms", maxInterval: "100ms" } },
      outlierDetection: {
        consecutive5xx: 4,
        consecutiveGatewayErrors: 2,
        baseEjectionTime: "7s",
        interval: "2s",
        maxEjectionTime: "20s",
      },
      timeouts: { request: "30s", connect: "300ms" },
    });
    expect(x.numbers.backoffMaxMs).toEqual([40, 80, 100]);
    expect(x.numbers.worstCase).toEqual([
      { backend: "cache", whenEarlierSlowMs: 740, whenEarlierRefuseMs: 40 },
      { backend: "api.backup.example", whenEarlierSlowMs: 700 * 2 + 40 + 80, whenEarlierRefuseMs: 120 },
    ]);
    expect(x.numbers.staticAnswer).toEqual({ whenAllSlowMs: 700 * 4 + 40 + 80 + 100, whenAllRefuseMs: 220 });
    expect(section(x, "order")).toContain("up to 4 tries");
    expect(section(x, "order")).toContain("cut off after 700 ms");
    expect(section(x, "outlier detection")).toContain("4 5xx answers in a row");
    expect(section(x, "outlier detection")).toContain("2 gateway errors");
    expect(section(x, "outlier detection")).toContain("7 s the first time, 14 s the second, and so on up to 20 s");
    expect(section(x, "outlier detection")).toContain("within 9 s");
    expect(section(x, "connection refused")).toContain("the connect timeout, 300 ms");
    // 503 is a gateway error: ejected after 2 of them, not 4.
    expect(section(x, "5xx answers")).toContain("from request 3 (products ejected by outlier detection)");
  });

  it("the request timeout bounds the worst case", () => {
    const x = explained({ retry: { attempts: 4, perTryTimeout: "2s" }, timeouts: { request: "3s" } });
    expect(x.numbers.staticAnswer?.whenAllSlowMs).toBe(3000);
    expect(section(x, "worst-case wait")).toContain("No request waits longer than the request timeout, 3 s.");
  });

  it("retries off: one try, no per-try timeout, so a slow primary holds the request until the request timeout", () => {
    const x = explained({ retry: { attempts: 0 }, timeouts: { request: "4s" } });
    expect(x.numbers.perTryTimeoutMs).toBeNull();
    expect(section(x, "order")).toContain("Each request gets 1 try: retries are off");
    expect(section(x, "slow backend")).toContain("the request timeout, 4 s");
    expect(x.numbers.worstCase[0]).toMatchObject({ backend: "cache", whenEarlierSlowMs: null });
  });

  it("without fallbackOnRetry the fallbacks serve only once the primary is out", () => {
    const x = explained({ retry: { fallbackOnRetry: false } });
    expect(section(x, "order")).toContain("Retries go to the backend that failed");
    expect(section(x, "order")).toContain("A retry waits as long as the failed answer's Retry-After");
    expect(x.numbers.worstCase[0]!.note).toContain("it serves once they are taken out of rotation");
  });

  it("no static answer, health checks, a drained backend", () => {
    const p = policy({ healthCheck: { path: "/ready", interval: "3s", unhealthyThreshold: 2 }, drain: ["products"] });
    p.spec.fallbacks = [{ service: { name: "cache", port: 8080 } }];
    const x = explain(pickPolicy([p], undefined, { offline: true }));
    expect(section(x, "static answer")).toContain("There is no static answer");
    expect(section(x, "health checks")).toContain("GET /ready");
    expect(section(x, "health checks")).toContain("every 3 s");
    expect(section(x, "order")).toContain("Drained now (spec.drain): products");
  });
});
