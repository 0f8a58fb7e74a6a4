// TLS and mTLS on the operator's xDS port, with a real operator (real API server) and real
// Envoys on `fallbackctl bootstrap`, certificates made with openssl. What it proves:
//
// (a) --xds-tls-cert/--xds-tls-key (server TLS): an Envoy that trusts the CA and checks the
//     server's name (--xds-ca, --xds-server-name) gets its config and serves traffic; an
//     Envoy that speaks plaintext to that port, and one that expects another server name,
//     get nothing (no dynamic listener, requests through them fail, Envoy counts failed
//     connections to cluster fallback-xds), are not counted in status.proxies, and the
//     operator logs nothing alarming about them.
// (b) The operator restarted (SIGTERM, exit 0) with --xds-client-ca as well (mTLS): an Envoy
//     with a client certificate signed by that CA works; one without a client certificate
//     and one whose certificate another CA signed are refused the same way, and the policy's
//     status.proxies counts only the good Envoy.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { backendAddress } from "../support/ports.ts";
import { freePort } from "../support/ports.ts";
import { repoRoot } from "../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../support/controlplane.ts";
import { apply, getJson, kube } from "../support/kubectl.ts";
import { conditionOf, metric, startOperator, type RunningOperator } from "../support/operator.ts";
import { until } from "../support/poll.ts";
import { endpointSlice, policy, service } from "../support/objects.ts";
import { startBackend, type Backend } from "../support/backend.ts";
import { makeCerts, makeClientCert, type Certs } from "./harness/certs.ts";
import { send } from "../support/load.ts";
import { startProxy, type Proxy } from "../support/proxy.ts";

const dir = join(repoRoot, ".local", `e2e-xds-tls-${process.pid}`);
const NS = "shop";
const SERVER_NAME = "fallback-xds.test";
let cp: ControlPlane;
let operator: RunningOperator | undefined;
let backend: Backend;
let xdsPort: number;
/** Our CA, with the xDS server's certificate (SAN fallback-xds.test). */
let ca: Certs;
/** A CA the operator does not trust. */
let otherCa: Certs;
const proxies: Proxy[] = [];

const launch = (extra: string[]) =>
  startOperator({
    kubeconfig: cp.kubeconfigPath,
    configNamespace: "fallback-system",
    args: ["--xds-addr", `127.0.0.1:${xdsPort}`, "--xds-tls-cert", ca.certFile, "--xds-tls-key", ca.keyFile, ...extra],
  });

/** An Envoy on fallbackctl bootstrap with these TLS flags; `refused` ones are not waited for (they never get a config). */
async function envoy(nodeId: string, tlsArgs: string[], refused = false): Promise<Proxy> {
  const proxy = await startProxy({
    dir,
    xdsServers: [`127.0.0.1:${xdsPort}`],
    nodeId,
    args: tlsArgs,
    ...(refused ? { waitFor: "admin" as const } : {}),
  });
  proxies.push(proxy);
  return proxy;
}
const stopEnvoys = async () => void (await Promise.all(proxies.splice(0).map((p) => p.stop())));

const trustCa = (name = SERVER_NAME) => ["--xds-ca", ca.caFile, "--xds-server-name", name];
const host = () => `products.${NS}:${backend.port}`;
const answer = async (proxy: Proxy) => {
  const r = await send(proxy.url, host(), undefined, 2_000);
  return r.backend ?? (r.error ? `error ${r.error}` : `status ${r.status}`);
};
const productsStatus = async () => (await getJson(cp.kubeconfigPath, ["fallbackpolicy", "-n", NS, "products"]))?.status;

/** The dynamic listeners in an Envoy's config_dump (active, warming or draining). */
async function dynamicListeners(proxy: Proxy): Promise<unknown[]> {
  const dump = await proxy.configDump();
  const listeners = dump.configs.find((c: any) => c["@type"].endsWith(".ListenersConfigDump"));
  return listeners?.dynamic_listeners ?? [];
}

/** Envoy's own count of its failed tries to reach the xDS server (cluster fallback-xds). */
async function failedTries(proxy: Proxy): Promise<number> {
  const stats = await proxy.stats("^cluster\\.fallback-xds\\.");
  // A refused TLS handshake ends the connection before Envoy calls it connected: connect_fail.
  // Where the handshake seemed done to Envoy (TLS 1.3 sends the server's verdict on the
  // client certificate afterwards), the server ends it at once: destroy_remote.
  return Math.max(
    stats.get("cluster.fallback-xds.upstream_cx_connect_fail") ?? 0,
    stats.get("cluster.fallback-xds.upstream_cx_destroy_remote") ?? 0,
  );
}

/** A refused Envoy: several tries refused, never connected, no listener, no answer. */
async function expectRefused(proxy: Proxy, label: string): Promise<void> {
  await until(`${label}: three refused tries`, async () => (await failedTries(proxy)) >= 3, 30_000);
  expect(await proxy.stat("control_plane.connected_state"), label).toBe(0);
  expect(await proxy.stat("cluster_manager.cds.update_success"), label).toBe(0);
  expect(await dynamicListeners(proxy), label).toEqual([]);
  // Nothing listens where the operator's listener would be.
  expect(await answer(proxy), label).toMatch(/^error /);
  expect(
    operator!.logs().filter((l) => l.msg === "Envoy connected" && l.node === proxy.nodeId),
    label,
  ).toEqual([]);
}

