// simulate_failure against what the end-to-end tests measure with a real Envoy on the same
// policies: test/e2e/failover.test.ts, static-response.test.ts and drain.test.ts. Each case
// here builds the objects those tests build and expects what they assert (who answers,
// whether the backend gets ejected), plus the tries and waits the policy's numbers give.
import { describe, expect, it } from "vitest";
import { ToolError } from "../../../operator/src/mcp/errors.ts";
import { pickPolicy } from "../../../operator/src/mcp/model.ts";
import { simulate, type Scenario } from "../../../operator/src/mcp/simulate.ts";
import { fallbackPolicy, service } from "../../support/gateway.ts";

const at = (host: string) => ({ host, port: 8080 });

/** failover.test.ts: products -> products-cache -> static 503, interval 500ms, baseEjectionTime 2s. */
function failover(spec: Record<string, unknown> = {}) {
  return [
    ...service("shop", "products", 8080, [at("127.0.0.2")]),
    ...service("shop", "products-cache", 8080, [at("127.0.0.3")]),
    fallbackPolicy("shop", "products", {
      targetRef: { kind: "Service", name: "products", port: 8080 },
      fallbacks: [
        { service: { name: "products-cache", port: 8080 } },
        { staticResponse: { status: 503, body: '{"degraded":true}', headers: { "content-type": "application/json" } } },
      ],
      outlierDetection: { interval: "500ms", baseEjectionTime: "2000ms" },
      ...spec,
    }),
  ];
}

const STATIC = {
  status: 418,
  body: '{"degraded":true,"items":[]}',
  headers: { "content-type": "application/json", "retry-after": "30", "x-degraded": "static" },
};

/** static-response.test.ts: products -> fallback-1 ... -> the static answer. */
function chain(backends: number, spec: Record<string, unknown>, staticResponse: object = STATIC) {
  const rest = Array.from({ length: backends - 1 }, (_, i) => `fallback-${i + 1}`);
  return [
    ...service("shop", "products", 8080, [at("127.0.0.4")]),
    ...rest.flatMap((name, i) => service("shop", name, 8080, [at(`127.0.0.${5 + i}`)])),
    fallbackPolicy("shop", "products", {
      targetRef: { name: "products", port: 8080 },
      fallbacks: [...rest.map((name) => ({ service: { name, port: 8080 } })), { staticResponse }],
      outlierDetection: { interval: "500ms", baseEjectionTime: "2s" },
      ...spec,
    }),
  ];
}

const run = (objects: unknown[], scenario: Scenario) =>
  simulate(pickPolicy(objects, "shop/products", { offline: true }), scenario);

