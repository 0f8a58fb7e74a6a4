// The xDS server against real Envoys: everything an Envoy on `fallbackctl bootstrap` runs
// comes over one ADS stream (Delta and state-of-the-world), changes arrive as the
// resources that changed, and a restarted server sends nothing an Envoy already has.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startBackend, type Backend } from "../support/backend.ts";
import { envoyAvailable } from "../support/envoy.ts";
import type { Corrupt } from "../../operator/src/xds/encode.ts";
import { fallbackPolicy, service } from "../support/gateway.ts";
import { sleep, until } from "../support/poll.ts";
import { send, startLoad, summarize } from "../support/load.ts";
import { clustersOf, routeOf } from "../support/proxy.ts";
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
    fallbacks: [
      { service: { name: "products-cache", port: 8080 } },
      { staticResponse: { status: 503, body: "degraded" } },
    ],
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

/** Each dynamic route configuration's name and when Envoy last took a new version of it. */
const routesUpdated = (dump: any): string[] =>
  (dump.configs.find((c: any) => c["@type"].endsWith(".RoutesConfigDump"))?.dynamic_route_configs ?? [])
    .map((r: any) => `${r.route_config?.name} ${r.version_info} ${r.last_updated}`)
    .sort();

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
      const dynamicClusters = dump.configs
        .find((c: any) => c["@type"].endsWith("ClustersConfigDump"))
        .dynamic_active_clusters.map((c: any) => c.cluster.name);
      expect(dynamicClusters.sort()).toEqual(["shop/products", "shop/products/fallback-1", "shop/products/primary"]);
      // Envoy runs with the bootstrap's heap setting: it keeps what it freed (see adsBootstrap).
      const bootstrap = dump.configs.find((c: any) => c["@type"].endsWith("BootstrapConfigDump")).bootstrap;
      expect(bootstrap.memory_allocator_manager?.max_unfreed_memory_bytes).toBe("1073741824");
      const states = gateway.server.policyStates();
      await until(
        "the policy acknowledged",
        () => (gateway.server.policyStates().get("shop/products")?.acked ?? 0) >= 1 || undefined,
      );
      expect(states.get("shop/products")?.rejected).toBeUndefined();
    });
  }

  it("a retry change reaches every Envoy as the route configuration alone, in config_dump and in behaviour", async () => {
    const [delta, sotw] = await envoys();
    await primary.setMode({ kind: "status", status: 429 });
    try {
      // 429 is no failure to the default retryOn: the client gets it.
      expect((await answer(delta)).status).toBe(429);
      const clustersBefore = await gateway.sent("cluster");
      const routesBefore = await gateway.sent("route");
      gateway.publish(
        objects({
          retry: { attempts: 3, retryOn: ["gateway-error", "retriable-status-codes"], retriableStatusCodes: [429] },
        }),
      );
      for (const envoy of [delta, sotw]) {
        await until(
          `the fallback through ${envoy.bootstrapFile}`,
          async () => ((await answer(envoy)).backend === "cache" ? true : undefined),
          5_000,
        );
        const route = routeOf(await envoy.configDump(), "shop/products");
        expect(route.retry_policy.num_retries).toBe(3);
        expect(route.retry_policy.retriable_status_codes).toEqual([429]);
      }
      expect(await gateway.sent("cluster")).toBe(clustersBefore);
      expect(await gateway.sent("route")).toBe(routesBefore + gateway.server.proxies().length);
    } finally {
      await primary.setMode({ kind: "ok" });
      gateway.publish(objects());
    }
  });

  it("an endpoint change is one ClusterLoadAssignment, and Envoy's clusters are not updated", async () => {
    const [delta, sotw] = await envoys();
    const more = await startBackend({ name: "cache-2", host: "127.0.0.4" });
    try {
      const updates = await Promise.all([delta, sotw].map((e) => e.stat("cluster_manager.cds.update_success")));
      const sent = await gateway.sent("endpoint");
      gateway.publish(objects({}, [cache, more]));
      for (const envoy of [delta, sotw]) {
        await until(
          "two endpoints in the fallback",
          async () =>
            (await envoy.stat("cluster.shop/products/fallback-1.membership_healthy")) === 2 ? true : undefined,
          5_000,
        );
      }
      expect(await Promise.all([delta, sotw].map((e) => e.stat("cluster_manager.cds.update_success")))).toEqual(
        updates,
      );
      // To each Delta Envoy the one that changed; to each state-of-the-world one every endpoints resource it asked for (two).
      const proxies = gateway.server.proxies();
      const expected =
        proxies.filter((p) => p.protocol === "delta").length + 2 * proxies.filter((p) => p.protocol === "sotw").length;
      // Every connected Envoy, not only the two waited for above (the gateway's own too).
      await until(
        "the change sent to every Envoy",
        async () => (await gateway.sent("endpoint")) >= sent + expected,
        5_000,
      );
      expect(await gateway.sent("endpoint")).toBe(sent + expected);
      // Each policy's standing, worked out for the changed ones only, is what working out all gives.
      const kept = new Map(gateway.server.policyStates());
      expect(kept.get("shop/products")?.acked).toBe(proxies.filter((p) => p.serving).length);
      expect(kept).toEqual(new Map(gateway.server.policyStates({ afresh: true })));
    } finally {
      gateway.publish(objects());
      await more.close();
    }
  });

  it("a cluster change is active at once: its endpoints are sent again, so the new cluster does not wait for them", async () => {
    const [delta, sotw] = await envoys();
    gateway.publish(objects({ outlierDetection: { interval: "3s" } }));
    try {
      for (const envoy of [delta, sotw]) {
        await until(
          "the new clusters active",
          async () => {
            const clusters = clustersOf(await envoy.configDump());
            const primaryCluster = clusters.active.find((c: any) => c.name === "shop/products/primary");
            return primaryCluster?.outlier_detection?.interval === "3s" && clusters.warming.length === 0
              ? true
              : undefined;
          },
          3_000,
        );
        expect((await answer(envoy)).backend).toBe("primary");
      }
    } finally {
      gateway.publish(objects());
    }
  });

  it("a restarted server sends nothing an Envoy has: no cluster or listener is touched, and traffic flows on", async () => {
    const [delta, sotw] = await envoys();
    const counters = [
      "cluster_manager.cluster_added",
      "cluster_manager.cluster_modified",
      "listener_manager.listener_modified",
      "http.fallback.scoped_rds.fallback-scopes.config_reload",
    ];
    // Per-route-configuration RDS stats are not kept (KEPT_STATS); the dump says when a route configuration last changed.
    const seen = (e: XdsEnvoy) =>
      Promise.all([Promise.all(counters.map((c) => e.stat(c))), e.configDump().then(routesUpdated)]);
    const before = await Promise.all([delta, sotw].map(seen));
    const load = startLoad({ url: delta.url, host: HOST, rate: 200 });
    await gateway.stopServer();
    await sleep(500);
    await gateway.restartServer();
    await until(
      "both Envoys back",
      () => (gateway.server.proxies().filter((p) => p.serving).length >= 2 ? true : undefined),
      10_000,
    );
    await sleep(500);
    const results = await load.stop();
    expect(
      (await gateway.sent("cluster")) +
        (await gateway.sent("endpoint")) +
        (await gateway.sent("listener")) +
        (await gateway.sent("route")),
    ).toBe(0);
    expect(await Promise.all([delta, sotw].map(seen))).toEqual(before);
    expect(before[0]![1]).toContainEqual(expect.stringMatching(/^shop\/products /));
    // The listener's own stats are kept, each route configuration's are not.
    const kept = await delta.stats("^http\\.fallback\\.");
    expect(kept.get("http.fallback.downstream_rq_total")).toBeGreaterThan(0);
    expect([...kept.keys()].filter((name) => name.startsWith("http.fallback.rds."))).toEqual([]);
    const summary = summarize(results);
    expect(summary.errors, JSON.stringify(summary.sampleErrors)).toBe(0);
    expect(summary.total).toBeGreaterThan(150);
  });
});

