// The ConfigMap that carries the Envoy config: what it should hold, and whether it does.
//
// The operator owns it outright: every key it does not write is removed and every edit is
// overwritten on the next reconcile. Envoy mounts it as a folder (never subPath, or the
// kubelet could not swap it atomically) and reloads on the `..data` swap.
import { isDeepStrictEqual } from "node:util";
import type { KubeObject } from "../kopf/index.ts";

export const OPERATOR_NAME = "fallback-operator";
export const HASH_ANNOTATION = "fallback.dev/config-hash";
export const MANAGED_LABELS = {
  "app.kubernetes.io/managed-by": OPERATOR_NAME,
  "app.kubernetes.io/component": "envoy-config",
};

/** The API server refuses a ConfigMap whose keys and values add up to more than 1 MiB. */
export const CONFIGMAP_LIMIT_BYTES = 1024 * 1024;

export type ConfigMapRef = { namespace: string; name: string };

export const configSize = (files: Record<string, string>) =>
  Object.entries(files).reduce((sum, [key, text]) => sum + Buffer.byteLength(key) + Buffer.byteLength(text), 0);

/** Whether `existing` already holds exactly `files`, labelled and annotated as ours. */
export function holds(existing: KubeObject | undefined, files: Record<string, string>, hash: string): boolean {
  if (!existing) return false;
  const labels = existing.metadata.labels ?? {};
  return (
    isDeepStrictEqual(existing["data"] ?? {}, files) &&
    existing["binaryData"] === undefined &&
    existing.metadata.annotations?.[HASH_ANNOTATION] === hash &&
    Object.entries(MANAGED_LABELS).every(([k, v]) => labels[k] === v)
  );
}

export function configMapObject(ref: ConfigMapRef, files: Record<string, string>, hash: string): KubeObject {
  return {
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: { ...ref, labels: MANAGED_LABELS, annotations: { [HASH_ANNOTATION]: hash } },
    data: files,
  };
}

/**
 * `existing` with exactly `files` as its data and our labels and hash annotation (others'
 * labels and annotations kept), for a PUT. It carries existing's resourceVersion, so a
 * concurrent change makes it fail with 409 and the next sync starts from that change.
 *
 * Why not a JSON merge patch: the API server takes several times as long to apply one as to
 * take a PUT of the same size (docs/benchmarks.md, "Why the code is so"), and that write is
 * most of the time from a policy change to its Ready.
 */
export function configMapUpdate(existing: KubeObject, files: Record<string, string>, hash: string): KubeObject {
  const { managedFields: _managed, ...metadata } = existing.metadata; // omitted: the server keeps them
  const { data: _data, binaryData: _binary, ...rest } = existing;
  return {
    ...rest,
    apiVersion: "v1",
    kind: "ConfigMap",
    metadata: {
      ...metadata,
      labels: { ...metadata.labels, ...MANAGED_LABELS },
      annotations: { ...metadata.annotations, [HASH_ANNOTATION]: hash },
    },
    data: files,
  };
}
