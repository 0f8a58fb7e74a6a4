// The informer's cache: the latest known state of every watched object, by key.
//
// Handlers read from here instead of calling the API, which is what lets a controller
// react to "something changed" by recomputing from the whole current set
// (level-triggered) without a burst of GETs. Objects are shared, not copied: treat them
// as read-only.

import { objectKey, type KubeObject } from "./client.ts";

export class Store<T extends KubeObject = KubeObject> {
  private readonly objects = new Map<string, T>();

  /** By key: "namespace/name", or "name" for cluster-scoped objects. */
  get(key: string): T | undefined {
    return this.objects.get(key);
  }

  getByName(namespace: string | undefined, name: string): T | undefined {
    return this.objects.get(namespace ? `${namespace}/${name}` : name);
  }

  /** All objects, or those of one namespace. */
  list(namespace?: string): T[] {
    const all = [...this.objects.values()];
    return namespace === undefined ? all : all.filter((o) => o.metadata.namespace === namespace);
  }

  keys(): string[] {
    return [...this.objects.keys()];
  }

  get size(): number {
    return this.objects.size;
  }

  /** Stores `obj`, returning what it replaced. */
  set(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.objects.get(key);
    this.objects.set(key, obj);
    return old;
  }

  /** Removes the object with `key`, returning it. */
  delete(key: string): T | undefined {
    const old = this.objects.get(key);
    this.objects.delete(key);
    return old;
  }
}
