// `fallback-operator`: flags -> a kopf Operator with the FallbackPolicy controller, run
// until SIGTERM or SIGINT.
import { delimiter } from "node:path";
import { parseArgs } from "node:util";
import { defaultOptions, parseHostPort, type CompileOptions } from "../compile/snapshot.ts";
import { KubeConfig, Operator, ProbeServer, createLogger } from "../kopf/index.ts";
import { CONFIGMAP_LIMIT_BYTES, OPERATOR_NAME } from "./configmap.ts";
import { FallbackController } from "./controller.ts";

const USAGE = `Usage: fallback-operator [flags]

  --kubeconfig PATH          kubeconfig to use (default: $KUBECONFIG, else in-cluster)
  --config-namespace NS      namespace of the Envoy config ConfigMap (default: $POD_NAMESPACE, else default)
  --config-name NAME         name of that ConfigMap (default fallback-envoy)
  --watch-namespace NS       watch only this namespace (default: all)
  --metrics-addr HOST:PORT   serve /metrics (default :8080; port 0 picks one)
  --health-addr HOST:PORT    serve /healthz and /readyz (default :8081)
  --leader-elect             run as one of several replicas; only the Lease holder writes
  --log-level LEVEL          trace, debug, info, warn or error (default info)
  --envoy-config-dir DIR     where Envoy mounts the ConfigMap (default ${defaultOptions.configDir})
  --envoy-listen HOST:PORT   Envoy's listener for the governed traffic (default 0.0.0.0:${defaultOptions.listen.port})
  --envoy-admin HOST:PORT    Envoy's admin interface (default ${defaultOptions.admin.address}:${defaultOptions.admin.port})
  --cluster-domain DOMAIN    in-cluster DNS suffix (default ${defaultOptions.clusterDomain})
  --trusted-ca PATH          CA bundle, in the Envoy container, for external TLS backends
  --config-limit-bytes N     largest config written (default ${CONFIGMAP_LIMIT_BYTES}, the ConfigMap limit)
`;

class UsageError extends Error {}

export type OperatorFlags = {
  /** Kubeconfig files; $KUBECONFIG may list several, as kubectl reads it. */
  kubeconfig?: string[];
  configMap: { namespace: string; name: string };
  watchNamespace?: string;
  metrics: { address: string; port: number };
  health: { address: string; port: number };
  leaderElect: boolean;
  logLevel: string;
  compile: CompileOptions;
  configLimitBytes: number;
};

export function parseFlags(args: string[], env: NodeJS.ProcessEnv = process.env): OperatorFlags {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        kubeconfig: { type: "string" },
        "config-namespace": { type: "string" },
        "config-name": { type: "string" },
        "watch-namespace": { type: "string" },
        "metrics-addr": { type: "string" },
        "health-addr": { type: "string" },
        "leader-elect": { type: "boolean" },
        "log-level": { type: "string" },
        "envoy-config-dir": { type: "string" },
        "envoy-listen": { type: "string" },
        "envoy-admin": { type: "string" },
        "cluster-domain": { type: "string" },
        "trusted-ca": { type: "string" },
        "config-limit-bytes": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) throw new UsageError("");
  const addr = (flag: string, value: string | undefined, fallback: string, allowZero: boolean) => {
    const parsed = parseHostPort(value ?? fallback, { allowZero });
    if (!parsed) throw new UsageError(`--${flag} must be HOST:PORT, got "${value}"`);
    return parsed;
  };
  const levels = ["trace", "debug", "info", "warn", "error", "fatal", "silent"];
  const logLevel = values["log-level"] ?? env["LOG_LEVEL"] ?? "info";
  if (!levels.includes(logLevel)) throw new UsageError(`--log-level must be one of ${levels.join(", ")}, got "${logLevel}"`);
  const limit = Number(values["config-limit-bytes"] ?? CONFIGMAP_LIMIT_BYTES);
  if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`--config-limit-bytes must be a positive integer`);
  const envoy = (flag: string, value: string | undefined, fallback: { address: string; port: number }) =>
    value === undefined ? fallback : addr(flag, value, "", false);
  return {
    kubeconfig: values.kubeconfig ? [values.kubeconfig] : env["KUBECONFIG"]?.split(delimiter).filter(Boolean),
    configMap: {
      namespace: values["config-namespace"] ?? env["POD_NAMESPACE"] ?? "default",
      name: values["config-name"] ?? "fallback-envoy",
    },
    watchNamespace: values["watch-namespace"] || undefined,
    metrics: addr("metrics-addr", values["metrics-addr"], "0.0.0.0:8080", true),
    health: addr("health-addr", values["health-addr"], "0.0.0.0:8081", true),
    leaderElect: values["leader-elect"] ?? false,
    logLevel,
    compile: {
      clusterDomain: values["cluster-domain"] ?? defaultOptions.clusterDomain,
      listen: envoy("envoy-listen", values["envoy-listen"], defaultOptions.listen),
      admin: envoy("envoy-admin", values["envoy-admin"], defaultOptions.admin),
      configDir: values["envoy-config-dir"] ?? defaultOptions.configDir,
      trustedCA: values["trusted-ca"] ?? defaultOptions.trustedCA,
    },
    configLimitBytes: limit,
  };
}

