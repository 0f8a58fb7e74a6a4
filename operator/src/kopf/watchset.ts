// Whole-resource-set watching: keep a cache of every object of a kind and hear that
// "something in the set changed", without per-object handlers.
//
// For state that is computed from many objects at once (a snapshot built from all
// Services and EndpointSlices, say), per-object events are the wrong unit: the
// callback just recomputes from the current store. Changes are coalesced over a short
// debounce, and the callback runs through a one-key WorkQueue, which gives the rest
// for free: never two runs at once, a change during a run causes exactly one more run,
// and a failing run is retried with backoff.

import { KeyedBackoff, type BackoffOptions } from "./backoff.ts";
import { resourceName } from "./client.ts";
import { describe } from "./errors.ts";
import type { WatchOptions } from "./handlers.ts";
import type { Informer } from "./informer.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { WorkQueue } from "./workqueue.ts";

const KEY = "*";

export class SetWatcher {
  private readonly informer: Informer;
  private readonly options: Required<Omit<WatchOptions, "onChange">> & WatchOptions;
  private readonly queue: WorkQueue<string>;
  private readonly log: Logger;
  private active = false;
  private debounce: NodeJS.Timeout | undefined;

  constructor(informer: Informer, options: WatchOptions, deps: { metrics: Metrics; logger: Logger; retryBackoff: BackoffOptions }) {
    this.informer = informer;
    this.options = { debounceMs: 100, leaderOnly: true, ...options };
    const name = `${resourceName(informer.resource)}-set`;
    this.log = deps.logger.child({ watch: name });
    this.queue = new WorkQueue<string>({
      name,
      rateLimiter: new KeyedBackoff(deps.retryBackoff),
      metrics: deps.metrics,
      onError: (_key, err) => this.log.error({ err: describe(err) }, "onChange failed, will retry"),
      process: async (key) => {
        await this.options.onChange?.(this.informer.store);
        this.queue.forget(key);
      },
    });
    informer.on(() => {
      if (this.active && informer.hasSynced) this.schedule();
    });
  }

  /** Tells whether this replica leads; a leaderOnly watcher runs only while it does. */
  setLeading(leading: boolean): void {
    const active = !this.options.leaderOnly || leading;
    if (active === this.active) return;
    this.active = active;
    if (active) void this.informer.whenSynced().then(() => this.active && this.schedule());
    else clearTimeout(this.debounce);
  }

  async stop(): Promise<void> {
    this.active = false;
    clearTimeout(this.debounce);
    await this.queue.shutdown({ drain: false });
  }

  private schedule(): void {
    if (!this.options.onChange || this.debounce) return;
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      if (this.active) this.queue.add(KEY);
    }, this.options.debounceMs);
  }
}
