// Two operator replicas with --leader-elect, each serving xDS from its own caches on its own
// port, and one Envoy on `fallbackctl bootstrap --xds-server A --xds-server B`: real API
// server, real Envoy, 200 req/s through it. What it proves:
//
// - kill -9 of the replica the Envoy streams from (found in the replicas' logs; arranged to be
//   the leader too, the harder case: the Envoy connects while only replica A runs, so A leads
//   and serves it) costs the clients nothing: zero errors over the whole run;
// - the Envoy reconnects to the other replica (its log says "Envoy connected"), which serves
//   the very same versions: Envoy adds, modifies and re-creates no cluster and no listener,
//   and the replica sends it no response at all until something changes;
// - the surviving replica serves live config: a kubectl apply after the kill (a static
//   response's body) changes what Envoy answers;
// - the survivor takes the Lease over and writes statuses: the changed policy becomes Ready
//   for its new generation, and both policies count the Envoy as running their config.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { freePort } from "../support/ports.ts";
import { repoRoot } from "../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../support/controlplane.ts";
import { apply, getJson, kube } from "../support/kubectl.ts";
import { conditionOf, startOperator, type RunningOperator } from "../support/operator.ts";
import { until } from "../support/poll.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { send, startLoad, summarize, type Load } from "../support/load.ts";
import { startProxy, type Proxy } from "../support/proxy.ts";

const dir = join(repoRoot, ".local", `e2e-operator-replicas-${process.pid}`);
const NS = "shop";
const NODE = "gateway";
let cp: ControlPlane;
let backend: Backend;
let proxy: Proxy;
let load: Load | undefined;
type Replica = { name: "A" | "B"; port: number; operator?: RunningOperator };
const replicas: Replica[] = [];

const launch = (replica: Replica) =>
  startOperator({
    kubeconfig: cp.kubeconfigPath,
    configNamespace: "fallback-system",
    leaderElect: true,
    args: ["--xds-addr", `127.0.0.1:${replica.port}`, "--xds-plaintext"],
  });

const productsHost = () => `products.${NS}:${backend.port}`;
const outageHost = () => `outage.${NS}:${backend.port}`;
/** A policy whose Service has no endpoints: every request gets its static response. */
const outagePolicy = (body: string) =>
  policy(NS, "outage", {
    targetRef: { name: "outage", port: backend.port },
    fallbacks: [{ staticResponse: { status: 503, body } }],
  });
const getPolicy = (name: string) => getJson(cp.kubeconfigPath, ["fallbackpolicy", "-n", NS, name]);

const logged = (replica: Replica, msg: string, node?: string) =>
  (replica.operator?.logs() ?? []).filter((l) => l.msg === msg && (node === undefined || l.node === node));
/** The sum of every sample of a Prometheus counter or gauge (0 when it has none). */
async function total(replica: Replica, name: string): Promise<number> {
  const text = await (await fetch(`${replica.operator!.metricsUrl}/metrics`)).text();
  return text
    .split("\n")
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(" ") + 1)), 0);
}

const COUNTERS = [
  "cluster_manager.cluster_added",
  "cluster_manager.cluster_modified",
  "cluster_manager.cluster_removed",
  "listener_manager.listener_added",
  "listener_manager.listener_modified",
  "listener_manager.listener_removed",
];
const counters = async () =>
  Object.fromEntries(await Promise.all(COUNTERS.map(async (c) => [c, await proxy.stat(c)] as const)));

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
  backend = await startBackend({ name: "products", host: backendAddress().address });
  await apply(kc, [
    service(NS, "products", backend.port),
    endpointSlice(NS, "products", [backend.host], backend.port),
    policy(NS, "products", { targetRef: { name: "products", port: backend.port } }),
    service(NS, "outage", backend.port),
    endpointSlice(NS, "outage", [], backend.port),
    outagePolicy("outage v1"),
  ]);
  replicas.push({ name: "A", port: await freePort() }, { name: "B", port: await freePort() });
  const [a, b] = replicas as [Replica, Replica];
  // A alone first: it leads, and the Envoy (which tries A and B) can only reach A.
  a.operator = await launch(a);
  await until("A leads", () => logged(a, "became leader").length > 0);
  proxy = await startProxy({ dir, xdsServers: replicas.map((r) => `127.0.0.1:${r.port}`), nodeId: NODE });
  b.operator = await launch(b);
  await until("B's xDS server listening", () => logged(b, "xDS server listening").length > 0);
});

