// An informer: keeps a Store in step with one resource through list + watch, forever.
//
// Like client-go's reflector (client-node's ListWatch stops for good after most errors,
// does not ask for bookmarks, and has no periodic relist or synced state):
//
//   list ──► watch from the list's resourceVersion (allowWatchBookmarks) ──► ...
//     ▲        │ ends cleanly / server timeout ─► watch again from the last resourceVersion
//     │        │ 410 Gone (history compacted) ─► relist
//     │        │ error (API server restarting, 5xx, refused) ─► backoff + jitter, then retry
//     │        │ silent for inactivityTimeoutMs (no event, no bookmark) ─► restart it
//     └────────┘ every resyncPeriodMs ─► full relist, to repair anything a watch missed
//
// The watch itself is KubeClient.watch, on the client's connection pool.

import { Backoff, sleep, type BackoffOptions } from "./backoff.ts";
import { objectKey, resourceName, resourcePath, type KubeClient, type KubeObject, type ResourceRef } from "./client.ts";
import { describe, isGone, statusCode } from "./errors.ts";
import type { Logger } from "./log.ts";
import { Store } from "./store.ts";

export type InformerEventType = "added" | "modified" | "deleted" | "resync";

export interface InformerEvent<T extends KubeObject = KubeObject> {
  /** "resync": a periodic relist found the object unchanged. */
  type: InformerEventType;
  object: T;
  /** The cached state before this event, for "modified". */
  old?: T;
}

export type InformerListener<T extends KubeObject = KubeObject> = (event: InformerEvent<T>) => void;

export interface InformerOptions {
  /** Watch one namespace only; all namespaces by default. */
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /** Full relist period. Default 10 min. 0 disables it. */
  resyncPeriodMs?: number;
  /** Restart a watch after this long without any event or bookmark. Default 90 s. */
  inactivityTimeoutMs?: number;
  /** Retry delays after failures. Default 1 s doubling to 30 s, ±20 % jitter. */
  backoff?: BackoffOptions;
  /** Keep metadata.managedFields in the cache. Default false: dropped, as controller-runtime does. */
  keepManagedFields?: boolean;
  /** What the cache keeps of each object (see ResourceSpec.transform). */
  transform?: (object: KubeObject) => KubeObject;
  logger: Logger;
}

type WatchEnd =
  | { kind: "closed" } // the server ended the watch (its timeoutSeconds)
  | { kind: "gone" } // 410: relist
  | { kind: "inactive" }
  | { kind: "resync" }
  | { kind: "stopped" }
  | { kind: "error"; err: unknown };

export class Informer<T extends KubeObject = KubeObject> {
  readonly resource: ResourceRef;
  /** The cache; objects we write are kept in it as the watch would deliver them. */
  readonly store = new Store<T>({ prepare: (obj) => this.cached(obj) });
  private readonly client: KubeClient;
  private readonly options: Required<
    Omit<InformerOptions, "namespace" | "labelSelector" | "fieldSelector" | "transform">
  > &
    InformerOptions;
  private readonly log: Logger;
  private readonly listeners = new Set<InformerListener<T>>();
  private readonly abort = new AbortController();
  private running: Promise<void> | undefined;
  private synced = false;
  private syncWaiters: Array<() => void> = [];
  private resourceVersion = "";
  private lastActivity = Date.now();

  constructor(client: KubeClient, resource: ResourceRef, options: InformerOptions) {
    this.client = client;
    this.resource = resource;
    this.options = {
      resyncPeriodMs: 10 * 60_000,
      inactivityTimeoutMs: 90_000,
      backoff: { baseMs: 1000, maxMs: 30_000, jitter: 0.2 },
      keepManagedFields: false,
      ...options,
    };
    this.log = options.logger.child({ resource: resourceName(resource) });
  }

  /** True once the first list has filled the store. */
  get hasSynced(): boolean {
    return this.synced;
  }

  /** Milliseconds since the last list, event or bookmark: a liveness signal. */
  get idleMs(): number {
    return Date.now() - this.lastActivity;
  }

  /** Listens to changes; returns a function that stops listening. */
  on(listener: InformerListener<T>): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Resolves once the store has been filled by a first list (or the informer stopped). */
  whenSynced(): Promise<void> {
    if (this.synced || this.abort.signal.aborted) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  start(): void {
    this.running ??= this.run();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    for (const resolve of this.syncWaiters.splice(0)) resolve();
    await this.running;
  }

  private async run(): Promise<void> {
    const backoff = new Backoff(this.options.backoff);
    const signal = this.abort.signal;
    let lastList = 0;
    while (!signal.aborted) {
      try {
        const resyncDue = this.options.resyncPeriodMs > 0 && Date.now() - lastList >= this.options.resyncPeriodMs;
        if (!this.resourceVersion || resyncDue) {
          await this.relist();
          lastList = Date.now();
          backoff.reset();
        }
        const nextResync =
          this.options.resyncPeriodMs > 0 ? lastList + this.options.resyncPeriodMs - Date.now() : undefined;
        const started = Date.now();
        const before = this.lastActivity;
        const end = await this.watchOnce(nextResync);
        const delivered = this.lastActivity !== before;
        switch (end.kind) {
          case "gone":
            this.log.debug("watch history expired (410), relisting");
            this.resourceVersion = "";
            // Gone again right after a fresh list would make list/watch spin: slow down.
            if (Date.now() - lastList < 1000) await sleep(backoff.next(), signal);
            break;
          case "error":
            throw end.err;
          case "inactive":
            this.log.warn({ idleMs: this.options.inactivityTimeoutMs }, "watch delivered nothing, restarting it");
            break;
          case "closed":
            // A watch that ends at once without delivering anything, again and again,
            // would spin: slow such ends down like errors.
            if (!delivered && Date.now() - started < 1000) await sleep(backoff.next(), signal);
            else backoff.reset();
            break;
          case "resync":
          case "stopped":
            break;
        }
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          this.resourceVersion = "";
          continue;
        }
        const delayMs = backoff.next();
        this.log.warn({ err: describe(err), status: statusCode(err), delayMs }, "list/watch failed, retrying");
        await sleep(delayMs, signal);
      }
    }
  }

