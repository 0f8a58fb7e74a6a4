// The operator under faults: killed while the cluster moves on, an API server restart
// under it, two replicas with leader election and a dead leader, and a burst of applies.
// Each scenario has namespaces (and a ConfigMap) of its own; the API server restart runs
// on a control plane of its own so no other file is disturbed.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, inject, it } from "vitest";
import { createTestNamespace, kubectl, apply, getJson, kube } from "../../support/kubectl.ts";
import { repoRoot } from "../../support/paths.ts";
import { startControlPlane, type ControlPlane } from "../../support/controlplane.ts";
import { conditionOf, configFiles, metric, startOperator, type RunningOperator } from "../../support/operator.ts";
import { until } from "../../support/poll.ts";
import { endpointSlice, policy, service } from "../../support/objects.ts";

const shared = inject("kubeconfig");

/** Operators started by the running test; each test stops (or has killed) its own. */
const started: RunningOperator[] = [];
afterEach(async () => {
  await Promise.all(started.splice(0).map((o) => o.kill()));
});

async function operator(options: Parameters<typeof startOperator>[0]): Promise<RunningOperator> {
  const op = await startOperator(options);
  started.push(op);
  return op;
}

/** Reads of one scenario's policies and ConfigMap. */
function scene(kubeconfig: string, apps: string, config: string) {
  const getPolicy = (name: string) => getJson(kubeconfig, ["fallbackpolicy", name, "-n", apps]);
  const getConfigMap = () => getJson(kubeconfig, ["configmap", "fallback-envoy", "-n", config]);
  /** Ready, for the generation it has now (or `generation`), with that observedGeneration. */
  const ready = (name: string, generation?: number, timeoutMs?: number) =>
    until(
      `${apps}/${name} Ready${generation ? ` at generation ${generation}` : ""}`,
      async () => {
        const p = await getPolicy(name);
        const c = conditionOf(p, "Ready");
        const gen = generation ?? p?.metadata.generation;
        return (
          p?.metadata.generation === gen &&
          c?.status === "True" &&
          c.observedGeneration === gen &&
          p.status.observedGeneration === gen &&
          p
        );
      },
      timeoutMs,
    );
  const files = async () => configFiles(await getConfigMap());
  const virtualHost = (f: Record<string, any>, name: string) =>
    f["lds.yaml"]?.resources?.[0]?.filter_chains?.[0]?.filters?.[0]?.typed_config?.route_config?.virtual_hosts?.find(
      (v: { name: string }) => v.name === `${apps}/${name}`,
    );
  /** The addresses of the primary cluster behind a policy's route. */
  const primaryAddresses = (f: Record<string, any>, name: string): string[] | undefined => {
    const vhost = virtualHost(f, name);
    const clusters = f["cds.yaml"]?.resources ?? [];
    const aggregate = clusters.find((c: any) => c.name === vhost?.routes?.[0]?.route?.cluster);
    const primary = clusters.find((c: any) => c.name === aggregate?.cluster_type?.typed_config?.clusters?.[0]);
    return primary?.load_assignment?.endpoints
      ?.flatMap((e: any) => e.lb_endpoints.map((l: any) => l.endpoint.address.socket_address.address))
      .sort();
  };
  return { getPolicy, getConfigMap, ready, files, virtualHost, primaryAddresses };
}

const patchSpec = (kubeconfig: string, ns: string, name: string, spec: object) =>
  kube(kubeconfig, ["patch", "fallbackpolicy", name, "-n", ns, "--type", "merge", "-p", JSON.stringify({ spec })]);

const writes = async (op: RunningOperator) => (await metric(op.metricsUrl, "fallback_config_writes_total")) ?? 0;

/** Lines of the operator's log with this message. */
const logged = (op: RunningOperator, msg: string) => op.logs().filter((l) => l["msg"] === msg);

const noErrors = (op: RunningOperator) => expect(op.output()).not.toMatch(/"level":"(error|fatal)"/);

