// Manifests for tests and benchmarks against a control plane: Services with EndpointSlices
// (there is no kube-controller-manager to make them) and FallbackPolicies.
export function service(namespace: string, name: string, port = 8080): object {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name, namespace },
    spec: { ports: [{ name: "http", port, targetPort: port }] },
  };
}

export function endpointSlice(
  namespace: string,
  service: string,
  addresses: string[],
  port = 8080,
  suffix = "a",
): object {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${service}-${suffix}`, namespace, labels: { "kubernetes.io/service-name": service } },
    addressType: "IPv4",
    ports: [{ name: "http", port, protocol: "TCP" }],
    endpoints: addresses.map((address) => ({ addresses: [address], conditions: { ready: true } })),
  };
}

export function policy(namespace: string, name: string, spec: Record<string, unknown> = {}): object {
  return {
    apiVersion: "fallback.dev/v1alpha1",
    kind: "FallbackPolicy",
    metadata: { name, namespace },
    spec: {
      targetRef: { name, port: 8080 },
      fallbacks: [{ staticResponse: { status: 503, body: "degraded" } }],
      ...spec,
    },
  };
}
