// Writing status through the status subresource.
//
// The /status endpoint changes only .status (and ignores it on the main endpoint, for
// CRDs with the subresource enabled), so a status write never bumps metadata.generation
// and never races with a user editing the spec. Writes are skipped when the object
// already shows the desired status: an operator that rewrites an identical status on
// every reconcile creates an event, a reconcile, a write... forever.

import { isDeepStrictEqual } from "node:util";
import type { KubeClient, KubeObject, ResourceRef } from "./client.ts";

export interface StatusWriteOptions {
  /**
   * "merge" (default): JSON merge patch of the given fields; lists are replaced whole.
   * "apply": server-side apply, owning exactly the given fields under `fieldManager`.
   */
  strategy?: "merge" | "apply";
  /** Required for "apply"; recorded in managedFields for "merge" too. */
  fieldManager?: string;
}

/** Whether `current` already has every field of `desired` (null in desired = absent). */
export function statusMatches(current: unknown, desired: unknown): boolean {
  if (desired === null) return current === undefined || current === null;
  if (isPlainObject(desired)) {
    const cur = isPlainObject(current) ? current : {};
    return Object.entries(desired).every(([k, v]) => statusMatches(cur[k], v));
  }
  return isDeepStrictEqual(current, desired);
}

/**
 * Writes `status` (a partial status: the fields to set) unless the object already has
 * it. Returns the updated object, or the same object when nothing was written.
 */
export async function patchStatus<T extends KubeObject>(
  client: KubeClient,
  resource: ResourceRef,
  obj: T,
  status: Record<string, unknown>,
  options: StatusWriteOptions = {},
): Promise<T> {
  if (statusMatches(obj["status"], status)) return obj;
  const { namespace, name } = obj.metadata;
  if (options.strategy === "apply") {
    if (!options.fieldManager) throw new Error("server-side apply needs a fieldManager");
    const body = {
      apiVersion: obj.apiVersion,
      kind: obj.kind,
      metadata: { name, ...(namespace ? { namespace } : {}) },
      status,
    };
    return client.patch<T>(resource, namespace, name, body, {
      type: "apply",
      subresource: "status",
      fieldManager: options.fieldManager,
      force: true,
    });
  }
  return client.patch<T>(
    resource,
    namespace,
    name,
    { status },
    {
      type: "merge",
      subresource: "status",
      fieldManager: options.fieldManager,
    },
  );
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