describe("kill -9, and the cluster changes while the operator is down", () => {
  it("a new operator converges on everything that happened meanwhile, with one config write", async () => {
    const apps = await createTestNamespace(shared, "faults-kill");
    const config = await createTestNamespace(shared, "faults-kill-config");
    const s = scene(shared, apps, config);
    const names = ["alpha", "bravo", "charlie", "echo"];
    // Many EndpointSlices (of a Service no policy uses) make their list the slowest of the
    // four at start-up, as in a real cluster: the new operator must wait for every cache.
    const bulk = Array.from({ length: 100 }, (_, i) => `10.8.${i >> 8}.${i & 255}`);
    await apply(shared, [
      ...names.flatMap((n) => [service(apps, n), endpointSlice(apps, n, ["10.1.0.1", "10.1.0.2"])]),
      ...names.map((n) => policy(apps, n)),
      ...Array.from({ length: 300 }, (_, i) => endpointSlice(apps, "bulk", bulk, 8080, `s${i}`)),
    ]);
    const first = await operator({ kubeconfig: shared, configNamespace: config, watchNamespace: apps });
    for (const n of names) await s.ready(n, 1);
    const echoBefore = await s.getPolicy("echo");
    const hashBefore = (await s.getConfigMap()).metadata.annotations["fallback.dev/config-hash"];
    expect(s.virtualHost(await s.files(), "charlie")).toBeDefined();

    await first.kill();
    expect(first.process.signalCode).toBe("SIGKILL");

    // While nobody watches: one new policy, one spec change, one deletion, new endpoints.
    await apply(shared, [service(apps, "delta"), endpointSlice(apps, "delta", ["10.1.0.9"]), policy(apps, "delta")]);
    await patchSpec(shared, apps, "bravo", { retry: { attempts: 5 } });
    await kube(shared, ["delete", "fallbackpolicy", "charlie", "-n", apps]);
    await apply(shared, [endpointSlice(apps, "alpha", ["10.1.0.7", "10.1.0.8", "10.1.0.9"])]);

    const second = await operator({ kubeconfig: shared, configNamespace: config, watchNamespace: apps });
    const delta = await s.ready("delta", 1);
    const bravo = await s.ready("bravo", 2);
    expect(bravo.status.conditions.map((c: any) => c.observedGeneration)).toEqual([2, 2, 2, 2, 2]);
    expect(delta.status.backends[0]).toMatchObject({ name: "delta", endpoints: 1 });
    const alpha = await until("alpha's 3 new endpoints in its status", async () => {
      const p = await s.getPolicy("alpha");
      return p.status.backends[0].endpoints === 3 && p;
    });
    expect(conditionOf(alpha, "Ready")?.status).toBe("True");

    const f = await until("the config with every change", async () => {
      const f = await s.files();
      return s.virtualHost(f, "charlie") === undefined && s.virtualHost(f, "delta") !== undefined && f;
    });
    expect(s.virtualHost(f, "bravo").routes[0].route.retry_policy.num_retries).toBe(5);
    expect(s.primaryAddresses(f, "alpha")).toEqual(["10.1.0.7", "10.1.0.8", "10.1.0.9"]);
    expect(s.primaryAddresses(f, "delta")).toEqual(["10.1.0.9"]);
    expect(s.virtualHost(f, "echo")).toBeDefined();
    expect((f["cds.yaml"].resources as Array<{ name: string }>).some((c) => c.name.includes("charlie"))).toBe(false);
    expect((await s.getConfigMap()).metadata.annotations["fallback.dev/config-hash"]).not.toBe(hashBefore);

    // The untouched policy never flapped: the new operator did not act on half-filled
    // caches (a policy whose Service is not listed yet would lose its routes for a moment).
    const echo = await s.getPolicy("echo");
    expect(conditionOf(echo, "Ready")).toEqual(conditionOf(echoBefore, "Ready"));
    await new Promise((r) => setTimeout(r, 500));
    expect(await writes(second)).toBe(1);
    // About the policies only: the API server's own controllers may warn about the test's
    // Services (e.g. ClusterIPNotAllocated from its IP repair loop), which is not ours to judge.
    const warnings = await kube(shared, [
      "get",
      "events",
      "-n",
      apps,
      "--field-selector",
      "type=Warning,involvedObject.kind=FallbackPolicy",
      "-o",
      "jsonpath={.items[*].reason}",
    ]);
    expect(warnings).toBe("");
    expect(await second.stop()).toBe(0);
    noErrors(second);
  });
});

