// The informer against a fake API server on loopback: enough of list + watch to force
// the paths a real cluster rarely shows on demand (silent watches, 410, 5xx, closes).

import { KubeConfig } from "@kubernetes/client-node";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { KubeClient, type KubeObject } from "../../../operator/src/kopf/client.ts";
import { Informer, type InformerEvent } from "../../../operator/src/kopf/informer.ts";
import { createLogger } from "../../../operator/src/kopf/log.ts";

type Mode = "normal" | "silent" | "gone" | "fail" | "close";

class FakeApi {
  rv = 100;
  objects = new Map<string, KubeObject>();
  watches: ServerResponse[] = [];
  lists = 0;
  watchRequests: URLSearchParams[] = [];
  listMode: "normal" | "fail" = "normal";
  watchMode: Mode = "normal";
  server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://x");
    if (url.pathname !== "/api/v1/configmaps") return res.writeHead(404).end();
    if (url.searchParams.get("watch") === "true") return this.watch(url.searchParams, res);
    this.lists++;
    if (this.listMode === "fail")
      return res.writeHead(500, { "content-type": "application/json" }).end('{"message":"down"}');
    res.writeHead(200, { "content-type": "application/json" }).end(
      JSON.stringify({
        kind: "ConfigMapList",
        apiVersion: "v1",
        metadata: { resourceVersion: String(this.rv) },
        items: [...this.objects.values()],
      }),
    );
  });

  private watch(params: URLSearchParams, res: ServerResponse) {
    this.watchRequests.push(params);
    if (this.watchMode === "fail") return res.writeHead(503).end();
    res.writeHead(200, { "content-type": "application/json" });
    res.flushHeaders();
    if (this.watchMode === "gone") {
      res.end(
        JSON.stringify({ type: "ERROR", object: { kind: "Status", code: 410, message: "too old resource version" } }) +
          "\n",
      );
      return;
    }
    if (this.watchMode === "close") return res.end();
    if (this.watchMode === "normal") this.watches.push(res);
    // "silent": hold the connection open and say nothing
  }

  put(name: string, data: Record<string, string>) {
    const type = this.objects.has(name) ? "MODIFIED" : "ADDED";
    const obj = {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name, namespace: "ns", resourceVersion: String(++this.rv) },
      data,
    };
    this.objects.set(name, obj);
    this.send(type, obj);
  }

  remove(name: string) {
    const obj = this.objects.get(name);
    this.objects.delete(name);
    if (obj) this.send("DELETED", { ...obj, metadata: { ...obj.metadata, resourceVersion: String(++this.rv) } });
  }

  bookmark() {
    this.send("BOOKMARK", { kind: "ConfigMap", apiVersion: "v1", metadata: { resourceVersion: String(++this.rv) } });
  }

  send(type: string, object: unknown) {
    for (const w of this.watches) w.write(JSON.stringify({ type, object }) + "\n");
  }

  dropWatches() {
    for (const w of this.watches) w.destroy();
    this.watches = [];
  }

  async start(): Promise<KubeConfig> {
    await new Promise<void>((r) => this.server.listen(0, "127.0.0.1", r));
    const port = (this.server.address() as AddressInfo).port;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "fake", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: "u" }],
      contexts: [{ name: "c", cluster: "fake", user: "u" }],
      currentContext: "c",
    });
    return kc;
  }

  async close() {
    this.dropWatches();
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

const CM = { group: "", version: "v1", plural: "configmaps", namespaced: true };
const logger = createLogger({ level: "silent" });
const until = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 10));
  }
};

let api: FakeApi;
let informer: Informer | undefined;

async function setup(options: Partial<ConstructorParameters<typeof Informer>[2]> = {}) {
  api = new FakeApi();
  const kc = await api.start();
  informer = new Informer(new KubeClient(kc), CM, {
    logger,
    backoff: { baseMs: 20, maxMs: 100, jitter: 0 },
    ...options,
  });
  const events: InformerEvent[] = [];
  informer.on((e) => events.push(e));
  return { informer, events };
}

afterEach(async () => {
  await informer?.stop();
  informer = undefined;
  await api.close();
});

