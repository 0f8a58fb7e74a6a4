// What traffic is doing, per policy and backend, on the operator's /metrics: from the
// stats the Envoys push (see live.ts). Status carries states and transitions; the counters
// and gauges that move with every request live here.
import { Counter, Gauge, type Registry } from "prom-client";
import type { ClusterStats, ClusterView } from "../xds/stats.ts";
import type { LiveBackend, LiveView } from "./live.ts";

/** The live-state metrics by name, with their labels: the chart's dashboard queries only these. */
export const LIVE_METRICS = {
  fallback_backend_requests_total: ["namespace", "policy", "backend"],
  fallback_active_backend: ["namespace", "policy", "backend"],
  fallback_failovers_total: ["namespace", "policy"],
  fallback_backend_healthy_endpoints: ["namespace", "policy", "backend"],
  fallback_backend_ejected_endpoints: ["namespace", "policy", "backend"],
} as const;

type BackendLabel = "namespace" | "policy" | "backend";

/** One programmed policy as the metrics read it. */
export type LiveReading = {
  /** namespace/name */
  key: string;
  backends: LiveBackend[];
  /** The view its status shows. */
  adopted: LiveView | undefined;
  /** By backend: what the Envoys report of its cluster now. */
  observed: (ClusterView | undefined)[];
  stats: ClusterStats;
};

/**
 * The metrics are worked out when scraped, from the readings: at 10,000 policies that is
 * 40,000 series, and setting them on every report would cost more than reading the reports.
 */
export class LiveMetrics {
  /** Counted where the FailedOver Events are made. */
  readonly failovers: Counter<"namespace" | "policy">;

  constructor(registry: Registry, readings: () => Iterable<LiveReading>) {
    const registers = [registry];
    const backendLabels = [...LIVE_METRICS.fallback_backend_requests_total];
    const each = (
      visit: (labels: Record<BackendLabel, string>, backend: LiveBackend, i: number, r: LiveReading) => void,
    ) => {
      for (const r of readings()) {
        const [namespace, policy] = splitKey(r.key);
        r.backends.forEach((b, i) => visit({ namespace, policy, backend: b.name }, b, i, r));
      }
    };
    new Counter({
      name: "fallback_backend_requests_total",
      help: "Requests the Envoys sent to a policy's backend (upstream_rq_total of its member cluster, summed over the reporting Envoys).",
      labelNames: backendLabels,
      registers,
      collect() {
        each((labels, b, _i, r) => {
          if (!b.cluster) return;
          const n = r.stats.takeRequests(b.cluster);
          if (n > 0 || r.observed[_i]) this.inc(labels, n);
        });
      },
    });
    new Gauge({
      name: "fallback_active_backend",
      help: "1 for the backend that serves a policy's new requests now (status.activeBackend), 0 for the others.",
      labelNames: backendLabels,
      registers,
      collect() {
        this.reset();
        each(
          (labels, b, _i, r) =>
            r.adopted?.activeBackend !== undefined && this.set(labels, r.adopted.activeBackend === b.name ? 1 : 0),
        );
      },
    });
    this.failovers = new Counter({
      name: "fallback_failovers_total",
      help: "Times a policy's traffic moved to a fallback (its FailedOver Events).",
      labelNames: [...LIVE_METRICS.fallback_failovers_total],
      registers,
    });
    new Gauge({
      name: "fallback_backend_healthy_endpoints",
      help: "Healthy endpoints of a policy's backend, as the Envoy that sees most of them reports.",
      labelNames: backendLabels,
      registers,
      collect() {
        this.reset();
        each((labels, _b, i, r) => r.observed[i] && this.set(labels, r.observed[i].healthy));
      },
    });
    new Gauge({
      name: "fallback_backend_ejected_endpoints",
      help: "Endpoints of a policy's backend ejected by outlier detection, as the Envoy that ejects most reports.",
      labelNames: backendLabels,
      registers,
      collect() {
        this.reset();
        each((labels, _b, i, r) => r.observed[i] && this.set(labels, r.observed[i].ejected));
      },
    });
  }
}

const splitKey = (key: string): [string, string] => {
  const slash = key.indexOf("/");
  return [key.slice(0, slash), key.slice(slash + 1)];
};
