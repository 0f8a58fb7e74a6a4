// spec.drain, live: kubectl patch -> operator -> xDS -> Envoy, under 200 req/s. Draining the
// primary moves new requests to the fallback within a second, and not one request fails
// (those in flight on the primary finish there); undraining it brings the traffic back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { until, sleep } from "../support/poll.ts";
import { getJson } from "../support/kubectl.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { between, send, startLoad, summarize, type Result } from "../support/load.ts";
import { startStack, type Stack } from "./harness/stack.ts";

const NS = "shop";
let stack: Stack;
let products: Backend;
let cache: Backend;

const host = () => `products.${NS}:${products.port}`;
const patch = (patch: object[] | object) =>
  stack.kubectl([
    "patch",
    "fallbackpolicy",
    "-n",
    NS,
    "products",
    "--type",
    Array.isArray(patch) ? "json" : "merge",
    "-p",
    JSON.stringify(patch),
  ]);
const backendsStatus = async () =>
  (await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "products"]))?.status?.backends;

beforeAll(async () => {
  // EndpointSlices may not hold loopback addresses: the backends listen on the machine's own.
  const { address } = backendAddress();
  products = await startBackend({ name: "products", host: address });
  cache = await startBackend({ name: "cache", host: address });
  stack = await startStack({
    name: "drain",
    namespaces: [NS],
    objects: [
      service(NS, "products", products.port),
      endpointSlice(NS, "products", [products.host], products.port),
      // The cache's Service port is products' (the policy stays short); its endpoint has its own.
      service(NS, "cache", products.port),
      endpointSlice(NS, "cache", [cache.host], cache.port),
      policy(NS, "products", {
        targetRef: { name: "products", port: products.port },
        fallbacks: [
          { service: { name: "cache", port: products.port } },
          { staticResponse: { status: 503, body: "degraded" } },
        ],
      }),
    ],
  });
});

afterAll(async () => {
  await stack?.stop();
  await Promise.all([products?.close(), cache?.close()]);
});

/** When the traffic settled on `backend` after `from`: the sending time of the last request after `from` that went elsewhere (or `from`). */
const settledOn = (results: Result[], backend: string, from: number, to: number) =>
  Math.max(
    from,
    ...between(results, from, to)
      .filter((r) => r.backend !== backend)
      .map((r) => r.sentAt),
  );

describe("spec.drain through the operator and a real Envoy", () => {
  it("kubectl patch of a drain under 200 req/s: no client error, the fallback within a second, and back after undrain", async () => {
    await until("products through Envoy", async () => (await send(stack.proxy.url, host())).backend === "products");
    const load = startLoad({ url: stack.proxy.url, host: host(), rate: 200 });
    let results: Result[] = [];
    let [drained, undrain, undrained] = [0, 0, 0];
    try {
      await load.waitFor("products under load", (r) => r.backend === "products");
      await sleep(1_000);
      const drain = load.now();
      await patch({ spec: { drain: ["products"] } });
      // From here the API server has the change: what follows is the operator's and Envoy's part.
      drained = load.now();
      console.log(`[drain] kubectl patch took ${Math.round(drained - drain)} ms`);
      await load.waitFor("the cache after the drain", (r) => r.backend === "cache", {
        sinceMs: drained,
        timeoutMs: 10_000,
      });
      const status = await until("status says drained", async () => {
        const backends = await backendsStatus();
        return backends?.[0]?.drained === true && backends;
      });
      expect(status.map((b: any) => [b.name, b.drained])).toEqual([
        ["products", true],
        ["cache", false],
        ["static", false],
      ]);
      const primary = `${NS}/products/primary`;
      // The primary's host is still there, draining: not healthy, yet not removed.
      await until(
        "the primary's host draining in Envoy",
        async () =>
          (await stack.proxy.hosts(primary)).map((h) => h.edsHealth).join() === "DRAINING" &&
          (await stack.proxy.stat(`cluster.${primary}.membership_healthy`)) === 0,
      );
      // The Envoy's next stats report tells the operator: the policy says why the cache serves.
      await until(
        "FallbackActive PrimaryDrained",
        async () => {
          const p = await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "products"]);
          const c = p?.status?.conditions?.find((c: any) => c.type === "FallbackActive");
          return c?.status === "True" && c.reason === "PrimaryDrained" && p.status.activeBackend === "cache";
        },
        20_000,
      );
      undrain = load.now();
      await patch([{ op: "remove", path: "/spec/drain" }]);
      undrained = load.now();
      await load.waitFor("products after the undrain", (r) => r.backend === "products", {
        sinceMs: undrained,
        timeoutMs: 10_000,
      });
      await sleep(2_000);
    } finally {
      results = await load.stop();
    }
    const summary = summarize(results);
    const toCache = settledOn(results, "cache", drained, undrain) - drained;
    const toProducts = settledOn(results, "products", undrained, Infinity) - undrained;
    console.log(
      `[drain] ${summary.total} requests, ${summary.errors} errors, ${JSON.stringify(summary.byBackend)}; all on the cache ${Math.round(toCache)} ms after the patch, back on products ${Math.round(toProducts)} ms after the undrain`,
    );
    expect(summary.errors, JSON.stringify(summary.sampleErrors)).toBe(0);
    expect(toCache).toBeLessThan(1_000);
    expect(toProducts).toBeLessThan(1_000);
    // Between the two, the settled drain: every request on the cache.
    expect(between(results, drained + 1_000, undrain).every((r) => r.backend === "cache")).toBe(true);
    expect(between(results, undrained + 1_000).every((r) => r.backend === "products")).toBe(true);
  });
});
