// The xDS server in this process, in front of real Envoys started on the bootstrap
// fallbackctl prints: Kubernetes objects -> compile -> XdsServer.publish -> ADS -> Envoy.
// Lets a test change the objects, restart the server, or run Envoys side by side.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Compiler } from "../../../operator/src/compile/compile.ts";
import { toYaml } from "../../../operator/src/compile/yaml.ts";
import { adsBootstrap, type AdsBootstrapOptions } from "../../../operator/src/compile/envoy/bootstrap.ts";
import { defaultOptions, snapshotFromObjects, type CompileOptions } from "../../../operator/src/compile/snapshot.ts";
import { Metrics, createLogger } from "../../../operator/src/kopf/index.ts";
import { XdsServer, type XdsServerOptions } from "../../../operator/src/xds/server.ts";
import { freePort } from "../../support/ports.ts";
import { startEnvoy, type Envoy } from "../../support/envoy.ts";

export type XdsEnvoy = Envoy & { listen: number; url: string; bootstrapFile: string };

export type XdsGateway = {
  server: XdsServer;
  options: CompileOptions;
  /** Resources of a type (cluster, endpoint, listener, route, secret) the current server sent so far. */
  sent(type: string): Promise<number>;
  /** Compiles and publishes `objects`; throws if a policy does not compile cleanly. */
  publish(objects: unknown[]): void;
  /** A new server on the same port, with what was published last (an operator restart). */
  restartServer(): Promise<void>;
  stopServer(): Promise<void>;
  startEnvoy(options?: { sotw?: boolean; nodeId?: string }): Promise<XdsEnvoy>;
  stop(): Promise<void>;
};

export async function startXdsGateway(opts: {
  objects: unknown[];
  server?: Partial<XdsServerOptions>;
  /** Publish `objects` at once (default); false: only when the test calls publish(). */
  publishAtStart?: boolean;
}): Promise<XdsGateway> {
  const dir = mkdtempSync(join(tmpdir(), "e2e-xds-"));
  const options: CompileOptions = { ...defaultOptions, listen: { address: "127.0.0.1", port: await freePort() } };
  const logger = createLogger({ level: process.env.DEBUG_E2E ? "debug" : "silent", name: "xds" });
  const port = await freePort();
  let compiler = new Compiler(options);
  let last: unknown[] = opts.objects;
  let metrics = new Metrics({ defaultMetrics: false });
  const newServer = async () => {
    metrics = new Metrics({ defaultMetrics: false });
    const server = new XdsServer({ host: "127.0.0.1", port, logger, metrics, ...opts.server });
    await server.start();
    return server;
  };
  const TYPE_LABEL: Record<string, string> = {
    cluster: "Cluster",
    endpoint: "ClusterLoadAssignment",
    listener: "Listener",
    scope: "ScopedRouteConfiguration",
    route: "RouteConfiguration",
    secret: "Secret",
  };
  const publish = (objects: unknown[]) => {
    last = objects;
    const { snapshot } = snapshotFromObjects(objects);
    const output = compiler.compile(snapshot);
    const problems = output.results.flatMap((r) =>
      r.conditions.filter((c) => c.status !== "True").map((c) => `${r.key}: ${c.type}: ${c.message}`),
    );
    if (problems.length) throw new Error(`compile: ${problems.join("; ")}`);
    gateway.server.publish(output.resources);
  };
  const envoys: XdsEnvoy[] = [];
  const gateway: XdsGateway = {
    server: await newServer(),
    options,
    async sent(type) {
      const metric = await metrics.registry.getSingleMetric("fallback_xds_resources_sent_total")?.get();
      return metric?.values.find((v) => v.labels["type"] === TYPE_LABEL[type])?.value ?? 0;
    },
    publish,
    async restartServer() {
      await gateway.server.stop();
      compiler = new Compiler(options);
      gateway.server = await newServer();
      publish(last);
    },
    stopServer: () => gateway.server.stop(),
    async startEnvoy({ sotw = false, nodeId = `envoy-${envoys.length + 1}` } = {}) {
      const listen = envoys.length === 0 ? options.listen.port : await freePort();
      const admin = { address: "127.0.0.1", port: await freePort() };
      const bootstrap: AdsBootstrapOptions = {
        xdsServers: [{ address: "127.0.0.1", port }],
        admin,
        nodeId,
        nodeCluster: "fallback-gateway",
        sotw,
        listen: { address: "127.0.0.1", port: listen },
      };
      const bootstrapFile = join(dir, `${nodeId}.yaml`);
      writeFileSync(bootstrapFile, toYaml(adsBootstrap(bootstrap)));
      const envoy = await startEnvoy({
        config: bootstrapFile,
        admin,
        drainTimeS: 1,
        ...(process.env.DEBUG_E2E ? { logLevel: "debug" as const } : {}),
      });
      const started = Object.assign(envoy, { listen, url: `http://127.0.0.1:${listen}/`, bootstrapFile });
      envoys.push(started);
      return started;
    },
    async stop() {
      await Promise.all(envoys.map((e) => e.stop()));
      await gateway.server.stop();
      if (!process.env.E2E_KEEP) rmSync(dir, { recursive: true, force: true });
    },
  };
  if (opts.publishAtStart ?? true) publish(opts.objects);
  return gateway;
}
