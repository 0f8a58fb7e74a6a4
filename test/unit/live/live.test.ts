// The live view: who serves a policy, from what the Envoys report of its member clusters.
import { describe, expect, it } from "vitest";
import {
  DAMPING_MS,
  LiveStates,
  liveView,
  loadShares,
  type LiveBackend,
} from "../../../operator/src/controller/live.ts";

const backends: LiveBackend[] = [
  { name: "products", kind: "Service", cluster: "shop/p/primary", drained: false },
  { name: "products-cache", kind: "Service", cluster: "shop/p/fallback-1", drained: false },
  { name: "static", kind: "StaticResponse", drained: false },
];
const seen = (healthy: number, total: number, ejected = 0) => ({ healthy, total, ejected, reporters: 1 });

describe("loadShares (Envoy's priority load with overprovisioning 1.4)", () => {
  it("gives everything to a healthy primary", () => expect(loadShares([100, 100])).toEqual([100, 0]));
  it("spills what a partly healthy primary cannot take", () => expect(loadShares([70, 100])).toEqual([70, 30]));
  it("spreads in proportion when the members' health sums under 100", () =>
    expect(loadShares([28, 28])).toEqual([50, 50]));
  it("gives nothing when no member is healthy", () => expect(loadShares([0, 0])).toEqual([0, 0]));
});

describe("liveView", () => {
  it("says NoReports while no Envoy reports the policy's clusters", () => {
    const view = liveView(backends, [undefined, undefined, undefined]);
    expect(view.condition).toMatchObject({ status: "Unknown", reason: "NoReports" });
    expect(view.activeBackend).toBeUndefined();
  });

  it("says AllBackendsDown when an Envoy running the policy reports none of its clusters: none ever had a host", () => {
    const view = liveView(backends, [undefined, undefined, undefined], true);
    expect(view).toMatchObject({
      activeBackend: "static",
      condition: { status: "True", reason: "AllBackendsDown" },
      healthy: [0, 0, undefined],
    });
  });

  it("has the primary serving while it has healthy hosts", () => {
    const view = liveView(backends, [seen(3, 3), seen(1, 1), undefined]);
    expect(view).toMatchObject({
      activeBackend: "products",
      condition: { status: "False", reason: "PrimaryServing" },
      healthy: [3, 1, undefined],
    });
  });

  it("keeps the primary active while most requests still go to it, and says what spills", () => {
    const view = liveView(backends, [seen(1, 2), seen(1, 1), undefined]);
    expect(view.activeBackend).toBe("products");
    expect(view.condition.message).toContain("products 70%, products-cache 30%");
  });

  it("takes a member's hosts from the operator where Envoy reports only the healthy ones (EndpointSlices)", () => {
    const known = backends.map((b) => (b.cluster ? { ...b, hosts: 2 } : b));
    const view = liveView(known, [seen(1, 0), seen(2, 0), undefined]);
    expect(view.activeBackend).toBe("products");
    expect(view.condition.message).toContain("products 70%, products-cache 30%");
    // Envoy's own count, where it sends one (a member it resolves by DNS), comes first.
    expect(liveView(known, [seen(1, 1), seen(2, 0), undefined]).condition.reason).toBe("PrimaryServing");
  });

  it("moves to the fallback when the primary's hosts are all ejected", () => {
    const view = liveView(backends, [seen(0, 3, 3), seen(1, 1), undefined]);
    expect(view).toMatchObject({
      activeBackend: "products-cache",
      condition: { status: "True", reason: "PrimaryUnavailable" },
    });
  });

  it("says PrimaryDrained when the primary is drained", () => {
    const drained = backends.map((b, i) => (i === 0 ? { ...b, drained: true } : b));
    expect(liveView(drained, [seen(0, 3), seen(1, 1), undefined]).condition.reason).toBe("PrimaryDrained");
  });

  it("serves the static answer when no backend has a healthy host", () => {
    const view = liveView(backends, [seen(0, 3), seen(0, 1), undefined]);
    expect(view).toMatchObject({ activeBackend: "static", condition: { status: "True", reason: "AllBackendsDown" } });
  });

  it("has no active backend when everything is down and there is no static answer", () => {
    const view = liveView(backends.slice(0, 2), [seen(0, 3), seen(0, 0)]);
    expect(view.activeBackend).toBeUndefined();
    expect(view.condition.reason).toBe("AllBackendsDown");
  });

  it("counts a cluster no Envoy reports as having no healthy host once another is reported", () => {
    expect(liveView(backends, [undefined, seen(1, 1), undefined]).activeBackend).toBe("products-cache");
  });
});

describe("LiveStates", () => {
  const up = liveView(backends, [seen(3, 3), seen(1, 1), undefined]);
  const down = liveView(backends, [seen(0, 3, 3), seen(1, 1), undefined]);

  it("adopts the first view, then nothing while it stays the same", () => {
    const states = new LiveStates();
    expect(states.offer("shop/p", up, 0)).toBe("adopted");
    expect(states.offer("shop/p", up, 1)).toBe("same");
  });

  it("adopts at most one new view per damping interval, the first reports not counting", () => {
    const states = new LiveStates();
    states.offer("shop/p", up, 0);
    expect(states.offer("shop/p", down, 1_000)).toBe("adopted");
    expect(states.offer("shop/p", up, 2_000)).toBe("later");
    expect(states.get("shop/p")!.view).toBe(down);
    expect(states.offer("shop/p", up, 1_000 + DAMPING_MS)).toBe("adopted");
  });
});
