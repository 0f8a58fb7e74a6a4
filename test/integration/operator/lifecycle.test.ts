// The operator on the real API server: policies come and go, Services and EndpointSlices
// change underneath them, and the ConfigMap and every status follow.
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { parse } from "yaml";
import { createTestNamespace, apply, getJson, kube } from "../../support/kubectl.ts";
import { conditionOf, configFiles, startOperator, type RunningOperator } from "../../support/operator.ts";
import { until } from "../../support/poll.ts";
import { envoyValidate } from "../../support/envoy.ts";
import { endpointSlice, policy, service } from "../../support/objects.ts";

const kubeconfig = inject("kubeconfig");

let apps: string;
let config: string;
let operator: RunningOperator;

const getPolicy = (name: string) => getJson(kubeconfig, ["fallbackpolicy", name, "-n", apps]);
const getConfigMap = () => getJson(kubeconfig, ["configmap", "fallback-envoy", "-n", config]);
const ready = (name: string) =>
  until(`${name} Ready`, async () => {
    const p = await getPolicy(name);
    const c = conditionOf(p, "Ready");
    return c?.status === "True" && c.observedGeneration === p.metadata.generation && p;
  });
/** The virtual host of a policy in the ConfigMap's listener. */
const virtualHost = async (name: string) => {
  const lds = configFiles(await getConfigMap())["lds.yaml"];
  const hcm = lds?.resources?.[0]?.filter_chains?.[0]?.filters?.[0]?.typed_config;
  return hcm?.route_config?.virtual_hosts?.find((v: { name: string }) => v.name === `${apps}/${name}`);
};
const clusterNames = async () =>
  (configFiles(await getConfigMap())["cds.yaml"]?.resources ?? []).map((c: { name: string }) => c.name);

beforeAll(async () => {
  apps = await createTestNamespace(kubeconfig, "op-apps");
  config = await createTestNamespace(kubeconfig, "op-config");
  operator = await startOperator({ kubeconfig, configNamespace: config, watchNamespace: apps });
});

afterAll(async () => {
  const code = await operator?.stop();
  expect(code).toBe(0);
  expect(operator.output()).not.toMatch(/"level":"(error|fatal)"/);
});

