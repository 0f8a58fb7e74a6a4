// The demo's few dealings with the API server, all through kubectl, so that every step is
// one a reader could type.
import { kube } from "../../test/support/kubectl.ts";

export const namespace = (name: string) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } });

/**
 * The EndpointSlice the EndpointSlice controller would write for a Service whose one pod
 * listens on `address`. The slice names its port like the Service port (so a named
 * targetPort such as "http" resolves) and carries the number the pod really listens on.
 */
export function endpointSlice(
  ns: string,
  service: string,
  portName: string,
  address: { host: string; port: number },
): object {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: {
      name: `${service}-demo`,
      namespace: ns,
      labels: { "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "fallback-demo" },
    },
    addressType: address.host.includes(":") ? "IPv6" : "IPv4",
    ports: [{ name: portName, port: address.port, protocol: "TCP" }],
    endpoints: [{ addresses: [address.host], conditions: { ready: true, serving: true, terminating: false } }],
  };
}

type Condition = { type: string; status: string; reason?: string; message?: string };
type PolicyStatus = { metadata: { namespace: string; name: string }; status?: { conditions?: Condition[] } };

/** Each FallbackPolicy with its conditions, for messages when one does not become Ready. */
export async function policyConditions(kubeconfig: string): Promise<string> {
  const list = JSON.parse(await kube(kubeconfig, ["get", "fallbackpolicies.fallback.dev", "-A", "-o", "json"])) as {
    items: PolicyStatus[];
  };
  return list.items
    .map((p) => {
      const conditions = (p.status?.conditions ?? []).map(
        (c) => `${c.type}=${c.status} (${c.reason ?? ""}${c.message ? `: ${c.message}` : ""})`,
      );
      return `${p.metadata.namespace}/${p.metadata.name}: ${conditions.length ? conditions.join(", ") : "no status yet"}`;
    })
    .join("\n");
}
