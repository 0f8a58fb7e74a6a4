// The xDS encoding of compile output: an itemized resource (the route configuration) is
// its head's encoding followed by each virtual host's, which must decode to exactly the
// message the whole JSON encodes to; versions follow content, not object identity.
import { existsSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { Compiler, compile } from "../../../operator/src/compile/compile.ts";
import { TYPE_URL, fullValue } from "../../../operator/src/compile/envoy/types.ts";
import { defaultOptions, snapshotFromObjects } from "../../../operator/src/compile/snapshot.ts";
import { mentions } from "../../../operator/src/xds/blame.ts";
import { ResourceCache } from "../../../operator/src/xds/cache.ts";
import { Encoder } from "../../../operator/src/xds/encode.ts";
import { decodeMessage, encodeResource, envoyApiPath } from "../../../operator/src/xds/envoy-api.ts";
import { readCase, readManifests } from "../../golden/golden.ts";

const snapshotOf = (name: string) => snapshotFromObjects(readManifests(readCase(name, "in"))).snapshot;

describe.skipIf(!existsSync(envoyApiPath()))("xDS encoding", () => {
  it("joins the route configuration from its head and virtual hosts into the encoding of the whole", () => {
    const { resources } = compile(snapshotOf("retries-disabled"), defaultOptions);
    const route = resources.route[0]!;
    expect(route.items!.parts.length).toBeGreaterThan(1);
    const entry = new Encoder().entry("route", route);
    const whole = encodeResource(TYPE_URL.route, fullValue(route));
    expect(decodeMessage("envoy.config.route.v3.RouteConfiguration", entry.bytes)).toEqual(decodeMessage("envoy.config.route.v3.RouteConfiguration", whole));
    // (Not the same bytes: the whole is written in field order, the head's fields first here.)
  });

  it("versions by content: a fresh compile of the same objects (a restarted operator) has the same versions", () => {
    const versions = (cache: ResourceCache) => (["cluster", "endpoint", "listener", "route"] as const).flatMap((t) => [...cache.entries(t).values()].map((e) => `${e.name}=${e.version}`));
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
    const moved = objects.map((o) => (o.kind === "EndpointSlice" && o.metadata.name.startsWith("products-cache") ? { ...o, endpoints: [{ addresses: ["10.9.9.9"] }] } : o));
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
