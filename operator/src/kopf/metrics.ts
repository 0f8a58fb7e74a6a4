// Prometheus metrics under controller-runtime's names, so dashboards and alerts written
// for Go operators work unchanged.
//
// Each Operator has its own prom-client Registry rather than the global one: two
// operators in one process (as in the leader-election tests) must not collide.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import type { QueueMetrics } from "./workqueue.ts";

export type ReconcileResult = "success" | "error" | "requeue" | "requeue_after";

export class Metrics implements QueueMetrics {
  readonly registry: Registry;
  readonly reconcileTotal: Counter<"controller" | "result">;
  readonly reconcileErrors: Counter<"controller">;
  readonly reconcileTime: Histogram<"controller">;
  readonly queueDepth: Gauge<"name">;
  readonly queueAdds: Counter<"name">;
  readonly queueRetries: Counter<"name">;
  /** client-go's leader-election gauge: 1 while this process holds the lease. */
  readonly leader: Gauge<"name">;
  readonly informerSynced: Gauge<"resource">;
  private readonly texts: (() => string)[] = [];

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const registers = [(this.registry = new Registry())];
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });

    this.reconcileTotal = new Counter({
      name: "controller_runtime_reconcile_total",
      help: "Total number of reconciliations per controller",
      labelNames: ["controller", "result"],
      registers,
    });
    this.reconcileErrors = new Counter({
      name: "controller_runtime_reconcile_errors_total",
      help: "Total number of reconciliation errors per controller",
      labelNames: ["controller"],
      registers,
    });
    this.reconcileTime = new Histogram({
      name: "controller_runtime_reconcile_time_seconds",
      help: "Length of time per reconciliation per controller",
      labelNames: ["controller"],
      // controller-runtime's buckets: 5 ms to 60 s.
      buckets: [
        0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.25, 1.5,
        1.75, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
      ],
      registers,
    });
    this.queueDepth = new Gauge({
      name: "workqueue_depth",
      help: "Current depth of workqueue",
      labelNames: ["name"],
      registers,
    });
    this.queueAdds = new Counter({
      name: "workqueue_adds_total",
      help: "Total number of adds handled by workqueue",
      labelNames: ["name"],
      registers,
    });
    this.queueRetries = new Counter({
      name: "workqueue_retries_total",
      help: "Total number of retries handled by workqueue",
      labelNames: ["name"],
      registers,
    });
    this.leader = new Gauge({
      name: "leader_election_master_status",
      help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master.",
      labelNames: ["name"],
      registers,
    });
    this.informerSynced = new Gauge({
      name: "kopf_informer_synced",
      help: "1 once the informer for a resource has listed it and is watching",
      labelNames: ["resource"],
      registers,
    });
  }

  /**
   * Adds families written as exposition text by the caller, after the registry's. For a
   * family of many thousand series, where the registry's per-series label objects and
   * formatting would cost seconds a scrape; the caller writes HELP, TYPE and every line.
   */
  addText(render: () => string): void {
    this.texts.push(render);
  }

  /** The exposition of everything: the registry's families, then the ones added as text. */
  async exposition(): Promise<string> {
    const registered = await this.registry.metrics();
    return this.texts.length ? registered + this.texts.map((render) => render()).join("") : registered;
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  // QueueMetrics, for WorkQueue.
  depth(name: string, value: number): void {
    this.queueDepth.set({ name }, value);
  }
  add(name: string): void {
    this.queueAdds.inc({ name });
  }
  retry(name: string): void {
    this.queueRetries.inc({ name });
  }

  /** Records one reconcile's outcome and duration. */
  observeReconcile(controller: string, result: ReconcileResult, seconds: number): void {
    this.reconcileTotal.inc({ controller, result });
    if (result === "error") this.reconcileErrors.inc({ controller });
    this.reconcileTime.observe({ controller }, seconds);
  }
}
