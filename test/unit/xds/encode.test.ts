// The xDS encoding of compile output: versions follow content, not object identity, and a
// publish reports as changed exactly what changed.
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Compiler, compile } from "../../../operator/src/compile/compile.ts";
import { defaultOptions, snapshotFromObjects } from "../../../operator/src/compile/snapshot.ts";
import { mentions } from "../../../operator/src/xds/blame.ts";
import { ResourceCache } from "../../../operator/src/xds/cache.ts";
import { envoyApiPath } from "../../../operator/src/xds/envoy-api.ts";
import { readCase, readManifests } from "../../golden/golden.ts";

const snapshotOf = (name: string) => snapshotFromObjects(readManifests(readCase(name, "in"))).snapshot;

describe.skipIf(!existsSync(envoyApiPath()))("xDS encoding", () => {
  it("versions by content: a fresh compile of the same objects (a restarted operator) has the same versions", () => {
    const versions = (cache: ResourceCache) =>
      (["cluster", "endpoint", "listener", "scope", "route"] as const).flatMap((t) =>
        [...cache.entries(t).values()].map((e) => `${e.name}=${e.version}`),
      );
    const a = new ResourceCache();
    a.publish(compile(snapshotOf("service-fallback-endpointslices"), defaultOptions).resources);
    const b = new ResourceCache();
    b.publish(compile(snapshotOf("service-fallback-endpointslices"), defaultOptions).resources);
    expect(versions(a).length).toBeGreaterThan(3);
    expect(versions(b)).toEqual(versions(a));
  });

  it("reports as changed only what changed: an endpoint, or one policy's virtual host", () => {
    const compiler = new Compiler(defaultOptions);
    const cache = new ResourceCache();
    const objects = readManifests(readCase("service-fallback-endpointslices", "in")) as any[];
    cache.publish(compiler.compile(snapshotFromObjects(objects).snapshot).resources);
    expect(cache.publish(compiler.compile(snapshotFromObjects(objects).snapshot).resources).size).toBe(0);
    const moved = objects.map((o) =>
      o.kind === "EndpointSlice" && o.metadata.name.startsWith("products-cache")
        ? { ...o, endpoints: [{ addresses: ["10.9.9.9"] }] }
        : o,
    );
    const changes = cache.publish(compiler.compile(snapshotFromObjects(moved).snapshot).resources);
    expect([...changes].map(([t, names]) => [t, [...names]])).toEqual([["endpoint", ["shop/products-cache:8080"]]]);
  });
});

describe("blame: whether an Envoy's error names a resource", () => {
  it("matches whole names only", () => {
    const message = "Error adding/updating cluster(s) shop/a/primary: bad, shop/b: worse";
    expect(mentions(message, "shop/a/primary")).toBe(true);
    expect(mentions(message, "shop/b")).toBe(true);
    expect(mentions(message, "shop/a")).toBe(false);
    expect(mentions(message, "shop/a/prim")).toBe(false);
    expect(mentions("virtual host shop/web:8080 conflicts", "shop/web:8080")).toBe(true);
  });
});