describe("Informer", () => {
  it("caches objects without managedFields, listed or watched, unless asked to keep them", async () => {
    const managed = [{ manager: "kubectl", operation: "Update", fieldsV1: { "f:data": {} } }];
    const withFields = (name: string) => {
      const obj = {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: { name, namespace: "ns", resourceVersion: String(++api.rv), managedFields: managed },
        data: {},
      };
      api.objects.set(name, obj as KubeObject);
      return obj;
    };
    const { informer, events } = await setup();
    withFields("listed");
    informer.start();
    await informer.whenSynced();
    await until(() => api.watches.length === 1);
    api.send("ADDED", withFields("watched"));
    await until(() => informer.store.get("ns/watched") !== undefined);
    for (const name of ["listed", "watched"]) {
      expect(informer.store.get(`ns/${name}`)?.metadata.managedFields).toBeUndefined();
      expect(informer.store.get(`ns/${name}`)?.metadata.resourceVersion).toBeTruthy();
    }
    expect(events.every((e) => e.object.metadata.managedFields === undefined)).toBe(true);
    await informer.stop();
    await api.close();

    const kept = await setup({ keepManagedFields: true });
    withFields("listed");
    kept.informer.start();
    await kept.informer.whenSynced();
    expect(kept.informer.store.get("ns/listed")?.metadata.managedFields).toEqual(managed);
  });

  it("lists, syncs, then follows the watch from the list's resourceVersion with bookmarks", async () => {
    const { informer, events } = await setup();
    api.put("a", { x: "1" });
    informer.start();
    await informer.whenSynced();
    expect(informer.hasSynced).toBe(true);
    expect(informer.store.get("ns/a")?.data).toEqual({ x: "1" });
    await until(() => api.watches.length === 1);
    const params = api.watchRequests[0];
    expect(params?.get("resourceVersion")).toBe("101");
    expect(params?.get("allowWatchBookmarks")).toBe("true");
    expect(Number(params?.get("timeoutSeconds"))).toBeGreaterThanOrEqual(300);

    api.put("a", { x: "2" });
    api.put("b", { y: "1" });
    api.remove("a");
    await until(() => events.length === 4);
    expect(events.map((e) => `${e.type}:${e.object.metadata.name}`)).toEqual([
      "added:a",
      "modified:a",
      "added:b",
      "deleted:a",
    ]);
    expect(events[1]?.old?.["data"]).toEqual({ x: "1" });
    expect(informer.store.keys()).toEqual(["ns/b"]);
  });

  it("resumes a closed watch from the last resourceVersion seen, bookmarks included", async () => {
    const { informer } = await setup();
    informer.start();
    await until(() => api.watches.length === 1);
    api.put("a", {});
    api.bookmark(); // rv 102
    await new Promise((r) => setTimeout(r, 50));
    api.dropWatches();
    await until(() => api.watches.length === 1 && api.watchRequests.length === 2);
    expect(api.watchRequests[1]?.get("resourceVersion")).toBe("102");
    expect(api.lists).toBe(1); // no relist needed
  });

  it("relists on 410 Gone and reports what changed in between", async () => {
    const { informer, events } = await setup();
    api.put("a", {});
    api.put("b", {});
    informer.start();
    await informer.whenSynced();
    await until(() => api.watches.length === 1);
    // While "disconnected": b deleted, c added, and the history is compacted.
    api.dropWatches();
    api.watchMode = "gone";
    api.objects.delete("b");
    api.put("c", {});
    await until(() => api.lists >= 2);
    api.watchMode = "normal";
    await until(() => api.watches.length === 1);
    await until(() => informer.store.size === 2);
    expect(informer.store.keys().sort()).toEqual(["ns/a", "ns/c"]);
    expect(events.filter((e) => e.type === "deleted").map((e) => e.object.metadata.name)).toEqual(["b"]);
  });

  it("restarts a watch that went silent (no event, no bookmark)", async () => {
    const { informer } = await setup({ inactivityTimeoutMs: 200 });
    api.watchMode = "silent";
    informer.start();
    await until(() => api.watchRequests.length >= 3, 3000);
    api.watchMode = "normal";
    await until(() => api.watches.length >= 1);
    api.put("late", {});
    await until(() => informer.store.get("ns/late") !== undefined);
  });

  it("keeps retrying with backoff while the API server fails, then recovers", async () => {
    const { informer } = await setup();
    api.listMode = "fail";
    informer.start();
    await until(() => api.lists >= 3);
    expect(informer.hasSynced).toBe(false);
    api.listMode = "normal";
    api.put("a", {});
    await informer.whenSynced();
    api.watchMode = "fail";
    api.dropWatches();
    const before = api.watchRequests.length;
    await until(() => api.watchRequests.length >= before + 3);
    api.watchMode = "normal";
    await until(() => api.watches.length === 1);
    api.put("b", {});
    await until(() => informer.store.size === 2);
  });

  it("does not spin on a watch that closes at once", async () => {
    const { informer } = await setup({ backoff: { baseMs: 100, maxMs: 100, jitter: 0 } });
    api.watchMode = "close";
    informer.start();
    await new Promise((r) => setTimeout(r, 550));
    expect(api.watchRequests.length).toBeLessThanOrEqual(7);
  });

  it("relists periodically and redelivers unchanged objects as resync", async () => {
    const { informer, events } = await setup({ resyncPeriodMs: 300 });
    api.put("a", {});
    informer.start();
    await until(() => events.some((e) => e.type === "resync"), 3000);
    expect(api.lists).toBeGreaterThanOrEqual(2);
    // The cache keeps the very object it had: a controller's per-object memo stays valid.
    const added = events.find((e) => e.type === "added")!.object;
    expect(events.find((e) => e.type === "resync")!.object).toBe(added);
    expect(informer.store.list()[0]).toBe(added);
  });
});
