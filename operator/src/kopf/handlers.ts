// The handler registry: what an operator author declares, in kopf's vocabulary.
//
//   on.create / on.update / on.delete / on.resume   one object's lifecycle
//   on.field(resource, "spec.x", fn)                 an update that changed one field
//   on.event(resource, fn)                           every raw watch event, unfiltered
//   timer(resource, { intervalSeconds }, fn)         periodically, per existing object
//   watch(resource, { onChange })                    keep a cache of the whole set, and
//                                                    hear (debounced) that it changed
//
// The registry only records declarations; controller.ts decides when each runs.

import type { KubeClient, KubeObject, ObjectMeta, ResourceRef } from "./client.ts";
import type { ConditionInput } from "./conditions.ts";
import type { InformerEvent } from "./informer.ts";
import type { Logger } from "./log.ts";
import type { Store } from "./store.ts";

/** A resource to watch, optionally narrowed (the narrowing applies to its informer). */
export interface ResourceSpec extends ResourceRef {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * What the cache keeps of each object (controller-runtime's cache transform): a controller
   * that reads a few fields of many objects keeps its memory to those. Must keep metadata's
   * name, namespace and resourceVersion.
   */
  transform?: (object: KubeObject) => KubeObject;
}

export type Reason = "create" | "update" | "delete" | "resume" | "field" | "timer";

/** What a handler receives. */
export interface HandlerContext<T extends KubeObject = KubeObject> {
  reason: Reason;
  /** The object: the latest state we know, including our own writes in this run. */
  body: T;
  name: string;
  namespace: string | undefined;
  meta: ObjectMeta;
  spec: unknown;
  status: unknown;
  /** update and field handlers: the state (or field value) last handled, and now. */
  old?: unknown;
  new?: unknown;
  /** How many times in a row handling this object has failed before this attempt. */
  retry: number;
  logger: Logger;
  /** Aborted when the operator stops or loses leadership: long handlers should give up. */
  signal: AbortSignal;
  client: KubeClient;
  resource: ResourceRef;
  /** Merge-patches the object itself (metadata, spec). */
  patch(body: Record<string, unknown>): Promise<T>;
  /** Writes status fields through /status; skipped when already so. */
  patchStatus(status: Record<string, unknown>): Promise<T>;
  /** Sets one status condition; skipped when unchanged. observedGeneration defaults to the object's generation. */
  setCondition(condition: ConditionInput): Promise<T>;
  /** Records a Kubernetes Event about the object. */
  event(type: "Normal" | "Warning", reason: string, message: string): Promise<void>;
}

export type Handler<T extends KubeObject = KubeObject> = (ctx: HandlerContext<T>) => unknown | Promise<unknown>;

export interface HandlerOptions<T extends KubeObject = KubeObject> {
  /** For logs; defaults to the function's name. */
  id?: string;
  /** Run only for objects this returns true for (kopf's `when=`). */
  when?: (obj: T) => boolean;
}

export interface TimerOptions<T extends KubeObject = KubeObject> extends HandlerOptions<T> {
  intervalSeconds: number;
  /** Delay before the first run for an object. Default: the interval. */
  initialDelaySeconds?: number;
}

export interface WatchOptions {
  /** Called after the first sync and after any change, coalesced over debounceMs. */
  onChange?: (store: Store) => unknown | Promise<unknown>;
  /** Default 100 ms. */
  debounceMs?: number;
  /** Run onChange only while leading. Default true: it is a handler like any other. */
  leaderOnly?: boolean;
}

export interface Registered<H, O> {
  id: string;
  fn: H;
  options: O;
}

/** Everything declared for one resource. */
export interface ResourceHandlers {
  resource: ResourceSpec;
  create: Array<Registered<Handler<any>, HandlerOptions<any>>>;
  update: Array<Registered<Handler<any>, HandlerOptions<any>>>;
  delete: Array<Registered<Handler<any>, HandlerOptions<any>>>;
  resume: Array<Registered<Handler<any>, HandlerOptions<any>>>;
  field: Array<Registered<Handler<any>, HandlerOptions<any> & { field: string }>>;
  event: Array<Registered<(event: InformerEvent<any>) => unknown, HandlerOptions<any>>>;
  timer: Array<Registered<Handler<any>, TimerOptions<any>>>;
  watch: WatchOptions[];
}

/** Identity of a resource spec: same informer when equal. */
export function resourceId(r: ResourceSpec): string {
  return [r.group, r.version, r.plural, r.namespace ?? "", r.labelSelector ?? "", r.fieldSelector ?? ""].join("|");
}

export class Registry {
  private readonly byResource = new Map<string, ResourceHandlers>();

  /** kopf's decorators, as methods. */
  readonly on = {
    create: <T extends KubeObject>(r: ResourceSpec, fn: Handler<T>, o: HandlerOptions<T> = {}) => this.add(r, "create", fn, o),
    update: <T extends KubeObject>(r: ResourceSpec, fn: Handler<T>, o: HandlerOptions<T> = {}) => this.add(r, "update", fn, o),
    delete: <T extends KubeObject>(r: ResourceSpec, fn: Handler<T>, o: HandlerOptions<T> = {}) => this.add(r, "delete", fn, o),
    resume: <T extends KubeObject>(r: ResourceSpec, fn: Handler<T>, o: HandlerOptions<T> = {}) => this.add(r, "resume", fn, o),
    field: <T extends KubeObject>(r: ResourceSpec, field: string, fn: Handler<T>, o: HandlerOptions<T> = {}) =>
      this.add(r, "field", fn, { ...o, field }),
    event: <T extends KubeObject>(r: ResourceSpec, fn: (event: InformerEvent<T>) => unknown, o: HandlerOptions<T> = {}) =>
      this.add(r, "event", fn, o),
  };

  timer<T extends KubeObject>(r: ResourceSpec, options: TimerOptions<T>, fn: Handler<T>): void {
    if (!(options.intervalSeconds > 0)) throw new Error("timer needs intervalSeconds > 0");
    this.add(r, "timer", fn, options);
  }

  watch(r: ResourceSpec, options: WatchOptions = {}): void {
    this.entry(r).watch.push(options);
  }

  resources(): ResourceHandlers[] {
    return [...this.byResource.values()];
  }

  private add(r: ResourceSpec, kind: Exclude<keyof ResourceHandlers, "resource" | "watch">, fn: Function, options: object): void {
    const id = (options as { id?: string }).id ?? (fn.name || `${kind}-${this.entry(r)[kind].length}`);
    (this.entry(r)[kind] as Array<Registered<unknown, unknown>>).push({ id, fn, options });
  }

  private entry(r: ResourceSpec): ResourceHandlers {
    const id = resourceId(r);
    let entry = this.byResource.get(id);
    if (!entry) {
      entry = { resource: r, create: [], update: [], delete: [], resume: [], field: [], event: [], timer: [], watch: [] };
      this.byResource.set(id, entry);
    }
    return entry;
  }
}
