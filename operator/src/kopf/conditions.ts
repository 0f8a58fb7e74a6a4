// Helpers for metav1.Condition lists (status.conditions), pure functions over plain data.
//
// The rule from the Kubernetes API conventions: lastTransitionTime is the time `status`
// last changed, not the time the condition was last written. So setting a condition
// whose status is unchanged keeps the old timestamp, and setting one that is identical
// in every field reports `changed: false`, which lets callers skip the API write.

export type ConditionStatus = "True" | "False" | "Unknown";

/** metav1.Condition, as it appears in JSON. */
export interface Condition {
  type: string;
  status: ConditionStatus;
  observedGeneration?: number;
  /** RFC 3339, second precision (metav1.Time). */
  lastTransitionTime: string;
  reason: string;
  message: string;
}

/** What a caller states; the transition time is worked out. */
export interface ConditionInput {
  type: string;
  status: ConditionStatus;
  reason: string;
  message?: string;
  observedGeneration?: number;
}

/** metav1.Time has second precision; a millisecond suffix would make every write differ. */
export function formatTime(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/**
 * Returns the list with `input` set (a new array; the argument is not modified) and
 * whether anything differs from before. Other conditions keep their order.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  input: ConditionInput,
  now: Date = new Date(),
): { conditions: Condition[]; changed: boolean } {
  const list = [...(conditions ?? [])];
  const index = list.findIndex((c) => c.type === input.type);
  const previous = index >= 0 ? list[index] : undefined;

  const next: Condition = {
    type: input.type,
    status: input.status,
    ...(input.observedGeneration !== undefined ? { observedGeneration: input.observedGeneration } : {}),
    lastTransitionTime: previous && previous.status === input.status ? previous.lastTransitionTime : formatTime(now),
    reason: input.reason,
    message: input.message ?? "",
  };

  const changed =
    !previous ||
    previous.status !== next.status ||
    previous.reason !== next.reason ||
    previous.message !== next.message ||
    previous.observedGeneration !== next.observedGeneration ||
    previous.lastTransitionTime !== next.lastTransitionTime;

  if (index >= 0) list[index] = next;
  else list.push(next);
  return { conditions: changed ? list : [...(conditions ?? [])], changed };
}

/** Returns the list without the condition of `type`, and whether one was there. */
export function removeCondition(
  conditions: readonly Condition[] | undefined,
  type: string,
): { conditions: Condition[]; changed: boolean } {
  const list = (conditions ?? []).filter((c) => c.type !== type);
  return { conditions: list, changed: list.length !== (conditions?.length ?? 0) };
}
