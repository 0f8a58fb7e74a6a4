// What traffic is doing, per policy and backend, on the operator's /metrics: from the
// stats the Envoys push (see live.ts). Status carries states and transitions; the counters
// and gauges that move with every request live here.
import { Counter } from "prom-client";
import type { Metrics } from "../kopf/index.ts";
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

type Family = { name: keyof typeof LIVE_METRICS; type: "counter" | "gauge"; help: string };

const REQUESTS: Family = {
  name: "fallback_backend_requests_total",
  type: "counter",
  help: "Requests the Envoys sent to a policy's backend (upstream_rq_total of its member cluster, summed over the reporting Envoys).",
};
const ACTIVE: Family = {
  name: "fallback_active_backend",
  type: "gauge",
  help: "1 for the backend that serves a policy's new requests now (status.activeBackend), 0 for the others.",
};
const HEALTHY: Family = {
  name: "fallback_backend_healthy_endpoints",
  type: "gauge",
  help: "Healthy endpoints of a policy's backend, as the Envoy that sees most of them reports.",
};
const EJECTED: Family = {
  name: "fallback_backend_ejected_endpoints",
  type: "gauge",
  help: "Endpoints of a policy's backend ejected by outlier detection, as the Envoy that ejects most reports.",
};

/**
 * The per-backend families are worked out when scraped, from the readings, and written as
 * text: at 10,000 policies they are some 130,000 series, which the registry's label objects
 * and formatting took seconds to write (docs/benchmarks.md, "Why the code is so"). The
 * failover counter has a series per policy that failed over, and stays in the registry.
 */
export class LiveMetrics {
  /** Counted where the FailedOver Events are made. */
  readonly failovers: Counter<"namespace" | "policy">;
  private readonly readings: () => Iterable<LiveReading>;
  /** Each backend's label text, made once per backend object (they last as long as a compile result). */
  private readonly labelTexts = new WeakMap<LiveBackend, string>();
  /** fallback_backend_requests_total so far, by label text: the backends of the last scrape. */
  private requestTotals = new Map<string, number>();

  constructor(metrics: Metrics, readings: () => Iterable<LiveReading>) {
    this.readings = readings;
    this.failovers = new Counter({
      name: "fallback_failovers_total",
      help: "Times a policy's traffic moved to a fallback (its FailedOver Events).",
      labelNames: [...LIVE_METRICS.fallback_failovers_total],
      registers: [metrics.registry],
    });
    metrics.addText(() => this.render());
  }

  /** The four per-backend families in Prometheus' text format. */
  render(): string {
    const requests: string[] = [header(REQUESTS)];
    const active: string[] = [header(ACTIVE)];
    const healthy: string[] = [header(HEALTHY)];
    const ejected: string[] = [header(EJECTED)];
    const totals = new Map<string, number>();
    for (const r of this.readings()) {
      r.backends.forEach((backend, i) => {
        const labels = this.labelsOf(r.key, backend);
        const observed = r.observed[i];
        if (backend.cluster) {
          const total = (this.requestTotals.get(labels) ?? 0) + r.stats.takeRequests(backend.cluster);
          if (total > 0 || observed) {
            totals.set(labels, total);
            requests.push(`${REQUESTS.name}{${labels}} ${total}`);
          }
        }
        const serving = r.adopted?.activeBackend;
        if (serving !== undefined) active.push(`${ACTIVE.name}{${labels}} ${serving === backend.name ? 1 : 0}`);
        if (observed) {
          healthy.push(`${HEALTHY.name}{${labels}} ${observed.healthy}`);
          ejected.push(`${EJECTED.name}{${labels}} ${observed.ejected}`);
        }
      });
    }
    // A backend gone from every policy (the policy deleted, say) takes its counter with it.
    this.requestTotals = totals;
    return [requests, active, healthy, ejected].map((lines) => `${lines.join("\n")}\n`).join("");
  }

  private labelsOf(key: string, backend: LiveBackend): string {
    let text = this.labelTexts.get(backend);
    if (text === undefined) {
      const slash = key.indexOf("/");
      text = `namespace="${escape(key.slice(0, slash))}",policy="${escape(key.slice(slash + 1))}",backend="${escape(backend.name)}"`;
      this.labelTexts.set(backend, text);
    }
    return text;
  }
}

const header = (f: Family) => `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}`;

/** A label value as the text format writes it: backslash, double quote and line feed escaped. */
const escape = (value: string) => value.replace(/[\\"\n]/g, (c) => (c === "\n" ? "\\n" : `\\${c}`));
