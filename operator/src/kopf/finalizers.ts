// Finalizers: the API server keeps an object that has any, after a delete request,
// until every finalizer is removed. Ours is added while a delete handler exists for the
// resource, so the handler is sure to see the deletion even if the operator was down
// when it happened; it is removed once the delete handlers succeed.
//
// Both patches carry metadata.resourceVersion, which turns the merge patch into an
// optimistic-concurrency write: if anyone changed the object (say, another finalizer)
// since we read it, the API server answers 409 and the reconcile is retried on the
// fresh object, instead of our list overwriting theirs.

import type { KubeClient, KubeObject, ResourceRef } from "./client.ts";
import { isNotFound } from "./errors.ts";

export function hasFinalizer(obj: KubeObject, finalizer: string): boolean {
  return obj.metadata.finalizers?.includes(finalizer) ?? false;
}

export function isBeingDeleted(obj: KubeObject): boolean {
  return Boolean(obj.metadata.deletionTimestamp);
}

/** Adds `finalizer` if missing; returns the object as stored afterwards. */
export async function addFinalizer<T extends KubeObject>(
  client: KubeClient, resource: ResourceRef, obj: T, finalizer: string,
): Promise<T> {
  if (hasFinalizer(obj, finalizer)) return obj;
  const finalizers = [...(obj.metadata.finalizers ?? []), finalizer];
  return client.patch<T>(resource, obj.metadata.namespace, obj.metadata.name, {
    metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
  });
}

/** Removes `finalizer` if present; returns the object afterwards, or undefined once gone. */
export async function removeFinalizer<T extends KubeObject>(
  client: KubeClient, resource: ResourceRef, obj: T, finalizer: string,
): Promise<T | undefined> {
  if (!hasFinalizer(obj, finalizer)) return obj;
  const finalizers = (obj.metadata.finalizers ?? []).filter((f) => f !== finalizer);
  try {
    return await client.patch<T>(resource, obj.metadata.namespace, obj.metadata.name, {
      metadata: { finalizers, resourceVersion: obj.metadata.resourceVersion },
    });
  } catch (err) {
    if (isNotFound(err)) return undefined; // already gone: nothing left to release
    throw err;
  }
}