describe.skipIf(!envoyAvailable())("Envoys that ask before the server has anything to serve", () => {
  it("get everything once it publishes, over Delta and state-of-the-world", async () => {
    // An operator serves xDS before its caches are filled; an Envoy (re)connecting in that
    // moment must not be left with an answer it was never sent.
    const early = await startXdsGateway({ objects: objects(), publishAtStart: false });
    try {
      const starting = [
        early.startEnvoy({ nodeId: "early-delta" }),
        early.startEnvoy({ sotw: true, nodeId: "early-sotw" }),
      ];
      await until("both Envoys connected and asking", () => early.server.proxies().length === 2, 10_000);
      early.publish(objects());
      // Each is ready once it has its config: without it, only after its initial fetch timeouts (15 s each).
      const ready = await Promise.race([
        Promise.all(starting),
        sleep(10_000).then(() => Promise.reject(new Error("an Envoy got nothing within 10 s of the publish"))),
      ]);
      for (const envoy of ready) {
        await until(
          `the primary through ${envoy.bootstrapFile}`,
          async () => (await answer(envoy)).backend === "primary",
          10_000,
        );
      }
    } finally {
      await early.stop();
    }
  });
});

describe.skipIf(!envoyAvailable())("a resource an Envoy rejects", () => {
  let rejecting: XdsGateway;
  // The test seam corrupts one policy's primary cluster on its way to the wire.
  const corrupt: Corrupt = (type, name, json) => {
    if (type === "cluster" && name === "shop/broken/primary") json["connect_timeout"] = "-1s";
  };
  const both = () => [
    ...objects(),
    fallbackPolicy("shop", "broken", {
      targetRef: { kind: "Service", name: "products-cache", port: 8080 },
      fallbacks: [{ staticResponse: { status: 503 } }],
    }),
  ];

  beforeAll(async () => {
    if (!envoyAvailable()) return;
    rejecting = await startXdsGateway({ objects: both(), server: { corrupt } });
  });
  afterAll(async () => rejecting?.stop());

  it("makes that policy Rejected with Envoy's words, leaves the others acknowledged, and is not sent again", async () => {
    const envoy = await rejecting.startEnvoy();
    await until("the primary through Envoy", async () =>
      (await answer(envoy)).backend === "primary" ? true : undefined,
    );
    const states = await until("both policies settled", () => {
      const s = rejecting.server.policyStates();
      return s.get("shop/broken")?.rejected && s.get("shop/products")?.acked === 1 ? s : undefined;
    });
    // Envoy rejected the whole response in words that name no cluster: the server found it by halves.
    expect(states.get("shop/broken")!.rejected).toMatchObject({
      node: "envoy-1",
      resource: "cluster shop/broken/primary",
      message: expect.stringMatching(/positive duration/),
    });
    expect(states.get("shop/broken")!.acked).toBe(0);
    expect(states.get("shop/products")!.rejected).toBeUndefined();
    // A second Envoy gets what the first accepted, and nothing it rejected.
    const second = await rejecting.startEnvoy();
    await until("the primary through the second Envoy", async () =>
      (await answer(second)).backend === "primary" ? true : undefined,
    );
    const names = clustersOf(await second.configDump()).active.map((c: any) => c.name);
    expect(names).not.toContain("shop/broken/primary");
    expect(names).toContain("shop/broken");
    expect(await second.stat("cluster_manager.cds.update_rejected")).toBe(0);
  });
});

let started: [XdsEnvoy, XdsEnvoy] | undefined;
/** A Delta and a state-of-the-world Envoy, started once. */
async function envoys(): Promise<[XdsEnvoy, XdsEnvoy]> {
  started ??= [
    await gateway.startEnvoy({ nodeId: "delta-2" }),
    await gateway.startEnvoy({ sotw: true, nodeId: "sotw-2" }),
  ];
  for (const envoy of started)
    await until("the primary through Envoy", async () =>
      (await answer(envoy)).backend === "primary" ? true : undefined,
    );
  return started;
}
