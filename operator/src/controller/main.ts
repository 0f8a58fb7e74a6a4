// `fallback-operator`: flags -> a kopf Operator with the FallbackPolicy controller, run
// until SIGTERM or SIGINT.
import { readFileSync } from "node:fs";
import { hostname } from "node:os";
import { delimiter } from "node:path";
import { parseArgs } from "node:util";
import { defaultOptions, parseHostPort, type CompileOptions } from "../compile/snapshot.ts";
import { KubeConfig, Operator, ProbeServer, createLogger } from "../kopf/index.ts";
import { CONFIGMAP_LIMIT_BYTES, OPERATOR_NAME } from "./configmap.ts";
import type { Corrupt } from "../xds/encode.ts";
import { XdsServer, type XdsTls } from "../xds/server.ts";
import { FallbackController } from "./controller.ts";

const XDS_PORT = 18000;

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
  --config-output OUTPUT     configmap or none (default configmap, none when the xDS server runs)
  --no-credentials           watch no Secrets: external backends' auth stays unresolved
                             (SecretNotFound); for installs without read access to Secrets

  The xDS server (gRPC ADS, Delta and state-of-the-world) runs when any of these is given:
  --xds-addr HOST:PORT       where it listens (default :${XDS_PORT})
  --xds-tls-cert FILE        its TLS certificate (PEM), with
  --xds-tls-key FILE         its private key
  --xds-client-ca FILE       require Envoy client certificates signed by this CA (mTLS)
  --xds-plaintext            serve without TLS (an explicit choice: anyone who reaches the
                             port gets the config)
