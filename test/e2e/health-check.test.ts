// spec.healthCheck, live: a primary that accepts connections and answers requests, but whose
// /healthz says 503, keeps its traffic while only outlier detection judges it (it never
// fails a request), and gets none once the policy asks for health checks: Envoy's own
// checks take it out of rotation. When its /healthz passes again, the traffic comes back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { apply } from "../support/kubectl.ts";
import { until, sleep } from "../support/poll.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { send, startLoad, summarize, type Result } from "../support/load.ts";
import { startStack, type Stack } from "./harness/stack.ts";

const NS = "shop";
let stack: Stack;
let products: Backend;
let cache: Backend;

const host = () => `products.${NS}:${products.port}`;
const productsPolicy = (spec: Record<string, unknown> = {}) =>
  policy(NS, "products", {
    targetRef: { name: "products", port: products.port },
    fallbacks: [
      { service: { name: "cache", port: products.port } },
      { staticResponse: { status: 503, body: "degraded" } },
    ],
    ...spec,
  });
const answer = async () => (await send(stack.proxy.url, host())).backend;

beforeAll(async () => {
  // EndpointSlices may not hold loopback addresses: the backends listen on the machine's own.
  const { address } = backendAddress();
  products = await startBackend({ name: "products", host: address, healthz: 503 });
  // The cache is a Service backend too, so it is checked as well: it passes.
  cache = await startBackend({ name: "cache", host: address, healthz: 200 });
  stack = await startStack({
    name: "health-check",
    namespaces: [NS],
    objects: [
      service(NS, "products", products.port),
      endpointSlice(NS, "products", [products.host], products.port),
      service(NS, "cache", products.port),
      endpointSlice(NS, "cache", [cache.host], cache.port),
      productsPolicy(),
    ],
  });
});

afterAll(async () => {
  await stack?.stop();
  await Promise.all([products?.close(), cache?.close()]);
});

describe("spec.healthCheck through the operator and a real Envoy", () => {
  it("without health checks, the primary that fails only its /healthz keeps the traffic", async () => {
    await until("products through Envoy", async () => (await answer()) === "products");
  });

  it("with them, it gets no traffic: every request reaches the fallback, none fails", async () => {
    const load = startLoad({ url: stack.proxy.url, host: host(), rate: 100 });
    let all: Result[] = [];
    let from = Infinity;
    try {
      await load.waitFor("products under load", (r) => r.backend === "products");
      await apply(stack.kubeconfig, [productsPolicy({ healthCheck: { interval: "1s", timeout: "500ms" } })]);
      await load.waitFor("the cache", (r) => r.backend === "cache", { timeoutMs: 15_000 });
      await sleep(500);
      // Settled: from here on, nothing reaches products but its health checks.
      const hits = await products.hits();
      from = load.now();
      await sleep(3_000);
      expect(await products.hits()).toBe(hits);
    } finally {
      all = await load.stop();
    }
    const settled = summarize(all.filter((r) => r.sentAt >= from));
    console.log(
      `[health check] ${all.length} requests, ${summarize(all).errors} errors; settled: ${settled.total}, ${JSON.stringify(settled.byBackend)}`,
    );
    expect(summarize(all).errors, JSON.stringify(summarize(all).sampleErrors)).toBe(0);
    expect(settled.total).toBeGreaterThan(200);
    expect(settled.byBackend).toEqual({ cache: settled.total });
    const primary = `cluster.${NS}/products/primary`;
    expect(await stack.proxy.stat(`${primary}.health_check.failure`)).toBeGreaterThan(0);
    expect(await stack.proxy.stat(`${primary}.membership_healthy`)).toBe(0);
  });

  it("once its /healthz passes again, the primary has the traffic back within a few checks", async () => {
    await products.setHealthz(200);
    const start = performance.now();
    await until("products back", async () => (await answer()) === "products", 10_000);
    console.log(`[health check] back on products ${Math.round(performance.now() - start)} ms after /healthz passed`);
    // Checks every second also while it has no traffic (no_traffic_interval), one pass to return.
    expect(performance.now() - start).toBeLessThan(5_000);
  });
});
