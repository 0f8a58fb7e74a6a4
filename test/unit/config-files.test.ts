// The config files Envoy watches (renderConfigFiles in operator/src/compile/config-files.ts):
// they hold the compiled resources, a resource per line and the listener a virtual host per
// line, and their version and hash follow the content exactly.
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { Compiler, compile } from "../../operator/src/compile/compile.ts";
import { TextCache, renderConfigFiles } from "../../operator/src/compile/config-files.ts";
import { staticBootstrap } from "../../operator/src/compile/envoy/bootstrap.ts";
import { defaultOptions } from "../../operator/src/compile/snapshot.ts";

const read = (text: string) => parse(text, { version: "1.1" });

describe("renderConfigFiles", () => {
  const service = (name: string, ip: string) => [
    {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace: "shop" },
      spec: { ports: [{ name: "http", port: 8080 }] },
    },
    {
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `${name}-1`, namespace: "shop", labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      ports: [{ name: "http", port: 8080 }],
      endpoints: [{ addresses: [ip] }],
    },
  ];
  const policy = {
    apiVersion: "fallback.dev/v1alpha1",
    kind: "FallbackPolicy",
    metadata: { name: "products", namespace: "shop" },
    spec: { targetRef: { name: "products", port: 8080 }, fallbacks: [{ service: { name: "cache", port: 8080 } }] },
  };
  const render = (ip: string) => {
    const [svc, slice, cacheSvc, cacheSlice] = [...service("products", ip), ...service("cache", "10.0.0.9")] as any[];
    const { resources } = compile(
      { policies: [policy], services: [svc, cacheSvc], endpointSlices: [slice, cacheSlice] },
      defaultOptions,
    );
    return { resources, ...renderConfigFiles(resources, defaultOptions) };
  };

  it("writes the resources, with a version_info that is the start of the hash", () => {
    const { resources, files, hash } = render("10.0.0.1");
    const cds = read(files["cds.yaml"]!);
    const lds = read(files["lds.yaml"]!);
    expect(hash).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(cds.version_info).toBe(hash.slice("sha256:".length, "sha256:".length + 16));
    expect(lds.version_info).toBe(cds.version_info);
    const { clusters } = (staticBootstrap(resources, defaultOptions) as any).static_resources;
    expect(cds.resources).toEqual(
      JSON.parse(
        JSON.stringify(
          clusters.map((c: object) => ({ "@type": "type.googleapis.com/envoy.config.cluster.v3.Cluster", ...c })),
        ),
      ),
    );
    expect(read(files["bootstrap.yaml"]!).dynamic_resources.cds_config.path_config_source.path).toBe(
      `${defaultOptions.configDir}/cds.yaml`,
    );
  });

  it("writes a resource per line, and the listener a virtual host per line", () => {
    const { files } = render("10.0.0.1");
    const cdsLines = files["cds.yaml"]!.trimEnd().split("\n");
    expect(
      cdsLines
        .slice(2)
        .every((line) => line.startsWith('- {"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster",')),
    ).toBe(true);
    expect(cdsLines).toHaveLength(2 + read(files["cds.yaml"]!).resources.length);
    const hosts = files["lds.yaml"]!.split("\n").filter((line) => line.startsWith('    {"name":'));
    expect(hosts.map((line) => JSON.parse(line.replace(/,$/, "")).name)).toEqual(["shop/products"]);
  });

  it("writes an empty config as empty lists, and a listener with no virtual hosts", () => {
    const { resources } = compile({ policies: [], services: [], endpointSlices: [] }, defaultOptions);
    const { files } = renderConfigFiles(resources, defaultOptions);
    const [listener] = (staticBootstrap(resources, defaultOptions) as any).static_resources.listeners;
    expect(read(files["lds.yaml"]!).resources).toEqual([
      { "@type": "type.googleapis.com/envoy.config.listener.v3.Listener", ...listener },
    ]);
    expect(listener.filter_chains[0].filters[0].typed_config.route_config.virtual_hosts).toEqual([]);
    expect(read(files["cds.yaml"]!).resources).toEqual([]);
  });

  it("writes with a TextCache, in the operator's syncs, what it writes without one", () => {
    const compiler = new Compiler(defaultOptions);
    const texts = new TextCache();
    const [svc, slice, cacheSvc, cacheSlice] = [
      ...service("products", "10.0.0.1"),
      ...service("cache", "10.0.0.9"),
    ] as any[];
    const snapshot = { policies: [policy], services: [svc, cacheSvc], endpointSlices: [slice, cacheSlice] };
    const fresh = renderConfigFiles(compile(snapshot, defaultOptions).resources, defaultOptions);
    expect(renderConfigFiles(compiler.compile(snapshot).resources, defaultOptions, texts)).toEqual(fresh);
    expect(renderConfigFiles(compiler.compile(snapshot).resources, defaultOptions, texts)).toEqual(fresh);
  });

  it("is deterministic, and changes version and hash exactly when the content does", () => {
    const a = render("10.0.0.1");
    expect(render("10.0.0.1").files).toEqual(a.files);
    expect(render("10.0.0.1").hash).toBe(a.hash);
    const b = render("10.0.0.2");
    expect(b.hash).not.toBe(a.hash);
    expect(read(b.files["cds.yaml"]!).version_info).not.toBe(read(a.files["cds.yaml"]!).version_info);
    // The bootstrap counts too: another admin port is another config.
    expect(
      renderConfigFiles(a.resources, { ...defaultOptions, admin: { address: "127.0.0.1", port: 9902 } }).hash,
    ).not.toBe(a.hash);
  });
});