`;

class UsageError extends Error {}

export type XdsFlags = {
  listen: { address: string; port: number };
  /** PEM files; absent with --xds-plaintext. */
  tls?: { cert: string; key: string; clientCA?: string };
};

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
  /** Watch the Secrets labelled fallback.dev/credential for external backends' credentials. */
  credentials: boolean;
  /** Whether to write the ConfigMap. */
  configMapOutput: boolean;
  xds?: XdsFlags;
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
        "config-output": { type: "string" },
        "xds-addr": { type: "string" },
        "xds-tls-cert": { type: "string" },
        "xds-tls-key": { type: "string" },
        "xds-client-ca": { type: "string" },
        "xds-plaintext": { type: "boolean" },
        "no-credentials": { type: "boolean" },
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
  if (!levels.includes(logLevel))
    throw new UsageError(`--log-level must be one of ${levels.join(", ")}, got "${logLevel}"`);
  const limit = Number(values["config-limit-bytes"] ?? CONFIGMAP_LIMIT_BYTES);
  if (!Number.isInteger(limit) || limit <= 0) throw new UsageError(`--config-limit-bytes must be a positive integer`);
  const envoy = (flag: string, value: string | undefined, fallback: { address: string; port: number }) =>
    value === undefined ? fallback : addr(flag, value, "", false);
  const xds = xdsFlags(values, addr);
  const output = values["config-output"] ?? (xds ? "none" : "configmap");
  if (output !== "configmap" && output !== "none")
    throw new UsageError(`--config-output must be configmap or none, got "${output}"`);
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
    credentials: !values["no-credentials"],
    configMapOutput: output === "configmap",
    ...(xds ? { xds } : {}),
  };
}

/** The xDS server's flags, when any is given; TLS unless plaintext is asked for. */
function xdsFlags(
  values: Record<string, string | boolean | undefined>,
  addr: (
    flag: string,
    value: string | undefined,
    fallback: string,
    allowZero: boolean,
  ) => { address: string; port: number },
): XdsFlags | undefined {
  const [address, cert, key, clientCA, plaintext] = (
    ["xds-addr", "xds-tls-cert", "xds-tls-key", "xds-client-ca", "xds-plaintext"] as const
  ).map((f) => values[f]);
  if (address === undefined && cert === undefined && key === undefined && clientCA === undefined && !plaintext)
    return undefined;
  const listen = addr("xds-addr", address as string | undefined, `0.0.0.0:${XDS_PORT}`, true);
  if (plaintext) {
    if (cert || key || clientCA)
      throw new UsageError("--xds-plaintext cannot go with --xds-tls-cert, --xds-tls-key or --xds-client-ca");
    return { listen };
  }
  if (!cert || !key) {
    throw new UsageError(
      "the xDS server needs --xds-tls-cert and --xds-tls-key (TLS), or --xds-plaintext to serve without TLS",
    );
  }
  return {
    listen,
    tls: { cert: cert as string, key: key as string, ...(clientCA ? { clientCA: clientCA as string } : {}) },
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
    logger.error(
      { err: { message: (err as Error).message }, kubeconfig: flags.kubeconfig?.join(delimiter) || "in-cluster" },
      "cannot load the kubeconfig",
    );
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
  let xds: XdsServer | undefined;
  if (flags.xds) {
    try {
      xds = new XdsServer({
        host: flags.xds.listen.address,
        port: flags.xds.listen.port,
        ...readTls(flags.xds.tls),
        logger,
        metrics: op.metrics,
        identifier: `${OPERATOR_NAME} ${hostname()}`,
        ...testSeams(),
      });
    } catch (err) {
      logger.error({ err: { message: (err as Error).message } }, "cannot set up the xDS server");
      return 1;
    }
  }
  const controller = new FallbackController(op, {
    ...(flags.configMapOutput ? { configMap: flags.configMap } : {}),
    ...(xds ? { xds } : {}),
    compile: flags.compile,
    watchNamespace: flags.watchNamespace,
    configLimitBytes: flags.configLimitBytes,
    credentials: flags.credentials,
  });
  // Metrics on their own address when asked for one (Prometheus scrapes it, probes use the other).
  const sameAddress = flags.metrics.address === flags.health.address && flags.metrics.port === flags.health.port;
  const metricsServer = sameAddress
    ? undefined
    : new ProbeServer({
        host: flags.metrics.address,
        port: flags.metrics.port,
        metrics: op.metrics,
        healthz: () => op.liveness(),
        readyz: () => op.readiness(),
        logger,
      });

  let stopping: Promise<void> | undefined;
  const stop = (signal: string) => {
    logger.info({ signal }, "shutting down");
    // The framework stops the watches and handlers, then releases the Lease.
    controller.stop();
    stopping ??= Promise.all([op.stop(), xds?.stop()]).then(() => undefined);
  };
  process.once("SIGTERM", () => stop("SIGTERM"));
  process.once("SIGINT", () => stop("SIGINT"));

  let started = false;
  const servers: [string, (() => Promise<unknown>) | undefined][] = [
    ["metrics server", metricsServer && (() => metricsServer.start())],
    // Envoys may connect before the caches fill: they wait for the first compile.
    ["xDS server", xds && (() => xds.start())],
  ];
  let failed = false;
  for (const [what, start] of servers) {
    try {
      await start?.();
    } catch (err) {
      logger.error({ err: { message: (err as Error).message } }, `${what} failed to start`);
      failed = true;
      break;
    }
  }
  if (failed) await Promise.all([op.stop(), xds?.stop()]);
  else started = await op.run({ signals: false });
  await stopping;
  await metricsServer?.close();
  // Non-zero when the operator could not start, so that its supervisor notices.
  return started ? 0 : 1;
}

/** The xDS server's TLS files, read. */
function readTls(tls: XdsFlags["tls"]): { tls?: XdsTls } {
  if (!tls) return {};
  return {
    tls: {
      cert: readFileSync(tls.cert),
      key: readFileSync(tls.key),
      ...(tls.clientCA ? { clientCA: readFileSync(tls.clientCA) } : {}),
    },
  };
}

/**
 * FALLBACK_TEST_REJECTED_CLUSTER names a cluster to send Envoy in a form it rejects: the
 * integration tests' way to see a NACK through the whole operator. Never set in production.
 */
function testSeams(): { corrupt?: Corrupt } {
  const cluster = process.env["FALLBACK_TEST_REJECTED_CLUSTER"];
  if (!cluster) return {};
  return {
    corrupt: (type, name, json) => void (type === "cluster" && name === cluster && (json["connect_timeout"] = "-1s")),
  };
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
