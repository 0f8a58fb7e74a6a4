// A policy's compile result and what the sinks report -> the status the operator writes
// (api.md, "status").
//
// Pure: the caller passes the clock. Conditions keep their lastTransitionTime unless their
// status changes, so an unchanged result yields the status the object already has and
// no write happens.
import type { FallbackPolicyStatus } from "../api/schema.ts";
import {
  READY_INPUTS,
  credentialsNeedXds,
  readyFrom,
  WHILE_TRUE,
  type ConditionResult,
  type PolicyResult,
} from "../compile/results.ts";
import { removeCondition, setCondition, type Condition, type KubeObject } from "../kopf/index.ts";
import type { PolicyState } from "../xds/server.ts";
import type { LiveView } from "./live.ts";
import type { ConfigMapRef } from "./configmap.ts";

/** Set when the new config could not be written because it is too large. */
export type NotWritten = { reason: "ConfigTooLarge"; message: string };

/** What the sinks say of a policy's config: the ConfigMap, and the Envoys served over xDS. */
export type Delivery = {
  /** The ConfigMap, when the operator writes one. */
  configMap?: ConfigMapRef;
  /** Why the ConfigMap does not hold the latest config. */
  notWritten?: NotWritten;
  /** Whether the xDS server runs; then `xds` is the policy's standing with its Envoys. */
  xdsServer: boolean;
  xds?: PolicyState;
  /** What the Envoys' stats say of the policy's traffic (the view adopted for its status); with the xDS server only. */
  live?: LiveView | undefined;
};

type CurrentStatus = Omit<FallbackPolicyStatus, "conditions"> & { conditions?: Condition[] };

export function desiredStatus(
  policy: KubeObject,
  result: PolicyResult,
  delivery: Delivery,
  now: Date,
): Record<string, unknown> {
  const current = (policy["status"] ?? {}) as CurrentStatus;
  const generation = policy.metadata.generation;
  let conditions: ConditionResult[] = result.conditions;
  let configHash = result.configHash;
  const { notWritten } = delivery;

  if (notWritten && configHash && configHash !== current.configRef?.hash) {
    // The last good config stays in Envoy. A policy whose own part is unchanged is still
    // served by it; the others are not programmed until the config fits again.
    conditions = withProgrammed(conditions, {
      status: "False",
      reason: notWritten.reason,
      message: notWritten.message,
    });
    configHash = current.configRef?.hash;
  } else if (delivery.xdsServer && configHash) {
    conditions = withProgrammed(conditions, programmedOverXds(delivery.xds));
  } else if (result.credentialed && configHash) {
    // The files have no SDS, so the credential cannot reach Envoy: the backend is left out.
    conditions = withProgrammed(conditions, {
      status: "False",
      reason: "CredentialsNeedXds",
      message: credentialsNeedXds(result.credentialed),
    });
  }

  let list = current.conditions;
  for (const c of conditions) list = setCondition(list, { ...c, observedGeneration: generation }, now).conditions;
  // Stalled is only there while True: a result without it takes it away (kstatus: Failed no more).
  for (const type of WHILE_TRUE) {
    if (conditions.some((c) => c.type === type)) continue;
    const removed = removeCondition(list, type);
    if (removed.changed) list = removed.conditions;
  }

  list = setCondition(
    list,
    { type: "FallbackActive", ...fallbackActive(result, delivery), observedGeneration: generation },
    now,
  ).conditions;

  const xds = delivery.xds ?? { connected: 0, acked: 0 };
  const live = result.configHash ? delivery.live : undefined;
  const backends = live
    ? result.backends.map((b, i) => (live.healthy[i] === undefined ? b : { ...b, healthy: live.healthy[i] }))
    : result.backends;
  return {
    observedGeneration: generation ?? null,
    conditions: list,
    backends: plain(backends),
    activeBackend: live?.activeBackend ?? null,
    fallbackCount: result.fallbackCount,
    configRef: configHash ? { ...delivery.configMap, hash: configHash } : null,
    proxies: delivery.xdsServer && result.configHash ? { connected: xds.connected, acked: xds.acked } : null,
  };
}

type Outcome = Pick<ConditionResult, "status" | "reason" | "message">;

/** FallbackActive: what the Envoys' stats say of the traffic; Unknown (NoReports) where they say nothing. */
function fallbackActive(result: PolicyResult, delivery: Delivery): Outcome {
  if (!result.configHash)
    return { status: "Unknown", reason: "NoReports", message: "The policy is not programmed, so no Envoy serves it." };
  if (!delivery.xdsServer)
    return {
      status: "Unknown",
      reason: "NoReports",
      message: "Envoys report their stats to the operator only when it serves them over xDS.",
    };
  return (
    delivery.live?.condition ?? {
      status: "Unknown",
      reason: "NoReports",
      message: "No Envoy reports this policy's backends yet.",
    }
  );
}

/** FallbackActive of a status, with who serves and the primary's name: for Events on traffic moving. */
export function fallbackActiveOf(
  status: unknown,
): (Condition & { activeBackend?: string; primary?: string }) | undefined {
  const s = status as CurrentStatus | undefined;
  const condition = s?.conditions?.find((c) => c.type === "FallbackActive");
  if (!condition) return undefined;
  return {
    ...condition,
    ...(s?.activeBackend ? { activeBackend: s.activeBackend } : {}),
    ...(s?.backends?.[0] ? { primary: s.backends[0].name } : {}),
  };
}

/** Programmed as the Envoys served over xDS have it: every connected one runs the policy's current resources. */
function programmedOverXds(state: PolicyState | undefined): Outcome {
  const { connected, acked, rejected } = state ?? { connected: 0, acked: 0 };
  if (rejected) {
    return {
      status: "False",
      reason: "Rejected",
      message: `Envoy ${rejected.node} rejected ${rejected.resource}: ${rejected.message.trim()}`,
    };
  }
  if (connected === 0) {
    return {
      status: "True",
      reason: "Programmed",
      message: "No Envoy is connected to the operator; each that connects gets this policy's config.",
    };
  }
  if (acked < connected) {
    return {
      status: "False",
      reason: "NotAcknowledged",
      message: `${acked} of ${connected} connected Envoys run this policy's current config.`,
    };
  }
  return {
    status: "True",
    reason: "Programmed",
    message: `Every connected Envoy (${connected}) runs this policy's current config.`,
  };
}

/** The conditions with Programmed as given, and Ready worked out again from the other three; the rest as they were. */
function withProgrammed(conditions: ConditionResult[], programmed: Outcome): ConditionResult[] {
  const updated = conditions.map((c) => (c.type === "Programmed" ? { ...c, ...programmed } : c));
  const ready = readyFrom(updated.filter((c) => READY_INPUTS.includes(c.type)));
  return updated.map((c) => (c.type === "Ready" ? ready : c));
}

/** The Ready condition of a status, for events about transitions. */
export const readyOf = (status: unknown) =>
  ((status as CurrentStatus | undefined)?.conditions ?? []).find((c) => c.type === "Ready");

// Drops undefined fields, which the API server never returns, so comparisons hold.
const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value));
