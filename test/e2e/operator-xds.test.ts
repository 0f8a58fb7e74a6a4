// The product over xDS, live: kubectl apply -> operator (real API server) -> its xDS server
// -> Envoys on `fallbackctl bootstrap` (one Delta, one state-of-the-world) -> traffic; and
// back: the Envoys' ACKs and NACKs -> each policy's status.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { freePort } from "../support/ports.ts";
import { repoRoot } from "../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../support/controlplane.ts";
import { apply, getJson, kube } from "../support/kubectl.ts";
import { conditionOf, metric, startOperator, type RunningOperator } from "../support/operator.ts";
import { until, sleep } from "../support/poll.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { send, startLoad, summarize } from "../support/load.ts";
import { clustersOf, routeOf, startProxy, type Proxy } from "../support/proxy.ts";

const dir = join(repoRoot, ".local", `e2e-operator-xds-${process.pid}`);
const NS = "shop";
let cp: ControlPlane;
let operator: RunningOperator;
let xdsPort: number;
let listenPort: number;
let proxies: Proxy[] = [];
const backends: Record<string, Backend> = {};

const operatorArgs = () => [
  "--xds-addr",
  `127.0.0.1:${xdsPort}`,
  "--xds-plaintext",
  "--envoy-listen",
  `127.0.0.1:${listenPort}`,
];
const launch = () =>
  startOperator({
    kubeconfig: cp.kubeconfigPath,
    configNamespace: "fallback-system",
    args: operatorArgs(),
    // The test seam: this cluster goes to Envoy in a form it rejects.
    env: { FALLBACK_TEST_REJECTED_CLUSTER: `${NS}/broken/primary` },
  });
const host = (b: Backend) => `products.${NS}:${b.port}`;
const productsPolicy = (spec: Record<string, unknown> = {}) =>
  policy(NS, "products", {
    targetRef: { name: "products", port: backends.products!.port },
    fallbacks: [
      { service: { name: "cache", port: backends.products!.port } },
      { staticResponse: { status: 503, body: "degraded" } },
    ],
    ...spec,
  });
const statusOf = (name: string) => getJson(cp.kubeconfigPath, ["fallbackpolicy", "-n", NS, name]);

beforeAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cp = await startControlPlane({ dir: join(dir, "controlplane") });
  const kc = cp.kubeconfigPath;
  await kube(kc, ["apply", "-f", join(repoRoot, "crds")]);
  await kube(kc, ["wait", "--for", "condition=Established", "crd/fallbackpolicies.fallback.dev"]);
  await kube(kc, ["create", "namespace", NS]);
  await kube(kc, ["create", "namespace", "fallback-system"]);

  // EndpointSlices may not hold loopback addresses: the backends listen on the machine's own.
  const { address } = backendAddress();
  const products = await startBackend({ name: "products", host: address });
  backends.products = products;
  backends.cache = await startBackend({ name: "cache", host: address });
  xdsPort = await freePort();
  listenPort = await freePort();
  operator = await launch();
  await apply(kc, [
    service(NS, "products", products.port),
    endpointSlice(NS, "products", [products.host], products.port),
    // The cache's Service port is products' (the policies stay short); its endpoint has its own.
    service(NS, "cache", products.port),
    endpointSlice(NS, "cache", [backends.cache.host], backends.cache.port),
    productsPolicy(),
  ]);
  const xds = [`127.0.0.1:${xdsPort}`];
  proxies = [
    await startProxy({ dir, xdsServers: xds, nodeId: "gateway-delta", listen: listenPort }),
    await startProxy({ dir, xdsServers: xds, nodeId: "gateway-sotw", sotw: true }),
  ];
});

