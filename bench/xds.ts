// xDS benchmark: the real operator serving real Envoys over gRPC ADS, on a real API server
// holding N FallbackPolicies, each with 3 Service backends of 10 endpoints (primary and two
// Service fallbacks) and a static answer last. Measured from outside, as a user sees it:
//
//   - a fresh Envoy (Delta) from its first request to its ACK of everything, split into the
//     operator's share (building and sending responses, from its debug log) and the rest
//     (Envoy applying them: 4 clusters per policy, their endpoints, the listener, the routes);
//   - one policy change (PATCH of a static answer) -> the Envoy answering with it;
//   - one EndpointSlice change (a primary gets a live endpoint) -> the Envoy sending to it,
//     and how many resources the operator sent for it;
//   - the operator's memory with one Envoy;
//   - fan-out: 100 subscribers (3 real Envoys, 97 lightweight ADS clients that ACK): one
//     policy change -> every subscriber has acknowledged it, and the operator's memory;
//   - side by side, ConfigMap mode at its capacity (the same change, Envoy reloading the
//     files a kubelet-like sync writes).
//
// A few "probe" policies (PROBES) answer with their static response (their Services have no
// endpoints), so that a change shows in Envoy's answers without any other traffic.
//
//   node bench/xds.ts                   # ~10 min on two cores: N = 10,000
//   node bench/xds.ts 1000              # a smaller N
//   import { runXdsBench } from "./xds.ts"   // from bench/run.ts
import { spawn } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { Agent } from "node:http";
import { join } from "node:path";
import { backendAddress } from "../test/support/ports.ts";
import { startBackend, type Backend } from "../test/support/backend.ts";
import { send } from "../test/support/load.ts";
import { startProxy, type Proxy } from "../test/support/proxy.ts";
import { createTestNamespace } from "../test/support/kubectl.ts";
import { freePort } from "../test/support/ports.ts";
import { repoRoot } from "../test/support/paths.ts";
import { startControlPlane } from "../test/support/controlplane.ts";
import { startOperator, type RunningOperator } from "../test/support/operator.ts";
import { syncConfigMap } from "../test/support/configmap-sync.ts";
import { startEnvoy } from "../test/support/envoy.ts";
import {
  PLURAL_PATH,
  PolicyWatch,
  kubeClient,
  limited,
  mb,
  ms,
  num,
  percentile,
  procStatus,
  readyOf,
  reconciled,
  type Kube,
} from "./kube.ts";
import { sleep, until } from "../test/support/poll.ts";
import { PORT, createPolicies, policyNamespace, policyOf, serviceOf, sliceOf } from "./policies.ts";

export type XdsBenchOptions = {
  /** Policies; default 10,000. */
  policies?: number;
  /** Policy changes measured; default 50. */
  changes?: number;
  /** EndpointSlice changes measured; default 30. */
  endpointChanges?: number;
  /** Subscribers in the fan-out (real Envoys among them: 3); default 100. */
  subscribers?: number;
  /** Policies in the ConfigMap-mode comparison; default 150 (the ConfigMap holds ~170 of this shape). */
  configMapPolicies?: number;
  dir?: string;
  log?: (line: string) => void;
};

const TARGET = {
  connectToAckMs: 5_000,
  changeP50Ms: 200,
  changeP99Ms: 1_000,
  endpointP99Ms: 500,
  rssBytes: 400 * 1024 * 1024,
};
const ENDPOINTS = 10;
const PROBES = 60;

type Sample = { ms: number; sent?: number };

