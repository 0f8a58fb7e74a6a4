// One controller per watched resource: informer events become queued keys, and each key
// is reconciled by running the handlers its current state calls for.
//
// Level-triggered: a reconcile looks only at the object as it is now, compared with
// what was last handled (kept, as kopf does, in an annotation on the object), never at
// the event that woke it. Missed, repeated or merged events therefore change nothing,
// and a failed reconcile is simply run again later.
//
//   deleted (deletionTimestamp) ─► delete handlers ─► remove our finalizer
//   no finalizer, delete handlers exist ─► add it
//   no last-handled annotation ─► create handlers
//   last-handled ≠ current ─► update handlers, field handlers for changed fields
//   first sight in this leadership term, not a create ─► resume handlers
//   then: annotation := current
//
// Handlers must be idempotent: a failure re-runs every handler for that cause.
//
// Our own writes and the cache: after we patch an object, the watch may still deliver
// older versions of it for a moment. Reconciling one of those would, say, see no
// last-handled annotation and run the create handlers twice. So, like kopf's
// consistency_timeout, a key whose latest write we have not yet seen come back through
// the watch is not reconciled until it has (or until consistencyTimeoutMs passed).

import { isDeepStrictEqual } from "node:util";
import { KeyedBackoff, type BackoffOptions } from "./backoff.ts";
import { objectKey, resourceName, type KubeClient, type KubeObject } from "./client.ts";
import { PermanentError, TemporaryError, describe, isConflict } from "./errors.ts";
import type { EventRecorder } from "./events.ts";
import { addFinalizer, hasFinalizer, isBeingDeleted, removeFinalizer } from "./finalizers.ts";
import type { Handler, HandlerContext, HandlerOptions, Reason, Registered, ResourceHandlers } from "./handlers.ts";
import type { Informer, InformerEvent } from "./informer.ts";
import type { Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { patchStatus, setStatusCondition } from "./status.ts";
import { WorkQueue } from "./workqueue.ts";

export interface ControllerOptions {
  client: KubeClient;
  informer: Informer;
  handlers: ResourceHandlers;
  metrics: Metrics;
  logger: Logger;
  recorder: EventRecorder;
  /** Finalizer name, e.g. "example.com/finalizer". */
  finalizer: string;
  /** Annotation holding the last handled state, e.g. "example.com/last-handled-configuration". */
  lastHandledAnnotation: string;
  fieldManager: string;
  concurrency: number;
  retryBackoff: BackoffOptions;
  /** How long to wait for our own write to show up in the cache. Default 5 s. */
  consistencyTimeoutMs?: number;
}

type AnyHandler = Registered<Handler<any>, HandlerOptions<any> & { field?: string }>;

/** Annotations that change with every apply and say nothing about the desired state. */
const NOISY_ANNOTATIONS = ["kubectl.kubernetes.io/last-applied-configuration"];

export class Controller {
  readonly name: string;
  private readonly o: ControllerOptions;
  private readonly log: Logger;
  private queue: WorkQueue<string> | undefined;
  private term: AbortController | undefined;
  private resumed = new Set<string>(); // uids whose resume handlers ran this term
  private readonly timers = new Map<string, NodeJS.Timeout>();
  /** Per key: the resourceVersion of our latest write, until the watch delivers it. */
  private readonly unseenWrites = new Map<string, { rv: string; until: number }>();
  private wanted = false; // leading, as last told
  private previousTerm: Promise<void> = Promise.resolve(); // resolves once the last term wound down

  constructor(options: ControllerOptions) {
    this.o = options;
    this.name = resourceName(options.handlers.resource);
    this.log = options.logger.child({ controller: this.name });
    options.informer.on((event) => this.onEvent(event));
  }

  /** Whether any handler needs the per-object machinery (queue, finalizer, annotation). */
  private get reconciles(): boolean {
    const h = this.o.handlers;
    return h.create.length + h.update.length + h.delete.length + h.resume.length + h.field.length > 0;
  }

  /**
   * Starts running handlers: called when this replica becomes leader. If a previous
   * term is still winding down, waits for it, so that no key is ever reconciled by
   * two terms' queues at once.
   */
  startLeading(): void {
    this.wanted = true;
    void this.previousTerm.then(() => this.begin());
  }

  private begin(): void {
    if (!this.wanted || this.term) return;
    const term = (this.term = new AbortController());
    this.resumed = new Set();
    if (this.reconciles) {
      const queue: WorkQueue<string> = new WorkQueue<string>({
        name: this.name,
        concurrency: this.o.concurrency,
        rateLimiter: new KeyedBackoff(this.o.retryBackoff),
        metrics: this.o.metrics,
        process: (key) => this.reconcile(queue, key, term.signal),
      });
      this.queue = queue;
    }
    // Objects already cached are "found at start-up": queue them all once synced.
    void this.o.informer.whenSynced().then(() => {
      if (term.signal.aborted) return;
      for (const obj of this.o.informer.store.list()) {
        this.queue?.add(objectKey(obj));
        this.ensureTimers(obj);
      }
    });
  }

  /** Queues one object for reconciling (for changes elsewhere that concern it). */
  enqueue(key: string): void {
    this.queue?.add(key);
  }

  /** Stops running handlers; in-flight ones finish (or see their signal aborted). */
  stopLeading(options: { drain: boolean; timeoutMs: number }): Promise<void> {
    this.wanted = false;
    const ended = this.end(options);
    this.previousTerm = this.previousTerm.then(() => ended);
    return ended;
  }

  private async end(options: { drain: boolean; timeoutMs: number }): Promise<void> {
    const term = this.term;
    if (!term) return;
    this.term = undefined;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    const queue = this.queue;
    this.queue = undefined;
    if (!queue) return term.abort();
    const drained = queue.shutdown({ drain: options.drain });
    const timedOut = new Promise<"timeout">((r) => setTimeout(() => r("timeout"), options.timeoutMs).unref());
    if ((await Promise.race([drained, timedOut])) === "timeout") {
      this.log.warn("handlers still running at shutdown deadline; aborting them");
    }
    term.abort();
  }

  private onEvent(event: InformerEvent): void {
    const key = objectKey(event.object);
    const unseen = this.unseenWrites.get(key);
    if (unseen && (event.type === "deleted" || unseen.rv === event.object.metadata.resourceVersion)) {
      this.unseenWrites.delete(key);
    }
    if (!this.term) return; // standby: the informer keeps the cache warm, nothing more
    for (const h of this.o.handlers.event) {
      if (h.options.when && !h.options.when(event.object)) continue;
      Promise.resolve()
        .then(() => h.fn(event))
        .catch((err: unknown) => this.log.error({ handler: h.id, err: describe(err) }, "event handler failed"));
    }
    if (event.type === "deleted") {
      this.cancelTimers(key);
      this.resumed.delete(event.object.metadata.uid ?? "");
    } else {
      this.ensureTimers(event.object);
    }
    this.queue?.add(key);
  }

  private async reconcile(queue: WorkQueue<string>, key: string, signal: AbortSignal): Promise<void> {
    const obj = this.o.informer.store.get(key);
    if (!obj) return queue.forget(key); // gone: nothing to do (delete handlers ran under the finalizer)
    const unseen = this.unseenWrites.get(key);
    if (unseen && Date.now() < unseen.until) {
      // The cache is older than our last write; its event will queue the key again.
      return queue.addAfter(key, unseen.until - Date.now());
    }
    this.unseenWrites.delete(key);
    const started = performance.now();
    const retry = queue.numRequeues(key);
    const log = this.log.child({ namespace: obj.metadata.namespace, name: obj.metadata.name });
    const seconds = () => (performance.now() - started) / 1000;
    try {
      await this.handle(obj, retry, log, signal);
      queue.forget(key);
      this.o.metrics.observeReconcile(this.name, "success", seconds());
    } catch (err) {
      if (err instanceof TemporaryError) {
        log.info({ delaySeconds: err.delaySeconds, err: err.message }, "temporary error, will retry");
        queue.addAfter(key, err.delaySeconds * 1000);
        this.o.metrics.observeReconcile(this.name, "requeue_after", seconds());
      } else if (err instanceof PermanentError) {
        log.error({ err: err.message }, "permanent error, not retrying until the object changes");
        queue.forget(key);
        this.o.metrics.observeReconcile(this.name, "error", seconds());
        void this.o.recorder.warning(obj, "HandlerFailed", err.message);
      } else if (isConflict(err)) {
        // Someone wrote the object since we read it; the watch brings the new state.
        log.debug("conflict, retrying on the fresh object");
        queue.addRateLimited(key);
        this.o.metrics.observeReconcile(this.name, "requeue", seconds());
      } else {
        log.error({ err: describe(err), retry }, "reconcile failed, will retry with backoff");
        queue.addRateLimited(key);
        this.o.metrics.observeReconcile(this.name, "error", seconds());
      }
    }
  }

  private async handle(initial: KubeObject, retry: number, log: Logger, signal: AbortSignal): Promise<void> {
    const h = this.o.handlers;
    const { client, finalizer } = this.o;
    const resource = h.resource;
    let obj = initial;
    const wrote = (o: KubeObject | undefined) => {
      if (o) this.noteWrite(obj, o);
      return o;
    };
    const patches: Array<Record<string, unknown>> = [];
    const run = async (list: AnyHandler[], reason: Reason, old?: unknown, now?: unknown) => {
      for (const handler of list) {
        if (signal.aborted) throw new TemporaryError("stopping", 0);
        if (handler.options.when && !handler.options.when(obj)) continue;
        log.debug({ handler: handler.id, reason }, "running handler");
        const ctx = this.context(() => obj, (o) => (obj = wrote(o) ?? obj), reason, retry, log, signal, old, now, patches);
        await handler.fn(ctx);
      }
    };

    if (isBeingDeleted(obj)) {
      if (h.delete.length === 0 || !hasFinalizer(obj, finalizer)) return;
      await run(h.delete, "delete");
      wrote(await removeFinalizer(client, resource, obj, finalizer));
      log.info("deleted: handlers done, finalizer removed");
      return;
    }
    if (h.delete.length > 0 && !hasFinalizer(obj, finalizer)) {
      obj = wrote(await addFinalizer(client, resource, obj, finalizer)) ?? obj;
    }

    const stateful = h.create.length + h.update.length + h.field.length > 0;
    const current = essence(obj, this.o.lastHandledAnnotation);
    const raw = obj.metadata.annotations?.[this.o.lastHandledAnnotation];
    const last = raw === undefined ? undefined : safeParse(raw);
    const cause = !stateful ? undefined : raw === undefined ? "create" : isDeepStrictEqual(last, current) ? undefined : "update";
    const uid = obj.metadata.uid ?? objectKey(obj);

    if (!this.resumed.has(uid) && cause !== "create") await run(h.resume, "resume");
    if (cause === "create") await run(h.create, "create");
    if (cause === "update") {
      await run(h.update, "update", last, current);
      for (const f of h.field) {
        const before = getPath(last, f.options.field);
        const after = getPath(current, f.options.field);
        if (!isDeepStrictEqual(before, after)) await run([f], "field", before, after);
      }
    }
    if (cause) {
      // Our handlers' own patches are part of what was handled, not a change to react to.
      const handled = patches.length ? essence(patches.reduce(mergePatch, current) as KubeObject, this.o.lastHandledAnnotation) : current;
      // Record what we handled. No resourceVersion precondition on purpose: if the
      // object changed meanwhile, we record the older state, and the next reconcile
      // sees the difference and handles it as an update: nothing is lost.
      obj = wrote(await client.patch(resource, obj.metadata.namespace, obj.metadata.name, {
        metadata: { annotations: { [this.o.lastHandledAnnotation]: JSON.stringify(handled) } },
      })) ?? obj;
      log.info({ cause }, "handled");
    }
    this.resumed.add(uid);
  }

  private context(
    get: () => KubeObject,
    set: (o: KubeObject) => void,
    reason: Reason,
    retry: number,
    logger: Logger,
    signal: AbortSignal,
    old?: unknown,
    now?: unknown,
    patches: Array<Record<string, unknown>> = [],
  ): HandlerContext {
    const { client, fieldManager, recorder } = this.o;
    const resource = this.o.handlers.resource;
    const body = get();
    const keep = (o: KubeObject) => (set(o), o);
    return {
      reason,
      body,
      name: body.metadata.name,
      namespace: body.metadata.namespace,
      meta: body.metadata,
      spec: body["spec"],
      status: body["status"],
      ...(old !== undefined || now !== undefined ? { old, new: now } : {}),
      retry,
      logger,
      signal,
      client,
      resource,
      patch: async (patch) => {
        patches.push(patch);
        return keep(await client.patch(resource, get().metadata.namespace, get().metadata.name, patch, { fieldManager }));
      },
      patchStatus: async (status) => keep(await patchStatus(client, resource, get(), status, { fieldManager })),
      setCondition: async (condition) => keep(await setStatusCondition(client, resource, get(), condition, { fieldManager })),
      event: (type, reason, message) => recorder.record(get(), type, reason, message),
    };
  }

  /** Remembers a write of ours until the watch brings it (see the header). */
  private noteWrite(before: KubeObject, after: KubeObject): void {
    const rv = after.metadata.resourceVersion;
    const key = objectKey(after);
    if (!rv || rv === before.metadata.resourceVersion) return; // nothing was written
    if (this.o.informer.store.get(key)?.metadata.resourceVersion === rv) return; // already seen
    this.unseenWrites.set(key, { rv, until: Date.now() + (this.o.consistencyTimeoutMs ?? 5000) });
  }

  // Timers: one chain of setTimeout per (object, timer), only while leading.
  private ensureTimers(obj: KubeObject): void {
    if (!this.term) return;
    const key = objectKey(obj);
    this.o.handlers.timer.forEach((t, i) => {
      const id = `${i}|${key}`;
      if (this.timers.has(id)) return;
      const delay = (t.options.initialDelaySeconds ?? t.options.intervalSeconds) * 1000;
      this.timers.set(id, setTimeout(() => void this.fireTimer(i, key), delay));
    });
  }

  private cancelTimers(key: string): void {
    for (const [id, timer] of this.timers) {
      if (id.slice(id.indexOf("|") + 1) === key) {
        clearTimeout(timer);
        this.timers.delete(id);
      }
    }
  }

  private async fireTimer(index: number, key: string): Promise<void> {
    const t = this.o.handlers.timer[index];
    const term = this.term;
    const obj = this.o.informer.store.get(key);
    const id = `${index}|${key}`;
    if (!t || !term || !obj) return void this.timers.delete(id);
    let next = t.options.intervalSeconds * 1000;
    if (!isBeingDeleted(obj) && (!t.options.when || t.options.when(obj))) {
      const log = this.log.child({ namespace: obj.metadata.namespace, name: obj.metadata.name, timer: t.id });
      let current = obj;
      try {
        await t.fn(this.context(() => current, (o) => (current = o), "timer", 0, log, term.signal));
      } catch (err) {
        if (err instanceof TemporaryError) next = err.delaySeconds * 1000;
        log.error({ err: describe(err) }, "timer failed");
      }
    }
    // Still the same term and the object still there: schedule the next run.
    if (this.term === term && this.timers.has(id) && this.o.informer.store.get(key)) {
      this.timers.set(id, setTimeout(() => void this.fireTimer(index, key), next));
    } else {
      this.timers.delete(id);
    }
  }
}

/**
 * The part of an object that expresses intent: everything but status and server-set
 * metadata, with labels and annotations (minus our own bookkeeping) kept.
 */
export function essence(obj: KubeObject, ownAnnotation: string): Record<string, unknown> {
  const { metadata, status: _status, apiVersion: _v, kind: _k, ...rest } = obj;
  const annotations = Object.fromEntries(
    Object.entries(metadata.annotations ?? {}).filter(([k]) => k !== ownAnnotation && !NOISY_ANNOTATIONS.includes(k)),
  );
  const meta: Record<string, unknown> = {};
  if (metadata.labels && Object.keys(metadata.labels).length) meta["labels"] = metadata.labels;
  if (Object.keys(annotations).length) meta["annotations"] = annotations;
  // Round-trip through JSON so that what we compare is exactly what we store.
  return JSON.parse(JSON.stringify({ ...rest, metadata: meta })) as Record<string, unknown>;
}

/** Value at a dotted path ("spec.replicas"), or undefined. */
export function getPath(value: unknown, path: string): unknown {
  let v = value;
  for (const part of path.split(".")) {
    if (typeof v !== "object" || v === null) return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return v;
}

/** RFC 7386 JSON merge patch of `patch` onto `target` (a new value; inputs untouched). */
export function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) return patch;
  const out: Record<string, unknown> =
    typeof target === "object" && target !== null && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
