// What an operator watches: a resource, optionally narrowed to a namespace or selectors.

import type { KubeObject, ResourceRef } from "./client.ts";

/** A resource to watch, optionally narrowed (the narrowing applies to its informer). */
export interface ResourceSpec extends ResourceRef {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * What the cache keeps of each object (controller-runtime's cache transform): a controller
   * that reads a few fields of many objects keeps its memory to those. Must keep metadata's
   * name, namespace and resourceVersion.
   */
  transform?: (object: KubeObject) => KubeObject;
}

/** Identity of a resource spec: the same informer (and cache) when equal. */
export function resourceId(r: ResourceSpec): string {
  return [r.group, r.version, r.plural, r.namespace ?? "", r.labelSelector ?? "", r.fieldSelector ?? ""].join("|");
}
