import { describe, expect, it } from "vitest";
import {
  findCondition,
  formatTime,
  isConditionTrue,
  removeCondition,
  setCondition,
} from "../../../operator/src/kopf/conditions.ts";

const t1 = new Date("2025-01-01T00:00:00.123Z");
const t2 = new Date("2025-01-01T01:00:00.456Z");

describe("setCondition", () => {
  it("adds a new condition stamped now, at second precision", () => {
    const { conditions, changed } = setCondition(undefined, { type: "Ready", status: "True", reason: "Ok" }, t1);
    expect(changed).toBe(true);
    expect(conditions).toEqual([
      { type: "Ready", status: "True", lastTransitionTime: "2025-01-01T00:00:00Z", reason: "Ok", message: "" },
    ]);
  });

  it("keeps lastTransitionTime when only reason/message/generation change", () => {
    const first = setCondition([], { type: "Ready", status: "False", reason: "A", observedGeneration: 1 }, t1);
    const second = setCondition(
      first.conditions,
      {
        type: "Ready",
        status: "False",
        reason: "B",
        message: "m",
        observedGeneration: 2,
      },
      t2,
    );
    expect(second.changed).toBe(true);
    expect(second.conditions[0]).toMatchObject({ reason: "B", message: "m", observedGeneration: 2 });
    expect(second.conditions[0]?.lastTransitionTime).toBe(formatTime(t1));
  });

  it("moves lastTransitionTime when status changes", () => {
    const first = setCondition([], { type: "Ready", status: "False", reason: "A" }, t1);
    const second = setCondition(first.conditions, { type: "Ready", status: "True", reason: "A" }, t2);
    expect(second.changed).toBe(true);
    expect(second.conditions[0]?.lastTransitionTime).toBe("2025-01-01T01:00:00Z");
  });

  it("is idempotent: the same input twice reports no change", () => {
    const input = { type: "Ready", status: "True" as const, reason: "Ok", message: "fine", observedGeneration: 3 };
    const first = setCondition([], input, t1);
    const second = setCondition(first.conditions, input, t2);
    expect(second.changed).toBe(false);
    expect(second.conditions).toEqual(first.conditions);
  });

  it("leaves other conditions and the argument untouched", () => {
    const start = setCondition([], { type: "A", status: "True", reason: "x" }, t1).conditions;
    const withB = setCondition(start, { type: "B", status: "False", reason: "y" }, t1).conditions;
    const updatedA = setCondition(withB, { type: "A", status: "False", reason: "z" }, t2);
    expect(updatedA.conditions.map((c) => c.type)).toEqual(["A", "B"]);
    expect(withB[0]?.status).toBe("True");
    expect(isConditionTrue(updatedA.conditions, "A")).toBe(false);
    expect(findCondition(updatedA.conditions, "B")?.reason).toBe("y");
  });
});

describe("removeCondition", () => {
  it("removes by type and reports whether it was there", () => {
    const list = setCondition([], { type: "A", status: "True", reason: "x" }, t1).conditions;
    expect(removeCondition(list, "A")).toEqual({ conditions: [], changed: true });
    expect(removeCondition(list, "B").changed).toBe(false);
  });
});