describe("API server restart under a running operator", () => {
  const dir = join(repoRoot, ".local", `test-op-faults-restart-${process.pid}`);
  let cp: ControlPlane | undefined;
  afterAll(async () => {
    await cp?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("rides it out: no crash, watches and the Lease come back, a later change converges, exit 0", async () => {
    rmSync(dir, { recursive: true, force: true });
    cp = await startControlPlane({ dir });
    const kubeconfig = cp.kubeconfigPath;
    for (const args of [
      ["apply", "-f", join(repoRoot, "crds")],
      ["wait", "--for", "condition=Established", "--timeout", "60s", "crd/fallbackpolicies.fallback.dev"],
    ]) {
      const r = await kubectl(kubeconfig, args);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
    }
    const apps = await createTestNamespace(kubeconfig, "faults-restart");
    const config = await createTestNamespace(kubeconfig, "faults-restart-config");
    const s = scene(kubeconfig, apps, config);
    const op = await operator({ kubeconfig, configNamespace: config, watchNamespace: apps, leaderElect: true });
    await apply(kubeconfig, [service(apps, "shop"), endpointSlice(apps, "shop", ["10.2.0.1"]), policy(apps, "shop")]);
    await s.ready("shop", 1);

    await cp.restart();
    expect(op.process.exitCode).toBeNull();

    await apply(kubeconfig, [
      service(apps, "cart"),
      policy(apps, "cart"),
      endpointSlice(apps, "shop", ["10.2.0.1", "10.2.0.2"]),
    ]);
    await patchSpec(kubeconfig, apps, "shop", { retry: { attempts: 4 } });
    await s.ready("cart", 1, 90_000);
    await s.ready("shop", 2, 30_000);
    const f = await until("the config after the restart", async () => {
      const f = await s.files();
      return s.virtualHost(f, "cart") && s.virtualHost(f, "shop")?.routes[0].route.retry_policy.num_retries === 4 && f;
    });
    expect(s.primaryAddresses(f, "shop")).toEqual(["10.2.0.1", "10.2.0.2"]);
    expect((await s.getPolicy("shop")).status.backends[0].endpoints).toBe(2);

    expect((await fetch(`${op.healthUrl}/readyz`)).status).toBe(200);
    expect(await metric(op.metricsUrl, "leader_election_master_status", { name: "fallback-operator" })).toBe(1);
    expect(op.process.exitCode).toBeNull();
    expect(await op.stop()).toBe(0);
    expect(op.output()).not.toMatch(/"level":"fatal"|Unhandled|uncaught/i);
    // It noticed the outage and recovered from it, rather than never seeing it.
    expect(op.output()).toMatch(/list\/watch failed, retrying/);
  });
});

describe("two replicas with --leader-elect", () => {
  it("only the Lease holder writes; when it dies the standby takes over within the lease duration", async () => {
    const apps = await createTestNamespace(shared, "faults-leader");
    const config = await createTestNamespace(shared, "faults-leader-config");
    const s = scene(shared, apps, config);
    const options = { kubeconfig: shared, configNamespace: config, watchNamespace: apps, leaderElect: true };
    // Identities are the hostname plus a random suffix, so two processes on one host differ.
    const a = await operator(options);
    const b = await operator(options);
    const identity = (op: RunningOperator) => logged(op, "became leader")[0]?.["identity"] as string | undefined;
    const leaderId = await until("a Lease holder", async () => {
      const lease = await getJson(shared, ["lease", "fallback-operator", "-n", config]);
      return lease?.spec?.holderIdentity as string | undefined;
    });
    const [leader, standby] = await until("the holder says it leads", () =>
      identity(a) === leaderId ? [a, b] : identity(b) === leaderId ? [b, a] : undefined,
    );

    await apply(shared, [
      service(apps, "shop"),
      endpointSlice(apps, "shop", ["10.3.0.1"]),
      service(apps, "cart"),
      policy(apps, "shop"),
      policy(apps, "cart"),
    ]);
    await s.ready("shop", 1);
    await s.ready("cart", 1);
    await new Promise((r) => setTimeout(r, 500));
    expect(await writes(leader)).toBeGreaterThanOrEqual(1);
    expect(await writes(standby)).toBe(0);
    expect(logged(standby, "Envoy config written")).toEqual([]);
    expect(await metric(leader.metricsUrl, "leader_election_master_status", { name: "fallback-operator" })).toBe(1);
    expect(await metric(standby.metricsUrl, "leader_election_master_status", { name: "fallback-operator" })).toBe(0);
    // A replica that lost the race to create the Lease counts as out of touch with it until
    // its next retry (kopf: a 409 on create is not recorded as contact), so allow a retry period.
    for (const op of [leader, standby]) {
      await until(
        `${op === leader ? "leader" : "standby"} /readyz 200`,
        async () => (await fetch(`${op.healthUrl}/readyz`)).status === 200,
        5_000,
      );
    }
    expect(identity(standby)).toBeUndefined();

    // The leader dies without releasing the Lease: the standby waits it out (15 s by
    // default, by its own clock since the record last changed) and takes over.
    const killedAt = Date.now();
    await leader.kill();
    const standbyId = await until("the standby leads", () => identity(standby), 40_000);
    const takeoverMs = Date.now() - killedAt;
    console.log(`[faults] standby took over ${(takeoverMs / 1000).toFixed(1)} s after the leader's SIGKILL`);
    // leaseDurationSeconds 15 + one retry period (2 s + 20 % jitter), with some slack.
    expect(takeoverMs).toBeLessThan(15_000 + 2_400 + 3_000);
    expect((await getJson(shared, ["lease", "fallback-operator", "-n", config])).spec.holderIdentity).toBe(standbyId);
    expect(standbyId).not.toBe(leaderId);

    await patchSpec(shared, apps, "shop", { retry: { attempts: 6 } });
    await apply(shared, [service(apps, "search"), policy(apps, "search")]);
    await s.ready("shop", 2);
    await s.ready("search", 1);
    await until(
      "the new leader's config",
      async () => s.virtualHost(await s.files(), "shop")?.routes[0].route.retry_policy.num_retries === 6,
    );
    expect(await writes(standby)).toBeGreaterThanOrEqual(1);
    expect(await standby.stop()).toBe(0);
    noErrors(standby);
  });
});

describe("a burst of 200 policies in one apply", () => {
  it("coalesces into a few ConfigMap writes, and all 200 become Ready", async () => {
    const apps = await createTestNamespace(shared, "faults-burst");
    const config = await createTestNamespace(shared, "faults-burst-config");
    const op = await operator({ kubeconfig: shared, configNamespace: config, watchNamespace: apps });
    await until("ready", async () => (await fetch(`${op.healthUrl}/readyz`)).status === 200);
    const before = await writes(op);
    const names = Array.from({ length: 200 }, (_, i) => `p${String(i).padStart(3, "0")}`);
    // Small policies: one Service fallback, no retries (~4.3 KB of config each). With the
    // defaults (a static response, ~7.7 KB each) 200 would not fit the 1 MiB ConfigMap.
    const spec = { fallbacks: [{ service: { name: "cache", port: 8080 } }], retry: { attempts: 0 } };
    const started = Date.now();
    await apply(shared, [
      service(apps, "cache"),
      ...names.map((n) => service(apps, n)),
      ...names.map((n) => policy(apps, n, spec)),
    ]);
    const applied = Date.now();
    await until(
      "all 200 Ready",
      async () => {
        const list = await getJson(shared, ["fallbackpolicies", "-n", apps]);
        const ready = list.items.filter((p: any) => {
          const c = conditionOf(p, "Ready");
          return c?.status === "True" && c.observedGeneration === p.metadata.generation;
        });
        return ready.length === 200;
      },
      90_000,
    );
    const done = Date.now();
    await new Promise((r) => setTimeout(r, 500));
    const delta = (await writes(op)) - before;
    console.log(
      `[faults] burst of 200 policies + 200 Services: kubectl apply ${((applied - started) / 1000).toFixed(1)} s, ` +
        `all Ready ${((done - started) / 1000).toFixed(1)} s after it began, ${delta} ConfigMap writes`,
    );
    expect(delta).toBeGreaterThanOrEqual(1);
    expect(delta).toBeLessThanOrEqual(10);
    const lds = configFiles(await getJson(shared, ["configmap", "fallback-envoy", "-n", config]))["lds.yaml"];
    expect(lds.resources[0].filter_chains[0].filters[0].typed_config.route_config.virtual_hosts).toHaveLength(200);
    expect(await op.stop()).toBe(0);
    noErrors(op);
  });
});