/** Log lines at warn or worse, and anything printed that is not a log line (gRPC's own complaints, say). */
const alarming = (op: RunningOperator) => [
  ...op.logs().filter((l) => ["warn", "error", "fatal"].includes(String(l.level))),
  ...op
    .output()
    .split("\n")
    .filter((l) => l.trim() && !l.startsWith("{")),
];

const nonZeroXdsStats = async (proxy: Proxy) =>
  Object.fromEntries(
    [...(await proxy.stats("^cluster\\.fallback-xds\\.(upstream_cx|ssl)"))].filter(([, v]) => v !== 0),
  );

beforeAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(join(dir, "ca"), { recursive: true });
  mkdirSync(join(dir, "other-ca"), { recursive: true });
  ca = makeCerts([SERVER_NAME], join(dir, "ca"));
  otherCa = makeCerts([SERVER_NAME], join(dir, "other-ca"));
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
  ]);
  xdsPort = await freePort();
});

afterAll(async () => {
  if (process.env.DEBUG_E2E) console.log(operator?.output().slice(-5000));
  await stopEnvoys();
  await operator?.stop();
  await backend?.close();
  await cp?.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe("server TLS on the xDS port (--xds-tls-cert, --xds-tls-key)", () => {
  beforeAll(async () => {
    operator = await launch([]);
  });

  it("an Envoy that trusts the CA and checks the name gets its config and serves traffic", async () => {
    const good = await envoy("tls-good", trustCa());
    await until("products through the TLS Envoy", async () => (await answer(good)) === "products");
    expect(await good.stat("control_plane.connected_state")).toBe(1);
    const status = await until("products acknowledged by the Envoy", async () => {
      const s = await productsStatus();
      return s?.proxies?.acked === 1 && s;
    });
    expect(status.proxies).toEqual({ connected: 1, acked: 1 });
    expect(conditionOf({ status }, "Ready")?.status).toBe("True");
    expect(operator!.logs().find((l) => l.msg === "xDS server listening")).toMatchObject({ tls: "server" });
    expect(operator!.logs().find((l) => l.msg === "Envoy connected" && l.node === "tls-good")).toBeDefined();
  });

  it("a plaintext Envoy, and one expecting another server name, get nothing; the operator counts neither and logs nothing alarming", async () => {
    const plain = await envoy("tls-plaintext", [], true);
    const wrongName = await envoy("tls-wrong-name", trustCa("someone-else.test"), true);
    await expectRefused(plain, "plaintext");
    await expectRefused(wrongName, "wrong server name");
    console.log(
      `[xds tls] plaintext Envoy: ${JSON.stringify(await nonZeroXdsStats(plain))}; wrong name: ${JSON.stringify(await nonZeroXdsStats(wrongName))}`,
    );
    // Envoy's TLS stack says why it refused: the name.
    expect(await wrongName.stat("cluster.fallback-xds.ssl.fail_verify_san")).toBeGreaterThan(0);
    expect((await productsStatus())?.proxies).toEqual({ connected: 1, acked: 1 });
    expect(await metric(operator!.metricsUrl, "fallback_xds_connections", { protocol: "delta" })).toBe(1);
    expect(alarming(operator!)).toEqual([]);
    // The good one is still served.
    expect(await answer(proxies[0]!)).toBe("products");
  });
});

describe("mTLS on the xDS port (--xds-client-ca as well), after a restart", () => {
  beforeAll(async () => {
    await stopEnvoys();
    expect(await operator!.stop()).toBe(0);
    operator = await launch(["--xds-client-ca", ca.caFile]);
  });

  it("an Envoy with a client certificate the CA signed works", async () => {
    const good = await envoy("mtls-good", [
      ...trustCa(),
      "--xds-cert",
      makeClientCert(ca, "envoy-good").certFile,
      "--xds-key",
      join(ca.dir, "envoy-good.key"),
    ]);
    await until("products through the mTLS Envoy", async () => (await answer(good)) === "products");
    expect(await good.stat("control_plane.connected_state")).toBe(1);
    expect(operator!.logs().find((l) => l.msg === "xDS server listening")).toMatchObject({ tls: "mutual" });
    const status = await until("products acknowledged by the mTLS Envoy", async () => {
      const s = await productsStatus();
      return (
        s?.proxies?.connected === 1 &&
        s?.proxies?.acked === 1 &&
        conditionOf({ status: s }, "Ready")?.status === "True" &&
        s
      );
    });
    expect(status.proxies).toEqual({ connected: 1, acked: 1 });
  });

  it("Envoys without a client certificate, or with one another CA signed, are refused; status.proxies counts only the good one", async () => {
    const noCert = await envoy("mtls-no-cert", trustCa(), true);
    const stranger = makeClientCert(otherCa, "envoy-stranger");
    const otherSigned = await envoy(
      "mtls-other-ca",
      [...trustCa(), "--xds-cert", stranger.certFile, "--xds-key", stranger.keyFile],
      true,
    );
    await expectRefused(noCert, "no client certificate");
    await expectRefused(otherSigned, "client certificate from another CA");
    console.log(
      `[xds mtls] no client cert: ${JSON.stringify(await nonZeroXdsStats(noCert))}; other CA: ${JSON.stringify(await nonZeroXdsStats(otherSigned))}`,
    );
    expect((await productsStatus())?.proxies).toEqual({ connected: 1, acked: 1 });
    expect(await metric(operator!.metricsUrl, "fallback_xds_connections", { protocol: "delta" })).toBe(1);
    expect(alarming(operator!)).toEqual([]);
    expect(await answer(proxies[0]!)).toBe("products");
  });
});
