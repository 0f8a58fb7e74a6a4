// The operator over xDS at 1,000 policies, far more than one ConfigMap could hold (its 1 MiB
// limit is why xDS exists here): a real API server, the operator with --xds-plaintext, one
// Delta Envoy on `fallbackctl bootstrap`, and one real backend behind every policy's
// Service (each policy its own Service and EndpointSlice, all pointing at the same address:
// Envoy sends to one endpoint from many clusters). What it proves:
//
// - created with a few kubectl applies, all 1,000 policies become Ready with status.proxies
//   {connected: 1, acked: 1}: the one Envoy acknowledged every policy's resources;
// - Envoy runs 1,000 aggregate clusters (and their members), none warming, and its clusters
//   and routes add up to more than the 1 MiB a ConfigMap may hold;
// - requests through a sample of 20 policies' hosts, spread over the range, reach the backend;
// - it prints how long apply -> all Ready took, and Envoy's cluster count.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CONFIGMAP_LIMIT_BYTES } from "../../operator/src/controller/configmap.ts";
import { backendAddress } from "../support/ports.ts";
import { freePort } from "../support/ports.ts";
import { repoRoot } from "../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../support/controlplane.ts";
import { conditionOf, startOperator, type RunningOperator } from "../support/operator.ts";
import { until } from "../support/poll.ts";
import { getJson, kube } from "../support/kubectl.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { send } from "../support/load.ts";
import { clustersOf, startProxy, type Proxy } from "../support/proxy.ts";

const dir = join(repoRoot, ".local", `e2e-operator-xds-scale-${process.pid}`);
const NS = "scale";
const POLICIES = 1_000;
/** kubectl applies run side by side, each with its share of the objects. */
const APPLIES = 4;
let cp: ControlPlane;
let operator: RunningOperator;
let backend: Backend;
let proxy: Proxy;

const nameOf = (i: number) => `svc-${String(i).padStart(4, "0")}`;
const hostOf = (i: number) => `${nameOf(i)}.${NS}:${backend.port}`;
/** The operator's count of xDS responses, by type. */
async function xdsResponses(): Promise<Record<string, number>> {
  const text = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
  return Object.fromEntries(
    [...text.matchAll(/^fallback_xds_responses_total\{type="(\w+)"\} (\d+)$/gm)].map((m) => [m[1]!, Number(m[2])]),
  );
}

beforeAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  cp = await startControlPlane({ dir: join(dir, "controlplane") });
  const kc = cp.kubeconfigPath;
  await kube(kc, ["apply", "-f", join(repoRoot, "crds")]);
  await kube(kc, ["wait", "--for", "condition=Established", "crd/fallbackpolicies.fallback.dev"]);
  await kube(kc, ["create", "namespace", NS]);
  await kube(kc, ["create", "namespace", "fallback-system"]);
  // EndpointSlices may not hold loopback addresses: the backend listens on the machine's own.
  backend = await startBackend({ name: "backend", host: backendAddress().address });
  const xdsPort = await freePort();
  operator = await startOperator({
    kubeconfig: kc,
    configNamespace: "fallback-system",
    args: ["--xds-addr", `127.0.0.1:${xdsPort}`, "--xds-plaintext"],
  });
  // The Envoy first: with no policy yet it has the listener and empty routes, and is ready.
  proxy = await startProxy({ dir, xdsServers: [`127.0.0.1:${xdsPort}`], nodeId: "gateway" });
}, 120_000);