export async function runXdsBench(options: XdsBenchOptions = {}): Promise<string> {
  const o = {
    policies: 10_000,
    changes: 50,
    endpointChanges: 30,
    subscribers: 100,
    configMapPolicies: 150,
    dir: join(repoRoot, ".local", "bench-xds"),
    log: (line: string) => process.stderr.write(`${line}\n`),
    ...options,
  };
  rmSync(o.dir, { recursive: true, force: true });
  mkdirSync(o.dir, { recursive: true });
  const cp = await startControlPlane({ dir: join(o.dir, "controlplane") });
  const kube = kubeClient(cp.kubeconfigPath);
  const proxies: Proxy[] = [];
  let op: RunningOperator | undefined;
  let watch: PolicyWatch | undefined;
  let clients: ReturnType<typeof spawn> | undefined;
  const { address } = backendAddress();
  const backend = await startBackend({ name: "live", host: address });
  try {
    const ns = await policyNamespace(cp.kubeconfigPath, "bench-xds");
    benchNamespace = ns;
    const xdsPort = await freePort();
    const listen = await freePort();
    const xds = `127.0.0.1:${xdsPort}`;

    // ---- the objects ----
    o.log(`xds bench: creating ${num(o.policies)} policies with ${num(3 * o.policies)} Services and EndpointSlices`);
    const t0 = performance.now();
    const names = Array.from({ length: o.policies }, (_, i) => `p${String(i).padStart(5, "0")}`);
    const probes = names.slice(0, PROBES);
    await createPolicies(kube, ns, names, { endpoints: ENDPOINTS, empty: probes });
    o.log(`xds bench: created in ${ms(performance.now() - t0)}`);

    watch = new PolicyWatch(kube, ns);
    await watch.start();
    /**
     * Until every policy's status counts `envoys` Envoys that run it and says who serves,
     * and then no status was written for 3 s (the passes after those, such as a view damped
     * for 10 s): each connect changes every policy's status.proxies, a wave of writes.
     */
    const settled = async (envoys: number) => {
      await watch!.until(
        names,
        (p) =>
          p.status?.proxies?.acked === envoys &&
          (p.status?.conditions ?? []).some((c: any) => c.type === "FallbackActive" && c.status !== "Unknown"),
        900_000,
      );
      await until(
        "3 s without a status write",
        () => {
          const last = op!.logs().findLast((l) => l["msg"] === "statuses written" && Number(l["statusWrites"]) > 0);
          return !last || Date.now() - Date.parse(String(last["time"])) > 3_000;
        },
        120_000,
        500,
      );
    };
    op = await startOperator({
      kubeconfig: cp.kubeconfigPath,
      configNamespace: ns,
      watchNamespace: ns,
      args: ["--xds-addr", xds, "--xds-plaintext", "--envoy-listen", `127.0.0.1:${listen}`],
      // XDS_BENCH_HEAP=DIR: heap snapshots of the operator, all Ready and with one Envoy, then stop.
      ...(process.env.XDS_BENCH_HEAP
        ? { env: { NODE_OPTIONS: "--heapsnapshot-signal=SIGUSR2" }, cwd: process.env.XDS_BENCH_HEAP }
        : {}),
    });
    const snapshot = async (what: string) => {
      if (!process.env.XDS_BENCH_HEAP) return;
      process.kill(op!.pid, "SIGUSR2");
      o.log(`xds bench: heap snapshot (${what}) in ${process.env.XDS_BENCH_HEAP}`);
      await sleep(60_000);
    };
    const r0 = performance.now();
    await watch.until(names, reconciled(true), 600_000);
    const readyMs = performance.now() - r0;
    o.log(`xds bench: all ${num(o.policies)} policies Ready ${ms(readyMs)} after the operator started`);
    await sleep(2_000);
    const idle = procStatus(op.pid);
    await snapshot("all Ready");

    // ---- a fresh Envoy: connect to ACK of everything ----
    const logFrom = op.logs().length;
    const started = performance.now();
    const envoy = await startProxy({
      dir: o.dir,
      xdsServers: [xds],
      nodeId: "envoy-1",
      listen,
      readyTimeoutMs: 120_000,
    });
    proxies.push(envoy);
    const expectClusters = 4 * o.policies;
    // Done when Envoy has acknowledged the routes, which come last (the operator's log says);
    // its admin interface is read once at the end: a stats read takes Envoy's main thread,
    // the one applying the config, for a while at 40,000 clusters.
    await until(
      "Envoy's ACK of the routes",
      () =>
        op!
          .logs()
          .slice(logFrom)
          .some(
            (l) =>
              l["msg"] === "xDS response answered" && l["node"] === "envoy-1" && l["type"] === "RouteConfiguration",
          ),
      300_000,
      100,
    );
    await until("a probe's answer", async () => (await answer(envoy, probes[0]!)) === "v0", 60_000);
    const envoyReadyMs = performance.now() - started;
    await sleep(1_000);
    const sync = initialSync(op.logs().slice(logFrom), "envoy-1");
    const clusters = await envoy.stat("cluster_manager.active_clusters");
    if (clusters < expectClusters + 1) throw new Error(`Envoy has ${clusters} clusters, not ${expectClusters + 1}`);
    o.log(
      `xds bench: fresh Envoy: first request to last ACK ${ms(sync.totalMs)} (operator ${ms(sync.operatorMs)}), process start to serving ${ms(envoyReadyMs)}`,
    );
    const withEnvoy = procStatus(op.pid);
    if (process.env.XDS_BENCH_HEAP) {
      await sleep(60_000); // the status writes after the Envoy's ACKs
      await snapshot("one Envoy");
      throw new Error("heap snapshots taken; stopping");
    }

    // The statuses settle: every policy's status.proxies now counts the Envoy, and then,
    // once the Envoy's first stats report is in, FallbackActive says who serves (10,000
    // writes each). What follows is measured in the steady state, not during those waves.
    await settled(1);
    o.log(`xds bench: statuses settled (every policy acknowledged by the Envoy, its live state reported)`);

    // ---- one policy change -> Envoy serving it ----
    const changes: Sample[] = [];
    let version = 0;
    for (let i = 0; i < o.changes; i++) {
      const p = probes[i % probes.length]!;
      const body = `v${++version}`;
      const start = performance.now();
      await kube.call(
        "PATCH",
        `${PLURAL_PATH}/${ns}/fallbackpolicies/${p}`,
        policyOf(ns, p, body),
        "application/merge-patch+json",
      );
      await until(`${p} answering ${body}`, async () => (await answer(envoy, p)) === body, 30_000, 2);
      changes.push({ ms: performance.now() - start });
      await sleep(200);
    }
    o.log(
      `xds bench: policy change -> Envoy: p50 ${ms(
        percentile(
          changes.map((c) => c.ms),
          50,
        ),
      )}, p99 ${ms(
        percentile(
          changes.map((c) => c.ms),
          99,
        ),
      )}`,
    );

    // ---- one EndpointSlice change -> Envoy sending to the new endpoint ----
    const endpointSamples: Sample[] = [];
    // Counted from the operator's log of each response, not from /metrics: at 10,000
    // policies a scrape is ~9 MB of live-state series, and two per change (where Prometheus
    // scrapes every 15 s or so) would load the operator while it is being timed.
    const sentEndpoints = () =>
      op!
        .logs()
        .filter((l) => l["msg"] === "xDS response sent" && l["type"] === "ClusterLoadAssignment")
        .reduce((n, l) => n + Number(l["resources"]) + Number(l["removed"]), 0);
    for (let i = 0; i < o.endpointChanges; i++) {
      const p = probes[(i + 7) % probes.length]!;
      const before = await sentEndpoints();
      const start = performance.now();
      await kube.call(
        "PUT",
        `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${p}-0`,
        await withEndpoints(kube, ns, p, [backend]),
      );
      await until(`${p} reaching the live endpoint`, async () => (await answer(envoy, p)) === "live", 30_000, 2);
      const took = performance.now() - start;
      await sleep(300);
      endpointSamples.push({ ms: took, sent: (await sentEndpoints()) - before });
      await kube.call(
        "PUT",
        `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${p}-0`,
        await withEndpoints(kube, ns, p, []),
      );
      await until(`${p} back on its static answer`, async () => (await answer(envoy, p)).startsWith("v"), 30_000, 5);
    }
    o.log(
      `xds bench: EndpointSlice change -> Envoy: p50 ${ms(
        percentile(
          endpointSamples.map((c) => c.ms),
          50,
        ),
      )}, p99 ${ms(
        percentile(
          endpointSamples.map((c) => c.ms),
          99,
        ),
      )}`,
    );
    const afterChanges = procStatus(op.pid);

    // ---- fan-out: 100 subscribers ----
    o.log(`xds bench: fan-out: ${o.subscribers} subscribers`);
    for (let i = 2; i <= 3; i++)
      proxies.push(await startProxy({ dir: o.dir, xdsServers: [xds], nodeId: `envoy-${i}`, readyTimeoutMs: 120_000 }));
    const lightweight = o.subscribers - proxies.length;
    const f0 = performance.now();
    clients = spawn(process.execPath, [join(import.meta.dirname, "ads-clients.ts"), xds, String(lightweight)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let clientRss = 0;
    await new Promise<void>((done, fail) => {
      let buffer = "";
      clients!.stdout!.setEncoding("utf8").on("data", (s: string) => {
        buffer += s;
        for (let nl = buffer.indexOf("\n"); nl >= 0; nl = buffer.indexOf("\n")) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line === "synced") done();
          else if (line.startsWith("{")) clientRss = JSON.parse(line).rss;
        }
      });
      clients!.once("exit", (code) => fail(new Error(`ADS clients exited with ${code}`)));
    });
    for (const proxy of proxies)
      await until(
        `${proxy.nodeId}'s clusters`,
        async () => (await proxy.stat("cluster_manager.active_clusters")) >= expectClusters + 1,
        300_000,
        2_000,
      );
    const fanOutSyncMs = performance.now() - f0;
    // As for one Envoy: the changes are timed once the status waves of the connects are over.
    const s0 = performance.now();
    await settled(o.subscribers);
    o.log(`xds bench: fan-out: statuses settled ${ms(performance.now() - s0)} after the sync`);
    const fanOut: number[] = [];
    for (let i = 0; i < 10; i++) {
      const p = probes[(i + 20) % probes.length]!;
      const body = `v${++version}`;
      const from = op.logs().length;
      const start = Date.now();
      await kube.call(
        "PATCH",
        `${PLURAL_PATH}/${ns}/fallbackpolicies/${p}`,
        policyOf(ns, p, body),
        "application/merge-patch+json",
      );
      await until(
        "every subscriber's ACK",
        () => answeredBy(op!.logs().slice(from), "RouteConfiguration") >= o.subscribers,
        60_000,
        10,
      );
      fanOut.push(lastAnswer(op.logs().slice(from), "RouteConfiguration") - start);
      await sleep(500);
    }
    const withSubscribers = procStatus(op.pid);
    o.log(
      `xds bench: fan-out: a change acknowledged by all ${o.subscribers}: p50 ${ms(percentile(fanOut, 50))}; operator VmRSS ${mb(withSubscribers.rss)}`,
    );
    clients.kill("SIGTERM");
    for (const proxy of proxies.splice(1)) await proxy.stop();

    // ---- ConfigMap mode, side by side ----
    writeFileSync(join(repoRoot, ".local", "bench-xds-operator.log"), op.output());
    const configMap = await configMapMode(o, cp.kubeconfigPath, kube);

    return report({
      o,
      readyMs,
      idle,
      sync,
      envoyReadyMs,
      withEnvoy,
      changes,
      endpointSamples,
      afterChanges,
      fanOut,
      fanOutSyncMs,
      withSubscribers,
      clientRss,
      configMap,
    });
  } catch (err) {
    if (op) {
      const path = join(repoRoot, ".local", `bench-xds-operator-${process.pid}.log`);
      writeFileSync(path, op.output());
      o.log(`xds bench: failed; the operator's log is in ${path}`);
    }
    throw err;
  } finally {
    clients?.kill("SIGKILL");
    watch?.close();
    await Promise.all(proxies.map((p) => p.stop()));
    await op?.kill();
    kube.close();
    await backend.close();
    await cp.stop();
    rmSync(o.dir, { recursive: true, force: true });
  }
}

