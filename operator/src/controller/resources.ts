// The Kubernetes resources the controller reads and writes. Services and EndpointSlices are
// cached as the compiler reads them, and nothing more (see compile/snapshot.ts).
import { GROUP, KIND, PLURAL, VERSION } from "../api/schema.ts";
import { endpointSliceInput, serviceInput } from "../compile/snapshot.ts";
import type { KubeObject, ResourceSpec } from "../kopf/index.ts";

export const POLICIES: ResourceSpec = { group: GROUP, version: VERSION, plural: PLURAL, kind: KIND };
export const SERVICES: ResourceSpec = {
  group: "",
  version: "v1",
  plural: "services",
  kind: "Service",
  transform: (o) => serviceInput(o) as unknown as KubeObject,
};
export const ENDPOINT_SLICES: ResourceSpec = {
  group: "discovery.k8s.io",
  version: "v1",
  plural: "endpointslices",
  kind: "EndpointSlice",
  transform: (o) => endpointSliceInput(o) as unknown as KubeObject,
};
export const CONFIG_MAPS: ResourceSpec = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };

/** The same resource, watched in one namespace only (all namespaces when undefined). */
export const inNamespace = (resource: ResourceSpec, namespace: string | undefined): ResourceSpec =>
  namespace ? { ...resource, namespace } : resource;
