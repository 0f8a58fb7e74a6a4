// Lease-based leader election (coordination.k8s.io/v1), as client-go's leaderelection.
//
// Every replica runs informers (warm caches, quick failover); only the holder of the
// Lease runs handlers and writes. The algorithm, with client-go's defaults:
//
// - every retryPeriod, read the Lease; if we hold it, renew it (renewTime = now);
// - if another holder's record has not changed for leaseDuration, by *our* clock since
//   we first saw that record, it is expired: take it over. Comparing against the
//   record's own renewTime would trust the other node's clock; this trusts only ours;
// - a leader that cannot renew for renewDeadline (< leaseDuration) stops leading
//   before anyone else may take over, so two leaders never act at once;
// - every write carries the Lease's resourceVersion, so two candidates racing for
//   one expired Lease cannot both win (the loser gets 409);
// - on shutdown the leader releases: holderIdentity cleared, so a standby takes over
//   at its next retry instead of waiting out the lease.

import { HttpMethod, V1MicroTime } from "./kube.ts";
import { resourcePath, type KubeClient, type KubeObject, type ResourceRef } from "./client.ts";
import { hostname } from "node:os";
import { randomUUID } from "node:crypto";
import { backoffDelay, sleep } from "./backoff.ts";
import { describe, isConflict, isNotFound } from "./errors.ts";
import type { Logger } from "./log.ts";

export interface LeaderElectionOptions {
  leaseName: string;
  namespace: string;
  /** Unique per replica. Default: hostname plus a random suffix. */
  identity?: string;
  leaseDurationSeconds?: number; // default 15
  renewDeadlineMs?: number; // default 10 000
  retryPeriodMs?: number; // default 2 000
}

export interface LeaderCallbacks {
  onStartedLeading(): void;
  onStoppedLeading(): void;
  onNewLeader?(identity: string | undefined): void;
}

const LEASES: ResourceRef = { group: "coordination.k8s.io", version: "v1", plural: "leases", kind: "Lease" };
/** A coordination.k8s.io/v1 Lease, as far as leader election reads and writes it. */
type Lease = KubeObject & {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    renewTime?: unknown;
    acquireTime?: unknown;
    leaseTransitions?: number;
  };
};

export class LeaderElector {
  readonly identity: string;
  private readonly client: KubeClient;
  private readonly options: Required<LeaderElectionOptions>;
  private readonly callbacks: LeaderCallbacks;
  private readonly log: Logger;
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private leading = false;
  private lastRenew = 0;
  private lastContact = 0;
  private observed: { record: string; at: number; holder: string | undefined } | undefined;