// ---- objects ------------------------------------------------------------------------------

// Services, EndpointSlices and policies: bench/policies.ts.

/** The slice of a probe's primary, with these endpoints (as a PUT body at its resourceVersion). */
async function withEndpoints(kube: Kube, ns: string, p: string, backends: Backend[]) {
  const current = await kube.call("GET", `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices/${p}-0`);
  const port = backends[0]?.port ?? PORT;
  return {
    ...sliceOf(
      ns,
      p,
      backends.map((b) => b.host),
      port,
    ),
    metadata: { ...current.metadata },
  };
}

// ---- measuring ------------------------------------------------------------------------------

const agent = new Agent({ keepAlive: true });

let benchNamespace = "";

/** The probe's answer through Envoy: the live backend's name, or the static body. */
async function answer(envoy: Proxy, policy: string): Promise<string> {
  const r = await send(envoy.url, `${policy}.${benchNamespace}:${PORT}`, agent, 5_000);
  return r.backend ?? r.body ?? `status ${r.status}`;
}

type Log = Record<string, unknown>;

/** From the operator's debug log: a stream's first request to its last ACK, and the operator's time building and sending. */
function initialSync(
  logs: Log[],
  node: string,
): { totalMs: number; operatorMs: number; envoyMs: number; responses: number; bytes: number } {
  const mine = logs.filter((l) => l["node"] === node);
  const time = (l: Log) => Date.parse(String(l["time"]));
  const connected = mine.find((l) => l["msg"] === "Envoy connected");
  const sent = mine.filter((l) => l["msg"] === "xDS response sent");
  const answered = mine.filter((l) => l["msg"] === "xDS response answered");
  const totalMs = answered.length && connected ? time(answered.at(-1)!) - time(connected) : NaN;
  const operatorMs = sent.reduce((sum, l) => sum + Number(l["ms"]), 0);
  return {
    totalMs,
    operatorMs,
    envoyMs: totalMs - operatorMs,
    responses: sent.length,
    bytes: sent.reduce((sum, l) => sum + Number(l["bytes"]), 0),
  };
}

