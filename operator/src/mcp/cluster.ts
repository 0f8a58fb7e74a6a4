// list_policies and get_policy: FallbackPolicies as the API server has them, with the
// operator's status (Ready and why, who serves now, FallbackActive), recent Events and the
// explanation of the policy as the cluster resolves it (its Services' EndpointSlices). Every
// request goes with the caller's own kubeconfig, so what it may read is what RBAC allows.
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from "../api/schema.ts";
import { KubeClient, type KubeObject, type ResourceRef } from "../kopf/client.ts";
import { isNotFound, statusCode } from "../kopf/errors.ts";
import { KubeConfig } from "../kopf/kube.ts";
import { SERVICE_NAME_LABEL } from "../compile/snapshot.ts";
import { apiError, messageOf, ToolError } from "./errors.ts";
import { explain, type Explanation } from "./explain.ts";
import { pickPolicy } from "./model.ts";

export const POLICIES: ResourceRef = { group: GROUP, version: VERSION, plural: PLURAL, kind: KIND };
const SERVICES: ResourceRef = { group: "", version: "v1", plural: "services", kind: "Service" };
const SLICES: ResourceRef = {
  group: "discovery.k8s.io",
  version: "v1",
  plural: "endpointslices",
  kind: "EndpointSlice",
};
export const EVENTS: ResourceRef = { group: "events.k8s.io", version: "v1", plural: "events", kind: "Event" };

/** The caller's cluster: a client on their kubeconfig, and the namespace its context names. */
export type Cluster = { client: KubeClient; namespace: string; context: string; server: string };

export function connect(kubeconfigPath: string): Cluster {
  const config = new KubeConfig();
  try {
    config.loadFromFile(kubeconfigPath);
  } catch (error) {
    throw new ToolError(`--kubeconfig ${kubeconfigPath}: ${messageOf(error)}`);
  }
  const context = config.getCurrentContext();
  const cluster = config.getCurrentCluster();
  if (!cluster)
    throw new ToolError(`--kubeconfig ${kubeconfigPath}: its current context "${context}" names no cluster`);
  return {
    client: new KubeClient(config, { timeoutMs: 20_000 }),
    namespace: config.getContextObject(context)?.namespace ?? "default",
    context,
    server: cluster.server,
  };
}

type Condition = {
  type: string;
  status: string;
  reason?: string;
  message?: string;
  observedGeneration?: number;
  lastTransitionTime?: string;
};
type PolicyObject = KubeObject & {
  spec?: any;
  status?: {
    conditions?: Condition[];
    activeBackend?: string;
    backends?: any[];
    observedGeneration?: number;
    proxies?: { connected: number; acked: number };
  };
};

export type PolicyRow = {
  namespace: string;
  name: string;
  target: string;
  fallbacks: number;
  ready: { status: string; reason: string; message: string } | null;
  /** Who serves new requests now, from the Envoys' stats; absent without reports. */
  activeBackend?: string;
  fallbackActive?: { status: string; reason: string; message: string };
  drained: string[];
  /** Conditions that say something is wrong, as Type=Status Reason: message. */
  reasons: string[];
  /** The operator has not yet acted on the latest spec. */
  stale: boolean;
  proxies?: { connected: number; acked: number };
};

