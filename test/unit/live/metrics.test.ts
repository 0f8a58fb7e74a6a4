// The live-state families on /metrics, written as text: the series a dashboard reads, in
// Prometheus' text format, next to the registry's own families.
import { describe, expect, it } from "vitest";
import { LiveMetrics, type LiveReading } from "../../../operator/src/controller/live-metrics.ts";
import type { LiveBackend } from "../../../operator/src/controller/live.ts";
import { Metrics } from "../../../operator/src/kopf/index.ts";
import type { ClusterStats } from "../../../operator/src/xds/stats.ts";

const backends: LiveBackend[] = [
  { name: "products", kind: "Service", cluster: "shop/p/primary", drained: false },
  { name: "products-cache", kind: "Service", cluster: "shop/p/fallback-1", drained: false },
  { name: "static", kind: "StaticResponse", drained: false },
];
const seen = (healthy: number, ejected = 0) => ({ healthy, total: 2, ejected, reporters: 1 });

/** Requests since the last take, by cluster: what ClusterStats hands the metrics. */
function requestsOf(counts: Record<string, number>) {
  return { takeRequests: (cluster: string) => counts[cluster] ?? 0 } as unknown as ClusterStats;
}

function setUp(readings: LiveReading[]) {
  const metrics = new Metrics({ defaultMetrics: false });
  const live = new LiveMetrics(metrics, () => readings);
  return { metrics, live };
}

const samples = (text: string) => text.split("\n").filter((l) => l && !l.startsWith("#"));

describe("LiveMetrics", () => {
  it("writes a series per backend with its labels, and the failover counter from the registry", async () => {
    const stats = requestsOf({ "shop/p/primary": 7 });
    const { metrics, live } = setUp([
      {
        key: "shop/p",
        backends,
        adopted: { activeBackend: "products-cache", condition: {} as never, healthy: [0, 2, undefined] },
        observed: [seen(0, 2), seen(2), undefined],
        stats,
      },
    ]);
    live.failovers.inc({ namespace: "shop", policy: "p" });
    const text = await metrics.exposition();
    expect(samples(text)).toEqual([
      'fallback_failovers_total{namespace="shop",policy="p"} 1',
      'fallback_backend_requests_total{namespace="shop",policy="p",backend="products"} 7',
      'fallback_backend_requests_total{namespace="shop",policy="p",backend="products-cache"} 0',
      'fallback_active_backend{namespace="shop",policy="p",backend="products"} 0',
      'fallback_active_backend{namespace="shop",policy="p",backend="products-cache"} 1',
      'fallback_active_backend{namespace="shop",policy="p",backend="static"} 0',
      'fallback_backend_healthy_endpoints{namespace="shop",policy="p",backend="products"} 0',
      'fallback_backend_healthy_endpoints{namespace="shop",policy="p",backend="products-cache"} 2',
      'fallback_backend_ejected_endpoints{namespace="shop",policy="p",backend="products"} 2',
      'fallback_backend_ejected_endpoints{namespace="shop",policy="p",backend="products-cache"} 0',
    ]);
    // Every family has its HELP and TYPE, once.
    for (const name of ["fallback_backend_requests_total", "fallback_active_backend"]) {
      expect(text.split("\n").filter((l) => l.startsWith(`# TYPE ${name} `))).toHaveLength(1);
      expect(text.split("\n").filter((l) => l.startsWith(`# HELP ${name} `))).toHaveLength(1);
    }
  });

  it("counts requests on from scrape to scrape, and drops a backend no policy has any more", () => {
    const counts: Record<string, number> = { "shop/p/primary": 3 };
    const readings: LiveReading[] = [
      {
        key: "shop/p",
        backends,
        adopted: undefined,
        observed: [seen(2), undefined, undefined],
        stats: requestsOf(counts),
      },
    ];
    const { live } = setUp(readings);
    const requests = (text: string) => samples(text).filter((l) => l.startsWith("fallback_backend_requests_total"));
    expect(requests(live.render())).toEqual([
      'fallback_backend_requests_total{namespace="shop",policy="p",backend="products"} 3',
    ]);
    counts["shop/p/primary"] = 4;
    expect(requests(live.render())).toEqual([
      'fallback_backend_requests_total{namespace="shop",policy="p",backend="products"} 7',
    ]);
    readings.pop();
    expect(requests(live.render())).toEqual([]);
    // No view adopted yet: no active-backend series.
    expect(samples(live.render())).toEqual([]);
  });

  it("escapes label values as the text format asks", () => {
    const odd: LiveBackend = { name: 'a"b\\c\nd', kind: "Service", cluster: "c", drained: false };
    const { live } = setUp([
      { key: "ns/p", backends: [odd], adopted: undefined, observed: [seen(1)], stats: requestsOf({}) },
    ]);
    expect(samples(live.render())[0]).toBe(
      'fallback_backend_requests_total{namespace="ns",policy="p",backend="a\\"b\\\\c\\nd"} 0',
    );
  });
});
