// A work queue of object keys, with client-go's guarantees:
//
// - a key waiting in the queue is stored once, however often it is added (dedup);
// - a key is never processed by two workers at once: added while in flight, it is
//   marked dirty and goes back to the queue when the in-flight run finishes;
// - failed keys come back after a per-key exponential delay (addRateLimited);
// - at most `concurrency` keys are processed at a time;
// - shutdown() stops intake and waits for in-flight work (and, when draining, for the
//   keys already queued).
//
// Keys only name objects; the processor reads the current object from a cache. That is
// what makes the controller level-triggered: ten updates to one object while it waits
// become one reconcile of its latest state.

import { KeyedBackoff } from "./backoff.ts";

/** The counters a queue reports to; see metrics.ts for the Prometheus implementation. */
export interface QueueMetrics {
  depth(name: string, value: number): void;
  add(name: string): void;
  retry(name: string): void;
}

export interface WorkQueueOptions<K> {
  /** Name for metrics and logs (controller-runtime uses the controller name). */
  name: string;
  /** Processes one key. A throw is reported to onError and the key is retried with backoff. */
  process: (key: K) => Promise<void>;
  /** Maximum keys processed at once. Default 1. */
  concurrency?: number;
  rateLimiter?: KeyedBackoff<K>;
  metrics?: QueueMetrics;
  onError?: (key: K, err: unknown) => void;
}

export interface ShutdownOptions {
  /** Also process the keys already waiting (not the delayed ones). Default true. */
  drain?: boolean;
}

export class WorkQueue<K = string> {
  readonly name: string;
  private readonly process: (key: K) => Promise<void>;
  private readonly concurrency: number;
  private readonly limiter: KeyedBackoff<K>;
  private readonly metrics: QueueMetrics | undefined;
  private readonly onError: (key: K, err: unknown) => void;

  private readonly order: K[] = []; // FIFO of keys ready to run
  private readonly dirty = new Set<K>(); // keys waiting to run (in `order`, or after their in-flight run)
  private readonly inFlight = new Set<K>();
  private readonly delayed = new Map<K, { at: number; timer: NodeJS.Timeout }>();
  private stopping = false;
  private drainQueued = true;
  private idleWaiters: Array<() => void> = [];

  constructor(options: WorkQueueOptions<K>) {
    this.name = options.name;
    this.process = options.process;
    this.concurrency = Math.max(1, options.concurrency ?? 1);
    this.limiter = options.rateLimiter ?? new KeyedBackoff<K>();
    this.metrics = options.metrics;
    this.onError = options.onError ?? (() => {});
  }

  /** Keys waiting to be processed (not counting in-flight or delayed ones). */
  get length(): number {
    return this.order.length;
  }

  /** Keys being processed right now. */
  get active(): number {
    return this.inFlight.size;
  }

  get shuttingDown(): boolean {
    return this.stopping;
  }

  add(key: K): void {
    if (this.stopping || this.dirty.has(key)) return;
    this.dirty.add(key);
    this.metrics?.add(this.name);
    // An in-flight key is re-queued by finish(); queuing it now could run it twice at once.
    if (this.inFlight.has(key)) return;
    this.order.push(key);
    this.reportDepth();
    this.pump();
  }

  /** Adds `key` after `ms`. If the key is already due sooner, the sooner time wins. */
  addAfter(key: K, ms: number): void {
    if (this.stopping) return;
    if (ms <= 0) return this.add(key);
    const at = Date.now() + ms;
    const pending = this.delayed.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.delayed.delete(key);
      this.add(key);
    }, ms);
    this.delayed.set(key, { at, timer });
  }

  /** Adds `key` after its own backoff delay, which grows with each call until forget(). */
  addRateLimited(key: K): void {
    if (this.stopping) return;
    this.metrics?.retry(this.name);
    this.addAfter(key, this.limiter.when(key));
  }

  /** Resets the backoff of `key`: call after it was processed successfully. */
  forget(key: K): void {
    this.limiter.forget(key);
  }

  /** How many rate-limited retries `key` has had since it was last forgotten. */
  numRequeues(key: K): number {
    return this.limiter.retries(key);
  }

  /**
   * Stops taking keys, cancels delayed ones, and resolves once in-flight work (and with
   * `drain`, the keys already queued) is done.
   */
  shutdown(options: ShutdownOptions = {}): Promise<void> {
    this.stopping = true;
    this.drainQueued = options.drain ?? true;
    for (const { timer } of this.delayed.values()) clearTimeout(timer);
    this.delayed.clear();
    if (!this.drainQueued) {
      for (const key of this.order) this.dirty.delete(key);
      this.order.length = 0;
      this.reportDepth();
    }
    return this.whenIdle();
  }

  /** Resolves when nothing is queued or in flight (delayed keys do not count). */
  whenIdle(): Promise<void> {
    if (this.isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private isIdle(): boolean {
    return this.inFlight.size === 0 && this.order.length === 0;
  }

  private pump(): void {
    while (this.inFlight.size < this.concurrency && this.order.length > 0) {
      if (this.stopping && !this.drainQueued) return;
      const key = this.order.shift() as K;
      this.dirty.delete(key);
      this.inFlight.add(key);
      this.reportDepth();
      void this.run(key);
    }
  }

  private async run(key: K): Promise<void> {
    try {
      await this.process(key);
    } catch (err) {
      this.addRateLimited(key);
      try {
        this.onError(key, err);
      } catch {
        // a broken error reporter must not take the queue down
      }
    } finally {
      this.finish(key);
    }
  }

  private finish(key: K): void {
    this.inFlight.delete(key);
    // Added again while it ran: now it may run again.
    if (this.dirty.has(key)) {
      if (this.stopping && !this.drainQueued) this.dirty.delete(key);
      else this.order.push(key);
      this.reportDepth();
    }
    this.pump();
    if (this.isIdle()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const resolve of waiters) resolve();
    }
  }

  private reportDepth(): void {
    this.metrics?.depth(this.name, this.order.length);
  }
}
