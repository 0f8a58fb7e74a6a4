import { describe, expect, it } from "vitest";
import { objectKey, parseKey, resourcePath } from "../../../operator/src/kopf/client.ts";
import { generationChanged, resourceId } from "../../../operator/src/kopf/resource.ts";
import { Store } from "../../../operator/src/kopf/store.ts";
import { statusMatches } from "../../../operator/src/kopf/status.ts";
import { isRetryable, statusCode } from "../../../operator/src/kopf/errors.ts";

describe("resource paths and keys", () => {
  it("addresses core and group resources, objects and subresources", () => {
    const cm = { group: "", version: "v1", plural: "configmaps" };
    const fp = { group: "example.com", version: "v1alpha1", plural: "widgets" };
    const ns = { group: "", version: "v1", plural: "namespaces", namespaced: false };
    expect(resourcePath(cm)).toBe("/api/v1/configmaps");
    expect(resourcePath(cm, "a", "b")).toBe("/api/v1/namespaces/a/configmaps/b");
    expect(resourcePath(fp, "a", "b", "status")).toBe("/apis/example.com/v1alpha1/namespaces/a/widgets/b/status");
    expect(resourcePath(ns, "ignored", "x")).toBe("/api/v1/namespaces/x");
  });

  it("keys objects by namespace/name and parses them back", () => {
    expect(objectKey({ metadata: { name: "b", namespace: "a" } })).toBe("a/b");
    expect(objectKey({ metadata: { name: "n" } })).toBe("n");
    expect(parseKey("a/b")).toEqual({ namespace: "a", name: "b" });
    expect(parseKey("n")).toEqual({ name: "n" });
  });
});

describe("statusMatches", () => {
  it("is true when every desired field is already there", () => {
    expect(statusMatches({ a: 1, b: { c: [1, 2] }, extra: true }, { a: 1, b: { c: [1, 2] } })).toBe(true);
    expect(statusMatches({ a: 1 }, { a: 2 })).toBe(false);
    expect(statusMatches(undefined, { a: 1 })).toBe(false);
    expect(statusMatches({ b: { c: [1] } }, { b: { c: [1, 2] } })).toBe(false);
    expect(statusMatches({ gone: undefined }, { gone: null })).toBe(true);
    expect(statusMatches({ gone: 1 }, { gone: null })).toBe(false);
  });
});

describe("resourceId", () => {
  it("is the same for the same resource and narrowing, and differs otherwise", () => {
    const cm = { group: "", version: "v1", plural: "configmaps" };
    expect(resourceId(cm)).toBe(resourceId({ ...cm, kind: "ConfigMap" }));
    expect(resourceId(cm)).not.toBe(resourceId({ ...cm, labelSelector: "app=x" }));
    expect(resourceId(cm)).not.toBe(resourceId({ ...cm, namespace: "a" }));
  });
});

describe("generationChanged", () => {
  const at = (generation: number, resourceVersion: string) => ({
    metadata: { name: "w", generation, resourceVersion },
  });
  it("passes a spec change, additions, deletions and relists; not a status or metadata write", () => {
    expect(generationChanged({ type: "modified", object: at(2, "11"), old: at(1, "10") })).toBe(true);
    expect(generationChanged({ type: "modified", object: at(1, "11"), old: at(1, "10") })).toBe(false);
    for (const type of ["added", "deleted", "resync"] as const)
      expect(generationChanged({ type, object: at(1, "10") })).toBe(true);
  });
});

describe("Store: read-your-writes", () => {
  const obj = (rv: string, status: string) => ({
    metadata: { name: "x", namespace: "a", resourceVersion: rv },
    status,
  });

  it("shows our write until the watch brings a newer version than the one written over", () => {
    const store = new Store({ prepare: (o) => ({ ...o, prepared: true }) });
    store.set(obj("1", "old"));
    store.wrote(obj("2", "mine"), "1");
    expect(store.get("a/x")).toMatchObject({ status: "mine", prepared: true });
    expect(store.list()).toEqual([expect.objectContaining({ status: "mine" })]);
    store.set(obj("1", "old")); // a relist that still has the old version
    expect(store.get("a/x")?.status).toBe("mine");
    store.set(obj("3", "theirs")); // the watch caught up (or moved past it)
    expect(store.get("a/x")?.status).toBe("theirs");
    expect(store.list()).toEqual([obj("3", "theirs")]);
  });

  it("shows a created object before the watch has it; forgets writes to deleted objects", () => {
    const store = new Store();
    store.wrote(obj("5", "created"), undefined);
    expect(store.getByName("a", "x")?.status).toBe("created");
    store.set(obj("5", "created"));
    store.wrote(obj("6", "again"), "5");
    store.delete("a/x");
    expect(store.get("a/x")).toBeUndefined();
  });

  it("lets the cache win after consistencyMs, should the watch never deliver", async () => {
    const store = new Store({ consistencyMs: 20 });
    store.set(obj("1", "old"));
    store.wrote(obj("2", "mine"), "1");
    expect(store.get("a/x")?.status).toBe("mine");
    await new Promise((r) => setTimeout(r, 30));
    expect(store.get("a/x")?.status).toBe("old");
  });
});

describe("errors", () => {
  it("reads API statuses and tells what is worth retrying", () => {
    expect(statusCode({ code: 409 })).toBe(409);
    expect(statusCode({ statusCode: 410 })).toBe(410);
    expect(isRetryable({ code: 409 })).toBe(true);
    expect(isRetryable({ code: 503 })).toBe(true);
    expect(isRetryable({ code: 422 })).toBe(false);
    expect(isRetryable(new TypeError("fetch failed"))).toBe(true);
  });
});
