// ClusterStats reads Envoy's StreamMetricsMessage, encoded here with Envoy's own descriptors.
import { describe, expect, it } from "vitest";
import { ClusterStats, REPORT_AGE_OUT_MS } from "../../../operator/src/xds/stats.ts";
import { encodeMessage } from "../../../operator/src/xds/envoy-api.ts";

const GAUGE = 1;
const COUNTER = 0;

function report(
  node: string | undefined,
  stats: Record<string, number>,
  kind: Record<string, number> = {},
): Uint8Array {
  return encodeMessage("envoy.service.metrics.v3.StreamMetricsMessage", {
    ...(node ? { identifier: { node: { id: node } } } : {}),
    envoyMetrics: Object.entries(stats).map(([name, value]) => {
      const type = kind[name] ?? (name.endsWith("_total") ? COUNTER : GAUGE);
      return {
        name,
        type,
        metric: [type === COUNTER ? { counter: { value }, timestampMs: 1n } : { gauge: { value }, timestampMs: 1n }],
      };
    }),
  });
}

describe("ClusterStats", () => {
  it("names the Envoy from the first message", () => {
    expect(ClusterStats.nodeOf(report("envoy-a", {}))).toBe("envoy-a");
    expect(ClusterStats.nodeOf(report(undefined, { "server.live": 1 }))).toBeUndefined();
  });

  it("keeps the health of a policy's clusters and skips every other stat", () => {
    const stats = new ClusterStats();
    stats.ingest(
      "a",
      report("a", {
        "cluster.shop/products.v2/primary.membership_healthy": 2,
        "cluster.shop/products.v2/primary.membership_total": 3,
        "cluster.shop/products.v2/primary.outlier_detection.ejections_active": 1,
        "cluster.shop/products.v2/primary.upstream_rq_2xx": 7,
        "cluster.fallback-xds.membership_healthy": 1,
        "server.live": 1,
      }),
      0,
    );
    expect(stats.cluster("shop/products.v2/primary", 0)).toEqual({ healthy: 2, total: 3, ejected: 1, reporters: 1 });
    expect(stats.cluster("fallback-xds", 0)).toBeUndefined();
  });

  it("reads the stats of a member Envoy resolves by DNS, named <member>/dns, as the member's", () => {
    const stats = new ClusterStats();
    stats.ingest(
      "a",
      report("a", {
        "cluster.ai/chat/fallback-1/dns.membership_healthy": 1,
        "cluster.ai/chat/fallback-1/dns.membership_total": 2,
        "cluster.ai/chat/fallback-1/dns.upstream_rq_total": 4,
      }),
      0,
    );
    expect(stats.cluster("ai/chat/fallback-1", 0)).toEqual({ healthy: 1, total: 2, ejected: 0, reporters: 1 });
    expect(stats.takeRequests("ai/chat/fallback-1")).toBe(4);
  });

  it("combines Envoys: healthy if any sees healthy hosts, requests summed", () => {
    const stats = new ClusterStats();
    stats.ingest(
      "a",
      report("a", {
        "cluster.ns/p/primary.membership_healthy": 0,
        "cluster.ns/p/primary.membership_total": 2,
        "cluster.ns/p/primary.upstream_rq_total": 5,
      }),
      0,
    );
    stats.ingest(
      "b",
      report("b", {
        "cluster.ns/p/primary.membership_healthy": 2,
        "cluster.ns/p/primary.membership_total": 2,
        "cluster.ns/p/primary.upstream_rq_total": 7,
      }),
      0,
    );
    expect(stats.cluster("ns/p/primary", 0)).toEqual({ healthy: 2, total: 2, ejected: 0, reporters: 2 });
    expect(stats.takeRequests("ns/p/primary")).toBe(12);
    expect(stats.takeRequests("ns/p/primary")).toBe(0);
  });

  it("forgets an Envoy that stopped reporting", () => {
    const stats = new ClusterStats();
    stats.ingest(
      "a",
      report("a", { "cluster.ns/p/primary.membership_healthy": 1, "cluster.ns/p/primary.membership_total": 1 }),
      0,
    );
    expect(stats.reporters(REPORT_AGE_OUT_MS)).toEqual(["a"]);
    expect(stats.cluster("ns/p/primary", REPORT_AGE_OUT_MS + 1)).toBeUndefined();
    expect(stats.reporters(REPORT_AGE_OUT_MS + 1)).toEqual([]);
  });

  it("reads a report whose stats come in another order, or are new, as well as one in the order before", () => {
    const stats = new ClusterStats();
    const names = ["ns/p/primary", "ns/p/fallback", "ns/q/primary"];
    const healthy = (cluster: string) => `cluster.${cluster}.membership_healthy`;
    // Split over two messages, as Envoy batches a report: the second starts mid-report.
    stats.ingest("a", report("a", { [healthy(names[0]!)]: 1, [healthy(names[1]!)]: 2 }), 0);
    stats.ingest("a", report(undefined, { [healthy(names[2]!)]: 3 }), 0);
    // The next report: one cluster gone, one new, the others swapped and changed.
    stats.ingest(
      "a",
      report(undefined, {
        "server.live": 1,
        [healthy(names[2]!)]: 4,
        [healthy("ns/r/primary")]: 5,
        [healthy(names[0]!)]: 6,
      }),
      1,
    );
    expect(stats.cluster(names[0]!, 1)?.healthy).toBe(6);
    expect(stats.cluster(names[2]!, 1)?.healthy).toBe(4);
    expect(stats.cluster("ns/r/primary", 1)?.healthy).toBe(5);
    expect(stats.cluster(names[1]!, 1)?.healthy).toBe(2); // as last reported, until it ages out
    // And once more in the first order: each read by its own name, not by its place.
    stats.ingest(
      "a",
      report(undefined, { [healthy(names[0]!)]: 7, [healthy(names[1]!)]: 8, [healthy(names[2]!)]: 9 }),
      2,
    );
    expect(names.map((n) => stats.cluster(n, 2)?.healthy)).toEqual([7, 8, 9]);
  });

  it("refuses a report cut short, naming it unreadable", () => {
    const whole = report("a", { "cluster.ns/p/primary.membership_healthy": 1 });
    expect(() => new ClusterStats().ingest("a", whole.subarray(0, whole.length - 12), 0)).toThrow(/stats report/);
  });

  it("keeps every name apart when there are more than its first room for names holds", () => {
    // ~3,000 names of ~60 bytes: well past the 64 KB the names' arena starts with.
    const clusters = Array.from({ length: 1_500 }, (_, i) => `namespace-${i}/policy-${i}/primary`);
    const stats = new ClusterStats();
    const values = (round: number) =>
      Object.fromEntries(
        clusters.flatMap((c, i) => [
          [`cluster.${c}.membership_healthy`, (i + round) % 7],
          [`cluster.${c}.membership_total`, 7],
        ]),
      );
    for (const round of [0, 1]) stats.ingest("a", report("a", values(round)), round);
    expect(clusters.map((c) => stats.cluster(c, 1)?.healthy)).toEqual(clusters.map((_, i) => (i + 1) % 7));
    expect(stats.cluster(clusters[1_499]!, 1)).toEqual({
      healthy: (1_499 + 1) % 7,
      total: 7,
      ejected: 0,
      reporters: 1,
    });
  });

  it("refuses a report whose lengths point past its end, reading nothing from beyond it", () => {
    const whole = report(undefined, { "cluster.ns/p/primary.membership_healthy": 1 });
    // Cut inside the gauge's value: every length before it still says more than is there.
    expect(() => new ClusterStats().ingest("a", whole.subarray(0, whole.length - 4), 0)).toThrow(
      "truncated stats report",
    );
  });
});
