// Per-policy results: the four conditions of api.md (and Stalled, while true), the resolved
// backends, and the errors. Pure data; the operator adds observedGeneration and transition
// times when it writes them.
import type { BackendStatus } from "../api/schema.ts";
import type { RefProblem } from "./resolve.ts";

export type ConditionType = "Accepted" | "ResolvedRefs" | "Programmed" | "Ready" | "Stalled";
export type ConditionResult = {
  type: ConditionType;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
};

export type PolicyResult = {
  /** namespace/name */
  key: string;
  generation?: number;
  conditions: ConditionResult[];
  backends: BackendStatus[];
  fallbackCount: number;
  /** Field errors of an invalid policy, one line each. */
  errors: string[];
  /** sha256 of this policy's part of the Envoy config; only for programmed policies. */
  configHash?: string;
  /** Hosts of the backends that send their own credential (which only the xDS server can deliver). */
  credentialed?: string[];
};

/** Why backends with their own credential are left out of files (the ConfigMap, fallbackctl render): SDS only. */
export function credentialsNeedXds(hosts: string[]): string {
  const one = hosts.length === 1;
  return `${hosts.join(", ")} ${one ? "sends its own credential, which reaches" : "send their own credentials, which reach"} Envoy only from the operator's xDS server (SDS), never in a file or the ConfigMap: ${one ? "it is" : "they are"} left out until the operator runs with --xds-addr.`;
}

type Acceptance = { accepted: true } | { accepted: false; reason: "Invalid" | "Conflicted"; message: string };

/**
 * Accepted, ResolvedRefs, Programmed and Ready, and Stalled=True after them when the policy is
 * not accepted (Invalid, Conflicted): it cannot progress until its author changes it.
 *
 * Stalled is for kstatus (what Flux waits with), which reads Reconciling and Stalled first and
 * then Ready: Ready=False alone is InProgress, also right for a policy waiting on a Service
 * that may yet appear; Stalled=True makes it Failed. Stalled follows the "abnormality-true"
 * convention of kstatus and Flux: it is there only while True (the operator removes it).
 */
export function policyConditions(
  acceptance: Acceptance,
  problems: RefProblem[],
  programmed: boolean,
): ConditionResult[] {
  const accepted: ConditionResult = acceptance.accepted
    ? { type: "Accepted", status: "True", reason: "Accepted", message: "The policy is valid and owns its target." }
    : { type: "Accepted", status: "False", reason: acceptance.reason, message: acceptance.message };
  const refs: ConditionResult = !acceptance.accepted
    ? {
        type: "ResolvedRefs",
        status: "Unknown",
        reason: "NotAccepted",
        message: "References are resolved once the policy is accepted.",
      }
    : problems.length
      ? {
          type: "ResolvedRefs",
          status: "False",
          reason: problems[0]!.reason,
          message: problems.map((p) => p.message).join("; "),
        }
      : {
          type: "ResolvedRefs",
          status: "True",
          reason: "ResolvedRefs",
          message: "Every referenced Service and port exists.",
        };
  const programmedCondition: ConditionResult = programmed
    ? {
        type: "Programmed",
        status: "True",
        reason: "Programmed",
        message: "The policy is part of the Envoy configuration.",
      }
    : {
        type: "Programmed",
        status: "False",
        reason: "NotProgrammed",
        message: notProgrammedMessage(acceptance, problems),
      };
  const conditions = [accepted, refs, programmedCondition, readyFrom([accepted, refs, programmedCondition])];
  if (!acceptance.accepted)
    conditions.push({ type: "Stalled", status: "True", reason: acceptance.reason, message: acceptance.message });
  return conditions;
}

/** The conditions Ready is worked out from. */
export const READY_INPUTS: readonly ConditionType[] = ["Accepted", "ResolvedRefs", "Programmed"];

/** Conditions that are only there while True; a result without one means it is to be removed. */
export const WHILE_TRUE: readonly ConditionType[] = ["Stalled"];

/**
 * Ready: True when Accepted, ResolvedRefs and Programmed are, else the reason and message of
 * the first that is not. Other conditions in the list (Stalled) do not count.
 */
export function readyFrom(others: ConditionResult[]): ConditionResult {
  const failing = others.find((c) => READY_INPUTS.includes(c.type) && c.status !== "True");
  return failing
    ? { type: "Ready", status: "False", reason: failing.reason, message: failing.message }
    : {
        type: "Ready",
        status: "True",
        reason: "Ready",
        message: "Traffic to the target falls back as the policy says.",
      };
}

function notProgrammedMessage(acceptance: Acceptance, problems: RefProblem[]): string {
  if (!acceptance.accepted) return "The policy is not accepted.";
  return problems.length
    ? `The target cannot be resolved: ${problems[0]!.message}.`
    : "The policy is not part of the Envoy configuration.";
}
