// The Operator: the one object an author creates. It holds the watches and the handlers
// and, on start, wires the machinery together:
//
//   informers (one per watched resource; every replica) ─► their caches (Stores) ─►
//   handlers over them (debounced; most run only while leading); leader election
//   switches handlers on and off; an HTTP server answers /metrics, /healthz and /readyz.
//
// Shutdown (stop(), or SIGTERM/SIGINT under run()) goes in the order that keeps the
// "one writer at a time" promise: stop the watches, let a running handler finish,
// release the Lease (only now may a standby start writing), close the HTTP server.

import { KubeConfig } from "./kube.ts";
import { hostname } from "node:os";
import type { BackoffOptions } from "./backoff.ts";
import { KubeClient, resourceName, type KubeObject } from "./client.ts";
import { describe } from "./errors.ts";
import { EventRecorder } from "./events.ts";
import { Handler, type HandlerOptions } from "./handler.ts";
import { Informer } from "./informer.ts";
import { LeaderElector, type LeaderElectionOptions } from "./leader.ts";
import { createLogger, type Logger } from "./log.ts";
import { Metrics } from "./metrics.ts";
import { ProbeServer, type Check } from "./probes.ts";
import { resourceId, watchedResource, type ResourceSpec } from "./resource.ts";
import type { Store } from "./store.ts";

export interface OperatorOptions {
  /** Controller name: field manager, Event reportingController, default lease name. */
  name: string;
  /** Prefix of the Events' reportingController: "<domain>/<name>". Default "kopf.dev". */
  domain?: string;
  /** Default: KubeConfig.loadFromDefault() (in-cluster, $KUBECONFIG, ~/.kube/config). */
  kubeConfig?: KubeConfig;
  logger?: Logger;
  /** Used when no logger is given. Default $LOG_LEVEL or info. */
  logLevel?: string;
  /** Off by default; the leaseName defaults to `name`. */
  leaderElection?: (Omit<LeaderElectionOptions, "leaseName"> & { leaseName?: string }) | false;
  /** Serve /metrics, /healthz, /readyz. Off by default; port 0 picks a free one. */
  http?: { port: number; host?: string } | false;
  informer?: { resyncPeriodMs?: number; inactivityTimeoutMs?: number; backoff?: BackoffOptions };
  /** Retry after a handler error. Default 500 ms doubling to 5 min. */
  retryBackoff?: BackoffOptions;
  /** Collect Node.js process metrics too. Default true. */
  defaultMetrics?: boolean;
}

export class Operator {
  readonly name: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly client: KubeClient;
  readonly events: EventRecorder;
  private readonly options: OperatorOptions;
  private readonly informers = new Map<string, Informer>();
  private readonly handlers: Handler[] = [];
  private elector: LeaderElector | undefined;
  private http: ProbeServer | undefined;
  private state: "new" | "running" | "stopping" | "stopped" = "new";
  private stopped: Promise<void> | undefined;
  private leading = false;
  private readonly done = Promise.withResolvers<void>();

  constructor(options: OperatorOptions) {
    this.options = options;
    this.name = options.name;
    this.logger = options.logger ?? createLogger({ level: options.logLevel, name: options.name });
    this.metrics = new Metrics({ defaultMetrics: options.defaultMetrics });
    const kubeConfig = options.kubeConfig ?? defaultKubeConfig();
    this.client = new KubeClient(kubeConfig);
    const identity = options.leaderElection ? options.leaderElection.identity : undefined;
    this.events = new EventRecorder(this.client, {
      reportingController: `${this.domain}/${options.name}`,
      reportingInstance: identity ?? process.env["POD_NAME"] ?? hostname(),
      logger: this.logger,
    });
  }

  private get domain(): string {
    return this.options.domain ?? "kopf.dev";
  }

  /** Watches and caches every object of `resource` (from start() on): the cache handlers read. */
  watch<T extends KubeObject = KubeObject>(resource: ResourceSpec): Store<T> {
    return this.informerFor(resource).store as unknown as Store<T>;
  }