export async function listPolicies(
  cluster: Cluster,
  namespace?: string,
): Promise<{ policies: PolicyRow[]; namespace: string }> {
  let items: PolicyObject[];
  try {
    items = (await cluster.client.list<PolicyObject>(POLICIES, namespace ? { namespace } : {})).items;
  } catch (error) {
    throw apiError(`FallbackPolicies in ${namespace ? `namespace ${namespace}` : "all namespaces"}`, error);
  }
  items.sort((a, b) =>
    `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(`${b.metadata.namespace}/${b.metadata.name}`),
  );
  return { policies: items.map(row), namespace: namespace ?? "(all)" };
}

function row(p: PolicyObject): PolicyRow {
  const conditions = p.status?.conditions ?? [];
  const find = (type: string) => conditions.find((c) => c.type === type);
  const brief = (c: Condition | undefined) =>
    c ? { status: c.status, reason: c.reason ?? "", message: c.message ?? "" } : null;
  const fallbackActive = find("FallbackActive");
  const reasons = conditions
    .filter((c) => (c.type === "Stalled" ? c.status === "True" : c.type !== "FallbackActive" && c.status !== "True"))
    .map((c) => `${c.type}=${c.status} ${c.reason ?? ""}: ${c.message ?? ""}`.trim());
  const observed = p.status?.observedGeneration;
  return {
    namespace: p.metadata.namespace ?? "default",
    name: p.metadata.name,
    target: `${p.spec?.targetRef?.name}:${p.spec?.targetRef?.port}`,
    fallbacks: Array.isArray(p.spec?.fallbacks) ? p.spec.fallbacks.length : 0,
    ready: brief(find("Ready")),
    ...(p.status?.activeBackend ? { activeBackend: p.status.activeBackend } : {}),
    ...(fallbackActive ? { fallbackActive: brief(fallbackActive)! } : {}),
    drained: Array.isArray(p.spec?.drain) ? p.spec.drain : [],
    reasons,
    stale: observed === undefined || (p.metadata.generation !== undefined && observed < p.metadata.generation),
    ...(p.status?.proxies ? { proxies: p.status.proxies } : {}),
  };
}

export function describeList(l: { policies: PolicyRow[]; namespace: string }): string {
  if (!l.policies.length)
    return `No FallbackPolicy in ${l.namespace === "(all)" ? "any namespace" : `namespace ${l.namespace}`}.`;
  return l.policies
    .map((p) => {
      const ready = p.ready
        ? `Ready=${p.ready.status}${p.ready.status === "True" ? "" : ` (${p.ready.reason})`}`
        : "no status yet";
      const live = p.fallbackActive
        ? `; FallbackActive=${p.fallbackActive.status} (${p.fallbackActive.reason})${p.activeBackend ? `, ${p.activeBackend} serves` : ""}`
        : p.activeBackend
          ? `; ${p.activeBackend} serves`
          : "";
      const drained = p.drained.length ? `; drained: ${p.drained.join(", ")}` : "";
      const why = p.reasons.length ? `\n    ${p.reasons.join("\n    ")}` : "";
      return `${p.namespace}/${p.name} -> ${p.target}, ${p.fallbacks} fallback${p.fallbacks === 1 ? "" : "s"}: ${ready}${live}${drained}${p.stale ? "; the operator has not acted on the latest spec yet" : ""}${why}`;
    })
    .join("\n");
}

export type PolicyEvent = {
  type: string;
  reason: string;
  message: string;
  count: number;
  lastSeen: string;
  from: string;
};

export type PolicyDetail = {
  policy: string;
  summary: PolicyRow;
  spec: unknown;
  status: unknown;
  metadata: {
    generation?: number;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    annotations?: Record<string, string>;
  };
  events: PolicyEvent[];
  /** Said when the Events could not be read (RBAC, say). */
  eventsError?: string;
  explanation: Explanation | null;
  explanationError?: string;
};

export async function getPolicy(cluster: Cluster, namespace: string, name: string): Promise<PolicyDetail> {
  const key = `${namespace}/${name}`;
  const object = await readPolicy(cluster, namespace, name);
  const [events, explanation] = await Promise.all([readEvents(cluster, object), explainLive(cluster, object)]);
  const { generation, resourceVersion, uid, creationTimestamp, annotations } = object.metadata;
  return {
    policy: key,
    summary: row(object),
    spec: object.spec,
    status: object.status ?? null,
    metadata: {
      generation,
      resourceVersion,
      uid,
      creationTimestamp,
      ...(annotations ? { annotations: withoutLastApplied(annotations) } : {}),
    },
    ...events,
    ...explanation,
  };
}

export async function readPolicy(cluster: Cluster, namespace: string, name: string): Promise<PolicyObject> {
  try {
    return {
      apiVersion: API_VERSION,
      kind: KIND,
      ...(await cluster.client.get<PolicyObject>(POLICIES, namespace, name)),
    };
  } catch (error) {
    if (isNotFound(error))
      throw new ToolError(
        `FallbackPolicy ${namespace}/${name} not found (list_policies shows the policies there are)`,
        [{ object: `FallbackPolicy ${namespace}/${name}`, message: "not found" }],
      );
    throw apiError(`FallbackPolicy ${namespace}/${name}`, error);
  }
}

async function readEvents(
  cluster: Cluster,
  policy: PolicyObject,
): Promise<{ events: PolicyEvent[]; eventsError?: string }> {
  const { namespace = "default", name, uid } = policy.metadata;
  try {
    const { items } = await cluster.client.list<any>(EVENTS, {
      namespace,
      fieldSelector: `regarding.kind=${KIND},regarding.name=${name}`,
    });
    const events = items
      .filter((e) => !uid || !e.regarding?.uid || e.regarding.uid === uid)
      .map((e): PolicyEvent => ({
        type: e.type ?? "",
        reason: e.reason ?? "",
        message: e.note ?? "",
        count: e.series?.count ?? e.deprecatedCount ?? 1,
        lastSeen:
          e.series?.lastObservedTime ?? e.eventTime ?? e.deprecatedLastTimestamp ?? e.metadata?.creationTimestamp ?? "",
        from: e.reportingController ?? e.deprecatedSource?.component ?? "",
      }))
      .sort((a, b) => (a.lastSeen < b.lastSeen ? 1 : a.lastSeen > b.lastSeen ? -1 : 0))
      .slice(0, 20);
    return { events };
  } catch (error) {
    return { events: [], eventsError: `Events of FallbackPolicy ${namespace}/${name}: ${messageOf(error)}` };
  }
}

/** The explanation of the live policy, resolved against its Services and their EndpointSlices as they are now. */
async function explainLive(
  cluster: Cluster,
  policy: PolicyObject,
): Promise<{ explanation: Explanation | null; explanationError?: string }> {
  const namespace = policy.metadata.namespace ?? "default";
  const names = new Set<string>(
    [policy.spec?.targetRef?.name, ...(policy.spec?.fallbacks ?? []).map((f: any) => f?.service?.name)].filter(
      (n): n is string => typeof n === "string",
    ),
  );
  const objects: unknown[] = [{ ...policy, status: undefined }];
  try {
    for (const name of names) {
      try {
        objects.push({ apiVersion: "v1", kind: "Service", ...(await cluster.client.get(SERVICES, namespace, name)) });
      } catch (error) {
        if (!isNotFound(error)) throw error;
        continue;
      }
      const { items } = await cluster.client.list(SLICES, {
        namespace,
        labelSelector: `${SERVICE_NAME_LABEL}=${name}`,
      });
      objects.push(...items);
    }
  } catch (error) {
    const forbidden =
      statusCode(error) === 403
        ? " (the explanation needs get on services and list on endpointslices in the namespace)"
        : "";
    return {
      explanation: null,
      explanationError: `reading the Services of FallbackPolicy ${namespace}/${policy.metadata.name}: ${messageOf(error)}${forbidden}`,
    };
  }
  try {
    // A missing credential Secret shows in the policy's own status; the tools never read Secrets.
    const secretMissing = (policy.status?.conditions ?? []).some(
      (c) => c.type === "ResolvedRefs" && c.status === "False" && /^Secret/.test(c.reason ?? ""),
    );
    return {
      explanation: explain(
        pickPolicy(objects, `${namespace}/${policy.metadata.name}`, { offline: false, secretsMissing: secretMissing }),
      ),
    };
  } catch (error) {
    return { explanation: null, explanationError: messageOf(error) };
  }
}

const withoutLastApplied = (annotations: Record<string, string>) =>
  Object.fromEntries(
    Object.entries(annotations).filter(([k]) => k !== "kubectl.kubernetes.io/last-applied-configuration"),
  );

export function describeDetail(d: PolicyDetail): string {
  const lines = [describeList({ policies: [d.summary], namespace: d.policy.split("/")[0]! })];
  const backends = (d.status as { backends?: any[] } | null)?.backends ?? [];
  if (backends.length) {
    lines.push(
      "Backends now:",
      ...backends.map((b) => {
        if (b.kind === "StaticResponse") return `  static: the static answer`;
        const endpoints =
          b.endpoints !== undefined
            ? `${b.endpoints} ready endpoint${b.endpoints === 1 ? "" : "s"}`
            : "resolved by DNS";
        return `  ${b.name} (${b.kind}): ${endpoints}${b.healthy !== undefined ? `, ${b.healthy} healthy as the Envoys see it` : ""}${b.drained ? ", drained" : ""}`;
      }),
    );
  }
  lines.push(
    d.events.length ? "Recent events:" : d.eventsError ? `Events: ${d.eventsError}` : "No recent events.",
    ...d.events.map((e) => `  ${e.lastSeen} ${e.type} ${e.reason}${e.count > 1 ? ` (x${e.count})` : ""}: ${e.message}`),
  );
  if (d.explanation)
    lines.push("", ...d.explanation.sections.map((s) => `${s.topic[0]!.toUpperCase()}${s.topic.slice(1)}: ${s.text}`));
  else if (d.explanationError) lines.push("", `No explanation: ${d.explanationError}`);
  return lines.join("\n");
}
