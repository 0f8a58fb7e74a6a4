// The demo's few dealings with the API server, all through kubectl, so that every step is
// one a reader could type.
import { networkInterfaces } from "node:os";
import { kubectl } from "../../test/harness/controlplane.ts";

/** Runs kubectl and returns its stdout; throws with its stderr on a non-zero exit. */
export async function kubectlOk(kubeconfig: string, args: string[], input?: string, timeoutMs?: number): Promise<string> {
  const result = await kubectl(kubeconfig, args, { ...(input !== undefined ? { input } : {}), ...(timeoutMs ? { timeoutMs } : {}) });
  if (result.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${(result.stderr || result.stdout).trim()}`);
  return result.stdout;
}

/** kubectl apply of objects given as data. */
export function applyObjects(kubeconfig: string, objects: object[]): Promise<string> {
  return kubectlOk(kubeconfig, ["apply", "-f", "-"], JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
}

export const namespace = (name: string) => ({ apiVersion: "v1", kind: "Namespace", metadata: { name } });

/**
 * The EndpointSlice the EndpointSlice controller would write for a Service whose one pod
 * listens on `address`. The slice names its port like the Service port (so a named
 * targetPort such as "http" resolves) and carries the number the pod really listens on.
 */
export function endpointSlice(ns: string, service: string, portName: string, address: { host: string; port: number }): object {
  return {
    apiVersion: "discovery.k8s.io/v1",
    kind: "EndpointSlice",
    metadata: { name: `${service}-demo`, namespace: ns, labels: { "kubernetes.io/service-name": service, "endpointslice.kubernetes.io/managed-by": "fallback-demo" } },
    addressType: address.host.includes(":") ? "IPv6" : "IPv4",
    ports: [{ name: portName, port: address.port, protocol: "TCP" }],
    endpoints: [{ addresses: [address.host], conditions: { ready: true, serving: true, terminating: false } }],
  };
}

/**
 * An address of this machine that an EndpointSlice may hold. The API server refuses
 * loopback (127.0.0.0/8, ::1), link-local and IPv4-mapped addresses in EndpointSlices, so
 * the demo's backends cannot sit on 127.0.0.x: they listen on the machine's own address,
 * like pods on a node, each on a port of its own. Traffic to it never leaves the machine.
 * DEMO_BACKEND_ADDRESS picks another one.
 */
export function backendAddress(): { address: string; family: "IPv4" | "IPv6" } {
  const chosen = process.env.DEMO_BACKEND_ADDRESS;
  if (chosen) return { address: chosen, family: chosen.includes(":") ? "IPv6" : "IPv4" };
  const candidates = Object.values(networkInterfaces())
    .flat()
    .filter((i) => i && !i.internal && !/^(169\.254\.|fe80:)/i.test(i.address));
  const v4 = candidates.find((i) => i!.family === "IPv4");
  if (v4) return { address: v4.address, family: "IPv4" };
  const v6 = candidates.find((i) => i!.family === "IPv6");
  if (v6) return { address: v6.address, family: "IPv6" };
  throw new Error(
    "this machine has no address but loopback, and the API server refuses loopback addresses in EndpointSlices; " +
      "bring up any network interface (no internet needed) or set DEMO_BACKEND_ADDRESS",
  );
}

type Condition = { type: string; status: string; reason?: string; message?: string };
type PolicyStatus = { metadata: { namespace: string; name: string }; status?: { conditions?: Condition[] } };

/** Each FallbackPolicy with its conditions, for messages when one does not become Ready. */
export async function policyConditions(kubeconfig: string): Promise<string> {
  const list = JSON.parse(await kubectlOk(kubeconfig, ["get", "fallbackpolicies.fallback.dev", "-A", "-o", "json"])) as { items: PolicyStatus[] };
  return list.items
    .map((p) => {
      const conditions = (p.status?.conditions ?? []).map((c) => `${c.type}=${c.status} (${c.reason ?? ""}${c.message ? `: ${c.message}` : ""})`);
      return `${p.metadata.namespace}/${p.metadata.name}: ${conditions.length ? conditions.join(", ") : "no status yet"}`;
    })
    .join("\n");
}
