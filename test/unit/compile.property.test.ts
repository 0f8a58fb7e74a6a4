// Properties of compile over generated clusters: schema-valid policies (with conflicts,
// missing Services and odd EndpointSlices among them) always compile, deterministically,
// with consistent conditions; a sample of outputs is checked by the real Envoy.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { validatePolicy } from "../../operator/src/api/validate.ts";
import { Compiler, compile } from "../../operator/src/compile/compile.ts";
import { TextCache, renderBootstrap, renderConfigFiles } from "../../operator/src/compile/config-files.ts";
import { defaultOptions } from "../../operator/src/compile/snapshot.ts";
import { envoyValidate } from "../support/envoy.ts";

const name = fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/);
const namespace = fc.constantFrom("shop", "team", "default");
const port = fc.oneof(fc.constantFrom(80, 443, 8080), fc.integer({ min: 1, max: 65535 }));
const ms = fc.integer({ min: 1, max: 120_000 });
const duration = (n: number) => (n % 1000 === 0 ? `${n / 1000}s` : `${n}ms`);
const orderedDurations = fc
  .tuple(ms, ms)
  .map(([a, b]) => [duration(Math.min(a, b)), duration(Math.max(a, b))] as const);

const external = fc.record(
  {
    host: fc.constantFrom("api.backup.example", "192.0.2.7", "llm.provider.example"),
    port,
    tls: fc.boolean(),
    sni: fc.constantFrom("api.backup.example", "sni.example"),
    hostRewrite: fc.boolean(),
  },
  { requiredKeys: ["host", "port"] },
);
const staticResponse = fc.record(
  {
    status: fc.integer({ min: 200, max: 599 }),
    body: fc.string({ maxLength: 40 }),
    headers: fc.dictionary(fc.stringMatching(/^[a-z][a-z-]{0,10}$/), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
  },
  { requiredKeys: [] },
);
const middleFallback = fc.oneof(fc.record({ service: fc.record({ name, port }) }), fc.record({ external }));
const fallbacks = fc
  .tuple(fc.array(middleFallback, { minLength: 0, maxLength: 6 }), fc.option(staticResponse, { nil: undefined }))
  .map(([middle, last]) => (last ? [...middle, { staticResponse: last }] : middle))
  .filter((list) => list.length > 0);

const retry = fc.record(
  {
    attempts: fc.integer({ min: 0, max: 10 }),
    perTryTimeout: ms.map(duration),
    retryOn: fc.uniqueArray(
      fc.constantFrom(
        "5xx",
        "gateway-error",
        "reset",
        "connect-failure",
        "refused-stream",
        "retriable-4xx",
        "envoy-ratelimited",
      ),
    ),
    backoff: orderedDurations.map(([baseInterval, maxInterval]) => ({ baseInterval, maxInterval })),
    budget: fc.record({ percent: fc.integer({ min: 0, max: 100 }), minConcurrency: fc.integer({ min: 0, max: 100 }) }),
    fallbackOnRetry: fc.boolean(),
  },
  { requiredKeys: [] },
);
const outlierDetection = fc
  .record(
    {
      consecutive5xx: fc.integer({ min: 1, max: 100 }),
      splitExternalLocalOriginErrors: fc.boolean(),
      interval: ms.map(duration),
      ejection: orderedDurations,
      maxEjectionPercent: fc.integer({ min: 0, max: 100 }),
      failurePercentage: fc.record({ threshold: fc.integer({ min: 0, max: 100 }) }),
    },
    { requiredKeys: [] },
  )
  .map(({ ejection, ...rest }) =>
    ejection ? { ...rest, baseEjectionTime: ejection[0], maxEjectionTime: ejection[1] } : rest,
  );

const healthCheck = fc.record(
  {
    path: fc.constantFrom("/healthz", "/ready", "/status?full=1"),
    interval: ms.map(duration),
    timeout: ms.map(duration),
    unhealthyThreshold: fc.integer({ min: 1, max: 5 }),
    healthyThreshold: fc.integer({ min: 1, max: 5 }),
  },
  { requiredKeys: [] },
);

/** The names spec.drain may give a policy's backends (status.backends' names). */
const backendNames = (target: { name: string }, fallbacks: any[]) => [
  ...new Set([
    target.name,
    ...fallbacks.flatMap((f) => (f.service ? [f.service.name] : f.external ? [f.external.host] : [])),
  ]),
];

const policy = fc
  .record({
    namespace,
    name,
    target: fc.record({ name, port }),
    fallbacks,
    retry,
    outlierDetection,
    created: fc.integer({ min: 0, max: 5 }),
    drain: fc.option(fc.array(fc.nat(), { maxLength: 3 }), { nil: undefined }),
    healthCheck: fc.option(healthCheck, { nil: undefined }),
  })
  .map(({ namespace, name, target, fallbacks, retry, outlierDetection, created, drain, healthCheck }) => {
    const names = backendNames(target, fallbacks);
    return {
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name, namespace, creationTimestamp: `2026-11-0${created + 1}T00:00:00Z` },
      spec: {
        targetRef: target,
        fallbacks,
        retry,
        outlierDetection,
        ...(drain ? { drain: [...new Set(drain.map((i) => names[i % names.length]!))] } : {}),
        ...(healthCheck ? { healthCheck } : {}),
      },
    };
  })
  // Only what the schema and CEL rules accept (for instance no self-fallback).
  .filter((p) => validatePolicy(p).ok);