afterAll(async () => {
  if (process.env.DEBUG_E2E) console.log(operator?.output().slice(-5000));
  await Promise.all(proxies.map((p) => p.stop()));
  await operator?.stop();
  await Promise.all(Object.values(backends).map((b) => b.close()));
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** The backend that answers through an Envoy (or its status when none of ours does). */
const answer = async (proxy: Proxy) => {
  const r = await send(proxy.url, host(backends.products!));
  return r.backend ?? `status ${r.status}`;
};

describe("kubectl apply -> operator -> xDS -> Envoys on fallbackctl bootstrap", () => {
  it("gives both Envoys everything, and the policy says both run it", async () => {
    for (const proxy of proxies)
      await until(`products through ${proxy.nodeId}`, async () => (await answer(proxy)) === "products");
    const status = await until("Programmed by both Envoys", async () => {
      const p = await statusOf("products");
      return p?.status?.proxies?.acked === 2 && conditionOf(p, "Ready")?.status === "True" && p.status;
    });
    expect(status.proxies).toEqual({ connected: 2, acked: 2 });
    expect(conditionOf({ status }, "Programmed")).toMatchObject({ status: "True", reason: "Programmed" });
    expect(status.configRef).toEqual({ hash: expect.stringMatching(/^sha256:/) });
    // Nothing was written to a ConfigMap.
    expect(await getJson(cp.kubeconfigPath, ["configmap", "-n", "fallback-system", "fallback-envoy"])).toBeUndefined();
  });

  it("a kubectl apply of a retry change is live on both Envoys in well under a second: config_dump and behaviour", async () => {
    await backends.products!.setMode({ kind: "status", status: 429 });
    try {
      for (const proxy of proxies) await until("429 passed through", async () => (await answer(proxy)) === "products");
      const start = performance.now();
      await apply(cp.kubeconfigPath, [
        productsPolicy({
          retry: { attempts: 3, retryOn: ["gateway-error", "retriable-status-codes"], retriableStatusCodes: [429] },
        }),
      ]);
      const delays: number[] = [];
      for (const proxy of proxies) {
        await until(`the cache through ${proxy.nodeId}`, async () => (await answer(proxy)) === "cache", 10_000);
        delays.push(performance.now() - start);
        expect(routeOf(await proxy.configDump(), `${NS}/products`).retry_policy).toMatchObject({
          num_retries: 3,
          retriable_status_codes: [429],
        });
      }
      console.log(
        `[operator->xds->envoy] kubectl apply to new behaviour: ${delays.map((d) => `${Math.round(d)} ms`).join(", ")} (includes kubectl's own start-up)`,
      );
      expect(Math.max(...delays)).toBeLessThan(5_000);
    } finally {
      await backends.products!.setMode({ kind: "ok" });
      await apply(cp.kubeconfigPath, [productsPolicy()]);
    }
  });

  it("an EndpointSlice change updates the endpoints over EDS, and no cluster", async () => {
    const more = await startBackend({ name: "cache-2", host: backends.cache!.host });
    try {
      const before = await Promise.all(proxies.map((p) => p.stat("cluster_manager.cds.update_success")));
      await apply(cp.kubeconfigPath, [
        endpointSlice(NS, "cache", [backends.cache!.host], backends.cache!.port),
        endpointSlice(NS, "cache", [more.host], more.port, "b"),
      ]);
      for (const proxy of proxies) {
        await until(
          "two endpoints in the cache cluster",
          async () => (await proxy.stat(`cluster.${NS}/products/fallback-1.membership_healthy`)) === 2,
          10_000,
        );
      }
      expect(await Promise.all(proxies.map((p) => p.stat("cluster_manager.cds.update_success")))).toEqual(before);
    } finally {
      await kube(cp.kubeconfigPath, ["delete", "endpointslice", "-n", NS, "cache-b"]);
      await more.close();
    }
  });

  it("a resource an Envoy rejects makes that policy Rejected with a Warning Event, and leaves the others Programmed", async () => {
    await apply(cp.kubeconfigPath, [
      service(NS, "broken", backends.products!.port),
      endpointSlice(NS, "broken", [backends.products!.host], backends.products!.port),
      policy(NS, "broken", { targetRef: { name: "broken", port: backends.products!.port } }),
    ]);
    const broken = await until("broken Rejected", async () => {
      const p = await statusOf("broken");
      return conditionOf(p, "Programmed")?.reason === "Rejected" && p;
    });
    expect(conditionOf(broken, "Programmed")!.message).toMatch(
      new RegExp(`^Envoy gateway-(delta|sotw) rejected cluster ${NS}/broken/primary: .*positive duration`),
    );
    expect(conditionOf(broken, "Ready")).toMatchObject({ status: "False", reason: "Rejected" });
    const events = await until("a Warning Event", async () => {
      const list = await getJson(cp.kubeconfigPath, [
        "events",
        "-n",
        NS,
        "--field-selector",
        "involvedObject.name=broken",
      ]);
      return list?.items?.find((e: any) => e.type === "Warning" && e.reason === "Rejected");
    });
    expect(events.message).toMatch(/rejected cluster/);
    const products = await statusOf("products");
    expect(conditionOf(products, "Programmed")).toMatchObject({ status: "True" });
    expect(products.status.proxies).toEqual({ connected: 2, acked: 2 });
    for (const proxy of proxies) expect(await answer(proxy)).toBe("products");
    await kube(cp.kubeconfigPath, ["delete", "fallbackpolicy", "-n", NS, "broken"]);
  });

  it("kill -9 of the operator under 200 req/s: no client error; the restarted operator changes nothing in Envoy", async () => {
    const counters = [
      "cluster_manager.cluster_added",
      "cluster_manager.cluster_modified",
      "cluster_manager.cluster_removed",
      "listener_manager.listener_modified",
      "listener_manager.listener_added",
    ];
    const products = [`${NS}/products`, `${NS}/products/fallback-1`, `${NS}/products/primary`];
    for (const proxy of proxies) {
      await until(
        "the broken policy gone from Envoy",
        async () =>
          JSON.stringify(
            clustersOf(await proxy.configDump())
              .active.map((c: any) => c.name)
              .sort(),
          ) === JSON.stringify(products),
      );
    }
    const before = await Promise.all(proxies.map((p) => Promise.all(counters.map((c) => p.stat(c)))));
    const load = startLoad({ url: proxies[0]!.url, host: host(backends.products!), rate: 200 });
    await sleep(1_000);
    await operator.kill();
    await sleep(2_000);
    operator = await launch();
    // The restarted operator's own count: the status still says 2 from before the kill.
    const connected = async (protocol: string) =>
      (await metric(operator.metricsUrl, "fallback_xds_connections", { protocol }).catch(() => 0)) ?? 0;
    await until(
      "both Envoys back on the operator",
      async () => (await connected("delta")) + (await connected("sotw")) === 2,
      30_000,
    );
    await sleep(1_000);
    const results = await load.stop();
    const summary = summarize(results);
    console.log(`[kill -9] ${summary.total} requests, ${summary.errors} errors, p99 ${summary.p99.toFixed(1)} ms`);
    expect(summary.errors, JSON.stringify(summary.sampleErrors)).toBe(0);
    expect(summary.total).toBeGreaterThan(600);
    expect(await Promise.all(proxies.map((p) => Promise.all(counters.map((c) => p.stat(c)))))).toEqual(before);
  });

  it("an Envoy restarted gets its whole config again within seconds", async () => {
    const old = proxies[1]!;
    await old.stop();
    const start = performance.now();
    proxies[1] = await startProxy({ dir, xdsServers: [`127.0.0.1:${xdsPort}`], nodeId: "gateway-sotw", sotw: true });
    await until("products through the new Envoy", async () => (await answer(proxies[1]!)) === "products", 10_000);
    const ms = performance.now() - start;
    console.log(`[envoy restart] start to first answer: ${Math.round(ms)} ms`);
    expect(clustersOf(await proxies[1]!.configDump()).active.map((c: any) => c.name)).toContain(
      `${NS}/products/primary`,
    );
    expect(ms).toBeLessThan(10_000);
  });
});
