// The framework against a real kube-apiserver: plain ConfigMaps, and a tiny test CRD
// for the status subresource. Nothing here knows any product resource.

import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestNamespace, kubectl } from "../../harness/controlplane.ts";
import {
  EventRecorder,
  KubeClient,
  Operator,
  PermanentError,
  TemporaryError,
  createLogger,
  patchStatus,
  setStatusCondition,
  type Condition,
  type KubeObject,
  type ResourceSpec,
} from "../../../operator/src/kopf/index.ts";

const kubeconfig = inject("kubeconfig");
const logger = createLogger({ level: process.env["KOPF_TEST_LOG"] ?? "silent" });
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig);
const client = new KubeClient(kc);

const until = async (what: string, cond: () => boolean | Promise<boolean>, ms = 20_000) => {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const WIDGET_CRD = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "widgets.kopf-test.dev" },
  spec: {
    group: "kopf-test.dev",
    scope: "Namespaced",
    names: { kind: "Widget", plural: "widgets", singular: "widget", listKind: "WidgetList" },
    versions: [{
      name: "v1", served: true, storage: true, subresources: { status: {} },
      schema: { openAPIV3Schema: { type: "object", properties: {
        spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
        status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
      } } },
    }],
  },
};

let ns: string;
let CM: ResourceSpec;
const WIDGETS = { group: "kopf-test.dev", version: "v1", plural: "widgets", kind: "Widget" };
let op: Operator;
const calls: string[] = [];
const rawEvents: string[] = [];
let failures = 0;
let timerRuns = 0;
let setChanges = 0;
let setSize = 0;

beforeAll(async () => {
  ns = await createTestNamespace(kubeconfig, "kopf-handlers");
  CM = { group: "", version: "v1", plural: "configmaps", namespace: ns };
  const crd = await kubectl(kubeconfig, ["apply", "-f", "-"], { input: JSON.stringify(WIDGET_CRD) });
  expect(crd.code, crd.stderr).toBe(0);
  const est = await kubectl(kubeconfig, ["wait", "--for=condition=Established", "crd/widgets.kopf-test.dev", "--timeout=60s"]);
  expect(est.code, est.stderr).toBe(0);
  await until("widgets served", async () => client.list(WIDGETS, { namespace: ns }).then(() => true, () => false));

  op = new Operator({
    name: "kopf-it",
    domain: "kopf-test.dev",
    kubeConfig: kc,
    logger,
    http: { port: 0, host: "127.0.0.1" },
    retryBackoff: { baseMs: 100, maxMs: 1000, jitter: 0 },
  });
  const plain = { ...CM, labelSelector: "kind=plain" };
  op.on.create(plain, (ctx) => void calls.push(`create:${ctx.name}`));
  op.on.update(plain, (ctx) => void calls.push(`update:${ctx.name}`));
  op.on.field(plain, "data.color", (ctx) => void calls.push(`field:${ctx.name}:${String(ctx.old)}->${String(ctx.new)}`));
  op.on.delete(plain, async (ctx) => {
    calls.push(`delete:${ctx.name}`);
    await ctx.event("Normal", "Cleaned", `cleaned up ${ctx.name}`);
  });
  op.on.event(plain, (e) => void rawEvents.push(`${e.type}:${e.object.metadata.name}`));

  const flaky = { ...CM, labelSelector: "kind=flaky" };
  op.on.create(flaky, (ctx) => {
    failures++;
    if (ctx.name === "temporary" && ctx.retry === 0 && failures < 10) throw new TemporaryError("not yet", 0.5);
    if (ctx.name === "crashy" && ctx.retry < 2) throw new Error("boom");
    if (ctx.name === "hopeless") throw new PermanentError("cannot ever work");
    calls.push(`create:${ctx.name}:retry=${ctx.retry}`);
  });

  op.timer({ ...CM, labelSelector: "kind=timed" }, { intervalSeconds: 0.3, initialDelaySeconds: 0.1 }, () => void timerRuns++);

  op.watch({ ...CM, labelSelector: "kind=set" }, {
    debounceMs: 50,
    onChange: (store) => {
      setChanges++;
      setSize = store.size;
    },
  });

  op.on.create(WIDGETS, async (ctx) => {
    await ctx.patchStatus({ phase: "Ready", observed: (ctx.spec as { size?: number }).size });
    await ctx.setCondition({ type: "Ready", status: "True", reason: "Reconciled", message: "all good" });
    await ctx.event("Normal", "Reconciled", "widget is ready");
  });

  await op.start();
  await op.whenSynced();
});

