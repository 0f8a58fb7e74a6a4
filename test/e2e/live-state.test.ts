// Live fallback state, end to end: an Envoy on `fallbackctl bootstrap` pushes its stats to
// the operator, and the policy says who serves right now. Real API server, real operator,
// real Envoy, backends in their own processes killed and restarted under load.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { apply, getJson, kube } from "../support/kubectl.ts";
import { conditionOf, metric } from "../support/operator.ts";
// As eventually: this file's own until waits for a FallbackActive state.
import { sleep, until as eventually } from "../support/poll.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { spawnBackend, type ChildBackend } from "../support/backend.ts";
import { startLoad, type Load } from "../support/load.ts";
import { startStack, type Stack } from "./harness/stack.ts";

const NS = "shop";
let stack: Stack;
let products: ChildBackend;
let productsB: ChildBackend;
let cache: ChildBackend;
let load: Load | undefined;

const statusOf = async () => (await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "products"]))!;
const fallbackActive = async () => {
  const p = await statusOf();
  return {
    ...conditionOf(p, "FallbackActive"),
    active: p.status?.activeBackend,
    rv: p.metadata.resourceVersion,
    backends: p.status?.backends,
  };
};
const events = async (reason: string) =>
  ((
    await getJson(stack.kubeconfig, [
      "events",
      "-n",
      NS,
      "--field-selector",
      `involvedObject.name=products,reason=${reason}`,
    ])
  )?.items ?? []) as { message: string }[];

// A killed backend is ejected after a few failures, a restarted one back within seconds.
const QUICK_EJECTION = { consecutiveGatewayErrors: 3, interval: "1s", baseEjectionTime: "2s", maxEjectionTime: "2s" };
const productsPolicy = (outlierDetection: object = QUICK_EJECTION) =>
  policy(NS, "products", {
    targetRef: { name: "products", port: 8080 },
    fallbacks: [{ service: { name: "cache", port: 8080 } }, { staticResponse: { status: 503, body: "degraded" } }],
    outlierDetection,
  });

/** Waits for FallbackActive to say `reason` with `active` serving; returns how long it took (ms). */
async function until(reason: string, active: string | undefined, timeoutMs = 20_000): Promise<number> {
  const start = performance.now();
  await eventually(
    `FallbackActive ${reason}, ${active} active`,
    async () => {
      const f = await fallbackActive();
      return f.reason === reason && f.active === active;
    },
    timeoutMs,
  );
  return performance.now() - start;
}

beforeAll(async () => {
  const { address } = backendAddress();
  [products, productsB, cache] = await Promise.all([
    spawnBackend({ name: "products", host: address }),
    spawnBackend({ name: "products-b", host: address }),
    spawnBackend({ name: "cache", host: address }),
  ]);
  // The stack's Envoy reports at the default stats interval (5 s): what a user runs.
  stack = await startStack({
    name: "live-state",
    namespaces: [NS],
    objects: [
      service(NS, "products", 8080),
      endpointSlice(NS, "products", [products.host], products.port),
      service(NS, "cache", 8080),
      endpointSlice(NS, "cache", [cache.host], cache.port),
      productsPolicy(),
      // A policy whose backends have never had an endpoint: Envoy sends no stats of such clusters.
      service(NS, "outage", 8080),
      endpointSlice(NS, "outage", [], 8080),
      service(NS, "outage-cache", 8080),
      endpointSlice(NS, "outage-cache", [], 8080),
      policy(NS, "outage", {
        targetRef: { name: "outage", port: 8080 },
        fallbacks: [
          { service: { name: "outage-cache", port: 8080 } },
          { staticResponse: { status: 503, body: "down" } },
        ],
      }),
    ],
  });
  load = startLoad({ url: stack.proxy.url, host: "products.shop:8080", rate: 100, maxDurationMs: 600_000 });
}, 120_000);

afterAll(async () => {
  await load?.stop();
  await stack?.stop();
  await Promise.all([products, productsB, cache].map((b) => b?.close()));
});

