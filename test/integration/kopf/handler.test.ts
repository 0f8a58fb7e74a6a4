// The framework against a real kube-apiserver: handlers over plain ConfigMaps, and a tiny
// test CRD for the status subresource and read-your-writes. Nothing here knows any product resource.

import { KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { createTestNamespace, kubectl } from "../../support/kubectl.ts";
import {
  EventRecorder,
  KubeClient,
  Operator,
  createLogger,
  generationChanged,
  patchStatus,
  type KubeObject,
  type ResourceSpec,
  type Store,
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
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
              status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
            },
          },
        },
      },
    ],
  },
};

let ns: string;
let CM: ResourceSpec;
const WIDGETS = { group: "kopf-test.dev", version: "v1", plural: "widgets", kind: "Widget" };
let op: Operator;
let sets: Store;
let widgets: Store;
/** What each run of the set handler saw: the names in the cache. */
const setRuns: string[][] = [];
let flakyRuns = 0;
/** Runs still to fail, counted down by each run; the test sets it. */
let flakyFailures = 0;
/** What the widget handler saw of each widget's status when it ran. */
const widgetStatuses: unknown[] = [];
let statusWrites = 0;
/** Runs of the handler that watches widgets for spec changes only. */
let specRuns = 0;

beforeAll(async () => {
  ns = await createTestNamespace(kubeconfig, "kopf-handlers");
  CM = { group: "", version: "v1", plural: "configmaps", namespace: ns };
  const crd = await kubectl(kubeconfig, ["apply", "-f", "-"], { input: JSON.stringify(WIDGET_CRD) });
  expect(crd.code, crd.stderr).toBe(0);
  const est = await kubectl(kubeconfig, [
    "wait",
    "--for=condition=Established",
    "crd/widgets.kopf-test.dev",
    "--timeout=60s",
  ]);
  expect(est.code, est.stderr).toBe(0);
  await until("widgets served", async () =>
    client.list(WIDGETS, { namespace: ns }).then(
      () => true,
      () => false,
    ),
  );

  op = new Operator({
    name: "kopf-it",
    domain: "kopf-test.dev",
    kubeConfig: kc,
    logger,
    http: { port: 0, host: "127.0.0.1" },
    retryBackoff: { baseMs: 100, maxMs: 1000, jitter: 0 },
  });
  const set = { ...CM, labelSelector: "kind=set" };
  sets = op.watch(set);
  op.handler(
    "set",
    () =>
      void setRuns.push(
        sets
          .list()
          .map((o) => o.metadata.name)
          .sort(),
      ),
    { watches: [set], debounceMs: 50 },
  );

  const flaky = { ...CM, labelSelector: "kind=flaky" };
  op.handler(
    "flaky",
    () => {
      flakyRuns++;
      if (flakyFailures-- > 0) throw new Error("boom");
    },
    { watches: [flaky], debounceMs: 10 },
  );

  // A handler that writes what it reads: with read-your-writes, a run right after its own
  // write sees the write (and writes nothing again), even before the watch delivers it.
  widgets = op.watch(WIDGETS);
  const widgetHandler = op.handler(
    "widgets",
    async () => {
      for (const w of widgets.list()) {
        widgetStatuses.push(w["status"]);
        const size = (w["spec"] as { size?: number }).size;
        const updated = await patchStatus(client, WIDGETS, w, { phase: "Ready", observed: size });
        if (updated === w) continue;
        statusWrites++;
        widgets.wrote(updated, w.metadata.resourceVersion);
        widgetHandler.run(); // at once: the watch has not delivered the write yet
      }
    },
    { watches: [WIDGETS], debounceMs: 10 },
  );

  // The same widgets, through a predicate: only a new generation (a spec change) runs it.
  op.handler("widget-specs", () => void specRuns++, {
    watches: [{ resource: WIDGETS, when: generationChanged }],
    debounceMs: 10,
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
  it("runs a handler once the caches are filled, and then once per burst of changes", async () => {
    await until("first run after the sync, with an empty cache", () => setRuns.length >= 1);
    expect(setRuns[0]).toEqual([]);
    const before = setRuns.length;
    await Promise.all(["s1", "s2", "s3", "s4"].map((n) => cm(n, "set")));
    await until("a run saw all four", () => setRuns.at(-1)?.length === 4);
    expect(setRuns.length - before).toBeLessThan(4); // coalesced
    expect(setRuns.at(-1)).toEqual(["s1", "s2", "s3", "s4"]);
    // The API server records who set what (managedFields); the cache leaves that out.
    expect((await client.get(CM, ns, "s1")).metadata.managedFields).toBeDefined();
    expect(sets.get(`${ns}/s1`)?.metadata.managedFields).toBeUndefined();
  });

  it("retries a failed run with backoff until it succeeds", async () => {
    const before = flakyRuns;
    flakyFailures = 2;
    await cm("f1", "flaky");
    await until("failed twice, then succeeded", () => flakyRuns - before >= 3 && flakyFailures < 0);
    await sleep(500);
    expect(flakyRuns - before).toBe(3);
  });

  it("reads its own writes: a run right after a status write sees it and writes nothing again", async () => {
    await client.create(WIDGETS, { metadata: { name: "w1", namespace: ns }, spec: { size: 3 } } as KubeObject);
    const phase = async () =>
      ((await client.get(WIDGETS, ns, "w1"))["status"] as { phase?: string } | undefined)?.phase;
    await until("status written", async () => (await phase()) === "Ready");
    await sleep(500);
    expect(statusWrites).toBe(1);
    // The run the handler asked for right after its write saw the write, not the object before it.
    expect(widgetStatuses.at(-1)).toEqual({ phase: "Ready", observed: 3 });
    expect(widgets.get(`${ns}/w1`)?.metadata.managedFields).toBeUndefined();
  });

  it("writes status through /status, skips identical writes, and applies server-side", async () => {
    let w = await client.get(WIDGETS, ns, "w1");
    expect(await patchStatus(client, WIDGETS, w, { phase: "Ready" })).toBe(w);
    // The status subresource leaves the spec alone, and server-side apply works too.
    w = await patchStatus(client, WIDGETS, w, { phase: "Applied" }, { strategy: "apply", fieldManager: "kopf-it-ssa" });
    expect((w["status"] as { phase: string }).phase).toBe("Applied");
    expect(w["spec"]).toEqual({ size: 3 });
    expect(w.metadata.generation).toBe(1);
  });

  it("runs a handler with a generation predicate for spec changes, not for status writes", async () => {
    await client.create(WIDGETS, { metadata: { name: "w2", namespace: ns }, spec: { size: 1 } } as KubeObject);
    await until("created and run", () => specRuns > 0 && widgets.get(`${ns}/w2`) !== undefined);
    await sleep(300);
    const before = specRuns;
    const w = await client.get(WIDGETS, ns, "w2");
    // Status writes (this one, and the widgets handler's answer to it) reach the cache, and run nothing.
    const written = await patchStatus(client, WIDGETS, w, { phase: "Elsewhere" }, { fieldManager: "kopf-it-other" });
    await until(
      "the status write in the cache",
      () => Number(widgets.get(`${ns}/w2`)?.metadata.resourceVersion) >= Number(written.metadata.resourceVersion),
    );
    await sleep(500);
    expect(specRuns).toBe(before);
    await client.patch(WIDGETS, ns, "w2", { spec: { size: 2 } });
    await until("a run for the new generation", () => specRuns > before);
  });

  it("records Events, aggregating repeats into a series", async () => {
    const target = await client.get(CM, ns, "s1");
    const recorder = new EventRecorder(client, {
      reportingController: "kopf-test.dev/it",
      reportingInstance: "it-1",
      logger,
      seriesFlushMs: 0,
    });
    for (let i = 0; i < 3; i++) await recorder.warning(target, "Flapping", "it keeps happening");
    await recorder.normal(target, "Other", "something else");
    recorder.close();
    const events = (
      await client.list({ group: "events.k8s.io", version: "v1", plural: "events" }, { namespace: ns })
    ).items.filter((e) => (e["regarding"] as { name?: string }).name === "s1");
    const flapping = events.filter((e) => e["reason"] === "Flapping");
    expect(flapping).toHaveLength(1);
    expect(flapping[0]).toMatchObject({
      type: "Warning",
      note: "it keeps happening",
      reportingController: "kopf-test.dev/it",
      series: { count: 3 },
    });
    expect(events.filter((e) => e["reason"] === "Other")).toHaveLength(1);
  });

  it("serves /metrics, /healthz and /readyz", async () => {
    const base = `http://127.0.0.1:${op.httpPort}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status, await ready.text()).toBe(200);
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(/controller_runtime_reconcile_total\{controller="flaky",result="success"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_total\{controller="flaky",result="error"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_errors_total\{controller="flaky"\} [1-9]/);
    expect(metrics).toMatch(/controller_runtime_reconcile_time_seconds_bucket\{le="0.005",controller="set"\}/);
    expect(metrics).toMatch(/workqueue_adds_total\{name="set"\} [1-9]/);
    expect(metrics).toMatch(/workqueue_retries_total\{name="flaky"\} [1-9]/);
    expect(metrics).toMatch(/workqueue_depth\{name="set"\} 0/);
    expect(metrics).toMatch(/process_cpu_seconds_total/);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
  });
});