const answeredBy = (logs: Log[], type: string) =>
  new Set(logs.filter((l) => l["msg"] === "xDS response answered" && l["type"] === type).map((l) => l["node"])).size;
const lastAnswer = (logs: Log[], type: string) =>
  Math.max(
    ...logs
      .filter((l) => l["msg"] === "xDS response answered" && l["type"] === type)
      .map((l) => Date.parse(String(l["time"]))),
  );

// ---- ConfigMap mode --------------------------------------------------------------------------

type ConfigMapResult = { policies: number; changes: number[]; rss: number };

/** The same policy change in ConfigMap mode, at a size the ConfigMap holds: apply -> Envoy answering with it. */
async function configMapMode(o: Required<XdsBenchOptions>, kubeconfig: string, kube: Kube): Promise<ConfigMapResult> {
  const ns = await createTestNamespace(kubeconfig, "bench-cm");
  const names = Array.from({ length: o.configMapPolicies }, (_, i) => `c${String(i).padStart(4, "0")}`);
  await limited(names, 32, async (p) => {
    for (const svc of [p, `${p}-fb1`, `${p}-fb2`]) {
      await kube.call("POST", `/api/v1/namespaces/${ns}/services`, serviceOf(ns, svc));
      await kube.call("POST", `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`, sliceOf(ns, svc, [], PORT));
    }
    await kube.call("POST", `${PLURAL_PATH}/${ns}/fallbackpolicies`, policyOf(ns, p, "v0"));
  });
  const listen = await freePort();
  const admin = await freePort();
  const configDir = join(o.dir, "configmap");
  const op = await startOperator({
    kubeconfig,
    configNamespace: ns,
    watchNamespace: ns,
    args: [
      "--envoy-config-dir",
      configDir,
      "--envoy-listen",
      `127.0.0.1:${listen}`,
      "--envoy-admin",
      `127.0.0.1:${admin}`,
    ],
  });
  const volume = syncConfigMap({ kubeconfig, namespace: ns, name: "fallback-envoy", dir: configDir });
  try {
    await volume.firstWrite;
    const envoy = await startEnvoy({
      config: join(configDir, "bootstrap.yaml"),
      admin: { address: "127.0.0.1", port: admin },
      drainTimeS: 1,
    });
    const url = `http://127.0.0.1:${listen}/`;
    const ask = async (p: string) => {
      const r = await send(url, `${p}.${ns}:${PORT}`, agent, 5_000);
      return r.body ?? "";
    };
    try {
      await until("ConfigMap mode serving", async () => (await ask(names[0]!)) === "v0", 60_000);
      const changes: number[] = [];
      for (let i = 0; i < 10; i++) {
        const p = names[i]!;
        const start = performance.now();
        await kube.call(
          "PATCH",
          `${PLURAL_PATH}/${ns}/fallbackpolicies/${p}`,
          policyOf(ns, p, `w${i}`),
          "application/merge-patch+json",
        );
        await until("ConfigMap mode change", async () => (await ask(p)) === `w${i}`, 60_000, 5);
        changes.push(performance.now() - start);
        await sleep(2_200);
      }
      return { policies: o.configMapPolicies, changes, rss: procStatus(op.pid).rss };
    } finally {
      await envoy.stop();
    }
  } finally {
    await volume.stop();
    await op.stop();
  }
}

