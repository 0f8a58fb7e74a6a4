// A partial failure, end to end: the primary fully ejected and the fallback with fewer than
// half of its hosts healthy. The aggregate cluster weighs its members by their health with a
// panic threshold of its own; were it Envoy's default (50 %), the aggregate would panic here
// and spread requests over every member by host count, the ejected primary included. With
// the threshold at 0 every request goes to the fallback's one healthy host.
//
//   products        (primary, 1 host)       127.0.0.2   answers 503 once broken
//   products-cache  (fallback, 3 hosts)     127.0.0.3   ok
//                                           127.0.0.4   answers 503 once broken
//                                           127.0.0.5   answers 503 once broken
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBackend, type Backend } from "../support/backend.ts";
import { envoyAvailable } from "../support/envoy.ts";
import { fallbackPolicy, service, startGateway, type Gateway } from "../support/gateway.ts";
import { sleep, until } from "../support/poll.ts";
import { between, startLoad, summarize } from "../support/load.ts";

const HOST = "products.shop:8080";

let primary: Backend;
let healthy: Backend;
let broken: Backend[];
let gateway: Gateway;

beforeAll(async () => {
  if (!envoyAvailable()) return;
  primary = await startBackend({ name: "primary", host: "127.0.0.2" });
  healthy = await startBackend({ name: "cache-ok", host: "127.0.0.3" });
  broken = [
    await startBackend({ name: "cache-bad-1", host: "127.0.0.4" }),
    await startBackend({ name: "cache-bad-2", host: "127.0.0.5" }),
  ];
  gateway = await startGateway({
    objects: [
      ...service("shop", "products", 8080, [primary]),
      ...service("shop", "products-cache", 8080, [healthy, ...broken]),
      fallbackPolicy("shop", "products", {
        targetRef: { kind: "Service", name: "products", port: 8080 },
        fallbacks: [{ service: { name: "products-cache", port: 8080 } }],
        // Ejections that outlast the test, so that what is measured is the steady state.
        outlierDetection: { interval: "500ms", baseEjectionTime: "60s", maxEjectionTime: "60s" },
      }),
    ],
  });
});

afterAll(async () => {
  await gateway?.stop();
  await Promise.all([primary, healthy, ...(broken ?? [])].map((b) => b?.close()));
});

const ejections = (cluster: string) =>
  gateway.envoy.stat(`cluster.shop/products/${cluster}.outlier_detection.ejections_active`);

describe.skipIf(!envoyAvailable())(
  "partial failure: primary ejected, fallback under half healthy (real Envoy, 200 req/s)",
  () => {
    it("sends nothing to the ejected primary or the ejected fallback hosts; every answer is a 2xx", async () => {
      const load = startLoad({ url: gateway.url, host: HOST, rate: 200 });
      await load.waitFor("the primary to answer", (r) => r.backend === "primary");
      for (const b of [primary, ...broken]) await b.setMode({ kind: "status", status: 503 });
      await until("the primary and two of the fallback's three hosts to be ejected", async () =>
        (await ejections("primary")) === 1 && (await ejections("fallback-1")) === 2 ? true : undefined,
      );
      // An ejection reaches the load balancers of Envoy's workers within an interval or so.
      await sleep(1_500);
      const ejectedAt = load.now();
      const hitsBefore = await Promise.all([primary, ...broken].map((b) => b.hits()));
      await sleep(3_000);
      const hitsAfter = await Promise.all([primary, ...broken].map((b) => b.hits()));
      const results = await load.stop();

      const after = summarize(between(results, ejectedAt));
      console.log(
        `after the ejections: ${after.total} requests, ${after.errors} errors, by backend ${JSON.stringify(after.byBackend)}`,
      );
      expect(after.total).toBeGreaterThan(400);
      expect(after.errors, JSON.stringify(after.sampleErrors)).toBe(0);
      expect(after.byBackend, "every request answered by the one healthy host").toEqual({ "cache-ok": after.total });
      expect(hitsAfter, "requests that reached an ejected host").toEqual(hitsBefore);
    });
  },
);