afterAll(async () => {
  await op?.stop();
});

const cm = (name: string, kind: string, data: Record<string, string> = {}) =>
  client.create(CM, { metadata: { name, namespace: ns, labels: { kind } }, data });

describe("kopf on a real API server", () => {
  it("runs create, update, field and delete handlers, with a finalizer around the delete", async () => {
    await cm("one", "plain", { color: "red" });
    await until("create handled", () => calls.includes("create:one"));
    await until("finalizer added", async () =>
      (await client.get(CM, ns, "one")).metadata.finalizers?.includes("kopf-test.dev/finalizer") ?? false);
    const handled = await client.get(CM, ns, "one");
    expect(JSON.parse(handled.metadata.annotations?.["kopf-test.dev/last-handled-configuration"] ?? "{}")).toMatchObject({
      data: { color: "red" },
    });

    await client.patch(CM, ns, "one", { data: { color: "blue" } });
    await until("update handled", () => calls.includes("field:one:red->blue"));
    expect(calls.filter((c) => c === "update:one")).toHaveLength(1);

    // A label-only change is an update but not a change of data.color.
    await client.patch(CM, ns, "one", { metadata: { labels: { extra: "x" } } });
    await until("second update", () => calls.filter((c) => c === "update:one").length === 2);
    expect(calls.filter((c) => c.startsWith("field:one"))).toHaveLength(1);

    await client.delete(CM, ns, "one");
    await until("delete handled and object gone", async () =>
      calls.includes("delete:one") && (await client.get(CM, ns, "one").then(() => false, () => true)));
    expect(calls.filter((c) => c === "create:one")).toHaveLength(1);
    await until("raw events seen", () => rawEvents.includes("deleted:one"));
    expect(rawEvents[0]).toBe("added:one");
  });

  it("retries: TemporaryError after its delay, other errors with backoff; PermanentError stops", async () => {
    await cm("temporary", "flaky");
    await cm("crashy", "flaky");
    await cm("hopeless", "flaky");
    await until("temporary succeeded", () => calls.some((c) => c.startsWith("create:temporary")));
    await until("crashy succeeded", () => calls.includes("create:crashy:retry=2"));
    await sleep(1000);
    expect(calls.some((c) => c.startsWith("create:hopeless"))).toBe(false);
    const hopeless = await client.get(CM, ns, "hopeless");
    expect(hopeless.metadata.annotations?.["kopf-test.dev/last-handled-configuration"]).toBeUndefined();
  });

  it("runs timers per object, and stops them when the object goes", async () => {
    await cm("ticking", "timed");
    await until("timer ran a few times", () => timerRuns >= 3);
    await client.delete(CM, ns, "ticking");
    await sleep(500);
    const after = timerRuns;
    await sleep(800);
    expect(timerRuns).toBe(after);
  });

  it("keeps a whole-set cache and calls onChange, debounced", async () => {
    await until("initial onChange after sync", () => setChanges >= 1);
    const before = setChanges;
    await Promise.all(["s1", "s2", "s3", "s4"].map((n) => cm(n, "set")));
    await until("set has four", () => setSize === 4);
    expect(setChanges - before).toBeLessThan(4); // coalesced
    expect(op.store({ ...CM, labelSelector: "kind=set" }).list(ns).map((o) => o.metadata.name).sort()).toEqual(["s1", "s2", "s3", "s4"]);
    // The API server records who set what (managedFields); the cache leaves that out.
    expect((await client.get(CM, ns, "s1")).metadata.managedFields).toBeDefined();
    expect(op.store({ ...CM, labelSelector: "kind=set" }).get(`${ns}/s1`)?.metadata.managedFields).toBeUndefined();
  });

  it("writes status and conditions through /status, and skips identical writes", async () => {
    await client.create(WIDGETS, { metadata: { name: "w1", namespace: ns }, spec: { size: 3 } } as KubeObject);
    await until("status written", async () => {
      const w = await client.get(WIDGETS, ns, "w1");
      const st = w["status"] as { phase?: string; conditions?: unknown[] } | undefined;
      return st?.phase === "Ready" && (st.conditions?.length ?? 0) > 0;
    });
    let w = await client.get(WIDGETS, ns, "w1");
    const status = w["status"] as { observed: number; conditions: Condition[] };
    expect(status.observed).toBe(3);
    expect(status.conditions).toEqual([
      expect.objectContaining({ type: "Ready", status: "True", reason: "Reconciled", message: "all good", observedGeneration: 1 }),
    ]);
    const readyAt = status.conditions[0]?.lastTransitionTime;

    // Same condition again: no write at all (same object back, same resourceVersion).
    const same = await setStatusCondition(client, WIDGETS, w, { type: "Ready", status: "True", reason: "Reconciled", message: "all good" });
    expect(same).toBe(w);
    expect(await patchStatus(client, WIDGETS, w, { phase: "Ready" })).toBe(w);

    // Reason changes, status does not: lastTransitionTime stays.
    await sleep(1100);
    w = await setStatusCondition(client, WIDGETS, w, { type: "Ready", status: "True", reason: "StillFine" });
    let c = (w["status"] as { conditions: Condition[] }).conditions[0];
    expect(c?.reason).toBe("StillFine");
    expect(c?.lastTransitionTime).toBe(readyAt);

    // Status flips: lastTransitionTime moves.
    w = await setStatusCondition(client, WIDGETS, w, { type: "Ready", status: "False", reason: "Broken" });
    c = (w["status"] as { conditions: Condition[] }).conditions[0];
    expect(c?.status).toBe("False");
    expect(c?.lastTransitionTime).not.toBe(readyAt);

    // The status subresource leaves the spec alone, and server-side apply works too.
    w = await patchStatus(client, WIDGETS, w, { phase: "Applied" }, { strategy: "apply", fieldManager: "kopf-it-ssa" });
    expect((w["status"] as { phase: string }).phase).toBe("Applied");
    expect(w["spec"]).toEqual({ size: 3 });
    expect(w.metadata.generation).toBe(1);
  });

  it("records Events, aggregating repeats into a series", async () => {
    await until("handler event", async () => {
      const events = await client.list({ group: "events.k8s.io", version: "v1", plural: "events" }, { namespace: ns });
      return events.items.some((e) => e["reason"] === "Reconciled" && (e["regarding"] as { name?: string }).name === "w1");
    });
    const target = await client.get(CM, ns, "s1");
    const recorder = new EventRecorder(client, { reportingController: "kopf-test.dev/it", reportingInstance: "it-1", logger, seriesFlushMs: 0 });
    for (let i = 0; i < 3; i++) await recorder.warning(target, "Flapping", "it keeps happening");
    await recorder.normal(target, "Other", "something else");
    recorder.close();
    const events = (await client.list({ group: "events.k8s.io", version: "v1", plural: "events" }, { namespace: ns })).items
      .filter((e) => (e["regarding"] as { name?: string }).name === "s1");
    const flapping = events.filter((e) => e["reason"] === "Flapping");
    expect(flapping).toHaveLength(1);
    expect(flapping[0]).toMatchObject({ type: "Warning", note: "it keeps happening", reportingController: "kopf-test.dev/it", series: { count: 3 } });
    expect(events.filter((e) => e["reason"] === "Other")).toHaveLength(1);
  });

  it("serves /metrics, /healthz and /readyz", async () => {
    const base = `http://127.0.0.1:${op.httpPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status, await ready.text()).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/controller_runtime_reconcile_total\{controller="configmaps",result="success"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_total\{controller="configmaps",result="error"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_errors_total\{controller="configmaps"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_time_seconds_bucket\{le="0.005",controller="configmaps"\}/);
    expect(metrics).toMatch(/workqueue_adds_total\{name="configmaps"\} [1-9]/);
    expect(metrics).toMatch(/workqueue_retries_total\{name="configmaps"\} [1-9]/);
    expect(metrics).toMatch(/workqueue_depth\{name="configmaps"\} 0/);
    expect(metrics).toMatch(/process_cpu_seconds_total/);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
