// The Kubernetes resources the controller reads and writes.
import { GROUP, KIND, PLURAL, VERSION } from "../api/schema.ts";
import type { ResourceSpec } from "../kopf/index.ts";

export const POLICIES: ResourceSpec = { group: GROUP, version: VERSION, plural: PLURAL, kind: KIND };
export const SERVICES: ResourceSpec = { group: "", version: "v1", plural: "services", kind: "Service" };
export const ENDPOINT_SLICES: ResourceSpec = { group: "discovery.k8s.io", version: "v1", plural: "endpointslices", kind: "EndpointSlice" };
export const CONFIG_MAPS: ResourceSpec = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };

/** The same resource, watched in one namespace only (all namespaces when undefined). */
export const inNamespace = (resource: ResourceSpec, namespace: string | undefined): ResourceSpec =>
  namespace ? { ...resource, namespace } : resource;
