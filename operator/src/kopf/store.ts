// The informer's cache: the latest known state of every watched object, by key.
//
// Handlers read from here instead of calling the API, which is what lets a controller
// react to "something changed" by recomputing from the whole current set
// (level-triggered) without a burst of GETs. Objects are shared, not copied: treat them
// as read-only.
//
// Read-your-writes: after a controller writes an object, the watch delivers that write a
// moment later, and a handler that runs in between would see the state from before it
// (and, say, write the same status again, or create a ConfigMap twice). `wrote()` tells
// the store of the write; until the watch brings a newer version than the one written
// over (or `consistencyMs` pass, should it never come), reads return the written object.

import { objectKey, type KubeObject } from "./client.ts";

export interface StoreOptions<T> {
  /** What the cache keeps of an object (the informer's transform); applied to written objects too. */
  prepare?: (object: T) => T;
  /** How long a written object stands in for the cached one at most. Default 5 s. */
  consistencyMs?: number;
}

type Written<T> = { object: T; before: string | undefined; until: number };

export class Store<T extends KubeObject = KubeObject> {
  private readonly objects = new Map<string, T>();
  /** Our writes the watch has not delivered yet, by key. */
  private readonly written = new Map<string, Written<T>>();
  private readonly prepare: (object: T) => T;
  private readonly consistencyMs: number;

  constructor(options: StoreOptions<T> = {}) {
    this.prepare = options.prepare ?? ((o) => o);
    this.consistencyMs = options.consistencyMs ?? 5_000;
  }

  /** By key: "namespace/name", or "name" for cluster-scoped objects. */
  get(key: string): T | undefined {
    const cached = this.objects.get(key);
    return this.written.size === 0 ? cached : this.latest(key, cached);
  }

  getByName(namespace: string | undefined, name: string): T | undefined {
    return this.get(namespace ? `${namespace}/${name}` : name);
  }

  /** All objects (our unseen writes in place of what they replaced), or those of one namespace. */
  list(namespace?: string): T[] {
    let all: T[];
    if (this.written.size === 0) all = [...this.objects.values()];
    else {
      all = [];
      for (const [key, object] of this.objects) all.push(this.latest(key, object)!);
    }
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  keys(): string[] {
    return [...this.objects.keys()];
  }

  get size(): number {
    return this.objects.size;
  }

  /**
   * Records our own write: `object` as the API server answered it, which replaced
   * resourceVersion `before` (undefined: we created it). Reads return it until the watch
   * delivers something newer than `before`.
   */
  wrote(object: T, before: string | undefined): void {
    this.written.set(objectKey(object), {
      object: this.prepare(object),
      before,
      until: Date.now() + this.consistencyMs,
    });
  }

  /** Stores `obj` (from the watch or a list), returning what it replaced. */
  set(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.objects.get(key);
    this.objects.set(key, obj);
    const mine = this.written.get(key);
    if (mine && mine.before !== obj.metadata.resourceVersion) this.written.delete(key);
    return old;
  }

  /** Removes the object with `key`, returning it. */
  delete(key: string): T | undefined {
    const old = this.objects.get(key);
    this.objects.delete(key);
    this.written.delete(key);
    return old;
  }

  private latest(key: string, cached: T | undefined): T | undefined {
    const mine = this.written.get(key);
    if (!mine) return cached;
    if (cached?.metadata.resourceVersion === mine.before && Date.now() < mine.until) return mine.object;
    this.written.delete(key);
    return cached;
  }
}
