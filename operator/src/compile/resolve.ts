// Resolves one valid policy against the cluster's Services and EndpointSlices into its IR,
// collecting every reference that could not be resolved.
import type { BackendStatus, FallbackPolicy } from "../api/schema.ts";
import { toMs } from "./duration.ts";
import type { Backend, Endpoint, PolicyIR, ServiceBackend } from "./ir.ts";
import {
  SERVICE_NAME_LABEL,
  keyOf,
  namespaceOf,
  secretValue,
  type CompileOptions,
  type EndpointSlice,
  type Secret,
  type Service,
  type Snapshot,
} from "./snapshot.ts";

export type RefProblem = {
  reason: "ServiceNotFound" | "PortNotFound" | "SecretNotFound" | "SecretKeyNotFound";
  message: string;
};

/** An SDS secret a backend's credential goes to Envoy in: its name, the Secret it is read from, and the value. */
export type Credential = { name: string; source: Secret; value: string };

export type Resolution = {
  ir: PolicyIR;
  backends: BackendStatus[];
  problems: RefProblem[];
  /** False when the target itself cannot be resolved: the policy is then not programmed. */
  targetResolved: boolean;
  /** What was read: each Service looked up by key, and its EndpointSlices (undefined when missing); each Secret. */
  inputs: ResolutionInput[];
  /** The credentials its backends send, for the SDS secrets. */
  credentials: Credential[];
};

export type ResolutionInput = {
  key: string;
  service?: Service;
  slices?: EndpointSlice[];
  secret?: Secret | undefined;
  isSecret?: true;
};

export type SnapshotIndex = {
  services: Map<string, Service>;
  slicesByService: Map<string, EndpointSlice[]>;
  secrets: Map<string, Secret>;
};

export function indexSnapshot(snapshot: Snapshot): SnapshotIndex {
  const services = new Map(snapshot.services.map((s) => [keyOf(s), s]));
  const slicesByService = new Map<string, EndpointSlice[]>();
  for (const slice of snapshot.endpointSlices) {
    const service = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    if (!service) continue;
    const key = `${namespaceOf(slice)}/${service}`;
    const list = slicesByService.get(key);
    if (list) list.push(slice);
    else slicesByService.set(key, [slice]);
  }
  return { services, slicesByService, secrets: new Map((snapshot.secrets ?? []).map((s) => [keyOf(s), s])) };
}

