import { describe, expect, it } from "vitest";
import { Backoff, KeyedBackoff, backoffDelay, sleep } from "../../../operator/src/kopf/backoff.ts";

describe("backoffDelay", () => {
  it("doubles from the base and stops at the cap", () => {
    const opts = { baseMs: 100, maxMs: 1000, jitter: 0 };
    expect([0, 1, 2, 3, 4, 5].map((n) => backoffDelay(n, opts))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it("jitters within ±jitter and never beyond the cap", () => {
    for (const r of [0, 0.25, 0.5, 0.999]) {
      const d = backoffDelay(2, { baseMs: 100, maxMs: 350, jitter: 0.5, random: () => r });
      expect(d).toBeGreaterThanOrEqual(175);
      expect(d).toBeLessThanOrEqual(350);
    }
    expect(backoffDelay(0, { baseMs: 100, jitter: 0.2, random: () => 0 })).toBe(80);
    expect(backoffDelay(0, { baseMs: 100, jitter: 0.2, random: () => 0.5 })).toBe(100);
  });

  it("survives huge attempt numbers", () => {
    expect(backoffDelay(10_000, { baseMs: 1, maxMs: 5000, jitter: 0 })).toBe(5000);
  });
});

describe("Backoff", () => {
  it("grows and resets", () => {
    const b = new Backoff({ baseMs: 10, jitter: 0 });
    expect([b.next(), b.next(), b.next()]).toEqual([10, 20, 40]);
    b.reset();
    expect(b.next()).toBe(10);
  });
});

describe("KeyedBackoff", () => {
  it("backs off each key on its own and forgets", () => {
    const k = new KeyedBackoff({ baseMs: 5 });
    expect([k.when("a"), k.when("a"), k.when("a")]).toEqual([5, 10, 20]);
    expect(k.when("b")).toBe(5);
    expect(k.retries("a")).toBe(3);
    k.forget("a");
    expect(k.retries("a")).toBe(0);
    expect(k.when("a")).toBe(5);
  });
});

describe("sleep", () => {
  it("ends early when aborted", async () => {
    const ac = new AbortController();
    const start = Date.now();
    setTimeout(() => ac.abort(), 10);
    await sleep(10_000, ac.signal);
    expect(Date.now() - start).toBeLessThan(1000);
  });
});