afterAll(async () => {
  if (process.env.DEBUG_E2E) console.log(operator?.output().slice(-5000));
  await proxy?.stop();
  await operator?.stop();
  await backend?.close();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe(`${POLICIES} policies over xDS`, () => {
  it(`all ${POLICIES} Ready and acknowledged by the Envoy, which routes to each`, async () => {
    const kc = cp.kubeconfigPath;
    const objectsOf = (i: number) => [
      service(NS, nameOf(i), backend.port),
      endpointSlice(NS, nameOf(i), [backend.host], backend.port),
      policy(NS, nameOf(i), { targetRef: { name: nameOf(i), port: backend.port } }),
    ];
    const lists = Array.from({ length: APPLIES }, (_, k) => ({
      apiVersion: "v1",
      kind: "List",
      items: Array.from({ length: POLICIES / APPLIES }, (_, j) => objectsOf(k * (POLICIES / APPLIES) + j)).flat(),
    }));
    const start = performance.now();
    // Server-side apply: one request per object (client-side apply reads each first).
    await Promise.all(lists.map((list) => kube(kc, ["apply", "--server-side", "-f", "-"], JSON.stringify(list))));
    const appliedMs = performance.now() - start;

    // One kubectl get for all of them, as often as it comes back.
    let polls = 0;
    let last = "";
    const items = await until(
      `all ${POLICIES} Ready with the Envoy's ACK`,
      async () => {
        polls++;
        const list = await getJson(kc, ["fallbackpolicies.fallback.dev", "-A"]);
        const items: any[] = list?.items ?? [];
        const done = items.filter(
          (p) =>
            conditionOf(p, "Ready")?.status === "True" &&
            p.status?.proxies?.connected === 1 &&
            p.status?.proxies?.acked === 1,
        );
        last = `${items.length} policies, ${done.length} Ready and acknowledged; first not: ${JSON.stringify(items.find((p) => !done.includes(p))?.status ?? null)}`;
        return items.length === POLICIES && done.length === POLICIES && items;
      },
      150_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}; last seen: ${last}`);
    });
    const readyMs = performance.now() - start;
    expect(items.every((p: any) => conditionOf(p, "Ready")?.observedGeneration === p.metadata.generation)).toBe(true);

    const dump = await proxy.configDump();
    const { active, warming } = clustersOf(dump);
    const aggregates = active
      .filter((c: any) => c.cluster_type?.name === "envoy.clusters.aggregate")
      .map((c: any) => c.name);
    expect(aggregates).toHaveLength(POLICIES);
    expect(new Set(aggregates)).toEqual(new Set(Array.from({ length: POLICIES }, (_, i) => `${NS}/${nameOf(i)}`)));
    expect(warming).toEqual([]);
    const activeClusters = await proxy.stat("cluster_manager.active_clusters");
    // What Envoy runs would not fit in a ConfigMap (its dynamic part, as config_dump JSON).
    const routes = dump.configs.find((c: any) => c["@type"].endsWith(".RoutesConfigDump"));
    const configBytes = Buffer.byteLength(JSON.stringify({ clusters: active, routes: routes.dynamic_route_configs }));
    expect(configBytes).toBeGreaterThan(CONFIGMAP_LIMIT_BYTES);
    const sent = await xdsResponses();

    // A sample of hosts over the whole range, each answered by the real backend through its own policy.
    const sample = Array.from({ length: 20 }, (_, k) => Math.round((k * (POLICIES - 1)) / 19));
    for (const i of sample) {
      const r = await send(proxy.url, hostOf(i));
      expect(r.backend, `${hostOf(i)}: ${JSON.stringify(r)}`).toBe("backend");
      expect(r.backendHost).toBe(hostOf(i));
    }
    for (const i of sample)
      expect(await proxy.stat(`cluster.${NS}/${nameOf(i)}/primary.upstream_rq_total`), nameOf(i)).toBeGreaterThan(0);

    console.log(
      `[xds scale] ${POLICIES} policies (${3 * POLICIES} objects in ${APPLIES} kubectl applies): applied in ${(appliedMs / 1000).toFixed(1)} s, ` +
        `all Ready and acknowledged ${(readyMs / 1000).toFixed(1)} s after the apply began, ${((readyMs - appliedMs) / 1000).toFixed(1)} s after it ended (${polls} polls); ` +
        `Envoy: ${aggregates.length} aggregate clusters, ${active.length} dynamic clusters active, cluster_manager.active_clusters ${activeClusters}, ` +
        `clusters and routes ${(configBytes / 1024 / 1024).toFixed(1)} MiB as JSON; ` +
        `xDS responses sent: ${JSON.stringify(sent)}`,
    );
    // Generous: the point is that it finishes, on a busy two-core machine too.
    expect(readyMs).toBeLessThan(150_000);
  }, 300_000);
});