export function resolvePolicy(policy: FallbackPolicy, index: SnapshotIndex, options: CompileOptions): Resolution {
  const namespace = namespaceOf(policy);
  const { spec } = policy;
  const problems: RefProblem[] = [];
  const inputs: ResolutionInput[] = [];
  const credentials: Credential[] = [];
  // A name drains every backend it names (the CEL rules make sure it names one).
  const drain = spec.drain ?? [];

  const { name: targetName, port: targetPort } = spec.targetRef;
  const target = resolveService(namespace, targetName, targetPort, drain.includes(targetName), index, options, inputs);
  if ("reason" in target) problems.push(target);
  const backends: Backend[] = [
    "reason" in target ? unresolvedService(namespace, targetName, targetPort, drain.includes(targetName)) : target,
  ];

  for (const fallback of spec.fallbacks) {
    if (fallback.service) {
      const { name, port } = fallback.service;
      const resolved = resolveService(namespace, name, port, drain.includes(name), index, options, inputs);
      if ("reason" in resolved) problems.push(resolved);
      // An unresolved fallback stays in line with no endpoints, so traffic skips over it.
      backends.push("reason" in resolved ? unresolvedService(namespace, name, port, drain.includes(name)) : resolved);
    } else if (fallback.external) {
      const { host, port, tls, sni, hostRewrite, auth, rewrite, forwardClientCredentials, ejectOnRateLimit } =
        fallback.external;
      backends.push({
        kind: "External",
        host,
        port,
        tls: tls ?? port === 443,
        sni: sni ?? host,
        hostRewrite,
        drained: drain.includes(host),
        ...(auth ? { auth: credentialOf(namespace, host, auth, index, inputs, problems, credentials) } : {}),
        ...(rewrite && (rewrite.pathPrefix || rewrite.model)
          ? {
              rewrite: {
                ...(rewrite.pathPrefix ? { pathPrefix: rewrite.pathPrefix } : {}),
                ...(rewrite.model ? { model: rewrite.model } : {}),
              },
            }
          : {}),
        forwardClientCredentials,
        ...(ejectOnRateLimit ? { ejectOnRateLimit } : {}),
      });
    } else if (fallback.staticResponse) {
      const { status, body, headers } = fallback.staticResponse;
      const sorted = Object.entries(headers ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      backends.push({ kind: "StaticResponse", status, body, headers: sorted });
    }
  }

  const { retry, outlierDetection: od, circuitBreaker, timeouts, healthCheck: hc } = spec;
  const ir: PolicyIR = {
    key: keyOf(policy),
    domains: [],
    backends,
    retry: {
      attempts: retry.attempts,
      perTryTimeoutMs: toMs(retry.perTryTimeout),
      retryOn: retry.retryOn,
      retriableStatusCodes: retry.retriableStatusCodes ?? [],
      backoff: { baseMs: toMs(retry.backoff.baseInterval), maxMs: toMs(retry.backoff.maxInterval) },
      ...(retry.budget ? { budget: retry.budget } : {}),
      fallbackOnRetry: retry.fallbackOnRetry,
    },
    ejection: {
      consecutive5xx: od.consecutive5xx,
      consecutiveGatewayErrors: od.consecutiveGatewayErrors,
      consecutiveLocalOriginFailures: od.consecutiveLocalOriginFailures,
      splitExternalLocalOriginErrors: od.splitExternalLocalOriginErrors,
      intervalMs: toMs(od.interval),
      baseEjectionMs: toMs(od.baseEjectionTime),
      maxEjectionMs: toMs(od.maxEjectionTime),
      maxEjectionPercent: od.maxEjectionPercent,
      ...(od.failurePercentage ? { failurePercentage: od.failurePercentage } : {}),
    },
    limits: circuitBreaker,
    timeouts: { requestMs: toMs(timeouts.request), connectMs: toMs(timeouts.connect), idleMs: toMs(timeouts.idle) },
    ...(hc
      ? {
          healthCheck: {
            path: hc.path,
            intervalMs: toMs(hc.interval),
            timeoutMs: toMs(hc.timeout),
            unhealthyThreshold: hc.unhealthyThreshold,
            healthyThreshold: hc.healthyThreshold,
          },
        }
      : {}),
  };
  return {
    ir,
    backends: backends.map(backendStatus),
    problems,
    targetResolved: !("reason" in target),
    inputs,
    credentials,
  };
}

/** The SDS name of a credential: namespace, Secret and key (Secret names hold no "/"). */
export const credentialName = (namespace: string, secret: string, key: string) => `${namespace}/${secret}/${key}`;

/** A backend's credential: its SDS secret, or "missing" (with the problem said) when the Secret or key is not there. */
function credentialOf(
  namespace: string,
  host: string,
  auth: { secretRef: { name: string; key: string }; header: string; prefix?: string },
  index: SnapshotIndex,
  inputs: ResolutionInput[],
  problems: RefProblem[],
  credentials: Credential[],
): { secret: string; header: string; prefix: string } | "missing" {
  const { name, key } = auth.secretRef;
  const ref = `${namespace}/${name}`;
  const secret = index.secrets.get(ref);
  inputs.push({ key: `Secret ${ref}`, secret, isSecret: true });
  if (!secret) {
    problems.push({
      reason: "SecretNotFound",
      message: `Secret ${ref} (of external backend ${host}) not found, or not labelled fallback.dev/credential: "true"`,
    });
    return "missing";
  }
  const value = secretValue(secret, key);
  if (value === undefined) {
    problems.push({
      reason: "SecretKeyNotFound",
      message: `Secret ${ref} (of external backend ${host}) has no key ${key}`,
    });
    return "missing";
  }
  const sds = credentialName(namespace, name, key);
  credentials.push({ name: sds, source: secret, value });
  const prefix = auth.prefix ?? (auth.header.toLowerCase() === "authorization" ? "Bearer " : "");
  return { secret: sds, header: auth.header, prefix };
}

function resolveService(
  namespace: string,
  name: string,
  port: number,
  drained: boolean,
  index: SnapshotIndex,
  options: CompileOptions,
  inputs: ResolutionInput[],
): ServiceBackend | RefProblem {
  const key = `${namespace}/${name}`;
  const service = index.services.get(key);
  const slices = index.slicesByService.get(key);
  inputs.push({ key, service, slices });
  if (!service) return { reason: "ServiceNotFound", message: `Service ${key} not found` };

  if (service.spec?.type === "ExternalName" && service.spec.externalName) {
    return {
      kind: "Service",
      name,
      namespace,
      resolution: "DNS",
      endpoints: [],
      host: service.spec.externalName,
      port,
      drained,
    };
  }
  const servicePort = service.spec?.ports?.find((p) => p.port === port && (p.protocol ?? "TCP") === "TCP");
  if (!servicePort) return { reason: "PortNotFound", message: `Service ${key} has no TCP port ${port}` };

  if (!slices) {
    // No EndpointSlices known (offline, or not yet observed): let Envoy resolve the Service.
    // A headless Service resolves to pods, which listen on the target port.
    const headlessPort =
      service.spec?.clusterIP === "None" && typeof servicePort.targetPort === "number" ? servicePort.targetPort : port;
    const host = `${name}.${namespace}.svc.${options.clusterDomain}`;
    return { kind: "Service", name, namespace, resolution: "DNS", endpoints: [], host, port: headlessPort, drained };
  }
  return {
    kind: "Service",
    name,
    namespace,
    resolution: "EndpointSlices",
    endpoints: readyEndpoints(slices, servicePort.name ?? ""),
    host: "",
    port,
    drained,
  };
}

/**
 * Ready endpoints for one Service port across all of its slices. A slice names its ports
 * like the Service does, and holds the resolved target port number, so a named targetPort
 * needs no pod lookup. A missing `ready` condition means ready, as the API documents.
 */
function readyEndpoints(slices: EndpointSlice[], portName: string): Endpoint[] {
  const endpoints: Endpoint[] = [];
  for (const slice of slices) {
    if (slice.addressType !== "IPv4" && slice.addressType !== "IPv6") continue;
    const port = slice.ports?.find((p) => (p.name ?? "") === portName && (p.protocol ?? "TCP") === "TCP")?.port;
    if (typeof port !== "number") continue;
    for (const endpoint of slice.endpoints ?? []) {
      const address = endpoint.addresses?.[0];
      if (address && endpoint.conditions?.ready !== false) endpoints.push({ address, port });
    }
  }
  // Sorted, and without the duplicates that several slices can hold while they change.
  endpoints.sort(byEndpoint);
  return endpoints.filter((e, i) => i === 0 || byEndpoint(endpoints[i - 1]!, e) !== 0);
}

const byEndpoint = (a: Endpoint, b: Endpoint) =>
  a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port;

const unresolvedService = (namespace: string, name: string, port: number, drained: boolean): ServiceBackend => ({
  kind: "Service",
  name,
  namespace,
  resolution: "EndpointSlices",
  endpoints: [],
  host: "",
  port,
  drained,
});

function backendStatus(backend: Backend): BackendStatus {
  switch (backend.kind) {
    case "Service":
      return backend.resolution === "DNS"
        ? { name: backend.name, kind: "Service", resolution: "DNS", drained: backend.drained }
        : {
            name: backend.name,
            kind: "Service",
            resolution: "EndpointSlices",
            endpoints: backend.endpoints.length,
            drained: backend.drained,
          };
    case "External":
      return { name: backend.host, kind: "External", resolution: "DNS", drained: backend.drained };
    case "StaticResponse":
      return { name: "static", kind: "StaticResponse", resolution: "Static", drained: false };
  }
}