describe("who serves, from the Envoys' own stats", () => {
  it("says the primary serves once the Envoy reports", async () => {
    await until("PrimaryServing", "products", 60_000);
    const f = await fallbackActive();
    expect(f.status).toBe("False");
    expect(f.backends.map((b: any) => [b.name, b.healthy])).toEqual([
      ["products", 1],
      ["cache", 1],
      ["static", undefined],
    ]);
  });

  it("backends that never had an endpoint: AllBackendsDown, not NoReports, and the static answer active", async () => {
    const outage = await eventually(
      "the outage policy AllBackendsDown",
      async () => {
        const p = await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "outage"]);
        return conditionOf(p, "FallbackActive")?.reason === "AllBackendsDown" && p;
      },
      30_000,
    );
    expect(conditionOf(outage, "FallbackActive")?.status).toBe("True");
    expect(outage.status.activeBackend).toBe("static");
    expect(outage.status.backends.slice(0, 2).map((b: { healthy?: number }) => b.healthy)).toEqual([0, 0]);
  });

  it("primary killed under load: FallbackActive=True within 10 s, the cache active, a FailedOver Event and the metrics", async () => {
    await products.kill();
    const took = await until("PrimaryUnavailable", "cache");
    console.log(`[live state] primary killed -> status says the cache serves: ${Math.round(took)} ms`);
    expect(took).toBeLessThan(10_000);
    expect((await fallbackActive()).status).toBe("True");
    const failedOver = await eventually("a FailedOver Event", async () => (await events("FailedOver"))[0]);
    expect(failedOver.message).toMatch(/^products -> cache \(PrimaryUnavailable\)/);
    const labels = { namespace: NS, policy: "products" };
    expect(await metric(stack.operator.metricsUrl, "fallback_active_backend", { ...labels, backend: "cache" })).toBe(1);
    expect(await metric(stack.operator.metricsUrl, "fallback_active_backend", { ...labels, backend: "products" })).toBe(
      0,
    );
    expect(await metric(stack.operator.metricsUrl, "fallback_failovers_total", labels)).toBe(1);
    expect(
      await metric(stack.operator.metricsUrl, "fallback_backend_healthy_endpoints", { ...labels, backend: "products" }),
    ).toBe(0);
    expect(
      await metric(stack.operator.metricsUrl, "fallback_backend_requests_total", { ...labels, backend: "cache" }),
    ).toBeGreaterThan(0);
  });

  it("primary back: Recovered", async () => {
    await products.restart();
    const took = await until("PrimaryServing", "products");
    console.log(`[live state] primary restarted -> status says it serves: ${Math.round(took)} ms`);
    const recovered = await eventually("a Recovered Event", async () => (await events("Recovered"))[0]);
    expect(recovered.message).toMatch(/^products serves again/);
  });

  it("every backend down: AllBackendsDown, the static answer active", async () => {
    await Promise.all([products.kill(), cache.kill()]);
    await until("AllBackendsDown", "static");
    await Promise.all([products.restart(), cache.restart()]);
    await until("PrimaryServing", "products");
  });

  it("a partly healthy primary spills to the cache as the status says, and as the traffic shows", async () => {
    // A second primary endpoint, dead: once ejected the primary is half healthy, and
    // Envoy sends it 50% x 1.4 = 70% of new requests, the cache the rest.
    // Ejected for long enough that the dead endpoint does not come back in mid-measure.
    await apply(stack.kubeconfig, [
      productsPolicy({ consecutiveGatewayErrors: 3, interval: "1s", baseEjectionTime: "60s", maxEjectionTime: "60s" }),
    ]);
    await productsB.kill();
    await apply(stack.kubeconfig, [endpointSlice(NS, "products", [productsB.host], productsB.port, "b")]);
    await eventually(
      "the status says 70/30",
      async () => (await fallbackActive()).message?.includes("products 70%, cache 30%"),
      30_000,
    );
    await sleep(1_000);
    const from = load!.now();
    await sleep(10_000);
    const seen = load!.results.filter((r) => r.sentAt >= from);
    const share = seen.filter((r) => r.backend === "products").length / seen.length;
    console.log(
      `[live state] half-healthy primary: ${Math.round(share * 100)}% of ${seen.length} requests to it (derived 70%)`,
    );
    expect(share).toBeGreaterThan(0.65);
    expect(share).toBeLessThan(0.75);
    await kube(stack.kubeconfig, ["delete", "endpointslice", "-n", NS, "products-b"]);
    await until("PrimaryServing", "products");
    await eventually(
      "the primary takes everything again",
      async () => (await fallbackActive()).message?.includes("(new requests: products 100%)"),
      30_000,
    );
  });

  it("writes no status while traffic is steady for 60 s", async () => {
    // Let the last transition's damping pass first.
    await sleep(11_000);
    const outageRv = async () =>
      (await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "outage"]))!.metadata.resourceVersion;
    const before = [(await fallbackActive()).rv, await outageRv()];
    await sleep(60_000);
    expect([(await fallbackActive()).rv, await outageRv()]).toEqual(before);
    expect(load!.results.filter((r) => r.sentAt >= load!.now() - 60_000).length).toBeGreaterThan(5_000);
  }, 90_000);
});
