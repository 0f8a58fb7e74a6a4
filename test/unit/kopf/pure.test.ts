import { describe, expect, it } from "vitest";
import { essence, getPath, mergePatch } from "../../../operator/src/kopf/controller.ts";
import { objectKey, parseKey, resourcePath } from "../../../operator/src/kopf/client.ts";
import { Registry } from "../../../operator/src/kopf/handlers.ts";
import { statusMatches } from "../../../operator/src/kopf/status.ts";
import { PermanentError, TemporaryError, isRetryable, statusCode } from "../../../operator/src/kopf/errors.ts";

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

describe("essence", () => {
  it("keeps intent (spec, data, labels, annotations) and drops status and bookkeeping", () => {
    const e = essence(
      {
        apiVersion: "v1",
        kind: "ConfigMap",
        metadata: {
          name: "x", uid: "u", resourceVersion: "5", generation: 2, labels: { a: "1" },
          annotations: { mine: "skip", "kubectl.kubernetes.io/last-applied-configuration": "{}", keep: "yes" },
          managedFields: [],
        },
        data: { k: "v" },
        status: { phase: "x" },
      },
      "mine",
    );
    expect(e).toEqual({ data: { k: "v" }, metadata: { labels: { a: "1" }, annotations: { keep: "yes" } } });
  });

  it("applies JSON merge patches (RFC 7386)", () => {
    expect(mergePatch({ a: 1, b: { c: 2, d: 3 }, l: [1] }, { b: { c: null, e: 4 }, l: [2], n: "x" })).toEqual({
      a: 1, b: { d: 3, e: 4 }, l: [2], n: "x",
    });
    expect(mergePatch({ a: 1 }, "replaced")).toBe("replaced");
  });

  it("reads dotted paths", () => {
    expect(getPath({ spec: { a: { b: 2 } } }, "spec.a.b")).toBe(2);
    expect(getPath({ spec: {} }, "spec.a.b")).toBeUndefined();
    expect(getPath(undefined, "x")).toBeUndefined();
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

describe("Registry", () => {
  it("groups declarations by resource and selectors", () => {
    const r = new Registry();
    const cm = { group: "", version: "v1", plural: "configmaps" };
    r.on.create(cm, function made() {});
    r.on.update(cm, () => {}, { id: "u" });
    r.on.field(cm, "data.x", () => {});
    r.timer(cm, { intervalSeconds: 5 }, () => {});
    r.watch({ ...cm, labelSelector: "app=x" }, {});
    const [plain, selected] = r.resources();
    expect(r.resources()).toHaveLength(2);
    expect(plain?.create[0]?.id).toBe("made");
    expect(plain?.update[0]?.id).toBe("u");
    expect(plain?.field[0]?.options.field).toBe("data.x");
    expect(plain?.timer).toHaveLength(1);
    expect(selected?.watch).toHaveLength(1);
    expect(() => r.timer(cm, { intervalSeconds: 0 }, () => {})).toThrow();
  });
});

describe("errors", () => {
  it("carries kopf's retry semantics and reads API statuses", () => {
    expect(new TemporaryError("x", 5).delaySeconds).toBe(5);
    expect(new TemporaryError("x").delaySeconds).toBe(60);
    expect(new PermanentError("x")).toBeInstanceOf(Error);
    expect(statusCode({ code: 409 })).toBe(409);
    expect(statusCode({ statusCode: 410 })).toBe(410);
    expect(isRetryable({ code: 409 })).toBe(true);
    expect(isRetryable({ code: 503 })).toBe(true);
    expect(isRetryable({ code: 422 })).toBe(false);
    expect(isRetryable(new TypeError("fetch failed"))).toBe(true);
  });
});
