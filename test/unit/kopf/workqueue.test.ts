import { describe, expect, it } from "vitest";
import { KeyedBackoff } from "../../../operator/src/kopf/backoff.ts";
import { WorkQueue } from "../../../operator/src/kopf/workqueue.ts";

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe("WorkQueue", () => {
  it("deduplicates keys that are waiting", async () => {
    const seen: string[] = [];
    const gate = deferred();
    const q = new WorkQueue<string>({
      name: "t",
      process: async (k) => {
        if (k === "block") await gate.promise;
        seen.push(k);
      },
    });
    q.add("block"); // occupies the single worker
    q.add("a");
    q.add("a");
    q.add("b");
    q.add("a");
    expect(q.length).toBe(2);
    gate.resolve();
    await q.whenIdle();
    expect(seen).toEqual(["block", "a", "b"]);
  });

  it("never processes one key twice at once, but reruns it if added while in flight", async () => {
    let running = 0;
    let maxRunning = 0;
    let runs = 0;
    const gate = deferred();
    const q = new WorkQueue<string>({
      name: "t",
      concurrency: 4,
      process: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        runs++;
        if (runs === 1) await gate.promise;
        running--;
      },
    });
    q.add("k");
    await tick();
    q.add("k"); // while in flight: marked dirty
    q.add("k"); // deduplicated with the dirty mark
    await tick();
    expect(q.active).toBe(1);
    gate.resolve();
    await q.whenIdle();
    expect(maxRunning).toBe(1);
    expect(runs).toBe(2);
  });

  it("respects the concurrency limit across keys", async () => {
    let running = 0;
    let maxRunning = 0;
    const q = new WorkQueue<number>({
      name: "t",
      concurrency: 3,
      process: async () => {
        running++;
        maxRunning = Math.max(maxRunning, running);
        await tick(5);
        running--;
      },
    });
    for (let i = 0; i < 20; i++) q.add(i);
    await q.whenIdle();
    expect(maxRunning).toBe(3);
  });

  it("retries a failing key with growing per-key delays, and forget resets them", async () => {
    const times: number[] = [];
    const errors: unknown[] = [];
    const q = new WorkQueue<string>({
      name: "t",
      rateLimiter: new KeyedBackoff({ baseMs: 20 }),
      onError: (_k, e) => errors.push(e),
      process: async (k) => {
        times.push(Date.now());
        if (times.length < 4) throw new Error("boom");
        q.forget(k);
      },
    });
    q.add("k");
    while (times.length < 4) await tick(5);
    await q.whenIdle();
    expect(errors).toHaveLength(3);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    // 20, 40, 80 ms (timers may fire a little late, never early)
    expect(gaps[0]).toBeGreaterThanOrEqual(18);
    expect(gaps[1]).toBeGreaterThanOrEqual(38);
    expect(gaps[2]).toBeGreaterThanOrEqual(78);
    expect(q.numRequeues("k")).toBe(0);
  });

  it("addAfter keeps the earliest due time", async () => {
    const seen: number[] = [];
    const start = Date.now();
    const q = new WorkQueue<string>({ name: "t", process: async () => void seen.push(Date.now() - start) });
    q.addAfter("k", 200);
    q.addAfter("k", 20);
    q.addAfter("k", 500);
    await tick(300);
    expect(seen).toHaveLength(1);
    expect(seen[0]).toBeLessThan(200);
  });

  it("counts adds, retries and depth through its metrics", async () => {
    const calls: string[] = [];
    const q = new WorkQueue<string>({
      name: "m",
      rateLimiter: new KeyedBackoff({ baseMs: 1 }),
      metrics: {
        add: (n) => calls.push(`add:${n}`),
        retry: (n) => calls.push(`retry:${n}`),
        depth: (n, v) => calls.push(`depth:${n}=${v}`),
      },
      process: async () => {
        if (!calls.includes("retry:m")) throw new Error("once");
      },
    });
    q.add("k");
    await tick(30);
    await q.whenIdle();
    expect(calls.filter((c) => c === "add:m")).toHaveLength(2);
    expect(calls.filter((c) => c === "retry:m")).toHaveLength(1);
    expect(calls).toContain("depth:m=1");
    expect(calls.at(-1)).toBe("depth:m=0");
  });

  it("drains on shutdown: finishes in-flight and queued keys, then refuses new ones", async () => {
    const seen: string[] = [];
    const q = new WorkQueue<string>({
      name: "t",
      process: async (k) => {
        await tick(10);
        seen.push(k);
      },
    });
    q.add("a");
    q.add("b");
    q.addAfter("later", 50);
    await tick();
    await q.shutdown();
    q.add("c");
    await tick(80);
    expect(seen).toEqual(["a", "b"]);
  });

  it("without drain, shutdown waits only for in-flight keys", async () => {
    const seen: string[] = [];
    const q = new WorkQueue<string>({
      name: "t",
      process: async (k) => {
        await tick(10);
        seen.push(k);
      },
    });
    q.add("a");
    q.add("b");
    await tick();
    await q.shutdown({ drain: false });
    expect(seen).toEqual(["a"]);
    expect(q.length).toBe(0);
  });
});
