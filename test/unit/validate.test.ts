import { describe, expect, it } from "vitest";
import { formatError, validatePolicy } from "../../operator/src/api/validate.ts";
import { examplePolicies, invalidFixtures } from "../support/fixtures.ts";

describe("offline validator", () => {
  it.each(invalidFixtures().map((f) => [f.name, f] as const))("rejects %s on its field", (_, fixture) => {
    const result = validatePolicy(fixture.object);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.errors.map((e) => e.path)).toContain(fixture.field);
  });

  it.each(examplePolicies().map((p) => [p.metadata.name, p] as const))("accepts example %s", (_, policy) => {
    expect(validatePolicy(policy)).toMatchObject({ ok: true });
  });

  it("fills in every default, as the API server does", () => {
    const result = validatePolicy({
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "p", namespace: "shop" },
      spec: {
        targetRef: { name: "products", port: 8080 },
        fallbacks: [{ external: { host: "api.example", port: 443 } }],
      },
    });
    expect(result.ok && result.policy.spec).toEqual({
      targetRef: { kind: "Service", name: "products", port: 8080 },
      fallbacks: [
        {
          external: {
            host: "api.example",
            port: 443,
            hostRewrite: true,
            forwardClientCredentials: false,
            ejectOnRateLimit: false,
          },
        },
      ],
      retry: {
        attempts: 2,
        perTryTimeout: "1s",
        retryOn: ["connect-failure", "refused-stream", "reset", "gateway-error"],
        backoff: { baseInterval: "25ms", maxInterval: "250ms" },
        fallbackOnRetry: true,
      },
      outlierDetection: {
        consecutive5xx: 3,
        consecutiveGatewayErrors: 3,
        consecutiveLocalOriginFailures: 3,
        splitExternalLocalOriginErrors: false,
        interval: "1s",
        baseEjectionTime: "10s",
        maxEjectionTime: "300s",
        maxEjectionPercent: 100,
      },
      circuitBreaker: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 64 },
      timeouts: { request: "15s", connect: "1s", idle: "1h" },
    });
  });

  describe("drain", () => {
    const withDrain = (
      drain: string[],
      fallbacks: object[] = [
        { service: { name: "cache", port: 8080 } },
        { external: { host: "api.backup.example", port: 443 } },
        { staticResponse: {} },
      ],
    ) =>
      validatePolicy({
        apiVersion: "fallback.dev/v1alpha1",
        kind: "FallbackPolicy",
        metadata: { name: "p", namespace: "shop" },
        spec: { targetRef: { name: "products", port: 8080 }, fallbacks, drain },
      });
    const errorsOf = (result: ReturnType<typeof validatePolicy>) => (result.ok ? [] : result.errors);

    it("accepts the names status.backends gives: the target, a Service fallback, an external host", () => {
      expect(withDrain(["products", "cache", "api.backup.example"])).toMatchObject({ ok: true });
      expect(withDrain([])).toMatchObject({ ok: true });
    });

    it("rejects a name that is no backend of the policy, saying which names are", () => {
      expect(errorsOf(withDrain(["products", "cahce"]))).toEqual([
        {
          path: "spec.drain",
          message:
            "each drain name must be a backend of this policy: targetRef.name, a fallback's service.name or an external fallback's host",
        },
      ]);
    });

    it("rejects draining the static response, and says why", () => {
      expect(errorsOf(withDrain(["static"]))).toEqual([
        {
          path: "spec.drain",
          message:
            "the static response cannot be drained: it is the answer of last resort when every backend before it is down or drained",
        },
      ]);
    });

    it("lets a Service that is called static be drained", () => {
      expect(withDrain(["static"], [{ service: { name: "static", port: 80 } }, { staticResponse: {} }])).toMatchObject({
        ok: true,
      });
    });

    it("rejects a name given twice, and more names than a policy has backends", () => {
      expect(errorsOf(withDrain(["cache", "cache"])).map((e) => e.path)).toEqual(["spec.drain[1]"]);
      expect(errorsOf(withDrain(Array.from({ length: 10 }, (_, i) => `b${i}`)))[0]).toMatchObject({
        path: "spec.drain",
      });
    });
  });

  it("fills in the health check's defaults", () => {
    const result = validatePolicy({
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "p", namespace: "shop" },
      spec: { targetRef: { name: "products", port: 8080 }, fallbacks: [{ staticResponse: {} }], healthCheck: {} },
    });
    expect(result.ok && result.policy.spec.healthCheck).toEqual({
      path: "/healthz",
      interval: "5s",
      timeout: "1s",
      unhealthyThreshold: 2,
      healthyThreshold: 1,
    });
  });

  it("never modifies its input", () => {
    const input = {
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "p" },
      spec: { targetRef: { name: "a", port: 1 }, fallbacks: [{ staticResponse: {} }] },
    };
    const copy = structuredClone(input);
    validatePolicy(input);
    expect(input).toEqual(copy);
  });

  it("copies input that is not plain data, and sees a __proto__ key as the field it is", () => {
    const spec = { targetRef: { name: "a", port: 1 }, fallbacks: [{ staticResponse: {} }] };
    const base = {
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "p", creationTimestamp: new Date(0) },
    };
    expect(validatePolicy({ ...base, spec })).toMatchObject({ ok: true });
    const sneaky = JSON.parse(
      JSON.stringify({ ...base, spec }).replace('"targetRef"', '"__proto__":{"x":1},"targetRef"'),
    );
    const result = validatePolicy(sneaky);
    expect(result.ok ? [] : result.errors).toEqual([{ path: "spec.__proto__", message: "unknown field" }]);
  });

  it("formats an error with the object and the field", () => {
    const object = { metadata: { name: "products", namespace: "shop" } };
    expect(formatError(object, { path: "spec.retry.attempts", message: "must be >= 0" })).toBe(
      "FallbackPolicy shop/products: spec.retry.attempts: must be >= 0",
    );
  });

  it("rejects an object that is not a FallbackPolicy", () => {
    const result = validatePolicy({ apiVersion: "v1", kind: "Service", metadata: { name: "Bad Name" } });
    expect(result.ok ? [] : result.errors.map((e) => e.path)).toEqual(["apiVersion", "kind", "metadata.name", "spec"]);
  });
});