  /** The Lease is read and written through the operator's client: its one connection pool. */
  constructor(client: KubeClient, options: LeaderElectionOptions, callbacks: LeaderCallbacks, logger: Logger) {
    this.client = client;
    this.options = {
      identity: `${hostname()}_${randomUUID()}`,
      leaseDurationSeconds: 15,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      ...options,
    };
    this.identity = this.options.identity;
    this.callbacks = callbacks;
    this.log = logger.child({ lease: `${options.namespace}/${options.leaseName}`, identity: this.identity });
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** The holder we last saw in the Lease (ourselves included). */
  get leader(): string | undefined {
    return this.observed?.holder;
  }

  /** Whether we reached the Lease recently: a standby that cannot is not a ready one. */
  get healthy(): boolean {
    const window = Math.max(this.options.leaseDurationSeconds * 1000, 3 * this.options.retryPeriodMs);
    return Date.now() - this.lastContact < window;
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops campaigning; a leader releases the Lease first. */
  async stop(): Promise<void> {
    this.abort.abort();
    await this.running;
    if (this.leading) {
      await this.release();
      this.setLeading(false);
    }
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const ok = await this.tryAcquireOrRenew();
      if (signal.aborted) break;
      if (ok) {
        this.lastRenew = Date.now();
        if (!this.leading) this.setLeading(true);
      } else if (this.leading && this.observed?.holder !== this.identity) {
        this.log.error({ holder: this.observed?.holder }, "someone else holds the lease, stepping down");
        this.setLeading(false);
      } else if (this.leading && Date.now() - this.lastRenew > this.options.renewDeadlineMs) {
        this.log.error("could not renew the lease within the deadline, stepping down");
        this.setLeading(false);
      }
      // Candidates jitter up to +20 % (client-go's JitterUntil) so they do not collide.
      const jitter = this.leading ? 0 : backoffDelay(0, { baseMs: this.options.retryPeriodMs * 0.1, jitter: 1 });
      await sleep(this.options.retryPeriodMs + jitter, signal);
    }
  }

  private setLeading(leading: boolean): void {
    if (this.leading === leading) return;
    this.leading = leading;
    this.log.info(leading ? "became leader" : "stopped leading");
    try {
      if (leading) this.callbacks.onStartedLeading();
      else this.callbacks.onStoppedLeading();
    } catch (err) {
      this.log.error({ err: describe(err) }, "leader callback failed");
    }
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { leaseName: name, namespace } = this.options;
    const now = new V1MicroTime();
    try {
      let lease: Lease;
      try {
        lease = await this.read();
      } catch (err) {
        if (!isNotFound(err)) throw err;
        await this.client.create(LEASES, this.claim({ metadata: { name, namespace } }, now));
        this.lastContact = Date.now();
        this.observe(this.identity, "created");
        return true;
      }
      this.lastContact = Date.now();
      const spec = lease.spec ?? {};
      const holder = spec.holderIdentity || undefined;
      this.observe(holder, JSON.stringify([holder, spec.renewTime, spec.leaseDurationSeconds, spec.leaseTransitions]));

      if (holder && holder !== this.identity) {
        const duration = (spec.leaseDurationSeconds ?? this.options.leaseDurationSeconds) * 1000;
        if (Date.now() - (this.observed?.at ?? 0) < duration) return false; // held, not expired
        this.log.info({ previous: holder }, "lease expired, taking over");
      }
      await this.replace(this.claim(lease, now));
      return true;
    } catch (err) {
      if (!isConflict(err)) this.log.warn({ err: describe(err) }, "lease update failed");
      return false;
    }
  }

  private read(): Promise<Lease> {
    return this.client.get(LEASES, this.options.namespace, this.options.leaseName);
  }

  private replace(lease: Lease): Promise<unknown> {
    const { namespace, leaseName } = this.options;
    return this.client.request(HttpMethod.PUT, resourcePath(LEASES, namespace, leaseName), { body: lease });
  }

  /** The Lease with us as holder: renewed if we held it, acquired otherwise. */
  private claim(lease: Lease, now: V1MicroTime): Lease {
    const spec = lease.spec ?? {};
    const ours = spec.holderIdentity === this.identity;
    return {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.options.leaseDurationSeconds,
        renewTime: now,
        acquireTime: ours ? spec.acquireTime : now,
        leaseTransitions: ours ? spec.leaseTransitions : (spec.leaseTransitions ?? -1) + 1,
      },
    };
  }

  /** Notes when the Lease record last changed, by our clock. */
  private observe(holder: string | undefined, record: string): void {
    if (this.observed?.record === record) return;
    const changedHolder = this.observed?.holder !== holder;
    this.observed = { record, at: Date.now(), holder };
    if (changedHolder) this.callbacks.onNewLeader?.(holder);
  }

  private async release(): Promise<void> {
    try {
      const lease = await this.read();
      if (lease.spec?.holderIdentity !== this.identity) return;
      const now = new V1MicroTime();
      await this.replace({
        ...lease,
        spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: now, acquireTime: now },
      });
      this.log.info("released the lease");
    } catch (err) {
      this.log.warn({ err: describe(err) }, "could not release the lease; it will expire");
    }
  }
}