describe("a policy's life", () => {
  it("create: Ready with all four conditions (and FallbackActive Unknown: no Envoy reports in ConfigMap mode) for its generation, backends resolved, config written", async () => {
    await apply(kubeconfig, [
      service(apps, "shop"),
      endpointSlice(apps, "shop", ["10.0.0.1", "10.0.0.2"]),
      service(apps, "shop-cache"),
      policy(apps, "shop", {
        fallbacks: [
          { service: { name: "shop-cache", port: 8080 } },
          { staticResponse: { status: 503, body: "later" } },
        ],
      }),
    ]);
    const p = await ready("shop");
    expect(p.status.conditions.map((c: any) => [c.type, c.status, c.observedGeneration])).toEqual([
      ["Accepted", "True", 1],
      ["ResolvedRefs", "True", 1],
      ["Programmed", "True", 1],
      ["Ready", "True", 1],
      ["FallbackActive", "Unknown", 1],
    ]);
    expect(p.status.observedGeneration).toBe(1);
    expect(p.status.backends).toEqual([
      { name: "shop", kind: "Service", endpoints: 2, resolution: "EndpointSlices", drained: false },
      { name: "shop-cache", kind: "Service", resolution: "DNS", drained: false },
      { name: "static", kind: "StaticResponse", resolution: "Static", drained: false },
    ]);
    const cm = await getConfigMap();
    expect(cm.metadata.labels["app.kubernetes.io/managed-by"]).toBe("fallback-operator");
    expect(Object.keys(cm.data).sort()).toEqual(["bootstrap.yaml", "cds.yaml", "lds.yaml"]);
    expect(p.status.configRef).toMatchObject({ namespace: config, name: "fallback-envoy" });
    expect(p.status.configRef.hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    const events = await kube(kubeconfig, [
      "get",
      "events",
      "-n",
      apps,
      "--field-selector",
      "involvedObject.name=shop",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    expect(events).toContain("Ready");
  });

  it("the ConfigMap's content is accepted by the real Envoy and says what the policy says", async () => {
    const files = configFiles(await getConfigMap());
    // Envoy validates a bootstrap with the xDS resources inlined as static ones.
    const inlined = {
      ...files["bootstrap.yaml"],
      dynamic_resources: undefined,
      static_resources: {
        clusters: files["cds.yaml"].resources.map(({ "@type": _, ...c }: any) => c),
        listeners: files["lds.yaml"].resources.map(({ "@type": _, ...l }: any) => l),
      },
    };
    delete inlined.dynamic_resources;
    expect(envoyValidate(JSON.stringify(inlined))).toBe("");

    const vhost = await virtualHost("shop");
    expect(vhost.domains).toContain(`shop.${apps}.svc.cluster.local:8080`);
    const aggregate = files["cds.yaml"].resources.find((c: any) => c.name === vhost.routes[0].route.cluster);
    // Primary first, then the Service fallback; the static response is not a cluster.
    expect(aggregate.cluster_type.typed_config.clusters).toHaveLength(2);
    const primary = files["cds.yaml"].resources.find(
      (c: any) => c.name === aggregate.cluster_type.typed_config.clusters[0],
    );
    const addresses = primary.load_assignment.endpoints.flatMap((e: any) =>
      e.lb_endpoints.map((l: any) => l.endpoint.address.socket_address.address),
    );
    expect(addresses.sort()).toEqual(["10.0.0.1", "10.0.0.2"]);
    expect(JSON.stringify(vhost.typed_per_filter_config)).toContain("later");
  });

  it("update: a spec change reaches the config and the conditions' observedGeneration", async () => {
    const before = await getPolicy("shop");
    await kube(kubeconfig, [
      "patch",
      "fallbackpolicy",
      "shop",
      "-n",
      apps,
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { retry: { attempts: 5 } } }),
    ]);
    const p = await until("generation 2 Ready", async () => {
      const p = await getPolicy("shop");
      return p.status?.observedGeneration === 2 && conditionOf(p, "Ready")?.observedGeneration === 2 && p;
    });
    // Still Ready: the transition time stays.
    expect(conditionOf(p, "Ready")!.lastTransitionTime).toBe(conditionOf(before, "Ready")!.lastTransitionTime);
    expect(p.status.configRef.hash).not.toBe(before.status.configRef.hash);
    await until(
      "num_retries 5 in the config",
      async () => (await virtualHost("shop"))?.routes[0].route.retry_policy.num_retries === 5,
    );
  });

  it("endpoint changes update config and status without a policy edit", async () => {
    await apply(kubeconfig, [endpointSlice(apps, "shop", ["10.0.0.1", "10.0.0.2", "10.0.0.3"])]);
    await until("3 endpoints in status", async () => (await getPolicy("shop")).status.backends[0].endpoints === 3);
    await apply(kubeconfig, [endpointSlice(apps, "shop", ["10.0.0.9"], 8080, "b")]);
    await until(
      "4 endpoints over two slices",
      async () => (await getPolicy("shop")).status.backends[0].endpoints === 4,
    );
  });

  it("a missing Service: ResolvedRefs False with the reason and a Warning; it appears later and the policy becomes Ready", async () => {
    await apply(kubeconfig, [policy(apps, "search")]);
    const p = await until("search not Ready", async () => {
      const p = await getPolicy("search");
      return conditionOf(p, "Ready")?.status === "False" && p;
    });
    expect(conditionOf(p, "ResolvedRefs")).toMatchObject({ status: "False", reason: "ServiceNotFound" });
    expect(conditionOf(p, "ResolvedRefs")!.message).toContain(`${apps}/search`);
    expect(conditionOf(p, "Ready")!.reason).toBe("ServiceNotFound");
    await until("a Warning event", async () =>
      (
        await kube(kubeconfig, [
          "get",
          "events",
          "-n",
          apps,
          "--field-selector",
          "involvedObject.name=search,type=Warning",
          "-o",
          "jsonpath={.items[*].reason}",
        ])
      ).includes("ServiceNotFound"),
    );
    expect(await virtualHost("search")).toBeUndefined();
    // The healthy policy is untouched.
    expect(conditionOf(await getPolicy("shop"), "Ready")?.status).toBe("True");

    await apply(kubeconfig, [service(apps, "search")]);
    await ready("search");
    expect(await virtualHost("search")).toBeDefined();
  });

  it("a broken policy beside healthy ones: Conflicted, while the others stay Ready and the config stays valid", async () => {
    const hashBefore = (await getConfigMap()).metadata.annotations["fallback.dev/config-hash"];
    await apply(kubeconfig, [
      {
        ...policy(apps, "shop-again"),
        spec: { targetRef: { name: "shop", port: 8080 }, fallbacks: [{ staticResponse: {} }] },
      },
    ]);
    const p = await until("shop-again Conflicted", async () => {
      const p = await getPolicy("shop-again");
      return conditionOf(p, "Accepted")?.reason === "Conflicted" && p;
    });
    expect(conditionOf(p, "Accepted")!.message).toContain(`${apps}/shop`);
    expect(conditionOf(p, "Ready")).toMatchObject({ status: "False", reason: "Conflicted" });
    expect(conditionOf(await getPolicy("shop"), "Ready")?.status).toBe("True");
    expect(conditionOf(await getPolicy("search"), "Ready")?.status).toBe("True");
    // Nothing of the losing policy reached the config.
    expect((await getConfigMap()).metadata.annotations["fallback.dev/config-hash"]).toBe(hashBefore);
  });

  it("manual edits of the ConfigMap are overwritten", async () => {
    const original = (await getConfigMap()).data;
    await kube(kubeconfig, [
      "patch",
      "configmap",
      "fallback-envoy",
      "-n",
      config,
      "--type",
      "merge",
      "-p",
      JSON.stringify({ data: { "cds.yaml": "hacked", "extra.yaml": "x" } }),
    ]);
    await until("the operator's content back", async () => {
      const data = (await getConfigMap()).data;
      return JSON.stringify(data) === JSON.stringify(original);
    });
  });

  it("delete: the policy's routes and clusters leave the config", async () => {
    await kube(kubeconfig, ["delete", "fallbackpolicy", "search", "-n", apps]);
    await until("search gone from the config", async () => (await virtualHost("search")) === undefined);
    expect((await clusterNames()).some((n: string) => n.includes("search"))).toBe(false);
    expect(await virtualHost("shop")).toBeDefined();
  });

  it("exposes controller metrics and probes", async () => {
    expect((await fetch(`${operator.healthUrl}/healthz`)).status).toBe(200);
    expect((await fetch(`${operator.healthUrl}/readyz`)).status).toBe(200);
    const text = await (await fetch(`${operator.metricsUrl}/metrics`)).text();
    for (const name of ["workqueue_adds_total", "workqueue_depth", "fallback_config_writes_total", "fallback_policies"])
      expect(text).toContain(name);
  });
});

describe("a config over the ConfigMap limit", () => {
  let small: RunningOperator;
  let ns: string;
  let cfg: string;
  beforeAll(async () => {
    ns = await createTestNamespace(kubeconfig, "op-large");
    cfg = await createTestNamespace(kubeconfig, "op-large-config");
    small = await startOperator({
      kubeconfig,
      configNamespace: cfg,
      watchNamespace: ns,
      args: ["--config-limit-bytes", "20000"],
    });
  });
  afterAll(async () => void (await small?.stop()));

  it("keeps the last good config; the policies it leaves out say ConfigTooLarge, the others stay Ready", async () => {
    await apply(kubeconfig, [service(ns, "a"), policy(ns, "a")]);
    const get = (name: string) => getJson(kubeconfig, ["fallbackpolicy", name, "-n", ns]);
    await until("a Ready", async () => conditionOf(await get("a"), "Ready")?.status === "True");
    const names = ["b", "c", "d", "e", "f", "g", "h"];
    await apply(
      kubeconfig,
      names.flatMap((n) => [service(ns, n), policy(ns, n)]),
    );
    // Some fit before the rest arrive; at least the last ones cannot.
    const h = await until("h ConfigTooLarge", async () => {
      const p = await get("h");
      return conditionOf(p, "Programmed")?.reason === "ConfigTooLarge" && p;
    });
    expect(conditionOf(h, "Ready")).toMatchObject({ status: "False", reason: "ConfigTooLarge" });
    expect(conditionOf(h, "Programmed")!.message).toContain("20000");
    expect(conditionOf(await get("a"), "Ready")?.status).toBe("True");
    // What the ConfigMap holds is exactly what the Ready policies say is live.
    const cm = await getJson(kubeconfig, ["configmap", "fallback-envoy", "-n", cfg]);
    const lds = configFiles(cm)["lds.yaml"];
    const live = lds.resources[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts
      .map((v: any) => v.name)
      .sort();
    const readyOnes = [];
    for (const n of ["a", ...names])
      if (conditionOf(await get(n), "Ready")?.status === "True") readyOnes.push(`${ns}/${n}`);
    expect(live).toEqual(readyOnes);
    // Back under the limit: everything is programmed.
    await kube(kubeconfig, ["delete", "fallbackpolicy", "-n", ns, ...names.slice(1)]);
    await until("b Ready", async () => conditionOf(await get("b"), "Ready")?.status === "True");
    expect(small.output()).toContain("config too large");
  });
});
