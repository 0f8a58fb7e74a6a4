// Exponential backoff with jitter, and the per-key form of it that the work queue uses.
//
// Every retry loop in the framework (the informer's list/watch, leader election, failed
// reconciles) waits through one of these, so a flapping API server sees callers spread
// out in time instead of a synchronised stampede.

export interface BackoffOptions {
  /** First delay, in milliseconds. */
  baseMs?: number;
  /** Upper bound for any delay, in milliseconds. */
  maxMs?: number;
  /** Growth per attempt. */
  factor?: number;
  /** Fraction of the delay that is randomised: 0.2 means ±20 %. */
  jitter?: number;
  /** Source of randomness in [0, 1); tests pass a fixed one. */
  random?: () => number;
}

/** Delay before attempt number `attempt` (0 for the first retry), jittered and capped. */
export function backoffDelay(attempt: number, options: BackoffOptions = {}): number {
  const { baseMs = 1000, maxMs = 30_000, factor = 2, jitter = 0.2, random = Math.random } = options;
  // Cap the exponent before multiplying so a long outage cannot overflow to Infinity.
  const raw = Math.min(maxMs, baseMs * factor ** Math.min(Math.max(attempt, 0), 64));
  const spread = raw * jitter * (random() * 2 - 1);
  return Math.max(0, Math.min(maxMs, Math.round(raw + spread)));
}

/** A sequence of growing delays for one retry loop; `reset()` after a success. */
export class Backoff {
  private attempt = 0;
  private readonly options: BackoffOptions;

  constructor(options: BackoffOptions = {}) {
    this.options = options;
  }

  /** The next delay, growing each call. */
  next(): number {
    return backoffDelay(this.attempt++, this.options);
  }

  reset(): void {
    this.attempt = 0;
  }

  get attempts(): number {
    return this.attempt;
  }
}

/**
 * Per-key exponential backoff, like client-go's ItemExponentialFailureRateLimiter: each
 * key that keeps failing waits longer, while other keys are not slowed down by it.
 * No jitter by default: keys already fail at independent moments.
 */
export class KeyedBackoff<K = string> {
  private readonly failures = new Map<K, number>();
  private readonly options: BackoffOptions;

  constructor(options: BackoffOptions = {}) {
    this.options = { baseMs: 5, maxMs: 1000_000, jitter: 0, ...options };
  }

  /** Records one more failure of `key` and returns how long to wait before retrying it. */
  when(key: K): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    return backoffDelay(n, this.options);
  }

  /** How many times `key` has failed since it was last forgotten. */
  retries(key: K): number {
    return this.failures.get(key) ?? 0;
  }

  /** Clears the history of `key`, after it succeeded or was given up on. */
  forget(key: K): void {
    this.failures.delete(key);
  }
}

/** Sleeps `ms`, or less if `signal` aborts first (it never rejects). */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
