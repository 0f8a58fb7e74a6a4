// set_drain through `fallbackctl mcp --allow-writes`, live: the SDK's client calls the tool,
// the API server takes the write, the operator serves it to a real Envoy over xDS, and the
// traffic (200 req/s) moves to the fallback without one failed request; get_policy and
// list_policies then say who serves and why (the Envoy's own reports). Undraining brings
// the traffic back. Over stdio and over Streamable HTTP.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { until, sleep } from "../support/poll.ts";
import { getJson } from "../support/kubectl.ts";
import { call, httpSession, stdioSession, type Session } from "../integration/mcp/harness.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { envoyAvailable } from "../support/envoy.ts";
import { between, send, startLoad, summarize, type Result } from "../support/load.ts";
import { startStack, type Stack } from "./harness/stack.ts";

const NS = "shop";
let stack: Stack;
let products: Backend;
let cache: Backend;

const host = () => `products.${NS}:${products.port}`;

beforeAll(async () => {
  if (!envoyAvailable()) return;
  // EndpointSlices may not hold loopback addresses: the backends listen on the machine's own.
  const { address } = backendAddress();
  products = await startBackend({ name: "products", host: address });
  cache = await startBackend({ name: "cache", host: address });
  stack = await startStack({
    name: "mcp-drain",
    namespaces: [NS],
    objects: [
      service(NS, "products", products.port),
      endpointSlice(NS, "products", [products.host], products.port),
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

/** The last request after `from` that went elsewhere than `backend`: when the traffic settled there. */
const settledOn = (results: Result[], backend: string, from: number, to: number) =>
  Math.max(
    from,
    ...between(results, from, to)
      .filter((r) => r.backend !== backend)
      .map((r) => r.sentAt),
  );

const fallbackActive = (p: any) => p?.status?.conditions?.find((c: any) => c.type === "FallbackActive");

describe.skipIf(!envoyAvailable())("set_drain through fallbackctl mcp, the operator and a real Envoy", () => {
  for (const transport of ["stdio", "Streamable HTTP"] as const) {
    it(`over ${transport}: the drain moves the traffic within a second with no client error, the status says why, undrain brings it back`, async () => {
      const args = ["--kubeconfig", stack.kubeconfig, "--allow-writes"];
      const session: Session =
        transport === "stdio" ? await stdioSession({ args }) : await httpSession({ args, negotiation: "auto" });
      const load = startLoad({ url: stack.proxy.url, host: host(), rate: 200 });
      let results: Result[] = [];
      let [drainCalled, drained, undrain, undrained] = [0, 0, 0, 0];
      try {
        await until("products through Envoy", async () => (await send(stack.proxy.url, host())).backend === "products");
        await load.waitFor("products under load", (r) => r.backend === "products");
        // The Envoy's reports say the primary serves (and a previous run's drain is over).
        await until(
          "FallbackActive False (PrimaryServing)",
          async () =>
            fallbackActive(await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "products"]))?.reason ===
            "PrimaryServing",
          30_000,
        );
        await sleep(1_000);

        drainCalled = load.now();
        const drain = await call(session, "set_drain", {
          namespace: NS,
          name: "products",
          backends: ["products"],
          reason: `game day (${transport})`,
        });
        drained = load.now();
        expect(drain.isError, drain.text).toBe(false);
        expect(drain.data).toMatchObject({
          after: ["products"],
          dryRun: { drain: ["products"] },
          event: { recorded: true },
        });
        await load.waitFor("the cache after the drain", (r) => r.backend === "cache", {
          sinceMs: drained,
          timeoutMs: 10_000,
        });

        // The Envoy's next stats report reaches the operator: the tools say who serves, and why.
        const detail = await until(
          "get_policy: FallbackActive PrimaryDrained",
          async () => {
            const r = await call(session, "get_policy", { namespace: NS, name: "products" });
            return fallbackActive({ status: r.data.status })?.reason === "PrimaryDrained" && r;
          },
          20_000,
        );
        expect(detail.data.status.activeBackend).toBe("cache");
        expect(detail.data.status.backends[0]).toMatchObject({ name: "products", drained: true });
        expect(detail.text).toContain("FallbackActive=True (PrimaryDrained), cache serves");
        expect(detail.data.events.map((e: any) => e.reason)).toContain("DrainChanged");
        const listed = await call(session, "list_policies", { namespace: NS });
        expect(listed.data.policies[0]).toMatchObject({
          name: "products",
          activeBackend: "cache",
          fallbackActive: { status: "True", reason: "PrimaryDrained" },
          drained: ["products"],
        });

        undrain = load.now();
        const back = await call(session, "set_drain", {
          namespace: NS,
          name: "products",
          backends: [],
          reason: `game day over (${transport})`,
        });
        undrained = load.now();
        expect(back.isError, back.text).toBe(false);
        await load.waitFor("products after the undrain", (r) => r.backend === "products", {
          sinceMs: undrained,
          timeoutMs: 10_000,
        });
        await sleep(2_000);
      } finally {
        results = await load.stop();
        await session.close();
      }
      const summary = summarize(results);
      // From the moment the tool was called: its dry run, write and Event, then the operator and Envoy.
      const toCache = settledOn(results, "cache", drainCalled, undrain) - drainCalled;
      const toProducts = settledOn(results, "products", undrain, Infinity) - undrain;
      console.log(
        `[mcp-drain] ${transport}: ${summary.total} requests, ${summary.errors} errors, ${JSON.stringify(summary.byBackend)}; set_drain took ${Math.round(drained - drainCalled)} ms, all on the cache ${Math.round(toCache)} ms after it was called; the undrain took ${Math.round(undrained - undrain)} ms, back on products ${Math.round(toProducts)} ms after it was called`,
      );
      expect(summary.errors, JSON.stringify(summary.sampleErrors)).toBe(0);
      expect(toCache).toBeLessThan(1_500);
      expect(toProducts).toBeLessThan(1_500);
      expect(between(results, drained + 1_000, undrain).every((r) => r.backend === "cache")).toBe(true);
      // The policy is as it was.
      expect((await getJson(stack.kubeconfig, ["fallbackpolicy", "-n", NS, "products"]))?.spec?.drain).toBeUndefined();
    });
  }
});