const service = fc
  .record({ namespace, name, ports: fc.uniqueArray(port, { minLength: 1, maxLength: 3 }) })
  .map((s) => ({
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: s.name, namespace: s.namespace },
    spec: { ports: s.ports.map((p) => ({ port: p })) },
  }));

const address = fc.oneof(fc.ipV4(), fc.constantFrom("fd00::1", "fd00::2", "2001:db8::5"));
const slice = fc
  .record({
    namespace,
    service: name,
    v6: fc.boolean(),
    port,
    endpoints: fc.array(fc.record({ a: address, ready: fc.option(fc.boolean()) }), { maxLength: 4 }),
  })
  .map((s) => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${s.service}-x`, namespace: s.namespace, labels: { "kubernetes.io/service-name": s.service } },
    addressType: s.v6 ? "IPv6" : "IPv4",
    ports: [{ port: s.port }],
    endpoints: s.endpoints
      .filter((e) => e.a.includes(":") === s.v6)
      .map((e) => ({ addresses: [e.a], ...(e.ready === null ? {} : { conditions: { ready: e.ready } }) })),
  }));

const snapshot = fc.record({
  policies: fc.array(policy, { maxLength: 8 }),
  services: fc.array(service, { maxLength: 8 }),
  endpointSlices: fc.array(slice, { maxLength: 6 }),
});

/** A policy's spec with another retry count, and on some `at` a backend drained or undrained, or health checks toggled. */
function replacedSpec(spec: any, at: number): any {
  const { drain, healthCheck, ...rest } = spec;
  const names = backendNames(spec.targetRef, spec.fallbacks);
  const drained = at % 2 === 1 ? (drain?.length ? drain.slice(1) : [names[at % names.length]]) : drain;
  const checked = at % 3 === 2 ? (healthCheck ? undefined : { interval: "2s" }) : healthCheck;
  return {
    ...rest,
    retry: { attempts: at % 5 },
    ...(drained ? { drain: drained } : {}),
    ...(checked ? { healthCheck: checked } : {}),
  };
}

// Service shop/web with ports 80 and 8080, and a policy on one of its ports.
const webService = {
  apiVersion: "v1",
  kind: "Service",
  metadata: { name: "web", namespace: "shop" },
  spec: { ports: [{ port: 80 }, { port: 8080 }] },
};
const policyOnWeb = (name: string, port: number) => ({
  apiVersion: "fallback.dev/v1alpha1",
  kind: "FallbackPolicy",
  metadata: { name, namespace: "shop" },
  spec: { targetRef: { name: "web", port }, fallbacks: [{ staticResponse: { status: 503 } }] },
});

describe("compile, over generated clusters", () => {
  it("never throws, is deterministic, and reports consistent conditions", () => {
    fc.assert(
      fc.property(snapshot, (s) => {
        const first = compile(s as any);
        expect(JSON.stringify(compile(structuredClone(s) as any))).toBe(JSON.stringify(first));
        for (const result of first.results) {
          const accepted = result.conditions[0]!;
          // Stalled (kstatus: Failed) exactly when not accepted, with Accepted's reason and message.
          const stalled =
            accepted.status === "True"
              ? []
              : [{ type: "Stalled", status: "True", reason: accepted.reason, message: accepted.message }];
          expect(result.conditions.map((c) => c.type)).toEqual([
            "Accepted",
            "ResolvedRefs",
            "Programmed",
            "Ready",
            ...stalled.map((c) => c.type),
          ]);
          expect(result.conditions.slice(4)).toEqual(stalled);
          const othersTrue = result.conditions.slice(0, 3).every((c) => c.status === "True");
          expect(result.conditions[3]!.status).toBe(othersTrue ? "True" : "False");
        }
      }),
      { numRuns: 300 },
    );
  });

  it("gives, when it reuses the objects of the last compile (as the operator's syncs do), what a fresh compile gives", () => {
    // The second snapshot keeps some objects of the first (the very same objects) and adds new ones.
    const mix = <T>(kept: T[], keep: boolean[], added: T[]) => [
      ...kept.filter((_, i) => keep[i % keep.length] ?? true),
      ...added,
    ];
    const render = (out: ReturnType<typeof compile>, texts?: TextCache) => ({
      results: JSON.stringify(out.results),
      files: renderConfigFiles(out.resources, defaultOptions, texts).files,
    });
    fc.assert(
      fc.property(snapshot, snapshot, fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), (first, second, keep) => {
        const compiler = new Compiler(defaultOptions);
        const texts = new TextCache();
        render(compiler.compile(first as any), texts);
        render(compiler.compile(first as any), texts);
        const next = {
          policies: mix(first.policies, keep, second.policies),
          services: mix(
            first.services,
            keep.map((k) => !k),
            second.services,
          ),
          endpointSlices: mix(first.endpointSlices, keep, second.endpointSlices),
        };
        const fresh = render(compile(structuredClone(next) as any));
        expect(render(compiler.compile(next as any), texts)).toEqual(fresh);
        expect(render(compiler.compile(next as any), texts)).toEqual(fresh);
      }),
      { numRuns: 200 },
    );
  });

  it("gives, when some objects were replaced in place (what most syncs are), what a fresh compile gives", () => {
    // Replacements at the same places: policies with another retry count or none, a backend
    // drained or undrained, health checks added or removed; Services with other ports, slices
    // with other endpoints. The Compiler may work out only those.
    const render = (out: ReturnType<typeof compile>, texts?: TextCache) => ({
      results: JSON.stringify(out.results),
      files: renderConfigFiles(out.resources, defaultOptions, texts).files,
      xds: JSON.stringify(
        Object.fromEntries(
          Object.entries(out.resources).map(([t, list]) => [t, list.map((r) => [r.name, r.owners, r.value()]).sort()]),
        ),
      ),
    });
    fc.assert(
      fc.property(
        snapshot,
        fc.array(fc.nat(), { maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        fc.array(fc.nat(), { maxLength: 3 }),
        (first, policyAt, serviceAt, sliceAt) => {
          const compiler = new Compiler(defaultOptions);
          const texts = new TextCache();
          const withTargets = {
            ...first,
            services: [
              ...first.services,
              ...first.policies.map((p: any) => ({
                apiVersion: "v1",
                kind: "Service",
                metadata: { name: p.spec.targetRef.name, namespace: p.metadata.namespace },
                spec: { ports: [{ port: p.spec.targetRef.port }] },
              })),
            ],
          };
          render(compiler.compile(withTargets as any), texts);
          const next = {
            policies: [...withTargets.policies],
            services: [...withTargets.services],
            endpointSlices: [...withTargets.endpointSlices],
          } as any;
          for (const at of policyAt)
            if (next.policies.length) {
              const i = at % next.policies.length;
              next.policies[i] = { ...next.policies[i], spec: replacedSpec(next.policies[i].spec, at) };
            }
          for (const at of serviceAt)
            if (next.services.length) {
              const i = at % next.services.length;
              next.services[i] = {
                ...next.services[i],
                spec: { ports: [...next.services[i].spec.ports, { port: 1 + (at % 1000) }] },
              };
            }
          for (const at of sliceAt)
            if (next.endpointSlices.length) {
              const i = at % next.endpointSlices.length;
              next.endpointSlices[i] = { ...next.endpointSlices[i], endpoints: [] };
            }
          const fresh = render(compile(structuredClone(next)));
          expect(render(compiler.compile(next), texts)).toEqual(fresh);
          expect(render(compiler.compile(next), texts)).toEqual(fresh);
        },
      ),
      // PROP_SEED replays the seed a failure names.
      { numRuns: 300, ...(process.env["PROP_SEED"] ? { seed: Number(process.env["PROP_SEED"]) } : {}) },
    );
  });

  it("reports the second of two policies of one key as Conflicted, also after a Service changed in place", () => {
    // The property test's counterexample of seed -2085559186: files can hold two objects of one key.
    const policy = () => ({
      apiVersion: "fallback.dev/v1alpha1",
      kind: "FallbackPolicy",
      metadata: { name: "s", namespace: "default", creationTimestamp: "2026-11-01T00:00:00Z" },
      spec: { targetRef: { name: "a", port: 1 }, fallbacks: [{ staticResponse: {} }] },
    });
    const service = (ports: number[]) => ({
      apiVersion: "v1",
      kind: "Service",
      metadata: { name: "a", namespace: "default" },
      spec: { ports: ports.map((port) => ({ port })) },
    });
    const first = { policies: [policy(), policy()], services: [service([1])], endpointSlices: [] };
    const compiler = new Compiler(defaultOptions);
    compiler.compile(first as any);
    const next = { ...first, services: [service([1, 2])] };
    const reasons = (out: ReturnType<typeof compile>) =>
      out.results.map((r) => r.conditions.find((c) => c.type === "Accepted")?.reason);
    expect(reasons(compiler.compile(next as any))).toEqual(["Accepted", "Conflicted"]);
    expect(reasons(compile(structuredClone(next) as any))).toEqual(["Accepted", "Conflicted"]);
  });

  it("moves the bare Service names to a new policy on port 80, also when the old policy's IR is reused", () => {
    const alt = policyOnWeb("alt", 8080);
    const before = { policies: [alt], services: [webService], endpointSlices: [] };
    const compiler = new Compiler(defaultOptions);
    compiler.compile(before as any);
    const reused = compiler.compile(before as any);
    const domains = (out: ReturnType<typeof compile>) =>
      out.resources.route
        .flatMap((r) => r.virtualHosts!)
        .map((v) => v.value() as any)
        .map((h) => [h.name, h.domains]);
    expect(domains(reused)).toEqual([["shop/alt", expect.arrayContaining(["web", "web:8080"])]]);
    const after = { policies: [alt, policyOnWeb("main", 80)], services: [webService], endpointSlices: [] };
    const fresh = compile(structuredClone(after) as any);
    const incremental = compiler.compile(after as any);
    expect(domains(incremental)[0]![1]).not.toContain("web");
    expect(renderConfigFiles(incremental.resources, defaultOptions).files).toEqual(
      renderConfigFiles(fresh.resources, defaultOptions).files,
    );
    expect(JSON.stringify(incremental.results)).toBe(JSON.stringify(fresh.results));
  });

  it("hands out the same result object while a policy's part of the config stays, and a new one when it changes", () => {
    // The operator compares results by identity to skip working out unchanged statuses.
    const alt = policyOnWeb("alt", 8080);
    const resultOf = (out: ReturnType<typeof compile>, name: string) =>
      out.results.find((r) => r.key === `shop/${name}`)!;
    const compiler = new Compiler(defaultOptions);
    const compile = (snapshot: any) => compiler.compile(snapshot);
    const first = compile({ policies: [alt], services: [webService], endpointSlices: [] } as any);
    const again = compile({ policies: [alt], services: [webService], endpointSlices: [] } as any);
    expect(resultOf(again, "alt")).toBe(resultOf(first, "alt"));
    expect(compile({ policies: [alt], services: [{ ...webService }], endpointSlices: [] } as any).results[0]).not.toBe(
      resultOf(first, "alt"),
    );
    // alt itself is unchanged, but a policy on port 80 takes the bare names from it.
    const services = [webService];
    compile({ policies: [alt], services, endpointSlices: [] } as any);
    const before = compile({ policies: [alt], services, endpointSlices: [] } as any);
    const after = compile({ policies: [alt, policyOnWeb("main", 80)], services, endpointSlices: [] } as any);
    expect(resultOf(after, "alt")).not.toBe(resultOf(before, "alt"));
    expect(resultOf(after, "alt").configHash).not.toBe(resultOf(before, "alt").configHash);
    expect(
      resultOf(compile({ policies: [alt, policyOnWeb("main", 80)], services, endpointSlices: [] } as any), "alt"),
    ).toBe(resultOf(after, "alt"));
  });

  it("produces bootstraps the real Envoy accepts", () => {
    // Every target gets its Service, so most policies are programmed and Envoy sees real
    // clusters and routes; samples with fewer than two programmed policies are skipped.
    const withTargets = snapshot.map((s) => ({
      ...s,
      services: [
        ...s.services,
        ...s.policies.map((p: any) => ({
          apiVersion: "v1",
          kind: "Service",
          metadata: { name: p.spec.targetRef.name, namespace: p.metadata.namespace },
          spec: { ports: [{ port: p.spec.targetRef.port }] },
        })),
      ],
    }));
    const programmed = (s: unknown) =>
      compile(s as any).results.filter((r) => r.conditions[2]!.status === "True").length;
    const samples = fc.sample(
      withTargets.filter((s) => programmed(s) >= 2),
      { numRuns: 6, seed: 42 },
    );
    for (const s of samples) {
      const { resources } = compile(s as any);
      expect(resources.cluster.length).toBeGreaterThan(2);
      expect(envoyValidate(renderBootstrap(resources, defaultOptions))).toBe("");
    }
  });
});