  /** Lists everything, brings the store in line and notifies about each difference. */
  private async relist(): Promise<void> {
    const list = await this.client.list<T>(this.resource, {
      namespace: this.options.namespace,
      labelSelector: this.options.labelSelector,
      fieldSelector: this.options.fieldSelector,
    });
    this.touch();
    const seen = new Set<string>();
    for (const listed of list.items) {
      const key = objectKey(listed);
      seen.add(key);
      const old = this.store.get(key);
      // An object that did not change stays the very object the cache had, so a controller
      // that remembers what it made of each object (by identity) need not make it again.
      if (old && old.metadata.resourceVersion === listed.metadata.resourceVersion) {
        this.emit({ type: "resync", object: old });
        continue;
      }
      const obj = this.cached(listed);
      this.store.set(obj);
      if (!old) this.emit({ type: "added", object: obj });
      else this.emit({ type: "modified", object: obj, old });
    }
    // Deleted while we were not watching: the last known state stands in for it.
    for (const key of this.store.keys()) {
      if (seen.has(key)) continue;
      const old = this.store.delete(key);
      if (old) this.emit({ type: "deleted", object: old });
    }
    this.resourceVersion = list.resourceVersion;
    this.log.debug({ count: list.items.length, resourceVersion: list.resourceVersion }, "listed");
    if (!this.synced) {
      this.synced = true;
      this.log.info({ count: list.items.length }, "informer synced");
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  /** Runs one watch request until it ends, and says how. */
  private watchOnce(resyncInMs: number | undefined): Promise<WatchEnd> {
    return new Promise<WatchEnd>((resolve) => {
      let settled = false;
      const request = new AbortController();
      let inactivity: NodeJS.Timeout | undefined;
      const resync =
        resyncInMs === undefined ? undefined : setTimeout(() => finish({ kind: "resync" }), Math.max(0, resyncInMs));
      const signal = this.abort.signal;
      const onStop = () => finish({ kind: "stopped" });

      const finish = (end: WatchEnd) => {
        if (settled) return;
        settled = true;
        clearTimeout(inactivity);
        clearTimeout(resync);
        signal.removeEventListener("abort", onStop);
        request.abort();
        resolve(end);
      };
      const armInactivity = () => {
        clearTimeout(inactivity);
        inactivity = setTimeout(() => finish({ kind: "inactive" }), this.options.inactivityTimeoutMs);
      };

      if (signal.aborted) return finish({ kind: "stopped" });
      signal.addEventListener("abort", onStop, { once: true });
      armInactivity();

      const onEvent = (type: string, obj: unknown) => {
        if (settled) return;
        armInactivity();
        this.touch();
        if (type === "ERROR") {
          const status = obj as { code?: number; message?: string };
          if (status.code === 410) return finish({ kind: "gone" });
          const err = Object.assign(new Error(status.message ?? "watch error"), { statusCode: status.code });
          return finish({ kind: "error", err });
        }
        this.apply(type, obj as T);
      };

      this.client
        .watch(
          resourcePath(this.resource, this.options.namespace),
          {
            resourceVersion: this.resourceVersion,
            allowWatchBookmarks: true,
            // Like client-go: have the server end each watch after 5–10 min, so
            // connections are rebalanced and no single one lives forever.
            timeoutSeconds: Math.floor(300 + Math.random() * 300),
            labelSelector: this.options.labelSelector,
            fieldSelector: this.options.fieldSelector,
          },
          onEvent,
          request.signal,
        )
        .then(
          () => finish({ kind: "closed" }),
          (err: unknown) => finish(isGone(err) ? { kind: "gone" } : { kind: "error", err }),
        );
    });
  }

  /**
   * The object as the cache keeps it: without managedFields (who set which field, for
   * server-side apply), which a controller seldom reads and which can be as large as the
   * rest of the object. Each cached object carries a copy otherwise.
   */
  private cached(obj: T): T {
    if (this.options.transform) return this.options.transform(obj) as T;
    if (this.options.keepManagedFields || !obj.metadata?.managedFields) return obj;
    const { managedFields: _, ...metadata } = obj.metadata;
    return { ...obj, metadata };
  }

  /** Applies one watch event to the store. */
  private apply(type: string, received: T): void {
    const obj = this.cached(received);
    const rv = obj.metadata?.resourceVersion;
    if (rv) this.resourceVersion = rv;
    switch (type) {
      case "ADDED":
      case "MODIFIED": {
        const old = this.store.set(obj);
        if (!old) this.emit({ type: "added", object: obj });
        else this.emit({ type: "modified", object: obj, old });
        break;
      }
      case "DELETED":
        this.store.delete(objectKey(obj));
        this.emit({ type: "deleted", object: obj });
        break;
      case "BOOKMARK":
        break; // only moves resourceVersion forward
    }
  }

  private touch(): void {
    this.lastActivity = Date.now();
  }

  private emit(event: InformerEvent<T>): void {
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.log.error({ err: describe(err) }, "informer listener failed");
      }
    }
  }
}
