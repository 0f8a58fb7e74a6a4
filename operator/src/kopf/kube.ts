// The names the framework's API shares with @kubernetes/client-node, defined here so that a
// program on the framework never loads client-node itself: its KubeConfig module brings in
// every generated API class and model (README.md). KubeConfig runs client-node in a helper
// process (kubeconfig.ts); the rest are small enough to define.

export { KubeConfig, type Cluster, type Context, type User } from "./kubeconfig.ts";

export const HttpMethod = {
  GET: "GET",
  HEAD: "HEAD",
  POST: "POST",
  PUT: "PUT",
  DELETE: "DELETE",
  OPTIONS: "OPTIONS",
  PATCH: "PATCH",
} as const;
export type HttpMethod = (typeof HttpMethod)[keyof typeof HttpMethod];

/** The Content-Type of each kind of patch. */
export const PatchStrategy = {
  JsonPatch: "application/json-patch+json",
  MergePatch: "application/merge-patch+json",
  StrategicMergePatch: "application/strategic-merge-patch+json",
  ServerSideApply: "application/apply-patch+yaml",
} as const;
export type PatchStrategy = (typeof PatchStrategy)[keyof typeof PatchStrategy];

/** A Date that serialises with the microseconds a MicroTime field (Events, Leases) requires. */
export class V1MicroTime extends Date {
  override toISOString(): string {
    return `${super.toISOString().slice(0, -1)}000Z`;
  }
}