describe("simulate_failure on the failover e2e scenarios", () => {
  it("steady state: the primary answers every request in one try", () => {
    const s = run(failover(), {});
    expect(s.phases).toHaveLength(1);
    expect(s.steadyState).toMatchObject({ answeredBy: "products", status: 200, tries: 1, waitMs: { min: 0, max: 0 } });
    expect(s.ejections).toEqual([]);
  });

  it("a killed primary: retried on the fallback at once, ejected after 3 refused connections, then the fallback in one try", () => {
    const s = run(failover(), { down: ["products"] });
    expect(s.firstRequests).toMatchObject({
      answeredBy: "products-cache",
      status: 200,
      tries: 2,
      waitMs: { min: 0, max: 25 },
    });
    expect(s.firstRequests.path.map((t) => [t.backend, t.result])).toEqual([
      ["products", "refused the connection"],
      ["products-cache", "answered 200"],
    ]);
    expect(s.ejections).toEqual([
      expect.objectContaining({ backend: "products", by: "outlier detection", afterRequests: 3, forMs: 2000 }),
    ]);
    expect(s.steadyState).toMatchObject({ answeredBy: "products-cache", tries: 1, waitMs: { min: 0, max: 0 } });
  });

  it("a primary answering 503: the fallback takes over and the primary is ejected for gateway errors", () => {
    const s = run(failover(), { status: { products: 503 } });
    expect(s.firstRequests).toMatchObject({ answeredBy: "products-cache", tries: 2 });
    // The e2e test reads ejections_enforced_consecutive_gateway_failure.
    expect(s.ejections[0]).toMatchObject({
      backend: "products",
      detail: expect.stringContaining("consecutiveGatewayErrors"),
    });
    expect(s.steadyState).toMatchObject({ answeredBy: "products-cache", tries: 1 });
  });

  it("a primary answering 429 with retriable-status-codes: every request tries it first and lands on the fallback; never ejected", () => {
    const s = run(
      failover({
        retry: {
          retryOn: ["connect-failure", "refused-stream", "reset", "gateway-error", "retriable-status-codes"],
          retriableStatusCodes: [429],
        },
      }),
      { status: { products: 429 } },
    );
    expect(s.phases).toHaveLength(1);
    expect(s.steadyState).toMatchObject({ answeredBy: "products-cache", status: 200, tries: 2 });
    expect(s.ejections).toEqual([]);
  });

  it("a 429 without retriable-status-codes reaches the client (no retry, no ejection, not a failure for the static answer)", () => {
    const s = run(failover(), { status: { products: 429 } });
    expect(s.steadyState).toMatchObject({ answeredBy: "products", status: 429, tries: 1 });
    expect(s.ejections).toEqual([]);
  });

  it("a primary slower than perTryTimeout 300ms: the fallback answers one per-try timeout later (< 3 s), then the primary is ejected", () => {
    const s = run(failover({ retry: { perTryTimeout: "300ms" } }), { slow: ["products"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "products-cache", tries: 2, waitMs: { min: 300, max: 325 } });
    expect(s.firstRequests.waitMs.max!).toBeLessThan(3_000);
    expect(s.ejections[0]).toMatchObject({ backend: "products", afterRequests: 3 });
    expect(s.steadyState).toMatchObject({ answeredBy: "products-cache", tries: 1 });
  });
});

describe("simulate_failure on the static-response e2e scenarios", () => {
  it("every backend dead, default retries: the static answer, then at once once all are ejected", () => {
    const s = run(chain(2, {}), { down: ["products", "fallback-1"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", status: 418, tries: 3 });
    expect(s.firstRequests.path.map((t) => t.backend)).toEqual(["products", "fallback-1", "products"]);
    expect(s.steadyState).toMatchObject({ answeredBy: "static", status: 418, tries: 0 });
    expect(s.phases.every((p) => p.outcome.answeredBy === "static")).toBe(true);
  });

  it("attempts 0 and three dead backends: one try, then the static answer in place of Envoy's 503", () => {
    const s = run(chain(3, { retry: { attempts: 0 } }), { down: ["products", "fallback-1", "fallback-2"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", tries: 1 });
    expect(s.phases.every((p) => p.outcome.answeredBy === "static")).toBe(true);
  });

  it("attempts 1 and three dead backends: retries run out before the static entry, the static answer still answers", () => {
    const s = run(chain(3, { retry: { attempts: 1 } }), { down: ["products", "fallback-1", "fallback-2"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", tries: 2 });
    expect(s.phases.every((p) => p.outcome.answeredBy === "static")).toBe(true);
  });

  it("every backend hung past perTryTimeout 200ms, attempts 1: the static answer after two per-try timeouts", () => {
    const s = run(chain(2, { retry: { attempts: 1, perTryTimeout: "200ms" } }), { slow: ["products", "fallback-1"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", tries: 2, waitMs: { min: 400, max: 425 } });
    expect(s.phases.every((p) => p.outcome.answeredBy === "static")).toBe(true);
  });

  it("backends answering 503 and retries running out: the static answer, not the last 503", () => {
    const s = run(chain(2, { retry: { attempts: 1 } }), { status: { products: 503, "fallback-1": 503 } });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", status: 418, tries: 2 });
  });

  it("a static answer that is itself a 503 is answered once: never retried", () => {
    const s = run(chain(1, { retry: { attempts: 2 } }, { ...STATIC, status: 503 }), { status: { products: 503 } });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", status: 503, tries: 3 });
    expect(s.firstRequests.path.every((t) => t.backend === "products")).toBe(true);
  });
});

describe("simulate_failure: more of the model", () => {
  it("a drained primary (drain.test.ts): the fallback in one try from the first request", () => {
    const s = run(failover({ drain: ["products"] }), {});
    expect(s.firstRequests).toMatchObject({ answeredBy: "products-cache", tries: 1 });
    expect(s.notes.join(" ")).toContain("products is drained");
  });

  it("attempts 0: no per-try timeout, so a slow primary holds the request for the request timeout", () => {
    const s = run(failover({ retry: { attempts: 0 }, timeouts: { request: "2s" } }), { slow: ["products"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", tries: 1, waitMs: { min: 2000, max: 2000 } });
    expect(s.firstRequests.why).toContain("request timeout");
  });

  it("the request timeout bounds the tries", () => {
    const s = run(failover({ retry: { attempts: 3, perTryTimeout: "1s" }, timeouts: { request: "2500ms" } }), {
      slow: ["products", "products-cache"],
    });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", tries: 3, waitMs: { min: 2500, max: 2500 } });
  });

  it("without fallbackOnRetry, retries go to the primary: the fallback answers only after the ejection", () => {
    const s = run(failover({ retry: { fallbackOnRetry: false } }), { down: ["products"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "static", tries: 3 });
    expect(s.firstRequests.path.every((t) => t.backend === "products")).toBe(true);
    expect(s.steadyState).toMatchObject({ answeredBy: "products-cache", tries: 1 });
  });

  it("a 500 with gateway-error only: not retried, the client gets it until the primary is ejected", () => {
    const s = run(failover(), { status: { products: 500 } });
    expect(s.firstRequests).toMatchObject({ answeredBy: "products", status: 500, tries: 1 });
    expect(s.ejections[0]).toMatchObject({ backend: "products", detail: expect.stringContaining("consecutive5xx") });
    expect(s.steadyState).toMatchObject({ answeredBy: "products-cache", status: 200 });
  });

  it("health checks take a failing fallback out even while it gets no traffic", () => {
    const s = run(failover({ healthCheck: { interval: "2s", unhealthyThreshold: 3 } }), { down: ["products-cache"] });
    expect(s.firstRequests).toMatchObject({ answeredBy: "products", tries: 1 });
    expect(s.ejections).toEqual([
      expect.objectContaining({ backend: "products-cache", by: "health checks", afterMs: 6000 }),
    ]);
  });

  it("ai-providers.test.ts: a provider with ejectOnRateLimit answering 429 is ejected as for 503s, then the next one answers", () => {
    const objects = [
      ...service("shop", "products", 8080, [at("127.0.0.2")]),
      fallbackPolicy("shop", "products", {
        targetRef: { name: "products", port: 8080 },
        fallbacks: [
          { external: { host: "provider-a.example", port: 443, ejectOnRateLimit: true } },
          { external: { host: "provider-b.example", port: 443 } },
        ],
        retry: {
          attempts: 2,
          retryOn: ["connect-failure", "reset", "gateway-error", "retriable-status-codes"],
          retriableStatusCodes: [429],
        },
      }),
    ];
    const s = run(objects, { status: { products: 429, "provider-a.example": 429 } });
    expect(s.ejections).toEqual([expect.objectContaining({ backend: "provider-a.example", by: "outlier detection" })]);
    expect(s.steadyState).toMatchObject({ answeredBy: "provider-b.example", status: 200, tries: 2 });
    expect(s.notes.join(" ")).toContain("provider-a.example's 429 reaches Envoy's route as a 503 (ejectOnRateLimit)");
    // Without the opt-in, A's 429 is retried on B by every request, and A is never ejected.
    const plain = JSON.parse(JSON.stringify(objects).replace(',"ejectOnRateLimit":true', ""));
    const t = run(plain, { status: { products: 429, "provider-a.example": 429 } });
    expect(t.ejections).toEqual([]);
    expect(t.steadyState).toMatchObject({ answeredBy: "provider-b.example", tries: 3 });
  });

  it("maxEjectionPercent below one host's share: never ejected, every request pays the try", () => {
    const s = run(failover({ outlierDetection: { maxEjectionPercent: 50 } }), { down: ["products"] });
    expect(s.ejections).toEqual([]);
    expect(s.steadyState).toMatchObject({ answeredBy: "products-cache", tries: 2 });
  });

  it("names a missing backend, static, or a backend twice: a tool error naming the field", () => {
    const view = pickPolicy(failover(), undefined, { offline: true });
    expect(() => simulate(view, { down: ["nope"] })).toThrow(ToolError);
    expect(() => simulate(view, { down: ["nope"] })).toThrow(
      /scenario\.down\[0\]: "nope" is not a backend of FallbackPolicy shop\/products; the backends of FallbackPolicy shop\/products are products and products-cache/,
    );
    expect(() => simulate(view, { slow: ["static"] })).toThrow(/scenario\.slow\[0\]: the static answer cannot fail/);
    expect(() => simulate(view, { down: ["products"], status: { products: 503 } })).toThrow(
      /scenario\.status\.products: products is named twice/,
    );
  });
});
