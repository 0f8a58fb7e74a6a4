// The Kubernetes resources the controller reads and writes. Services and EndpointSlices are
// cached as the compiler reads them, and nothing more (see compile/snapshot.ts).
import { GROUP, KIND, PLURAL, VERSION } from "../api/schema.ts";
import { CREDENTIAL_LABEL, endpointSliceInput, secretInput, serviceInput } from "../compile/snapshot.ts";
import type { KubeObject, ResourceSpec } from "../kopf/index.ts";

export const POLICIES: ResourceSpec = {
  group: GROUP,
  version: VERSION,
  plural: PLURAL,
  kind: KIND,
  transform: withoutLastApplied,
};
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
/**
 * Only the Secrets labelled as credentials are listed, watched and cached (a label selector
 * on the watch), so the operator never holds any other Secret in memory.
 */
export const SECRETS: ResourceSpec = {
  group: "",
  version: "v1",
  plural: "secrets",
  kind: "Secret",
  labelSelector: `${CREDENTIAL_LABEL}=true`,
  transform: (o) => secretInput(o) as unknown as KubeObject,
};
export const CONFIG_MAPS: ResourceSpec = { group: "", version: "v1", plural: "configmaps", kind: "ConfigMap" };

const LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration";

/**
 * A policy as the cache keeps it: without managedFields and kubectl's copy of what it last
 * applied (the whole spec again, as text), which nothing here reads.
 */
function withoutLastApplied(object: KubeObject): KubeObject {
  const { managedFields: _, annotations, ...metadata } = object.metadata;
  if (annotations && LAST_APPLIED in annotations) {
    const { [LAST_APPLIED]: _applied, ...rest } = annotations;
    return { ...object, metadata: Object.keys(rest).length ? { ...metadata, annotations: rest } : metadata };
  }
  return { ...object, metadata: annotations ? { ...metadata, annotations } : metadata };
}

/** The same resource, watched in one namespace only (all namespaces when undefined). */
export const inNamespace = (resource: ResourceSpec, namespace: string | undefined): ResourceSpec =>
  namespace ? { ...resource, namespace } : resource;
