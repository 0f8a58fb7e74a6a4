// What the compiler reads: policies, Services and EndpointSlices, from a cluster's caches or
// from YAML files. Policies stay raw objects; the compiler validates and defaults them.
import { inputProblems, type InputProblem } from "./inputs.ts";

export type ObjectRef = {
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string> };
};

export type ServicePort = { name?: string; port: number; targetPort?: number | string; protocol?: string };
export type Service = ObjectRef & {
  apiVersion?: string;
  kind?: string;
  spec?: { ports?: ServicePort[]; clusterIP?: string; type?: string; externalName?: string };
};

export type EndpointSlice = ObjectRef & {
  addressType: "IPv4" | "IPv6" | "FQDN";
  endpoints?: { addresses: string[]; conditions?: { ready?: boolean | null } }[] | null;
  ports?: { name?: string | null; port?: number | null; protocol?: string | null }[] | null;
};

/** A Secret holding backends' credentials (the operator watches only those labelled fallback.dev/credential). */
export type Secret = ObjectRef & { data?: Record<string, string> | null; stringData?: Record<string, string> | null };

export type Snapshot = {
  policies: unknown[];
  services: Service[];
  endpointSlices: EndpointSlice[];
  secrets?: Secret[];
};

/** The label that makes a Secret one the operator reads credentials from. */
export const CREDENTIAL_LABEL = "fallback.dev/credential";

/** A Secret as the compiler reads it: name, namespace, resourceVersion and data (nothing else is kept). */
export function secretInput(object: any): Secret {
  const { name, namespace, resourceVersion } = object.metadata ?? {};
  return { metadata: { name, namespace, resourceVersion }, data: object.data ?? {} } as Secret;
}

/** A credential from a Secret: data is base64 (what the API server returns), stringData is plain (what a YAML file may hold). */
export function secretValue(secret: Secret, key: string): string | undefined {
  const plain = secret.stringData?.[key];
  if (typeof plain === "string") return plain;
  const encoded = secret.data?.[key];
  return typeof encoded === "string" ? Buffer.from(encoded, "base64").toString("utf8") : undefined;
}

export type CompileOptions = {
  /** Suffix of in-cluster DNS names. */
  clusterDomain: string;
  /** Where Envoy listens for the governed traffic. */
  listen: { address: string; port: number };
  /** Envoy's admin interface. */
  admin: { address: string; port: number };
  /** The folder Envoy reads the xDS files from (the ConfigMap's mount path). */
  configDir: string;
  /** CA bundle that verifies external TLS backends. */
  trustedCA: string;
};

export const defaultOptions: CompileOptions = {
  clusterDomain: "cluster.local",
  listen: { address: "0.0.0.0", port: 10000 },
  admin: { address: "127.0.0.1", port: 9901 },
  configDir: "/etc/envoy/fallback",
  trustedCA: "/etc/ssl/certs/ca-certificates.crt",
};

/** "HOST:PORT" (IPv6 in brackets; ":PORT" is every IPv4 address) -> address and port; undefined when malformed. */
export function parseHostPort(
  value: string,
  { allowZero = false } = {},
): { address: string; port: number } | undefined {
  const match = /^(.*):(\d+)$/.exec(value);
  const port = Number(match?.[2]);
  if (!match || port < (allowZero ? 0 : 1) || port > 65535) return undefined;
  return { address: match[1] ? match[1].replace(/^\[(.*)\]$/, "$1") : "0.0.0.0", port };
}

export const SERVICE_NAME_LABEL = "kubernetes.io/service-name";

/**
 * A Service as the compiler reads it: the fields resolve.ts uses, and name, namespace and
 * resourceVersion. The operator's cache keeps Services so, without what it never reads
 * (annotations such as kubectl's last-applied copy, labels, status, the rest of the spec),
 * which would be most of its memory at tens of thousands of Services.
 */
export function serviceInput(object: any): Service {
  const { name, namespace, resourceVersion } = object.metadata ?? {};
  const spec = object.spec ?? {};
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: { name, namespace, resourceVersion },
    spec: {
      ports: Array.isArray(spec.ports)
        ? spec.ports.map((p: ServicePort) => ({
            name: p?.name,
            port: p?.port,
            targetPort: p?.targetPort,
            protocol: p?.protocol,
          }))
        : spec.ports,
      clusterIP: spec.clusterIP,
      type: spec.type,
      externalName: spec.externalName,
    },
  } as Service;
}

const NOT_READY = Object.freeze({ ready: false });

/** An EndpointSlice as the compiler reads it (see serviceInput): its Service, addresses, readiness and ports. */
export function endpointSliceInput(object: any): EndpointSlice {
  const { name, namespace, resourceVersion, labels } = object.metadata ?? {};
  const service = labels?.[SERVICE_NAME_LABEL];
  return {
    apiVersion: object.apiVersion,
    kind: object.kind,
    metadata: {
      name,
      namespace,
      resourceVersion,
      ...(service !== undefined ? { labels: { [SERVICE_NAME_LABEL]: service } } : {}),
    },
    addressType: object.addressType,
    ports: object.ports,
    // A missing ready condition means ready, so only a not-ready endpoint keeps one: the
    // conditions of every endpoint would be a large share of the cache.
    endpoints: Array.isArray(object.endpoints)
      ? object.endpoints.map((e: any) =>
          e?.conditions?.ready === false
            ? { addresses: e.addresses, conditions: NOT_READY }
            : { addresses: e?.addresses },
        )
      : object.endpoints,
  } as EndpointSlice;
}

export const namespaceOf = (o: ObjectRef) => o.metadata.namespace ?? "default";
export const keyOf = (o: ObjectRef) => `${namespaceOf(o)}/${o.metadata.name}`;

/**
 * Sorts mixed Kubernetes objects into a snapshot; anything else is returned as ignored. A
 * Service, EndpointSlice or Secret the compiler cannot use (inputs.ts) is left out, with its
 * problems. Policies are checked by the compiler itself.
 */
export function snapshotFromObjects(objects: unknown[]): {
  snapshot: Snapshot;
  ignored: unknown[];
  problems: InputProblem[];
} {
  const snapshot: Snapshot = { policies: [], services: [], endpointSlices: [], secrets: [] };
  const ignored: unknown[] = [];
  const problems: InputProblem[] = [];
  const take = <T>(kind: "Service" | "EndpointSlice" | "Secret", object: unknown, into: T[]) => {
    const found = inputProblems(kind, object);
    if (found.length) problems.push(...found);
    else into.push(object as T);
  };
  for (const object of objects) {
    const { apiVersion, kind } = (typeof object === "object" && object !== null ? object : {}) as {
      apiVersion?: unknown;
      kind?: unknown;
    };
    if (kind === "FallbackPolicy") snapshot.policies.push(object);
    else if (kind === "Service" && apiVersion === "v1") take("Service", object, snapshot.services);
    else if (kind === "EndpointSlice" && apiVersion === "discovery.k8s.io/v1")
      take("EndpointSlice", object, snapshot.endpointSlices);
    else if (kind === "Secret" && apiVersion === "v1") take("Secret", object, snapshot.secrets!);
    else ignored.push(object);
  }
  return { snapshot, ignored, problems };
}
