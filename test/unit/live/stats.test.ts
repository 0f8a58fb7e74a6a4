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
});