// ---- the report ------------------------------------------------------------------------------

function report(r: {
  o: Required<XdsBenchOptions>;
  readyMs: number;
  idle: ReturnType<typeof procStatus>;
  sync: ReturnType<typeof initialSync>;
  envoyReadyMs: number;
  withEnvoy: ReturnType<typeof procStatus>;
  changes: Sample[];
  endpointSamples: Sample[];
  afterChanges: ReturnType<typeof procStatus>;
  fanOut: number[];
  fanOutSyncMs: number;
  withSubscribers: ReturnType<typeof procStatus>;
  clientRss: number;
  configMap: ConfigMapResult;
}): string {
  const { o } = r;
  const c = r.changes.map((s) => s.ms);
  const e = r.endpointSamples.map((s) => s.ms);
  const sentPerEndpointChange = [...new Set(r.endpointSamples.map((s) => s.sent))].join(", ");
  const verdict = (ok: boolean) => (ok ? "met" : "**missed**");
  const cm = r.configMap;
  return [
    `The real operator (child process, debug log) on a real kube-apiserver of its own, serving real Envoys over Delta ADS (plaintext on loopback). ${num(o.policies)} policies,`,
    `each with 3 Service backends (primary and two Service fallbacks) of ${ENDPOINTS} endpoints and a static answer: ${num(4 * o.policies)} clusters, ${num(3 * o.policies)} ClusterLoadAssignments,`,
    `one listener with scoped routes: a route configuration per governed Service (${num(o.policies)}) and 4 scopes per policy (its host names). ${PROBES} probe policies have Services without endpoints, so that their static answer shows a change.`,
    `A policy change is a PATCH of a probe's static body; it is done when Envoy answers with the new body (polled every 2 ms). An endpoint change is a PUT of a probe's`,
    `primary EndpointSlice adding a live endpoint; done when Envoy's answer comes from it. p99 is nearest-rank over ${o.changes} and ${o.endpointChanges} samples.`,
    "",
    "| measure | xDS | ConfigMap mode | target (xDS) | |",
    "|---|---:|---:|---:|---|",
    `| policies served | ${num(o.policies)} | ${num(cm.policies)} (the ConfigMap holds ~170 of this shape) | 10,000 | |`,
    `| a fresh Envoy: first request to ACK of everything | ${ms(r.sync.totalMs)} | – | ≤ ${ms(TARGET.connectToAckMs)} | ${verdict(r.sync.totalMs <= TARGET.connectToAckMs)} |`,
    `| … of which the operator (building and sending ${r.sync.responses} responses, ${mb(r.sync.bytes)}) | ${ms(r.sync.operatorMs)} | – | | |`,
    `| … of which Envoy (applying them, and its answers' way back) | ${ms(r.sync.envoyMs)} | – | | |`,
    `| Envoy process start to serving | ${ms(r.envoyReadyMs)} | – | | |`,
    `| policy change -> Envoy serving it, p50 | ${ms(percentile(c, 50))} | ${ms(percentile(cm.changes, 50))} | ≤ ${ms(TARGET.changeP50Ms)} | ${verdict(percentile(c, 50) <= TARGET.changeP50Ms)} |`,
    `| policy change -> Envoy serving it, p99 | ${ms(percentile(c, 99))} | ${ms(Math.max(...cm.changes))} (max of ${cm.changes.length}) | ≤ ${ms(TARGET.changeP99Ms)} | ${verdict(percentile(c, 99) <= TARGET.changeP99Ms)} |`,
    `| EndpointSlice change -> Envoy sending to the new endpoint, p50 | ${ms(percentile(e, 50))} | – | | |`,
    `| EndpointSlice change -> Envoy sending to the new endpoint, p99 | ${ms(percentile(e, 99))} | – | ≤ ${ms(TARGET.endpointP99Ms)} | ${verdict(percentile(e, 99) <= TARGET.endpointP99Ms)} |`,
    `| resources sent per EndpointSlice change (one Envoy) | ${sentPerEndpointChange} | – | 1 | ${verdict(sentPerEndpointChange === "1")} |`,
    `| operator VmRSS: all Ready, no Envoy | ${mb(r.idle.rss)} | ${mb(cm.rss)} | | |`,
    `| operator VmRSS: one Envoy, after the changes (VmHWM) | ${mb(r.afterChanges.rss)} (${mb(r.afterChanges.hwm)}) | – | ≤ ${mb(TARGET.rssBytes)} | ${verdict(r.afterChanges.rss <= TARGET.rssBytes)} |`,
    `| fan-out: ${o.subscribers} subscribers (3 Envoys) connected and synced | ${ms(r.fanOutSyncMs)} | – | | |`,
    `| fan-out: a policy change acknowledged by all ${o.subscribers}, p50 (max of ${r.fanOut.length}) | ${ms(percentile(r.fanOut, 50))} (${ms(Math.max(...r.fanOut))}) | – | | |`,
    `| fan-out: operator VmRSS with ${o.subscribers} subscribers (VmHWM) | ${mb(r.withSubscribers.rss)} (${mb(r.withSubscribers.hwm)}) | – | | |`,
    "",
    `All ${num(o.policies)} policies were Ready ${ms(r.readyMs)} after the operator started (compile, ${num(o.policies)} status writes). ConfigMap mode's change latency is that of this`,
    "benchmark's kubelet-like sync of the ConfigMap into Envoy's folder (a watch, then a swap); a real kubelet syncs a mounted ConfigMap every 60–90 s.",
    `The lightweight subscribers ran in a process of their own (its RSS: ${mb(r.clientRss)}).`,
    "",
  ].join("\n");
}

if (process.argv[1] === import.meta.filename) {
  const n = Number(process.argv[2] ?? 10_000);
  process.stdout.write(`${await runXdsBench({ policies: n })}\n`);
}
