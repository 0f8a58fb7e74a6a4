// The objects the benchmarks that serve real Envoys share (bench/xds.ts, bench/stats.ts): on a
// real API server, FallbackPolicies each with 3 headless Service backends (primary and two
// Service fallbacks) of a few endpoints, and a static answer last. An "empty" policy's
// Services have no endpoints, so that it answers with its static body.
import { join } from "node:path";
import { createTestNamespace, kubectl } from "../test/support/kubectl.ts";
import { repoRoot } from "../test/support/paths.ts";
import { PLURAL_PATH, limited, type Kube } from "./kube.ts";

export const PORT = 8080;

/** The CRDs applied and Established, and a namespace of its own. */
export async function policyNamespace(kubeconfig: string, prefix: string): Promise<string> {
  for (const args of [
    ["apply", "-f", join(repoRoot, "crds")],
    ["wait", "--for", "condition=Established", "--timeout", "60s", "crd/fallbackpolicies.fallback.dev"],
  ]) {
    const r = await kubectl(kubeconfig, args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  }
  return createTestNamespace(kubeconfig, prefix);
}

/** Creates each policy's 3 Services and EndpointSlices (`endpoints` each, none for `empty` ones), then the policies. */
export async function createPolicies(
  kube: Kube,
  ns: string,
  names: string[],
  options: { endpoints: number; empty: Iterable<string> },
): Promise<void> {
  const empty = new Set(options.empty);
  let ip = 0;
  const addresses = () =>
    Array.from({ length: options.endpoints }, () => {
      const i = ip++;
      return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
    });
  await limited(names, 48, async (p) => {
    for (const svc of [p, `${p}-fb1`, `${p}-fb2`]) {
      await kube.call("POST", `/api/v1/namespaces/${ns}/services`, serviceOf(ns, svc));
      await kube.call(
        "POST",
        `/apis/discovery.k8s.io/v1/namespaces/${ns}/endpointslices`,
        sliceOf(ns, svc, empty.has(p) ? [] : addresses(), PORT),
      );
    }
  });
  await limited(names, 48, (p) => kube.call("POST", `${PLURAL_PATH}/${ns}/fallbackpolicies`, policyOf(ns, p, "v0")));
}

// Headless: the API server allocates a cluster IP for every other Service under one lock,
// ~20 a second here, and the compiler does not need one when EndpointSlices are known.
export const serviceOf = (ns: string, name: string) => ({
  apiVersion: "v1",
  kind: "Service",
  metadata: { name, namespace: ns },
  spec: { clusterIP: "None", ports: [{ name: "http", port: PORT, targetPort: PORT }] },
});

export const sliceOf = (ns: string, service: string, addresses: string[], port: number) => ({
  apiVersion: "discovery.k8s.io/v1",
  kind: "EndpointSlice",
  metadata: { name: `${service}-0`, namespace: ns, labels: { "kubernetes.io/service-name": service } },
  addressType: "IPv4",
  ports: [{ name: "http", port, protocol: "TCP" }],
  endpoints: addresses.map((a) => ({ addresses: [a], conditions: { ready: true } })),
});

export const policyOf = (ns: string, name: string, body: string) => ({
  apiVersion: "fallback.dev/v1alpha1",
  kind: "FallbackPolicy",
  metadata: { name, namespace: ns },
  spec: {
    targetRef: { name, port: PORT },
    fallbacks: [
      { service: { name: `${name}-fb1`, port: PORT } },
      { service: { name: `${name}-fb2`, port: PORT } },
      { staticResponse: { status: 503, body } },
    ],
  },
});
