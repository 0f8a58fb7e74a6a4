// A handler over whole caches: for state worked out from many objects at once (a config
// made from every policy, Service and EndpointSlice, say), the unit of work is not one
// object but "the set changed". kopf calls these global handlers over its indexes;
// controller-runtime gets there by mapping every watch event to one request key.
//
//   events of the watched resources ─► debounce ─┐
//   run() / runAfter(ms) from the product ────────┴─► a one-key work queue ─► fn()
//
// The queue gives the rest: never two runs at once, a change during a run causes exactly
// one more run, a failed run is retried with backoff. A run waits until every watched
// cache has been filled once, so it never works from a partial picture (policies listed,
// Services not yet), and the first run comes when the last cache fills.

import { KeyedBackoff, type BackoffOptions } from "./backoff.ts";
import { describe } from "./errors.ts";
import type { Informer, InformerEvent } from "./informer.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import type { WatchSpec } from "./resource.ts";
import { WorkQueue } from "./workqueue.ts";

export interface HandlerOptions {
  /** Resources whose changes run the handler (each is watched and cached), each with an optional predicate. */
  watches?: WatchSpec[];
  /** Changes are coalesced over this long. Default 100 ms. */
  debounceMs?: number;
  /** Run only while this replica leads. Default true: a handler usually writes. */
  leaderOnly?: boolean;
  /** Delays before a failed run is retried. Default: the operator's retryBackoff. */
  retryBackoff?: BackoffOptions;
}

const KEY = "*";

export class Handler {
  readonly name: string;
  private readonly informers: Informer[];
  private readonly debounceMs: number;
  private readonly leaderOnly: boolean;
  private readonly queue: WorkQueue<string>;
  private active = false;
  private debounce: NodeJS.Timeout | undefined;

  constructor(
    name: string,
    fn: () => unknown | Promise<unknown>,
    informers: { informer: Informer; when?: (event: InformerEvent) => boolean }[],
    options: HandlerOptions,
    deps: { metrics: Metrics; logger: Logger; retryBackoff: BackoffOptions },
  ) {
    this.name = name;
    this.informers = informers.map((w) => w.informer);
    this.debounceMs = options.debounceMs ?? 100;
    this.leaderOnly = options.leaderOnly ?? true;
    const log = deps.logger.child({ handler: name });
    this.queue = new WorkQueue<string>({
      name,
      rateLimiter: new KeyedBackoff(options.retryBackoff ?? deps.retryBackoff),
      metrics: deps.metrics,
      onError: (_key, err) => log.warn({ err: describe(err) }, "handler failed, will retry with backoff"),
      process: async (key) => {
        if (!this.synced()) return; // the last cache to fill runs it
        const started = performance.now();
        try {
          await fn();
        } catch (err) {
          deps.metrics.observeReconcile(name, "error", (performance.now() - started) / 1000);
          throw err;
        }
        deps.metrics.observeReconcile(name, "success", (performance.now() - started) / 1000);
        this.queue.forget(key); // a success resets the backoff
      },
    });
    for (const { informer, when } of informers)
      informer.on((event) => this.active && (!when || when(event)) && this.schedule());
  }

  /** Runs the handler as soon as it is free (and this replica may run it). */
  run(): void {
    if (this.active) this.queue.add(KEY);
  }

  /** Runs it after `ms`, e.g. when something it waits for is due. */
  runAfter(ms: number): void {
    if (this.active) this.queue.addAfter(KEY, ms);
  }

  /** Tells whether this replica leads; a leaderOnly handler runs only while it does. */
  setLeading(leading: boolean): void {
    const active = !this.leaderOnly || leading;
    if (active === this.active) return;
    this.active = active;
    if (active) void Promise.all(this.informers.map((i) => i.whenSynced())).then(() => this.run());
    else clearTimeout(this.debounce);
  }

  async stop(): Promise<void> {
    this.active = false;
    clearTimeout(this.debounce);
    await this.queue.shutdown({ drain: false });
  }

  private synced(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  private schedule(): void {
    if (this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      this.run();
    }, this.debounceMs);
  }
}
