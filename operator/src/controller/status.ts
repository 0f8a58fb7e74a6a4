// A policy's compile result -> the status the operator writes (api.md, "status").
//
// Pure: the caller passes the clock. Conditions keep their lastTransitionTime unless their
// status changes, so an unchanged result yields the status the object already has and
// no write happens.
import type { FallbackPolicyStatus } from "../api/schema.ts";
import type { ConditionResult, PolicyResult } from "../compile/results.ts";
import { setCondition, type Condition, type KubeObject } from "../kopf/index.ts";
import type { ConfigMapRef } from "./configmap.ts";

/** Set when the new config could not be written because it is too large. */
export type NotWritten = { reason: "ConfigTooLarge"; message: string };

type CurrentStatus = FallbackPolicyStatus & { conditions?: Condition[] };

export function desiredStatus(
  policy: KubeObject,
  result: PolicyResult,
  configMap: ConfigMapRef,
  notWritten: NotWritten | undefined,
  now: Date,
): Record<string, unknown> {
  const current = (policy["status"] ?? {}) as CurrentStatus;
  const generation = policy.metadata.generation;
  let conditions: ConditionResult[] = result.conditions;
  let configHash = result.configHash;

  // The last good config stays in Envoy. A policy whose own part is unchanged is still
  // served by it; the others are not programmed until the config fits again.
  if (notWritten && configHash && configHash !== current.configRef?.hash) {
    const failed = { status: "False" as const, reason: notWritten.reason, message: notWritten.message };
    conditions = conditions.map((c) => (c.type === "Programmed" || c.type === "Ready" ? { ...c, ...failed } : c));
    configHash = current.configRef?.hash;
  }

  let list = current.conditions;
  for (const c of conditions) list = setCondition(list, { ...c, observedGeneration: generation }, now).conditions;

  return {
    observedGeneration: generation ?? null,
    conditions: list,
    backends: plain(result.backends),
    fallbackCount: result.fallbackCount,
    configRef: configHash ? { ...configMap, hash: configHash } : null,
  };
}

/** The Ready condition of a status, for events about transitions. */
export const readyOf = (status: unknown) =>
  ((status as CurrentStatus | undefined)?.conditions ?? []).find((c) => c.type === "Ready");

// Drops undefined fields, which the API server never returns, so comparisons hold.
const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value));