/** Runs the operator until a signal; resolves with the exit code. */
export async function main(args: string[]): Promise<number> {
  let flags: OperatorFlags;
  try {
    flags = parseFlags(args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`${err.message ? `fallback-operator: ${err.message}\n\n` : ""}${USAGE}`);
    return err.message ? 2 : 0;
  }

  const logger = createLogger({ level: flags.logLevel, name: OPERATOR_NAME });
  const kubeConfig = new KubeConfig();
  try {
    if (flags.kubeconfig?.length) loadKubeconfigs(kubeConfig, flags.kubeconfig);
    else kubeConfig.loadFromCluster();
  } catch (err) {
    logger.error({ err: { message: (err as Error).message }, kubeconfig: flags.kubeconfig?.join(delimiter) || "in-cluster" }, "cannot load the kubeconfig");
    return 1;
  }

  const op = new Operator({
    name: OPERATOR_NAME,
    domain: "fallback.dev",
    kubeConfig,
    logger,
    http: { host: flags.health.address, port: flags.health.port },
    leaderElection: flags.leaderElect ? { namespace: flags.configMap.namespace, leaseName: OPERATOR_NAME } : false,
  });
  const controller = new FallbackController(op, {
    configMap: flags.configMap,
    compile: flags.compile,
    watchNamespace: flags.watchNamespace,
    configLimitBytes: flags.configLimitBytes,
  });
  // Metrics on their own address when asked for one (Prometheus scrapes it, probes use the other).
  const sameAddress = flags.metrics.address === flags.health.address && flags.metrics.port === flags.health.port;
  const metricsServer = sameAddress
    ? undefined
    : new ProbeServer({
        host: flags.metrics.address,
        port: flags.metrics.port,
        registry: op.metrics.registry,
        healthz: () => op.liveness(),
        readyz: () => op.readiness(),
        logger,
      });

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    logger.info({ signal }, "shutting down");
    // Stop syncing first, then let the framework stop watches and release the Lease.
    stopping ??= controller.stop().then(() => op.stop());
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));

  let started = false;
  try {
    await metricsServer?.start();
    started = await op.run({ signals: false });
  } catch (err) {
    logger.error({ err: { message: (err as Error).message } }, "metrics server failed to start");
    await op.stop();
  }
  await stopping;
  await metricsServer?.close();
  // Non-zero when the operator could not start, so that its supervisor notices.
  return started ? 0 : 1;
}

/**
 * Loads kubeconfig files as kubectl merges them: clusters, users and contexts from all, the
 * current context from the first file that names one. (A name defined twice is an error here,
 * where kubectl would keep the first.)
 */
export function loadKubeconfigs(kubeConfig: KubeConfig, [first, ...more]: string[]): void {
  kubeConfig.loadFromFile(first!);
  for (const path of more) {
    const next = new KubeConfig();
    next.loadFromFile(path);
    kubeConfig.mergeConfig(next, Boolean(kubeConfig.currentContext));
  }
}
