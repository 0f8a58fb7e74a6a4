// The xDS server against real Envoys: everything an Envoy on `fallbackctl bootstrap` runs
// comes over one ADS stream (Delta and state-of-the-world), changes arrive as the
// resources that changed, and a restarted server sends nothing an Envoy already has.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBackend, type Backend } from "./harness/backend.ts";
import { envoyAvailable } from "./harness/envoy.ts";
import { fallbackPolicy, service, until } from "./harness/gateway.ts";
import { send } from "./harness/load.ts";
import { startXdsGateway, type XdsEnvoy, type XdsGateway } from "./harness/xds.ts";

const HOST = "products.shop:8080";
let primary: Backend;
let cache: Backend;
let gateway: XdsGateway;

const objects = (spec: Record<string, unknown> = {}, cacheEndpoints = [cache]) => [
  ...service("shop", "products", 8080, [primary]),
  ...service("shop", "products-cache", 8080, cacheEndpoints),
  fallbackPolicy("shop", "products", {
    targetRef: { kind: "Service", name: "products", port: 8080 },
    fallbacks: [{ service: { name: "products-cache", port: 8080 } }, { staticResponse: { status: 503, body: "degraded" } }],
    ...spec,
  }),
];

beforeAll(async () => {
  if (!envoyAvailable()) return;
  primary = await startBackend({ name: "primary", host: "127.0.0.2" });
  cache = await startBackend({ name: "cache", host: "127.0.0.3" });
  gateway = await startXdsGateway({ objects: objects() });
});

afterAll(async () => {
  await gateway?.stop();
  await primary?.close();
  await cache?.close();
});

const answer = (envoy: XdsEnvoy) => send(envoy.url, HOST);

describe.skipIf(!envoyAvailable())("xDS server -> real Envoy", () => {
  for (const sotw of [false, true]) {
    it(`serves an Envoy everything over ${sotw ? "state-of-the-world" : "Delta"} ADS`, async () => {
      const envoy = await gateway.startEnvoy({ sotw, nodeId: sotw ? "sotw" : "delta" });
      const r = await until("the primary through Envoy", async () => {
        const r = await answer(envoy);
        return r.backend === "primary" ? r : undefined;
      });
      expect(r.status).toBe(200);
      const dump = await envoy.configDump();
      const dynamicClusters = dump.configs.find((c: any) => c["@type"].endsWith("ClustersConfigDump")).dynamic_active_clusters.map((c: any) => c.cluster.name);
      expect(dynamicClusters.sort()).toEqual(["shop/products", "shop/products/fallback-1", "shop/products/primary"]);
      const states = gateway.server.policyStates();
      await until("the policy acknowledged", () => (gateway.server.policyStates().get("shop/products")?.acked ?? 0) >= 1 || undefined);
      expect(states.get("shop/products")?.rejected).toBeUndefined();
    });
  }
});
