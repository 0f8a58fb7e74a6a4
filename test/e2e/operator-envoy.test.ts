// The whole product path, live: kubectl apply -> operator -> ConfigMap -> a folder kept in
// sync the kubelet's way (..data swap) -> a running Envoy started from the operator's
// bootstrap.yaml -> new behaviour, with no Envoy restart. Prints how long that took.
import { mkdirSync, rmSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { syncConfigMap, type ConfigMapSync } from "../support/configmap-sync.ts";
import { freePort } from "../support/ports.ts";
import { repoRoot } from "../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../support/controlplane.ts";
import { apply, getJson, kube } from "../support/kubectl.ts";
import { until } from "../support/poll.ts";
import { conditionOf, startOperator, type RunningOperator } from "../support/operator.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { startEnvoy, type Envoy } from "../support/envoy.ts";

const dir = join(repoRoot, ".local", `e2e-operator-envoy-${process.pid}`);
const NS = "shop";
let cp: ControlPlane;
let operator: RunningOperator;
let sync: ConfigMapSync;
let envoy: Envoy;
let listen: number;
const backends: Backend[] = [];

/** One request on a fresh connection (new connections see a new listener at once). */
function ask(host: string): Promise<{ status: number; body: string }> {
  // node:http, not fetch: fetch does not let a caller set Host.
  return new Promise((done, fail) => {
    const req = request(
      { host: "127.0.0.1", port: listen, path: "/", headers: { host }, agent: false, timeout: 5_000 },
      (res) => {
        let body = "";
        res.setEncoding("utf8").on("data", (s: string) => (body += s));
        res.on("end", () => done({ status: res.statusCode ?? 0, body }));
      },
    );
    req.on("timeout", () => req.destroy(new Error("timeout")));
    req.on("error", fail);
    req.end();
  });
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

  // EndpointSlices may not hold loopback addresses: the backends listen on the machine's own.
  const { address } = backendAddress();
  backends.push(await startBackend({ name: "products", host: address }));
  backends.push(await startBackend({ name: "reviews", host: address }));
  listen = await freePort();
  const admin = await freePort();
  const configDir = join(dir, "envoy-config");
  operator = await startOperator({
    kubeconfig: kc,
    configNamespace: "fallback-system",
    args: [
      "--envoy-config-dir",
      configDir,
      "--envoy-listen",
      `127.0.0.1:${listen}`,
      "--envoy-admin",
      `127.0.0.1:${admin}`,
    ],
  });
  const [products, reviews] = backends as [Backend, Backend];
  await apply(kc, [
    service(NS, "products", products.port),
    endpointSlice(NS, "products", [products.host], products.port),
    policy(NS, "products", {
      targetRef: { name: "products", port: products.port },
      fallbacks: [{ staticResponse: { status: 503, body: "v1" } }],
    }),
    service(NS, "reviews", reviews.port),
    endpointSlice(NS, "reviews", [reviews.host], reviews.port),
  ]);
  sync = syncConfigMap({ kubeconfig: kc, namespace: "fallback-system", name: "fallback-envoy", dir: configDir });
  await sync.firstWrite;
  envoy = await startEnvoy({
    config: join(configDir, "bootstrap.yaml"),
    admin: { address: "127.0.0.1", port: admin },
    drainTimeS: 1,
  });
});

afterAll(async () => {
  if (process.env.DEBUG_E2E) console.log(envoy?.log().slice(-5000));
  await envoy?.stop();
  await sync?.stop();
  await operator?.stop();
  await Promise.all(backends.map((b) => b.close()));
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("kubectl apply -> operator -> ConfigMap -> running Envoy", () => {
  it("serves the policy's target through Envoy started from the operator's bootstrap", async () => {
    const [products] = backends as [Backend];
    const r = await until("products through Envoy", async () => {
      const r = await ask(`products.${NS}:${products.port}`);
      return r.status === 200 && r;
    });
    expect(JSON.parse(r.body).backend).toBe("products");
  });

  it("a policy change reaches the running Envoy without a restart, and the delay is measured", async () => {
    const [products] = backends as [Backend];
    const pid = envoy.pid;
    await products.close(); // the primary is gone: answers come from the static response
    await until("static v1", async () => (await ask(`products.${NS}:${products.port}`)).body === "v1");
    const delays: number[] = [];
    for (const version of ["v2", "v3", "v4"]) {
      const start = performance.now();
      await apply(cp.kubeconfigPath, [
        policy(NS, "products", {
          targetRef: { name: "products", port: products.port },
          fallbacks: [{ staticResponse: { status: 503, body: version } }],
        }),
      ]);
      await until(
        `static ${version}`,
        async () => (await ask(`products.${NS}:${products.port}`)).body === version,
        30_000,
      );
      delays.push(performance.now() - start);
    }
    expect(envoy.pid).toBe(pid);
    expect(envoy.running()).toBe(true);
    console.log(
      `[operator->envoy] kubectl apply to new answer: ${delays.map((d) => `${Math.round(d)} ms`).join(", ")}`,
    );
  });

  it("a backend with its own credential is left out of the ConfigMap (SDS only), and the policy says so", async () => {
    const { address } = backendAddress();
    const gateway = await startBackend({ name: "gateway", host: address, mode: { kind: "status", status: 429 } });
    const provider = await startBackend({ name: "provider" });
    backends.push(gateway, provider);
    await apply(cp.kubeconfigPath, [
      {
        apiVersion: "v1",
        kind: "Secret",
        metadata: { name: "provider", namespace: NS, labels: { "fallback.dev/credential": "true" } },
        stringData: { key: "sk-not-in-any-file" },
      },
      service(NS, "gateway", gateway.port),
      endpointSlice(NS, "gateway", [gateway.host], gateway.port),
      policy(NS, "gateway", {
        targetRef: { name: "gateway", port: gateway.port },
        fallbacks: [
          {
            external: {
              host: "127.0.0.1",
              port: provider.port,
              tls: false,
              auth: { secretRef: { name: "provider", key: "key" } },
            },
          },
          { staticResponse: { status: 503, body: "busy" } },
        ],
        retry: { retryOn: ["gateway-error", "retriable-status-codes"], retriableStatusCodes: [429] },
      }),
    ]);
    const status = await until("Programmed=False CredentialsNeedXds", async () => {
      const p = await getJson(cp.kubeconfigPath, ["fallbackpolicy", "-n", NS, "gateway"]);
      return conditionOf(p, "Programmed")?.reason === "CredentialsNeedXds" && p;
    });
    expect(conditionOf(status, "Programmed")?.message).toContain("127.0.0.1 sends its own credential");
    // The gateway's 429 is retried past the provider (it has no endpoints in the files) to the static answer.
    await until("the static answer", async () => (await ask(`gateway.${NS}:${gateway.port}`)).body === "busy", 30_000);
    expect(await provider.hits()).toBe(0);
  });

  it("a new policy makes a new Service reachable through Envoy", async () => {
    const [, reviews] = backends as [Backend, Backend];
    const start = performance.now();
    await apply(cp.kubeconfigPath, [policy(NS, "reviews", { targetRef: { name: "reviews", port: reviews.port } })]);
    const r = await until("reviews through Envoy", async () => {
      const r = await ask(`reviews.${NS}.svc.cluster.local:${reviews.port}`);
      return r.status === 200 && r;
    });
    expect(JSON.parse(r.body).backend).toBe("reviews");
    console.log(`[operator->envoy] new policy to first answer: ${Math.round(performance.now() - start)} ms`);
  });
});