  /**
   * Declares a handler over whole caches: `fn` runs (debounced) after changes to the
   * watched resources, once all of their caches have been filled, and whenever the
   * returned handler's run() asks. See handler.ts.
   */
  handler(name: string, fn: () => unknown | Promise<unknown>, options: HandlerOptions = {}): Handler {
    if (this.state !== "new") throw new Error("handlers must be declared before start()");
    const informers = (options.watches ?? []).map((w) => ({
      informer: this.informerFor(watchedResource(w)),
      ...("when" in w ? { when: w.when } : {}),
    }));
    const retryBackoff = this.options.retryBackoff ?? { baseMs: 500, maxMs: 5 * 60_000, jitter: 0.1 };
    const handler = new Handler(name, fn, informers, options, {
      metrics: this.metrics,
      logger: this.logger,
      retryBackoff,
    });
    this.handlers.push(handler);
    return handler;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The HTTP server's port, once started. */
  get httpPort(): number | undefined {
    return this.http?.port;
  }

  /** Ready: caches synced, and leading or a standby in touch with the Lease. */
  readiness(): Check {
    const reasons: string[] = [];
    if (this.state !== "running") reasons.push(`operator is ${this.state}`);
    for (const informer of this.informers.values()) {
      if (!informer.hasSynced) reasons.push(`informer for ${resourceName(informer.resource)} not synced`);
    }
    if (this.elector && !this.leading && !this.elector.healthy) reasons.push("cannot reach the leader-election lease");
    return { ok: reasons.length === 0, reasons };
  }

  liveness(): Check {
    return this.state === "stopped" ? { ok: false, reasons: ["stopped"] } : { ok: true };
  }

  /** Resolves when every informer has listed its resource once. */
  async whenSynced(): Promise<void> {
    await Promise.all([...this.informers.values()].map((i) => i.whenSynced()));
  }

  /** Starts everything and returns; handlers run once synced (and leading). */
  async start(): Promise<void> {
    if (this.state !== "new") throw new Error(`operator already ${this.state}`);
    const o = this.options;
    for (const h of this.handlers) h.setLeading(false);
    this.state = "running";
    if (o.http) {
      this.http = new ProbeServer({
        ...o.http,
        metrics: this.metrics,
        healthz: () => this.liveness(),
        readyz: () => this.readiness(),
        logger: this.logger,
      });
      await this.http.start();
    }

    for (const informer of this.informers.values()) {
      const label = { resource: resourceName(informer.resource) };
      this.metrics.informerSynced.set(label, 0);
      informer.start();
      void informer.whenSynced().then(() => this.metrics.informerSynced.set(label, informer.hasSynced ? 1 : 0));
    }

    if (o.leaderElection) {
      const le = o.leaderElection;
      this.metrics.leader.set({ name: le.leaseName ?? this.name }, 0);
      this.elector = new LeaderElector(
        this.client,
        { ...le, leaseName: le.leaseName ?? this.name },
        {
          onStartedLeading: () => this.setLeading(true),
          onStoppedLeading: () => this.setLeading(false),
          onNewLeader: (holder) => this.logger.info({ leader: holder ?? null }, "leader observed"),
        },
        this.logger,
      );
      this.elector.start();
    } else {
      this.setLeading(true);
    }
    this.logger.info(
      { resources: [...this.informers.keys()].length, leaderElection: Boolean(o.leaderElection) },
      "operator started",
    );
  }

  private setLeading(leading: boolean): void {
    this.leading = leading;
    if (this.options.leaderElection) {
      this.metrics.leader.set({ name: this.options.leaderElection.leaseName ?? this.name }, leading ? 1 : 0);
    }
    // Lost the lease: someone else may already be writing, so leader-only handlers start
    // nothing new (one that is running finishes its run).
    for (const h of this.handlers) h.setLeading(leading);
  }

  /** Graceful shutdown; safe to call more than once. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  /**
   * start(), then wait until stop() or SIGTERM/SIGINT has shut everything down.
   * Never rejects: failures are logged. Resolves with false when the start failed, so that
   * a process can exit non-zero and its supervisor notice.
   */
  async run(options: { signals?: boolean } = {}): Promise<boolean> {
    const onSignal = (signal: string) => {
      this.logger.info({ signal }, "shutting down");
      void this.stop();
    };
    if (options.signals ?? true) {
      process.once("SIGTERM", onSignal);
      process.once("SIGINT", onSignal);
    }
    // Sockets and timers keep Node.js alive anyway; this makes sure of it until stopped.
    const keepAlive = setInterval(() => {}, 60_000);
    try {
      await this.start();
      await this.done.promise;
      return true;
    } catch (err) {
      this.logger.error({ err: describe(err) }, "operator failed to start");
      await this.stop();
      return false;
    } finally {
      clearInterval(keepAlive);
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    }
  }

  private async shutdown(): Promise<void> {
    if (this.state === "new") {
      this.state = "stopped";
      this.done.resolve();
      return;
    }
    this.state = "stopping";
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        this.logger.warn({ err: describe(err) }, `shutdown: ${what} failed`);
      }
    };
    await step("stop watches", () => Promise.all([...this.informers.values()].map((i) => i.stop())));
    await step("stop handlers", () => Promise.all(this.handlers.map((h) => h.stop())));
    await step("release lease", async () => this.elector?.stop());
    this.leading = false;
    this.events.close();
    await step("close http", async () => this.http?.close());
    this.state = "stopped";
    this.logger.info("operator stopped");
    this.done.resolve();
  }

  private informerFor(resource: ResourceSpec): Informer {
    const id = resourceId(resource);
    let informer = this.informers.get(id);
    if (!informer) {
      if (this.state !== "new") throw new Error("resources must be registered before start()");
      informer = new Informer(this.client, resource, {
        namespace: resource.namespace,
        labelSelector: resource.labelSelector,
        fieldSelector: resource.fieldSelector,
        ...(resource.transform ? { transform: resource.transform } : {}),
        ...this.options.informer,
        logger: this.logger,
      });
      this.informers.set(id, informer);
    }
    return informer;
  }
}

function defaultKubeConfig(): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc;
}
