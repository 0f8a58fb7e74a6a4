// What an operator watches: a resource, optionally narrowed to a namespace or selectors.

import type { KubeObject, ResourceRef } from "./client.ts";
import type { InformerEvent } from "./informer.ts";

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

/**
 * A handler's watch of a resource with a predicate (controller-runtime's): only the events it
 * passes run the handler. The cache still takes every event.
 */
export interface Watch {
  resource: ResourceSpec;
  when: (event: InformerEvent) => boolean;
}

/** What a handler watches: a resource (every change runs it), or a resource with a predicate. */
export type WatchSpec = ResourceSpec | Watch;

export function watchedResource(spec: WatchSpec): ResourceSpec {
  return "resource" in spec ? spec.resource : spec;
}

/**
 * Passes additions, deletions and relists, and a modification only when metadata.generation
 * moved: the API server bumps it on a spec change, not on a status or metadata write
 * (controller-runtime's GenerationChangedPredicate). For a handler that reads only specs,
 * whose own status writes would otherwise run it again, once for each.
 */
export function generationChanged(event: InformerEvent): boolean {
  return event.type !== "modified" || event.old?.metadata.generation !== event.object.metadata.generation;
}
