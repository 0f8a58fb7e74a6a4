// The project's own pipeline in front of real Envoy: Kubernetes objects (FallbackPolicy,
// Service, EndpointSlice) -> snapshotFromObjects -> compile -> renderBootstrap/renderConfigFiles ->
// envoy -c. Services point at local test backends through EndpointSlices, which the
// compiler turns into STATIC endpoints.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compile, type CompileOutput } from "../../operator/src/compile/compile.ts";
import { renderBootstrap, renderConfigFiles } from "../../operator/src/compile/config-files.ts";
import { defaultOptions, snapshotFromObjects, type CompileOptions } from "../../operator/src/compile/snapshot.ts";
import { freePort } from "./ports.ts";
import { ConfigMapVolume } from "./configmap-volume.ts";
import { startEnvoy, type Envoy } from "./envoy.ts";

export type Addr = { host: string; port: number };

// ---- manifests --------------------------------------------------------------------------

/**
 * A Service with one port, and (unless `endpoints` is undefined) one EndpointSlice per
 * endpoint so that each endpoint can have a port of its own. The slice's port name equals
 * the Service port's name, as the EndpointSlice controller writes it.
 */
export function service(
  namespace: string,
  name: string,
  port: number,
  endpoints?: Addr[],
  portName = "http",
): object[] {
  const svc = {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: { ports: [{ name: portName, port, targetPort: portName, protocol: "TCP" }] },
  };
  const slices = (endpoints ?? []).map((e, i) => ({
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${name}-${i}`, namespace, labels: { "kubernetes.io/service-name": name } },
    addressType: "IPv4",
    ports: [{ name: portName, port: e.port, protocol: "TCP" }],
    endpoints: [{ addresses: [e.host], conditions: { ready: true } }],
  }));
  // A Service whose endpoints are known but empty still gets a slice, with no endpoints.
  if (endpoints && endpoints.length === 0) {
    slices.push({
      apiVersion: "discovery.k8s.io/v1",
      kind: "EndpointSlice",
      metadata: { name: `${name}-empty`, namespace, labels: { "kubernetes.io/service-name": name } },
      addressType: "IPv4",
      ports: [{ name: portName, port, protocol: "TCP" }],
      endpoints: [],
    } as any);
  }
  return [svc, ...slices];
}

export function fallbackPolicy(namespace: string, name: string, spec: Record<string, unknown>): object {
  return {
    apiVersion: "fallback.dev/v1alpha1",
    kind: "FallbackPolicy",
    metadata: { name, namespace, generation: 1, creationTimestamp: "2026-01-01T00:00:00Z" },
    spec,
  };
}

// ---- compile ----------------------------------------------------------------------------

/** Compiles the objects; throws if a policy is invalid, or its references do not resolve. */
export function compileObjects(objects: unknown[], options: CompileOptions): CompileOutput {
  const { snapshot } = snapshotFromObjects(objects);
  const output = compile(snapshot, options);
  const problems = output.results.flatMap((r) => [
    ...r.errors,
    ...r.conditions.filter((c) => c.status !== "True").map((c) => `${r.key}: ${c.type}: ${c.message}`),
  ]);
  if (problems.length) throw new Error(`compile: ${problems.join("; ")}`);
  return output;
}

// ---- gateway ----------------------------------------------------------------------------

export type Gateway = {
  envoy: Envoy;
  options: CompileOptions;
  /** http://127.0.0.1:<listen port>/ */
  url: string;
  /** The working folder (config files, certs). */
  dir: string;
  /** Where bootstrap.yaml is (the volume folder for xds). */
  configFile: string;
  /** For format "xds": the ConfigMap volume Envoy reads; write a new render to it to update. */
  volume?: ConfigMapVolume;
  /** Compile `objects` with this gateway's options and render them as the xds file set. */
  renderConfigFiles(objects: unknown[]): Record<string, string>;
  stop(): Promise<void>;
};

export type GatewayOptions = {
  objects: unknown[];
  /** bootstrap: one static bootstrap. xds: bootstrap + cds + lds on a kubelet-style ConfigMap volume. */
  format?: "bootstrap" | "xds";
  trustedCA?: string;
  logLevel?: "trace" | "debug" | "info" | "warn" | "error";
  drainTimeS?: number;
};

/**
 * A free port is free when asked for, not when Envoy binds it a moment later: tests in other
 * workers ask too. An Envoy that finds its port taken is started again on new ports.
 */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await startGatewayOnce(opts);
    } catch (err) {
      if (attempt >= 3 || !String((err as Error).message).includes("Address already in use")) throw err;
    }
  }
}

async function startGatewayOnce(opts: GatewayOptions): Promise<Gateway> {
  const dir = mkdtempSync(join(tmpdir(), "e2e-gateway-"));
  const format = opts.format ?? "bootstrap";
  const volumeDir = join(dir, "etc/envoy/fallback");
  const options: CompileOptions = {
    ...defaultOptions,
    listen: { address: "127.0.0.1", port: await freePort() },
    admin: { address: "127.0.0.1", port: await freePort() },
    configDir: volumeDir,
    trustedCA: opts.trustedCA ?? defaultOptions.trustedCA,
  };
  const render = (objects: unknown[]) => renderConfigFiles(compileObjects(objects, options).resources, options).files;

  let configFile: string;
  let volume: ConfigMapVolume | undefined;
  if (format === "xds") {
    volume = new ConfigMapVolume(volumeDir);
    volume.write(render(opts.objects));
    configFile = join(volumeDir, "bootstrap.yaml");
  } else {
    mkdirSync(dir, { recursive: true });
    configFile = join(dir, "bootstrap.yaml");
    writeFileSync(configFile, renderBootstrap(compileObjects(opts.objects, options).resources, options));
  }
  const envoy = await startEnvoy({
    config: configFile,
    admin: options.admin,
    ...(opts.logLevel ? { logLevel: opts.logLevel } : {}),
    ...(opts.drainTimeS !== undefined ? { drainTimeS: opts.drainTimeS } : {}),
  }).catch((err: unknown) => {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  return {
    envoy,
    options,
    url: `http://127.0.0.1:${options.listen.port}/`,
    dir,
    configFile,
    ...(volume ? { volume } : {}),
    renderConfigFiles: render,
    stop: async () => {
      await envoy.stop();
      // E2E_KEEP=1 keeps the rendered files for a look after a failure.
      if (!process.env.E2E_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
}