afterAll(async () => {
  if (process.env.DEBUG_E2E)
    for (const r of replicas) console.log(`--- replica ${r.name}\n${r.operator?.output().slice(-5000)}`);
  await load?.stop();
  await proxy?.stop();
  await Promise.all(replicas.map((r) => r.operator?.stop()));
  await backend?.close();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("two operator replicas serving xDS, one Envoy on both", () => {
  it("serves the Envoy from the leader; both policies Ready with the one Envoy counted", async () => {
    await until("products through Envoy", async () => (await send(proxy.url, productsHost())).backend === "products");
    await until(
      "the static response through Envoy",
      async () => (await send(proxy.url, outageHost())).body === "outage v1",
    );
    for (const name of ["products", "outage"]) {
      const p = await until(`${name} Ready and acknowledged`, async () => {
        const p = await getPolicy(name);
        return conditionOf(p, "Ready")?.status === "True" && p?.status?.proxies?.acked === 1 && p;
      });
      expect(p.status.proxies).toEqual({ connected: 1, acked: 1 });
    }
    const [a, b] = replicas as [Replica, Replica];
    expect(logged(a, "Envoy connected", NODE)).toHaveLength(1);
    expect(logged(b, "Envoy connected", NODE)).toHaveLength(0);
    expect(logged(b, "became leader")).toHaveLength(0);
  });

  it("kill -9 of the replica the Envoy streams from, under 200 req/s: no client error, the other serves the same versions and live changes", async () => {
    const connected = replicas.filter((r) => logged(r, "Envoy connected", NODE).length > 0);
    expect(connected.map((r) => r.name)).toHaveLength(1);
    const victim = connected[0]!;
    const survivor = replicas.find((r) => r !== victim)!;
    const victimLeads = logged(victim, "became leader").length > logged(victim, "stopped leading").length;
    const before = await counters();
    expect(await total(survivor, "fallback_xds_responses_total")).toBe(0);

    load = startLoad({ url: proxy.url, host: productsHost(), rate: 200 });
    await load.waitFor("load flowing", (r) => r.backend === "products");
    const killedAt = performance.now();
    await victim.operator!.kill();

    // The Envoy finds the survivor by itself.
    await until(
      `Envoy connected to ${survivor.name}`,
      () => logged(survivor, "Envoy connected", NODE).length > 0,
      30_000,
    );
    await until("Envoy's ADS stream up again", async () => (await proxy.stat("control_plane.connected_state")) === 1);
    const reconnectMs = performance.now() - killedAt;
    // The survivor takes the Lease over (after it expires, when the victim held it).
    await until(`${survivor.name} leads`, () => logged(survivor, "became leader").length > 0, 45_000);
    const takeoverMs = performance.now() - killedAt;
    // Same versions: nothing for Envoy to apply, and nothing was even sent.
    expect(await counters()).toEqual(before);
    expect(await total(survivor, "fallback_xds_responses_total")).toBe(0);
    expect(await total(survivor, "fallback_xds_connections")).toBe(1);

    // Live config from the survivor: a change after the kill reaches Envoy.
    const applyAt = performance.now();
    await apply(cp.kubeconfigPath, [outagePolicy("outage v2")]);
    await until(
      "the new static response through Envoy",
      async () => (await send(proxy.url, outageHost())).body === "outage v2",
      10_000,
    );
    const liveMs = performance.now() - applyAt;
    expect(await total(survivor, "fallback_xds_responses_total")).toBeGreaterThan(0);
    // ...and the survivor, leading now, writes the status of the new generation.
    const outage = await until("outage Ready for its new generation", async () => {
      const p = await getPolicy("outage");
      const ready = conditionOf(p, "Ready");
      return (
        ready?.status === "True" &&
        ready.observedGeneration === p.metadata.generation &&
        p.status?.observedGeneration === p.metadata.generation &&
        p
      );
    });
    expect(outage.metadata.generation).toBeGreaterThan(1);
    // It counts the Envoy it never sent the first config to as running it all: what Envoy
    // said it had on reconnecting is what the survivor serves.
    expect(outage.status.proxies).toEqual({ connected: 1, acked: 1 });
    const products = await getPolicy("products");
    expect(conditionOf(products, "Ready")?.status).toBe("True");
    expect(products.status.proxies).toEqual({ connected: 1, acked: 1 });

    const results = await load.stop();
    load = undefined;
    const summary = summarize(results);
    console.log(
      `[replicas] killed ${victim.name} (${victimLeads ? "the leader" : "a follower"}); Envoy on ${survivor.name} after ${Math.round(reconnectMs)} ms, ` +
        `${survivor.name} leads after ${Math.round(takeoverMs)} ms; apply to new behaviour ${Math.round(liveMs)} ms; ` +
        `${summary.total} requests, ${summary.errors} errors, p99 ${summary.p99.toFixed(1)} ms, max ${summary.max.toFixed(1)} ms`,
    );
    expect(summary.errors, JSON.stringify(summary.sampleErrors)).toBe(0);
    expect(summary.total).toBeGreaterThan(1_000);
    // The products route and clusters were never touched.
    expect(await counters()).toEqual(before);
  }, 120_000);
});
